"""Sockets in real states shared with a forked child, and the holders both walks name.

Used in-process by tests/inspect/test_fdwalk_kernel.py, and as
``python -m tests.inspect.fdwalk_scenario`` behind setpriv (unprivileged,
--owners-source auto: BPF cannot run, so the walk goes ahead in a child),
where it prints what it found as JSON.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from tcptune.inspect.fdwalk import ForkedWalk
from tcptune.inspect.inspector import SocketSource, inspect
from tcptune.inspect.owners import OwnerSource, walk_ahead
from tcptune.model.snapshot import Snapshot

WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Scene:
    """What the scene holds: CLOSE_WAIT sockets shared with ``child``, and a listener."""

    shared: list[int]  # CLOSE_WAIT, held by this process first, then the child
    alone: list[int]  # CLOSE_WAIT made after the fork: this process only
    listener: int  # a listener this process and the child hold
    child: int


def close_wait(stack: ExitStack, count: int) -> list[int]:
    """Return the inodes of ``count`` accepted sockets in CLOSE_WAIT (their peers closed)."""
    listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
    inodes = []
    deadline = time.monotonic() + WAIT_SECONDS
    for _ in range(count):
        client = socket.create_connection(listener.getsockname())
        server = stack.enter_context(listener.accept()[0])
        client.close()
        server.settimeout(max(deadline - time.monotonic(), 0.01))
        assert server.recv(1) == b""  # the FIN arrived: CLOSE_WAIT
        inodes.append(os.fstat(server.fileno()).st_ino)
    return inodes


@contextmanager
def scene() -> Iterator[Scene]:
    """Yield a Scene; the child holds every descriptor until the block ends."""
    with ExitStack() as stack:
        shared = close_wait(stack, 4)
        listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
        reader, writer = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                os.close(writer)
                os.read(reader, 1)
            finally:
                os._exit(0)
        os.close(reader)
        try:
            alone = close_wait(stack, 2)
            yield Scene(shared, alone, os.fstat(listener.fileno()).st_ino, child)
        finally:
            os.close(writer)
            os.waitpid(child, 0)


def audit(source: OwnerSource, ahead: bool) -> Snapshot:
    """Inspect this namespace: the walk ahead forced (if safe) or never started."""
    return inspect(
        source=SocketSource.NETLINK,
        details=True,
        owners=True,
        owners_source=source,
        walk_ahead=functools.partial(walk_ahead, min_sockets=0) if ahead else no_walk_ahead,
    )


def no_walk_ahead(*_: object) -> ForkedWalk | None:
    """The walk ahead never starts: the sequential answer."""
    return None


def holders(snapshot: Snapshot) -> dict[str, list[int]]:
    """Return the snapshot's holders as JSON-ready lists, first holder first."""
    assert snapshot.owners is not None
    return {str(inode): list(pids) for inode, pids in snapshot.owners.holders.items()}


def main() -> None:
    """Print, as JSON, what an AUTO audit with and without the walk ahead found."""
    with scene() as made:
        forked = audit(OwnerSource.AUTO, ahead=True)
        sequential = audit(OwnerSource.AUTO, ahead=False)
    assert forked.owners is not None and sequential.owners is not None
    json.dump(
        {
            "pid": os.getpid(),
            "child": made.child,
            "shared": made.shared,
            "alone": made.alone,
            "forked": holders(forked),
            "sequential": holders(sequential),
            "walked_ahead": [forked.owners.walked_ahead, sequential.owners.walked_ahead],
            "why": forked.owners.bpf_unavailable,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
