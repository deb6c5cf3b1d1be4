"""Parse sock_diag dump chunks: in bulk when the messages have one size, else one by one.

A dump filtered to sockets of one kind (TIME_WAIT minisocks; full sockets)
sends messages of a single size, so a chunk is an array of fixed-size
records: the state byte of every message sits at a fixed stride, and
strided memoryviews count states and pull out ports, addresses and inodes
in C, with no Python object per message. Whether a chunk is such an array
is checked exactly: each header at offset k x size must announce that size
(so it is a real message boundary, by induction) and the dump's message
type. Any other chunk (mixed sizes, the final NLMSG_DONE, an error,
NLM_F_DUMP_INTR) goes through the message-by-message loop.

CLOSE_WAIT sockets come with their struct tcp_info (an INET_DIAG_INFO
attribute) for their ages. A bulk chunk of them is read at fixed offsets
only once every attribute header up to and including INET_DIAG_INFO sits,
with the same length and type, at the same offset in every message (so
each is a real attribute boundary, by induction again); otherwise the chunk
goes message by message, each message's attributes walked. A producer that
writes the two ages at a fixed offset of every message instead (the BPF
walk's records, inspect/bpf/tcpdetails.py) names that offset (``ages_at``).

Raw keys: a port is the native-order integer of its two big-endian bytes
(decode_port turns it into the number), an IPv4 address the native-order
integer of its four bytes, an IPv6 address a tuple of four such integers
(decode_address). Layouts: include/uapi/linux/netlink.h, inet_diag.h.
"""

from __future__ import annotations

import _socket  # not socket: see sockdiag.py
import os
import struct
import sys
from array import array
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from itertools import compress
from typing import Any

from tcptune.inspect.sockdetails import TIMER_KEEPALIVE, DetailsBuilder
from tcptune.model.heavyhitters import add_column, single_value
from tcptune.model.snapshot import Endpoint

TCPDIAG_GETSOCK = 18  # the legacy request; replies have the inet_diag_msg layout
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_MULTI = 0x2
NLM_F_DUMP_INTR = 0x10  # the dump was interrupted by a concurrent change
AF_INET, AF_INET6 = _socket.AF_INET, _socket.AF_INET6
# Byte offsets from the start of a netlink message (16-byte nlmsghdr, then
# struct inet_diag_msg): 16 family 17 state 18 timer 19 retrans 20 sport
# 22 dport (both big-endian) 24 src[16] 40 dst[16] 56 interface 60 cookie
# 68 expires 72 rqueue 76 wqueue 80 uid 84 inode (host-endian u32s).
MIN_MESSAGE = 88
_HEADER = struct.Struct("=IHH")
_PORT = struct.Struct("=H")
_IPV4 = struct.Struct("=I")
_IPV6 = struct.Struct("=4I")
_TAIL = struct.Struct("=IIIII")  # expires, rqueue, wqueue, uid, inode
_ERROR = struct.Struct("=i")
_AGES = struct.Struct("=II")  # a fixed-offset (last data, last ACK) pair
_ATTR = struct.Struct("=HH")  # struct rtattr / nlattr: length (header included), type
INET_DIAG_INFO = 2  # enum inet_diag_attr: struct tcp_info
# struct tcp_info (include/uapi/linux/tcp.h): u32 milliseconds since the last
# data and the last ACK received (tcp_get_info() in net/ipv4/tcp.c)
LAST_DATA_RECV, LAST_ACK_RECV = 52, 56
_LITTLE = sys.byteorder == "little"
_KEEPALIVE_PAIR = (1 | TIMER_KEEPALIVE << 8) if _LITTLE else (1 << 8 | TIMER_KEEPALIVE)
_KIND = struct.pack("=HH", TCPDIAG_GETSOCK, NLM_F_MULTI)  # a dump part, not interrupted
_BULK_MIN = 8  # fewer messages than this are not worth the set-up
# translate() tables that turn a chunk's state bytes into 0/1 selectors.
_SELECT = {state: bytes(int(code == state) for code in range(256)) for state in (5, 6, 8)}


class SockDiagError(Exception):
    """The netlink dump failed; the message says how."""


def decode_port(raw: int) -> int:
    """Return the port number of a raw port key (two big-endian bytes read natively)."""
    return int.from_bytes(raw.to_bytes(2, sys.byteorder), "big")


