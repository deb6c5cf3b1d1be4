"""Keep the way back: the undo stack, the history of applies and rollbacks, and the lock.

Layout of the state directory (default /var/lib/tcptune, see README.md):

- ``state.json``: the undo stack, every apply not yet rolled back, each with the
  values it replaced and the namespace it changed, and ``next_id``, the record
  counter. Rewritten atomically, and always before the first sysctl write.
- ``history.jsonl``: one JSON object a line for every apply and rollback, appended.
  It is a log: a torn or garbled line never blocks an apply or a rollback.
- ``lock``: held with flock(2) for the whole of an apply or rollback.

Both files are read strictly: a value of the wrong type, a sysctl name that is not
a dotted name, a time that is not a finite moment in years 1970-9999 are named
with the file and the line (or record) and refused (exit 65); nothing is written.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import syslog
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tcptune.apply.atomicfile import atomic_write
from tcptune.apply.sysctld import DROPIN_NAME
from tcptune.exitcodes import (
    BadInputError,
    LockedError,
    PermissionDeniedError,
    TcptuneError,
    WriteFailedError,
)
from tcptune.inspect.invoker import Identity
from tcptune.inspect.procfs import describe_os_error, is_valid_sysctl_name

DEFAULT_STATE_DIR = Path("/var/lib/tcptune")
STATE_SCHEMA = 1
LOCK_POLL_SECONDS = 0.05
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
# 9999-12-31T23:59:59Z, the last second datetime (and so every renderer) can show.
MAX_TIME = 253_402_300_799.0
MAX_ID = 2**53  # ids stay exact in every JSON reader (IEEE 754 doubles)


@dataclass(frozen=True)
class Change:
    """One sysctl write: the text it had and the text written."""

    name: str
    before: str
    after: str


@dataclass(frozen=True)
class DropinBackup:
    """What a sysctl.d drop-in held before tcptune wrote it (None: there was no file)."""

    path: str
    previous: str | None
    written: str | None = None  # what tcptune wrote there (None in records before it was kept)


@dataclass(frozen=True)
class ApplyRecord:
    """An apply on the undo stack, saved before its first write."""

    id: int
    time: float
    profile: str
    netns_inode: int | None
    who: Identity
    changes: tuple[Change, ...]
    dropin: DropinBackup | None
    complete: bool  # False while writing, or if a failed write could not be restored
    # The namespace's stronger identity (netns.NamespaceIdentity); None in older records.
    netns_cookie: int | None = None
    boot_id: str | None = None
    initial_netns: bool | None = None


@dataclass(frozen=True)
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


def syslog_notice(message: str) -> None:
    """Send ``message`` to syslog or the journal; a host without /dev/log drops it silently."""
    try:
        syslog.openlog("tcptune", syslog.LOG_PID, syslog.LOG_USER)
        syslog.syslog(syslog.LOG_NOTICE, message)
    except OSError:
        pass


class _Invalid(ValueError):
    """A field of a state or history file that is missing or malformed."""


def _field(data: Any, key: str, where: str, default: Any = ...) -> Any:
    if not isinstance(data, dict):
        raise _Invalid(f"{where}: expected an object, got {_brief(data)}")
    if key not in data:
        if default is ...:
            raise _Invalid(f"{where}: {key!r} is missing")
        return default
    return data[key]


def _brief(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _int(value: Any, where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise _Invalid(f"{where}: expected a whole number 0..2^53, got {_brief(value)}")
    return value


def _text(value: Any, where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{where}: expected a string, got {_brief(value)}")
    return value


def _flag(value: Any, where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise _Invalid(f"{where}: expected true or false, got {_brief(value)}")
    return value


def _time(value: Any, where: str) -> float:
    number_ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not number_ok or not math.isfinite(value) or not 0 <= value <= MAX_TIME:
        raise _Invalid(f"{where}: expected seconds since 1970 up to year 9999, got {_brief(value)}")
    return float(value)


def _identity(data: Any, where: str) -> Identity:
    return Identity(
        uid=_int(_field(data, "uid", where), f"{where}.uid"),
        euid=_int(_field(data, "euid", where), f"{where}.euid"),
        user=_text(_field(data, "user", where), f"{where}.user"),
        sudo_user=_text(
            _field(data, "sudo_user", where, None), f"{where}.sudo_user", optional=True
        ),
        net_admin=_flag(_field(data, "net_admin", where, False), f"{where}.net_admin"),
    )


def _changes(data: Any, where: str) -> tuple[Change, ...]:
    if not isinstance(data, list):
        raise _Invalid(f"{where}: expected a list, got {_brief(data)}")
    changes = []
    for index, item in enumerate(data):
        at = f"{where}[{index}]"
        name = _text(_field(item, "name", at), f"{at}.name")
        if not is_valid_sysctl_name(name):
            raise _Invalid(f"{at}.name: not a dotted sysctl name: {_brief(name)}")
        before = _text(_field(item, "before", at), f"{at}.before")
        after = _text(_field(item, "after", at), f"{at}.after")
        changes.append(Change(name, before, after))
    return tuple(changes)


def _dropin(data: Any, where: str) -> DropinBackup | None:
    if data is None:
        return None
    path = _text(_field(data, "path", where), f"{where}.path")
    if Path(path).name != DROPIN_NAME:  # tcptune never writes, restores or removes other files
        raise _Invalid(f"{where}.path: not a {DROPIN_NAME} drop-in: {_brief(path)}")
    previous = _text(_field(data, "previous", where), f"{where}.previous", optional=True)
    written = _text(_field(data, "written", where, None), f"{where}.written", optional=True)
    return DropinBackup(path, previous, written)


def _record(data: Any, where: str) -> ApplyRecord:
    def get(key: str, default: Any = ...) -> Any:
        return _field(data, key, where, default)

    return ApplyRecord(
        id=_int(get("id"), f"{where}.id"),
        time=_time(get("time"), f"{where}.time"),
        profile=_text(get("profile"), f"{where}.profile"),
        netns_inode=_int(get("netns_inode", None), f"{where}.netns_inode", optional=True),
        who=_identity(get("who"), f"{where}.who"),
        changes=_changes(get("changes"), f"{where}.changes"),
        dropin=_dropin(get("dropin", None), f"{where}.dropin"),
        complete=_flag(get("complete"), f"{where}.complete"),
        netns_cookie=_int(get("netns_cookie", None), f"{where}.netns_cookie", optional=True),
        boot_id=_text(get("boot_id", None), f"{where}.boot_id", optional=True),
        initial_netns=_flag(get("initial_netns", None), f"{where}.initial_netns", optional=True),
    )


def _entry(data: Any) -> HistoryEntry:
    def get(key: str, default: Any = ...) -> Any:
        return _field(data, key, "entry", default)

    entry_id = _int(get("id"), "id")
    moment = _time(get("time"), "time")
    action = _text(get("action"), "action")
    if action not in ("apply", "rollback"):
        raise _Invalid(f"action: expected 'apply' or 'rollback', got {_brief(action)}")
    return HistoryEntry(
        id=entry_id,
        time=moment,
        action=action,
        outcome=_text(get("outcome"), "outcome"),
        profile=_text(get("profile", None), "profile", optional=True),
        who=_identity(get("who"), "who"),
        changes=_changes(get("changes"), "changes"),
        dropin=_text(get("dropin", None), "dropin", optional=True),
        message=_text(get("message", ""), "message"),
        undoes=_int(get("undoes", None), "undoes", optional=True),
    )


def _no_constants(name: str) -> Any:
    raise _Invalid(f"{name} is not a JSON number")


def _json(text: str) -> Any:
    """Parse strict JSON: NaN and Infinity (which Python's json takes) are refused."""
    return json.loads(text, parse_constant=_no_constants)


def _read_error(path: Path, exc: OSError) -> TcptuneError:
    """Return the error for a state file that cannot be read (never 'internal')."""
    if exc.errno in _DENIED:
        return PermissionDeniedError(f"cannot read {path}: {describe_os_error(exc)}")
    return BadInputError(f"{path}: cannot read it: {describe_os_error(exc)}")


@dataclass(frozen=True)
class HistoryLog:
    """The history as read: every entry that parses, and each line that does not."""

    entries: tuple[HistoryEntry, ...]
    problems: tuple[str, ...]  # e.g. "line 7: not JSON: ..."


class StateStore:
    """The state directory of one host: undo stack, history and lock."""

    def __init__(
        self,
        directory: Path = DEFAULT_STATE_DIR,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self.state_path = self.directory / "state.json"
        self.history_path = self.directory / "history.jsonl"
        self.lock_path = self.directory / "lock"
        self._sleep = sleep
        self._monotonic = monotonic

    @contextmanager
    def locked(self, timeout: float) -> Iterator[None]:
        """Hold the state lock for the body, waiting up to ``timeout`` seconds for it."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            error = PermissionDeniedError if exc.errno in _DENIED else WriteFailedError
            raise error(
                f"cannot open the lock file {self.lock_path}: {describe_os_error(exc)}; "
                "nothing was changed (choose another state directory with --state-dir)"
            ) from exc
        try:
            deadline = self._monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if self._monotonic() >= deadline:
                        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                        by = f" (held by pid {holder})" if holder.isdigit() else ""
                        raise LockedError(
                            f"another tcptune apply or rollback holds {self.lock_path}{by}; "
                            f"waited {timeout:g} s; nothing was changed: try again"
                        ) from None
                    self._sleep(LOCK_POLL_SECONDS)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            yield
        finally:
            os.close(fd)  # flock(2): closing the last descriptor releases the lock

    def _load(self) -> tuple[int, tuple[ApplyRecord, ...]]:
        """Return state.json's id counter and undo stack; BadInputError if it is corrupt."""
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0, ()
        except UnicodeDecodeError as exc:
            raise BadInputError(
                f"{self.state_path}: corrupt state file: not UTF-8 text (byte {exc.start}); "
                "nothing was changed"
            ) from exc
        except OSError as exc:
            raise _read_error(self.state_path, exc) from exc
        try:
            data = _json(text)
            schema = _field(data, "schema", "top level")
            if schema != STATE_SCHEMA:
                raise _Invalid(f"schema {_brief(schema)}, expected {STATE_SCHEMA}")
            counter = _int(_field(data, "next_id", "top level", 0), "next_id")
            items = _field(data, "undo_stack", "top level")
            if not isinstance(items, list):
                raise _Invalid(f"undo_stack: expected a list, got {_brief(items)}")
            records = tuple(_record(item, f"undo_stack[{i}]") for i, item in enumerate(items))
        except ValueError as exc:  # json.JSONDecodeError names the line and column
            raise BadInputError(
                f"{self.state_path}: corrupt state file: {exc}; nothing was changed"
            ) from exc
        ids = [r.id for r in records]
        if len(set(ids)) != len(ids):
            raise BadInputError(
                f"{self.state_path}: corrupt state file: an apply id appears twice in "
                f"undo_stack {ids}; nothing was changed"
            )
        return counter, records

    def undo_stack(self) -> tuple[ApplyRecord, ...]:
        """Return the applies not yet rolled back, oldest first."""
        return self._load()[1]

    def save_stack(self, records: Sequence[ApplyRecord], *, used: Iterable[int] = ()) -> None:
        """Rewrite the undo stack atomically and durably, keeping the id counter above ``used``.

        The counter also stays above every id the old or new stack held, so an id
        is never handed out twice even when the history file is lost or rotated.
        """
        counter, old = self._load()
        ids = [r.id for r in (*old, *records)] + list(used)
        self.directory.mkdir(parents=True, exist_ok=True)
        document = {
            "schema": STATE_SCHEMA,
            "next_id": max(counter, max(ids, default=0) + 1),
            "undo_stack": [asdict(r) for r in records],
        }
        atomic_write(self.state_path, json.dumps(document, indent=2) + "\n")

    def push(self, record: ApplyRecord) -> None:
        """Add ``record`` on top of the undo stack, durably."""
        self.save_stack([*self.undo_stack(), record])

    def mark_complete(self, record_id: int) -> None:
        """Mark the apply ``record_id`` as fully written."""
        stack = [replace(r, complete=True) if r.id == record_id else r for r in self.undo_stack()]
        self.save_stack(stack)

    def drop(self, record_id: int, *, used: Iterable[int] = ()) -> None:
        """Remove the apply ``record_id`` from the undo stack (``used``: ids taken meanwhile)."""
        self.save_stack([r for r in self.undo_stack() if r.id != record_id], used=used)

    def _history_lines(self) -> list[bytes]:
        try:
            return self.history_path.read_bytes().split(b"\n")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _read_error(self.history_path, exc) from exc

    def read_history(self) -> HistoryLog:
        """Return every readable history entry, oldest first, and each unreadable line."""
        entries, problems = [], []
        for number, raw in enumerate(self._history_lines(), start=1):
            if not raw.strip():
                continue
            try:
                entries.append(_entry(_json(raw.decode("utf-8"))))
            except UnicodeDecodeError as exc:
                problems.append(f"line {number}: not UTF-8 text (byte {exc.start})")
            except json.JSONDecodeError as exc:  # its own "line 1" would mislead here
                problems.append(f"line {number}: not JSON: {exc.msg} at column {exc.colno}")
            except ValueError as exc:
                problems.append(f"line {number}: {exc}")
        return HistoryLog(tuple(entries), tuple(problems))

    def history(self) -> tuple[HistoryEntry, ...]:
        """Return every recorded apply and rollback, oldest first; BadInputError on a bad line."""
        log = self.read_history()
        if log.problems:
            raise BadInputError(f"{self.history_path}: {log.problems[0]}")
        return log.entries

    def append_history(self, entry: HistoryEntry) -> None:
        """Append ``entry`` to the history file as one line and flush it to disk.

        After a torn last line (a crash mid-append) the entry starts a new line, so
        only the torn line is unreadable, never the entries after it.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        line = json.dumps(asdict(entry), separators=(",", ":")) + "\n"
        fd = os.open(self.history_path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _history_ids(self) -> list[int]:
        """Return the ids of every history line that has one; the rest are skipped."""
        try:
            lines = self._history_lines()
        except TcptuneError:
            return []  # the log is unreadable: state.json's counter still holds
        ids = []
        for raw in lines:
            try:
                data = _json(raw.decode("utf-8"))
                ids.append(_int(_field(data, "id", "entry"), "id"))
            except ValueError:  # includes UnicodeDecodeError and a torn last line
                continue
        return ids

    def next_id(self) -> int:
        """Return the next record number: above state.json's counter, its stack and the history.

        A garbled history line is skipped here: a log must never block the way back.
        """
        counter, stack = self._load()
        used = [r.id for r in stack] + self._history_ids()
        return max(counter, max(used, default=0) + 1)
