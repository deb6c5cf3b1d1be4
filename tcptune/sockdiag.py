"""Count TCP sockets by state through NETLINK_SOCK_DIAG (inet_diag), streaming.

One dump covers IPv4 and IPv6: the legacy TCPDIAG_GETSOCK request is answered
with sdiag_family AF_UNSPEC (net/ipv4/inet_diag.c inet_diag_dump_compat), so
the kernel walks its socket hash once instead of once per family as ss does.
Each recv() fills a fixed buffer that is parsed in place, so memory does not
grow with the number of sockets. Layouts: include/uapi/linux/netlink.h,
sock_diag.h and inet_diag.h.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable

from tcptune.snapshot import Endpoint
from tcptune.sockdetails import DetailsBuilder
from tcptune.tcpstates import ALL_STATES_MASK, TcpState

NETLINK_SOCK_DIAG = 4  # also NETLINK_INET_DIAG
TCPDIAG_GETSOCK = 18  # the legacy request; replies have the inet_diag_msg layout
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLM_F_DUMP_INTR = 0x10  # the dump was interrupted by a concurrent change

_NLMSGHDR = struct.Struct("=IHHII")
# Legacy struct inet_diag_req: family, src_len, dst_len, ext, a zeroed 48-byte
# inet_diag_sockid (no filter), states, dbs.
_REQUEST = struct.Struct("=BBBB48xII")
# struct inet_diag_msg after the 16-byte nlmsghdr: family, state, timer,
# retrans, sockid (sport, dport big-endian, src[16], dst[16], if, cookie[8]),
# expires, rqueue, wqueue, uid, inode.
_MSG_PORTS = struct.Struct("!HH")
_MSG_TAIL = struct.Struct("=IIIII")
_OFF_FAMILY = 16
_OFF_STATE = 16 + 1
_OFF_TIMER = 16 + 2
_OFF_PORTS = 16 + 4
_OFF_SRC = 16 + 8
_OFF_DST = 16 + 24
_OFF_TAIL = 16 + 52  # expires, rqueue, wqueue, uid, inode
_RECV_BUFFER = 1 << 16
MAX_DUMP_ATTEMPTS = 5

StateCounts = list[int]  # indexed by the kernel's state byte, 0-255
SockFactory = Callable[[], socket.socket]


class SockDiagError(Exception):
    """The netlink dump failed; the message says how."""


class DumpInterrupted(SockDiagError):
    """Sockets changed during every attempt; the counts could not be made consistent."""


def request(sequence: int) -> bytes:
    """Return the dump request for TCP sockets of both families in every state."""
    payload = _REQUEST.pack(socket.AF_UNSPEC, 0, 0, 0, ALL_STATES_MASK, 0)
    header = _NLMSGHDR.pack(
        _NLMSGHDR.size + len(payload), TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_DUMP, sequence, 0
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


def _detail(builder: DetailsBuilder, view: memoryview, offset: int) -> None:
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
    local, remote = _endpoints(view[offset + _OFF_FAMILY], view, offset)
    if state == TcpState.CLOSE_WAIT:
        builder.close_wait_socket(local, remote, inode, uid)
    elif state == TcpState.LISTEN:
        builder.listener(local, rqueue, wqueue, inode, uid)
    else:
        builder.time_wait(remote)


def dump_counts(
    details: DetailsBuilder | None = None, *, sock_factory: SockFactory | None = None
) -> tuple[StateCounts, StateCounts]:
    """Return (IPv4, IPv6) counts indexed by state byte, retrying on NLM_F_DUMP_INTR.

    Codes outside 1-11 are counted where they fall, so the caller can report an
    unknown state instead of losing the rest of the dump.
    """
    for _attempt in range(MAX_DUMP_ATTEMPTS):
        ipv4, ipv6 = [0] * 256, [0] * 256
        builder = DetailsBuilder() if details is not None else None
        if _dump_once({socket.AF_INET: ipv4, socket.AF_INET6: ipv6}, builder, sock_factory):
            if details is not None and builder is not None:
                details.merge(builder)
            return ipv4, ipv6
    raise DumpInterrupted(
        f"socket table kept changing during {MAX_DUMP_ATTEMPTS} dumps (NLM_F_DUMP_INTR)"
    )


def _open() -> socket.socket:
    return socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
    )


def _dump_once(
    by_family: dict[int, StateCounts],
    details: DetailsBuilder | None,
    sock_factory: SockFactory | None,
) -> bool:
    """Run one dump into the per-family counts; return False if the kernel flagged it."""
    buffer = bytearray(_RECV_BUFFER)
    view = memoryview(buffer)
    unpack_header = _NLMSGHDR.unpack_from
    interrupted = False
    with (sock_factory or _open)() as sock:
        sock.sendto(request(1), (0, 0))
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
                if kind == TCPDIAG_GETSOCK:
                    counts = by_family.get(buffer[offset + _OFF_FAMILY])
                    if counts is None:
                        raise SockDiagError(f"unexpected family {buffer[offset + _OFF_FAMILY]}")
                    counts[buffer[offset + _OFF_STATE]] += 1
                    if details is not None:
                        _detail(details, view, offset)
                elif kind == NLMSG_DONE:
                    return not interrupted
                elif kind == NLMSG_ERROR:
                    (error,) = struct.unpack_from("=i", view, offset + 16)
                    if error != 0:  # 0 is an ACK, not an error
                        raise SockDiagError(f"dump refused: {os.strerror(-error)}")
                offset += (length + 3) & ~3
