"""Find which processes hold given socket inodes: BPF task_file, or /proc/PID/fd links.

Only the inodes asked for are looked up (CLOSE_WAIT sockets, listeners), and
psutil names the few PIDs that match (from the tree's comm and status when
the procfs root is not the live /proc).
When privileged, one BPF task_file iteration (inspect/ownersbpf.py) looks
every socket descriptor up in a kernel map of the wanted inodes and lists
the holders of those only; otherwise, or when it cannot run, every
/proc/PID/fd link is read. Both see every process of tcptune's PID
namespace, whichever network namespace is inspected: the inode filter keeps
the answer to the wanted sockets.
"""

from __future__ import annotations

import enum
import pwd
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from operator import ge, gt
from pathlib import Path
from typing import TYPE_CHECKING

from tcptune.inspect.fdwalk import PID_CODE, ForkedWalk, SocketDescriptors, socket_inodes
from tcptune.inspect.procfs import ProcFS, ProcReadError
from tcptune.inspect.statecounts import sockets_in_use
from tcptune.model.snapshot import Owner, SocketOwners

if TYPE_CHECKING:
    from tcptune.inspect.bpf.seams import BpfSeams

_FILTER_BITS = 1 << 20  # a 128 KiB bitmap in front of the sorted inodes
LIVE_PROC = Path("/proc")
COMM_CUT = 15  # include/linux/sched.h TASK_COMM_LEN 16, with the NUL
PROCFS_SOURCE = "procfs"  # the owners source when /proc/PID/fd links were read
# Below this many TCP sockets in use (sockstat inuse) the descriptor walk runs
# after the socket dump, not ahead in a forked child: a fork (page tables, the
# parent's copy-on-write faults during the dump) costs more than a small dump
# and walk overlapped can save (README "Performance").
WALK_AHEAD_MIN_SOCKETS = 2000


class OwnerSource(enum.Enum):
    """Where socket holders come from (audit --owners-source)."""

    AUTO = "auto"  # BPF task_file when it can run, else procfs
    BPF = "bpf"  # BPF task_file; its absence makes the inspection incomplete
    PROCFS = "procfs"  # a readlink per /proc/PID/fd entry


