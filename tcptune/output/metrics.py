"""The audit for Prometheus: a custom collector on a private registry (check.py: Nagios)."""

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
from tcptune.output.escape import escape

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from prometheus_client.metrics_core import Metric

    from tcptune.model.closewait import CloseWaitSummary
    from tcptune.run.audit import AuditResult

    Series = tuple[list[str], float]  # label values and the sample value


# Tcp (/proc/net/snmp) and TcpExt (/proc/net/netstat) counters exported as Prometheus
# counters (tcptune_tcp_mib_total{table,counter}) and Nagios perfdata: (table, kernel
# name). What each counts is in the reviewed table, tcptune/model/kernelcounters.py.
EXPORTED_COUNTERS: tuple[tuple[str, str], ...] = (
    ("Tcp", "ActiveOpens"),
    ("Tcp", "PassiveOpens"),
    ("Tcp", "AttemptFails"),
    ("Tcp", "EstabResets"),
    ("Tcp", "OutRsts"),
    ("Tcp", "RetransSegs"),
    ("TcpExt", "ListenOverflows"),
    ("TcpExt", "ListenDrops"),
    ("TcpExt", "TCPAbortOnData"),
    ("TcpExt", "TCPAbortOnClose"),
    ("TcpExt", "TCPAbortOnLinger"),
    ("TcpExt", "TCPAbortOnTimeout"),
    ("TcpExt", "TCPAbortOnMemory"),
    ("TcpExt", "TCPTimeWaitOverflow"),
    ("TcpExt", "TW"),
    ("TcpExt", "TWKilled"),
    ("TcpExt", "TWRecycled"),
)
# The sockstat fields exported (mem is in pages, not sockets: left out rather than
# guess a page size). /proc/net/sockstat, net/ipv4/proc.c sockstat_seq_show.
SOCKSTAT_FIELDS = ("inuse", "orphan", "tw", "alloc")
# Per-process series keep the TOP_PROCESSES process names with the most sockets; the
# rest are summed into one series named OTHER_PROCESSES, so a host with thousands of
# short-lived process names still exports at most TOP_PROCESSES + 1 series.
TOP_PROCESSES = 10
OTHER_PROCESSES = "other"


TCP_MIB_HELP = (
    "Tcp (/proc/net/snmp) and TcpExt (/proc/net/netstat) totals by table and kernel name, "
    "per network namespace since it was created (since boot in the initial namespace); "
    "`tcptune explain counters` says what each counts."
)


def sockstat_help() -> str:
    """Return the tcptune_sockstat HELP: each exported field's reviewed meaning."""
    from tcptune.model.kernelcounters import Scope, counter_doc

    parts = []
    for field in SOCKSTAT_FIELDS:
        doc = counter_doc("TCP", field)
        where = "host-wide" if doc.scope is Scope.HOST else "this namespace"
        parts.append(f"{field} ({where}): {doc.meaning}")
    return "Current values of /proc/net/sockstat{,6} by table and field. " + "; ".join(parts)


def counter_value(snapshot: Snapshot, table: str) -> dict[str, int]:
    return dict(snapshot.counters.tcp if table == "Tcp" else snapshot.counters.tcp_ext)


def bounded_by_process(per_process: Mapping[str, int], top: int = TOP_PROCESSES) -> list[Series]:
    """Return the ``top`` processes with the most, then the rest summed as OTHER_PROCESSES.

    Ties are broken by name so the series kept do not flap between runs. A
    real process called like the rest's series is summed into it rather than
    exported twice (a repeated series fails the whole textfile).
    """
    merged: dict[str, int] = {}
    for name, count in per_process.items():  # two names may escape alike: one series
        label = _label_text(name)
        merged[label] = merged.get(label, 0) + count
    ranked = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
    kept = [(name, count) for name, count in ranked[:top] if name != OTHER_PROCESSES]
    if len(kept) < len(ranked):
        kept.append((OTHER_PROCESSES, sum(merged.values()) - sum(c for _n, c in kept)))
    return [([name], float(count)) for name, count in kept]


