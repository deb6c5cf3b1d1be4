"""How many live sockets a keepalive or fin-timeout change would reach, and how many override it.

A tcp_keepalive_* sysctl is only a default: it reaches the SO_KEEPALIVE
sockets that did not set their own TCP_KEEPIDLE/KEEPINTVL/KEEPCNT
(keepalive_time_when(), keepalive_intvl_when(), keepalive_probes() in
include/net/tcp.h), and TCP_USER_TIMEOUT makes the probe count moot
(tcp_keepalive_timer()). tcp_fin_timeout reaches sockets without their own
TCP_LINGER2 when they close (tcp_fin_time()). Read-only: the socket options
come from the inventory (inspect/sockopts.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tcptune.apply.plan import Plan
from tcptune.inspect.procfs import ProcFS
from tcptune.model.record import record
from tcptune.model.sockopts import InventoryStatus, SocketOptions
from tcptune.model.tcpstates import TcpState

if TYPE_CHECKING:
    from tcptune.inspect.bpf.seams import BpfSeams


@record
class Reach:
    """One planned key: the live sockets it applies to, and those that override it."""

    name: str
    reached: int
    overriding: int
    considered: int  # the sockets the key is about at all (e.g. those with SO_KEEPALIVE)
    what: str  # what ``considered`` counts, e.g. "SO_KEEPALIVE sockets"


@record
class PlanReach:
    """The reach of each keepalive or fin-timeout change of a plan, or why it is unknown."""

    items: tuple[Reach, ...]
    unavailable: str | None = None


Rule = tuple[str, Callable[[SocketOptions], bool], Callable[[SocketOptions], bool]]


def _open(item: SocketOptions) -> bool:
    return item.state is not TcpState.LISTEN


def _keepalive(item: SocketOptions) -> bool:
    return item.keepalive and _open(item)


# key -> (what is counted, which sockets it is about, which of them override it)
RULES: dict[str, Rule] = {
    "net.ipv4.tcp_keepalive_time": (
        "SO_KEEPALIVE sockets",
        _keepalive,
        lambda s: s.keepalive_idle is not None,
    ),
    "net.ipv4.tcp_keepalive_intvl": (
        "SO_KEEPALIVE sockets",
        _keepalive,
        lambda s: s.keepalive_interval is not None,
    ),
    "net.ipv4.tcp_keepalive_probes": (
        "SO_KEEPALIVE sockets",
        _keepalive,
        lambda s: s.keepalive_count is not None or s.user_timeout_ms > 0,
    ),
    "net.ipv4.tcp_fin_timeout": (
        "open sockets (when they close)",
        _open,
        lambda s: s.linger2 is not None,
    ),
}


def plan_reach(plan: Plan, status: InventoryStatus | None) -> PlanReach | None:
    """Return the reach of the plan's keepalive and fin-timeout changes; None if it has none."""
    keys = [item.name for item in plan.changes if item.name in RULES]
    if not keys:
        return None
    if status is None or status.inventory is None:
        reason = status.unavailable if status else "socket options were not read"
        return PlanReach((), reason)
    sockets = status.inventory.sockets
    items = []
    for key in keys:
        what, about, overrides = RULES[key]
        relevant = [s for s in sockets if about(s)]
        own = sum(1 for s in relevant if overrides(s))
        items.append(Reach(key, len(relevant) - own, own, len(relevant), what))
    return PlanReach(tuple(items))


def needs_inventory(plan: Plan) -> bool:
    """Return whether the plan changes a key whose reach depends on socket options."""
    return any(item.name in RULES for item in plan.changes)


def read_reach(plan: Plan, procfs: ProcFS, seams: BpfSeams) -> PlanReach | None:
    """Read the socket options (only if the plan needs them) and return the plan's reach."""
    if not needs_inventory(plan):
        return None
    from tcptune.inspect.inspector import LIVE_PROC
    from tcptune.inspect.sockopts import read_inventory

    if procfs.root != LIVE_PROC:
        return PlanReach((), f"socket options not available: {procfs.root} is not the live /proc")
    try:
        idle: int | None = int(procfs.sysctl_path("net.ipv4.tcp_keepalive_time").read_text())
    except (OSError, ValueError):
        idle = None
    return plan_reach(plan, read_inventory(procfs, idle, seams=seams, owners=False))
