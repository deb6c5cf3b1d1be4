"""Aggregate per-socket facts during a dump, so memory grows with what matters only.

Endpoints are counted under raw, cheap keys (the dump's own bytes) and turned
into Endpoint objects once per distinct key when the details are built.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from tcptune.model.snapshot import Endpoint, Listener, SocketDetails

# inet_diag idiag_timer / /proc/net/tcp "tr" values (net/ipv4/inet_diag.c,
# inet_sk_diag_fill; net/ipv4/tcp_ipv4.c get_tcp4_sock): 1 retransmit,
# 2 keepalive (sk_timer), 3 TIME_WAIT, 4 zero-window probe.
TIMER_KEEPALIVE = 2

Decode = Callable[[Hashable], Endpoint]


def _identity(key: Hashable) -> Endpoint:
    assert isinstance(key, Endpoint)
    return key


class DetailsBuilder:
    """Collect keepalive, FIN_WAIT_2, CLOSE_WAIT, listener and TIME_WAIT facts."""

    def __init__(self, decode: Decode = _identity, keep_inodes: bool = True) -> None:
        self.decode = decode
        # CLOSE_WAIT inodes only serve attribution to processes; without it
        # (--no-owners) they are not kept, so memory stays flat.
        self.keep_inodes = keep_inodes
        self.established_keepalive = 0
        self.fin_wait2_orphaned = 0
        self.fin_wait2_held = 0
        self.close_wait_inodes: dict[int, int] = {}
        self.close_wait_by_local: Counter[Hashable] = Counter()
        self.listeners: list[Listener] = []
        self.time_wait_by_remote: Counter[Hashable] = Counter()

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

    def close_wait(self, local: Hashable, port: int, inode: int) -> None:
        """Count a CLOSE_WAIT socket under its local endpoint and keep its inode."""
        self.close_wait_by_local[local] += 1
        if inode and self.keep_inodes:
            self.close_wait_inodes[inode] = port

    def listener(self, local: Endpoint, queued: int, backlog: int, inode: int, uid: int) -> None:
        """Record a listening socket and its accept queue."""
        self.listeners.append(Listener(local, queued, backlog, inode, uid))

    def time_wait(self, remote: Hashable) -> None:
        """Count a TIME_WAIT socket against its remote endpoint."""
        self.time_wait_by_remote[remote] += 1

    def add_raw(
        self,
        keepalive: int,
        orphaned: int,
        held: int,
        close_wait_inodes: Mapping[int, int],
        close_wait_local: Mapping[Any, int],
        time_wait_remote: Mapping[Any, int],
    ) -> None:
        """Add what a dump loop counted inline (keys in this builder's raw form)."""
        self.established_keepalive += keepalive
        self.fin_wait2_orphaned += orphaned
        self.fin_wait2_held += held
        self.close_wait_inodes.update(close_wait_inodes)
        self.close_wait_by_local.update(close_wait_local)
        self.time_wait_by_remote.update(time_wait_remote)

    def merge(self, other: DetailsBuilder) -> None:
        """Add everything ``other`` collected to this builder (same key kind)."""
        self.established_keepalive += other.established_keepalive
        self.fin_wait2_orphaned += other.fin_wait2_orphaned
        self.fin_wait2_held += other.fin_wait2_held
        self.close_wait_inodes.update(other.close_wait_inodes)
        self.close_wait_by_local.update(other.close_wait_by_local)
        self.listeners.extend(other.listeners)
        self.time_wait_by_remote.update(other.time_wait_by_remote)

    def _decoded(self, counts: Counter[Hashable]) -> dict[Endpoint, int]:
        decoded: Counter[Endpoint] = Counter()
        for key, count in counts.items():
            decoded[self.decode(key)] += count
        return dict(decoded)

    def build(self) -> SocketDetails:
        """Return the frozen details."""
        return SocketDetails(
            established_keepalive=self.established_keepalive,
            fin_wait2_orphaned=self.fin_wait2_orphaned,
            fin_wait2_held=self.fin_wait2_held,
            close_wait_inodes=dict(self.close_wait_inodes),
            close_wait_by_local=self._decoded(self.close_wait_by_local),
            listeners=tuple(self.listeners),
            time_wait_by_remote=self._decoded(self.time_wait_by_remote),
        )