class Holders(Mapping[int, tuple[int, ...]]):
    """Socket inode -> the PIDs holding it, in memory that does not grow per descriptor.

    The wanted inodes sit in one sorted array with the first holder of each
    beside it (12 bytes a socket; a sorted array of inodes given is used as
    it is, not copied, and never written to); only sockets with more than one holder
    (forked children) get a list. Lookups bisect the array.
    """

    def __init__(self, inodes: Iterable[int]) -> None:
        if isinstance(inodes, array) and inodes.typecode == "Q" and _ascending_nonzero(inodes):
            self._inodes = inodes  # SocketDetails.owner_inodes(): shared, never written to
        else:
            self._inodes = array("Q", sorted({inode for inode in inodes if inode}))
        self._first = _pids(len(self._inodes))
        self._more: dict[int, list[int]] = {}
        self._filter: bytearray | None = None  # built by the first index(): bulk fills need none

    def _bitmap(self) -> bytearray:
        bitmap = bytearray(_FILTER_BITS // 8)
        for inode in self._inodes:
            bit = inode % _FILTER_BITS
            bitmap[bit >> 3] |= 1 << (bit & 7)
        self._filter = bitmap
        return bitmap

    def index(self, inode: int) -> int:
        """Return the position of a wanted inode, or -1 (a bitmap answers most misses)."""
        bit = inode % _FILTER_BITS
        bitmap = self._filter if self._filter is not None else self._bitmap()
        if not bitmap[bit >> 3] >> (bit & 7) & 1:
            return -1
        position = bisect_left(self._inodes, inode)
        if position < len(self._inodes) and self._inodes[position] == inode:
            return position
        return -1

    def add(self, position: int, pid: int) -> bool:
        """Record ``pid`` as a holder of the inode at ``position``; return if it was the first."""
        first = self._first[position]
        if not first:
            self._first[position] = pid
            return True
        if first != pid:
            more = self._more.setdefault(position, [])
            if pid not in more:
                more.append(pid)
        return False

    def add_matches(self, positions: Iterable[int], pids: Iterable[int]) -> None:
        """Record each (position, pid) pair in order with ``add``: the first is the first holder."""
        add = self.add
        for position, pid in zip(positions, pids, strict=True):
            add(position, pid)

    def inodes(self) -> array[int]:
        """Return the wanted inodes, sorted: position N is the inode ``index`` answers N for."""
        return self._inodes

    def set_first(self, pids: Iterable[int]) -> None:
        """Replace every wanted inode's first holder at once, in ``inodes()`` order (0: none)."""
        first = array(PID_CODE, pids)
        if len(first) != len(self._inodes):
            raise ValueError(f"{len(first)} first holders for {len(self._inodes)} inodes")
        self._first = first

    def pids(self) -> set[int]:
        """Return every PID that holds at least one wanted socket."""
        found = set(self._first)
        found.discard(0)
        for more in self._more.values():
            found.update(more)
        return found

    def aligned(self, inodes: Sequence[int]) -> tuple[array[int], dict[int, tuple[int, ...]]]:
        """Return the first holder of each of ``inodes`` (0: none) and, by index, the others.

        ``inodes`` ascending (a sorted column) is matched in one merge pass; the
        column looked up itself (CLOSE_WAIT only, no shared listeners) is copied.
        """
        mine, first, more = self._inodes, self._first, self._more
        if inodes == mine:
            return array(PID_CODE, first), {at: tuple(pids) for at, pids in more.items()}
        found = _pids(len(inodes))
        extras: dict[int, tuple[int, ...]] = {}
        if any(map(gt, inodes, islice(inodes, 1, None))):  # not ascending: look each up
            positions: Iterable[int] = map(self.index, inodes)
        else:
            positions = _merged(mine, inodes)
        for index, position in enumerate(positions):
            if position >= 0:
                found[index] = first[position]
                if position in more:
                    extras[index] = tuple(more[position])
        return found, extras

    @property
    def wanted(self) -> int:
        """Return how many distinct inodes are looked for."""
        return len(self._inodes)

    def __getitem__(self, inode: int) -> tuple[int, ...]:
        position = self.index(inode)
        if position < 0 or not self._first[position]:
            raise KeyError(inode)
        return (self._first[position], *self._more.get(position, ()))

    def __iter__(self) -> Iterator[int]:
        return (inode for inode, first in zip(self._inodes, self._first, strict=True) if first)

    def __len__(self) -> int:
        return len(self._first) - self._first.count(0)


def _pids(count: int) -> array[int]:
    """Return ``count`` zero PIDs (no holder yet) as one array."""
    return array(PID_CODE, bytes(array(PID_CODE).itemsize * count))


def _ascending_nonzero(inodes: array[int]) -> bool:
    """Return whether ``inodes`` is strictly ascending without a 0 (tested in C)."""
    return not inodes or (inodes[0] > 0 and not any(map(ge, inodes, islice(inodes, 1, None))))


def _merged(mine: array[int], inodes: Iterable[int]) -> Iterator[int]:
    """Yield the position in ``mine`` of each of ``inodes`` (both ascending), or -1."""
    position, end = 0, len(mine)
    for inode in inodes:
        while position < end and mine[position] < inode:
            position += 1
        yield position if position < end and mine[position] == inode else -1


def socket_holders(procfs: ProcFS, inodes: Iterable[int], *, first_holder: bool = False) -> Holders:
    """Return who holds each wanted socket inode (forked children share sockets).

    The walk is fdwalk.socket_inodes, matched as it goes. With
    ``first_holder`` it stops once every inode has a holder: only for
    callers that do not name every holder (the audit's outputs do, so it
    reads everything).
    """
    holders = Holders(inodes)
    _walk_descriptors(procfs, holders, first_holder)
    return holders


def _walk_descriptors(procfs: ProcFS, holders: Holders, first_holder: bool) -> None:
    """Fill ``holders`` from every /proc/PID/fd link (see socket_holders)."""
    missing = holders.wanted  # inodes still without a holder
    if not missing:
        return
    index, add = holders.index, holders.add
    for pid, inodes in socket_inodes(procfs):
        for position in map(index, inodes):
            if position >= 0 and add(position, pid):
                missing -= 1
        if first_holder and not missing:
            break  # every wanted socket has a holder


def _fill_holders(holders: Holders, walked: SocketDescriptors) -> None:
    """Add each walked descriptor of a wanted inode to ``holders``, in walk order.

    So the first holder of a socket is the first process the walk met holding
    it, as in ``_walk_descriptors``. Each is looked up with ``index`` (the
    bitmap answers most misses; a set of the wanted inodes would cost
    megabytes at 30,000 CLOSE_WAIT sockets).
    """
    add = holders.add
    for position, pid in zip(map(holders.index, walked.inodes), walked.pids, strict=True):
        if position >= 0:
            add(position, pid)


def describe_processes(procfs: ProcFS, pids: Iterable[int]) -> Mapping[int, Owner]:
    """Return name and user of each PID; vanished processes are named '?'.

    On the live /proc psutil supplies the details (imported only here, when
    some socket has a holder). On any other procfs root (a fixture, a host's
    /proc mounted elsewhere) comm and status are read from that tree, as
    psutil's name() and username() would answer, since psutil only knows one
    global procfs path: a comm of 15 characters (TASK_COMM_LEN - 1, cut by
    the kernel) is completed from the base name of argv[0] when that starts
    with it.
    """
    if procfs.root != LIVE_PROC:
        return {pid: _from_tree(procfs, pid) for pid in set(pids)}
    import psutil

    owners: dict[int, Owner] = {}
    for pid in set(pids):
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                owners[pid] = Owner(pid, process.name(), process.username())
        except (psutil.Error, KeyError):
            owners[pid] = Owner(pid, "?", "?")
    return owners


def _from_tree(procfs: ProcFS, pid: int) -> Owner:
    try:
        name = procfs.read_text(f"{pid}/comm").rstrip("\n")
        status = procfs.read_text(f"{pid}/status")
    except ProcReadError:
        return Owner(pid, "?", "?")
    if len(name) >= COMM_CUT:
        name = _full_name(procfs, pid, name)
    # A tree's status may be anything: "Uid:" with no value, a uid of 10^30, a minus.
    fields = next(
        (line.split()[1:2] for line in status.splitlines() if line.startswith("Uid:")), []
    )
    uid = fields[0] if fields and fields[0].isdigit() and len(fields[0]) <= 10 else "?"
    try:
        user = pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError, OverflowError):
        user = uid
    return Owner(pid, name.strip() or "?", user)


