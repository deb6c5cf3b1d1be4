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
import queue
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterator

from tcptune.inspect.sockdetails import TIMER_KEEPALIVE, DetailsBuilder
from tcptune.model.snapshot import Endpoint
from tcptune.model.tcpstates import ALL_STATES_MASK

NETLINK_SOCK_DIAG = 4  # also NETLINK_INET_DIAG
TCPDIAG_GETSOCK = 18  # the legacy request; replies have the inet_diag_msg layout
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLM_F_DUMP_INTR = 0x10  # the dump was interrupted by a concurrent change

_NLMSGHDR = struct.Struct("=IHHII")
_NLMSGHDR_SHORT = struct.Struct("=IHH")  # length, type, flags: all the loop needs
# Legacy struct inet_diag_req: family, src_len, dst_len, ext, a zeroed 48-byte
# inet_diag_sockid (no filter), states, dbs.
_REQUEST = struct.Struct("=BBBB48xII")
# struct inet_diag_msg follows the 16-byte nlmsghdr. Byte offsets from the
# start of the netlink message (the hot loop uses these numbers literally):
#   16 family  17 state  18 timer  19 retrans
#   20 sport (big-endian)  22 dport (big-endian)  24 src[16]  40 dst[16]
#   56 interface  60 cookie[8]  68 expires  72 rqueue  76 wqueue  80 uid  84 inode
_MSG_PORTS = struct.Struct("!HH")
_MSG_TAIL = struct.Struct("=IIIII")
_OFF_PORTS = 20
_OFF_SRC = 24
_OFF_TAIL = 68  # expires, rqueue, wqueue, uid, inode
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


def decode_key(key: object) -> Endpoint:
    """Turn a raw key from the dump into an Endpoint.

    Keys are (family, port, 16 address bytes) for CLOSE_WAIT local endpoints
    and (family, 2 port bytes + 16 local + 16 remote address bytes) for
    TIME_WAIT remote endpoints: built with one slice each in the hot loop.
    """
    assert isinstance(key, tuple)
    if len(key) == 3:
        family, port, raw = key
        return Endpoint(_address(family, raw), port)
    family, blob = key
    return Endpoint(_address(family, blob[18:34]), blob[0] << 8 | blob[1])


def _listener(builder: DetailsBuilder, buf: bytearray, offset: int, family: int) -> None:
    """Record a LISTEN socket (rare: decoded at once)."""
    _expires, rqueue, wqueue, uid, inode = _MSG_TAIL.unpack_from(buf, offset + _OFF_TAIL)
    sport, _dport = _MSG_PORTS.unpack_from(buf, offset + _OFF_PORTS)
    raw = bytes(buf[offset + _OFF_SRC : offset + _OFF_SRC + 16])
    builder.listener(Endpoint(_address(family, raw), sport), rqueue, wqueue, inode, uid)


def dump_counts(
    details: DetailsBuilder | None = None, *, sock_factory: SockFactory | None = None
) -> tuple[StateCounts, StateCounts]:
    """Return (IPv4, IPv6) counts indexed by state byte, retrying on NLM_F_DUMP_INTR.

    Codes outside 1-11 are counted where they fall, so the caller can report an
    unknown state instead of losing the rest of the dump.
    """
    for _attempt in range(MAX_DUMP_ATTEMPTS):
        ipv4, ipv6 = [0] * 256, [0] * 256
        builder = DetailsBuilder(decode_key, details.keep_inodes) if details is not None else None
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


# The final chunk of a dump ends with NLMSG_DONE: a 20-byte message (header and
# an int) flagged NLM_F_MULTI (net/netlink/af_netlink.c netlink_dump_done).
_DONE_TAIL = struct.Struct("=IHH")
_DONE_LENGTH = 20
NLM_F_MULTI = 0x2
_QUEUED_CHUNKS = 8  # bounds memory at 8 x 64 KiB whatever the socket count
_READER_POLL = 0.5  # seconds: how often a blocked reader checks that it is still wanted


def _ends_dump(chunk: bytearray, size: int) -> bool:
    """Return whether ``chunk`` is the dump's last: it ends in NLMSG_DONE or is an error."""
    if size >= 16 and _NLMSGHDR_SHORT.unpack_from(chunk, 0)[1] == NLMSG_ERROR:
        return True
    if size < _DONE_LENGTH:
        return size == 0
    length, kind, flags = _DONE_TAIL.unpack_from(chunk, size - _DONE_LENGTH)
    return length == _DONE_LENGTH and kind == NLMSG_DONE and bool(flags & NLM_F_MULTI)


