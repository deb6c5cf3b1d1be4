"""The descriptor walk run ahead, during the socket dump, against the real kernel.

When the owners will come from /proc/PID/fd (--owners-source procfs, or AUTO
without the capabilities BPF needs) the walk starts in a thread before the
dump and records every socket descriptor; matched afterwards it must name
exactly the holders, in the same order, as the walk run after the dump. It
must really overlap the dump (tests/inspect/walkahead_scenario.py tells the
two apart), and it must not start when it would not be used.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcptune.inspect.fdwalk import WalkAhead
from tcptune.inspect.owners import (
    WALK_AHEAD_MIN_SOCKETS,
    OwnerSource,
    look_up_owners,
    start_walk_ahead,
)
from tcptune.inspect.ownersbpf import missing_capability
from tcptune.inspect.procfs import ProcFS
from tcptune.inspect.statecounts import sockets_in_use
from tests.inspect import walkahead_scenario
from tests.lab import SocketLab, kernel_lab, skip_or_fail
from tests.lab.privileges import UNPRIVILEGED
from tests.lab.tools import require_tool

PROC = ProcFS(Path("/proc"))
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lab() -> Iterator[SocketLab]:
    with kernel_lab() as made:
        yield made


def finished(walk: WalkAhead | None) -> WalkAhead:
    assert walk is not None
    walk.stop()
    return walk


@pytest.mark.kernel
def test_the_walk_ahead_names_the_holders_the_walk_after_names(lab: SocketLab) -> None:
    shared = lab.close_wait(4)  # held by this process and a forked child, parent first
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(writer)
        os.read(reader, 1)
        os._exit(0)
    os.close(reader)
    (alone,) = lab.close_wait(1)  # made after the fork: this process only
    assert alone.server is not None
    helper = subprocess.Popen(["sleep", "30"], pass_fds=[alone.server.fileno()])
    listener = lab.listen()  # a listener of this process and the child, and one nobody holds
    gone = socket.create_server(("127.0.0.1", 0))
    unheld = os.fstat(gone.fileno()).st_ino
    gone.close()
    pipe = os.pipe()  # a held descriptor, but no socket
    piped = os.fstat(pipe[0]).st_ino
    wanted = [c.server_inode for c in shared] + [alone.server_inode, unheld, piped]
    wanted.append(os.fstat(listener.fileno()).st_ino)
    try:
        ahead = WalkAhead(PROC)
        from_walk_ahead = look_up_owners(PROC, wanted, source=OwnerSource.PROCFS, walked=ahead)
        after = look_up_owners(PROC, wanted, source=OwnerSource.PROCFS)
    finally:
        os.close(writer)
        os.waitpid(child, 0)
        helper.kill()
        helper.wait()
        os.close(pipe[0])
        os.close(pipe[1])
    assert dict(from_walk_ahead.holders.items()) == dict(after.holders.items())
    me = os.getpid()
    for conn in shared:
        assert from_walk_ahead.holders[conn.server_inode] == (me, child)
    assert sorted(from_walk_ahead.holders[alone.server_inode]) == sorted([me, helper.pid])
    assert unheld not in from_walk_ahead.holders  # closed: wanted, held by nobody
    assert piped not in from_walk_ahead.holders  # a pipe:[N] link is no socket
    assert set(from_walk_ahead.processes) == set(after.processes) == {me, child, helper.pid}
    assert len(ahead.found.inodes) == len(ahead.found.pids) >= len(shared) * 2 + 2  # every socket


@pytest.mark.kernel
def test_the_walk_runs_during_the_dump_not_after_it(lab: SocketLab) -> None:
    """The factory lets the dump start only once the walk is over, then kills the child.

    A walk after the dump (the sequential lookup) no longer sees the child.
    """
    snapshot, inodes, child = walkahead_scenario.run(OwnerSource.PROCFS)
    assert snapshot.owners is not None and snapshot.owners.source == "procfs"
    for inode in inodes:
        assert snapshot.owners.holders[inode] == (os.getpid(), child)


@pytest.mark.kernel
def test_an_unprivileged_auto_audit_walks_ahead(lab: SocketLab) -> None:
    require_tool("setpriv")
    done = subprocess.run(
        [*UNPRIVILEGED, sys.executable, "-m", "tests.inspect.walkahead_scenario", "auto"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["source"] == "procfs"
    assert "CAP_BPF" in found["why"] or "CAP_PERFMON" in found["why"], found["why"]
    assert len(found["holders"]) == 3
    for pids in found["holders"].values():
        assert pids == [found["pid"], found["child"]]


@pytest.mark.kernel
def test_below_the_threshold_no_walk_starts(lab: SocketLab) -> None:
    in_use = sockets_in_use(PROC, time_wait=False)
    assert in_use < WALK_AHEAD_MIN_SOCKETS  # a fresh namespace
    assert start_walk_ahead(PROC, True, OwnerSource.PROCFS) is None
    assert start_walk_ahead(PROC, True, OwnerSource.PROCFS, min_sockets=in_use + 1) is None
    finished(start_walk_ahead(PROC, True, OwnerSource.PROCFS, min_sockets=in_use))


def test_no_walk_without_owners_on_a_fixture_or_with_bpf_asked(tmp_path: Path) -> None:
    net = tmp_path / "net"
    net.mkdir()
    (net / "sockstat").write_text("sockets: used 9000\nTCP: inuse 9000 orphan 0 tw 0 alloc 9000\n")
    assert start_walk_ahead(ProcFS(tmp_path), True, OwnerSource.PROCFS, min_sockets=0) is None
    assert start_walk_ahead(PROC, False, OwnerSource.PROCFS, min_sockets=0) is None
    assert start_walk_ahead(PROC, True, OwnerSource.BPF, min_sockets=0) is None
    finished(start_walk_ahead(PROC, True, OwnerSource.PROCFS, min_sockets=0))


def test_no_walk_when_auto_will_use_bpf() -> None:
    if missing_capability(PROC.read_text("self/status")):
        skip_or_fail("not privileged: AUTO would walk /proc (the unprivileged test covers it)")
    assert start_walk_ahead(PROC, True, OwnerSource.AUTO, min_sockets=0) is None
    finished(start_walk_ahead(PROC, True, OwnerSource.PROCFS, min_sockets=0))
