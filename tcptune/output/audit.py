"""The audit as text (80 columns) and as JSON schema 1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tcptune import __version__
from tcptune.model.findings import Finding, Severity
from tcptune.model.heavyhitters import TopCounts
from tcptune.model.snapshot import (
    ReadStatus,
    Snapshot,
    SocketCounts,
    keepalive_detection_seconds,
)
from tcptune.model.tcpstates import TcpState
from tcptune.model.units import show_value, value_with_seconds
from tcptune.output.common import (
    JSON_SCHEMA_VERSION,
    WIDTH,
    indent,
    iso_time,
    short_name,
    table,
)
from tcptune.output.counters import (
    Rates,
    counters_dict,
    current_heading,
    current_text,
    totals_heading,
    totals_text,
)
from tcptune.output.escape import terminal_safe
from tcptune.output.sockets import inventory_dict, inventory_lines

if TYPE_CHECKING:
    from tcptune.model.thresholds import Thresholds
    from tcptune.run.audit import AuditResult

# --------------------------------------------------------------------------- JSON

TOP_KEYS = 10  # keys of each bounded summary shown in JSON


def _top_dict(counts: TopCounts[Any]) -> dict[str, Any]:
    """Return a heavy-hitters summary: its busiest keys, the stream total and the error bound."""
    return {
        "top": [{"key": str(key), "count": count} for key, count in counts.most(TOP_KEYS)],
        "total": counts.total,
        "error_bound": counts.error,
        "capacity": counts.capacity,
    }


def _sockets_dict(sockets: SocketCounts) -> dict[str, Any]:
    states = {
        state.label: {
            "ipv4": sockets.ipv4.get(state, 0),
            "ipv6": sockets.ipv6.get(state, 0),
            "total": sockets.total(state),
        }
        for state in TcpState
    }
    result: dict[str, Any] = {
        "source": sockets.source,
        "notes": list(sockets.notes),
        "total": sockets.all_sockets,
        "states": states,
    }
    if sockets.details is not None:
        details = sockets.details
        result["details"] = {
            "established_keepalive_armed": details.established_keepalive,
            "fin_wait2_orphaned": details.fin_wait2_orphaned,
            "fin_wait2_held": details.fin_wait2_held,
            "close_wait": details.close_wait,
            "close_wait_by_local": _top_dict(details.close_wait_by_local),
            "time_wait_by_local_port": _top_dict(details.time_wait_by_local_port),
            "time_wait_by_remote_address": _top_dict(details.time_wait_by_remote_address),
            "time_wait_by_remote": _top_dict(details.time_wait_by_remote),
            "listeners": [
                {
                    "local": str(item.local),
                    "queued": item.queued,
                    "backlog": item.backlog,
                    "inode": item.inode,
                    "uid": item.uid,
                }
                for item in details.listeners
            ],
        }
    return result


def audit_dict(
    snapshot: Snapshot,
    findings: Sequence[Finding] = (),
    profile: str | None = None,
    *,
    rates: Rates | None = None,
    interval: float | None = None,
) -> dict[str, Any]:
    """Return the audit as the versioned JSON document README.md documents (schema 1)."""
    context = snapshot.context
    return {
        "schema": JSON_SCHEMA_VERSION,
        "tool": {"name": "tcptune", "version": __version__},
        "taken_at": iso_time(snapshot.taken_at),
        "context": {
            "kernel_release": context.kernel_release,
            "netns_inode": context.netns_inode,
            "initial_netns": context.initial_netns,
            "netns": context.netns_name,
        },
        "complete": snapshot.complete,
        "problems": [{"source": p.source, "message": p.message} for p in snapshot.problems],
        "sysctls": {
            name: {
                "status": reading.status.value,
                "value": list(reading.value) if isinstance(reading.value, tuple) else reading.value,
                "unit": reading.spec.unit.value,
                "scope": "host" if reading.spec.scope.name == "HOST" else "netns",
                "reason": reading.reason,
            }
            for name, reading in snapshot.sysctls.items()
        },
        "keepalive": {"detection_seconds": keepalive_detection_seconds(snapshot)},
        "sockets": _sockets_dict(snapshot.sockets) if snapshot.sockets else None,
        "socket_options": inventory_dict(snapshot.sockopts),
        "owners": _owners_dict(snapshot),
        "counters": counters_dict(snapshot, rates, interval),
        "profile": profile,
        "findings": [finding_dict(f) for f in findings],
    }


def _owners_dict(snapshot: Snapshot) -> dict[str, Any] | None:
    """Return where socket owners came from (None: not looked up) and why BPF was not used."""
    owners = snapshot.owners
    if owners is None:
        return None
    return {
        "source": owners.source,
        "bpf_unavailable": owners.bpf_unavailable,
        "sockets": len(owners.holders),
        "processes": len(owners.processes),
    }


def finding_dict(finding: Finding) -> dict[str, Any]:
    """Return one finding as JSON-ready data."""
    return {
        "id": finding.id,
        "subject": finding.subject,
        "severity": finding.severity.label,
        "title": finding.title,
        "evidence": list(finding.evidence),
        "explanation": finding.explanation,
        "recommendation": finding.recommendation,
        "references": list(finding.references),
        "data": dict(finding.data),
    }


# --------------------------------------------------------------------------- text


def _context_line(snapshot: Snapshot) -> str:
    context = snapshot.context
    where = {
        True: "initial network namespace",
        False: "container network namespace",
        None: "network namespace unknown",
    }[context.initial_netns]
    if context.netns_name:
        where = context.netns_name
    source = snapshot.sockets.source if snapshot.sockets else "unavailable"
    return f"kernel {context.kernel_release or '?'} · {where} · sockets via {source}"


def _wrap(text: str, first: str = "", rest: str = "  ", width: int = WIDTH) -> list[str]:
    """Return ``text`` wrapped to ``width``; words longer than a line (paths) are cut."""
    import textwrap

    return textwrap.wrap(
        text, width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False
    )


def _fit_cell(text: str, width: int) -> str:
    """Return ``text`` as lines of at most ``width`` columns, broken after commas or spaces."""
    if len(text) <= width:
        return text
    lines = _wrap(text.replace(",", ", "), rest="", width=max(width, 10))
    return "\n".join(line.replace(", ", ",") for line in lines)


def settings_text(snapshot: Snapshot) -> str:
    """Return the settings table: each sysctl in human units, or why it is missing."""
    name_width = max((len(short_name(name)) for name in snapshot.sysctls), default=0)
    value_width = WIDTH - 2 - name_width - 2  # indent, name column, column gap
    rows = []
    for name, reading in snapshot.sysctls.items():
        if reading.status is ReadStatus.OK and reading.value is not None:
            shown = show_value(reading.value, reading.spec.unit, reading.spec.modes)
        else:
            shown = f"{reading.status.value}"
            if reading.spec.removed_in:
                shown = f"absent (removed in {reading.spec.removed_in})"
        rows.append((short_name(name), _fit_cell(shown, value_width)))
    return table(rows, ("setting", "value"))


def keepalive_text(snapshot: Snapshot) -> str:
    """Return the dead-peer detection sentence for SO_KEEPALIVE sockets."""
    total = keepalive_detection_seconds(snapshot)
    if total is None:
        return "Keepalive: cannot compute dead-peer detection (a keepalive sysctl is unreadable)."
    idle = snapshot.value("net.ipv4.tcp_keepalive_time")
    interval = snapshot.value("net.ipv4.tcp_keepalive_intvl")
    probes = snapshot.value("net.ipv4.tcp_keepalive_probes")
    lines = _wrap(f"Keepalive detects a dead peer after {value_with_seconds(total)}")
    lines += _wrap(
        f"= {idle} s idle + {probes} probes × {interval} s, and only on sockets that set "
        "SO_KEEPALIVE (TCP_KEEPIDLE/KEEPINTVL/KEEPCNT override it per socket).",
        "  ",
        "  ",
    )
    return "\n".join(lines)


def states_text(sockets: SocketCounts) -> str:
    """Return the eleven-state histogram, IPv4 and IPv6 apart."""
    rows = [
        (state.label, sockets.ipv4.get(state, 0), sockets.ipv6.get(state, 0), sockets.total(state))
        for state in TcpState
    ]
    rows.append(
        ("total", sum(sockets.ipv4.values()), sum(sockets.ipv6.values()), sockets.all_sockets)
    )
    return table(rows, ("state", "ipv4", "ipv6", "total"), ("left", "right", "right", "right"))


def finding_text(finding: Finding) -> str:
    """Return one finding as an indented block; info findings leave the why to explain."""
    import textwrap

    def wrap(text: str, first: str = "    ", rest: str = "    ") -> list[str]:
        return textwrap.wrap(text, WIDTH - 2, initial_indent=first, subsequent_indent=rest)

    lines = wrap(f"[{finding.severity.label.upper()}] {finding.id}: {finding.title}", "", "  ")
    for item in finding.evidence:
        lines += wrap(item, "  - ", "    ")
    if finding.severity >= Severity.WARNING:
        lines.append("  what it means:")
        lines += wrap(finding.explanation)
    lines.append("  what to do:")
    lines += wrap(finding.recommendation)
    if finding.severity >= Severity.WARNING and finding.references:
        lines += wrap("; ".join(finding.references), "  sources: ", "    ")
    else:
        lines.append(f"  why and sources: tcptune explain {finding.id}")
    return "\n".join(lines)


@terminal_safe
def audit_text(
    snapshot: Snapshot,
    findings: Sequence[Finding] = (),
    profile: str | None = None,
    *,
    rates: Rates | None = None,
    interval: float | None = None,
) -> str:
    """Return the human audit report; it fits 80 columns (rates with --interval)."""
    parts = ["tcptune audit", _context_line(snapshot), ""]
    parts += ["Settings", indent(settings_text(snapshot)), "", keepalive_text(snapshot), ""]
    if snapshot.sockets is not None:
        parts += ["Sockets by state", indent(states_text(snapshot.sockets))]
        parts += [f"  note: {note}" for note in snapshot.sockets.notes]
        for line in inventory_lines(snapshot.sockopts):
            parts += _wrap(f"options: {line}", "  ", "    ")
        parts.append("")
    parts += [current_heading(), indent(current_text(snapshot)), ""]
    parts += _wrap(totals_heading(snapshot, interval if rates is not None else None))
    parts += [indent(totals_text(snapshot, rates)), ""]
    if profile:
        parts += _wrap(f"Findings (compared with profile {profile})")
    else:
        parts.append("Findings (no profile; add --profile NAME to compare with one)")
    parts += [finding_text(f) + "\n" for f in findings] or ["  none"]
    if snapshot.problems:
        parts += ["", "Incomplete: these could not be read"]
        for problem in snapshot.problems:
            parts += _wrap(f"{problem.source}: {problem.message}", "  ", "    ")
    return "\n".join(parts).rstrip() + "\n"


__all__ = ["audit_dict", "audit_text", "finding_dict"]


def audit_output(
    result: AuditResult, output_format: str, thresholds: Thresholds | None = None
) -> str:
    """Return the audit in one of AUDIT_FORMATS, ending with a newline (check: thresholds).

    The one dispatcher of audit formats: text and JSON are here, Prometheus
    and the check line in metrics.py, HTML in html.py (imported only for them).
    """
    profile = result.profile.name if result.profile else None
    if output_format == "text":
        return audit_text(
            result.snapshot,
            result.findings,
            profile,
            rates=result.rates,
            interval=result.interval,
        )
    if output_format == "json":
        import json

        document = audit_dict(
            result.snapshot,
            result.findings,
            profile,
            rates=result.rates,
            interval=result.interval,
        )
        return json.dumps(document, indent=2) + "\n"
    from tcptune.output.check import check_line
    from tcptune.output.metrics import audit_prometheus

    if output_format == "prometheus":
        return audit_prometheus(result)
    if output_format == "check":
        return check_line(result, thresholds) + "\n"
    if output_format == "html":
        from tcptune.output.html import audit_html

        return audit_html(result)
    raise ValueError(f"unknown audit format {output_format!r}")
