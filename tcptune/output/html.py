"""The audit as one self-contained HTML incident report: inline CSS and SVG, no network.

Everything the page shows that came from the system (process names, host
name, sysctl values, paths in findings) goes through :func:`_h`, which
escapes &, <, >, " and '; the page's Content-Security-Policy forbids any
fetch, script or external style, so the file opens the same offline, from a
ticket attachment, years later.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from tcptune import __version__
from tcptune.model.findings import Finding, Severity
from tcptune.model.snapshot import ReadStatus, Snapshot, keepalive_detection_seconds
from tcptune.model.tcpstates import TcpState
from tcptune.model.units import duration, show_value
from tcptune.output.common import NOTABLE_TCP, NOTABLE_TCP_EXT, iso_time

if TYPE_CHECKING:
    from tcptune.run.audit import AuditResult

# What the page may load: nothing but its own inline styles (and data: images).
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
SEVERITY_COLOURS = {
    Severity.CRITICAL: "#b3261e",
    Severity.WARNING: "#b86e00",
    Severity.INFO: "#2f6f9f",
}
IPV4_COLOUR, IPV6_COLOUR = "#3b7dd8", "#8fb8ef"
VERDICTS = {0: "healthy", 1: "warnings", 2: "critical", 3: "inspection incomplete"}
STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330;
       margin: 0 auto; max-width: 980px; padding: 24px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px;
     border-bottom: 1px solid #d9dde5; padding-bottom: 4px; }
.meta { color: #586174; margin: 0; } .verdict { font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eceef2;
         vertical-align: top; }
th { background: #f5f6f8; font-weight: 600; } td.num, th.num { text-align: right; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.finding { border: 1px solid #d9dde5; border-left-width: 5px; border-radius: 4px;
           padding: 8px 12px; margin: 10px 0; page-break-inside: avoid; }
.badge { color: #fff; border-radius: 3px; padding: 1px 6px; font-size: 12px;
         font-weight: 600; text-transform: uppercase; margin-right: 6px; }
.finding h3 { font-size: 15px; margin: 2px 0 6px; } .finding ul { margin: 4px 0 6px; }
.remedy { background: #f3f8f1; border-radius: 3px; padding: 6px 8px; }
.sources { color: #586174; font-size: 12.5px; } .muted { color: #586174; }
svg text { font: 12px system-ui, sans-serif; fill: #1d2330; }
@media print { body { padding: 0; } h2 { page-break-after: avoid; } }
"""


