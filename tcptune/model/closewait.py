"""How long CLOSE_WAIT sockets have waited, from struct tcp_info, and the summary per process.

tcpi_last_ack_recv (ms since the last ACK from the peer) equals the time
since the peer's FIN for an owner that sends nothing, the usual leak;
tcpi_last_data_recv is an upper bound (the FIN carries no data). Both are
u32 milliseconds: they wrap after 49.7 days (tcp_get_info() in net/ipv4/tcp.c).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Upper bounds of the coarse age distribution, in seconds; the last is open.
AGE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("1m", 60.0),
    ("10m", 600.0),
    ("1h", 3600.0),
    ("1d", 86400.0),
    ("older", float("inf")),
)
WRAP_SECONDS = (1 << 32) / 1000  # 49.7 days


@dataclass(frozen=True)
class CloseWaitAges:
    """Per CLOSE_WAIT socket inode: (seconds since the peer's FIN, upper bound), one dump."""

    ages: Mapping[int, tuple[float, float]]
    local_ports: Mapping[int, int]  # inode -> local port


def bucket_counts(ages: list[float]) -> tuple[int, ...]:
    """Return how many ages fall in each AGE_BUCKETS interval."""
    counts = [0] * len(AGE_BUCKETS)
    for age in ages:
        for index, (_label, limit) in enumerate(AGE_BUCKETS):
            if age < limit:
                counts[index] += 1
                break
    return tuple(counts)


@dataclass(frozen=True)
class ProcessAges:
    """One process name's CLOSE_WAIT sockets: how many, the oldest, the distribution."""

    name: str
    pids: tuple[int, ...]
    sockets: int
    oldest_seconds: float
    oldest_at_most_seconds: float
    buckets: tuple[int, ...]  # counts per AGE_BUCKETS

    @property
    def last_minute(self) -> int:
        """Return how many entered CLOSE_WAIT in the last minute."""
        return self.buckets[0]

    @property
    def last_hour(self) -> int:
        """Return how many entered CLOSE_WAIT in the last hour."""
        return sum(self.buckets[:3])

    @property
    def leak_per_hour(self) -> float:
        """Return the leak rate estimated from the ages: sockets per hour.

        All younger than an hour: their count over the oldest one's age;
        otherwise the count of the last hour.
        """
        if self.sockets and self.oldest_seconds < 3600:
            return self.sockets / max(self.oldest_seconds, 60.0) * 3600
        return float(self.last_hour)


@dataclass(frozen=True)
class CloseWaitSummary:
    """Every CLOSE_WAIT socket's age, overall and for the top processes (bounded)."""

    sockets: int
    oldest_seconds: float
    buckets: tuple[int, ...]
    processes: tuple[ProcessAges, ...]  # the top ones by oldest, at most TOP_PROCESSES
    other_processes: int  # process names left out
