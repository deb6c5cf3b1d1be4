"""Findings about keepalive: how long dead peers go unnoticed, and what a change touches."""

from __future__ import annotations

from collections.abc import Iterator

from tcptune.advise import sockopts
from tcptune.advise.base import Evidence, FindingDoc, finding
from tcptune.model.findings import Finding, Severity
from tcptune.model.snapshot import keepalive_detection_seconds
from tcptune.model.tcpstates import TcpState
from tcptune.model.units import duration

# Default idle timeouts after which common middleboxes forget a TCP flow
# silently, shortest first. Azure Load Balancer: 4 min (Azure docs, "Load
# Balancer TCP Reset and Idle Timeout"); AWS NLB: 350 s (AWS docs, "Update the
# TCP idle timeout for your Network Load Balancer listener"); Google Cloud VPC
# firewall connection tracking: 10 min; Google Cloud NAT: 1200 s established
# (tcpEstablishedIdleTimeoutSec).
MIDDLEBOX_IDLE_TIMEOUTS = (
    ("Azure Load Balancer", 240),
    ("AWS NLB", 350),
    ("Google Cloud VPC firewall", 600),
    ("Google Cloud NAT", 1200),
)
# Below these a brief network blip kills healthy idle connections; this is the
# widely copied "time=30 intvl=2 probes=2" advice.
AGGRESSIVE_TIME = 60
AGGRESSIVE_FAILURE_WINDOW = 10  # intvl × probes, seconds

KEEPALIVE = FindingDoc(
    "keepalive",
    "Keepalive: dead-peer detection time and who it applies to",
    "Keepalive sysctls only affect sockets that set SO_KEEPALIVE",
    "tcp_keepalive_time, _intvl and _probes are defaults for sockets that enable "
    "SO_KEEPALIVE; sockets that set TCP_KEEPIDLE, TCP_KEEPINTVL or TCP_KEEPCNT override "
    "them, and sockets without SO_KEEPALIVE are never probed at all. With TCP_USER_TIMEOUT "
    "set, TCP_KEEPCNT is ignored: the connection is reset at the first keepalive timer "
    "after the total silence exceeds the user timeout (once a probe was sent). An idle "
    "connection's dead peer is noticed after time + intvl × probes of silence; a live idle "
    "peer gets one probe every tcp_keepalive_time. Middleboxes (NAT gateways, load "
    "balancers, firewalls) drop idle flows silently after their own timeout, often "
    "minutes: a first probe later than that arrives too late to keep the flow alive. "
    "Keepalive does not fix CLOSE_WAIT: at best it resets a connection whose peer is gone, "
    "which removes it from the CLOSE_WAIT count while the descriptor still leaks until "
    "close().",
    (
        "ip-sysctl.rst: tcp_keepalive_time, tcp_keepalive_intvl, tcp_keepalive_probes",
        "man 7 tcp (TCP_KEEPIDLE, TCP_USER_TIMEOUT)",
        "man 7 socket (SO_KEEPALIVE)",
        "net/ipv4/tcp_timer.c tcp_keepalive_timer",
        "RFC 1122 §4.2.3.6",
    ),
    ("keepalive-opt-in", "keepalive-timeout-rst"),
)
KEEPALIVE_AGGRESSIVE = FindingDoc(
    "keepalive-aggressive",
    "Aggressive keepalive settings kill healthy connections on a brief blip",
    "Very short keepalive (e.g. 30/2/2) trades false resets for speed",
    "With keepalive probes only seconds apart and few of them, a peer that is briefly "
    "unreachable (a failover, a congested link, a paused VM) is declared dead and its "
    "connection reset, though it would have recovered. Each idle keepalive socket sends "
    "one probe every tcp_keepalive_time; probes come every tcp_keepalive_intvl only after "
    "one goes unanswered. The widely copied time=30, intvl=2, probes=2 declares the peer "
    "dead 4 s after the first unanswered probe (34 s of total silence), so a 4-second blip "
    "at the wrong moment kills the connection. It is usually advised to clear CLOSE_WAIT, "
    "which it cannot do.",
    (
        "ip-sysctl.rst: tcp_keepalive_intvl",
        "RFC 1122 §4.2.3.6 (MUST default to no less than two hours)",
        "man 7 tcp (TCP_USER_TIMEOUT)",
    ),
)


