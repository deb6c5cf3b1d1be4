"""What each ``tcptune watch`` refresh reads: the inspection and the CLOSE_WAIT owner lookup.

Kept apart from the loop (run/watch.py) because it is where the sources are
chosen: the BPF state counter (loaded once for the whole watch) or a
counts-only sock_diag dump, and with --owners the details (one BPF socket
walk, as the audit's) and the holders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tcptune.inspect.procfs import ProcFS
from tcptune.inspect.statecounts import BPF_DUMP_MIN_SOCKETS, SocketSource
from tcptune.model.snapshot import Snapshot
from tcptune.run.watch import Inspect, Owners

if TYPE_CHECKING:
    from tcptune.inspect.bpf.seams import BpfSeams


def live_sources(
    procfs: ProcFS,
    source: SocketSource,
    netns_name: str | None,
    owners: bool,
    owner_seams: BpfSeams | None = None,
    bpf_min_sockets: int = BPF_DUMP_MIN_SOCKETS,
) -> tuple[Inspect, Owners | None]:
    """Return the refresh's inspection and, with ``owners``, its CLOSE_WAIT owner lookup.

    Without owners each refresh counts states only: in the kernel with the
    BPF iterator when it can run (loaded once for the whole watch), else one
    counts-only sock_diag dump. With owners it also keeps the CLOSE_WAIT
    inodes and lists every process's socket descriptors (only while
    CLOSE_WAIT sockets exist), as the audit does: with ``owner_seams`` and
    ``source`` AUTO the details come from one BPF socket walk (from
    ``bpf_min_sockets`` sockets) and the holders from one BPF task_file
    pass when they can run, else from netlink and procfs.
    """
    from tcptune.inspect.inspector import inspect

    counter = None
    if not owners and source is SocketSource.AUTO:
        from tcptune.inspect.bpf.seams import BpfSeams, default_cache_dir
        from tcptune.inspect.bpfcount import BpfCounter

        counter = BpfCounter(procfs, BpfSeams(cache_dir=default_cache_dir()))

    def take() -> Snapshot:
        return inspect(
            procfs,
            source=source,
            details=owners,
            owners=owners,
            netns_name=netns_name,
            owner_seams=owner_seams,
            counter=counter,
            socket_seams=owner_seams if source is SocketSource.AUTO else None,
            bpf_min_sockets=bpf_min_sockets,
        )

    if not owners:
        return take, None

    def held(snapshot: Snapshot) -> Mapping[str, int] | None:
        from tcptune.advise import Evidence

        return Evidence(snapshot).close_wait_by_process()

    return take, held
