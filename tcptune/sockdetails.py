"""Aggregate per-socket facts during a dump, so memory grows with what matters only."""

from __future__ import annotations

from collections import Counter

from tcptune.snapshot import CloseWaitSocket, Endpoint, Listener, SocketDetails

# inet_diag idiag_timer / /proc/net/tcp "tr" values (net/ipv4/inet_diag.c,
# inet_sk_diag_fill; net/ipv4/tcp_ipv4.c get_tcp4_sock): 1 retransmit,
# 2 keepalive (sk_timer), 3 TIME_WAIT, 4 zero-window probe.
TIMER_KEEPALIVE = 2


class DetailsBuilder:
    """Collect keepalive, FIN_WAIT_2, CLOSE_WAIT, listener and TIME_WAIT facts."""

    def __init__(self) -> None:
        self.established_keepalive = 0
        self.fin_wait2_orphaned = 0
        self.fin_wait2_held = 0
        self.close_wait: list[CloseWaitSocket] = []
        self.listeners: list[Listener] = []
        self.time_wait_by_remote: Counter[Endpoint] = Counter()

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

    def close_wait_socket(self, local: Endpoint, remote: Endpoint, inode: int, uid: int) -> None:
        """Record a CLOSE_WAIT socket for attribution to its owning process."""
        self.close_wait.append(CloseWaitSocket(local, remote, inode, uid))

    def listener(self, local: Endpoint, queued: int, backlog: int, inode: int, uid: int) -> None:
        """Record a listening socket and its accept queue."""
        self.listeners.append(Listener(local, queued, backlog, inode, uid))

    def time_wait(self, remote: Endpoint) -> None:
        """Count a TIME_WAIT socket against its remote endpoint."""
        self.time_wait_by_remote[remote] += 1

    def merge(self, other: DetailsBuilder) -> None:
        """Add everything ``other`` collected (one family's dump) to this builder."""
        self.established_keepalive += other.established_keepalive
        self.fin_wait2_orphaned += other.fin_wait2_orphaned
        self.fin_wait2_held += other.fin_wait2_held
        self.close_wait.extend(other.close_wait)
        self.listeners.extend(other.listeners)
        self.time_wait_by_remote.update(other.time_wait_by_remote)

    def build(self) -> SocketDetails:
        """Return the frozen details."""
        return SocketDetails(
            established_keepalive=self.established_keepalive,
            fin_wait2_orphaned=self.fin_wait2_orphaned,
            fin_wait2_held=self.fin_wait2_held,
            close_wait=tuple(self.close_wait),
            listeners=tuple(self.listeners),
            time_wait_by_remote=dict(self.time_wait_by_remote),
        )
