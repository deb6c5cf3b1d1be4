"""How long CLOSE_WAIT sockets have waited, from struct tcp_info, and the summary per process.

tcpi_last_ack_recv (ms since the last ACK from the peer) equals the time
since the peer's FIN for an owner that sends nothing, the usual leak;
tcpi_last_data_recv is an upper bound (the FIN carries no data). Both are
u32 milliseconds: they wrap after 49.7 days (tcp_get_info() in net/ipv4/tcp.c).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from functools import partial

from tcptune.model.record import record

# Upper bounds of the coarse age distribution, in seconds; the last is open.
AGE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("1m", 60.0),
    ("10m", 600.0),
    ("1h", 3600.0),
    ("1d", 86400.0),
    ("older", float("inf")),
)
WRAP_SECONDS = (1 << 32) / 1000  # 49.7 days


@record
class CloseWaitAges:
    """Every CLOSE_WAIT socket of one dump, in parallel columns.

    Sorted by inode when owners were looked up (inode 0, a connection not
    accepted yet that no process holds, first); in dump order otherwise.
    The ages are tcp_info's u32 milliseconds: since the last ACK received (the
    peer's FIN, for an owner that sends nothing) and the last data received.
    """

    inodes: array[int]
    local_ports: array[int]
    last_ack_ms: array[int]
    last_data_ms: array[int]

    def __post_init__(self) -> None:
        sizes = {len(self.inodes), len(self.local_ports), len(self.last_ack_ms)}
        if len(sizes | {len(self.last_data_ms)}) != 1:
            raise ValueError("CLOSE_WAIT columns differ in length")

    def __len__(self) -> int:
        return len(self.inodes)


_LIMITS_MS = tuple(limit * 1000 for _label, limit in AGE_BUCKETS[:-1])


def bucket_counts_ms(ages_ms: Iterable[float]) -> tuple[int, ...]:
    """Return how many ages in milliseconds fall in each AGE_BUCKETS interval.

    Each age goes to the bucket of the first upper bound above it, counted in C
    (map and Counter) without a sorted copy: a column of 40,000 ages would
    otherwise become a list of 40,000 ints (1.4 MB) for a moment.
    """
    found = Counter(map(partial(bisect_right, _LIMITS_MS), ages_ms))
    return tuple(found[index] for index in range(len(AGE_BUCKETS)))


@record
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


@record
class CloseWaitSummary:
    """Every CLOSE_WAIT socket's age, overall and for the top processes (bounded)."""

    sockets: int
    oldest_seconds: float
    buckets: tuple[int, ...]
    processes: tuple[ProcessAges, ...]  # the top ones by oldest, at most TOP_PROCESSES
    other_processes: int  # process names left out
