"""Findings from the socket options the kernel holds (the BPF inventory): facts, not guesses.

Each check names processes and counts. Sources: man 7 socket (SO_LINGER,
SO_KEEPALIVE, SO_REUSEADDR, SO_REUSEPORT), man 7 tcp (TCP_KEEPIDLE,
TCP_USER_TIMEOUT, TCP_LINGER2) and the kernel functions cited per check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from tcptune.advise.base import Evidence, FindingDoc, finding
from tcptune.model.findings import Finding, Severity
from tcptune.model.sockopts import SocketInventory, SocketOptions
from tcptune.model.tcpstates import TcpState

MAX_NAMED = 5  # processes named per finding line; the rest are counted


@dataclass(frozen=True)
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
        return f"{self.name}: {self.sockets} sockets{where}{shown}"


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
    "this is why it is used, and why the last response can be lost. TCPAbortOnLinger "
    "counts such closes.",
    ("man 7 socket (SO_LINGER)", "net/ipv4/tcp.c __tcp_close", "RFC 9293 §3.10.7.1"),
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

CHECKS: tuple[Callable[[Evidence], Iterator[Finding]], ...] = ()
DOCS: tuple[FindingDoc, ...] = ()


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


CHECKS = (check_linger,)
DOCS = (LINGER_ABORT, LINGER_BLOCK)
