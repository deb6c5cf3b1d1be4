"""Build a frozen Snapshot of TCP settings, socket states and counters. Reads only."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from tcptune.inspect.counters import read_counters
from tcptune.inspect.owners import OwnerSource, WalkAhead, look_up_owners
from tcptune.inspect.owners import walk_ahead as start_walk_ahead
from tcptune.inspect.procfs import ProcFS, ProcReadError, describe_os_error
from tcptune.inspect.statecounts import (
    BPF_DUMP_MIN_SOCKETS,
    LIVE_PROC,
    NetlinkFactory,
    SocketSource,
    read_sockets,
)
from tcptune.model.snapshot import (
    Context,
    Counters,
    Problem,
    ReadStatus,
    Snapshot,
    SysctlReading,
)
from tcptune.model.sysctls import AUXILIARY_SYSCTLS, KNOWN_SYSCTLS, Scope, SysctlSpec
from tcptune.model.tcpstates import TcpState
from tcptune.model.values import SysctlValue, parse

if TYPE_CHECKING:  # the BPF loader is imported only when socket options are read
    from tcptune.inspect.bpf.seams import BpfSeams
    from tcptune.inspect.bpfcount import BpfCounter
    from tcptune.model.sockopts import InventoryStatus

# include/linux/proc_ns.h: the initial network namespace's fixed inode number
# (kernels that predate the constant gave it a dynamic one; see initial_netns()).
PROC_NET_INIT_INO = 0xEFFFFFF9
# A key of the global ipv4_table, which net/ipv4/sysctl_net_ipv4.c registers in
# init_net only: visible exactly when this is the initial network namespace.
HOST_ONLY_PROBE = "net.ipv4.tcp_max_orphans"


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
    try:
        hostname: str | None = procfs.read_text("sys/kernel/hostname").strip() or None
    except ProcReadError:
        hostname = None
    inode = netns_inode(procfs)
    return Context(release, inode, initial_netns(procfs, inode), netns_name, hostname)


def read_settings(
    procfs: ProcFS, context: Context, extra: Iterable[SysctlSpec] = ()
) -> tuple[dict[str, SysctlReading], dict[str, SysctlReading], dict[str, SysctlValue]]:
    """Return the catalogue's readings, those of the ``extra`` keys, and the auxiliary values."""
    sysctls = {
        name: read_sysctl(procfs, spec, context.initial_netns)
        for name, spec in KNOWN_SYSCTLS.items()
    }
    others = {
        spec.name: read_sysctl(procfs, spec, context.initial_netns)
        for spec in extra
        if spec.name not in KNOWN_SYSCTLS
    }
    auxiliary: dict[str, SysctlValue] = {}
    for spec in AUXILIARY_SYSCTLS:
        reading = others.get(spec.name) or read_sysctl(procfs, spec, context.initial_netns)
        if reading.status is ReadStatus.OK and reading.value is not None:
            auxiliary[spec.name] = reading.value
    return sysctls, others, auxiliary


def _sysctl_problems(procfs: ProcFS, sysctls: Mapping[str, SysctlReading]) -> list[Problem]:
    problems = [
        Problem(f"sysctl {reading.name}", reading.reason or "unreadable")
        for reading in sysctls.values()
        if reading.status is ReadStatus.UNREADABLE
    ]
    if all(reading.status is not ReadStatus.OK for reading in sysctls.values()):
        # Every key "absent" is a tree (or mount) without sys/net, not a healthy host.
        problems.append(
            Problem(str(procfs.path("sys/net")), "no sysctl is readable: not a procfs tree?")
        )
    return problems


def read_only_reason(procfs: ProcFS, name: str) -> str | None:
    """Return why ``name`` cannot be written here (no write bit, read-only mount), or None."""
    path = procfs.sysctl_path(name)
    try:
        status = os.stat(path)
        mounted_read_only = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return None
    if mounted_read_only:
        return f"{path.parent} is mounted read-only: the key cannot be changed from here"
    if not status.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"read-only here (mode {stat.S_IMODE(status.st_mode):04o}): the kernel shows it "
            "in this namespace but only the host's initial namespace can change it"
        )
    return None


def _with_write_check(
    procfs: ProcFS, readings: dict[str, SysctlReading], names: frozenset[str]
) -> dict[str, SysctlReading]:
    return {
        name: replace(reading, read_only=read_only_reason(procfs, name))
        if name in names and reading.status is ReadStatus.OK
        else reading
        for name, reading in readings.items()
    }


def inspect_settings(
    procfs: ProcFS | None = None,
    *,
    netns_name: str | None = None,
    extra: Iterable[SysctlSpec] = (),
    writable: Iterable[str] = (),
    clock: float | None = None,
) -> Snapshot:
    """Return a Snapshot of the sysctls only (no sockets, no counters): what a plan needs.

    For the ``writable`` keys it also records why each cannot be written here.
    """
    procfs = procfs or ProcFS(LIVE_PROC)
    context = read_context(procfs, netns_name)
    sysctls, others, auxiliary = read_settings(procfs, context, extra)
    names = frozenset(writable)
    sysctls = _with_write_check(procfs, sysctls, names)
    others = _with_write_check(procfs, others, names)
    return Snapshot(
        taken_at=time.time() if clock is None else clock,
        context=context,
        sysctls=sysctls,
        sockets=None,
        counters=Counters(),
        problems=tuple(_sysctl_problems(procfs, sysctls)),
        auxiliary=auxiliary,
        profile_sysctls=others,
    )


