"""CLOSE_WAIT ages per process: the oldest, a coarse distribution and the leak rate.

Computed once per audit (Evidence.close_wait_summary) from the columns:
each process name's sockets are an index array (Evidence.close_wait_names),
so a group's oldest age and buckets are read in C (max, one sort), never
through a record per socket.
"""

from __future__ import annotations

from array import array

from tcptune.advise.base import Evidence
from tcptune.model.closewait import CloseWaitSummary, ProcessAges, bucket_counts_ms
from tcptune.model.holding import take
from tcptune.model.units import duration

TOP_PROCESSES = 10  # process names kept, the oldest first: bounded metric cardinality
LEAK_SPAN = 600  # seconds of ages before a leak rate is worth printing
NO_PROCESS = "(no process)"


def summarize(ev: Evidence) -> CloseWaitSummary | None:
    """Return the ages overall and per holding process name (top TOP_PROCESSES by oldest).

    Use ``ev.close_wait_summary``, which calls this once per Evidence.
    """
    found = ev.snapshot.close_wait_ages
    if found is None or not len(found):
        return None
    acks, data = found.last_ack_ms, found.last_data_ms
    groups: list[tuple[str, tuple[int, ...], array[int] | None]] = [
        (name, pids, indices) for name, (pids, indices) in ev.close_wait_names.items()
    ]
    held = ev.close_wait_held
    if held is None or not held.by_pid:
        groups = [(NO_PROCESS, (), None)]  # None: the whole column
    elif held.unheld:
        groups.append((NO_PROCESS, (), held.unheld))
    oldest, buckets = max(acks), bucket_counts_ms(acks)
    processes = []
    for name, pids, indices in groups:
        if indices is None:  # the whole column: its oldest and buckets are the overall ones
            ack_ms, data_ms, group_oldest, group_buckets = acks, data, oldest, buckets
        else:
            ack_ms, data_ms = take(acks, indices), take(data, indices)
            group_oldest, group_buckets = max(ack_ms), bucket_counts_ms(ack_ms)
        processes.append(
            ProcessAges(
                name,
                pids,
                len(ack_ms),
                group_oldest / 1000,
                max(group_oldest, max(data_ms)) / 1000,
                group_buckets,
            )
        )
    processes.sort(key=lambda p: (-p.oldest_seconds, p.name))
    return CloseWaitSummary(
        sockets=len(found),
        oldest_seconds=oldest / 1000,
        buckets=buckets,
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
