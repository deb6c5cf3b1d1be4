"""Socket owners from the BPF task_file iterator against the real kernel, and its fallback.

Every kernel test runs in a throwaway network namespace; the sockets are the
test's own (and a forked child's, a thread's), so both sources must name
exactly the same holders.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcptune.inspect import ownersbpf
from tcptune.inspect.bpf import asm, fileiter, loader
from tcptune.inspect.bpf.loader import IterProgram
from tcptune.inspect.bpf.seams import BpfSeams
from tcptune.inspect.bpf.syscall import Bpf
from tcptune.inspect.owners import (
    OwnerSource,
    describe_processes,
    holders_from_records,
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
    finally:
        os.close(writer)
        os.waitpid(child, 0)
    assert from_procfs.source == "procfs"
    assert from_procfs.bpf_unavailable == "not tried (--owners-source procfs)"
    assert from_bpf.bpf_unavailable is None and from_bpf.bpf_detail is None
    expected = {inode: {os.getpid(), child} for inode in inodes + made_in_thread}
    assert as_sets(from_bpf) == as_sets(from_procfs) == expected
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


@pytest.mark.kernel
def test_the_program_passes_this_kernels_verifier_and_caches_its_layout(
    lab: SocketLab, tmp_path: Path
) -> None:
    inodes, _held = server_inodes(lab, 2)
    first = BpfSeams(cache_dir=tmp_path)
    columns = ownersbpf.read_socket_files(PROC, first)
    assert first.debug == ["owners: task_file layout from BTF"]
    records = {(int(i), int(p)) for i, p in zip(*columns, strict=True)}
    assert {(inode, os.getpid()) for inode in inodes} <= records
    again = BpfSeams(cache_dir=tmp_path)
    assert ownersbpf.read_socket_files(PROC, again)
    assert again.debug == ["owners: task_file layout cached"]


def without_task_null_check(spec: IterProgram) -> bytes:
    """The program with ctx->task loaded but not tested for NULL: the verifier must refuse it."""
    code = asm.disassemble(loader.build(spec))
    jumps = [n for n, (op, dst, *_rest) in enumerate(code) if op == 0x15 and dst == asm.R1]
    assert len(jumps) == 1  # the task pointer's NULL test
    return b"".join(
        asm.insn(op, dst, src, off - (1 if op == 0x15 and n < jumps[0] else 0), imm)
        for n, (op, dst, src, off, imm) in enumerate(code)
        if n != jumps[0]
    )


@pytest.mark.kernel
def test_a_refused_program_falls_back_to_procfs_with_the_verdict(
    lab: SocketLab, tmp_path: Path
) -> None:
    inodes, _held = server_inodes(lab, 1)
    found = look_up_owners(
        PROC, inodes, seams=BpfSeams(cache_dir=tmp_path, build=without_task_null_check)
    )
    if found.bpf_unavailable and "CAP_" in found.bpf_unavailable:
        skip_or_fail(f"BPF task_file cannot run here: {found.bpf_unavailable}")
    assert found.source == "procfs"
    assert found.bpf_unavailable == "owners via procfs: the kernel's verifier refused the program"
    assert found.bpf_detail and "invalid mem access" in found.bpf_detail
    assert as_sets(found) == {inodes[0]: {os.getpid()}}


class TruncatedBpf(Bpf):
    """A bpf(2) whose iterator hands back ``output``: decoding must refuse anything but records."""

    def __init__(self, output: bytes) -> None:
        super().__init__()
        self.output = output

    def prog_load(self, code: bytes, attach_btf_id: int, name: bytes, license_: bytes) -> int:
        return os.open("/dev/null", os.O_RDONLY)

    def link_create(self, prog_fd: int) -> int:
        return os.open("/dev/null", os.O_RDONLY)

    def iter_create(self, link_fd: int) -> int:
        reader, writer = os.pipe()
        os.write(writer, self.output)
        os.close(writer)
        return reader


@pytest.mark.parametrize("size", [1, 15, 20, 33])
def test_output_that_is_not_whole_records_is_refused_with_a_clear_reason(
    size: int, tmp_path: Path
) -> None:
    seams = BpfSeams(cache_dir=tmp_path, bpf=lambda: TruncatedBpf(bytes(size)))
    with pytest.raises(ownersbpf.OwnersBpfUnavailable) as refused:
        ownersbpf.read_socket_files(PROC, seams)
    if "CAP_" in refused.value.reason:
        skip_or_fail(f"needs CAP_BPF: {refused.value.reason}")
    assert refused.value.reason == (
        f"unexpected iterator output: {size} bytes of task_file output are not "
        "whole 16-byte records"
    )
    found = look_up_owners(PROC, [1], seams=seams)
    assert found.source == "procfs" and found.bpf_unavailable == (
        f"owners via procfs: {refused.value.reason}"
    )


class UnreadableBpf(TruncatedBpf):
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


def test_whole_records_decode_as_columns_and_match_only_wanted_inodes() -> None:
    layout = {
        "attach_btf_id": 1,
        "meta_offset": 0,
        "seq_offset": 0,
        "object_offset": 24,
        "seq_write": 127,
        "convert": 162,
        "clock": None,
        "reads": [
            {"name": "inode", "from_ctx": False, "pointers": [16, 32], "offset": 64, "size": 8},
            {"name": "tgid", "from_ctx": True, "pointers": [8], "offset": 9, "size": 4},
        ],
    }
    for read in layout["reads"]:  # type: ignore[attr-defined]
        read["pieces"] = 1
    records = [(7, 100), (8, 100), (7, 200), (7, 200), (99, 300)]  # dup'ed in 200; 99 unwanted
    data = b"".join(
        inode.to_bytes(8, "little") + pid.to_bytes(4, "little") + bytes(4) for inode, pid in records
    )
    inodes, pids = fileiter.columns(data, layout)
    assert list(inodes) == [7, 8, 7, 7, 99] and list(pids) == [100, 100, 200, 200, 300]
    holders = holders_from_records([7, 8, 9], inodes, pids)
    assert dict(holders) == {7: (100, 200), 8: (100,)}
    assert list(holders.inodes()) == [7, 8, 9] and holders.pids() == {100, 200}
    with pytest.raises(ValueError, match="2 first holders for 3 inodes"):
        holders.set_first([1, 2])
    broken = dict(layout, reads=[dict(layout["reads"][0], size=2)])  # type: ignore[index]
    with pytest.raises(ValueError, match="cannot be decoded"):
        fileiter.columns(data, broken)


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


@pytest.mark.kernel
def test_the_prefetched_pass_names_the_same_holders(lab: SocketLab, tmp_path: Path) -> None:
    from tcptune.inspect.owners import PREFETCH_MIN_SOCKETS, sockets_in_use, start_prefetch

    seams = BpfSeams(cache_dir=tmp_path)
    inodes, _held = server_inodes(lab, 5)
    assert start_prefetch(PROC, True, OwnerSource.AUTO, seams) is None  # 10 sockets: idle
    lab.established(PREFETCH_MIN_SOCKETS // 2)  # both ends count in sockstat inuse
    assert sockets_in_use(PROC) >= PREFETCH_MIN_SOCKETS
    assert start_prefetch(PROC, True, OwnerSource.PROCFS, seams) is None  # BPF not wanted
    assert start_prefetch(PROC, False, OwnerSource.AUTO, seams) is None  # no owners asked
    prefetch = start_prefetch(PROC, True, OwnerSource.AUTO, seams)
    assert prefetch is not None
    found = look_up_owners(PROC, inodes, seams=seams, prefetched=prefetch)
    if found.source != ownersbpf.SOURCE:
        skip_or_fail(f"BPF task_file cannot run here: {found.bpf_unavailable}")
    walked = look_up_owners(PROC, inodes, source=OwnerSource.PROCFS)
    assert as_sets(found) == as_sets(walked) == {inode: {os.getpid()} for inode in inodes}


def test_a_prefetch_is_never_started_on_a_tree(tmp_path: Path) -> None:
    from tcptune.inspect.owners import start_prefetch

    (tmp_path / "net").mkdir()
    (tmp_path / "net/sockstat").write_text("TCP: inuse 50000 orphan 0 tw 0 alloc 50000 mem 1\n")
    assert start_prefetch(ProcFS(tmp_path), True, OwnerSource.AUTO, None) is None
