"""Find which processes hold given socket inodes, by reading /proc/PID/fd links.

Only the inodes asked for are looked up (CLOSE_WAIT sockets, listeners), and
psutil supplies process details (name, user) for the few PIDs that match.
"""

from __future__ import annotations

import os
import pwd
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from tcptune.inspect.procfs import ProcFS, ProcReadError
from tcptune.model.snapshot import Owner, SocketOwners

_FILTER_BITS = 1 << 20  # a 128 KiB bitmap in front of the sorted inodes


class Holders(Mapping[int, tuple[int, ...]]):
    """Socket inode -> the PIDs holding it, in memory that does not grow per descriptor.

    The wanted inodes sit in one sorted array with the first holder of each
    beside it (12 bytes a socket); only sockets with more than one holder
    (forked children) get a list. Lookups bisect the array.
    """

    def __init__(self, inodes: Iterable[int]) -> None:
        self._inodes = array("Q", sorted({inode for inode in inodes if inode}))
        self._first = array("l", bytes(self._inodes.itemsize * len(self._inodes)))
        self._more: dict[int, list[int]] = {}
        self._filter = bytearray(_FILTER_BITS // 8)
        for inode in self._inodes:
            bit = inode % _FILTER_BITS
            self._filter[bit >> 3] |= 1 << (bit & 7)

    def index(self, inode: int) -> int:
        """Return the position of a wanted inode, or -1 (a bitmap answers most misses)."""
        bit = inode % _FILTER_BITS
        if not self._filter[bit >> 3] >> (bit & 7) & 1:
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

    def pids(self) -> set[int]:
        """Return every PID that holds at least one wanted socket."""
        found = set(self._first)
        found.discard(0)
        for more in self._more.values():
            found.update(more)
        return found

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


def socket_holders(procfs: ProcFS, inodes: Iterable[int], *, first_holder: bool = False) -> Holders:
    """Return who holds each wanted socket inode (forked children share sockets).

    Every process's descriptors are read, whoever owns the process: a socket's
    uid says who created it, not who holds it now (nginx workers hold sockets
    root created). Each readlink goes through a directory descriptor, so it
    resolves one path component instead of four. With ``first_holder`` the
    walk stops once every inode has a holder: only for callers that do not
    name every holder (the audit's outputs do, so it reads everything).
    """
    holders = Holders(inodes)
    missing = holders.wanted  # inodes still without a holder
    if not missing:
        return holders
    proc = str(procfs.root)
    try:
        pids = [entry for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return holders
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    readlink, index, add = os.readlink, holders.index, holders.add
    for pid in pids:
        try:
            fd_dir = os.open(f"{proc}/{pid}/fd", flags)
        except OSError:  # exited, or not ours to read
            continue
        number = int(pid)
        try:
            for name in os.listdir(fd_dir):
                try:
                    link = readlink(name, dir_fd=fd_dir)
                except OSError:
                    continue
                if link[:8] == "socket:[":
                    position = index(int(link[8:-1]))
                    if position >= 0 and add(position, number):
                        missing -= 1
        except (OSError, ValueError):
            continue
        finally:
            os.close(fd_dir)
        if first_holder and not missing:
            break  # every wanted socket has a holder
    return holders


def describe_processes(procfs: ProcFS, pids: Iterable[int]) -> Mapping[int, Owner]:
    """Return name and user of each PID; vanished processes are named '?'.

    On the live /proc psutil supplies the details; on any other procfs root
    (a fixture, a host's /proc mounted elsewhere) comm and status are read
    from that tree, since psutil only knows one global procfs path.
    """
    if procfs.root != Path("/proc"):
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
        name = procfs.read_text(f"{pid}/comm").strip()
        status = procfs.read_text(f"{pid}/status")
    except ProcReadError:
        return Owner(pid, "?", "?")
    # A tree's status may be anything: "Uid:" with no value, a uid of 10^30, a minus.
    fields = next(
        (line.split()[1:2] for line in status.splitlines() if line.startswith("Uid:")), []
    )
    uid = fields[0] if fields and fields[0].isdigit() and len(fields[0]) <= 10 else "?"
    try:
        user = pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError, OverflowError):
        user = uid
    return Owner(pid, name or "?", user)


def look_up_owners(procfs: ProcFS, inodes: Iterable[int]) -> SocketOwners:
    """Return who holds each of ``inodes``, with name and user of every holder found."""
    holders = socket_holders(procfs, inodes)
    pids = holders.pids()
    processes = describe_processes(procfs, pids) if pids else {}  # no psutil import if none
    return SocketOwners(holders, processes)
