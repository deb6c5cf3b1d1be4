"""A scenario that tells a descriptor walk run during the socket dump from one run after it.

A forked child shares this process's CLOSE_WAIT sockets. The netlink factory
given to inspect() waits (bounded) until the walk thread has finished, then
kills and reaps the child, and only then opens the real NETLINK_SOCK_DIAG
socket: a walk that ran during the dump names the child as a holder, a walk
after the dump cannot. Used in-process (root, --owners-source procfs) and as
``python -m tests.inspect.walkahead_scenario auto`` behind setpriv, where it
prints the holders as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable

from tcptune.inspect.fdwalk import THREAD_NAME
from tcptune.inspect.inspector import SocketSource, inspect
from tcptune.inspect.owners import OwnerSource
from tcptune.model.snapshot import Snapshot

NETLINK_SOCK_DIAG = 4  # include/uapi/linux/netlink.h
WAIT_SECONDS = 10.0


def close_wait_pairs(count: int) -> tuple[list[socket.socket], list[int]]:
    """Return ``count`` accepted sockets in CLOSE_WAIT (their peers closed) and their inodes."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = [listener]
    for _ in range(count):
        client = socket.create_connection(listener.getsockname())
        server, _address = listener.accept()
        client.close()
        held.append(server)
    deadline = time.monotonic() + WAIT_SECONDS
    for server in held[1:]:  # CLOSE_WAIT once the peer's FIN arrived: recv sees EOF
        server.settimeout(max(deadline - time.monotonic(), 0.01))
        assert server.recv(1) == b""
    return held, [os.fstat(server.fileno()).st_ino for server in held[1:]]


def walk_running() -> bool:
    return any(thread.name == THREAD_NAME for thread in threading.enumerate())


def after_the_walk(child: int, waited: list[float]) -> Callable[[], socket.socket]:
    """Return a factory whose first call waits for the walk, then makes ``child`` exit."""

    def factory() -> socket.socket:
        if not waited:
            started = time.monotonic()
            while walk_running() and time.monotonic() - started < WAIT_SECONDS:
                time.sleep(0.001)
            waited.append(time.monotonic() - started)
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)

    return factory


def run(source: OwnerSource) -> tuple[Snapshot, list[int], int]:
    """Inspect with a child sharing the CLOSE_WAIT sockets; return the snapshot, inodes, child."""
    held, inodes = close_wait_pairs(3)
    child = os.fork()
    if child == 0:  # holds every descriptor until killed
        while True:
            time.sleep(60)
    waited: list[float] = []
    try:
        snapshot = inspect(
            source=SocketSource.NETLINK,
            details=True,
            owners=True,
            netlink=after_the_walk(child, waited),
            owners_source=source,
            walk_min_sockets=0,
        )
    finally:
        if not waited:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        for sock in held:
            sock.close()
    return snapshot, inodes, child


def main() -> None:
    snapshot, inodes, child = run(OwnerSource(sys.argv[1]))
    assert snapshot.owners is not None
    print(
        json.dumps(
            {
                "holders": {str(i): list(snapshot.owners.holders.get(i, ())) for i in inodes},
                "pid": os.getpid(),
                "child": child,
                "why": snapshot.owners.bpf_unavailable,
                "source": snapshot.owners.source,
            }
        )
    )


if __name__ == "__main__":
    main()