def _h(value: object) -> str:
    """Return ``value`` as HTML text: every &, <, >, " and ' escaped."""
    return html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int]) -> str:
    """Return a table of already escaped cells; columns in ``numeric`` align right."""
    head = "".join(
        f'<th class="num">{_h(t)}</th>' if i in numeric else f"<th>{_h(t)}</th>"
        for i, t in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def state_histogram_svg(snapshot: Snapshot) -> str:
    """Return sockets per TCP state as horizontal bars, IPv4 and IPv6 stacked, counts written."""
    sockets = snapshot.sockets
    if sockets is None:
        return '<p class="muted">Sockets could not be read.</p>'
    rows = [(s, sockets.ipv4.get(s, 0), sockets.ipv6.get(s, 0)) for s in TcpState]
    top = max((v4 + v6 for _s, v4, v6 in rows), default=0) or 1
    label_w, bar_w, row_h = 110, 620, 22
    height = row_h * len(rows) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_w + bar_w + 120}" '
        f'height="{height}" aria-label="TCP sockets per state">',
        "<title>TCP sockets per state (IPv4 and IPv6)</title>",
    ]
    for index, (state, v4, v6) in enumerate(rows):
        y = index * row_h
        w4, w6 = bar_w * v4 / top, bar_w * v6 / top
        parts.append(f'<text x="0" y="{y + 15}">{_h(state.label)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{w4:.1f}" height="{row_h - 8}" '
            f'fill="{IPV4_COLOUR}"><title>{_h(state.label)} IPv4: {v4}</title></rect>'
        )
        parts.append(
            f'<rect x="{label_w + w4:.1f}" y="{y + 4}" width="{w6:.1f}" height="{row_h - 8}" '
            f'fill="{IPV6_COLOUR}"><title>{_h(state.label)} IPv6: {v6}</title></rect>'
        )
        parts.append(
            f'<text x="{label_w + w4 + w6 + 6:.1f}" y="{y + 15}" class="count">{v4 + v6}</text>'
        )
    legend_y = row_h * len(rows) + 14
    parts.append(
        f'<rect x="{label_w}" y="{legend_y - 9}" width="10" height="10" fill="{IPV4_COLOUR}"/>'
        f'<text x="{label_w + 14}" y="{legend_y}">IPv4</text>'
        f'<rect x="{label_w + 60}" y="{legend_y - 9}" width="10" height="10" '
        f'fill="{IPV6_COLOUR}"/><text x="{label_w + 74}" y="{legend_y}">IPv6</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _gauge_rows(result: AuditResult) -> list[tuple[str, int, int, float]]:
    """Return (what, used, limit, warning share) for each limit the audit can measure."""
    from tcptune.advise.teardown import (
        ORPHANS_WARNING,
        PORTS_PER_DESTINATION_WARNING,
        TIME_WAIT_CAP_WARNING,
        timewait_minisockets,
    )

    snapshot = result.snapshot
    rows: list[tuple[str, int, int, float]] = []
    sockstat = snapshot.counters.sockstat
    cap = snapshot.value("net.ipv4.tcp_max_tw_buckets")
    if isinstance(cap, int) and cap and snapshot.sockets is not None:
        used = timewait_minisockets(sockstat, snapshot.sockets.total(TcpState.TIME_WAIT))
        rows.append(("timewait sockets / tcp_max_tw_buckets", used, cap, TIME_WAIT_CAP_WARNING))
    orphans = sockstat.get("TCP", {}).get("orphan")
    orphan_cap = snapshot.value("net.ipv4.tcp_max_orphans")
    if orphans is not None and isinstance(orphan_cap, int) and orphan_cap:
        rows.append(("orphans / tcp_max_orphans", orphans, orphan_cap, ORPHANS_WARNING))
    ports = snapshot.value("net.ipv4.ip_local_port_range")
    details = snapshot.sockets.details if snapshot.sockets else None
    if isinstance(ports, tuple) and details is not None:
        busiest = details.time_wait_by_remote.most(1)
        used = busiest[0][1] if busiest else 0
        rows.append(
            (
                "TIME_WAIT to the busiest destination / ephemeral ports",
                used,
                ports[1] - ports[0] + 1,
                PORTS_PER_DESTINATION_WARNING,
            )
        )
    return rows


def headroom_svg(result: AuditResult) -> str:
    """Return each measured limit as a bar of how much of it is used."""
    rows = _gauge_rows(result)
    if not rows:
        return '<p class="muted">No limit could be measured here.</p>'
    bar_w, row_h = 420, 34
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{bar_w + 420}" '
        f'height="{row_h * len(rows)}" aria-label="Headroom against kernel limits">',
        "<title>Headroom against kernel limits</title>",
    ]
    for index, (what, used, limit, warning) in enumerate(rows):
        y = index * row_h
        share = used / limit
        colour = "#b3261e" if share >= warning else "#3f8f4f"
        parts.append(
            f'<rect x="0" y="{y + 4}" width="{bar_w}" height="14" fill="#eceef2"/>'
            f'<rect x="0" y="{y + 4}" width="{bar_w * min(share, 1.0):.1f}" height="14" '
            f'fill="{colour}"/>'
            f'<line x1="{bar_w * warning:.1f}" y1="{y + 1}" x2="{bar_w * warning:.1f}" '
            f'y2="{y + 21}" stroke="#1d2330" stroke-dasharray="2,2"/>'
            f'<text x="{bar_w + 10}" y="{y + 16}">{_h(what)}: {used} of {limit} '
            f"({100 * share:.1f} %)</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _owners_section(result: AuditResult) -> str:
    """Return the processes holding CLOSE_WAIT sockets, with their ages when measured."""
    per_process = result.close_wait_by_process
    ages = {p.name: p for p in result.close_wait_ages.processes} if result.close_wait_ages else {}
    if per_process is None:
        return '<p class="muted">Owners not looked up (<code>--no-owners</code>).</p>'
    if not per_process:
        return '<p class="muted">No process holds a CLOSE_WAIT socket.</p>'
    ranked = sorted(per_process.items(), key=lambda item: (-item[1], item[0]))
    top = ranked[0][1] or 1
    bar_w, row_h, label_w = 360, 22, 170
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_w + bar_w + 80}" '
        f'height="{row_h * min(len(ranked), 10)}" aria-label="CLOSE_WAIT sockets per process">',
        "<title>CLOSE_WAIT sockets per process</title>",
    ]
    for index, (name, count) in enumerate(ranked[:10]):
        y = index * row_h
        parts.append(
            f'<text x="0" y="{y + 15}">{_h(name[:24])}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{bar_w * count / top:.1f}" '
            f'height="{row_h - 8}" fill="#b86e00"/>'
            f'<text x="{label_w + bar_w * count / top + 6:.1f}" y="{y + 15}">{count}</text>'
        )
    parts.append("</svg>")
    rows: list[tuple[str, ...]] = []
    for name, count in ranked:
        age = ages.get(name)
        rows.append(
            (
                f'<span class="mono">{_h(name)}</span>',
                str(count),
                _h(", ".join(str(pid) for pid in age.pids[:8])) if age else "",
                _h(duration(age.oldest_seconds)) if age else "",
                str(age.last_minute) if age else "",
                str(age.last_hour) if age else "",
                f"{age.leak_per_hour:.0f}" if age else "",
            )
        )
    headers = ("process", "sockets", "pids", "oldest", "< 1 min", "< 1 h", "leak per hour")
    note = ""
    if not ages:
        note = (
            '<p class="muted">Ages not measured (they need the BPF walk or netlink sock_diag).</p>'
        )
    return "".join(parts) + _table(headers, rows, {1, 4, 5, 6}) + note


