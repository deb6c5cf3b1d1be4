"""tcptune watch frames as log lines, JSON lines and full screens, with sparklines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcptune.run.trends import Trend
    from tcptune.run.watch import Frame

from tcptune.output.common import JSON_SCHEMA_VERSION, iso_time
from tcptune.output.escape import escape

# --------------------------------------------------------------------------- watch

WATCH_ALERT_STYLE = "\x1b[1;31m"  # bold red (ECMA-48 SGR 1 and 31)
WATCH_HEADER_STYLE = "\x1b[1m"
WATCH_RESET = "\x1b[0m"
RISING = "▲"
RISING_ASCII = "^"
# Sparkline levels, lowest first: Unicode's lower block elements (U+2581..U+2588), and
# an ASCII ramp for terminals whose encoding cannot show them.
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_ASCII = "_.:-=+*#"
SPARK_WIDTH = 12  # refreshes a sparkline shows, newest on the right

Segment = tuple[str, str | None]  # text and its SGR style (None: plain)


def sparkline(values: Sequence[int], width: int = SPARK_WIDTH, unicode: bool = True) -> str:
    """Return the last ``width`` values as a sparkline scaled from their min to their max.

    A flat series is drawn at the lowest level, so a line that moves stands out.
    """
    levels = SPARK_BLOCKS if unicode else SPARK_ASCII
    shown = list(values)[-width:]
    if not shown:
        return ""
    low, high = min(shown), max(shown)
    if high == low:
        return levels[0] * len(shown)
    top = len(levels) - 1
    return "".join(levels[round((value - low) * top / (high - low))] for value in shown)


def _watch_rate(rate: float | None) -> str:
    if rate is None:
        return "-"
    if rate == 0:
        return "0"
    return f"{rate:.1f}" if rate < 100 else f"{rate:.0f}"


def watch_line(frame: Frame, unicode: bool = True) -> str:
    """Return one refresh as one log line: counts, rates per second, ▲ on what is rising."""
    mark = RISING if unicode else RISING_ASCII
    words = [iso_time(frame.taken_at)]
    for row in frame.states:
        words.append(f"{row.state.label.lower()}={row.total}{mark if row.alert else ''}")
    words.append(f"total={frame.total}" if frame.states else "sockets=unreadable")
    if frame.orphans is not None:
        words.append(f"orphans={frame.orphans}{mark if frame.orphan_alert else ''}")
    words.append("|")
    for rate in frame.rates:
        if rate.value is not None:
            shown = _watch_rate(rate.per_second)
            unit = "/s" if rate.per_second is not None else ""
            words.append(f"{rate.name}={shown}{unit}{mark if rate.alert else ''}")
    if frame.owners:
        words.append("| close_wait_by_process:")
        words += [f"{escape(o.name)}={o.sockets}{mark if o.alert else ''}" for o in frame.owners]
    if frame.problems:
        words.append("| incomplete: " + "; ".join(frame.problems))
    return " ".join(words)


def _trend_json(trend: Trend | None) -> dict[str, Any] | None:
    if trend is None:
        return None
    return {
        "per_second": None if trend.per_second is None else round(trend.per_second, 4),
        "rising": trend.rising,
        "span_seconds": round(trend.span, 3),
    }


def watch_dict(frame: Frame) -> dict[str, Any]:
    """Return one refresh as JSON-ready data (one object per line with --json)."""
    return {
        "schema": JSON_SCHEMA_VERSION,
        "refresh": frame.number,
        "taken_at": iso_time(frame.taken_at),
        "interval_seconds": frame.interval,
        "window_seconds": frame.window,
        "elapsed_seconds": None if frame.elapsed is None else round(frame.elapsed, 3),
        "complete": not frame.problems,
        "problems": list(frame.problems),
        "source": frame.source,
        "source_notes": list(frame.source_notes),
        "sockets": {
            "total": frame.total,
            "states": {
                row.state.label: {
                    "ipv4": row.ipv4,
                    "ipv6": row.ipv6,
                    "total": row.total,
                    "change": row.change,
                    "trend": _trend_json(row.trend),
                }
                for row in frame.states
            },
        }
        if frame.states
        else None,
        "orphans": None
        if frame.orphans is None
        else {"count": frame.orphans, "tcp_max_orphans": frame.orphan_cap},
        "close_wait_by_process": None
        if frame.owners is None
        else [
            {"process": o.name, "sockets": o.sockets, "trend": _trend_json(o.trend)}
            for o in frame.owners
        ],
        "counters": {
            rate.name: {
                "value": rate.value,
                "per_second": None if rate.per_second is None else round(rate.per_second, 3),
            }
            for rate in frame.rates
            if rate.value is not None
        },
        "tcp_max_tw_buckets": frame.time_wait_cap,
        "alerts": list(frame.alerts),
    }


def watch_json(frame: Frame) -> str:
    """Return one refresh as a single JSON line."""
    import json

    return json.dumps(watch_dict(frame), separators=(",", ":"))


def _watch_state_block(frame: Frame, styled: bool, wide: bool, unicode: bool) -> list[Segment]:
    """Return the state table: IPv4 and IPv6 apart when ``wide``, a sparkline per state."""
    mark = RISING if unicode else RISING_ASCII
    split = f"{'ipv4':>7}{'ipv6':>7}" if wide else ""
    header = f"{'state':<11}{split}{'total':>7}{'+/-':>6} {'trend':<{SPARK_WIDTH}} "
    lines: list[Segment] = [(header, WATCH_HEADER_STYLE)]
    for row in frame.states:
        change = f"{row.change:+d}" if row.change else ""
        marker = mark if row.alert and not styled else " "
        line = sparkline(row.trend.values, unicode=unicode) if row.trend else ""
        split = f"{row.ipv4:>7}{row.ipv6:>7}" if wide else ""
        text = (
            f"{row.state.label:<11}{split}{row.total:>7}{change:>6} {line:<{SPARK_WIDTH}}{marker}"
        )
        lines.append((text, WATCH_ALERT_STYLE if row.alert else None))
    blank = f"{'':>7}{'':>7}" if wide else ""
    total = f"{'total':<11}{blank}{frame.total:>7}{'':>6} {'':<{SPARK_WIDTH}} "
    lines.append((total, WATCH_HEADER_STYLE))
    return lines


def _watch_rate_block(frame: Frame, styled: bool, unicode: bool) -> list[Segment]:
    mark = RISING if unicode else RISING_ASCII
    lines: list[Segment] = [(f"{'counter':<19}{'per s':>8}{'total':>10} ", WATCH_HEADER_STYLE)]
    for rate in frame.rates:
        if rate.value is None:
            continue
        marker = mark if rate.alert and not styled else " "
        text = f"{rate.name:<19}{_watch_rate(rate.per_second):>8}{rate.value:>10}{marker}"
        lines.append((text, WATCH_ALERT_STYLE if rate.alert else None))
    return lines


def _watch_owner_block(frame: Frame, styled: bool, unicode: bool) -> list[Segment]:
    if frame.owners is None:
        return []
    mark = RISING if unicode else RISING_ASCII
    lines: list[Segment] = [
        (f"{'CLOSE_WAIT by process':<24}{'now':>6} {'trend':<{SPARK_WIDTH}} ", WATCH_HEADER_STYLE)
    ]
    if not frame.owners:
        lines.append(("(no process holds a CLOSE_WAIT socket)", None))
    for owner in frame.owners:
        name = escape(owner.name)[:23]
        line = sparkline(owner.trend.values, unicode=unicode)
        marker = mark if owner.alert and not styled else " "
        text = f"{name:<24}{owner.sockets:>6} {line:<{SPARK_WIDTH}}{marker}"
        lines.append((text, WATCH_ALERT_STYLE if owner.alert else None))
    return lines


def _fit(segments: Sequence[Segment], width: int) -> list[Segment]:
    """Cut a line of segments to ``width`` characters."""
    fitted: list[Segment] = []
    room = width
    for text, style in segments:
        if room <= 0:
            break
        fitted.append((text[:room], style))
        room -= len(text[:room])
    return fitted


def _paint(segments: Sequence[Segment], styled: bool) -> str:
    if not styled:
        return "".join(text for text, _style in segments)
    return "".join(f"{style}{text}{WATCH_RESET}" if style else text for text, style in segments)


def _side_by_side(left: list[Segment], right: list[Segment]) -> list[list[Segment]]:
    width = max((len(text) for text, _style in left), default=0)
    rows = []
    for index in range(max(len(left), len(right))):
        state = left[index] if index < len(left) else ("", None)
        rate = right[index] if index < len(right) else ("", None)
        rows.append([(state[0].ljust(width), state[1]), ("  ", None), rate])
    return rows


def _tables(frame: Frame, width: int, styled: bool, unicode: bool) -> list[list[Segment]]:
    """Lay out the state and counter tables: side by side, IPv4/IPv6 apart if they fit."""
    rates = _watch_rate_block(frame, styled, unicode)
    rate_width = max((len(text) for text, _style in rates), default=0)
    if not frame.states:
        return [[line] for line in rates]
    for wide in (True, False):
        states = _watch_state_block(frame, styled, wide, unicode)
        if width >= max(len(text) for text, _style in states) + 2 + rate_width:
            return _side_by_side(states, rates)
    states = _watch_state_block(frame, styled, width >= 60, unicode)
    return [[line] for line in states] + [[]] + [[line] for line in rates]


def watch_screen(frame: Frame, width: int, height: int, styled: bool, unicode: bool = True) -> str:
    """Return one refresh laid out for a ``width``×``height`` terminal.

    What is rising comes first, then the state table (a sparkline of the
    window per state) beside the counter table when they fit (80 columns:
    totals only; 92: IPv4 and IPv6 apart), one above the other otherwise, then
    the processes holding CLOSE_WAIT sockets (--owners). Lines are cut to the
    width and the screen to the height. ``styled`` draws rising rows in bold
    red; without it they carry ▲ (^ with ``unicode`` off, which also draws
    the sparklines in ASCII).
    """
    width, height = max(width, 20), max(height, 3)
    mark = RISING if unicode else RISING_ASCII
    title = (
        f"tcptune watch · every {frame.interval:g} s · window {frame.window:g} s · "
        f"#{frame.number} · {iso_time(frame.taken_at)}"
    )
    if not unicode:
        title = title.replace("·", "-")
    quit_hint = "q quits"
    gap = width - len(title) - len(quit_hint)
    rows: list[list[Segment]] = [
        [(title, WATCH_HEADER_STYLE), (" " * gap + quit_hint if gap > 0 else "", None)]
    ]
    dot = " · " if unicode else " - "
    noun = "socket" if frame.total == 1 else "sockets"
    where = f"{frame.total} {noun} via {frame.source}" if frame.states else "sockets unreadable"
    if frame.time_wait_cap is not None:
        where += f"{dot}tcp_max_tw_buckets {frame.time_wait_cap}"
    if frame.orphans is not None:
        cap = f" of {frame.orphan_cap}" if frame.orphan_cap else ""
        where += f"{dot}orphans {frame.orphans}{cap}"
    if frame.elapsed is None:
        where += f"{dot}rates from the next refresh"
    rows.append([(where, None)])
    # What is rising comes first: on a short terminal the tables are cut, never the alerts.
    for alert in frame.alerts:
        rows.append([(f"{mark} {escape(alert)}", WATCH_ALERT_STYLE)])
    rows += [[(f"incomplete: {problem}", WATCH_ALERT_STYLE)] for problem in frame.problems]
    if not frame.alerts and not frame.problems and frame.elapsed is not None:
        rows.append([("nothing rising", None)])
    rows.append([])
    rows += _tables(frame, width, styled, unicode)
    owners = _watch_owner_block(frame, styled, unicode)
    if owners:
        rows += [[], *([line] for line in owners)]
    if len(rows) > height:
        more = "…" if unicode else "..."
        rows = [*rows[: height - 1], [(f"{more} (enlarge the terminal for the rest)", None)]]
    return "\n".join(_paint(_fit(row, width), styled) for row in rows)
