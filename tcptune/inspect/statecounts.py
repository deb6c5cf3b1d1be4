"""Counting TCP sockets by state: in the kernel (BPF), over netlink sock_diag, or from procfs.

Each source falls back to the next with a note saying why: the BPF state
counter (counts only, inspect/bpfcount.py) or the BPF walk with details
(inspect/bpfdump.py: one bpf_iter_tcp pass instead of three sock_diag
dumps, tried when sockstat counts at least BPF_DUMP_MIN_SOCKETS) to a
sock_diag dump, and a netlink socket that cannot be opened to the
/proc/net/tcp tables.
"""

from __future__ import annotations

import _socket  # not socket: see sockdiag.py
import enum
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tcptune.inspect.procfs import ProcFS, ProcReadError, describe_os_error
from tcptune.inspect.proctcp import read_proc_tcp
from tcptune.inspect.sockdetails import DetailsBuilder
from tcptune.inspect.sockdiag import SockDiagError, details_builder, dump_counts
from tcptune.model.snapshot import Problem, SocketCounts
from tcptune.model.tcpstates import TcpState

if TYPE_CHECKING:  # the BPF loader is imported only by a caller that counts with it
    from tcptune.inspect.bpf.seams import BpfSeams
    from tcptune.inspect.bpfcount import BpfCounter

LIVE_PROC = Path("/proc")
NetlinkFactory = Callable[[], _socket.socket]  # opens a NETLINK_SOCK_DIAG socket (injectable)
# Below this many sockets (sockstat's TCP inuse + tw) the netlink dump costs
# less than loading the BPF walk's program, and an idle audit imports no BPF.
BPF_DUMP_MIN_SOCKETS = 2000
BPF_SOURCE = "BPF iterator (bpf_iter_tcp)"  # a Problem's source when --source bpf cannot run


class SocketSource(enum.Enum):
    """Where socket states are read from."""

    AUTO = "auto"  # BPF (the counter, or the walk at scale), netlink on the live /proc, else procfs
    BPF = "bpf"  # the BPF walk; its absence makes the inspection incomplete
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
    bpf_seams: BpfSeams | None = None,
    bpf_min_sockets: int = BPF_DUMP_MIN_SOCKETS,
    bpf_build: Callable[[dict[str, Any], bool], bytes] | None = None,
) -> SocketCounts | None:
    """Count TCP sockets by state from the chosen source, falling back from BPF, then netlink.

    ``counter`` (counts only, ``source`` AUTO on the live /proc) counts in the
    kernel; with details and ``bpf_seams``, AUTO walks the sockets with BPF
    once sockstat counts ``bpf_min_sockets`` (``bpf_build``: the program's
    builder, a test's seam). When BPF cannot, its reason becomes a note of
    the netlink counts (a Problem with ``source`` BPF).
    """
    live = procfs.root == LIVE_PROC
    use_netlink = source is SocketSource.NETLINK or (source is SocketSource.AUTO and live)
    fallback: list[str] = []
    if source is SocketSource.BPF or (
        use_netlink
        and source is SocketSource.AUTO
        and want_details
        and bpf_seams is not None
        and sockets_in_use(procfs) >= bpf_min_sockets
    ):
        walked, reason = _read_sockets_bpf(
            procfs, want_details, problems, socket_inodes, bpf_seams, bpf_build
        )
        if walked is not None or source is SocketSource.BPF:
            if walked is None:
                problems.append(Problem(BPF_SOURCE, reason))
            return walked
        fallback.append(reason)
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


def sockets_in_use(procfs: ProcFS, *, time_wait: bool = True) -> int:
    """Return sockstat's TCP sockets (inuse, + tw with ``time_wait``; 0 if unreadable).

    Whether the BPF socket walk (inuse + tw) or the descriptor walk ahead
    (inuse: TIME_WAIT holds no descriptor; owners.walk_ahead) may pay off.
    """
    from tcptune.inspect.counters import parse_sockstat

    try:
        tcp = parse_sockstat(procfs.read_text("net/sockstat"), "sockstat")["TCP"]
        return tcp["inuse"] + (tcp.get("tw", 0) if time_wait else 0)
    except (ProcReadError, KeyError, ValueError):
        return 0


def _read_sockets_bpf(
    procfs: ProcFS,
    want_details: bool,
    problems: list[Problem],
    socket_inodes: bool,
    seams: BpfSeams | None,
    build: Callable[[dict[str, Any], bool], bytes] | None,
) -> tuple[SocketCounts | None, str]:
    """Count (and detail) the sockets with one BPF walk; (None, why) when it cannot."""
    if procfs.root != LIVE_PROC:
        return None, f"BPF socket walk not used: {procfs.root} is not the live /proc"
    from tcptune.inspect.bpf.seams import BpfSeams
    from tcptune.inspect.bpfdump import BpfDumpUnavailable, dump_details

    builder = details_builder(socket_inodes) if want_details else None
    try:
        if build is None:
            ipv4, ipv6 = dump_details(procfs, seams or BpfSeams(), builder)
        else:
            ipv4, ipv6 = dump_details(procfs, seams or BpfSeams(), builder, build)
    except BpfDumpUnavailable as exc:
        return None, exc.reason
    for counts in (ipv4, ipv6):
        _unknown_states(counts, BPF_SOURCE, problems)
    return SocketCounts(
        "bpf", _histogram(ipv4), _histogram(ipv6), builder.build() if builder else None
    ), ""