def keepalive_armed_text(armed: int, established: int) -> str:
    """Say how many ESTABLISHED sockets a keepalive sysctl change would touch."""
    if not established:
        return "no ESTABLISHED sockets now, so none a keepalive sysctl change would touch"
    if not armed:
        return (
            f"none of the {established} ESTABLISHED sockets has a keepalive timer armed: "
            "a sysctl change touches none of them now (they lack SO_KEEPALIVE)"
        )
    return (
        f"{armed} of {established} ESTABLISHED sockets have a keepalive timer armed "
        "now (a lower bound: another timer can hide it): a sysctl change touches those "
        "that did not set TCP_KEEPIDLE etc. themselves"
    )


def check_keepalive(ev: Evidence) -> Iterator[Finding]:
    """Explain the detection time, the middlebox gap and how many sockets use keepalive."""
    total = keepalive_detection_seconds(ev.snapshot)
    idle = ev.int_value("net.ipv4.tcp_keepalive_time")
    if total is None or idle is None:
        return
    established = ev.count(TcpState.ESTABLISHED)
    evidence = [f"dead peer noticed after {duration(total)} ({total} s) of silence"]
    armed = ev.details.established_keepalive if ev.details else None
    facts = sockopts.inventory(ev)
    reach: dict[str, object] = {}
    if facts is not None:
        reached, total_keepalive, own = sockopts.keepalive_reach(facts)
        line = (
            f"the tcp_keepalive_* sysctls reach {reached} of {total_keepalive} keepalive "
            "sockets (read from the kernel)"
        )
        if own:
            who = sockopts.named(own, sockopts.idle_seconds)
            line += (
                f"; {sum(g.sockets for g in own)} sockets in {sockopts.process_count(own)} "
                f"set their own TCP_KEEPIDLE ({who}): a change of "
                "tcp_keepalive_time does not reach them"
            )
        evidence.append(line)
        reach = {"reached": reached, "keepalive_sockets": total_keepalive}
        reach["own_idle"] = [
            {"process": g.name, "sockets": g.sockets, "idle": g.common} for g in own
        ]
    elif armed is not None:
        evidence.append(keepalive_armed_text(armed, established))
    late = [name for name, timeout in MIDDLEBOX_IDLE_TIMEOUTS if idle >= timeout]
    if late:
        evidence.append(
            f"first probe after {duration(idle)}: later than the idle timeout of {', '.join(late)}"
        )
    severity = Severity.INFO
    profile_targets = ev.profile.targets if ev.profile else {}
    if "net.ipv4.tcp_keepalive_time" in profile_targets:
        target = profile_targets["net.ipv4.tcp_keepalive_time"]
        if not target.satisfied_by(idle):
            severity = Severity.WARNING
    yield finding(
        KEEPALIVE,
        severity,
        evidence,
        "For long-lived connections through NAT or load balancers, have the application "
        "set SO_KEEPALIVE with TCP_KEEPIDLE below the shortest idle timeout on the path "
        "(per socket, no host change), or lower tcp_keepalive_time host-wide. Keep the "
        "kernel default where no middlebox sits in between.",
        data={
            "detection_seconds": total,
            "keepalive_armed": armed,
            "established": established,
            "late_for": late,
            **reach,
        },
    )


def check_keepalive_aggressive(ev: Evidence) -> Iterator[Finding]:
    """Warn about keepalive values that reset healthy connections on short outages."""
    idle = ev.int_value("net.ipv4.tcp_keepalive_time")
    interval = ev.int_value("net.ipv4.tcp_keepalive_intvl")
    probes = ev.int_value("net.ipv4.tcp_keepalive_probes")
    if idle is None or interval is None or probes is None:
        return
    window = interval * probes
    if idle >= AGGRESSIVE_TIME and window >= AGGRESSIVE_FAILURE_WINDOW:
        return
    evidence = [
        f"tcp_keepalive_time={idle} intvl={interval} probes={probes}: the peer is declared "
        f"dead {window} s after the first unanswered probe"
    ]
    armed = ev.details.established_keepalive if ev.details else None
    if armed:
        evidence.append(
            f"at least {armed} sockets probe once every {idle} s while idle "
            f"({armed / max(idle, 1):.1f} probes/s)"
        )
    yield finding(
        KEEPALIVE_AGGRESSIVE,
        Severity.WARNING,
        evidence,
        "Give probes a failure window longer than your worst expected blip (e.g. intvl 30, "
        "probes 4 = 2 min) and keep tcp_keepalive_time above a minute; set fast detection "
        "per socket with TCP_KEEPIDLE/TCP_USER_TIMEOUT where an application needs it. Fix "
        "CLOSE_WAIT in the application, not here.",
        data={"failure_window_seconds": window},
    )


DOCS = (KEEPALIVE, KEEPALIVE_AGGRESSIVE)
CHECKS = (check_keepalive, check_keepalive_aggressive)
