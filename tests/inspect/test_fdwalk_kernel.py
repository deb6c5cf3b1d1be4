"""The /proc descriptor walk run ahead in a forked child, against the real kernel.

Walked in a child forked before the socket dump, the holders must be exactly
those of the walk after the dump (first holders and the others, in order);
a child that fails in any way must leave the sequential answer, never a
wrong one; no child may be left behind; and no fork may happen while
another thread runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tcptune.inspect import fdwalk
from tcptune.inspect.fdwalk import (
    ForkedWalk,
    Meeting,
    SocketDescriptors,
    socket_descriptors,
    write_descriptors,
    write_records,
)
from tcptune.inspect.inspector import SocketSource, inspect
from tcptune.inspect.owners import OwnerSource, look_up_owners, walk_ahead
from tcptune.inspect.ownersbpf import missing_capability
from tcptune.inspect.procfs import ProcFS
from tcptune.model.snapshot import SocketOwners
from tests.inspect import fdwalk_scenario
from tests.inspect.fdwalk_scenario import Scene, audit, scene
from tests.lab import SocketLab, kernel_lab
from tests.lab.privileges import UNPRIVILEGED
from tests.lab.tools import require_tool

PROC = ProcFS(Path("/proc"))
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lab() -> Iterator[SocketLab]:
    with kernel_lab() as made:
        yield made


@pytest.fixture
def made(lab: SocketLab) -> Iterator[Scene]:
    with scene() as built:
        yield built


def wanted(made: Scene) -> list[int]:
    return [*made.shared, *made.alone, made.listener]


def gone(pid: int) -> bool:
    """Return whether ``pid`` is reaped: no process, no zombie, not our child any more."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not Path(f"/proc/{pid}").exists()
    return False


def started(walk: fdwalk.ChildWalk = write_descriptors) -> ForkedWalk:
    forked = ForkedWalk.start(PROC, walk)
    assert forked is not None, "no fork: another thread alive?"
    return forked


def owners_with(made: Scene, forked: ForkedWalk | None) -> SocketOwners:
    try:
        return look_up_owners(PROC, wanted(made), source=OwnerSource.PROCFS, walked=forked)
    finally:
        if forked is not None:
            forked.close()


def as_dict(owners: SocketOwners) -> dict[int, tuple[int, ...]]:
    return dict(owners.holders.items())


@pytest.mark.kernel
def test_the_forked_walk_names_the_holders_the_sequential_walk_names(made: Scene) -> None:
    forked = started()
    ahead = owners_with(made, forked)
    after = owners_with(made, None)
    assert ahead.walked_ahead and not after.walked_ahead
    assert as_dict(ahead) == as_dict(after)  # first holder, then the others, in walk order
    me = os.getpid()
    for inode in made.shared:  # in /proc's order (by PID), and the walker itself is no holder
        assert sorted(ahead.holders[inode]) == sorted([me, made.child])
    for inode in made.alone:
        assert ahead.holders[inode] == (me,)
    assert sorted(ahead.holders[made.listener]) == sorted([me, made.child])
    assert set(ahead.processes) == set(after.processes) == {me, made.child}
    assert gone(forked.pid)


@pytest.mark.kernel
def test_an_inspection_walking_ahead_names_the_same_holders(made: Scene) -> None:
    forked = audit(OwnerSource.PROCFS, ahead=True)
    sequential = audit(OwnerSource.PROCFS, ahead=False)
    assert forked.owners is not None and sequential.owners is not None
    assert forked.owners.walked_ahead and not sequential.owners.walked_ahead
    assert fdwalk_scenario.holders(forked) == fdwalk_scenario.holders(sequential)
    assert set(made.shared + made.alone) <= set(forked.owners.holders)
    assert forked.sockets is not None and sequential.sockets is not None


def exits_1(*_: object) -> None:
    raise RuntimeError("the walk failed")


def killed(procfs: ProcFS, fd: int, meeting: Meeting) -> None:
    write_descriptors(procfs, fd, meeting)
    os.kill(os.getpid(), signal.SIGKILL)


def short(procfs: ProcFS, fd: int, meeting: Meeting) -> None:
    write_descriptors(procfs, fd, meeting)
    os.ftruncate(fd, os.fstat(fd).st_size - 1)


def overstated(procfs: ProcFS, fd: int, meeting: Meeting) -> None:
    write_descriptors(procfs, fd, meeting)
    count = int.from_bytes(os.pread(fd, 8, 0), "little")
    os.pwrite(fd, (count + 1).to_bytes(8, "little"), 0)


def nothing(*_: object) -> None:
    pass


def takes_none(procfs: ProcFS, fd: int, meeting: Meeting) -> None:
    write_records(fd, SocketDescriptors())  # well-formed: the parent walks every process


def takes_up_to_the_parent(procfs: ProcFS, fd: int, meeting: Meeting) -> None:
    """Walk the processes up to the test's own, leave the others to the parent."""
    upto = meeting.pids.index(str(os.getppid())) + 1
    taken = [pid for index, pid in enumerate(meeting.pids[:upto]) if meeting.child_takes(index)]
    write_records(fd, socket_descriptors(procfs, os.getpid(), taken))


