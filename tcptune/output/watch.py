"""tcptune watch frames as log lines, JSON lines and full screens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcptune.run.watch import Frame

from tcptune.output.common import JSON_SCHEMA_VERSION, iso_time

# --------------------------------------------------------------------------- watch

WATCH_ALERT_STYLE = "\x1b[1;31m"  # bold red (ECMA-48 SGR 1 and 31)
WATCH_HEADER_STYLE = "\x1b[1m"
WATCH_RESET = "\x1b[0m"
RISING = "▲"

Segment = tuple[str, str | None]  # text and its SGR style (None: plain)


def _watch_rate(rate: float | None) -> str:
    if rate is None:
        return "-"
    if rate == 0:
        return "0"
    return f"{rate:.1f}" if rate < 100 else f"{rate:.0f}"


def watch_line(frame: Frame) -> str:
    """Return one refresh as one log line: counts, rates per second, ▲ on what is rising."""
    words = [iso_time(frame.taken_at)]
    for row in frame.states:
        words.append(f"{row.state.label.lower()}={row.total}{RISING if row.alert else ''}")
    words.append(f"total={frame.total}" if frame.states else "sockets=unreadable")
    words.append("|")
    for rate in frame.rates:
        if rate.value is not None:
            shown = _watch_rate(rate.per_second)
            unit = "/s" if rate.per_second is not None else ""
            words.append(f"{rate.name}={shown}{unit}{RISING if rate.alert else ''}")
    if frame.problems:
        words.append("| incomplete: " + "; ".join(frame.problems))
    return " ".join(words)


def watch_dict(frame: Frame) -> dict[str, Any]:
    """Return one refresh as JSON-ready data (one object per line with --json)."""
    return {
        "schema": JSON_SCHEMA_VERSION,
        "refresh": frame.number,
        "taken_at": iso_time(frame.taken_at),
        "interval_seconds": frame.interval,
        "elapsed_seconds": None if frame.elapsed is None else round(frame.elapsed, 3),
        "complete": not frame.problems,
        "problems": list(frame.problems),
        "source": frame.source,
        "sockets": {
            "total": frame.total,
            "states": {
                row.state.label: {
                    "ipv4": row.ipv4,
                    "ipv6": row.ipv6,
                    "total": row.total,
                    "change": row.change,
                }
                for row in frame.states
            },
        }
        if frame.states
        else None,
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


def _watch_state_block(frame: Frame, styled: bool) -> list[Segment]:
    header = f"{'state':<11}{'ipv4':>7}{'ipv6':>7}{'total':>7}{'+/-':>6} "
    lines: list[Segment] = [(header, WATCH_HEADER_STYLE)]
    for row in frame.states:
        change = f"{row.change:+d}" if row.change else ""
        marker = RISING if row.alert and not styled else " "
        text = f"{row.state.label:<11}{row.ipv4:>7}{row.ipv6:>7}{row.total:>7}{change:>6}{marker}"
        lines.append((text, WATCH_ALERT_STYLE if row.alert else None))
    total = f"{'total':<11}{'':>7}{'':>7}{frame.total:>7}{'':>6} "
    lines.append((total, WATCH_HEADER_STYLE))
    return lines


def _watch_rate_block(frame: Frame, styled: bool) -> list[Segment]:
    lines: list[Segment] = [(f"{'counter':<19}{'per s':>8}{'total':>10} ", WATCH_HEADER_STYLE)]
    for rate in frame.rates:
        if rate.value is None:
            continue
        marker = RISING if rate.alert and not styled else " "
        text = f"{rate.name:<19}{_watch_rate(rate.per_second):>8}{rate.value:>10}{marker}"
        lines.append((text, WATCH_ALERT_STYLE if rate.alert else None))
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


def watch_screen(frame: Frame, width: int, height: int, styled: bool) -> str:
    """Return one refresh laid out for a ``width``×``height`` terminal.

    The state and counter tables stand side by side when they fit (79
    columns), one above the other otherwise; lines are cut to the width and
    the screen to the height. ``styled`` draws rising rows in bold red;
    without it they carry ▲.
    """
    width, height = max(width, 20), max(height, 3)
    title = (
        f"tcptune watch · every {frame.interval:g} s · #{frame.number} · {iso_time(frame.taken_at)}"
    )
    quit_hint = "q quits"
    gap = width - len(title) - len(quit_hint)
    rows: list[list[Segment]] = [
        [(title, WATCH_HEADER_STYLE), (" " * gap + quit_hint if gap > 0 else "", None)]
    ]
    noun = "socket" if frame.total == 1 else "sockets"
    where = f"{frame.total} {noun} via {frame.source}" if frame.states else "sockets unreadable"
    if frame.time_wait_cap is not None:
        where += f" · tcp_max_tw_buckets {frame.time_wait_cap}"
    if frame.elapsed is None:
        where += " · rates from the next refresh"
    rows.append([(where, None)])
    # What is rising comes first: on a short terminal the tables are cut, never the alerts.
    for alert in frame.alerts:
        rows.append([(f"{RISING} {alert}", WATCH_ALERT_STYLE)])
    rows += [[(f"incomplete: {problem}", WATCH_ALERT_STYLE)] for problem in frame.problems]
    if not frame.alerts and not frame.problems and frame.elapsed is not None:
        rows.append([("nothing rising", None)])
    rows.append([])
    states = _watch_state_block(frame, styled) if frame.states else []
    rates = _watch_rate_block(frame, styled)
    block_width = max((len(text) for text, _style in states), default=0)
    rate_width = max((len(text) for text, _style in rates), default=0)
    if states and width >= block_width + 2 + rate_width:
        for index in range(max(len(states), len(rates))):
            left = states[index] if index < len(states) else ("", None)
            right = rates[index] if index < len(rates) else ("", None)
            rows.append([(left[0].ljust(block_width), left[1]), ("  ", None), right])
    else:
        rows += [[line] for line in states] + ([[]] if states else [])
        rows += [[line] for line in rates]
    if len(rows) > height:
        rows = [*rows[: height - 1], [("… (enlarge the terminal for the rest)", None)]]
    return "\n".join(_paint(_fit(row, width), styled) for row in rows)
