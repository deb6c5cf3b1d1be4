"""Build a frozen Snapshot of TCP settings, socket states and counters. Reads only."""

from __future__ import annotations

import enum
import os
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tcptune.inspect.counters import read_counters
from tcptune.inspect.procfs import ProcFS, ProcReadError, describe_os_error
from tcptune.inspect.proctcp import read_proc_tcp
from tcptune.inspect.sockdetails import DetailsBuilder
from tcptune.inspect.sockdiag import SockDiagError, details_builder, dump_counts
from tcptune.model.snapshot import (
    Context,
    Problem,
    ReadStatus,
    Snapshot,
    SocketCounts,
    SysctlReading,
)
from tcptune.model.sysctls import AUXILIARY_SYSCTLS, KNOWN_SYSCTLS, Scope, SysctlSpec
from tcptune.model.tcpstates import TcpState
from tcptune.model.values import SysctlValue, parse

if TYPE_CHECKING:  # the BPF loader is imported only when socket options are read
    from tcptune.inspect.sockopts import BpfSeams

LIVE_PROC = Path("/proc")
NetlinkFactory = Callable[[], socket.socket]  # opens a NETLINK_SOCK_DIAG socket (injectable)
# include/linux/proc_ns.h: the initial network namespace's fixed inode number
# (kernels that predate the constant gave it a dynamic one; see initial_netns()).
PROC_NET_INIT_INO = 0xEFFFFFF9
# A key of the global ipv4_table, which net/ipv4/sysctl_net_ipv4.c registers in
# init_net only: visible exactly when this is the initial network namespace.
HOST_ONLY_PROBE = "net.ipv4.tcp_max_orphans"


class SocketSource(enum.Enum):
    """Where socket states are read from."""

    AUTO = "auto"  # netlink on the live /proc, else the procfs tables
    NETLINK = "netlink"
    PROCFS = "procfs"


def read_sysctl(procfs: ProcFS, spec: SysctlSpec, initial_netns: bool | None) -> SysctlReading:
    """Read one sysctl, telling an absent key from one this namespace cannot see."""
    path = procfs.sysctl_path(spec.name)
    try:
        raw = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        if spec.removed_in:
            return SysctlReading(
                spec, ReadStatus.ABSENT, reason=f"removed in Linux {spec.removed_in}"
            )
        if spec.scope is Scope.HOST and initial_netns is False:
            return SysctlReading(
                spec,
                ReadStatus.NOT_IN_NAMESPACE,
                reason="host-wide: only the initial network namespace shows it",
            )
        return SysctlReading(spec, ReadStatus.ABSENT, reason="this kernel has no such key")
    except OSError as exc:
        return SysctlReading(
            spec, ReadStatus.UNREADABLE, reason=f"{path}: {describe_os_error(exc)}"
        )
    try:
        value = parse(spec.unit, raw)
    except ValueError as exc:
        return SysctlReading(
            spec, ReadStatus.UNREADABLE, raw=raw.strip(), reason=f"{path}: unexpected value: {exc}"
        )
    return SysctlReading(spec, ReadStatus.OK, value=value, raw=raw.strip())


def netns_inode(procfs: ProcFS) -> int | None:
    """Return the inode of this process's network namespace, or None."""
    try:
        link = os.readlink(procfs.path("self/ns/net"))
    except OSError:
        return None
    digits = link.partition("[")[2].rstrip("]")
    return int(digits) if digits.isdigit() else None


def initial_netns(procfs: ProcFS, inode: int | None) -> bool | None:
    """Return whether this is the host's initial network namespace (None: cannot tell)."""
    if inode == PROC_NET_INIT_INO:
        return True
    probe = procfs.sysctl_path(HOST_ONLY_PROBE)
    if not probe.parent.is_dir():
        return None  # no net.ipv4 sysctls at all: nothing to tell by
    return probe.exists()


def read_context(procfs: ProcFS, netns_name: str | None = None) -> Context:
    """Return the kernel release and which network namespace this is."""
    try:
        release: str | None = procfs.read_text("sys/kernel/osrelease").strip() or None
    except ProcReadError:
        release = None
    inode = netns_inode(procfs)
    return Context(release, inode, initial_netns(procfs, inode), netns_name)


def _histogram(counts: list[int]) -> dict[TcpState, int]:
    return {state: counts[state.value] for state in TcpState}


def _unknown_states(counts: list[int], source: str, problems: list[Problem]) -> None:
    for code, count in enumerate(counts):
        if count and not 1 <= code <= len(TcpState):
            problems.append(Problem(source, f"{count} sockets in unknown state code {code}"))


def read_sockets_netlink(
    details: DetailsBuilder | None, problems: list[Problem], netlink: NetlinkFactory | None = None
) -> SocketCounts:
    """Count states over netlink sock_diag; raise OSError/SockDiagError if netlink is unusable."""
    ipv4, ipv6 = dump_counts(details, sock_factory=netlink)
    for counts in (ipv4, ipv6):
        _unknown_states(counts, "netlink sock_diag", problems)
    return SocketCounts(
        "netlink", _histogram(ipv4), _histogram(ipv6), details.build() if details else None
    )