def _full_name(procfs: ProcFS, pid: int, comm: str) -> str:
    """Return argv[0]'s base name when the cut comm is its start (psutil's rule), else comm."""
    try:
        argv0 = procfs.read_text(f"{pid}/cmdline").split("\0", 1)[0]
    except ProcReadError:
        return comm
    full = argv0.rsplit("/", 1)[-1]
    return full if full.startswith(comm) else comm


def _bpf_not_tried(procfs: ProcFS, source: OwnerSource) -> str | None:
    """Return why the BPF lookup is not tried at all for ``source``, or None (it is tried)."""
    if source is OwnerSource.PROCFS:
        return "not tried (--owners-source procfs)"
    if procfs.root != LIVE_PROC:
        return f"{procfs.root} is not the live /proc"
    return None


WalkAhead = Callable[[ProcFS, OwnerSource], "ForkedWalk | None"]  # inspect()'s seam


def walk_ahead(
    procfs: ProcFS,
    source: OwnerSource,
    *,
    min_sockets: int = WALK_AHEAD_MIN_SOCKETS,
    start: Callable[[ProcFS], ForkedWalk | None] = ForkedWalk.start,
) -> ForkedWalk | None:
    """Start the descriptor walk in a forked child before the socket dump, when it pays.

    Only when the owners will certainly come from procfs (BPF not tried for
    ``source``, or AUTO in a process whose CapEff lacks what the task_file
    program needs: the check ownersbpf.read_matches makes first) and
    sockstat counts at least ``min_sockets`` TCP sockets in use (TIME_WAIT
    holds no descriptor): on a small host the fork costs more than the walk.
    ``start`` forks (ForkedWalk.start: None when it is not safe). The caller
    hands the result to look_up_owners and always closes it.
    """
    bpf_tried = _bpf_not_tried(procfs, source) is None
    if bpf_tried and source is not OwnerSource.AUTO:
        return None  # BPF asked for: its pass after the dump answers
    if sockets_in_use(procfs, time_wait=False) < min_sockets:
        return None
    if bpf_tried:  # AUTO on the live /proc
        from tcptune.inspect.ownersbpf import missing_capability

        try:
            status = procfs.read_text("self/status")
        except ProcReadError:
            status = ""
        if not missing_capability(status):
            return None  # BPF may run: the walk would be wasted
    return start(procfs)


def look_up_owners(
    procfs: ProcFS,
    inodes: Iterable[int],
    *,
    source: OwnerSource = OwnerSource.AUTO,
    seams: BpfSeams | None = None,
    walked: ForkedWalk | None = None,
) -> SocketOwners:
    """Return who holds each of ``inodes``, with name and user of every holder found.

    BPF is tried on the live /proc unless ``source`` is PROCFS: the wanted
    inodes are matched in the kernel (ownersbpf.read_matches); why it was
    not used is kept in the result (``bpf_unavailable``, ``bpf_detail``).
    The procfs answer comes from ``walked`` (walk_ahead's child, run during
    the socket dump) when it finished well, else from a walk here.
    """
    started = time.perf_counter()
    holders = Holders(inodes)
    used, why, detail = PROCFS_SOURCE, _bpf_not_tried(procfs, source), None
    if why is None and holders.wanted:
        from tcptune.inspect import ownersbpf
        from tcptune.inspect.bpf.seams import BpfSeams

        try:
            matched = ownersbpf.read_matches(procfs, seams or BpfSeams(), holders.inodes())
            holders.add_matches(*matched)  # validated positions: nothing here can fail halfway
            used = ownersbpf.SOURCE
        except ownersbpf.OwnersBpfUnavailable as exc:
            why, detail = f"owners via procfs: {exc.reason}", exc.detail
    ahead = False
    if used == PROCFS_SOURCE and holders.wanted:
        found = walked.result() if walked is not None else None
        if found is not None:
            _fill_holders(holders, found)
            ahead = True
        else:
            _walk_descriptors(procfs, holders, first_holder=False)
    pids = holders.pids()
    processes = describe_processes(procfs, pids) if pids else {}
    cost = time.perf_counter() - started
    return SocketOwners(holders, processes, used, why, detail or why, cost, ahead)
