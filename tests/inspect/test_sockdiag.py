"""The netlink dump loop with a scripted socket: interrupted dumps, errors, fallback."""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest

from tcptune.inspect.inspector import SocketSource, inspect
from tcptune.inspect.sockdiag import (
    MAX_DUMP_ATTEMPTS,
    NLM_F_DUMP_INTR,
    DumpInterrupted,
    SockDiagError,
    dump_counts,
)
from tcptune.model.tcpstates import ALL_STATES_MASK, TcpState
from tests.conftest import FIXTURES
from tests.lab import SocketLab

MULTI = 0x2
ONE_PASS = ((ALL_STATES_MASK, 0),)  # one scripted dump per attempt


def diag_message(state: int, flags: int = MULTI) -> bytes:
    """Return one SOCK_DIAG_BY_FAMILY message for an IPv4 socket in ``state``."""
    body = struct.pack("=BBBB", socket.AF_INET, state, 0, 0) + bytes(48) + bytes(20)
    return struct.pack("=IHHII", 16 + len(body), 18, flags, 1, 0) + body


def done(flags: int = MULTI) -> bytes:
    return struct.pack("=IHHIIi", 20, 3, flags, 1, 0, 0)


def error(code: int) -> bytes:
    return struct.pack("=IHHIIi", 36, 2, 0, 1, 0, -code) + bytes(16)


