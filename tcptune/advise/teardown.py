"""Findings about sockets on their way out: CLOSE_WAIT, FIN_WAIT_2, TIME_WAIT, orphans."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tcptune.advise import closewait
from tcptune.advise.base import Evidence, FindingDoc, finding, since
from tcptune.model.closewait import AGE_BUCKETS
from tcptune.model.findings import Finding, Severity
from tcptune.model.heavyhitters import TopCounts
from tcptune.model.tcpstates import TcpState
from tcptune.model.units import duration

# Thresholds: a handful of CLOSE_WAIT sockets is the normal gap between the
# peer's FIN and the application's close(); hundreds that stay are a leak.
CLOSE_WAIT_WARNING = 100
CLOSE_WAIT_CRITICAL = 1000
HELD_FIN_WAIT2_WARNING = 100
TIME_WAIT_INFO = 1000  # below this, TIME_WAIT is background noise on any busy host
TIME_WAIT_CAP_WARNING = 0.8  # share of tcp_max_tw_buckets
PORTS_PER_DESTINATION_WARNING = 0.5  # share of the ephemeral range
PORTS_PER_DESTINATION_CRITICAL = 0.9
ORPHANS_WARNING = 0.5  # share of tcp_max_orphans
ORPHANS_CRITICAL = 0.9

CLOSE_WAIT = FindingDoc(
    "close-wait",
    "Sockets in CLOSE_WAIT: the application has not called close()",
    "CLOSE_WAIT piles up when an application never closes its sockets",
    "CLOSE_WAIT means the peer sent FIN, the kernel acknowledged it, and the local "
    "application has not yet called close(). CLOSE_WAIT has no timer of its own: the "
    "descriptor stays until the application closes it, so no sysctl fixes this. Lowering "
    "tcp_keepalive_* does not either: keepalive only runs on sockets that set "
    "SO_KEEPALIVE, and even when a probe finds the peer gone and resets the connection "
    "(which removes it from the CLOSE_WAIT count), the descriptor still leaks until "
    "close(). The same holds for the other ways CLOSE_WAIT ends without close(): "
    "shutdown(SHUT_WR) (to LAST_ACK), a peer RST, a retransmission timeout, or ss -K, "
    "which frees the 4-tuple but not the descriptor. Tcp CurrEstab counts CLOSE_WAIT "
    "sockets as established ones. It is an application bug: "
    "a code path that returns without closing after read() returned 0 (EOF), a "
    "connection pool that never checks for closed connections, or a thread that is stuck.",
    (
        "RFC 9293 §3.3.2 (state diagram)",
        "man 2 close",
        "man 7 tcp (SO_KEEPALIVE)",
        "net/ipv4/tcp_timer.c tcp_keepalive_timer",
        "net/ipv4/tcp.c tcp_shutdown, tcp_abort, tcp_set_state",
    ),
    ("close-wait-exits", "currestab-close-wait", "keepalive-opt-in"),
)
FIN_WAIT2 = FindingDoc(
    "fin-wait-2",
    "Sockets in FIN_WAIT_2: this side closed, the peer has not",
    "FIN_WAIT_2: orphans time out after tcp_fin_timeout, held ones never",
    "FIN_WAIT_2 means this side sent FIN, the peer acknowledged it, and the peer has not "
    "sent its own FIN yet (the peer is in CLOSE_WAIT). An orphaned FIN_WAIT_2 socket "
    "(the application called close(), no descriptor holds it) lives for tcp_fin_timeout, "
    "then is destroyed. With tcp_fin_timeout <= 60 s such an orphan is kept as a small "
    "timewait minisocket: counted in sockstat tw (not orphan or inuse) and against "
    "tcp_max_tw_buckets, not tcp_max_orphans. One still held by a process (after "
    "shutdown(SHUT_WR)) has no such timer and waits for the peer as long as the process "
    "keeps it. tcp_fin_timeout does not shorten TIME_WAIT, which Linux holds for a fixed "
    "60 seconds (TCP_TIMEWAIT_LEN).",
    (
        "ip-sysctl.rst: tcp_fin_timeout",
        "include/net/tcp.h TCP_TIMEWAIT_LEN",
        "net/ipv4/tcp.c __tcp_close",
        "net/ipv4/tcp_input.c tcp_rcv_state_process (tcp_time_wait(sk, TCP_FIN_WAIT2, tmo))",
    ),
    ("orphan-fin-wait2-minisock", "time-wait-fixed"),
)
TIME_WAIT = FindingDoc(
    "time-wait",
    "TIME_WAIT sockets",
    "TIME_WAIT lasts a fixed 60 s; mind the cap and the ephemeral ports",
    "TIME_WAIT is held by the side that closed first, for a fixed 60 seconds on Linux "
    "(TCP_TIMEWAIT_LEN; no sysctl changes it, tcp_fin_timeout included). Each costs a few hundred "
    "bytes and no descriptor. It matters in two cases. tcp_max_tw_buckets caps all timewait "
    "minisockets of the namespace, orphaned FIN_WAIT_2 ones included (sockstat tw); past it the "
    "kernel destroys new TIME_WAIT sockets at once (TCPTimeWaitOverflow): that is a DoS guard, and "
    "lowering it is not a fix — it removes the protection against old duplicate segments. And on "
    "hosts making many outgoing connections to one destination, each TIME_WAIT holds a port of "
    "ip_local_port_range for that destination. tcp_tw_reuse (1; 2 = loopback only, the default) "
    "lets connect() reuse a TIME_WAIT port when TCP timestamps prove it safe, and each reuse "
    "removes the old entry; it only helps outgoing connections, never a server accepting them. A "
    "program that bind()s the port with SO_REUSEADDR on the old and the new socket takes such a "
    "TIME_WAIT over even with tcp_tw_reuse=0 (tcp_twsk_unique). tcp_tw_recycle was removed in "
    "Linux 4.12 because it broke clients behind NAT. A server that restarts needs SO_REUSEADDR to "
    "bind its port over "
    "leftover TIME_WAIT sockets.",
    (
        "ip-sysctl.rst: tcp_max_tw_buckets, tcp_tw_reuse",
        "include/net/tcp.h TCP_TIMEWAIT_LEN",
        "net/ipv4/inet_timewait_sock.c inet_twsk_alloc",
        "net/ipv4/tcp_ipv4.c tcp_twsk_unique",
        "RFC 9293 §3.6.1",
        "RFC 6191",
        "man 7 socket (SO_REUSEADDR)",
    ),
    (
        "time-wait-fixed",
        "tw-buckets-overflow",
        "tw-buckets-count-fin-wait2",
        "reuseaddr-tw-takeover",
    ),
)
ORPHANS = FindingDoc(
    "orphans",
    "Orphaned sockets near tcp_max_orphans",
    "Orphans (closed by the app, TCP not done) against the host-wide cap",
    "An orphaned socket is one the application closed but TCP has not finished (FIN_WAIT_1, "
    "FIN_WAIT_2, CLOSING, LAST_ACK). tcp_max_orphans is host-wide; past it, the kernel "
    "resets orphans at once and logs 'too many orphaned sockets' (TCPAbortOnMemory counts "
    "these resets and those for memory pressure). When its timer fires, an orphan that has "
    "sent nothing for over 2 x 120 s or has run out of retries is reset from half the "
    "limit, and from a quarter after a soft ICMP error as well (tcp_out_of_resources). "
    "Orphaned FIN_WAIT_2 sockets at tcp_fin_timeout <= 60 s are timewait minisockets and "
    "do not count here, so lowering tcp_fin_timeout does not lower this count. Each orphan "
    "keeps its whole unsent write queue, up to tcp_wmem[2] (4 MiB by default), not the "
    "~64 KB ip-sysctl.rst mentions. Raise the limit only with memory to match; lowering "
    "it is not a fix.",
    (
        "ip-sysctl.rst: tcp_max_orphans, tcp_orphan_retries",
        "net/ipv4/tcp.c tcp_check_oom, __tcp_close",
        "net/ipv4/tcp_timer.c tcp_out_of_resources",
    ),
    ("orphan-write-queue", "orphan-fin-wait2-minisock"),
)


def timewait_minisockets(sockstat: Mapping[str, Mapping[str, int]], time_wait: int) -> int:
    """Return what tcp_max_tw_buckets counts: sockstat tw (v4 and v6 share it), else TIME_WAIT.

    net/ipv4/proc.c prints the namespace's tcp_death_row tw_refcount - 1 as "tw" in
    /proc/net/sockstat; it counts TIME_WAIT and orphaned FIN_WAIT_2 minisockets alike.
    """
    tw = sockstat.get("TCP", {}).get("tw")
    return max(tw, time_wait) if tw is not None else time_wait


def share_severity(
    used: int, limit: int, warning: float, critical: float | None = None
) -> Severity:
    """Return the severity of ``used`` out of ``limit`` against warning/critical shares."""
    if critical is not None and used >= critical * limit:
        return Severity.CRITICAL
    return Severity.WARNING if used >= warning * limit else Severity.INFO


def check_close_wait(ev: Evidence) -> Iterator[Finding]:
    """Report CLOSE_WAIT sockets and rank the processes that hold them."""
    total = ev.count(TcpState.CLOSE_WAIT)
    if not total:
        return
    severity = Severity.INFO
    if total >= CLOSE_WAIT_CRITICAL:
        severity = Severity.CRITICAL
    elif total >= CLOSE_WAIT_WARNING:
        severity = Severity.WARNING
    evidence = [f"{total} sockets in CLOSE_WAIT"]
    owners = []
    if ev.details is not None:
        owners = ev.close_wait_owners()
        for item in owners[:5]:
            ports = ",".join(str(p) for p in item.local_ports[:4])
            more = "…" if len(item.local_ports) > 4 else ""
            evidence.append(
                f"pid {item.owner.pid} {item.owner.name} (user {item.owner.user}):"
                f" {item.sockets} sockets, local port {ports}{more}"
            )
        unowned = total - sum(item.sockets for item in owners)
        if not ev.owners_known:
            evidence.append("owning processes not looked up (--no-owners)")
        elif not owners and not ev.owners_readable:
            evidence.append(
                "owning processes not found: reading other users' descriptors needs root "
                "(or CAP_SYS_PTRACE); run the audit as root to name them"
            )
        elif owners and unowned > 0:
            evidence.append(f"{unowned} not matched to a process (exited, or not readable)")
    ages = ev.close_wait_summary
    aged: dict[str, object] = {}
    if ages is not None:
        evidence.append(
            f"oldest CLOSE_WAIT waits {duration(ages.oldest_seconds)} since the peer's FIN "
            "(tcp_info last_ack_recv; exact for an owner that sends nothing)"
        )
        evidence += [closewait.age_line(p) for p in ages.processes[:5]]
        aged = {
            "oldest_seconds": round(ages.oldest_seconds, 3),
            "age_buckets": dict(zip([b for b, _l in AGE_BUCKETS], ages.buckets, strict=True)),
            "ages_by_process": [
                {
                    "name": p.name,
                    "pids": list(p.pids),
                    "sockets": p.sockets,
                    "oldest_seconds": round(p.oldest_seconds, 3),
                    "oldest_at_most_seconds": round(p.oldest_at_most_seconds, 3),
                    "last_minute": p.last_minute,
                    "last_hour": p.last_hour,
                    "leak_per_hour": round(p.leak_per_hour, 1),
                }
                for p in ages.processes
            ],
        }
    top = owners[0].owner.name if owners else "the application"
    yield finding(
        CLOSE_WAIT,
        severity,
        evidence,
        f"Fix {top}: close the socket when read() returns 0 or the peer resets. "
        "Restarting the process releases the sockets now; no sysctl does.",
        data={
            "count": total,
            "owners": [
                {
                    "pid": o.owner.pid,
                    "name": o.owner.name,
                    "user": o.owner.user,
                    "sockets": o.sockets,
                    "local_ports": list(o.local_ports),
                }
                for o in owners
            ],
            **aged,
        },
    )


def check_fin_wait2(ev: Evidence) -> Iterator[Finding]:
    """Tell orphaned FIN_WAIT_2 sockets (timed) from held ones (untimed)."""
    total = ev.count(TcpState.FIN_WAIT2)
    if not total:
        return
    fin_timeout = ev.int_value("net.ipv4.tcp_fin_timeout")
    evidence = [f"{total} sockets in FIN_WAIT_2"]
    held = 0
    if ev.details is not None:
        held = ev.details.fin_wait2_held
        evidence.append(
            f"{ev.details.fin_wait2_orphaned} orphaned: gone within "
            f"tcp_fin_timeout = {fin_timeout} s"
        )
        evidence.append(f"{held} held by a process after shutdown(): no timer ends them")
    severity = Severity.WARNING if held >= HELD_FIN_WAIT2_WARNING else Severity.INFO
    yield finding(
        FIN_WAIT2,
        severity,
        evidence,
        "Orphaned ones need nothing: they expire. For held ones, the process should close() "
        "after shutdown() once it stops reading; the peers (in CLOSE_WAIT) should close too. "
        "Do not lower tcp_fin_timeout to fight TIME_WAIT: it does not touch it.",
        data={"count": total, "held": held},
    )


def check_time_wait(ev: Evidence) -> Iterator[Finding]:
    """Compare TIME_WAIT with its cap and with the ephemeral ports per destination."""
    total = ev.count(TcpState.TIME_WAIT)
    overflow = ev.counter("TCPTimeWaitOverflow") or 0
    cap = ev.int_value("net.ipv4.tcp_max_tw_buckets")
    evidence = [f"{total} sockets in TIME_WAIT (held a fixed 60 s)"]
    severity = Severity.INFO
    if cap:
        # The cap counts every timewait minisocket (inet_twsk_alloc), orphaned FIN_WAIT_2
        # included: sockstat tw, not the TIME_WAIT count.
        held = timewait_minisockets(ev.snapshot.counters.sockstat, total)
        evidence.append(
            f"tcp_max_tw_buckets = {cap}: {held} timewait sockets (sockstat tw, orphaned "
            f"FIN_WAIT_2 included) = {100 * held / cap:.0f}% of the cap"
        )
        severity = share_severity(held, cap, TIME_WAIT_CAP_WARNING)
    if overflow:
        evidence.append(since(ev, "TCPTimeWaitOverflow"))
        severity = Severity.WARNING
    port_range = ev.value("net.ipv4.ip_local_port_range")
    details = ev.details
    busiest = local_port = remote_address = None
    if details is not None:
        # Bounded summaries (model/heavyhitters.py): only keys whose count is
        # above the summary's error bound are surely the busiest.
        top_destination = details.time_wait_by_remote.heavy()
        top_port = details.time_wait_by_local_port.heavy()
        top_address = details.time_wait_by_remote_address.heavy()
        if top_port:
            local_port, used = top_port[0]
            evidence.append(
                f"busiest local port {local_port}: {used}{_bound(details.time_wait_by_local_port)}"
                " TIME_WAIT"
            )
        if top_address:
            remote_address, used = top_address[0]
            evidence.append(
                f"busiest remote address {remote_address}: "
                f"{used}{_bound(details.time_wait_by_remote_address)} TIME_WAIT"
            )
        if isinstance(port_range, tuple) and top_destination:
            ports = port_range[1] - port_range[0] + 1
            busiest, used = top_destination[0]
            evidence.append(
                f"busiest destination {busiest}: {used}{_bound(details.time_wait_by_remote)}"
                f" TIME_WAIT of {ports} ephemeral ports"
            )
            per_destination = share_severity(
                used, ports, PORTS_PER_DESTINATION_WARNING, PORTS_PER_DESTINATION_CRITICAL
            )
            severity = max(severity, per_destination)
    if severity is Severity.INFO and total < TIME_WAIT_INFO:
        return
    recommendation = (
        "Nothing to do while well under the cap. For outbound-heavy hosts: reuse connections "
        "(keep-alive pools), widen ip_local_port_range, or set tcp_tw_reuse=1 with "
        "tcp_timestamps on. Never re-enable tcp_tw_recycle; do not lower tcp_max_tw_buckets."
    )
    yield finding(
        TIME_WAIT,
        severity,
        evidence,
        recommendation,
        data={
            "count": total,
            "cap": cap,
            "overflow": overflow,
            "busiest_destination": str(busiest) if busiest else None,
            "busiest_local_port": local_port,
            "busiest_remote_address": remote_address,
            "count_error_bound": details.time_wait_by_remote.error if details else None,
        },
    )


def _bound(counts: TopCounts[Any]) -> str:
    """Return " (up to +E)" when a summary's counts may be up to E below the truth."""
    return f" (up to +{counts.error})" if counts.error else ""


