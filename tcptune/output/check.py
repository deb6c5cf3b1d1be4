"""The audit as one Nagios / Monitoring Plugins status line with perfdata (--format check)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcptune.model.findings import Severity
from tcptune.model.snapshot import Snapshot, keepalive_detection_seconds
from tcptune.model.tcpstates import TcpState
from tcptune.output.escape import escape
from tcptune.output.metrics import EXPORTED_COUNTERS, counter_value

if TYPE_CHECKING:
    from tcptune.model.thresholds import Range, Thresholds
    from tcptune.run.audit import AuditResult

CHECK_WORDS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def _plugin_text(text: str) -> str:
    """Return ``text`` on one line without '|', which starts a plugin's perfdata, escaped."""
    return escape(" ".join(text.replace("|", "/").split()))


def _perf(
    label: str, value: float, unit: str, warn: Range | None, crit: Range | None, top: int | None
) -> str:
    """Return one perfdata item, label=value[UOM];[warn];[crit];[min];[max], empty tail cut."""
    fields = [
        f"{value:g}{unit}",
        warn.text if warn else "",
        crit.text if crit else "",
        "0",
        "" if top is None else str(top),
    ]
    return f"{label}=" + ";".join(fields).rstrip(";")


def check_perfdata(snapshot: Snapshot, thresholds: Thresholds | None = None) -> str:
    """Return Nagios perfdata: sockets per state, keepalive detection and counters ('c').

    The threshold series (model/thresholds.py SERIES) carry their warning and
    critical ranges and minimum; orphans and port_use are always given.
    """
    from tcptune.model.thresholds import SERIES, series_values

    values = series_values(snapshot)
    warning = thresholds.warning if thresholds else {}
    critical = thresholds.critical if thresholds else {}

    def item(label: str) -> str | None:
        value = values[label]
        if value is None:
            return None
        unit, _what, top = SERIES[label]
        if label in ("close_wait", "time_wait") and not (label in warning or label in critical):
            return f"{label}={value:g}"  # as before thresholds existed
        return _perf(label, value, unit, warning.get(label), critical.get(label), top)

    items: list[str] = []
    if snapshot.sockets is not None:
        for state in TcpState:
            label = state.label.lower()
            shown = item(label) if label in SERIES else None
            items.append(shown or f"{label}={snapshot.sockets.total(state)}")
        items.append(f"sockets={snapshot.sockets.all_sockets}")
    items += [shown for label in ("orphans", "port_use") if (shown := item(label))]
    detection = keepalive_detection_seconds(snapshot)
    if detection is not None:
        items.append(f"keepalive_detection={detection}s")
    for table, name in EXPORTED_COUNTERS:
        value = counter_value(snapshot, table).get(name)
        if value is not None:
            items.append(f"{name}={value}c")
    return " ".join(items)


def check_line(result: AuditResult, thresholds: Thresholds | None = None) -> str:
    """Return the audit as one Nagios plugin status line with perfdata."""
    from tcptune.exitcodes import plugin_status
    from tcptune.model.thresholds import check_verdict

    snapshot = result.snapshot
    status, found = check_verdict(result.status, snapshot, thresholds)
    parts: list[str] = [
        f"{breach.label} {breach.value:g} ({breach.level}: {breach.range.text})" for breach in found
    ]
    if snapshot.problems:
        first, more = snapshot.problems[0], len(snapshot.problems) - 1
        extra = f" (+{more} more)" if more else ""
        parts.append(f"inspection incomplete: {first.source}: {first.message}{extra}")
    raised = [f for f in result.findings if f.severity >= Severity.WARNING]
    if raised:
        noun = "finding" if len(raised) == 1 else "findings"
        parts.append(f"{len(raised)} {noun}: " + ", ".join(f.key for f in raised))
    elif not parts:
        infos = len(result.findings)
        parts.append("no warnings" + (f" ({infos} info)" if infos else ""))
    word = CHECK_WORDS[plugin_status(status)]
    perfdata = check_perfdata(snapshot, thresholds)
    return f"TCPTUNE {word} - {_plugin_text('; '.join(parts))} | {perfdata}"


def check_error_line(message: str) -> str:
    """Return an error as the plugin's UNKNOWN status line."""
    return f"TCPTUNE UNKNOWN - {_plugin_text(message)}"
