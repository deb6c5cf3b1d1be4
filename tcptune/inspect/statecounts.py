"""Counting TCP sockets by state: in the kernel (BPF), over netlink sock_diag, or from procfs.

Each source falls back to the next with a note saying why: the BPF state
counter (counts only, inspect/bpfcount.py) to a sock_diag dump, and a
netlink socket that cannot be opened to the /proc/net/tcp tables.
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tcptune.inspect.procfs import ProcFS, describe_os_error
from tcptune.inspect.proctcp import read_proc_tcp
from tcptune.inspect.sockdetails import DetailsBuilder
from tcptune.inspect.sockdiag import SockDiagError, details_builder, dump_counts
from tcptune.model.snapshot import Problem, SocketCounts
from tcptune.model.tcpstates import TcpState

if TYPE_CHECKING:  # the BPF loader is imported only by a caller that counts with it
    from tcptune.inspect.bpfcount import BpfCounter

LIVE_PROC = Path("/proc")
NetlinkFactory = Callable[[], socket.socket]  # opens a NETLINK_SOCK_DIAG socket (injectable)


class SocketSource(enum.Enum):
    """Where socket states are read from."""

    AUTO = "auto"  # the BPF counter if given (counts only), netlink on the live /proc, else procfs
    NETLINK = "netlink"
    PROCFS = "procfs"


def _histogram(counts: list[int]) -> dict[TcpState, int]:
    return {state: counts[state.value] for state in TcpState}


def _unknown_states(counts: list[int], source: str, problems: list[Problem]) -> None:
    for code, count in enumerate(counts):
        if count and not 1 <= code <= len(TcpState):
            problems.append(Problem(source, f"{count} sockets in unknown state code {code}"))


def read_sockets_netlink(
    details: DetailsBuilder | None,
    problems: list[Problem],
    netlink: NetlinkFactory | None = None,
    notes: tuple[str, ...] = (),
) -> SocketCounts:
    """Count states over netlink sock_diag; raise OSError/SockDiagError if netlink is unusable."""
    ipv4, ipv6 = dump_counts(details, sock_factory=netlink)
    for counts in (ipv4, ipv6):
        _unknown_states(counts, "netlink sock_diag", problems)
    return SocketCounts(
        "netlink", _histogram(ipv4), _histogram(ipv6), details.build() if details else None, notes
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
    counter: BpfCounter | None = None,
) -> SocketCounts | None:
    """Count TCP sockets by state from the chosen source, falling back from BPF, then netlink.

    ``counter`` (counts only, ``source`` AUTO on the live /proc) counts in the
    kernel; when it cannot, its reason becomes a note of the netlink counts.
    """
    use_netlink = source is SocketSource.NETLINK or (
        source is SocketSource.AUTO and procfs.root == LIVE_PROC
    )
    fallback: list[str] = []
    if counter is not None and use_netlink and source is SocketSource.AUTO and not want_details:
        found = counter.counts()
        if found is not None:
            for counts in found:
                _unknown_states(counts, "BPF iterator", problems)
            return SocketCounts("bpf", _histogram(found[0]), _histogram(found[1]))
        fallback.append(counter.reason or "BPF state counter not used")
    if use_netlink:
        try:
            builder = details_builder(socket_inodes) if want_details else None
            return read_sockets_netlink(builder, problems, netlink, tuple(fallback))
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
