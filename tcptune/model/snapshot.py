"""Frozen records the inspector produces and every later layer reads."""

from __future__ import annotations

import enum
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import field
from typing import TYPE_CHECKING

from tcptune.model.heavyhitters import TopCounts
from tcptune.model.record import record
from tcptune.model.sysctls import SysctlSpec
from tcptune.model.tcpstates import TcpState
from tcptune.model.values import SysctlValue

if TYPE_CHECKING:  # sockopts.py builds on Endpoint below
    from tcptune.model.closewait import CloseWaitAges
    from tcptune.model.sockopts import InventoryStatus


class ReadStatus(enum.Enum):
    """Whether a sysctl could be read, and if not, why."""

    OK = "ok"
    ABSENT = "absent"  # this kernel does not have the key
    NOT_IN_NAMESPACE = "not in this namespace"  # host-wide key, hidden from a container
    UNREADABLE = "unreadable"  # exists but reading or parsing failed


@record
class SysctlReading:
    """One sysctl as read from /proc/sys."""

    spec: SysctlSpec
    status: ReadStatus
    value: SysctlValue | None = None
    raw: str | None = None
    reason: str | None = None  # why it is absent or unreadable
    read_only: str | None = None  # why it cannot be written here (checked for plans only)

    @property
    def name(self) -> str:
        """Return the dotted key."""
        return self.spec.name


@record
class Problem:
    """Something the inspection could not read; the report is incomplete."""

    source: str  # the file or interface, e.g. "/proc/net/snmp" or "netlink sock_diag"
    message: str


@record
class Endpoint:
    """An address and port as text, e.g. ``127.0.0.1`` and ``8080``."""

    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@record
class Listener:
    """A listening socket and its accept queue (inet_diag rqueue/wqueue for LISTEN)."""

    local: Endpoint
    queued: int  # connections waiting for accept()
    backlog: int  # the effective backlog: min(listen() backlog, somaxconn)
    inode: int
    uid: int


