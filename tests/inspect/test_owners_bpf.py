"""Socket owners from the BPF task_file iterator against the real kernel, and its fallback.

Every kernel test runs in a throwaway network namespace; the sockets are the
test's own (and a forked child's, a thread's), so both sources must name
exactly the same holders. The wanted inodes are matched in the kernel (a
hash map the program looks each socket up in); the map's failure modes
(creation, the batch fill, a program the verifier refuses, bad output) fall
back to the procfs walk with the reason.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcptune.inspect import ownersbpf
from tcptune.inspect.bpf import asm, fileiter, syscall
from tcptune.inspect.bpf.fileiter import OwnersProgram
from tcptune.inspect.bpf.seams import BpfSeams
from tcptune.inspect.bpf.syscall import Bpf, BpfError
from tcptune.inspect.owners import (
    Holders,
    OwnerSource,
    describe_processes,
    look_up_owners,
    socket_holders,
)
from tcptune.inspect.procfs import ProcFS
from tcptune.model.snapshot import SocketOwners
from tests.lab import SocketLab, kernel_lab, skip_or_fail

PROC = ProcFS(Path("/proc"))
CLONE_FILES = 0x400  # include/uapi/linux/sched.h


@pytest.fixture
def lab() -> Iterator[SocketLab]:
    with kernel_lab() as made:
        yield made


def bpf_owners(inodes: list[int], tmp_path: Path, **seams: object) -> SocketOwners:
    found = look_up_owners(PROC, inodes, seams=BpfSeams(cache_dir=tmp_path, **seams))  # type: ignore[arg-type]
    if found.source != ownersbpf.SOURCE:
        skip_or_fail(f"BPF task_file cannot run here: {found.bpf_unavailable}")
    return found


def as_sets(owners: SocketOwners) -> dict[int, set[int]]:
    return {inode: set(pids) for inode, pids in owners.holders.items()}


def server_inodes(lab: SocketLab, n: int) -> tuple[list[int], list[socket.socket]]:
    conns = lab.close_wait(n)
    held = [c.server for c in conns if c.server is not None]
    return [c.server_inode for c in conns], held


@pytest.mark.kernel
def test_bpf_and_procfs_name_the_same_holders_child_and_thread(
    lab: SocketLab, tmp_path: Path
) -> None:
    inodes, held = server_inodes(lab, 6)
    made_in_thread: list[int] = []
    thread_ids: list[int] = []

    def in_thread() -> None:
        thread_ids.append(threading.get_native_id())
        made_in_thread.extend(server_inodes(lab, 3)[0])

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join()
    wanted = [*inodes, *made_in_thread, 0]  # a 0 is no inode
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # shares every descriptor (the CLOSE_WAIT sockets) until told to go
        os.close(writer)
        os.read(reader, 1)
        os._exit(0)
    os.close(reader)
    try:
        from_bpf = bpf_owners(wanted, tmp_path)
        from_procfs = look_up_owners(PROC, wanted, source=OwnerSource.PROCFS)
        raw = matched(wanted, BpfSeams(cache_dir=tmp_path))
    finally:
        os.close(writer)
        os.waitpid(child, 0)
    assert from_procfs.source == "procfs"
    assert from_procfs.bpf_unavailable == "not tried (--owners-source procfs)"
    assert from_bpf.bpf_unavailable is None and from_bpf.bpf_detail is None
    expected = {inode: {os.getpid(), child} for inode in inodes + made_in_thread}
    assert as_sets(from_bpf) == as_sets(from_procfs) == expected
    # the kernel wrote one record per (wanted socket, holder), in PID order: parent, then child
    assert sorted(raw) == sorted((i, pid) for i, pids in expected.items() for pid in pids)
    assert [pid for _inode, pid in raw] == sorted(pid for pids in expected.values() for pid in pids)
    # a thread shares the process's file table: the holder is the process, never the thread
    assert thread_ids[0] != os.getpid()
    assert set(from_bpf.processes) == {os.getpid(), child}
    assert held  # kept open until here


@pytest.mark.kernel
def test_a_thread_with_its_own_file_table_is_seen_only_by_bpf(
    lab: SocketLab, tmp_path: Path
) -> None:
    """/proc/PID/fd is the leader's table; task_file also visits a thread that unshared its own."""
    libc = ctypes.CDLL(None, use_errno=True)
    listener = lab.listen()
    address = listener.getsockname()
    made, go = threading.Event(), threading.Event()
    inode: list[int] = []

    def private() -> None:
        if libc.unshare(CLONE_FILES) != 0:
            inode.append(-ctypes.get_errno())
            made.set()
            return
        client = socket.create_connection(address)
        server, _ = listener.accept()
        client.close()  # the server end goes CLOSE_WAIT, held only in this thread's table
        inode.append(os.fstat(server.fileno()).st_ino)
        made.set()
        go.wait(10)
        server.close()

    worker = threading.Thread(target=private)
    worker.start()
    try:
        assert made.wait(10) and inode[0] > 0, inode
        from_bpf = bpf_owners(inode, tmp_path)
        from_procfs = socket_holders(PROC, inode)
    finally:
        go.set()
        worker.join()
    assert as_sets(from_bpf) == {inode[0]: {os.getpid()}}
    assert dict(from_procfs) == {}


