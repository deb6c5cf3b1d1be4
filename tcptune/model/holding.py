"""Which processes hold the sockets of a column: one pass over arrays, no record per socket.

The owner lookup (inspect/owners.py Holders) answers for a whole sorted
inode column at once (``BulkHolders.aligned``): the first holder of each
socket in an array beside it, and the few sockets with more holders
(forked children) apart. HeldSockets turns that into index arrays per PID,
which every per-process count (CLOSE_WAIT owners, names, ages) reads.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from heapq import merge
from itertools import compress, repeat
from operator import and_, lshift, or_
from typing import Protocol, runtime_checkable

from tcptune.model.record import record

Aligned = tuple["array[int]", dict[int, tuple[int, ...]]]


@runtime_checkable
class BulkHolders(Protocol):
    """A holders mapping that answers for a whole inode column at once."""

    def aligned(self, inodes: Sequence[int]) -> Aligned:
        """Return each inode's first holder (0: none) and, by index, the other holders."""
        ...


def aligned_holders(holders: Mapping[int, tuple[int, ...]], inodes: Sequence[int]) -> Aligned:
    """Return the first holder of each of ``inodes`` (0: none) and, by index, the others."""
    if isinstance(holders, BulkHolders):
        return holders.aligned(inodes)
    first = array("l")
    more: dict[int, tuple[int, ...]] = {}
    for index, inode in enumerate(inodes):  # a plain mapping (constructed snapshots)
        pids = holders.get(inode, ())
        first.append(pids[0] if pids else 0)
        if len(pids) > 1:
            more[index] = tuple(pids[1:])
    return first, more


def take(column: array[int], indices: Iterable[int]) -> array[int]:
    """Return ``column[i]`` for each of ``indices``, as an array of its type code (in C).

    One value at a time into the new array: no tuple of the indices or of
    the values (itemgetter's), which at 31,000 sockets were 2.1 MiB at once.
    """
    return array(column.typecode, map(column.__getitem__, indices))


SORT_RUN = 4096  # rows sorted as Python ints at a time; runs are kept as 8-byte arrays


def sort_order(column: array[int]) -> array[int]:
    """Return the indices that sort ``column`` stably, as an array (the sorts run in C).

    Each value is packed with its index into one int (value << bits | index),
    so ties keep their order. When the packed values fit in 64 bits (socket
    inodes are 32-bit, get_next_ino()) the rows are sorted SORT_RUN at a time
    into 8-byte arrays and the runs merged (heapq.merge): at 40,000 rows that
    holds 0.3 MiB of runs and one run's ints, where one sort of every row as
    ints held 1.6 MiB at once. Otherwise every row is sorted at once.
    """
    size = len(column)
    bits = max(1, (size - 1).bit_length())
    mask = (1 << bits) - 1
    if size <= SORT_RUN or max(column) >> (64 - bits):
        packed = sorted(map(or_, map(lshift, column, repeat(bits)), range(size)))
        return array("I", map(and_, packed, repeat(mask)))
    runs = [
        array(
            "Q",
            sorted(
                map(
                    or_,
                    map(lshift, column[start : start + SORT_RUN], repeat(bits)),
                    range(start, min(size, start + SORT_RUN)),
                )
            ),
        )
        for start in range(0, size, SORT_RUN)
    ]
    return array("I", map(and_, merge(*runs), repeat(mask)))


FEW_PIDS = 16  # up to this many holders, each one's indices are picked out in C


@record
class HeldSockets:
    """For one socket column: the indices each PID holds, and those nobody holds."""

    by_pid: Mapping[int, array[int]]  # pid -> indices into the column, ascending
    unheld: array[int]  # indices of the sockets no process was found holding
    size: int  # the column's length
    sharing: frozenset[int] = frozenset()  # PIDs holding a socket another PID holds too

    @classmethod
    def of(cls, holders: Mapping[int, tuple[int, ...]], inodes: Sequence[int]) -> HeldSockets:
        """Group the column ``inodes`` (ascending for the bulk path) by holding PID."""
        first, more = aligned_holders(holders, inodes)
        by_pid: dict[int, array[int]] = {}
        distinct = set(first)
        if len(distinct) <= FEW_PIDS:
            for pid in distinct:
                by_pid[pid] = array("I", compress(range(len(first)), map(pid.__eq__, first)))
        else:
            for index, pid in enumerate(first):
                column = by_pid.get(pid)
                if column is None:
                    column = by_pid[pid] = array("I")
                column.append(index)
        unheld = by_pid.pop(0, array("I"))
        for index, pids in sorted(more.items()):
            for pid in pids:
                column = by_pid.get(pid)
                if column is None:
                    column = by_pid[pid] = array("I")
                column.append(index)
        extra = {pid for pids in more.values() for pid in pids}
        for pid in extra:
            by_pid[pid] = array("I", sorted(by_pid[pid]))  # extras were appended last
        sharing = frozenset(extra | {first[index] for index in more})
        return cls(by_pid, unheld, len(first), sharing)

    def union(self, pids: Sequence[int]) -> array[int]:
        """Return the indices any of ``pids`` holds, each once (ascending only if shared)."""
        if len(pids) == 1:
            return self.by_pid[pids[0]]
        if self.sharing.isdisjoint(pids):  # disjoint sets of sockets: just join them
            joined = array("I")
            for pid in pids:
                joined.extend(self.by_pid[pid])
            return joined
        return array("I", sorted(set().union(*(self.by_pid[pid] for pid in pids))))