def _chunks(sock: socket.socket) -> Iterator[tuple[bytearray, int]]:
    """Yield what the kernel sends, read ahead by a thread so parsing overlaps the kernel.

    The kernel builds each dump chunk inside recv(), which releases the GIL:
    a reader thread keeps recv() going while this thread parses the previous
    chunk, so the wall time is about the larger of the two, not their sum.
    The queue is bounded, so memory stays flat however many sockets there are.
    """
    chunks: queue.Queue[tuple[bytearray, int, BaseException | None]] = queue.Queue(_QUEUED_CHUNKS)
    stop = threading.Event()

    def offer(item: tuple[bytearray, int, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=_READER_POLL)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            while not stop.is_set():
                chunk = bytearray(_RECV_BUFFER)
                try:
                    size = sock.recv_into(chunk)
                except TimeoutError:
                    continue
                if not offer((chunk, size, None)) or _ends_dump(chunk, size):
                    return
        except BaseException as exc:  # handed to the parsing thread, raised there
            offer((bytearray(), 0, exc))

    sock.settimeout(_READER_POLL)
    reader = threading.Thread(target=read, name="sock_diag reader", daemon=True)
    reader.start()
    try:
        while True:
            chunk, size, error = chunks.get()
            if error is not None:
                raise error
            yield chunk, size
    finally:
        stop.set()
        reader.join()


def _dump_once(
    by_family: dict[int, StateCounts],
    details: DetailsBuilder | None,
    sock_factory: SockFactory | None,
) -> bool:
    """Run one dump into the per-family counts; return False if the kernel flagged it.

    This loop runs once per socket on the host, so it is written for speed:
    counting and the per-state details are inline, keys stay raw bytes, and
    only LISTEN sockets (few) are decoded on the spot.
    """
    unpack_header = _NLMSGHDR_SHORT.unpack_from
    from_bytes = int.from_bytes
    byteorder = sys.byteorder  # inet_diag_msg fields after the sockid are host-endian
    ipv4, ipv6 = by_family[socket.AF_INET], by_family[socket.AF_INET6]
    want = details is not None
    keep_inodes = details is not None and details.keep_inodes
    interrupted = False
    keepalive = orphaned = held = 0
    close_wait_inodes: dict[int, int] = {}
    close_wait_local: dict[tuple[int, int, bytes], int] = {}
    time_wait_remote: dict[tuple[int, bytes], int] = {}
    zero = b"\0\0\0\0"
    with (sock_factory or _open)() as sock:
        sock.sendto(request(1), (0, 0))
        for buffer, size in _chunks(sock):
            if size == 0:
                raise SockDiagError("netlink socket closed before the dump finished")
            offset = 0
            while offset + 16 <= size:
                length, kind, flags = unpack_header(buffer, offset)
                if length < 16:
                    raise SockDiagError(f"malformed netlink message (length {length})")
                if flags & NLM_F_DUMP_INTR:
                    interrupted = True
                if kind == TCPDIAG_GETSOCK:
                    family = buffer[offset + 16]
                    state = buffer[offset + 17]
                    if family == socket.AF_INET:
                        ipv4[state] += 1
                    elif family == socket.AF_INET6:
                        ipv6[state] += 1
                    else:
                        raise SockDiagError(f"unexpected address family {family}")
                    if not want:
                        pass
                    elif state == 1:  # ESTABLISHED: is the keepalive timer pending?
                        if buffer[offset + 18] == TIMER_KEEPALIVE:
                            keepalive += 1
                    elif state == 6:  # TIME_WAIT: count per (dport, local, remote) bytes
                        key = (family, bytes(buffer[offset + 22 : offset + 56]))
                        time_wait_remote[key] = time_wait_remote.get(key, 0) + 1
                    elif state == 8:  # CLOSE_WAIT: inode for attribution, local endpoint
                        port = buffer[offset + 20] << 8 | buffer[offset + 21]
                        local = (family, port, bytes(buffer[offset + 24 : offset + 40]))
                        close_wait_local[local] = close_wait_local.get(local, 0) + 1
                        inode = from_bytes(buffer[offset + 84 : offset + 88], byteorder)
                        if inode and keep_inodes:
                            close_wait_inodes[inode] = port
                    elif state == 5:  # FIN_WAIT2: inode 0 means orphaned
                        if buffer[offset + 84 : offset + 88] == zero:
                            orphaned += 1
                        else:
                            held += 1
                    elif state == 10 and details is not None:
                        _listener(details, buffer, offset, family)
                elif kind == NLMSG_DONE:
                    if details is not None:
                        details.add_raw(
                            keepalive,
                            orphaned,
                            held,
                            close_wait_inodes,
                            close_wait_local,
                            time_wait_remote,
                        )
                    return not interrupted
                elif kind == NLMSG_ERROR:
                    (error,) = struct.unpack_from("=i", buffer, offset + 16)
                    if error != 0:  # 0 is an ACK, not an error
                        raise SockDiagError(f"dump refused: {os.strerror(-error)}")
                offset += (length + 3) & ~3
    raise SockDiagError("netlink dump ended without NLMSG_DONE")
