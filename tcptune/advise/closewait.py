"""CLOSE_WAIT ages per process: the oldest, a coarse distribution and the leak rate."""

from __future__ import annotations

from tcptune.advise.base import Evidence
from tcptune.model.closewait import CloseWaitSummary, ProcessAges, bucket_counts
from tcptune.model.units import duration

TOP_PROCESSES = 10  # process names kept, the oldest first: bounded metric cardinality
LEAK_SPAN = 600  # seconds of ages before a leak rate is worth printing


def summarize(ev: Evidence) -> CloseWaitSummary | None:
    """Return the ages overall and per holding process name (top TOP_PROCESSES by oldest)."""
    found = ev.snapshot.close_wait_ages
    if found is None or not found.ages:
        return None
    ages = found.ages
    per_name: dict[str, list[int]] = {}
    pids_of: dict[str, set[int]] = {}
    holders = {inode: ev.holders(inode) for inode in ages}
    described = {pid: ev.process(pid) for held in holders.values() for pid in held}
    for inode in ages:
        names = {described[pid].name for pid in holders.get(inode, ())} or {"(no process)"}
        for name in names:  # forked workers sharing a socket: once per name
            per_name.setdefault(name, []).append(inode)
            pids_of.setdefault(name, set()).update(
                p for p in holders.get(inode, ()) if described[p].name == name
            )
    processes = [
        ProcessAges(
            name,
            tuple(sorted(pids_of[name])),
            len(inodes),
            max(ages[i][0] for i in inodes),
            max(ages[i][1] for i in inodes),
            bucket_counts([ages[i][0] for i in inodes]),
        )
        for name, inodes in per_name.items()
    ]
    processes.sort(key=lambda p: (-p.oldest_seconds, p.name))
    return CloseWaitSummary(
        sockets=len(ages),
        oldest_seconds=max(age for age, _bound in ages.values()),
        buckets=bucket_counts([age for age, _bound in ages.values()]),
        processes=tuple(processes[:TOP_PROCESSES]),
        other_processes=max(len(processes) - TOP_PROCESSES, 0),
    )


def age_line(process: ProcessAges) -> str:
    """Return e.g. 'leakyd: 300 sockets, oldest stuck 2 h 13 min, 40 in the last minute'."""
    noun = "socket" if process.sockets == 1 else "sockets"
    line = (
        f"{process.name}: {process.sockets} {noun}, oldest stuck {duration(process.oldest_seconds)}"
        f", {process.last_minute} in the last minute, {process.last_hour} in the last hour"
    )
    if process.oldest_seconds >= LEAK_SPAN and process.leak_per_hour >= 1:
        line += f" (about {process.leak_per_hour:.0f} per hour)"
    return line
