"""Nagios thresholds for `audit --format check`: Monitoring Plugins ranges on the main series.

Range syntax, from the Monitoring Plugins development guidelines
(https://www.monitoring-plugins.org/doc/guidelines.html#THRESHOLDFORMAT):
``10`` alerts outside 0..10; ``10:`` below 10; ``~:10`` above 10 (``~`` is
minus infinity); ``10:20`` outside 10..20; ``@10:20`` inside 10..20, ends
included. A threshold option names the series: ``-w close_wait=100,time_wait=20000``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from tcptune.exitcodes import ExitStatus, UsageError
from tcptune.model.record import record
from tcptune.model.snapshot import Snapshot
from tcptune.model.tcpstates import TcpState

# The series thresholds apply to: perfdata label -> (unit of measure, what it counts, max).
SERIES: Mapping[str, tuple[str, str, int | None]] = {
    "close_wait": ("", "sockets in CLOSE_WAIT", None),
    "time_wait": ("", "sockets in TIME_WAIT", None),
    "orphans": ("", "orphaned sockets (sockstat TCP orphan)", None),
    "port_use": (
        "%",
        "TIME_WAIT sockets to the busiest remote address and port, as a share of "
        "ip_local_port_range (each holds one of that destination's ephemeral ports)",
        100,
    ),
}
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"^(?P<inside>@)?(?:(?P<start>~|{_NUMBER}):)?(?P<end>{_NUMBER})?$")


@record
class Range:
    """One Monitoring Plugins range: alert when a value is outside start..end (inside with @)."""

    start: float
    end: float
    inside: bool
    text: str  # as given, for perfdata

    def alerts(self, value: float) -> bool:
        """Return whether ``value`` raises this threshold's alert."""
        within = self.start <= value <= self.end
        return within if self.inside else not within


def parse_range(text: str) -> Range:
    """Return the range ``text`` in the guidelines' syntax; raise ValueError naming the problem."""
    match = _RANGE.match(text.strip())
    if not text.strip() or match is None or (match["start"] is None and match["end"] is None):
        raise ValueError(f"{text!r} is not a range (10, 10:, ~:10, 10:20 or @10:20)")
    start = match["start"]
    low = -math.inf if start == "~" else float(start) if start is not None else 0.0
    high = float(match["end"]) if match["end"] is not None else math.inf
    if not (text.strip().endswith(":") or match["end"] is not None):
        raise ValueError(f"{text!r} is not a range")
    if low > high:
        raise ValueError(f"{text!r}: the start {low:g} is above the end {high:g}")
    return Range(low, high, match["inside"] is not None, text.strip())


def parse_thresholds(options: Sequence[str], option: str) -> dict[str, Range]:
    """Return LABEL -> Range from ``-w``/``-c`` values like ``close_wait=100,time_wait=20000``."""
    found: dict[str, Range] = {}
    for value in options:
        for item in value.split(","):
            label, sep, text = item.partition("=")
            label = label.strip()
            if not sep:
                raise UsageError(f"{option} {item!r}: give SERIES=RANGE, e.g. close_wait=100")
            if label not in SERIES:
                raise UsageError(
                    f"{option}: no series {label!r}; thresholds apply to {', '.join(SERIES)}"
                )
            if label in found:
                raise UsageError(f"{option}: {label} is given twice")
            try:
                found[label] = parse_range(text)
            except ValueError as exc:
                raise UsageError(f"{option} {label}: {exc}") from exc
    return found


@record
class Thresholds:
    """The warning and critical ranges per series (either may be absent)."""

    warning: Mapping[str, Range]
    critical: Mapping[str, Range]


def series_values(snapshot: Snapshot) -> dict[str, float | None]:
    """Return the value of each threshold series in ``snapshot`` (None: not measured)."""
    sockets = snapshot.sockets
    orphans = snapshot.counters.sockstat.get("TCP", {}).get("orphan")
    port_use: float | None = None
    port_range = snapshot.value("net.ipv4.ip_local_port_range")
    details = sockets.details if sockets is not None else None
    if isinstance(port_range, tuple) and details is not None:
        ports = port_range[1] - port_range[0] + 1
        busiest = max(details.time_wait_by_remote.values(), default=0)
        port_use = round(100 * busiest / ports, 1) if ports > 0 else None
    return {
        "close_wait": None if sockets is None else sockets.total(TcpState.CLOSE_WAIT),
        "time_wait": None if sockets is None else sockets.total(TcpState.TIME_WAIT),
        "orphans": orphans,
        "port_use": port_use,
    }


@record
class Breach:
    """A series whose value raised a threshold."""

    label: str
    value: float
    level: str  # "critical" or "warning"
    range: Range


def breaches(thresholds: Thresholds, values: Mapping[str, float | None]) -> list[Breach]:
    """Return each series past its critical range, else past its warning range."""
    found = []
    for label in SERIES:
        value = values.get(label)
        if value is None:
            continue
        for level, ranges in (("critical", thresholds.critical), ("warning", thresholds.warning)):
            limit = ranges.get(label)
            if limit is not None and limit.alerts(value):
                found.append(Breach(label, value, level, limit))
                break
    return found


# Icinga's order of plugin states, as the audit's exit_status uses it: CRITICAL is worst,
# then UNKNOWN (an incomplete inspection), then WARNING.
_RANK = {ExitStatus.OK: 0, ExitStatus.WARNING: 1, ExitStatus.INCOMPLETE: 2, ExitStatus.CRITICAL: 3}


def check_status(audit_status: ExitStatus, found: Sequence[Breach]) -> ExitStatus:
    """Return the plugin status: the worse of the audit's verdict and the thresholds'."""
    levels = {breach.level for breach in found}
    raised = (
        ExitStatus.CRITICAL
        if "critical" in levels
        else ExitStatus.WARNING
        if "warning" in levels
        else ExitStatus.OK
    )
    return max(audit_status, raised, key=lambda status: _RANK.get(status, 2))


def check_verdict(
    audit_status: ExitStatus, snapshot: Snapshot, thresholds: Thresholds | None
) -> tuple[ExitStatus, list[Breach]]:
    """Return the check's status and the breached thresholds (none without thresholds)."""
    found = breaches(thresholds, series_values(snapshot)) if thresholds else []
    return check_status(audit_status, found), found
