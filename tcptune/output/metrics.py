"""The audit for monitoring: Prometheus exposition and the Nagios check line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcptune import __version__
from tcptune.model.findings import Severity
from tcptune.model.snapshot import (
    ReadStatus,
    Snapshot,
    keepalive_detection_seconds,
)
from tcptune.model.tcpstates import TcpState
from tcptune.output.audit import audit_dict, audit_text

# --------------------------------------------------------------------------- audit formats:
# --------------------------------------------------------------------------- prometheus, check

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

    from tcptune.run.audit import AuditResult

AUDIT_FORMATS = ("text", "json", "prometheus", "check")

# Tcp (/proc/net/snmp) and TcpExt (/proc/net/netstat) counters exported as Prometheus
# counters and Nagios perfdata: (table, kernel name, metric name without _total, help).
# Meanings from the kernel's Documentation/networking/snmp_counter.rst and RFC 1213.
EXPORTED_COUNTERS: tuple[tuple[str, str, str, str], ...] = (
    ("Tcp", "ActiveOpens", "tcptune_tcp_active_opens", "Connections started by connect()"),
    ("Tcp", "PassiveOpens", "tcptune_tcp_passive_opens", "Connections accepted on a listener"),
    ("Tcp", "AttemptFails", "tcptune_tcp_attempt_fails", "Connection attempts that failed"),
    ("Tcp", "EstabResets", "tcptune_tcp_estab_resets", "Resets from ESTABLISHED or CLOSE_WAIT"),
    ("Tcp", "OutRsts", "tcptune_tcp_out_rsts", "Segments sent with the RST flag"),
    ("Tcp", "RetransSegs", "tcptune_tcp_retrans_segs", "Segments retransmitted"),
    (
        "TcpExt",
        "ListenOverflows",
        "tcptune_tcpext_listen_overflows",
        "Handshakes dropped because a listener's accept queue was full",
    ),
    (
        "TcpExt",
        "ListenDrops",
        "tcptune_tcpext_listen_drops",
        "SYNs dropped at a listener for any reason, overflows included",
    ),
    (
        "TcpExt",
        "TCPAbortOnData",
        "tcptune_tcpext_abort_on_data",
        "Resets: data arrived after close(), or close() with SO_LINGER 0",
    ),
    (
        "TcpExt",
        "TCPAbortOnClose",
        "tcptune_tcpext_abort_on_close",
        "Resets: close() with unread received data (RFC 2525 2.17)",
    ),
    (
        "TcpExt",
        "TCPAbortOnLinger",
        "tcptune_tcpext_abort_on_linger",
        "Resets: FIN_WAIT2 ended at once because TCP_LINGER2 is negative",
    ),
    (
        "TcpExt",
        "TCPAbortOnTimeout",
        "tcptune_tcpext_abort_on_timeout",
        "Connections given up (no RST) when retransmission or keepalive timed out",
    ),
    (
        "TcpExt",
        "TCPAbortOnMemory",
        "tcptune_tcpext_abort_on_memory",
        "Resets: too many orphans (tcp_max_orphans) or tcp_mem exhausted",
    ),
    (
        "TcpExt",
        "TCPTimeWaitOverflow",
        "tcptune_tcpext_time_wait_overflow",
        "Sockets that skipped TIME_WAIT because tcp_max_tw_buckets was reached",
    ),
    ("TcpExt", "TW", "tcptune_tcpext_tw", "TIME_WAIT sockets that ended by their timer"),
    ("TcpExt", "TWKilled", "tcptune_tcpext_tw_killed", "TIME_WAIT sockets ended early"),
    (
        "TcpExt",
        "TWRecycled",
        "tcptune_tcpext_tw_recycled",
        "TIME_WAIT ports reused for a new connection (tcp_tw_reuse)",
    ),
)
SOCKSTAT_HELP = {
    "inuse": "sockets in use, every state but TIME_WAIT",
    "orphan": "sockets no process holds any more (orphans, host-wide)",
    "tw": "TIME_WAIT sockets and orphaned FIN_WAIT2 ones kept as timewait minisocks",
    "alloc": "sockets allocated, orphans and closing ones included (host-wide)",
}


def audit_output(result: AuditResult, output_format: str) -> str:
    """Return the audit in one of AUDIT_FORMATS, ending with a newline."""
    profile = result.profile.name if result.profile else None
    if output_format == "text":
        return audit_text(result.snapshot, result.findings, profile)
    if output_format == "json":
        import json

        return json.dumps(audit_dict(result.snapshot, result.findings, profile), indent=2) + "\n"
    if output_format == "prometheus":
        return audit_prometheus(result)
    if output_format == "check":
        return check_line(result) + "\n"
    raise ValueError(f"unknown audit format {output_format!r}")


def _counter_value(snapshot: Snapshot, table: str) -> dict[str, int]:
    return dict(snapshot.counters.tcp if table == "Tcp" else snapshot.counters.tcp_ext)


def _sysctl_families(snapshot: Snapshot) -> Iterator[Metric]:
    """Yield one gauge per numeric sysctl; a port range is two series, bound low and high."""
    import re

    from prometheus_client.metrics_core import GaugeMetricFamily

    from tcptune.model.sysctls import Unit

    for name, reading in snapshot.sysctls.items():
        if reading.status is not ReadStatus.OK:
            continue
        metric = "tcptune_sysctl_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)
        documentation = f"{name}: {reading.spec.summary}."
        value = reading.value
        if isinstance(value, tuple):
            family = GaugeMetricFamily(metric, documentation, labels=["bound"])
            family.add_metric(["low"], value[0])
            family.add_metric(["high"], value[1])
            yield family
        elif isinstance(value, int):
            suffix = "_seconds" if reading.spec.unit is Unit.SECONDS else ""
            yield GaugeMetricFamily(metric + suffix, documentation, value=value)


def audit_metric_families(result: AuditResult) -> Iterator[Metric]:
    """Yield the audit as Prometheus metric families: names, types, help and labels."""
    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        InfoMetricFamily,
    )

    snapshot = result.snapshot
    yield InfoMetricFamily(
        "tcptune_audit",
        "The tcptune version, kernel release, profile and socket source of this audit.",
        value={
            "version": __version__,
            "kernel_release": snapshot.context.kernel_release or "",
            "profile": result.profile.name if result.profile else "",
            "source": snapshot.sockets.source if snapshot.sockets else "",
        },
    )
    yield GaugeMetricFamily(
        "tcptune_audit_timestamp_seconds",
        "When the audit read the kernel, in seconds since the Unix epoch.",
        value=snapshot.taken_at,
    )
    yield GaugeMetricFamily(
        "tcptune_audit_exit_status",
        "The audit's exit status: 0 OK, 1 warning, 2 critical, 3 incomplete inspection.",
        value=int(result.status),
    )
    yield GaugeMetricFamily(
        "tcptune_inspection_complete",
        "1 if every setting, socket table and counter could be read, else 0.",
        value=1 if snapshot.complete else 0,
    )
    per_severity = GaugeMetricFamily(
        "tcptune_findings", "Active (not ignored) findings by severity.", labels=["severity"]
    )
    for severity in Severity:
        count = sum(1 for finding in result.findings if finding.severity is severity)
        per_severity.add_metric([severity.label], count)
    yield per_severity
    active = GaugeMetricFamily(
        "tcptune_finding",
        "1 for each active finding; `tcptune explain ID` says what it means.",
        labels=["id", "subject", "severity"],
    )
    seen: set[tuple[str, str, str]] = set()
    for finding in result.findings:
        labels = (finding.id, finding.subject or "", finding.severity.label)
        if labels not in seen:  # a repeated series would make the textfile collector fail
            seen.add(labels)
            active.add_metric(list(labels), 1)
    yield active
    sockets = GaugeMetricFamily(
        "tcptune_sockets",
        "TCP sockets by state and address family.",
        labels=["state", "family"],
    )
    if snapshot.sockets is not None:
        for state in TcpState:
            sockets.add_metric([state.label.lower(), "ipv4"], snapshot.sockets.ipv4.get(state, 0))
            sockets.add_metric([state.label.lower(), "ipv6"], snapshot.sockets.ipv6.get(state, 0))
    yield sockets
    for table in ("TCP", "TCP6"):
        for key, value in snapshot.counters.sockstat.get(table, {}).items():
            if key == "mem":  # in pages, not sockets: left out rather than guess a page size
                continue
            source = "/proc/net/sockstat6" if table == "TCP6" else "/proc/net/sockstat"
            yield GaugeMetricFamily(
                f"tcptune_sockstat_{table.lower()}_{key}",
                f"{table} {key} in {source}: {SOCKSTAT_HELP.get(key, 'as the kernel reports it')}.",
                value=value,
            )
    for table, name, metric, documentation in EXPORTED_COUNTERS:
        counter = _counter_value(snapshot, table).get(name)
        if counter is not None:
            yield CounterMetricFamily(
                metric, f"{documentation} ({table} {name}, since boot).", value=counter
            )
    detection = keepalive_detection_seconds(snapshot)
    if detection is not None:
        yield GaugeMetricFamily(
            "tcptune_keepalive_detection_seconds",
            "How long SO_KEEPALIVE takes to notice a dead peer: time + intvl × probes.",
            value=detection,
        )
    yield from _sysctl_families(snapshot)


class AuditCollector:
    """A custom Prometheus collector that yields one audit's metric families."""

    def __init__(self, result: AuditResult) -> None:
        """Collect ``result``."""
        self.result = result

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families of the audit."""
        return audit_metric_families(self.result)


def audit_prometheus(result: AuditResult) -> str:
    """Return the audit in the Prometheus text format (node_exporter's textfile collector)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)  # private: no process or GC metrics
    registry.register(AuditCollector(result))
    return generate_latest(registry).decode("utf-8")


CHECK_WORDS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def _plugin_text(text: str) -> str:
    """Return ``text`` on one line without '|', which starts a plugin's perfdata."""
    return " ".join(text.replace("|", "/").split())


def check_perfdata(snapshot: Snapshot) -> str:
    """Return Nagios perfdata: sockets per state, keepalive detection and counters ('c')."""
    items: list[str] = []
    if snapshot.sockets is not None:
        items += [f"{s.label.lower()}={snapshot.sockets.total(s)}" for s in TcpState]
        items.append(f"sockets={snapshot.sockets.all_sockets}")
    detection = keepalive_detection_seconds(snapshot)
    if detection is not None:
        items.append(f"keepalive_detection={detection}s")
    for table, name, _metric, _help in EXPORTED_COUNTERS:
        value = _counter_value(snapshot, table).get(name)
        if value is not None:
            items.append(f"{name}={value}c")
    return " ".join(items)


def check_line(result: AuditResult) -> str:
    """Return the audit as one Nagios plugin status line with perfdata."""
    from tcptune.exitcodes import plugin_status

    snapshot = result.snapshot
    parts: list[str] = []
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
    word = CHECK_WORDS[plugin_status(result.status)]
    return f"TCPTUNE {word} - {_plugin_text('; '.join(parts))} | {check_perfdata(snapshot)}"


def check_error_line(message: str) -> str:
    """Return an error as the plugin's UNKNOWN status line."""
    return f"TCPTUNE UNKNOWN - {_plugin_text(message)}"