def matched(wanted: list[int], seams: BpfSeams) -> list[tuple[int, int]]:
    """Return the kernel's records as (inode, pid): what the program wrote, position decoded."""
    inodes = Holders(wanted).inodes()
    try:
        positions, pids = ownersbpf.read_matches(PROC, seams, inodes)
    except ownersbpf.OwnersBpfUnavailable as exc:
        skip_or_fail(f"BPF task_file cannot run here: {exc.reason}")
    return [(inodes[p], pid) for p, pid in zip(positions, pids, strict=True)]


@pytest.mark.kernel
def test_only_wanted_sockets_come_back_and_the_layout_is_cached(
    lab: SocketLab, tmp_path: Path
) -> None:
    inodes, _held = server_inodes(lab, 4)
    unwanted = [c.client_inode for c in lab.established(5)]  # open, held here, not asked for
    gone = socket.socket()
    nobody = os.fstat(gone.fileno()).st_ino  # a socket inode nobody holds any more
    gone.close()
    first = BpfSeams(cache_dir=tmp_path)
    records = matched([*inodes, nobody], first)
    assert first.debug == ["owners: task_file layout from BTF"]
    # one record per held wanted socket: the unheld one and every unwanted socket are absent
    assert sorted(records) == sorted((inode, os.getpid()) for inode in inodes)
    assert not {inode for inode, _pid in records} & {nobody, *unwanted}
    again = BpfSeams(cache_dir=tmp_path)
    assert matched(inodes[:1], again) == [(inodes[0], os.getpid())]
    assert again.debug == ["owners: task_file layout cached"]
    found = look_up_owners(PROC, [*inodes, nobody], seams=BpfSeams(cache_dir=tmp_path))
    assert found.source == ownersbpf.SOURCE
    assert nobody not in found.holders and set(found.holders) == set(inodes)


def without_jump(code: bytes, index: int) -> bytes:
    """Return ``code`` without the instruction at ``index``, every jump over it shortened."""
    insns = asm.disassemble(code)
    kept = []
    for n, (op, dst, src, off, imm) in enumerate(insns):
        if n == index:
            continue
        if op & 0x07 == asm.JMP and op not in (0x85, 0x95) and n < index < n + 1 + off:
            off -= 1
        kept.append(asm.insn(op, dst, src, off, imm))
    return b"".join(kept)


def null_tests(spec: OwnersProgram) -> list[int]:
    """Return the indexes of the program's NULL tests (if rX == 0), in order."""
    code = asm.disassemble(fileiter.build(spec))
    return [n for n, (op, *_rest) in enumerate(code) if op == 0x15]


def without_lookup_null_check(spec: OwnersProgram) -> bytes:
    """The program using bpf_map_lookup_elem's result untested: the verifier must refuse it."""
    tests = null_tests(spec)
    assert len(tests) == 4  # file, socket, the map value, task
    return without_jump(fileiter.build(spec), tests[2])