# Above this many sockets (TIME_WAIT aside: they carry no options) a plain audit
# does not read the options: measured at 150,000 sockets the inventory adds about
# 2 s and grows by ~1.5 KiB a socket (README "Performance"); at 20,000, ~0.3 s.
# --options reads them whatever the count, and `tcptune sockets` always does.
OPTIONS_BY_DEFAULT_MAX_SOCKETS = 20_000


def _read_options(
    procfs: ProcFS,
    sysctls: Mapping[str, SysctlReading],
    options: BpfSeams,
    required: bool,
    owners: bool,
    problems: list[Problem],
    live_sockets: int,
    max_sockets: int,
) -> InventoryStatus | None:
    """Return every socket's options (BPF) or why not; a problem only if ``required``."""
    if not required and live_sockets > max_sockets:
        from tcptune.model.sockopts import InventoryStatus

        reason = (
            f"socket options not read by default with {live_sockets:,} sockets "
            f"(above {max_sockets:,} the inventory costs seconds and "
            "memory per socket); --options reads them"
        )
        return InventoryStatus(None, reason, reason, requested=False)
    if procfs.root != LIVE_PROC:
        if not required:
            return None
        from tcptune.model.sockopts import InventoryStatus

        reason = f"socket options not available: {procfs.root} is not the live /proc"
        problems.append(Problem("socket options (BPF iterator)", reason))
        return InventoryStatus(None, reason, reason, requested=True)
    from tcptune.inspect.sockopts import read_inventory

    idle = sysctls["net.ipv4.tcp_keepalive_time"].value
    sockopts = read_inventory(
        procfs,
        idle if isinstance(idle, int) else None,
        seams=options,
        owners=owners,
        requested=required,
    )
    if sockopts.unavailable and required:
        problems.append(Problem("socket options (BPF iterator)", sockopts.unavailable))
    return sockopts


def inspect(
    procfs: ProcFS | None = None,
    *,
    source: SocketSource = SocketSource.AUTO,
    details: bool = False,
    owners: bool = False,
    extra: Iterable[SysctlSpec] = (),
    netns_name: str | None = None,
    clock: float | None = None,
    netlink: NetlinkFactory | None = None,
    options: BpfSeams | None = None,
    options_required: bool = False,
    options_max_sockets: int = OPTIONS_BY_DEFAULT_MAX_SOCKETS,
    owners_source: OwnerSource = OwnerSource.AUTO,
    owner_seams: BpfSeams | None = None,
    counter: BpfCounter | None = None,
    socket_seams: BpfSeams | None = None,
    bpf_min_sockets: int = BPF_DUMP_MIN_SOCKETS,
    walk_ahead: WalkAhead = start_walk_ahead,
) -> Snapshot:
    """Read settings, socket states and counters into a Snapshot; never raises for bad files.

    ``details`` also aggregates per-socket facts in the same pass; ``owners``
    then looks up the processes holding the CLOSE_WAIT sockets and shared
    listeners (one BPF task_file pass with ``owner_seams``, else a readlink
    per open descriptor on the host; ``owners_source`` BPF makes the
    fallback a problem); ``extra`` names
    keys outside the catalogue to read too (those a profile sets);
    ``options`` reads every socket's options with the BPF iterator (and their
    owners with ``owners``); unavailable options are a problem only if
    ``options_required``, which also reads them above ``options_max_sockets``;
    ``counter`` counts the states in the kernel when no details are wanted;
    ``socket_seams`` lets details come from one BPF walk (``source`` AUTO, at
    least ``bpf_min_sockets`` sockets; or ``source`` BPF). ``walk_ahead``
    may start the owners' /proc walk in a forked child before the dump
    (owners.walk_ahead decides: procfs certain to answer, enough sockets);
    it is always reaped before this returns.
    """
    procfs = procfs or ProcFS(LIVE_PROC)
    context = read_context(procfs, netns_name)
    sysctls, others, auxiliary = read_settings(procfs, context, extra)
    problems = _sysctl_problems(procfs, sysctls)
    ahead = walk_ahead(procfs, owners_source) if owners and details else None
    try:
        sockets = read_sockets(
            procfs,
            source,
            details,
            problems,
            netlink,
            socket_inodes=owners,
            counter=counter,
            bpf_seams=socket_seams,
            bpf_min_sockets=bpf_min_sockets,
        )
        counters = read_counters(procfs, problems)
        found = None
        if owners and sockets is not None and sockets.details is not None:
            found = look_up_owners(
                procfs,
                sockets.details.owner_inodes(),
                source=owners_source,
                seams=owner_seams,
                walked=ahead,
            )
            # bpf_unavailable is None when no socket needed an owner: nothing is missing then
            if owners_source is OwnerSource.BPF and found.bpf_unavailable is not None:
                problems.append(Problem("socket owners (BPF task_file)", found.bpf_unavailable))
    finally:
        if ahead is not None:
            ahead.close()  # used above, or not needed after all: reaped, no child outlives this
    sockopts = None
    if options is not None:
        live = sockets.all_sockets - sockets.total(TcpState.TIME_WAIT) if sockets else 0
        sockopts = _read_options(
            procfs, sysctls, options, options_required, owners, problems, live, options_max_sockets
        )
    return Snapshot(
        taken_at=time.time() if clock is None else clock,
        context=context,
        sysctls=sysctls,
        sockets=sockets,
        counters=counters,
        problems=tuple(problems),
        auxiliary=auxiliary,
        sockopts=sockopts,
        profile_sysctls=others,
        owners=found,
    )


__all__ = [
    "LIVE_PROC",
    "NetlinkFactory",
    "SocketSource",
    "inspect",
    "inspect_settings",
    "read_settings",
    "read_sysctl",
]
