"""Count TCP sockets by state through NETLINK_SOCK_DIAG (inet_diag), streaming.

One dump per address family; each recv() fills a fixed buffer that is parsed in
place, so memory does not grow with the number of sockets. Message layouts
come from include/uapi/linux/netlink.h, sock_diag.h and inet_diag.h.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable

from tcptune.snapshot import Endpoint
from tcptune.sockdetails import DetailsBuilder
from tcptune.tcpstates import ALL_STATES_MASK, TcpState

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLM_F_DUMP_INTR = 0x10  # the dump was interrupted by a concurrent change

_NLMSGHDR = struct.Struct("=IHHII")
# struct inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed
# 48-byte inet_diag_sockid (no filter).
_REQUEST = struct.Struct("=BBBxI48x")
# struct inet_diag_msg after the 16-byte nlmsghdr: family, state, timer,
# retrans, sockid (sport, dport big-endian, src[16], dst[16], if, cookie[8]),
# expires, rqueue, wqueue, uid, inode.
_MSG_HEAD = struct.Struct("=BBBB")
_MSG_PORTS = struct.Struct("!HH")
_MSG_TAIL = struct.Struct("=IIIII")
_OFF_STATE = 16 + 1
_OFF_TIMER = 16 + 2
_OFF_PORTS = 16 + 4
_OFF_SRC = 16 + 8
_OFF_DST = 16 + 24
_OFF_TAIL = 16 + 52  # expires, rqueue, wqueue, uid, inode
_RECV_BUFFER = 1 << 16
MAX_DUMP_ATTEMPTS = 5


class SockDiagError(Exception):
    """The netlink dump failed; the message says how."""


class DumpInterrupted(SockDiagError):
    """Sockets changed during every attempt; the counts could not be made consistent."""


def _request(family: int, sequence: int) -> bytes:
    payload = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, ALL_STATES_MASK)
    header = _NLMSGHDR.pack(
        _NLMSGHDR.size + len(payload),
        SOCK_DIAG_BY_FAMILY,
        NLM_F_REQUEST | NLM_F_DUMP,
        sequence,
        0,
    )
    return header + payload


def _address(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    return socket.inet_ntop(socket.AF_INET6, raw)


def _endpoints(family: int, view: memoryview, offset: int) -> tuple[Endpoint, Endpoint]:
    sport, dport = _MSG_PORTS.unpack_from(view, offset + _OFF_PORTS)
    src = bytes(view[offset + _OFF_SRC : offset + _OFF_SRC + 16])
    dst = bytes(view[offset + _OFF_DST : offset + _OFF_DST + 16])
    return Endpoint(_address(family, src), sport), Endpoint(_address(family, dst), dport)


def _detail(builder: DetailsBuilder, family: int, view: memoryview, offset: int) -> None:
    """Feed the socket at ``offset`` to ``builder`` where its state needs details."""
    state = view[offset + _OFF_STATE]
    if state == TcpState.ESTABLISHED:
        builder.established(view[offset + _OFF_TIMER])
        return
    if state not in (TcpState.FIN_WAIT2, TcpState.CLOSE_WAIT, TcpState.LISTEN, TcpState.TIME_WAIT):
        return
    _expires, rqueue, wqueue, uid, inode = _MSG_TAIL.unpack_from(view, offset + _OFF_TAIL)
    if state == TcpState.FIN_WAIT2:
        builder.fin_wait2(inode)
        return
    local, remote = _endpoints(family, view, offset)
    if state == TcpState.CLOSE_WAIT:
        builder.close_wait_socket(local, remote, inode, uid)
    elif state == TcpState.LISTEN:
        builder.listener(local, rqueue, wqueue, inode, uid)
    else:
        builder.time_wait(remote)


def dump_counts(
    family: int,
    details: DetailsBuilder | None = None,
    *,
    sock_factory: Callable[[], socket.socket] | None = None,
) -> list[int]:
    """Return counts indexed by the kernel's state byte (0-255), retrying on NLM_F_DUMP_INTR.

    Codes outside 1-11 are counted where they fall, so the caller can report an
    unknown state instead of losing the rest of the dump.
    """
    for _attempt in range(MAX_DUMP_ATTEMPTS):
        counts = [0] * 256
        builder = DetailsBuilder() if details is not None else None
        if _dump_once(family, counts, builder, sock_factory):
            if details is not None and builder is not None:
                details.merge(builder)
            return counts
    raise DumpInterrupted(
        f"socket table kept changing during {MAX_DUMP_ATTEMPTS} dumps (NLM_F_DUMP_INTR)"
    )


def _open() -> socket.socket:
    return socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
    )


def _dump_once(
    family: int,
    counts: list[int],
    details: DetailsBuilder | None,
    sock_factory: Callable[[], socket.socket] | None,
) -> bool:
    """Run one dump into ``counts``; return False if the kernel flagged it interrupted."""
    sequence = 1
    buffer = bytearray(_RECV_BUFFER)
    view = memoryview(buffer)
    unpack_header = _NLMSGHDR.unpack_from
    interrupted = False
    with (sock_factory or _open)() as sock:
        sock.sendto(_request(family, sequence), (0, 0))
        while True:
            size = sock.recv_into(buffer)
            if size == 0:
                raise SockDiagError("netlink socket closed before the dump finished")
            offset = 0
            while offset + 16 <= size:
                length, kind, flags, _seq, _pid = unpack_header(view, offset)
                if length < 16:
                    raise SockDiagError(f"malformed netlink message (length {length})")
                if flags & NLM_F_DUMP_INTR:
                    interrupted = True
                if kind == SOCK_DIAG_BY_FAMILY:
                    counts[buffer[offset + _OFF_STATE]] += 1
                    if details is not None:
                        _detail(details, family, view, offset)
                elif kind == NLMSG_DONE:
                    return not interrupted
                elif kind == NLMSG_ERROR:
                    (error,) = struct.unpack_from("=i", view, offset + 16)
                    if error == 0:  # an ACK, not an error
                        offset += (length + 3) & ~3
                        continue
                    raise SockDiagError(f"dump refused: {os.strerror(-error)}")
                offset += (length + 3) & ~3
    return not interrupted  # pragma: no cover - the loop only exits by return/raise