def decode_address(raw: Any) -> str:
    """Return the text of a raw address key: an int for IPv4, four ints for IPv6."""
    if isinstance(raw, int):
        return _socket.inet_ntop(AF_INET, raw.to_bytes(4, sys.byteorder))
    return _socket.inet_ntop(AF_INET6, _IPV6.pack(*raw))


class DumpParser:
    """Count states per family and collect details from the chunks of one dump."""

    def __init__(
        self,
        ipv4: list[int],
        ipv6: list[int],
        details: DetailsBuilder | None = None,
        ages_at: int | None = None,
    ) -> None:
        self.by_family = {AF_INET: ipv4, AF_INET6: ipv6}
        self.details = details
        # Where every message carries a CLOSE_WAIT socket's (last data, last ACK)
        # u32 pair, for a producer that writes them at a fixed offset (the BPF
        # walk, inspect/bpf/tcpdetails.py) instead of in an INET_DIAG_INFO tcp_info.
        self.ages_at = ages_at
        self.interrupted = False
        self.done = False

    # ------------------------------------------------------------------ chunks

    def feed(self, buf: bytearray, size: int) -> None:
        """Parse one chunk of ``size`` bytes; sets ``done`` at NLMSG_DONE."""
        if size == 0:
            raise SockDiagError("netlink socket closed before the dump finished")
        if size >= MIN_MESSAGE:
            length, kind, _flags = _HEADER.unpack_from(buf, 0)
            if kind == TCPDIAG_GETSOCK and length >= MIN_MESSAGE and length % 4 == 0:
                count = size // length
                if (
                    count >= _BULK_MIN
                    and self._uniform(buf, length, count)
                    and self._bulk(memoryview(buf)[: count * length], length, count)
                ):
                    if count * length < size:
                        self._messages(buf, count * length, size)
                    return
        self._messages(buf, 0, size)

    @staticmethod
    def _uniform(buf: bytearray, length: int, count: int) -> bool:
        view = memoryview(buf)[: count * length]
        stride = length // 4
        lengths = view.cast("I")[::stride].tobytes()
        kinds = view[4 : (count - 1) * length + 8].cast("I")[::stride].tobytes()
        return lengths == _IPV4.pack(length) * count and kinds == _KIND * count

    def _bulk(self, view: memoryview, length: int, count: int) -> bool:
        """Count and collect a uniform chunk; False (nothing done) if it needs the slow path."""
        families = view[16::length].tobytes()
        states = view[17::length].tobytes()
        ages = (-1, -1)  # offsets of the last ACK and last data u32s
        if self.details is not None and 8 in states:  # CLOSE_WAIT: ages at a fixed offset?
            ages = self._ages_offsets(view, length, count)
            if ages[0] < 0:
                return False
        family = families[0]
        if families.count(family) != count or family not in self.by_family:
            self._mixed(view, length, count, families, states)
            return True
        counts = self.by_family[family]
        histogram = _histogram(states)
        for state, number in histogram.items():
            counts[state] += number
        if self.details is not None:
            self._bulk_details(view, length, count, family, states, histogram, ages)
        return True

    def _ages_offsets(self, view: memoryview, length: int, count: int) -> tuple[int, int]:
        """Return where every message holds (last ACK, last data), or (-1, -1) if not one place."""
        if self.ages_at is not None:
            return self.ages_at + 4, self.ages_at
        info = _info_offset(view, length, count)
        if info < 0:
            return -1, -1
        return info + LAST_ACK_RECV, info + LAST_DATA_RECV

    def _mixed(
        self, view: memoryview, length: int, count: int, families: bytes, states: bytes
    ) -> None:
        """A chunk of IPv4 and IPv6 messages: count in bulk, collect details one by one."""
        for (family, state), number in Counter(zip(families, states, strict=True)).items():
            if family not in self.by_family:
                raise SockDiagError(f"unexpected address family {family}")
            self.by_family[family][state] += number
        if self.details is not None:
            buf = view.obj
            assert isinstance(buf, bytearray)
            for index in range(count):
                self._detail(buf, index * length, length, families[index], states[index])

    def _bulk_details(
        self,
        view: memoryview,
        length: int,
        count: int,
        family: int,
        states: bytes,
        histogram: Counter[int],
        ages: tuple[int, int],
    ) -> None:
        details = self.details
        assert details is not None
        end = count * length
        half, quarter = length // 2, length // 4
        Column = Callable[[int], memoryview]
        whole: list[bytes] = []  # the chunk as bytes, once a state is copied out of it

        def columns(state: int) -> tuple[Column, Column]:
            """Return u16 and u32 column readers over the chunk's ``state`` messages only.

            In a chunk of several states (the BPF walk's, in hash order) the
            state's messages are first copied together (one C-level join), so
            no column holds, and no counter iterates, the other states' values.
            """
            part = view
            if histogram[state] != count:
                if not whole:
                    whole.append(view.tobytes())  # bytes slice and join fastest
                chosen = compress(_record_slices(length, count), states.translate(_SELECT[state]))
                part = memoryview(b"".join(map(whole[0].__getitem__, chosen)))
            last = len(part) - length

            def u16(offset: int) -> memoryview:
                return part[offset : offset + last + 2].cast("H")[::half]

            def u32(offset: int) -> memoryview:
                return part[offset : offset + last + 4].cast("I")[::quarter]

            return u16, u32

        def addresses(u32: Column, offset: int) -> Any:
            if family == AF_INET:
                return u32(offset)
            return zip(u32(offset), u32(offset + 4), u32(offset + 8), u32(offset + 12), strict=True)

        if histogram.get(1):  # ESTABLISHED with the keepalive timer pending
            pairs = array("H", view[17 : 17 + end - length + 2].cast("H")[::half].tobytes())
            details.established_keepalive += pairs.count(_KEEPALIVE_PAIR)
        if number := histogram.get(6):  # TIME_WAIT
            u16, u32 = columns(6)
            add_column(details.time_wait_by_local_port, u16(20), number)
            details.time_wait_by_remote_address.add_all(addresses(u32, 40), number)
            details.time_wait_by_remote.add_all(
                zip(addresses(u32, 40), u16(22), strict=True), number
            )
        if number := histogram.get(8):  # CLOSE_WAIT: local endpoint, inode and tcp_info ages
            u16, u32 = columns(8)
            endpoints = zip(addresses(u32, 24), u16(20), strict=True)
            shared = None  # a server's CLOSE_WAIT sockets usually share one local endpoint
            if family == AF_INET:
                address, port = single_value(u32(24)), single_value(u16(20))
                if address is not None and port is not None:
                    shared = (address, port)
            ports = array("H", u16(20))
            if _LITTLE:
                ports.byteswap()
            details.close_wait_bulk(
                endpoints,
                number,
                array("Q", u32(84)),
                ports,
                array("I", u32(ages[0])),
                array("I", u32(ages[1])),
                shared,
            )
        if number := histogram.get(5):  # FIN_WAIT_2: inode 0 means orphaned
            orphaned = array("I", columns(5)[1](84)).count(0)
            details.fin_wait2_orphaned += orphaned
            details.fin_wait2_held += number - orphaned
        if histogram.get(10):  # LISTEN: few, decoded one by one
            buf = view.obj
            assert isinstance(buf, bytearray)
            index = states.find(10)
            while index >= 0:
                _listener(details, buf, index * length, family)
                index = states.find(10, index + 1)

    # ------------------------------------------------------------- one by one

    def _messages(self, buf: bytearray, offset: int, size: int) -> None:
        by_family = self.by_family
        want = self.details is not None
        while offset + 16 <= size:
            length, kind, flags = _HEADER.unpack_from(buf, offset)
            if length < 16:
                raise SockDiagError(f"malformed netlink message (length {length})")
            if flags & NLM_F_DUMP_INTR:
                self.interrupted = True
            if kind == TCPDIAG_GETSOCK:
                family, state = buf[offset + 16], buf[offset + 17]
                counts = by_family.get(family)
                if counts is None:
                    raise SockDiagError(f"unexpected address family {family}")
                counts[state] += 1
                if want:
                    self._detail(buf, offset, length, family, state)
            elif kind == NLMSG_DONE:
                self.done = True
                return
            elif kind == NLMSG_ERROR:
                (error,) = _ERROR.unpack_from(buf, offset + 16)
                if error != 0:  # 0 is an ACK, not an error
                    raise SockDiagError(f"dump refused: {os.strerror(-error)}")
            offset += (length + 3) & ~3

    def _detail(self, buf: bytearray, offset: int, length: int, family: int, state: int) -> None:
        details = self.details
        assert details is not None
        if state == 1:
            details.established(buf[offset + 18])
        elif state == 6:
            details.time_wait(
                _PORT.unpack_from(buf, offset + 20)[0],
                _address_key(buf, offset + 40, family),
                _PORT.unpack_from(buf, offset + 22)[0],
            )
        elif state == 8:
            raw_port = _PORT.unpack_from(buf, offset + 20)[0]
            details.close_wait(
                _address_key(buf, offset + 24, family),
                raw_port,
                decode_port(raw_port),
                _IPV4.unpack_from(buf, offset + 84)[0],
                _ages(buf, offset, length, self.ages_at),
            )
        elif state == 5:
            details.fin_wait2(_IPV4.unpack_from(buf, offset + 84)[0])
        elif state == 10:
            _listener(details, buf, offset, family)