def without_task_null_check(spec: OwnersProgram) -> bytes:
    """The program with ctx->task loaded but not tested for NULL: the verifier must refuse it."""
    return without_jump(fileiter.build(spec), null_tests(spec)[3])


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("build", "verdict"),
    [
        (without_lookup_null_check, "invalid mem access 'map_value_or_null'"),
        (without_task_null_check, "invalid mem access"),
    ],
)
def test_a_refused_program_falls_back_to_procfs_with_the_verdict(
    lab: SocketLab, tmp_path: Path, build: object, verdict: str
) -> None:
    inodes, _held = server_inodes(lab, 1)
    seams = BpfSeams(cache_dir=tmp_path, build_owners=build)  # type: ignore[arg-type]
    found = look_up_owners(PROC, inodes, seams=seams)
    if found.bpf_unavailable and "CAP_" in found.bpf_unavailable:
        skip_or_fail(f"BPF task_file cannot run here: {found.bpf_unavailable}")
    assert found.source == "procfs"
    assert found.bpf_unavailable == "owners via procfs: the kernel's verifier refused the program"
    assert found.bpf_detail and verdict in found.bpf_detail
    assert as_sets(found) == {inodes[0]: {os.getpid()}}


class RefusingBpf(Bpf):
    """The real bpf(2), but the map is made or filled with an argument the kernel refuses."""

    def __init__(self, refuse: str = "nothing") -> None:
        super().__init__()
        self.refuse = refuse

    def map_create(
        self, map_type: int, key_size: int, value_size: int, max_entries: int, name: bytes
    ) -> int:
        if self.refuse == "create":  # a hash map of 0-byte values: htab_map_alloc_check EINVAL
            return super().map_create(map_type, key_size, 0, max_entries, name)
        return super().map_create(map_type, key_size, value_size, max_entries, name)

    def map_update_batch(self, map_fd: int, keys: array[int], values: array[int]) -> None:
        if self.refuse == "batch":  # an unknown elem_flags bit: generic_map_update_batch EINVAL
            attr = syscall._MAP_BATCH.pack(
                0, 0, keys.buffer_info()[0], values.buffer_info()[0], len(keys), map_fd, 1 << 20, 0
            )
            self.call(syscall.BPF_MAP_UPDATE_BATCH, attr, "BPF_MAP_UPDATE_BATCH")
        if self.refuse == "unsupported":  # what bpf_map_do_batch answers a map without batches
            raise BpfError("BPF_MAP_UPDATE_BATCH: Unknown error 524", 524)
        super().map_update_batch(map_fd, keys, values)


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("refuse", "reason"),
    [
        ("create", "BPF_MAP_CREATE: Invalid argument"),
        ("batch", "BPF_MAP_UPDATE_BATCH: Invalid argument"),
        ("unsupported", "BPF_MAP_UPDATE_BATCH: Unknown error 524"),
    ],
)
def test_a_map_the_kernel_will_not_make_or_fill_falls_back_to_procfs(
    lab: SocketLab, tmp_path: Path, refuse: str, reason: str
) -> None:
    inodes, _held = server_inodes(lab, 2)
    seams = BpfSeams(cache_dir=tmp_path, bpf=lambda: RefusingBpf(refuse))
    found = look_up_owners(PROC, inodes, seams=seams)
    if found.bpf_unavailable and "CAP_" in found.bpf_unavailable:
        skip_or_fail(f"BPF task_file cannot run here: {found.bpf_unavailable}")
    assert found.source == "procfs"
    assert (found.bpf_unavailable, found.bpf_detail) == (f"owners via procfs: {reason}", reason)
    assert as_sets(found) == {inode: {os.getpid()} for inode in inodes}
    fine = look_up_owners(PROC, inodes, seams=BpfSeams(cache_dir=tmp_path, bpf=RefusingBpf))
    assert fine.source == ownersbpf.SOURCE  # the same wrapper, refusing nothing: BPF answers