def _finding_html(finding: Finding) -> str:
    colour = SEVERITY_COLOURS.get(finding.severity, "#586174")
    subject = f' <span class="mono">{_h(finding.subject)}</span>' if finding.subject else ""
    evidence = "".join(f"<li>{_h(line)}</li>" for line in finding.evidence)
    sources = "".join(f"<li>{_h(source)}</li>" for source in finding.references)
    return (
        f'<div class="finding" style="border-left-color:{colour}" id="finding-{_h(finding.id)}">'
        f'<h3><span class="badge" style="background:{colour}">{_h(finding.severity.label)}'
        f"</span>{_h(finding.title)}{subject}</h3>"
        f"<ul>{evidence}</ul>"
        f"<p>{_h(finding.explanation)}</p>"
        f'<p class="remedy"><strong>Remedy:</strong> {_h(finding.recommendation)}</p>'
        f'<div class="sources">Sources (<code>tcptune explain {_h(finding.id)}</code>):'
        f"<ul>{sources}</ul></div></div>"
    )


def _settings_rows(snapshot: Snapshot) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for name, reading in snapshot.sysctls.items():
        if reading.status is ReadStatus.OK and reading.value is not None:
            shown = show_value(reading.value, reading.spec.unit, reading.spec.modes)
        else:
            shown = reading.status.value + (f": {reading.reason}" if reading.reason else "")
        scope = "host" if reading.spec.scope.name == "HOST" else "netns"
        rows.append((f"<code>{_h(name)}</code>", _h(shown), scope, _h(reading.spec.summary)))
    return rows