def _info_offset(view: memoryview, length: int, count: int) -> int:
    """Return where tcp_info starts in every message of a uniform chunk, or -1 if not one place.

    The first message's attributes are walked up to INET_DIAG_INFO; each header
    found must recur, same length and type, at the same offset in every message.
    """
    position = MIN_MESSAGE
    stride = length // 4
    while position + _ATTR.size <= length:
        size, kind = _ATTR.unpack_from(view, position)
        if size < _ATTR.size or position + size > length:
            return -1
        header = view[position : position + 4].tobytes()
        column = view[position : position + (count - 1) * length + 4].cast("I")[::stride]
        if column.tobytes() != header * count:
            return -1
        if kind == INET_DIAG_INFO:
            return position + 4 if size >= 4 + LAST_ACK_RECV + 4 else -1
        position += (size + 3) & ~3
    return -1


def _ages(
    buf: bytearray, offset: int, length: int, ages_at: int | None = None
) -> tuple[int, int] | None:
    """Return one message's (last_ack_recv, last_data_recv) from tcp_info, if it has one.

    ``ages_at``: the pair sits there in every message (data first), not in an attribute.
    """
    if ages_at is not None:
        if ages_at + 8 > length:
            return None
        data, ack = _AGES.unpack_from(buf, offset + ages_at)
        return ack, data
    position, end = offset + MIN_MESSAGE, offset + length
    while position + _ATTR.size <= end:
        size, kind = _ATTR.unpack_from(buf, position)
        if size < _ATTR.size or position + size > end:
            return None
        if kind == INET_DIAG_INFO:
            if size < 4 + LAST_ACK_RECV + 4:
                return None
            return (
                _IPV4.unpack_from(buf, position + 4 + LAST_ACK_RECV)[0],
                _IPV4.unpack_from(buf, position + 4 + LAST_DATA_RECV)[0],
            )
        position += (size + 3) & ~3
    return None


