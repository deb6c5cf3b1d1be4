"""Findings from the socket options the kernel holds (the BPF inventory): facts, not guesses.

Each check names processes and counts. Sources: man 7 socket (SO_LINGER,
SO_KEEPALIVE, SO_REUSEADDR, SO_REUSEPORT), man 7 tcp (TCP_KEEPIDLE,
TCP_USER_TIMEOUT, TCP_LINGER2) and the kernel functions cited per check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from tcptune.advise.base import Evidence, FindingDoc, finding
from tcptune.model.findings import Finding, Severity
from tcptune.model.record import record
from tcptune.model.tcpstates import TcpState
from tcptune.model.units import duration

if TYPE_CHECKING:  # only annotations: an audit without socket options never loads the records
    from tcptune.model.sockopts import SocketInventory, SocketOptions

MAX_NAMED = 5  # processes named per finding line; the rest are counted


@record
class Group:
    """Sockets of one command name: how many, in how many processes, and a typical value."""

    name: str
    pids: tuple[int, ...]
    sockets: int
    common: object  # the most common value of the grouped quantity

    def text(self, unit: Callable[[object], str] | None = None) -> str:
        """Return e.g. 'redis-server: 25 sockets, idle 300 s'."""
        where = f" in {len(self.pids)} processes" if len(self.pids) > 1 else ""
        shown = f", {unit(self.common)}" if unit else ""
        noun = "socket" if self.sockets == 1 else "sockets"
        return f"{self.name}: {self.sockets} {noun}{where}{shown}"


def inventory(ev: Evidence) -> SocketInventory | None:
    """Return the socket-option inventory, if the inspection could read it."""
    status = ev.snapshot.sockopts
    return status.inventory if status is not None else None


def groups(
    inv: SocketInventory,
    sockets: Iterable[SocketOptions],
    value: Callable[[SocketOptions], object] = lambda s: None,
) -> list[Group]:
    """Group sockets by the command name of their holder ('?' when no process holds one)."""
    counts: Counter[str] = Counter()
    pids: dict[str, set[int]] = {}
    values: dict[str, Counter[object]] = {}
    for item in sockets:
        owners = inv.owners(item.inode)
        name = owners[0].name if owners else "(no process)"
        counts[name] += 1
        pids.setdefault(name, set()).update(o.pid for o in owners)
        values.setdefault(name, Counter())[value(item)] += 1
    return [
        Group(name, tuple(sorted(pids[name])), count, values[name].most_common(1)[0][0])
        for name, count in counts.most_common()
    ]


def named(found: list[Group], unit: Callable[[object], str] | None = None) -> str:
    """Return the first MAX_NAMED groups as text, and how many more there are."""
    text = "; ".join(group.text(unit) for group in found[:MAX_NAMED])
    if len(found) > MAX_NAMED:
        text += f"; and {len(found) - MAX_NAMED} more"
    return text


def process_count(found: list[Group]) -> str:
    """Return how many distinct processes hold the grouped sockets, e.g. '1 process'."""
    count = len({pid for group in found for pid in group.pids})
    return f"{count} process" if count == 1 else f"{count} processes"


def keepalive_reach(inv: SocketInventory) -> tuple[int, int, list[Group]]:
    """Return (reached, keepalive sockets, groups setting their own TCP_KEEPIDLE)."""
    keepalive = [s for s in inv.sockets if s.keepalive and s.state is not TcpState.LISTEN]
    own = [s for s in keepalive if s.keepalive_idle is not None]
    idle = groups(inv, own, lambda s: s.keepalive_idle)
    return len(keepalive) - len(own), len(keepalive), idle


def idle_seconds(value: object) -> str:
    """Return 'idle 300 s'."""
    return f"idle {value} s" if isinstance(value, int) else "idle ?"


LINGER_ABORT = FindingDoc(
    "linger-abort",
    "Processes whose close() is an abort: SO_LINGER {1, 0}",
    "SO_LINGER with a zero timeout turns close() into a reset",
    "With SO_LINGER on and l_linger 0, close() sends a RST instead of a FIN and discards "
    "unsent data (tcp_close(): sock_flag(sk, SOCK_LINGER) && !sk->sk_lingertime -> "
    "tcp_disconnect). The peer sees 'connection reset by peer' and no TIME_WAIT is left: "
    "this is why it is used, and why the last response can be lost. TCPAbortOnData "
    "counts such closes.",
    ("man 7 socket (SO_LINGER)", "net/ipv4/tcp.c __tcp_close", "RFC 9293 §3.10.7.1"),
    ("linger-zero-rst",),
)
LINGER_BLOCK = FindingDoc(
    "linger-block",
    "Processes whose close() blocks: SO_LINGER {1, N}",
    "SO_LINGER with a timeout makes close() wait for the peer's ACK",
    "With SO_LINGER on and l_linger N > 0, a blocking close() waits up to N seconds for "
    "unsent data to be acknowledged, then resets the connection (sk_stream_wait_close() "
    "then tcp_close). A server thread closing many such sockets to a slow peer stalls.",
    ("man 7 socket (SO_LINGER)", "net/ipv4/tcp.c __tcp_close", "net/core/stream.c"),
)


def check_linger(ev: Evidence) -> Iterator[Finding]:
    """Name the processes holding SO_LINGER {1,0} and {1,N} sockets before they close one."""
    inv = inventory(ev)
    if inv is None:
        return
    lingering = [s for s in inv.sockets if s.linger]
    aborts = [s for s in lingering if s.linger_seconds == 0]
    blocks = [s for s in lingering if s.linger_seconds != 0]
    if aborts:
        found = groups(inv, aborts)
        yield finding(
            LINGER_ABORT,
            Severity.WARNING,
            [
                f"{len(aborts)} sockets in {process_count(found)} have SO_LINGER "
                f"{{1, 0}}: each close() is an abort (RST, unsent data discarded)",
                named(found),
            ],
            "If the process uses it to avoid TIME_WAIT, fix the port pressure instead "
            "(connection reuse, a wider ip_local_port_range); keep SO_LINGER {1,0} for "
            "deliberate aborts only. No sysctl changes this per-socket choice.",
            data={"sockets": len(aborts), "processes": [g.name for g in found]},
        )
    if blocks:
        found = groups(inv, blocks, lambda s: s.linger_seconds)
        yield finding(
            LINGER_BLOCK,
            Severity.INFO,
            [
                f"{len(blocks)} sockets in {process_count(found)} have SO_LINGER "
                "{1, N}: close() blocks until the data is acknowledged or N s pass",
                named(found, lambda n: f"linger {n} s"),
            ],
            "Make sure the closing thread can afford to wait N seconds per socket, or "
            "close from a non-blocking socket or a separate thread.",
            data={"sockets": len(blocks), "processes": [g.name for g in found]},
        )


USER_TIMEOUT = FindingDoc(
    "user-timeout",
    "Processes that set TCP_USER_TIMEOUT: their own limit on unacknowledged data",
    "TCP_USER_TIMEOUT replaces tcp_retries2 and changes keepalive",
    "TCP_USER_TIMEOUT (ms) is how long transmitted data may stay unacknowledged before "
    "the connection is dropped: it replaces the tcp_retries2 limit for that socket "
    "(tcp_write_timeout() in net/ipv4/tcp_timer.c uses icsk_user_timeout instead of the "
    "retries). With SO_KEEPALIVE on, TCP_KEEPCNT is ignored: the connection is reset at "
    "the first keepalive timer after the silence exceeds the user timeout, once a probe "
    "was sent (tcp_keepalive_timer()). A user timeout shorter than keepalive idle + one "
    "interval therefore ends an idle connection after one unanswered probe. It bounds "
    "connect() too: an unanswered SYN fails with ETIMEDOUT once the user timeout has "
    "passed (man 7 tcp's 'synchronized states only' is stale). A data or SYN timeout "
    "sends no RST; a keepalive give-up sends one.",
    ("man 7 tcp (TCP_USER_TIMEOUT)", "RFC 5482", "net/ipv4/tcp_timer.c tcp_keepalive_timer"),
    ("user-timeout-connect", "retrans-timeout-silent", "keepalive-timeout-rst"),
)
NO_REUSEADDR = FindingDoc(
    "listener-no-reuseaddr",
    "Listeners without SO_REUSEADDR: a restart fails with EADDRINUSE",
    "Without SO_REUSEADDR a restart cannot bind while old sockets linger",
    "A listener bound without SO_REUSEADDR conflicts with every socket still bound to its "
    "port, TIME_WAIT included (inet_csk_bind_conflict() skips a socket only when both "
    "have sk_reuse set). After the server closes connections itself they sit in "
    "TIME_WAIT for 60 s, and a restarted server's bind() fails with EADDRINUSE until "
    "they are gone. Accepted sockets inherit the listener's setting, so the old "
    "process's connections block the new one.",
    ("man 7 socket (SO_REUSEADDR)", "net/ipv4/inet_connection_sock.c inet_csk_bind_conflict"),
    ("listener-restart-eaddrinuse",),
)
LINGER2 = FindingDoc(
    "linger2",
    "Sockets with their own FIN_WAIT2 timeout (TCP_LINGER2)",
    "TCP_LINGER2 overrides tcp_fin_timeout per socket; negative means RST",
    "TCP_LINGER2 sets how long an orphaned socket stays in FIN_WAIT2, in place of "
    "tcp_fin_timeout, so a change of the sysctl does not reach these sockets. A negative "
    "value skips FIN_WAIT2: the connection is reset instead of waiting for the peer's "
    "FIN, counted as TCPAbortOnLinger when the socket was already in FIN_WAIT2 (after "
    "shutdown(SHUT_WR)) and as TCPAbortOnData after an ordinary close() (__tcp_close(), "
    "tcp_rcv_state_process()).",
    ("man 7 tcp (TCP_LINGER2)", "net/ipv4/tcp.c __tcp_close", "ip-sysctl.rst: tcp_fin_timeout"),
    ("linger2-negative",),
)
IDLE_NO_KEEPALIVE = FindingDoc(
    "idle-no-keepalive",
    "Long-idle connections without SO_KEEPALIVE: a vanished peer is never noticed",
    "Idle sockets without SO_KEEPALIVE never probe their peer",
    "A connection that neither sends nor receives and has no SO_KEEPALIVE is never "
    "probed: if the peer vanished (crash, NAT or load balancer timeout) the socket stays "
    "ESTABLISHED until the application writes to it. tcp_keepalive_* do nothing for it. "
    "Idle time is counted as the kernel's keepalive does, since the peer was last heard "
    "from (keepalive_time_elapsed() in include/net/tcp.h).",
    ("man 7 socket (SO_KEEPALIVE)", "include/net/tcp.h keepalive_time_elapsed"),
    ("keepalive-opt-in",),
)
IDLE_THRESHOLD = 600  # seconds: longer than the shortest common middlebox timeouts (keepalive.py)


def check_user_timeout(ev: Evidence) -> Iterator[Finding]:
    """Name TCP_USER_TIMEOUT users and say when it cuts keepalive short."""
    inv = inventory(ev)
    if inv is None:
        return
    users = [s for s in inv.sockets if s.user_timeout_ms]
    if not users:
        return
    found = groups(inv, users, lambda s: s.user_timeout_ms)
    evidence = [
        f"{len(users)} sockets in {process_count(found)} set TCP_USER_TIMEOUT: "
        + named(found, lambda ms: f"{ms / 1000:g} s" if isinstance(ms, int) else "?"),
    ]
    retries2 = ev.int_value("net.ipv4.tcp_retries2")
    if retries2 is not None:
        evidence.append(
            f"for them it replaces tcp_retries2 = {retries2} as the retransmission limit"
        )
    idle = ev.int_value("net.ipv4.tcp_keepalive_time")
    interval = ev.int_value("net.ipv4.tcp_keepalive_intvl")
    cut = [
        s
        for s in users
        if s.keepalive
        and idle is not None
        and interval is not None
        and s.user_timeout_ms / 1000
        < (s.keepalive_idle or idle) + (s.keepalive_interval or interval)
    ]
    if cut:
        evidence.append(
            f"{len(cut)} of them have keepalive on with a user timeout shorter than idle + "
            "one interval: TCP_KEEPCNT is ignored, one unanswered probe ends the connection"
        )
    yield finding(
        USER_TIMEOUT,
        Severity.INFO,
        evidence,
        "Keep TCP_USER_TIMEOUT above keepalive idle + interval x count if keepalive "
        "should decide; the tcp_retries2 and tcp_keepalive_probes sysctls do not apply.",
        data={"sockets": len(users), "processes": [g.name for g in found], "cut": len(cut)},
    )


def check_listener_reuseaddr(ev: Evidence) -> Iterator[Finding]:
    """Name listeners that will fail to restart with EADDRINUSE while old sockets linger."""
    inv = inventory(ev)
    if inv is None:
        return
    bare = [s for s in inv.sockets if s.state is TcpState.LISTEN and not s.reuseaddr]
    if not bare:
        return
    found = groups(inv, bare)
    ports = sorted({s.local.port for s in bare})
    shown = ", ".join(str(p) for p in ports[:10]) + (", ..." if len(ports) > 10 else "")
    yield finding(
        NO_REUSEADDR,
        Severity.WARNING,
        [
            f"{len(bare)} listeners in {process_count(found)} without SO_REUSEADDR "
            f"(ports {shown}): {named(found)}",
            f"{ev.count(TcpState.TIME_WAIT)} sockets in TIME_WAIT now",
        ],
        "Set SO_REUSEADDR on the listening socket before bind() (most servers do; it "
        "does not allow two listeners on one port). Shortening TIME_WAIT is not a fix.",
        data={"listeners": len(bare), "ports": ports, "processes": [g.name for g in found]},
    )


def check_linger2(ev: Evidence) -> Iterator[Finding]:
    """Name TCP_LINGER2 overrides of tcp_fin_timeout, and negative values (RST)."""
    inv = inventory(ev)
    if inv is None:
        return
    own = [s for s in inv.sockets if s.linger2 is not None]
    if not own:
        return
    negative = [s for s in own if s.linger2 is not None and s.linger2 < 0]
    positive = [s for s in own if s not in negative]
    fin_timeout = ev.int_value("net.ipv4.tcp_fin_timeout")
    evidence = []
    if positive:
        found = groups(inv, positive, lambda s: s.linger2)
        evidence.append(
            f"{len(positive)} sockets in {process_count(found)} set their own FIN_WAIT2 "
            f"timeout instead of tcp_fin_timeout = {fin_timeout} s: "
            + named(found, lambda n: f"{n} s")
        )
    if negative:
        found = groups(inv, negative)
        evidence.append(
            f"{len(negative)} sockets in {process_count(found)} set TCP_LINGER2 < 0: their "
            f"close() resets instead of waiting in FIN_WAIT2: {named(found)}"
        )
    yield finding(
        LINGER2,
        Severity.WARNING if negative else Severity.INFO,
        evidence,
        "A tcp_fin_timeout change does not reach these sockets. Keep negative TCP_LINGER2 "
        "only where resetting half-closed connections is intended.",
        data={"own": len(positive), "negative": len(negative)},
    )


def check_idle_without_keepalive(ev: Evidence) -> Iterator[Finding]:
    """Count long-idle ESTABLISHED sockets that no keepalive will ever probe, per process."""
    inv = inventory(ev)
    if inv is None:
        return
    idle = [
        s
        for s in inv.sockets
        if s.state is TcpState.ESTABLISHED and not s.keepalive and s.idle_seconds >= IDLE_THRESHOLD
    ]
    if not idle:
        return
    found = groups(inv, idle)
    longest = max(s.idle_seconds for s in idle)
    yield finding(
        IDLE_NO_KEEPALIVE,
        Severity.INFO,
        [
            f"{len(idle)} ESTABLISHED sockets in {process_count(found)} idle for over "
            f"{duration(IDLE_THRESHOLD)} without SO_KEEPALIVE (longest {duration(longest)}): "
            + named(found),
        ],
        "Have the application enable SO_KEEPALIVE (with TCP_KEEPIDLE below the path's "
        "shortest idle timeout) or close idle connections; no sysctl reaches them.",
        data={"sockets": len(idle), "longest_seconds": round(longest)},
    )


CHECKS = (
    check_linger,
    check_user_timeout,
    check_listener_reuseaddr,
    check_linger2,
    check_idle_without_keepalive,
)
DOCS = (LINGER_ABORT, LINGER_BLOCK, USER_TIMEOUT, NO_REUSEADDR, LINGER2, IDLE_NO_KEEPALIVE)