class ScriptedNetlink:
    """Stand in for a netlink socket, answering each recv with the next scripted chunk."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.sent: list[bytes] = []

    def close(self) -> None:  # the dump closes each socket (_socket.socket has no __exit__)
        return None

    def settimeout(self, seconds: float | None) -> None:
        return None

    def sendto(self, data: bytes, address: Any) -> int:
        self.sent.append(data)
        return len(data)

    def recv_into(self, buffer: bytearray) -> int:
        chunk = self.chunks.pop(0)
        buffer[: len(chunk)] = chunk
        return len(chunk)


def factory(*dumps: list[bytes]) -> tuple[Callable[[], Any], list[int]]:
    """Return a socket factory yielding one ScriptedNetlink per dump, and a call counter."""
    calls = [0]
    queue = list(dumps)

    def make() -> Any:
        calls[0] += 1
        return ScriptedNetlink(queue.pop(0))

    return make, calls


def test_interrupted_dump_is_retried_not_trusted() -> None:
    interrupted = [diag_message(1, MULTI | NLM_F_DUMP_INTR) + diag_message(1), done()]
    clean = [diag_message(1) + diag_message(8), diag_message(6) + done()]
    make, calls = factory(interrupted, clean)
    counts, _ipv6 = dump_counts(sock_factory=make, passes=ONE_PASS)
    assert calls[0] == 2
    assert (
        counts[TcpState.ESTABLISHED],
        counts[TcpState.CLOSE_WAIT],
        counts[TcpState.TIME_WAIT],
    ) == (1, 1, 1)


def test_dump_that_never_settles_is_an_error() -> None:
    dumps = [[diag_message(1) + done(MULTI | NLM_F_DUMP_INTR)] for _ in range(MAX_DUMP_ATTEMPTS)]
    make, calls = factory(*dumps)
    with pytest.raises(DumpInterrupted, match="NLM_F_DUMP_INTR"):
        dump_counts(sock_factory=make, passes=ONE_PASS)
    assert calls[0] == MAX_DUMP_ATTEMPTS


def test_kernel_error_is_named() -> None:
    make, _ = factory([error(errno.EPERM)])
    with pytest.raises(SockDiagError, match="dump refused: Operation not permitted"):
        dump_counts(sock_factory=make, passes=ONE_PASS)


def test_unknown_state_is_reported_and_the_rest_counted() -> None:
    from tcptune.inspect.procfs import ProcFS

    make, _ = factory([done()], [diag_message(1) + diag_message(42) + done()])
    snapshot = inspect(ProcFS(FIXTURES / "container-ns"), source=SocketSource.NETLINK, netlink=make)
    assert snapshot.sockets is not None
    assert snapshot.sockets.ipv4[TcpState.ESTABLISHED] == 1
    assert [p.message for p in snapshot.problems] == ["1 sockets in unknown state code 42"]


def _refuse() -> socket.socket:
    raise OSError(errno.EPROTONOSUPPORT, "Protocol not supported")


def test_explicit_netlink_source_reports_failure_without_fallback() -> None:
    from tcptune.inspect.procfs import ProcFS

    snapshot = inspect(
        ProcFS(FIXTURES / "container-ns"), source=SocketSource.NETLINK, netlink=_refuse
    )
    assert snapshot.sockets is None
    assert [(p.source, p.message) for p in snapshot.problems] == [
        ("netlink sock_diag", "protocol not supported (EPROTONOSUPPORT)")
    ]


@pytest.mark.kernel
def test_auto_falls_back_to_procfs_and_says_why(lab: SocketLab) -> None:
    from tcptune.inspect.procfs import ProcFS

    lab.established(2)
    snapshot = inspect(ProcFS(), source=SocketSource.AUTO, netlink=_refuse)
    assert snapshot.sockets is not None
    assert snapshot.sockets.source == "procfs"
    assert snapshot.sockets.ipv4[TcpState.ESTABLISHED] == 4
    assert snapshot.sockets.notes == (
        "netlink sock_diag unavailable (protocol not supported (EPROTONOSUPPORT)); "
        "read /proc/net/tcp",
    )
    assert snapshot.complete


def test_an_interrupted_close_wait_pass_retries_every_pass() -> None:
    from tcptune.inspect.sockdiag import PASSES, details_builder

    clean_tw = [diag_message(6) + done()]
    interrupted_cw = [diag_message(8, MULTI | NLM_F_DUMP_INTR) + done()]
    clean = [[diag_message(6) + done()], [diag_message(8) + done()], [diag_message(1) + done()]]
    sockets: list[ScriptedNetlink] = []
    rest = [diag_message(1) + done()]  # sent at once with the others, then abandoned
    scripted = [clean_tw, interrupted_cw, rest, *clean]

    def make() -> Any:
        sockets.append(ScriptedNetlink(scripted.pop(0)))
        return sockets[-1]

    details = details_builder()
    counts, _ipv6 = dump_counts(details, sock_factory=make)
    assert len(sockets) == 6  # all three at once, CLOSE_WAIT interrupted, all three again
    assert [counts[6], counts[8], counts[1]] == [1, 1, 1]  # the retry's counts only
    assert details.build().close_wait == 1
    sent = [struct.unpack_from("=BBBB48xI", s.sent[0], 16) for s in sockets]
    asked = [(states, ext) for _family, _src, _dst, ext, states in sent]
    assert asked == [*PASSES, *PASSES]
    assert PASSES[1] == (1 << TcpState.CLOSE_WAIT, 1 << 1)  # INET_DIAG_INFO - 1


class GatedNetlink(ScriptedNetlink):
    """A scripted socket whose first answer waits until ``gate`` is set by another pass."""

    def __init__(self, chunks: list[bytes], wait: Any = None, opens: Any = None) -> None:
        super().__init__(chunks)
        self.wait, self.opens = wait, opens

    def recv_into(self, buffer: bytearray) -> int:
        if self.wait is not None:
            if not self.wait.wait(timeout=5):
                raise RuntimeError("the other pass was never read: passes ran one by one")
            self.wait = None
        if self.opens is not None:
            self.opens.set()
        return super().recv_into(buffer)


def test_the_passes_are_read_side_by_side() -> None:
    # The first pass answers only once the second has been read: sequential passes
    # would wait for ever (here: fail after 5 s); concurrent ones finish at once.
    import threading

    gate = threading.Event()
    sockets = iter(
        [
            GatedNetlink([diag_message(6) + done()], wait=gate),
            GatedNetlink([diag_message(1) + diag_message(8) + done()], opens=gate),
        ]
    )
    two_passes = ((1 << TcpState.TIME_WAIT.value, 0), (ALL_STATES_MASK, 0))
    counts, _ipv6 = dump_counts(sock_factory=lambda: next(sockets), passes=two_passes)
    assert (counts[TcpState.TIME_WAIT], counts[TcpState.ESTABLISHED]) == (1, 1)
    assert counts[TcpState.CLOSE_WAIT] == 1