def _label_text(text: str) -> str:
    """Return a process name as a label: valid UTF-8, control characters escaped.

    Process names may hold any byte but NUL; an ESC or OSC sequence in a label
    value would reach whoever runs ``cat`` on the textfile, as in text output.
    """
    return escape(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def _netns_label(snapshot: Snapshot) -> str:
    """Return which network namespace the audit read, as the audit_info netns label."""
    context = snapshot.context
    if context.netns_name:
        return context.netns_name  # --netns NAME or --pid PID, as the text report names it
    if context.initial_netns:
        return "initial"
    if context.netns_inode:
        return f"net:[{context.netns_inode}]"
    return ""


def _run_families(result: AuditResult) -> Iterator[Metric]:
    """Yield what the run itself says: info, time, exit status, completeness, findings."""
    from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily

    snapshot = result.snapshot
    yield InfoMetricFamily(
        "tcptune_audit",
        "The tcptune version, kernel release, network namespace, profile and socket "
        "source of this audit.",
        value={
            "version": __version__,
            "kernel_release": snapshot.context.kernel_release or "",
            "netns": _label_text(_netns_label(snapshot)),
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


def _socket_families(result: AuditResult) -> Iterator[Metric]:
    """Yield sockets by state and family, sockstat, CLOSE_WAIT per process, TIME_WAIT peaks."""
    from prometheus_client.metrics_core import GaugeMetricFamily

    snapshot = result.snapshot
    sockets = GaugeMetricFamily(
        "tcptune_sockets",
        "TCP sockets by state and address family (one BPF walk or sock_diag dump, or "
        "/proc/net/tcp{,6}).",
        labels=["state", "family"],
    )
    if snapshot.sockets is not None:
        for state in TcpState:
            sockets.add_metric([state.label.lower(), "ipv4"], snapshot.sockets.ipv4.get(state, 0))
            sockets.add_metric([state.label.lower(), "ipv6"], snapshot.sockets.ipv6.get(state, 0))
    yield sockets
    sockstat = GaugeMetricFamily("tcptune_sockstat", sockstat_help(), labels=["table", "field"])
    for table in ("TCP", "TCP6"):
        for key, value in snapshot.counters.sockstat.get(table, {}).items():
            if key in SOCKSTAT_FIELDS:
                sockstat.add_metric([table, key], value)
    yield sockstat
    if result.close_wait_by_process is not None:
        per_process = GaugeMetricFamily(
            "tcptune_close_wait_sockets",
            f"CLOSE_WAIT sockets per holding process name: the top {TOP_PROCESSES}, the "
            f'rest summed as process="{OTHER_PROCESSES}" (a socket shared by forked '
            "workers counts once per name).",
            labels=["process"],
        )
        for labels, count in bounded_by_process(result.close_wait_by_process):
            per_process.add_metric(labels, count)
        yield per_process
    if result.close_wait_ages is not None:
        yield from _close_wait_age_families(result.close_wait_ages)
    details = snapshot.sockets.details if snapshot.sockets else None
    if details is not None:
        yield GaugeMetricFamily(
            "tcptune_time_wait_busiest_destination_sockets",
            "TIME_WAIT sockets to the busiest remote address and port: each holds one "
            "port of ip_local_port_range for connections to that destination.",
            value=max(details.time_wait_by_remote.values(), default=0),
        )


def _close_wait_age_families(ages: CloseWaitSummary) -> Iterator[Metric]:
    """Yield the oldest CLOSE_WAIT per process (the oldest few names) and the age buckets."""
    from prometheus_client.metrics_core import GaugeMetricFamily

    from tcptune.model.closewait import AGE_BUCKETS

    oldest = GaugeMetricFamily(
        "tcptune_close_wait_oldest_seconds",
        "Seconds the oldest CLOSE_WAIT socket of each holding process name has waited since "
        "the peer's FIN (tcp_info last_ack_recv; u32 ms, wraps at 49.7 days); the "
        f"{len(ages.processes)} oldest names only.",
        labels=["process"],
    )
    oldest_by_label: dict[str, float] = {}
    for process in ages.processes:  # two names may escape alike: one series, the older
        label = _label_text(process.name)
        oldest_by_label[label] = max(oldest_by_label.get(label, 0.0), process.oldest_seconds)
    for label, seconds in oldest_by_label.items():
        oldest.add_metric([label], round(seconds, 3))
    yield oldest
    buckets = GaugeMetricFamily(
        "tcptune_close_wait_age_sockets",
        "CLOSE_WAIT sockets by how long they have waited: below 1m, 10m, 1h, 1d, or older.",
        labels=["below"],
    )
    for (label, _limit), count in zip(AGE_BUCKETS, ages.buckets, strict=True):
        buckets.add_metric([label], count)
    yield buckets


def _setting_families(snapshot: Snapshot) -> Iterator[Metric]:
    """Yield every numeric sysctl under one gauge by key, port ranges as bounds."""
    from prometheus_client.metrics_core import GaugeMetricFamily

    values = GaugeMetricFamily(
        "tcptune_sysctl_value",
        "A numeric TCP sysctl as /proc/sys shows it (time keys in seconds); "
        "`tcptune explain KEY` says what it does.",
        labels=["key"],
    )
    ranges = GaugeMetricFamily(
        "tcptune_sysctl_range",
        "A sysctl holding a range (ip_local_port_range): its low and high bound.",
        labels=["key", "bound"],
    )
    for name, reading in snapshot.sysctls.items():
        if reading.status is not ReadStatus.OK:
            continue
        if isinstance(reading.value, tuple):
            ranges.add_metric([name, "low"], reading.value[0])
            ranges.add_metric([name, "high"], reading.value[1])
        elif isinstance(reading.value, int):
            values.add_metric([name], reading.value)
    yield values
    yield ranges
    detection = keepalive_detection_seconds(snapshot)
    if detection is not None:
        yield GaugeMetricFamily(
            "tcptune_keepalive_detection_seconds",
            "How long SO_KEEPALIVE takes to notice a dead peer: time + intvl × probes.",
            value=detection,
        )


def _counter_families(snapshot: Snapshot) -> Iterator[Metric]:
    """Yield the exported Tcp and TcpExt counters under one counter by table and name."""
    from prometheus_client.metrics_core import CounterMetricFamily

    counters = CounterMetricFamily("tcptune_tcp_mib", TCP_MIB_HELP, labels=["table", "counter"])
    for table, name in EXPORTED_COUNTERS:
        value = counter_value(snapshot, table).get(name)
        if value is not None:
            counters.add_metric([table, name], value)
    yield counters


def audit_metric_families(result: AuditResult) -> Iterator[Metric]:
    """Yield the audit as Prometheus metric families: names, types, help and labels."""
    yield from _run_families(result)
    yield from _socket_families(result)
    yield from _setting_families(result.snapshot)
    yield from _counter_families(result.snapshot)


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
