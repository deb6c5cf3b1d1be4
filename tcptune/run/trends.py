"""Trends for ``tcptune watch``: a window of recent samples, and whether a count is rising.

"Rising" compares a least-squares line through every sample in the window,
not the last refresh with the one before, so a steady leak (+1 CLOSE_WAIT
every 3 s, refreshed every second) is rising on every screen, and a single
+1 is not rising at all.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Iterable, Mapping, Sequence

from tcptune.model.record import record

# A count is rising when the line through the window climbs by at least this many
# sockets across the window: one new socket is noise, two on a line is a direction.
MIN_RISE = 2.0


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Return the least-squares slope (per second) of (seconds, value) points; None if < 2."""
    if len(points) < 2:
        return None
    mean_t = math.fsum(t for t, _v in points) / len(points)
    mean_v = math.fsum(v for _t, v in points) / len(points)
    spread = math.fsum((t - mean_t) ** 2 for t, _v in points)
    if spread == 0:
        return None
    return math.fsum((t - mean_t) * (v - mean_v) for t, v in points) / spread


@record
class Trend:
    """A count over the window: its values oldest first, slope and whether it is rising."""

    values: tuple[int, ...]  # one per refresh in the window, oldest first (the sparkline)
    per_second: float | None  # least-squares slope; None with a single sample
    span: float  # seconds between the window's first and last sample

    @property
    def rise(self) -> float:
        """Return how much the fitted line climbs across the window (negative: falls)."""
        return (self.per_second or 0.0) * self.span

    @property
    def rising(self) -> bool:
        """Return whether the fitted line climbs by at least MIN_RISE across the window."""
        return self.rise >= MIN_RISE


class Window:
    """Samples of named counts taken within the last ``seconds`` (monotonic time)."""

    def __init__(self, seconds: float) -> None:
        """Keep what was sampled within ``seconds`` of the newest sample."""
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"window must be a positive finite number of seconds, got {seconds}")
        self.seconds = seconds
        self._samples: deque[tuple[float, Mapping[Hashable, float]]] = deque()
        self._first: float | None = None

    def add(self, at: float, values: Mapping[Hashable, float]) -> None:
        """Add one refresh's counts taken at monotonic time ``at``; drop the too old."""
        if self._first is None:
            self._first = at
        self._samples.append((at, dict(values)))
        while self._samples and self._samples[0][0] < at - self.seconds:
            self._samples.popleft()

    @property
    def span(self) -> float:
        """Return the seconds the kept samples cover."""
        return self._samples[-1][0] - self._samples[0][0] if self._samples else 0.0

    @property
    def filled(self) -> bool:
        """Return whether sampling has gone on for a whole window."""
        if self._first is None:
            return False
        return self._samples[-1][0] - self._first >= self.seconds

    def trend(self, key: Hashable) -> Trend:
        """Return the trend of ``key`` (a missing sample counts as 0)."""
        points = [(at, float(values.get(key, 0))) for at, values in self._samples]
        start = points[0][0] if points else 0.0
        return Trend(
            tuple(int(value) for _at, value in points),
            slope([(at - start, value) for at, value in points]),
            self.span,
        )

    def increase(self, key: Hashable) -> float | None:
        """Return a counter's growth per second across the window; None with one sample."""
        if len(self._samples) < 2 or self.span <= 0:
            return None
        first, last = self._samples[0][1].get(key), self._samples[-1][1].get(key)
        if first is None or last is None:
            return None
        return max(0.0, last - first) / self.span

    def keys(self) -> Iterable[Hashable]:
        """Return every key seen in the window."""
        seen: dict[Hashable, None] = {}
        for _at, values in self._samples:
            seen.update(dict.fromkeys(values))
        return seen.keys()
