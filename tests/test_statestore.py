"""The state directory: undo stack, history lines and the lock, in a temporary directory."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from tcptune.exitcodes import BadInputError, LockedError
from tcptune.identity import Identity
from tcptune.statestore import ApplyRecord, Change, DropinBackup, HistoryEntry, StateStore

ROOT = Identity(uid=0, euid=0, user="root", sudo_user="alice")


def record(record_id: int) -> ApplyRecord:
    return ApplyRecord(
        id=record_id,
        time=1.5,
        profile="web",
        netns_inode=4026531840,
        who=ROOT,
        changes=(Change("net.ipv4.tcp_fin_timeout", "60", "15"),),
        dropin=DropinBackup("/etc/sysctl.d/90-tcptune.conf", None),
        complete=False,
    )


def test_undo_stack_round_trips_and_pops(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    assert store.undo_stack() == ()
    store.push(record(1))
    store.push(record(2))
    store.mark_complete(2)
    stack = store.undo_stack()
    assert [(r.id, r.complete) for r in stack] == [(1, False), (2, True)]
    assert stack[0] == record(1)
    store.drop(2)
    assert [r.id for r in store.undo_stack()] == [1]
    assert sorted(p.name for p in store.directory.iterdir()) == ["state.json"]


def test_history_appends_lines_and_numbers_continue(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    entry = HistoryEntry(1, 2.0, "apply", "applied", "web", ROOT, record(1).changes, None, "ok")
    store.append_history(entry)
    store.append_history(
        HistoryEntry(2, 3.0, "rollback", "rolled back", "web", ROOT, (), None, "undid", undoes=1)
    )
    assert store.history()[0] == entry
    assert store.history()[1].undoes == 1
    assert store.next_id() == 3
    assert len(store.history_path.read_text().splitlines()) == 2


def test_corrupt_files_are_named_with_the_line(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.history_path.write_text('{"id": 1}\n')
    with pytest.raises(BadInputError, match=r"history.jsonl: line 1"):
        store.history()
    store.state_path.write_text("{not json")
    with pytest.raises(BadInputError, match="corrupt state file"):
        store.undo_stack()


def test_a_held_lock_fails_with_locked_after_the_timeout(tmp_path: Path) -> None:
    now = [0.0]
    store = StateStore(
        tmp_path, sleep=lambda s: now.__setitem__(0, now[0] + s), monotonic=lambda: now[0]
    )
    store.directory.mkdir(exist_ok=True)
    holder = os.open(store.lock_path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        os.write(holder, b"4242\n")
        with pytest.raises(LockedError, match=r"held by pid 4242.*waited 5 s"), store.locked(5):
            pytest.fail("the body must not run while another process holds the lock")
        assert 5.0 <= now[0] < 5.2
    finally:
        os.close(holder)
    with store.locked(0):  # free again
        assert store.lock_path.read_text().strip() == str(os.getpid())
