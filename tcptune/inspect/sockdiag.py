"""Count TCP sockets by state through NETLINK_SOCK_DIAG (inet_diag), streaming.

One dump request covers IPv4 and IPv6: the legacy TCPDIAG_GETSOCK request is
answered with sdiag_family AF_UNSPEC (net/ipv4/inet_diag.c
inet_diag_dump_compat), so the kernel walks its socket hash once per request
instead of once per family as ss does. The requests split the sockets by
kind with the idiag_states filter: TIME_WAIT minisocks; CLOSE_WAIT sockets
with their struct tcp_info (idiag_ext INET_DIAG_INFO: how long each has
waited) when details are wanted; then every other state (full sockets).
Each answer then holds messages of one size and one attribute layout, which
diagparse reads in bulk. Each recv() fills a fixed buffer that is parsed in
place, so memory does not grow with the number of sockets. Layouts:
include/uapi/linux/netlink.h, sock_diag.h and inet_diag.h.

The requests are sent at once, each on its own netlink socket with its own
reader thread, so the kernel's walks run side by side (on a 2-core machine
at 200,000 sockets: 260 ms instead of 380 ms in one run). The passes are
not one atomic view, but neither is one dump: the kernel walks its hash
bucket by bucket while sockets change state. A socket that moves to another
pass's state while the walks run is missed (or seen twice); the window is
the length of one walk (tens of milliseconds at 200,000 sockets).
"""

from __future__ import annotations

# _socket, not socket: the socket module's enum conversions cost ~3 ms at start-up, and a
# netlink dump needs only the socket type and its constants.
import _socket
import queue
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack

from tcptune.inspect.diagparse import (
    INET_DIAG_INFO,
    NLM_F_DUMP_INTR,
    NLM_F_MULTI,
    NLMSG_DONE,
    NLMSG_ERROR,
    TCPDIAG_GETSOCK,
    DumpParser,
    SockDiagError,
    decode_address,
    decode_port,
)
from tcptune.inspect.sockdetails import DetailsBuilder
from tcptune.model.tcpstates import ALL_STATES_MASK, TcpState

NETLINK_SOCK_DIAG = 4  # also NETLINK_INET_DIAG
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH

_NLMSGHDR = struct.Struct("=IHHII")
_NLMSGHDR_SHORT = struct.Struct("=IHH")  # length, type, flags
# Legacy struct inet_diag_req: family, src_len, dst_len, ext, a zeroed 48-byte
# inet_diag_sockid (no filter), states, dbs.
_REQUEST = struct.Struct("=BBBB48xII")
_RECV_BUFFER = 1 << 16  # netlink_recvmsg caps a dump's skb at 32 KiB anyway
MAX_DUMP_ATTEMPTS = 5
TIME_WAIT_MASK = 1 << TcpState.TIME_WAIT.value
CLOSE_WAIT_MASK = 1 << TcpState.CLOSE_WAIT.value
WITH_TCP_INFO = 1 << (INET_DIAG_INFO - 1)  # idiag_ext bit of the INET_DIAG_INFO attribute
Pass = tuple[int, int]  # one request: (idiag_states, idiag_ext)
# The requests of one dump with details: minisocks, CLOSE_WAIT with tcp_info, the rest.
PASSES: tuple[Pass, ...] = (
    (TIME_WAIT_MASK, 0),
    (CLOSE_WAIT_MASK, WITH_TCP_INFO),
    (ALL_STATES_MASK & ~TIME_WAIT_MASK & ~CLOSE_WAIT_MASK, 0),
)
# Counts only: no tcp_info is read, so CLOSE_WAIT goes with the other full sockets.
COUNT_PASSES: tuple[Pass, ...] = ((TIME_WAIT_MASK, 0), (ALL_STATES_MASK & ~TIME_WAIT_MASK, 0))

StateCounts = list[int]  # indexed by the kernel's state byte, 0-255
SockFactory = Callable[[], _socket.socket]  # socket.socket is one too


class DumpInterrupted(SockDiagError):
    """Sockets changed during every attempt; the counts could not be made consistent."""


def request(sequence: int, states: int = ALL_STATES_MASK, ext: int = 0) -> bytes:
    """Return the dump request for TCP sockets of both families in the ``states`` bitmask.

    ``ext`` asks for attributes (bits INET_DIAG_* - 1, include/uapi/linux/inet_diag.h).
    """
    payload = _REQUEST.pack(_socket.AF_UNSPEC, 0, 0, ext, states, 0)
    header = _NLMSGHDR.pack(
        _NLMSGHDR.size + len(payload), TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_DUMP, sequence, 0
    )
    return header + payload


def details_builder(keep_inodes: bool = True) -> DetailsBuilder:
    """Return a DetailsBuilder that decodes this module's raw keys."""
    return DetailsBuilder(keep_inodes, decode_address=decode_address, decode_port=decode_port)