@pytest.mark.kernel
@pytest.mark.parametrize("walk", [exits_1, killed, short, overstated, nothing])
def test_a_failed_child_leaves_the_sequential_answer(
    made: Scene, walk: Callable[[ProcFS, int, Meeting], None]
) -> None:
    forked = started(walk)
    assert forked.result() is None
    after = owners_with(made, None)
    fallback = owners_with(made, started(walk))
    assert not fallback.walked_ahead
    assert as_dict(fallback) == as_dict(after)
    assert sorted(after.holders[made.shared[0]]) == sorted([os.getpid(), made.child])
    forked.close()
    assert gone(forked.pid)


@pytest.mark.kernel
@pytest.mark.parametrize("walk", [takes_none, takes_up_to_the_parent, write_descriptors])
def test_the_parent_walks_what_the_child_left(
    made: Scene, walk: Callable[[ProcFS, int, Meeting], None]
) -> None:
    """Child and parent share the walk; the records are the whole walk, each process once."""
    after = owners_with(made, None)
    shared = owners_with(made, started(walk))
    assert shared.walked_ahead
    assert as_dict(shared) == as_dict(after)
    forked = started(walk)
    found = forked.result()
    assert found is not None
    walked = socket_descriptors(PROC, skip=forked.pid)
    assert list(found.inodes) == list(walked.inodes)
    assert list(found.pids) == list(walked.pids)
    forked.close()


@pytest.mark.kernel
def test_no_child_outlives_an_inspection_even_a_failed_one(lab: SocketLab) -> None:
    children: list[int] = []

    def recorded(procfs: ProcFS, source: OwnerSource) -> ForkedWalk | None:
        forked = ForkedWalk.start(procfs, lambda *_: signal.pause())  # never ends
        assert forked is not None
        children.append(forked.pid)
        return forked

    def interrupted() -> object:
        raise KeyboardInterrupt

    lab.close_wait(2)
    with pytest.raises(KeyboardInterrupt):
        inspect(
            source=SocketSource.NETLINK,
            details=True,
            owners=True,
            owners_source=OwnerSource.PROCFS,
            netlink=interrupted,  # type: ignore[arg-type]
            walk_ahead=recorded,
        )
    assert len(children) == 1 and gone(children[0])
    # a child killed in the middle of its walk: the inspection walks itself
    snapshot = inspect(
        source=SocketSource.NETLINK,
        details=True,
        owners=True,
        owners_source=OwnerSource.PROCFS,
        walk_ahead=lambda procfs, source: killing(recorded(procfs, source)),
    )
    assert snapshot.owners is not None and not snapshot.owners.walked_ahead
    assert len(snapshot.owners.holders) == 2
    assert len(children) == 2 and gone(children[1])


def killing(forked: ForkedWalk | None) -> ForkedWalk | None:
    assert forked is not None
    os.kill(forked.pid, signal.SIGKILL)
    return forked


@pytest.mark.kernel
def test_no_fork_while_another_thread_runs(made: Scene) -> None:
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()
    try:
        assert ForkedWalk.start(PROC) is None
        snapshot = audit(OwnerSource.PROCFS, ahead=True)
    finally:
        release.set()
        other.join()
    assert snapshot.owners is not None and not snapshot.owners.walked_ahead
    assert sorted(snapshot.owners.holders[made.shared[0]]) == sorted([os.getpid(), made.child])
    forked = ForkedWalk.start(PROC)  # alone again: it forks
    assert forked is not None
    forked.close()


@pytest.mark.kernel
def test_the_walk_ahead_starts_only_when_procfs_answers_and_it_pays(lab: SocketLab) -> None:
    def start(procfs: ProcFS) -> ForkedWalk | None:
        calls.append(procfs)
        return None

    calls: list[ProcFS] = []
    assert walk_ahead(PROC, OwnerSource.PROCFS, start=start) is None  # a fresh namespace
    assert walk_ahead(PROC, OwnerSource.BPF, min_sockets=0, start=start) is None
    assert not calls
    assert walk_ahead(PROC, OwnerSource.PROCFS, min_sockets=0, start=start) is None
    assert calls == [PROC]
    walk_ahead(PROC, OwnerSource.AUTO, min_sockets=0, start=start)
    bpf_can_run = not missing_capability(PROC.read_text("self/status"))
    assert len(calls) == (1 if bpf_can_run else 2)  # BPF able: its pass after the dump answers


@pytest.mark.kernel
def test_an_unprivileged_auto_audit_walks_ahead(lab: SocketLab) -> None:
    require_tool("setpriv")
    done = subprocess.run(
        [*UNPRIVILEGED, sys.executable, "-m", "tests.inspect.fdwalk_scenario"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert "CAP_BPF" in found["why"] or "CAP_PERFMON" in found["why"], found["why"]
    assert found["walked_ahead"] == [True, False]
    assert found["forked"] == found["sequential"]
    for inode in found["shared"]:
        assert sorted(found["forked"][str(inode)]) == sorted([found["pid"], found["child"]])
    for inode in found["alone"]:
        assert found["forked"][str(inode)] == [found["pid"]]
