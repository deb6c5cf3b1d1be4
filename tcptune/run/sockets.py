"""The `tcptune sockets` core: every TCP socket's options, filtered, with the sysctl defaults."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from tcptune.inspect.bpf.seams import BpfSeams
from tcptune.inspect.inspector import LIVE_PROC, read_context, read_sysctl
from tcptune.inspect.procfs import ProcFS
from tcptune.inspect.sockopts import read_inventory
from tcptune.model.record import record
from tcptune.model.snapshot import ReadStatus
from tcptune.model.sockopts import InventoryStatus, SocketOptions
from tcptune.model.sysctls import KNOWN_SYSCTLS
from tcptune.model.tcpstates import TcpState

# The namespace defaults a socket follows when it did not set its own.
DEFAULTS = (
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_fin_timeout",
)


@record
class SocketsFilter:
    """Which sockets to show: held by a PID, on a local or remote port, in given states."""

    pid: int | None = None
    port: int | None = None
    states: Collection[TcpState] = ()

    def keeps(self, item: SocketOptions, holders: Collection[int]) -> bool:
        """Return whether ``item`` (held by ``holders``) passes the filter."""
        if self.pid is not None and self.pid not in holders:
            return False
        if self.port is not None and self.port not in (item.local.port, item.remote.port):
            return False
        return not self.states or item.state in self.states


EVERY_SOCKET = SocketsFilter()  # no filter


@record
class SocketsResult:
    """The inventory (or why none), the sockets that passed the filter, and the defaults."""

    status: InventoryStatus
    shown: tuple[SocketOptions, ...]
    defaults: Mapping[str, int]  # sysctl name -> value, for "(sysctl)" columns
    netns_name: str | None


def run_sockets(
    procfs: ProcFS,
    seams: BpfSeams,
    wanted: SocketsFilter = EVERY_SOCKET,
    netns_name: str | None = None,
) -> SocketsResult:
    """Read every socket's options and keep those ``wanted`` asks for."""
    context = read_context(procfs, netns_name)
    defaults: dict[str, int] = {}
    for name in DEFAULTS:
        reading = read_sysctl(procfs, KNOWN_SYSCTLS[name], context.initial_netns)
        if reading.status is ReadStatus.OK and isinstance(reading.value, int):
            defaults[name] = reading.value
    if procfs.root != LIVE_PROC:
        reason = f"socket options not available: {procfs.root} is not the live /proc"
        status = InventoryStatus(None, reason, reason, requested=True)
        return SocketsResult(status, (), defaults, netns_name)
    status = read_inventory(
        procfs, defaults.get("net.ipv4.tcp_keepalive_time"), seams=seams, requested=True
    )
    inventory = status.inventory
    shown: tuple[SocketOptions, ...] = ()
    if inventory is not None:
        shown = tuple(
            item
            for item in inventory.sockets
            if wanted.keeps(item, inventory.holders.get(item.inode, ()))
        )
    return SocketsResult(status, shown, defaults, netns_name)
