"""The state directory: undo stack, history lines and the lock, in a temporary directory."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from tcptune.apply.history import HistoryEntry
from tcptune.apply.records import ApplyRecord, Change, DropinBackup
from tcptune.apply.statestore import StateStore
from tcptune.exitcodes import BadInputError, LockedError
from tcptune.inspect.invoker import Identity

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


# ------------------------------------------------------------------ the id counter and the log


def entry_line(entry_id: int, **fields: object) -> str:
    """Return one history line as tcptune writes it, with ``fields`` replaced."""
    data = {
        "id": entry_id,
        "time": 2.0,
        "action": "apply",
        "outcome": "applied",
        "profile": "web",
        "who": {"uid": 0, "euid": 0, "user": "root", "sudo_user": None, "net_admin": False},
        "changes": [{"name": "net.ipv4.tcp_fin_timeout", "before": "60", "after": "15"}],
        "dropin": None,
        "message": "ok",
        "undoes": None,
    }
    data.update(fields)
    return literal(data)


def literal(data: object) -> str:
    """Return ``data`` as JSON, writing infinity as the overflowing number 1e400."""
    return json.dumps(data).replace("Infinity", "1e400")


def test_a_torn_history_line_does_not_block_the_next_id(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.history_path.write_text(entry_line(1) + "\n" + entry_line(2)[:25])  # a crash mid-write
    assert store.next_id() == 2  # the torn line has no readable id: skipped
    log = store.read_history()
    assert [e.id for e in log.entries] == [1]
    [problem] = log.problems
    assert problem.startswith("line 2: ")
    with pytest.raises(BadInputError, match=r"history.jsonl: line 2: "):
        store.history()


def test_the_id_counter_lives_in_state_json(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.push(record(1))
    store.push(record(2))
    store.drop(2, used=[3])  # a rollback took id 3 while undoing apply 2
    store.drop(1)
    assert store.undo_stack() == ()
    assert json.loads(store.state_path.read_text())["next_id"] == 4
    assert store.next_id() == 4  # without any history file at all
    store.history_path.write_bytes(b"\xff\xfe garbage\n")
    assert store.next_id() == 4
    store.history_path.unlink()
    store.history_path.mkdir()  # unreadable as a file: the counter still holds
    assert store.next_id() == 4


def test_an_old_state_file_without_the_new_fields_still_reads(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    old = {
        "schema": 1,
        "undo_stack": [
            {
                "id": 7,
                "time": 1.5,
                "profile": "web",
                "netns_inode": 4026531840,
                "who": {"uid": 0, "euid": 0, "user": "root", "sudo_user": "alice"},
                "changes": [{"name": "net.ipv4.tcp_fin_timeout", "before": "60", "after": "15"}],
                "dropin": {"path": "/etc/sysctl.d/90-tcptune.conf", "previous": None},
                "complete": True,
            }
        ],
    }
    store.state_path.write_text(json.dumps(old))
    [loaded] = store.undo_stack()
    assert (loaded.id, loaded.netns_cookie, loaded.boot_id, loaded.initial_netns) == (
        7,
        None,
        None,
        None,
    )
    assert loaded.dropin == DropinBackup("/etc/sysctl.d/90-tcptune.conf", None, None)
    assert store.next_id() == 8


CHANGE = {"name": "net.ipv4.tcp_fin_timeout", "before": "60", "after": "15"}
BAD_RECORDS = {
    "change-name-escapes": ({"changes": [{**CHANGE, "name": "../../etc/passwd"}]}, "not a dotted"),
    "change-name-slashes": ({"changes": [{**CHANGE, "name": "net/ipv4/x"}]}, "not a dotted"),
    "before-not-text": ({"changes": [{**CHANGE, "before": None}]}, "before: expected a string"),
    "time-infinite": ({"time": 1e400}, "time: expected seconds since 1970"),
    "time-far-future": ({"time": 1e15}, "time: expected seconds since 1970"),
    "time-negative": ({"time": -1}, "time: expected seconds since 1970"),
    "id-text": ({"id": "7"}, "id: expected a whole number"),
    "uid-infinite": ({"who": {"uid": 1e400, "euid": 0, "user": "root"}}, "who.uid"),
    "dropin-elsewhere": ({"dropin": {"path": "/etc/passwd", "previous": "x"}}, "not a 90-tcptune"),
    "complete-missing": ({"complete": ...}, "'complete' is missing"),
    # Issue 11: a crafted state.json must not steer root's rollback anywhere.
    "dropin-relative": ({"dropin": {"path": "x/90-tcptune.conf", "previous": None}}, "absolute"),
    "dropin-dotdot": (
        {"dropin": {"path": "/etc/sysctl.d/../../root/90-tcptune.conf", "previous": None}},
        "without '..'",
    ),
    "dropin-foreign-text": (
        {"dropin": {"path": "/etc/sysctl.d/90-tcptune.conf", "previous": "* * * * * root x"}},
        "previous: not a drop-in tcptune wrote",
    ),
    "before-newline": ({"changes": [{**CHANGE, "before": "1\nkernel.x = 1"}]}, "not sysctl text"),
    "after-escape": ({"changes": [{**CHANGE, "after": "\x1b[2J"}]}, "not sysctl text"),
    "change-unlisted": (
        {"changes": [{**CHANGE, "name": "vm.swappiness"}]},
        "vm.swappiness is not a key tcptune writes",
    ),
    "before-huge": ({"changes": [{**CHANGE, "before": "1" * 5000}]}, "not sysctl text"),
}


@pytest.mark.parametrize("problem", list(BAD_RECORDS))
def test_a_bad_record_in_state_json_is_named_and_refused(tmp_path: Path, problem: str) -> None:
    fields, reason = BAD_RECORDS[problem]
    data = json.loads(json.dumps(asdict_record(record(3))))
    for key, value in fields.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    store = StateStore(tmp_path)
    store.state_path.write_text(literal({"schema": 1, "undo_stack": [data]}))
    with pytest.raises(BadInputError) as refused:
        store.next_id()
    message = str(refused.value)
    assert message.startswith(f"{store.state_path}: corrupt state file: undo_stack[0]")
    assert reason in message and message.endswith("nothing was changed")


def asdict_record(item: ApplyRecord) -> dict[str, object]:
    from dataclasses import asdict

    return asdict(item)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\xfe", "not UTF-8 text (byte 0)"),
        (b'{"schema": 1, "undo_stack": [], "next_id": NaN}', "NaN is not a JSON number"),
        (b'{"schema": 1, "undo_stack": {}}', "undo_stack: expected a list"),
        (b'["schema"]', "top level: expected an object"),
        (b'{"schema": 1,\n "undo_stack": [\n', "line 3 column 1"),
    ],
    ids=["invalid-utf8", "nan", "stack-not-list", "not-object", "truncated"],
)
def test_a_corrupt_state_file_is_bad_input(tmp_path: Path, content: bytes, reason: str) -> None:
    store = StateStore(tmp_path)
    store.state_path.write_bytes(content)
    with pytest.raises(BadInputError, match="corrupt state file") as refused:
        store.undo_stack()
    assert reason in str(refused.value)
    with pytest.raises(BadInputError):
        store.push(record(1))  # nothing is written over it
    assert store.state_path.read_bytes() == content


def test_a_state_file_that_is_a_directory_is_bad_input(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.state_path.mkdir()
    with pytest.raises(BadInputError, match=r"state.json: cannot read it: is a directory"):
        store.next_id()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"\xff", "line 2: not UTF-8 text (byte 0)"),
        (entry_line(2, time=1e400).encode(), "line 2: time: expected seconds since 1970"),
        (entry_line(2).replace('"time": 2.0', '"time": NaN').encode(), "NaN is not a JSON"),
        (entry_line(2, time=1e15).encode(), "line 2: time: expected seconds since 1970"),
        (entry_line(2, action="wipe").encode(), "line 2: action: expected 'apply'"),
        (entry_line(2, changes=[{**CHANGE, "name": "\x1b[2J"}]).encode(), "not a dotted"),
    ],
    ids=["invalid-utf8", "infinite-time", "nan-time", "far-future", "action", "escape-name"],
)
def test_a_bad_history_line_is_named_and_the_others_still_read(
    tmp_path: Path, line: bytes, reason: str
) -> None:
    store = StateStore(tmp_path)
    store.history_path.write_bytes(entry_line(1).encode() + b"\n" + line + b"\n")
    log = store.read_history()
    assert [e.id for e in log.entries] == [1]
    [problem] = log.problems
    assert reason in problem


def test_a_history_file_that_is_a_directory_is_bad_input(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.history_path.mkdir()
    with pytest.raises(BadInputError, match=r"history.jsonl: cannot read it: is a directory"):
        store.read_history()


def test_an_entry_appended_after_a_torn_line_starts_a_new_line(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.history_path.write_text(entry_line(1) + "\n" + entry_line(2)[:25])
    store.append_history(
        HistoryEntry(3, 3.0, "rollback", "rolled back", "web", ROOT, (), None, "undid", undoes=1)
    )
    log = store.read_history()
    assert [e.id for e in log.entries] == [1, 3]
    assert [p.split(":")[0] for p in log.problems] == ["line 2"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"schema": 1, "next_id": 1' + "0" * 5000 + ', "undo_stack": []}', "5001 digits"),
    ],
    ids=["deep-nesting", "huge-integer"],
)
def test_hostile_json_in_state_json_is_one_clear_line(
    tmp_path: Path, text: str, reason: str
) -> None:
    store = StateStore(tmp_path)
    store.state_path.write_text(text)
    with pytest.raises(BadInputError) as refused:
        store.undo_stack()
    message = str(refused.value)
    assert reason in message and "set_int_max_str_digits" not in message and len(message) < 300


def test_a_history_id_at_2_53_is_skipped_and_never_blocks_the_next_apply(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.history_path.write_text(entry_line(2**53) + "\n" + entry_line(5) + "\n")
    assert store.next_id() == 6
    store.save_stack([record(6)])
    assert store.next_id() == 7  # state.json it wrote still reads


def test_ids_are_never_reused_after_the_history_is_rotated(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.history_path.write_text(entry_line(1) + "\n")
    store.claim_id(store.next_id())  # a no-op apply: only a history line would hold its id
    store.history_path.unlink()  # logrotate
    assert store.next_id() == 3
