"""The BPF walk on the real kernel: what the sock_diag dump says, field by field, or a reason."""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tcptune.inspect.bpf import asm, tcpdetails
from tcptune.inspect.bpf.btf import VMLINUX_BTF, load_btf
from tcptune.inspect.bpf.loader import run
from tcptune.inspect.bpf.seams import BpfSeams
from tcptune.inspect.bpf.syscall import Bpf, BpfError
from tcptune.inspect.bpfdump import BpfDumpUnavailable, dump_details
from tcptune.inspect.inspector import inspect
from tcptune.inspect.procfs import ProcFS
from tcptune.inspect.sockdiag import details_builder, request
from tcptune.inspect.statecounts import BPF_SOURCE, SocketSource, read_sockets
from tcptune.model.snapshot import Problem, SocketCounts
from tcptune.model.tcpstates import TcpState
from tests.inspect.test_bpfcount_kernel import syn_recv
from tests.inspect.test_tcpdetails import WithoutSkIno
from tests.lab import SocketLab, kernel_lab, skip_or_fail
from tests.lab.privileges import UNPRIVILEGED, run_tcptune

pytestmark = pytest.mark.kernel
PROC = ProcFS(Path("/proc"))
MAPPED = "::ffff:127.0.0.1"
# What the mix below leaves, both families and v4-mapped together
EXPECTED = {"ESTABLISHED": 28, "LISTEN": 5, "CLOSE_WAIT": 12, "FIN_WAIT2": 12}
EXPECTED |= {"TIME_WAIT": 11, "SYN_RECV": 4}


@pytest.fixture
def lab() -> Iterator[SocketLab]:
    with kernel_lab() as made:
        yield made


def pair(
    stack: ExitStack, listener: socket.socket, family: socket.AddressFamily, address: str
) -> tuple[socket.socket, socket.socket]:
    client = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
    client.settimeout(5)
    client.connect((address, listener.getsockname()[1]))
    server = stack.enter_context(listener.accept()[0])
    return client, server


def server_closes_first(
    stack: ExitStack, listener: socket.socket, family: int, address: str
) -> None:
    """Leave the server end in TIME_WAIT: it closes first, the client reads EOF and closes."""
    client, server = pair(stack, listener, socket.AddressFamily(family), address)
    server.close()
    assert client.recv(1) == b""
    client.close()