def check_orphans(ev: Evidence) -> Iterator[Finding]:
    """Compare orphaned sockets with the host-wide tcp_max_orphans."""
    orphans = ev.snapshot.counters.sockstat.get("TCP", {}).get("orphan")
    cap = ev.int_value("net.ipv4.tcp_max_orphans")
    aborted = ev.counter("TCPAbortOnMemory") or 0
    if orphans is None or (not orphans and not aborted):
        return
    evidence = [f"{orphans} orphaned sockets (sockstat; counted host-wide)"]
    severity = Severity.INFO
    if cap:
        evidence.append(f"tcp_max_orphans = {cap} ({100 * orphans / cap:.0f}% used)")
        severity = share_severity(orphans, cap, ORPHANS_WARNING, ORPHANS_CRITICAL)
    else:
        evidence.append("tcp_max_orphans is host-wide and not visible from this namespace")
    if aborted:
        evidence.append(since(ev, "TCPAbortOnMemory"))
        severity = max(severity, Severity.WARNING)
    if severity is Severity.INFO:
        return
    yield finding(
        ORPHANS,
        severity,
        evidence,
        "Find what closes many connections with data still unsent or peers that never "
        "answer; raise tcp_max_orphans only with the memory for it (from the host).",
        data={"orphans": orphans, "cap": cap},
    )


DOCS = (CLOSE_WAIT, FIN_WAIT2, TIME_WAIT, ORPHANS)
CHECKS = (check_close_wait, check_fin_wait2, check_time_wait, check_orphans)
