"""The history (history.jsonl): its entries, reading it line by line, appending, syslog.

One JSON object a line for every apply, rollback and forget, appended. It is a log:
a torn or garbled line never blocks an apply or a rollback. Lines are checked as
strictly as state.json (records.py); the state directory's file rules are statestore.py's.
"""

from __future__ import annotations

import errno
import json
import os
import syslog
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tcptune.apply.records import (
    Change,
    Invalid,
    as_changes,
    as_id,
    as_identity,
    as_text,
    as_time,
    brief,
    field,
    parse_json,
)
from tcptune.inspect.invoker import Identity
from tcptune.model.record import record

MAX_HISTORY_BYTES = 64 << 20  # history.jsonl: rotate it (README) long before this
ACTIONS = ("apply", "rollback", "forget")  # forget: a record dropped by `rollback --forget`


@record
class HistoryEntry:
    """One line of the history: an apply or rollback and how it ended."""

    id: int
    time: float
    action: str  # "apply" or "rollback"
    outcome: str  # "applied", "failed", "rolled back"
    profile: str | None
    who: Identity
    changes: tuple[Change, ...]
    dropin: str | None  # the drop-in written, restored or removed
    message: str
    undoes: int | None = None  # for a rollback: the apply it undid
    netns: str | None = None  # the network namespace changed, e.g. "net:[4026531840] (initial)"


def syslog_notice(message: str) -> None:
    """Send ``message`` to syslog or the journal; a host without /dev/log drops it silently."""
    try:
        syslog.openlog("tcptune", syslog.LOG_PID, syslog.LOG_USER)
        syslog.syslog(syslog.LOG_NOTICE, message)
    except OSError:
        pass


def parse_entry(data: Any) -> HistoryEntry:
    def get(key: str, default: Any = ...) -> Any:
        return field(data, key, "entry", default)

    entry_id = as_id(get("id"), "id")
    moment = as_time(get("time"), "time")
    action = as_text(get("action"), "action")
    if action not in ACTIONS:
        raise Invalid(f"action: expected 'apply', 'rollback' or 'forget', got {brief(action)}")
    return HistoryEntry(
        id=entry_id,
        time=moment,
        action=action,
        outcome=as_text(get("outcome"), "outcome"),
        profile=as_text(get("profile", None), "profile", optional=True),
        who=as_identity(get("who"), "who"),
        changes=as_changes(get("changes"), "changes"),
        dropin=as_text(get("dropin", None), "dropin", optional=True),
        message=as_text(get("message", ""), "message"),
        undoes=as_id(get("undoes", None), "undoes", optional=True),
        netns=as_text(get("netns", None), "netns", optional=True),
    )


@record
class HistoryLog:
    """The history as read: every entry that parses, and each line that does not."""

    entries: tuple[HistoryEntry, ...]
    problems: tuple[str, ...]  # e.g. "line 7: not JSON: ..."


def parse_history(lines: Sequence[bytes]) -> HistoryLog:
    """Return every readable history entry, oldest first, and each unreadable line."""
    entries, problems = [], []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            entries.append(parse_entry(parse_json(raw.decode("utf-8"))))
        except UnicodeDecodeError as exc:
            problems.append(f"line {number}: not UTF-8 text (byte {exc.start})")
        except json.JSONDecodeError as exc:  # its own "line 1" would mislead here
            problems.append(f"line {number}: not JSON: {exc.msg} at column {exc.colno}")
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
    return HistoryLog(tuple(entries), tuple(problems))


def history_ids(lines: Sequence[bytes]) -> list[int]:
    """Return the ids of every history line that has one; the rest are skipped."""
    ids = []
    for raw in lines:
        try:
            data = parse_json(raw.decode("utf-8"))
            ids.append(as_id(field(data, "id", "entry"), "id"))
        except ValueError:  # includes UnicodeDecodeError and a torn last line
            continue
    return ids


def append_entry(fd: int, entry: HistoryEntry, path: Path) -> None:
    """Append ``entry`` as one line to the open history file ``fd`` and flush it to disk.

    After a torn last line (a crash mid-append) the entry starts a new line, so
    only the torn line is unreadable, never the entries after it.
    """
    line = json.dumps(asdict(entry), separators=(",", ":")) + "\n"
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        line = "\n" + line
    data = line.encode("utf-8")
    if os.write(fd, data) != len(data):
        raise OSError(errno.ENOSPC, "short write (disk full?)", str(path))
    os.fsync(fd)