def _counter_rows(result: AuditResult) -> list[tuple[str, ...]]:
    counters = result.snapshot.counters
    rows: list[tuple[str, ...]] = []
    for table_name, names, values in (
        ("Tcp", NOTABLE_TCP, counters.tcp),
        ("TcpExt", NOTABLE_TCP_EXT, counters.tcp_ext),
    ):
        for name in names:
            if name in values:
                rate = (result.rates or {}).get(name)
                shown = "" if rate is None else f"{rate:.2f}"
                rows.append((table_name, f"<code>{_h(name)}</code>", str(values[name]), shown))
    return rows


def audit_html(result: AuditResult) -> str:
    """Return the audit as one self-contained HTML page for an incident ticket."""
    snapshot = result.snapshot
    context = snapshot.context
    status = int(result.status)
    where = (
        context.netns_name
        or {
            True: "initial network namespace",
            False: "container network namespace",
            None: "network namespace unknown",
        }[context.initial_netns]
    )
    host = context.hostname or "unknown host"
    counts = {s: sum(1 for f in result.findings if f.severity is s) for s in Severity}
    ranked = sorted(result.findings, key=lambda f: -int(f.severity))
    summary = ", ".join(f"{n} {s.label}" for s, n in sorted(counts.items(), reverse=True) if n)
    detection = keepalive_detection_seconds(snapshot)
    problems = "".join(
        f"<li><code>{_h(p.source)}</code>: {_h(p.message)}</li>" for p in snapshot.problems
    )
    total = snapshot.sockets.all_sockets if snapshot.sockets else 0
    sections = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>tcptune report: {_h(host)} {_h(iso_time(snapshot.taken_at))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f'<h1>TCP incident report: <span class="mono">{_h(host)}</span></h1>',
        f'<p class="meta">{_h(iso_time(snapshot.taken_at))} · kernel '
        f"{_h(context.kernel_release or '?')} · {_h(where)} · sockets via "
        f"{_h(snapshot.sockets.source if snapshot.sockets else 'unavailable')} · "
        f"tcptune {_h(__version__)}"
        + (f" · profile {_h(result.profile.name)}" if result.profile else "")
        + "</p>",
        f'<p class="verdict">Verdict: {_h(VERDICTS.get(status, str(status)))} (exit status '
        f"{status}) · {total} sockets · findings: {_h(summary or 'none')}</p>",
    ]
    if problems:
        sections.append(f"<h2>Incomplete inspection</h2><ul>{problems}</ul>")
    sections += [
        "<h2>Sockets per state</h2>",
        state_histogram_svg(snapshot),
        "<h2>Headroom</h2>",
        headroom_svg(result),
        "<h2>CLOSE_WAIT owners</h2>",
        _owners_section(result),
        f"<h2>Findings ({len(result.findings)})</h2>",
        "".join(_finding_html(f) for f in ranked) or '<p class="muted">No findings.</p>',
        "<h2>Settings</h2>",
        _table(("sysctl", "value", "scope", "what it does"), _settings_rows(snapshot), set()),
    ]
    if detection is not None:
        sections.append(
            f'<p class="muted">Keepalive notices a dead peer after {_h(duration(detection))} '
            "(time + intvl × probes).</p>"
        )
    rate_note = f"per second over {result.interval:g} s" if result.interval else "per second"
    sections += [
        "<h2>Counters</h2>",
        _table(("table", "counter", "since boot", rate_note), _counter_rows(result), {2, 3}),
        f'<p class="muted">Written by tcptune {_h(__version__)}; this file loads nothing from '
        "the network. <code>tcptune explain ID</code> explains each finding.</p>",
        "</body></html>",
    ]
    return "\n".join(sections) + "\n"