def socket_mix(lab: SocketLab, stack: ExitStack) -> None:
    """Every state the audit details, over IPv4, IPv6 and v4-mapped IPv6 (EXPECTED)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        address = "127.0.0.1" if family == socket.AF_INET else "::1"
        lab.established(2, family)
        lab.keepalive(2, family=family)  # the clients' keepalive timers pending
        queued = lab.listen(family=family)  # a connection waiting in its accept queue,
        stack.enter_context(socket.create_connection((address, queued.getsockname()[1])))
        gone = socket.create_connection((address, queued.getsockname()[1]))
        gone.close()  # and one the peer closed before it was accepted: CLOSE_WAIT, inode 0
        lab.close_wait(3, family)  # held CLOSE_WAIT, orphaned FIN_WAIT2 minisockets
        lab.fin_wait2_held(1, family)  # a full FIN_WAIT2 socket
        lab.time_wait(3, family)  # client-side TIME_WAIT
        listener = lab.listen(family=family)
        for _ in range(2):
            server_closes_first(stack, listener, family, address)  # server-side TIME_WAIT
        listener.close()
        for client in syn_recv(lab, 2, family):  # request sockets (TCP_DEFER_ACCEPT)
            stack.enter_context(client)
    dual = stack.enter_context(socket.socket(socket.AF_INET6, socket.SOCK_STREAM))
    dual.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    dual.bind(("::", 0))
    dual.listen(16)  # accepted IPv4 clients are AF_INET6 sockets with v4-mapped addresses
    client, _server = pair(stack, dual, socket.AF_INET, "127.0.0.1")
    client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    pair(stack, dual, socket.AF_INET, "127.0.0.1")
    for _ in range(2):
        client, _server = pair(stack, dual, socket.AF_INET, "127.0.0.1")
        client.close()  # mapped CLOSE_WAIT, an IPv4 FIN_WAIT2 minisocket
    server_closes_first(stack, dual, socket.AF_INET, "127.0.0.1")  # mapped TIME_WAIT
    lab.wait_for_states(EXPECTED)


def both(tmp_path: Path) -> tuple[SocketCounts, SocketCounts, float]:
    """Return the BPF walk's and the netlink dump's counts, and the seconds between the reads."""
    problems: list[Problem] = []
    started = time.monotonic()
    bpf = read_sockets(
        PROC, SocketSource.BPF, True, problems, bpf_seams=BpfSeams(cache_dir=tmp_path)
    )
    if bpf is None:
        skip_or_fail(f"the BPF walk cannot run here: {problems}")
    netlink = read_sockets(PROC, SocketSource.NETLINK, True, problems)
    assert netlink is not None and problems == []
    return bpf, netlink, time.monotonic() - started


def test_details_equal_the_netlink_dumps_for_every_state_and_family(
    lab: SocketLab, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        socket_mix(lab, stack)
        bpf, netlink, between = both(tmp_path)
    assert (bpf.source, netlink.source, bpf.notes) == ("bpf", "netlink", ())
    assert (bpf.ipv4, bpf.ipv6) == (netlink.ipv4, netlink.ipv6)
    assert {s.name: bpf.total(s) for s in TcpState if bpf.total(s)} == EXPECTED
    assert bpf.ipv6[TcpState.CLOSE_WAIT] == 7  # 5 IPv6 and 2 v4-mapped
    walked, dumped = bpf.details, netlink.details
    assert walked is not None and dumped is not None
    assert walked.established_keepalive == 5  # the lab's 4 and one v4-mapped client
    assert (walked.fin_wait2_orphaned, walked.fin_wait2_held) == (10, 2)
    assert len(walked.close_wait_inodes) == 10  # the 2 not accepted have no inode
    no_ages = dataclasses.replace(walked, close_wait_ages=None)
    assert no_ages == dataclasses.replace(dumped, close_wait_ages=None)
    assert walked.listeners and {item.queued for item in walked.listeners} >= {0, 2}
    # the ages: the same sockets (by inode), the netlink read up to ``between`` later
    first, second = walked.close_wait_ages, dumped.close_wait_ages
    assert first is not None and second is not None and len(first) == len(second) == 12
    assert list(first.inodes) == list(second.inodes) and first.inodes.count(0) == 2
    slack = 2 * 1000 // 100 + 1  # two jiffies at HZ 100, the coarsest rounding
    for before_column, after_column in (
        (first.last_ack_ms, second.last_ack_ms),
        (first.last_data_ms, second.last_data_ms),
    ):
        for inode in set(first.inodes):
            at = [i for i, found in enumerate(first.inodes) if found == inode]
            before = sorted(before_column[i] for i in at)
            after = sorted(after_column[i] for i in at)
            for early, late in zip(before, after, strict=True):
                assert early - slack <= late <= early + between * 1000 + slack


def _netlink_messages() -> list[bytes]:
    """Return every message of one all-states sock_diag dump (no attributes asked for)."""
    messages: list[bytes] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4) as sock:
        sock.sendto(request(1), (0, 0))
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset < len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == 3:  # NLMSG_DONE
                    return messages
                messages.append(data[offset : offset + length])
                offset += (length + 3) & ~3


def _fields(message: bytes) -> tuple[bytes, tuple[int, ...]]:
    """Return a message's socket identity and what the walk fills (retrans, expires aside)."""
    family, state, timer = message[16:19]
    rqueue, wqueue, uid, inode = struct.unpack_from("=IIII", message, 72)
    if state != TcpState.LISTEN:
        rqueue = wqueue = 0  # the walk fills only a listener's queues
    if state not in (TcpState.CLOSE_WAIT, TcpState.FIN_WAIT2, TcpState.LISTEN):
        inode = 0  # and the inodes the audit reads
    return message[16:17] + message[20:56], (family, state, timer, rqueue, wqueue, uid, inode)


def test_each_record_holds_what_the_kernel_puts_in_the_sock_diag_message(
    lab: SocketLab,
) -> None:
    with ExitStack() as stack:
        socket_mix(lab, stack)
        resolved = tcpdetails.resolve(load_btf())
        try:
            data = bytes(
                run(Bpf(), tcpdetails.build(resolved), resolved["attach_btf_id"], b"t", 1 << 24)
            )
        except BpfError as exc:
            skip_or_fail(f"the BPF walk cannot run here: {exc}")
        program = tcpdetails.build(resolved, owner_inodes=False)
        unowned = bytes(run(Bpf(), program, resolved["attach_btf_id"], b"t", 1 << 24))
        older = tcpdetails.resolve(WithoutSkIno(VMLINUX_BTF.read_bytes()))  # the file chain
        chained = bytes(
            run(Bpf(), tcpdetails.build(older), resolved["attach_btf_id"], b"t", 1 << 24)
        )
        messages = _netlink_messages()
    size = tcpdetails.RECORD_SIZE
    records = [data[i : i + size] for i in range(0, len(data), size)]
    assert len(records) == len(messages) == sum(EXPECTED.values())
    for record in records:
        assert struct.unpack_from("=IHH", record) == (size, 18, 2)
    walked = dict(map(_fields, records))
    assert len(walked) == len(records)  # every socket's identity is unique
    assert walked == dict(map(_fields, messages))
    timers = {fields[2] for fields in walked.values()}
    assert timers >= {0, 1, 2, 3}  # none, a request socket's, keepalive, TIME_WAIT
    # Without owners the CLOSE_WAIT inodes are left 0, and nothing else changes.
    without = dict(map(_fields, [unowned[i : i + size] for i in range(0, len(unowned), size)]))
    close_wait = {key for key, fields in walked.items() if fields[1] == TcpState.CLOSE_WAIT}
    assert len(close_wait) == EXPECTED["CLOSE_WAIT"]
    assert {without[key][-1] for key in close_wait} == {0}
    assert {walked[key][-1] for key in close_wait} != {0}  # held ones have inodes
    blank = {key: (*walked[key][:-1], 0) for key in close_wait}
    assert without == walked | blank
    # A kernel before sk_ino: the inodes through sk_socket->file->f_inode are the same.
    assert dict(map(_fields, [chained[i : i + size] for i in range(0, len(chained), size)])) == (
        walked
    )