@lru_cache(maxsize=16)
def _record_slices(length: int, count: int) -> tuple[slice, ...]:
    """Return the slices of a chunk's ``count`` messages of ``length`` bytes (made once)."""
    return tuple(slice(start, start + length) for start in range(0, count * length, length))


def _histogram(states: bytes) -> Counter[int]:
    """Count each state byte with bytes.count (memchr speed), not a Counter walk.

    A chunk of one pass mostly holds one state, so the first code usually
    accounts for every byte: 0.5 us instead of 14 us for a 372-message chunk.
    """
    first = states[0]
    number = states.count(first)
    if number == len(states):
        return Counter({first: number})
    return Counter({code: states.count(code) for code in set(states)})


def _address_key(buf: bytearray, offset: int, family: int) -> Any:
    if family == AF_INET:
        return _IPV4.unpack_from(buf, offset)[0]
    return _IPV6.unpack_from(buf, offset)


def _listener(details: DetailsBuilder, buf: bytearray, offset: int, family: int) -> None:
    """Record a LISTEN socket (rare: decoded at once)."""
    _expires, rqueue, wqueue, uid, inode = _TAIL.unpack_from(buf, offset + 68)
    port = decode_port(_PORT.unpack_from(buf, offset + 20)[0])
    address = decode_address(_address_key(buf, offset + 24, family))
    details.listener(Endpoint(address, port), rqueue, wqueue, inode, uid)