class InodePorts(Mapping[int, int]):
    """Socket inode -> local port, kept in two parallel arrays sorted by inode (10 bytes a socket).

    Iteration and ``items()`` walk the arrays; a lookup by inode bisects.
    """

    __slots__ = ("_inodes", "_ports")

    def __init__(self, inodes: array[int] | None = None, ports: array[int] | None = None) -> None:
        self._inodes = inodes if inodes is not None else array("Q")
        self._ports = ports if ports is not None else array("H")
        if len(self._inodes) != len(self._ports):
            raise ValueError("inodes and ports differ in length")

    def __getitem__(self, inode: int) -> int:
        position = bisect_left(self._inodes, inode)
        if position < len(self._inodes) and self._inodes[position] == inode:
            return self._ports[position]
        raise KeyError(inode)

    def __iter__(self) -> Iterator[int]:
        return iter(self._inodes)

    def __len__(self) -> int:
        return len(self._inodes)

    def items(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        """Return (inode, port) pairs without building an index."""
        return zip(self._inodes, self._ports, strict=True)

    def values(self) -> Iterator[int]:  # type: ignore[override]
        """Return the ports in inode order."""
        return iter(self._ports)

    @property
    def inodes(self) -> array[int]:
        """Return the inodes as a compact array, ascending."""
        return self._inodes

    @property
    def ports(self) -> array[int]:
        """Return the local ports as a compact array, in step with ``inodes``."""
        return self._ports


@record
class SocketDetails:
    """Per-socket facts the advisor needs, aggregated in the same pass as the counts.

    Everything is a count or a bounded heavy-hitters summary (TopCounts: the
    busiest keys, counts at most ``error`` below the truth), except the
    CLOSE_WAIT sockets: inodes kept for attribution to processes (10 bytes a
    socket) and, from a sock_diag dump, every one's tcp_info ages in columns.
    """

    established_keepalive: int  # ESTABLISHED sockets whose keepalive timer is pending
    fin_wait2_orphaned: int  # no process holds them: they live tcp_fin_timeout
    fin_wait2_held: int  # still held after shutdown(): no timer ends them
    close_wait_inodes: Mapping[int, int]  # inode -> local port (InodePorts: sorted arrays)
    close_wait_by_local: TopCounts[Endpoint]  # busiest local endpoints of CLOSE_WAIT
    listeners: tuple[Listener, ...]
    time_wait_by_remote: TopCounts[Endpoint]  # busiest remote endpoints (destinations)
    time_wait_by_remote_address: TopCounts[str] = field(default_factory=TopCounts)
    time_wait_by_local_port: TopCounts[int] = field(default_factory=TopCounts)
    close_wait_ages: CloseWaitAges | None = None  # every CLOSE_WAIT socket's tcp_info ages

    @property
    def close_wait(self) -> int:
        """Return how many CLOSE_WAIT sockets were seen."""
        return self.close_wait_by_local.total

    def owner_inodes(self) -> array[int]:
        """Return the inodes whose holders the advice names (CLOSE_WAIT, shared listeners).

        Ascending, each once, no 0: the CLOSE_WAIT column itself (already
        sorted; read-only like every column here), or a copy of it with the
        few shared listeners inserted, so no set or list of every inode is built.
        """
        per_local: dict[Endpoint, list[int]] = {}
        for item in self.listeners:
            per_local.setdefault(item.local, []).append(item.inode)
        shared = [inode for inodes in per_local.values() if len(inodes) > 1 for inode in inodes]
        found = self.close_wait_inodes
        if isinstance(found, InodePorts):
            wanted = found.inodes
            if not shared and (not wanted or wanted[0]):
                return wanted
            wanted = array("Q", wanted)
        else:  # a plain mapping (constructed snapshots)
            wanted = array("Q", sorted(found))
        for inode in shared:
            position = bisect_left(wanted, inode)
            if position == len(wanted) or wanted[position] != inode:
                wanted.insert(position, inode)
        return wanted[bisect_left(wanted, 1) :] if wanted and not wanted[0] else wanted


@record
class Owner:
    """A process holding sockets."""

    pid: int
    name: str
    user: str


@record
class SocketOwners:
    """Which processes hold the sockets advice names, looked up while inspecting."""

    holders: Mapping[int, tuple[int, ...]]  # socket inode -> PIDs (forked children share)
    processes: Mapping[int, Owner]  # PID -> name and user
    source: str = "procfs"  # "bpf task_file" (one BPF iteration) or "procfs" (readlinks)
    bpf_unavailable: str | None = None  # why BPF was not used (None: it was, or nothing wanted)
    bpf_detail: str | None = None  # for --debug: the errno, the verifier's verdict
    cost_seconds: float = 0.0  # the lookup's wall time, process details included
    walked_ahead: bool = False  # procfs: read in a child forked before the socket dump


@record
class SocketCounts:
    """The TCP state histogram, IPv4 and IPv6 apart."""

    source: str  # "bpf" (bpf_iter_tcp), "netlink" (sock_diag) or "procfs" (/proc/net/tcp, tcp6)
    ipv4: Mapping[TcpState, int]
    ipv6: Mapping[TcpState, int]
    details: SocketDetails | None = None
    notes: tuple[str, ...] = ()  # e.g. why netlink was not used, or IPv6 is absent

    def total(self, state: TcpState) -> int:
        """Return the count of ``state`` over both families."""
        return self.ipv4.get(state, 0) + self.ipv6.get(state, 0)

    @property
    def all_sockets(self) -> int:
        """Return the number of TCP sockets of every state and family."""
        return sum(self.ipv4.values()) + sum(self.ipv6.values())


@record
class Counters:
    """Kernel counters, each table parsed by name, never by column position."""

    sockstat: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # "TCP", "TCP6"
    tcp: Mapping[str, int] = field(default_factory=dict)  # /proc/net/snmp "Tcp"
    tcp_ext: Mapping[str, int] = field(default_factory=dict)  # /proc/net/netstat "TcpExt"


@record
class Context:
    """Where the snapshot was taken."""

    kernel_release: str | None
    netns_inode: int | None
    initial_netns: bool | None  # None: could not tell
    netns_name: str | None = None  # set when the user picked a namespace
    hostname: str | None = None  # the UTS namespace's host name (/proc/sys/kernel/hostname)


@record
class Snapshot:
    """Everything one inspection read: settings, sockets, counters and what failed."""

    taken_at: float  # time.time()
    context: Context
    sysctls: Mapping[str, SysctlReading]
    sockets: SocketCounts | None
    counters: Counters
    problems: tuple[Problem, ...]
    # Kernel facts advice depends on (model/sysctls.py AUXILIARY_SYSCTLS), readable ones only.
    auxiliary: Mapping[str, SysctlValue] = field(default_factory=dict)
    sockopts: InventoryStatus | None = None  # every socket's options (BPF), or why not
    # Keys a profile names outside the catalogue, read in the same pass as the catalogue.
    profile_sysctls: Mapping[str, SysctlReading] = field(default_factory=dict)
    owners: SocketOwners | None = None  # None: not looked up (--no-owners, or no details)

    @property
    def complete(self) -> bool:
        """Return whether everything could be read."""
        return not self.problems

    @property
    def close_wait_ages(self) -> CloseWaitAges | None:
        """Return the CLOSE_WAIT sockets' tcp_info ages (sock_diag only), in columns."""
        details = self.sockets.details if self.sockets is not None else None
        return details.close_wait_ages if details is not None else None

    def reading(self, name: str) -> SysctlReading | None:
        """Return how ``name`` read, from the catalogue or the profile's other keys."""
        return self.sysctls.get(name) or self.profile_sysctls.get(name)

    def value(self, name: str) -> SysctlValue | None:
        """Return a readable sysctl's value, or None."""
        reading = self.reading(name)
        return reading.value if reading and reading.status is ReadStatus.OK else None


def keepalive_detection_seconds(snapshot: Snapshot) -> int | None:
    """Return keepalive_time + keepalive_intvl × keepalive_probes, or None if unreadable.

    This is how long an idle SO_KEEPALIVE socket takes to notice a dead peer
    (ip-sysctl.rst: tcp_keepalive_time, tcp_keepalive_intvl, tcp_keepalive_probes).
    """
    idle = snapshot.value("net.ipv4.tcp_keepalive_time")
    interval = snapshot.value("net.ipv4.tcp_keepalive_intvl")
    probes = snapshot.value("net.ipv4.tcp_keepalive_probes")
    if isinstance(idle, int) and isinstance(interval, int) and isinstance(probes, int):
        return idle + interval * probes
    return None
