"""Findings read from TcpExt counters: SO_LINGER resets, unread-data closes, listen overflows."""

from __future__ import annotations

from collections.abc import Iterator

from tcptune.advise.base import Evidence, FindingDoc, finding, since
from tcptune.model.findings import Finding, Severity

LINGER_ZERO = FindingDoc(
    "linger-zero",
    "Resets counted in TCPAbortOnData: SO_LINGER {1, 0} closes or data after close()",
    "SO_LINGER with a zero timeout turns close() into a reset",
    "With SO_LINGER set to l_onoff=1, l_linger=0, close() does not send FIN: the kernel discards "
    "any unsent data and sends RST, and the peer sees 'connection reset by peer'; no TIME_WAIT is "
    "left. TcpExt TCPAbortOnData counts such closes when no received data was unread, whether or "
    "not anything was in flight (with unread data the close counts in TCPAbortOnClose instead), "
    "resets sent because data or an out-of-order FIN arrived after the application closed, and "
    "orphans killed on reaching FIN_WAIT_2 with a negative TCP_LINGER2. TCPAbortOnLinger counts "
    "only close() on a socket already in FIN_WAIT_2 with a negative TCP_LINGER2. A zero linger is "
    "legitimate only where losing in-flight data is acceptable and TIME_WAIT must be avoided on "
    "the active closer, e.g. aborting a connection already known to be broken, or load-test "
    "clients. Using it to 'avoid a blocking close' or to 'clear CLOSE_WAIT' is wrong: close() does "
    "not block without a positive linger, and a CLOSE_WAIT descriptor leaks until the application "
    "holding it calls close() (a peer RST, a timeout or ss -K can end the connection, never the "
    "descriptor); SO_LINGER "
    "changes what close() does, not whether it is called.",
    (
        "man 7 socket (SO_LINGER)",
        "net/ipv4/tcp.c __tcp_close",
        "net/ipv4/tcp_input.c tcp_rcv_state_process",
        "Documentation/networking/snmp_counter.rst",
        "RFC 9293 §3.10.5 (ABORT)",
    ),
    ("linger-zero-rst", "data-after-close-rst", "linger2-negative"),
)
ABORT_ON_CLOSE = FindingDoc(
    "abort-on-close",
    "Connections reset because close() found unread data (TCPAbortOnClose)",
    "Closing a socket with unread received data sends RST, not FIN",
    "If an application calls close() while received data sits unread in the socket, Linux "
    "sends RST instead of FIN and the peer may lose the last response it had not yet read "
    "(RFC 2525 §2.17). Typical causes: a server that replies and closes without draining "
    "the request body, or a client that gives up on a response.",
    ("net/ipv4/tcp.c __tcp_close", "RFC 2525 §2.17", "man 2 shutdown"),
    ("unread-close-rst",),
)
LISTEN_OVERFLOW = FindingDoc(
    "listen-overflow",
    "Listen queue overflows: connections dropped before accept()",
    "A full accept queue drops handshakes: raise backlog or accept faster",
    "ListenOverflows counts handshakes dropped because a listener's accept queue was full "
    "(the application does not call accept() fast enough); ListenDrops counts those plus "
    "other drops on a listener. The accept queue holds min(listen() backlog, "
    "net.core.somaxconn); the queue of half-open connections counts as full at the same "
    "limit, and with tcp_syncookies=1 (the default) SYN cookies take over then. "
    "tcp_max_syn_backlog only matters when tcp_syncookies=0, where it keeps the last "
    "quarter of the queue for peers already seen. Clients see slow connects (retransmitted "
    "SYNs), or connections that are open but stall on their first request: the final ACK "
    "was dropped and the server retransmits its SYN-ACK.",
    (
        "ip-sysctl.rst: somaxconn, tcp_max_syn_backlog, tcp_syncookies",
        "man 2 listen",
        "net/ipv4/tcp_input.c tcp_conn_request",
        "net/ipv4/tcp_ipv4.c tcp_v4_syn_recv_sock",
    ),
)


def _counter_finding(ev: Evidence, name: str) -> tuple[Severity, list[str]] | None:
    total = ev.counter(name)
    if not total:
        return None
    rate = ev.rate(name)
    severity = Severity.WARNING if rate else Severity.INFO
    return severity, [since(ev, name)]


def check_linger_zero(ev: Evidence) -> Iterator[Finding]:
    """Report resets from zero-linger closes, warning when the counter is rising."""
    found = _counter_finding(ev, "TCPAbortOnData")
    if found is None:
        return
    severity, evidence = found
    if ev.rates is None:
        evidence.append("run with --interval 10 to see whether it is rising now")
    yield finding(
        LINGER_ZERO,
        severity,
        evidence,
        "Find the application setting SO_LINGER {1, 0} (strace -e setsockopt, or its "
        "source) and let it close() normally unless dropping data is intended; for data "
        "arriving after close, have it shutdown(SHUT_WR) and read to EOF before close().",
    )


def check_abort_on_close(ev: Evidence) -> Iterator[Finding]:
    """Report resets from closing sockets with unread data."""
    found = _counter_finding(ev, "TCPAbortOnClose")
    if found is None:
        return
    severity, evidence = found
    yield finding(
        ABORT_ON_CLOSE,
        severity,
        evidence,
        "Read the request fully (or shutdown(SHUT_WR) and drain) before close() where the "
        "peer must receive the last response.",
    )


def check_listen_overflow(ev: Evidence) -> Iterator[Finding]:
    """Report accept-queue overflows with the listeners' queues and the limits."""
    overflows = ev.counter("ListenOverflows") or 0
    drops = ev.counter("ListenDrops") or 0
    full = [
        item
        for item in (ev.details.listeners if ev.details else ())
        if item.backlog and item.queued > item.backlog  # include/net/sock.h sk_acceptq_is_full
    ]
    if not overflows and not drops and not full:
        return
    rising = bool(ev.rate("ListenOverflows") or ev.rate("ListenDrops"))
    severity = Severity.CRITICAL if rising else Severity.WARNING
    evidence = [since(ev, "ListenOverflows"), since(ev, "ListenDrops")]
    evidence += [
        f"listener {item.local}: accept queue full ({item.queued}/{item.backlog})"
        for item in full[:5]
    ]
    evidence.append(
        f"net.core.somaxconn = {ev.value('net.core.somaxconn')}, "
        f"tcp_max_syn_backlog = {ev.value('net.ipv4.tcp_max_syn_backlog')}"
    )
    yield finding(
        LISTEN_OVERFLOW,
        severity,
        evidence,
        "First make the application accept faster (more workers, no blocking in the accept "
        "loop); then raise its listen() backlog and net.core.somaxconn together (the smaller "
        "one wins). Keep tcp_syncookies=1 so a full SYN queue falls back to cookies.",
        data={
            "overflows": overflows,
            "drops": drops,
            "full_listeners": [str(item.local) for item in full],
        },
    )


DOCS = (LINGER_ZERO, ABORT_ON_CLOSE, LISTEN_OVERFLOW)
CHECKS = (check_linger_zero, check_abort_on_close, check_listen_overflow)