def dump_counts(
    details: DetailsBuilder | None = None,
    *,
    sock_factory: SockFactory | None = None,
    passes: tuple[Pass, ...] | None = None,
) -> tuple[StateCounts, StateCounts]:
    """Return (IPv4, IPv6) counts indexed by state byte, retrying on NLM_F_DUMP_INTR.

    Codes outside 1-11 are counted where they fall, so the caller can report an
    unknown state instead of losing the rest of the dump. ``details`` (made by
    details_builder) receives the per-socket facts of the attempt that counted.
    ``passes`` defaults to PASSES with details and COUNT_PASSES without; an
    interrupted pass makes the whole attempt (every pass) start again.
    """
    if passes is None:
        passes = COUNT_PASSES if details is None else PASSES
    for _attempt in range(MAX_DUMP_ATTEMPTS):
        ipv4, ipv6 = [0] * 256, [0] * 256
        if details is not None:
            details.reset()  # a retried dump starts from nothing
        # One parser per pass (each tracks its own end), all adding to the same counts.
        parsers = [DumpParser(ipv4, ipv6, details) for _pass in passes]
        if _dump_all(parsers, passes, sock_factory):
            return ipv4, ipv6
    raise DumpInterrupted(
        f"socket table kept changing during {MAX_DUMP_ATTEMPTS} dumps (NLM_F_DUMP_INTR)"
    )


def _open() -> _socket.socket:
    return _socket.socket(
        _socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
    )


# The final chunk of a dump ends with NLMSG_DONE: a 20-byte message (header and
# an int) flagged NLM_F_MULTI (net/netlink/af_netlink.c netlink_dump_done).
_DONE_TAIL = struct.Struct("=IHH")
_DONE_LENGTH = 20
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


Chunk = tuple[int, bytearray, int, BaseException | None]  # pass index, buffer, size, error
Reader = Callable[[bytearray], int]  # fill a buffer, return its size; TimeoutError: ask again
Ends = Callable[[bytearray, int], bool]  # whether a chunk is its reader's last


def read_ahead(
    readers: Sequence[Reader],
    ends: Ends,
    buffer_size: int = _RECV_BUFFER,
    queued: int = _QUEUED_CHUNKS,
) -> Iterator[tuple[int, bytearray, int]]:
    """Yield (reader index, buffer, size) as the kernel hands them over, every reader at once.

    The kernel builds each chunk inside the read (a netlink dump's recv(), a
    BPF iterator's read()), which releases the GIL: one thread per reader keeps
    the kernel working while this thread parses, so the kernel's walks run
    side by side on as many cores as there are, and parsing overlaps them. The
    one queue is bounded, so memory stays flat however many sockets there are;
    it ends when every reader has (after the chunk ``ends`` calls its last).
    """
    chunks: queue.Queue[Chunk] = queue.Queue(queued)  # at most ``queued`` buffers waiting
    stop = threading.Event()

    def offer(item: Chunk) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=_READER_POLL)
                return True
            except queue.Full:
                continue
        return False

    def read(index: int, reader: Reader) -> None:
        try:
            while not stop.is_set():
                chunk = bytearray(buffer_size)
                try:
                    size = reader(chunk)
                except TimeoutError:
                    continue
                if not offer((index, chunk, size, None)) or ends(chunk, size):
                    break
        except BaseException as exc:  # handed to the parsing thread, raised there
            offer((index, bytearray(), 0, exc))
        offer((index, bytearray(), -1, None))  # this reader is finished

    threads = []
    for index, reader in enumerate(readers):
        name = f"kernel reader {index}"
        threads.append(threading.Thread(target=read, args=(index, reader), name=name, daemon=True))
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            index, chunk, size, error = chunks.get()
            if error is not None:
                raise error
            if size < 0:
                running -= 1
                continue
            yield index, chunk, size
    finally:
        stop.set()
        for thread in threads:  # drain, so no reader waits out a poll on a full queue
            while thread.is_alive():
                try:
                    chunks.get(timeout=0.01)
                except queue.Empty:
                    continue


def _chunks(socks: list[_socket.socket]) -> Iterator[tuple[int, bytearray, int]]:
    """Yield (pass index, buffer, size) of every dump, read at once (``read_ahead``)."""
    for sock in socks:
        sock.settimeout(_READER_POLL)  # a blocked reader checks that it is still wanted
    return read_ahead([sock.recv_into for sock in socks], _ends_dump)


def _dump_all(
    parsers: list[DumpParser], passes: tuple[Pass, ...], sock_factory: SockFactory | None
) -> bool:
    """Run every pass's request at once; return False if one was interrupted."""
    with ExitStack() as stack:
        socks = []
        for states, ext in passes:
            sock = (sock_factory or _open)()
            stack.callback(sock.close)  # _socket.socket is no context manager
            sock.sendto(request(1, states, ext), (0, 0))
            socks.append(sock)
        pending = len(parsers)
        for index, buffer, size in _chunks(socks):
            parser = parsers[index]
            parser.feed(buffer, size)
            if parser.interrupted:
                return False  # the attempt starts again: no use reading the rest
            if parser.done:
                pending -= 1
                if not pending:
                    return True
    raise SockDiagError("netlink dump ended without NLMSG_DONE")


__all__ = [
    "COUNT_PASSES",
    "MAX_DUMP_ATTEMPTS",
    "NLM_F_DUMP_INTR",
    "PASSES",
    "DumpInterrupted",
    "SockDiagError",
    "details_builder",
    "dump_counts",
    "read_ahead",
    "request",
]