class FakeBpf(Bpf):
    """A bpf(2) whose iterator hands back ``output``: decoding must refuse anything but records."""

    def __init__(self, output: bytes) -> None:
        super().__init__()
        self.output = output

    def map_create(
        self, map_type: int, key_size: int, value_size: int, max_entries: int, name: bytes
    ) -> int:
        return os.open("/dev/null", os.O_RDONLY)

    def map_update_batch(self, map_fd: int, keys: array[int], values: array[int]) -> None:
        pass

    def prog_load(self, code: bytes, attach_btf_id: int, name: bytes, license_: bytes) -> int:
        return os.open("/dev/null", os.O_RDONLY)

    def link_create(self, prog_fd: int) -> int:
        return os.open("/dev/null", os.O_RDONLY)

    def iter_create(self, link_fd: int) -> int:
        output = os.memfd_create("iterator output")
        os.write(output, self.output)
        os.lseek(output, 0, os.SEEK_SET)
        return output


def records(*pairs: tuple[int, int]) -> bytes:
    return b"".join(p.to_bytes(4, "little") + pid.to_bytes(4, "little") for p, pid in pairs)


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        *[
            (bytes(size), f"{size} bytes of task_file output are not whole 8-byte records")
            for size in (1, 7, 12, 33)
        ],
        (records((0, 100), (1, 100)), "a task_file record names position 1 of 1"),
    ],
)
def test_output_that_is_not_whole_records_is_refused_with_a_clear_reason(
    output: bytes, problem: str, tmp_path: Path
) -> None:
    seams = BpfSeams(cache_dir=tmp_path, bpf=lambda: FakeBpf(output))
    with pytest.raises(ownersbpf.OwnersBpfUnavailable) as refused:
        ownersbpf.read_matches(PROC, seams, array("Q", [1]))
    if "CAP_" in refused.value.reason:
        skip_or_fail(f"needs CAP_BPF: {refused.value.reason}")
    assert refused.value.reason == f"unexpected iterator output: {problem}"
    found = look_up_owners(PROC, [1], seams=seams)
    assert found.source == "procfs" and found.bpf_unavailable == (
        f"owners via procfs: {refused.value.reason}"
    )


def test_output_beyond_the_bound_falls_back(tmp_path: Path) -> None:
    bound = fileiter.RECORD * ownersbpf.MIN_RECORDS  # one wanted inode: the floor applies
    seams = BpfSeams(cache_dir=tmp_path, bpf=lambda: FakeBpf(bytes(bound + fileiter.RECORD)))
    found = look_up_owners(PROC, [1], seams=seams)
    if found.bpf_unavailable and "CAP_" in found.bpf_unavailable:
        skip_or_fail(f"needs CAP_BPF: {found.bpf_unavailable}")
    assert found.source == "procfs"
    assert found.bpf_unavailable == (
        f"owners via procfs: iterator output larger than {bound} bytes"
    )
    exact = BpfSeams(cache_dir=tmp_path, bpf=lambda: FakeBpf(bytes(bound)))
    assert look_up_owners(PROC, [1], seams=exact).source == ownersbpf.SOURCE  # at the bound


class UnreadableBpf(FakeBpf):
    """A bpf(2) whose iterator descriptor cannot be read (a directory: EISDIR)."""

    def iter_create(self, link_fd: int) -> int:
        return os.open("/", os.O_RDONLY | os.O_DIRECTORY)


def test_an_unreadable_iterator_falls_back_with_the_errno(tmp_path: Path) -> None:
    seams = BpfSeams(cache_dir=tmp_path, bpf=lambda: UnreadableBpf(b""))
    found = look_up_owners(PROC, [1], seams=seams)
    if found.bpf_unavailable and "CAP_" in found.bpf_unavailable:
        skip_or_fail(f"needs CAP_BPF: {found.bpf_unavailable}")
    assert found.source == "procfs"
    assert found.bpf_unavailable == (
        "owners via procfs: reading the task_file iterator: Is a directory"
    )


def test_records_fill_holders_in_task_order_first_holder_first() -> None:
    holders = Holders([9, 7, 8])
    assert list(holders.inodes()) == [7, 8, 9]
    # 7 (position 0) held by 100 then a forked 200, dup'ed in 200; 8 by 100; 9 by nobody
    data = records((0, 100), (1, 100), (0, 200), (0, 200))
    positions, pids = fileiter.matches(bytearray(data), holders.wanted)
    holders.add_matches(positions, pids)
    assert dict(holders) == {7: (100, 200), 8: (100,)}
    assert 9 not in holders and holders.pids() == {100, 200}
    with pytest.raises(ValueError, match="2 first holders for 3 inodes"):
        holders.set_first([1, 2])
    assert fileiter.matches(b"", 0) == (memoryview(b"").cast("I"), memoryview(b"").cast("I"))