def read_sockets_procfs(
    procfs: ProcFS,
    details: DetailsBuilder | None,
    problems: list[Problem],
    notes: Iterable[str] = (),
) -> SocketCounts | None:
    """Count states from /proc/net/tcp and tcp6; return None if neither can be read."""
    ipv4, ipv6 = [0] * 256, [0] * 256
    notes = list(notes)
    read4 = read_proc_tcp(procfs, "net/tcp", ipv4, problems, details)
    # A kernel without IPv6 (ipv6.disable=1) has neither tcp6 nor if_inet6:
    # that is a fact to note, not a failed read.
    if procfs.path("net/tcp6").exists() or procfs.path("net/if_inet6").exists():
        read6 = read_proc_tcp(procfs, "net/tcp6", ipv6, problems, details)
    else:
        read6 = False
        notes.append("IPv6 not available: no /proc/net/tcp6")
    if not read4 and not read6:
        return None
    return SocketCounts(
        "procfs",
        _histogram(ipv4),
        _histogram(ipv6),
        details.build() if details else None,
        tuple(notes),
    )


def read_sockets(
    procfs: ProcFS,
    source: SocketSource,
    want_details: bool,
    problems: list[Problem],
    netlink: NetlinkFactory | None = None,
    socket_inodes: bool = True,
) -> SocketCounts | None:
    """Count TCP sockets by state from the chosen source, falling back from netlink."""
    use_netlink = source is SocketSource.NETLINK or (
        source is SocketSource.AUTO and procfs.root == LIVE_PROC
    )
    fallback: list[str] = []
    if use_netlink:
        try:
            builder = details_builder(socket_inodes) if want_details else None
            return read_sockets_netlink(builder, problems, netlink)
        except (OSError, SockDiagError) as exc:
            reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            if source is SocketSource.NETLINK:
                problems.append(Problem("netlink sock_diag", reason))
                return None
            fallback.append(f"netlink sock_diag unavailable ({reason}); read /proc/net/tcp")
    return read_sockets_procfs(
        procfs,
        DetailsBuilder(keep_inodes=socket_inodes) if want_details else None,
        problems,
        fallback,
    )


def inspect(
    procfs: ProcFS | None = None,
    *,
    source: SocketSource = SocketSource.AUTO,
    details: bool = False,
    socket_inodes: bool = True,
    netns_name: str | None = None,
    clock: float | None = None,
    netlink: NetlinkFactory | None = None,
    options: BpfSeams | None = None,
    options_required: bool = False,
) -> Snapshot:
    """Read settings, socket states and counters into a Snapshot; never raises for bad files.

    ``details`` also aggregates per-socket facts in the same pass;
    ``socket_inodes`` keeps CLOSE_WAIT inodes for attribution to processes;
    ``options`` reads every socket's options with the BPF iterator (and their
    owners with ``socket_inodes``); unavailable options are a problem only if
    ``options_required``.
    """
    procfs = procfs or ProcFS(LIVE_PROC)
    problems: list[Problem] = []
    context = read_context(procfs, netns_name)
    sysctls = {
        name: read_sysctl(procfs, spec, context.initial_netns)
        for name, spec in KNOWN_SYSCTLS.items()
    }
    for reading in sysctls.values():
        if reading.status is ReadStatus.UNREADABLE:
            problems.append(Problem(f"sysctl {reading.name}", reading.reason or "unreadable"))
    if all(r.status is not ReadStatus.OK for r in sysctls.values()):
        # Every key "absent" is a tree (or mount) without sys/net, not a healthy host.
        problems.append(
            Problem(str(procfs.path("sys/net")), "no sysctl is readable: not a procfs tree?")
        )
    auxiliary: dict[str, SysctlValue] = {}
    for name in AUXILIARY_SYSCTLS:
        try:
            auxiliary[name] = int(procfs.sysctl_path(name).read_text().strip())
        except (OSError, ValueError):
            continue
    sockets = read_sockets(procfs, source, details, problems, netlink, socket_inodes)
    counters = read_counters(procfs, problems)
    sockopts = None
    if options is not None and procfs.root != LIVE_PROC and options_required:
        from tcptune.model.sockopts import InventoryStatus

        reason = f"socket options not available: {procfs.root} is not the live /proc"
        sockopts = InventoryStatus(None, reason, reason, requested=True)
        problems.append(Problem("socket options (BPF iterator)", reason))
    elif options is not None and procfs.root == LIVE_PROC:
        from tcptune.inspect.sockopts import read_inventory

        idle = sysctls["net.ipv4.tcp_keepalive_time"].value
        sockopts = read_inventory(
            procfs,
            idle if isinstance(idle, int) else None,
            seams=options,
            owners=socket_inodes,
            requested=options_required,
        )
        if sockopts.unavailable and options_required:
            problems.append(Problem("socket options (BPF iterator)", sockopts.unavailable))
    close_wait_ages = None
    # a dump of its own, only when there are CLOSE_WAIT sockets to date
    if details and sockets and sockets.source == "netlink" and sockets.total(TcpState.CLOSE_WAIT):
        from tcptune.inspect.closewait import read_close_wait_ages

        try:
            close_wait_ages = read_close_wait_ages(netlink)
        except (OSError, SockDiagError) as exc:
            problems.append(Problem("netlink sock_diag (CLOSE_WAIT ages)", str(exc)))
    return Snapshot(
        taken_at=time.time() if clock is None else clock,
        context=context,
        sysctls=sysctls,
        sockets=sockets,
        counters=counters,
        problems=tuple(problems),
        auxiliary=auxiliary,
        sockopts=sockopts,
        close_wait_ages=close_wait_ages,
    )


__all__ = ["SocketSource", "inspect", "read_sysctl"]
