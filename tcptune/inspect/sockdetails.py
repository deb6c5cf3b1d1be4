"""Aggregate per-socket facts during a dump in memory that does not grow with the sockets.

Everything keyed by an endpoint goes into a fixed-size heavy-hitters summary
(tcptune.model.heavyhitters): TIME_WAIT by local port, by remote address and
by remote endpoint, CLOSE_WAIT by local endpoint. Keys stay in the dump's raw
form (ints, tuples of ints) and are decoded once per kept key at the end.
Only CLOSE_WAIT sockets are kept per socket, in compact columns (inode,
local port and, from tcp_info, the ms since the last ACK and data received:
18 bytes each), sorted by inode once when owners are looked up.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from tcptune.model.closewait import CloseWaitAges
from tcptune.model.heavyhitters import DEFAULT_CAPACITY, HeavyHitters
from tcptune.model.holding import sort_order, take
from tcptune.model.snapshot import Endpoint, InodePorts, Listener, SocketDetails

# inet_diag idiag_timer / /proc/net/tcp "tr" values (net/ipv4/inet_diag.c,
# inet_sk_diag_fill; net/ipv4/tcp_ipv4.c get_tcp4_sock): 1 retransmit,
# 2 keepalive (sk_timer), 3 TIME_WAIT, 4 zero-window probe.
TIMER_KEEPALIVE = 2

DecodeAddress = Callable[[Any], str]
DecodePort = Callable[[int], int]


def _same_address(key: Any) -> str:
    assert isinstance(key, str)
    return key


def _same_port(key: int) -> int:
    return key


class DetailsBuilder:
    """Collect keepalive, FIN_WAIT_2, CLOSE_WAIT, listener and TIME_WAIT facts.

    ``decode_address`` and ``decode_port`` turn raw keys into text and port
    numbers when the details are built; the defaults take keys that are
    already an address string and a port number (the /proc/net/tcp parser's).
    """

    def __init__(
        self,
        keep_inodes: bool = True,
        *,
        decode_address: DecodeAddress = _same_address,
        decode_port: DecodePort = _same_port,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.decode_address = decode_address
        self.decode_port = decode_port
        self.capacity = capacity
        # CLOSE_WAIT inodes serve attribution to processes; without it
        # (--no-owners) the details show none (the ages' columns keep them).
        self.keep_inodes = keep_inodes
        self.reset()

    def reset(self) -> None:
        """Forget everything collected (a retried dump starts again)."""
        capacity = self.capacity
        self.established_keepalive = 0
        self.fin_wait2_orphaned = 0
        self.fin_wait2_held = 0
        # CLOSE_WAIT columns in dump order (inode 0: not accepted yet), parallel
        self.close_wait_inodes = array("Q")
        self.close_wait_ports = array("H")  # decoded port numbers
        self.close_wait_last_ack = array("I")  # tcp_info ms, only from a dump that sent it
        self.close_wait_last_data = array("I")
        self.close_wait_by_local: HeavyHitters[Hashable] = HeavyHitters(capacity)
        self.listeners: list[Listener] = []
        self.time_wait_by_remote: HeavyHitters[Hashable] = HeavyHitters(capacity)
        self.time_wait_by_remote_address: HeavyHitters[Hashable] = HeavyHitters(capacity)
        self.time_wait_by_local_port: HeavyHitters[int] = HeavyHitters(capacity)

    def established(self, timer: int) -> None:
        """Count an ESTABLISHED socket and whether its keepalive timer is pending."""
        if timer == TIMER_KEEPALIVE:
            self.established_keepalive += 1

    def fin_wait2(self, inode: int) -> None:
        """Count a FIN_WAIT_2 socket; inode 0 means no process holds it (orphaned)."""
        if inode == 0:
            self.fin_wait2_orphaned += 1
        else:
            self.fin_wait2_held += 1

    def close_wait(
        self,
        address: Hashable,
        port_key: int,
        port: int,
        inode: int,
        ages: tuple[int, int] | None = None,
    ) -> None:
        """Count a CLOSE_WAIT socket under its local endpoint; keep its inode, port and ages.

        ``ages`` is (ms since the last ACK, ms since the last data) from tcp_info.
        """
        self.close_wait_by_local.add((address, port_key))
        self.close_wait_inodes.append(inode)
        self.close_wait_ports.append(port)
        if ages is not None:
            self.close_wait_last_ack.append(ages[0])
            self.close_wait_last_data.append(ages[1])

    def close_wait_bulk(
        self,
        endpoints: Iterable[tuple[Hashable, int]],
        count: int,
        inodes: array[int],
        ports: array[int],
        last_ack: array[int],
        last_data: array[int],
        shared: tuple[Hashable, int] | None = None,
    ) -> None:
        """Count ``count`` CLOSE_WAIT sockets at once (the columns in step).

        ``shared`` is the one local endpoint of them all, when the caller saw
        that it is (``endpoints`` is then not read): counted with one add.
        """
        if shared is not None:
            self.close_wait_by_local.add(shared, count)
        else:
            self.close_wait_by_local.add_all(endpoints, count)
        self.close_wait_inodes.extend(inodes)
        self.close_wait_ports.extend(ports)
        self.close_wait_last_ack.extend(last_ack)
        self.close_wait_last_data.extend(last_data)

    def convert_ages(self, convert: Callable[[array[int]], array[int]]) -> None:
        """Turn the CLOSE_WAIT ages into ms when a producer collected them in other units."""
        self.close_wait_last_ack = convert(self.close_wait_last_ack)
        self.close_wait_last_data = convert(self.close_wait_last_data)

    def listener(self, local: Endpoint, queued: int, backlog: int, inode: int, uid: int) -> None:
        """Record a listening socket and its accept queue."""
        self.listeners.append(Listener(local, queued, backlog, inode, uid))

    def time_wait(self, local_port: int, address: Hashable, port_key: int) -> None:
        """Count a TIME_WAIT socket by local port, remote address and remote endpoint."""
        self.time_wait_by_local_port.add(local_port)
        self.time_wait_by_remote_address.add(address)
        self.time_wait_by_remote.add((address, port_key))

    def _endpoint(self, key: tuple[Any, int]) -> Endpoint:
        return Endpoint(self.decode_address(key[0]), self.decode_port(key[1]))

    def _sorted_close_wait(self) -> tuple[CloseWaitAges | None, InodePorts]:
        """Return the CLOSE_WAIT ages (if every socket has them) and the inodes for owners.

        With owners the columns are sorted by inode once (the holder join walks
        them in order); without, they stay in dump order and no inode is shown.
        """
        inodes, ports = self.close_wait_inodes, self.close_wait_ports
        ack, data = self.close_wait_last_ack, self.close_wait_last_data
        aged = bool(inodes) and len(ack) == len(inodes) == len(data)
        if self.keep_inodes and len(inodes) > 1:
            order = sort_order(inodes)  # the dump's order: the socket hash's
            inodes, ports = take(inodes, order), take(ports, order)
            if aged:
                ack, data = take(ack, order), take(data, order)
            del order
        ages = CloseWaitAges(inodes, ports, ack, data) if aged else None
        if not self.keep_inodes:
            return ages, InodePorts()
        unaccepted = bisect_right(inodes, 0)  # inode 0: no process can hold it yet
        if unaccepted:
            return ages, InodePorts(inodes[unaccepted:], ports[unaccepted:])
        return ages, InodePorts(inodes, ports)

    def build(self) -> SocketDetails:
        """Return the frozen details."""
        ages, close_wait = self._sorted_close_wait()
        return SocketDetails(
            established_keepalive=self.established_keepalive,
            fin_wait2_orphaned=self.fin_wait2_orphaned,
            fin_wait2_held=self.fin_wait2_held,
            close_wait_inodes=close_wait,
            close_wait_by_local=self.close_wait_by_local.freeze(self._endpoint),  # type: ignore[arg-type]
            listeners=tuple(self.listeners),
            time_wait_by_remote=self.time_wait_by_remote.freeze(self._endpoint),  # type: ignore[arg-type]
            time_wait_by_remote_address=self.time_wait_by_remote_address.freeze(
                self.decode_address
            ),
            time_wait_by_local_port=self.time_wait_by_local_port.freeze(self.decode_port),
            close_wait_ages=ages,
        )