def test_layouts_of_another_shape_are_not_used() -> None:
    good = {name: 8 for name in OwnersProgram.__dataclass_fields__ if name != "map_fd"}
    assert fileiter.program_spec(good).ino_size == 8
    assert ownersbpf._valid(good)
    for broken in (
        {k: v for k, v in good.items() if k != "map_lookup"},  # an older version's layout
        dict(good, ino_size=2),
        dict(good, tgid_offset="8"),
    ):
        assert not ownersbpf._valid(broken)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("capeff", "missing"),
    [
        ("000001ffffffffff", None),  # root
        ("0000000000200000", None),  # CAP_SYS_ADMIN stands in for both
        ("000000c000000000", None),  # CAP_BPF and CAP_PERFMON
        ("0000008000000000", "CAP_PERFMON"),
        ("0000000000000000", "CAP_BPF and CAP_PERFMON"),
    ],
)
def test_capabilities_are_read_from_capeff(capeff: str, missing: str | None) -> None:
    status = f"Name:\tpython3\nCapInh:\t0000000000000000\nCapEff:\t{capeff}\n"
    assert ownersbpf.missing_capability(status) == missing
    assert ownersbpf.missing_capability("Name:\tx\n") is None  # unknown: bpf(2) decides


def test_no_btf_falls_back_and_says_so(tmp_path: Path) -> None:
    seams = BpfSeams(btf_path=tmp_path / "vmlinux", cache_dir=None)
    found = look_up_owners(PROC, [1], seams=seams)
    assert found.source == "procfs"
    assert found.bpf_unavailable is not None
    assert found.bpf_unavailable.startswith("owners via procfs: kernel BTF: ")
    assert "vmlinux" in found.bpf_unavailable


def test_a_fixture_tree_is_walked_never_iterated(tmp_path: Path) -> None:
    (tmp_path / "1" / "fd").mkdir(parents=True)
    (tmp_path / "1" / "fd" / "3").symlink_to("socket:[4242]")
    (tmp_path / "1" / "comm").write_text("fixture\n")
    (tmp_path / "1" / "status").write_text("Uid:\t0\t0\t0\t0\n")
    found = look_up_owners(ProcFS(tmp_path), [4242])
    assert found.source == "procfs"
    assert found.bpf_unavailable == f"{tmp_path} is not the live /proc"
    assert dict(found.holders) == {4242: (1,)}


def test_a_name_the_kernel_cut_at_15_characters_is_completed_from_argv0(tmp_path: Path) -> None:
    for pid, comm, argv in [
        (1, "averyveryverylo", b"/usr/bin/averyveryverylongname\0--flag\0"),
        (2, "kworker-ish-nam", b"/bin/sh\0-c\0"),  # argv[0] is not the cut name: comm stays
        (3, "short", b"/opt/short-but-renamed\0"),  # not cut: comm as it is
    ]:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "comm").write_text(comm + "\n")
        (tmp_path / str(pid) / "cmdline").write_bytes(argv)
        (tmp_path / str(pid) / "status").write_text("Uid:\t0\t0\t0\t0\n")
    named = describe_processes(ProcFS(tmp_path), [1, 2, 3, 4])
    assert {pid: (o.name, o.user) for pid, o in named.items()} == {
        1: ("averyveryverylongname", "root"),
        2: ("kworker-ish-nam", "root"),
        3: ("short", "root"),
        4: ("?", "?"),  # vanished
    }


def test_a_tree_is_read_as_psutil_reads_the_live_proc() -> None:
    import psutil

    from tcptune.inspect.owners import _from_tree

    me = psutil.Process()
    (found,) = describe_processes(PROC, [os.getpid()]).values()  # the live /proc: psutil
    assert (found.name, found.user) == (me.name(), me.username())
    from_tree = _from_tree(PROC, os.getpid())  # what any other root gets, on the same process
    assert (from_tree.name, from_tree.user) == (me.name(), me.username())