def test_a_refused_program_falls_back_to_netlink_with_the_reason(
    lab: SocketLab, tmp_path: Path
) -> None:
    lab.close_wait(2)
    lab.wait_for_states({"CLOSE_WAIT": 2, "FIN_WAIT2": 2})
    bad = asm.program([asm.exit_()])  # r0 is never set: the verifier refuses it
    problems: list[Problem] = []
    found = read_sockets(
        PROC,
        SocketSource.AUTO,
        True,
        problems,
        bpf_seams=BpfSeams(cache_dir=tmp_path),
        bpf_min_sockets=0,
        bpf_build=lambda _resolved, _inodes: bad,
    )
    assert found is not None and found.source == "netlink" and problems == []
    assert found.details is not None and found.details.close_wait == 2
    (note,) = found.notes
    assert note.startswith("BPF socket walk not used: the kernel's verifier refused the program")
    assert "R0 !read_ok" in note  # the verifier's own verdict
    with pytest.raises(BpfDumpUnavailable, match="verifier refused"):
        dump_details(PROC, BpfSeams(), details_builder(), build=lambda _resolved, _inodes: bad)


def test_auto_walks_only_from_the_threshold_and_an_absent_walk_fails_source_bpf(
    lab: SocketLab, tmp_path: Path
) -> None:
    lab.established(2)
    lab.wait_for_states({"ESTABLISHED": 4})
    seams = BpfSeams(cache_dir=tmp_path)
    assert inspect(PROC, details=True, socket_seams=seams).sockets.source == "netlink"  # type: ignore[union-attr]
    walked = inspect(PROC, details=True, socket_seams=seams, bpf_min_sockets=4)
    assert walked.sockets is not None
    if walked.sockets.source != "bpf":
        skip_or_fail(f"the BPF walk cannot run here: {walked.sockets.notes}")
    assert walked.sockets.details is not None and walked.sockets.total(TcpState.ESTABLISHED) == 4
    missing = BpfSeams(btf_path=tmp_path / "no-such-btf")
    fell = inspect(PROC, details=True, socket_seams=missing, bpf_min_sockets=0).sockets
    assert fell is not None and fell.source == "netlink"
    assert fell.notes[0].startswith("BPF socket walk not used: kernel BTF:")
    failed = inspect(PROC, details=True, source=SocketSource.BPF, socket_seams=missing)
    assert failed.sockets is None and not failed.complete
    assert [p.source for p in failed.problems] == [BPF_SOURCE]
    counts = inspect(PROC, source=SocketSource.BPF, socket_seams=seams).sockets  # no details
    assert counts is not None and counts.source == "bpf" and counts.details is None
    assert counts.total(TcpState.ESTABLISHED) == 4


def audit_document(*args: str, prefix: tuple[str, ...] = ()) -> tuple[int, dict[str, object], str]:
    result = run_tcptune("audit", "--json", "--no-options", *args, prefix=prefix)
    return result.returncode, json.loads(result.stdout), result.stderr


def test_audit_walks_with_bpf_as_root_and_falls_back_unprivileged(lab: SocketLab) -> None:
    listener = lab.listen(backlog=4096)
    with ExitStack() as stack:  # 1,100 queued connections: 2,201 sockets, past the threshold
        for _ in range(1100):
            client = stack.enter_context(socket.socket())
            client.connect(listener.getsockname())
        lab.wait_for_states({"ESTABLISHED": 2200, "LISTEN": 1})
        _code, root, _err = audit_document("--no-owners")
        _code, unprivileged, _err = audit_document("--no-owners", prefix=UNPRIVILEGED)
        code, refused, stderr = audit_document("--source", "bpf", prefix=UNPRIVILEGED)
    sockets = root["sockets"]
    assert isinstance(sockets, dict)
    if sockets["source"] != "bpf":
        skip_or_fail(f"the BPF walk cannot run here: {sockets['notes']}")
    assert sockets["notes"] == [] and root["problems"] == []
    fallback = unprivileged["sockets"]
    assert isinstance(fallback, dict) and fallback["source"] == "netlink"
    (note,) = fallback["notes"]
    assert note.startswith("BPF socket walk not used: needs CAP_BPF")
    assert fallback["states"] == sockets["states"]
    assert code == 3 and refused["complete"] is False
    assert f"incomplete: {BPF_SOURCE}: BPF socket walk not used: needs CAP_BPF" in stderr
