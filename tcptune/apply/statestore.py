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

tcptune acts on these files as root, so the directory must be owned by root (or
the effective user) and writable by nobody else, and every file in it is opened
without following links, refused unless it is a regular file with the same
owner rule, and read up to a bound (exit 77 for an unsafe directory or file).
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import stat
import syslog
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tcptune.apply import DEFAULT_STATE_DIR
from tcptune.apply.atomicfile import AtomicWriteError, atomic_write
from tcptune.apply.sysctld import DROPIN_NAME, is_tcptune_file
from tcptune.exitcodes import (
    BadInputError,
    LockedError,
    PermissionDeniedError,
    TcptuneError,
    UsageError,
    WriteFailedError,
)
from tcptune.inspect.invoker import Identity
from tcptune.inspect.procfs import (
    describe_os_error,
    is_valid_sysctl_name,
    open_regular,
    read_fd,
)
from tcptune.model.sysctls import KNOWN_SYSCTLS

STATE_SCHEMA = 1
LOCK_POLL_SECONDS = 0.05
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
# 9999-12-31T23:59:59Z, the last second datetime (and so every renderer) can show.
MAX_TIME = 253_402_300_799.0
MAX_ID = 2**53  # ids stay exact in every JSON reader (IEEE 754 doubles); ids are below it
MAX_STATE_BYTES = 16 << 20  # state.json: thousands of records fit in far less
MAX_HISTORY_BYTES = 64 << 20  # history.jsonl: rotate it (README) long before this
ACTIONS = ("apply", "rollback", "forget")  # forget: a record dropped by `rollback --forget`
MAX_DIGITS = 20  # a JSON integer longer than this is no id, time or counter tcptune wrote
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


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
    # Keys outside the catalogue written with --allow-unlisted; rollback writes no other.
    unlisted: tuple[str, ...] = ()


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
    netns: str | None = None  # the network namespace changed, e.g. "net:[4026531840] (initial)"


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


MAX_VALUE_TEXT = 4096  # /proc/sys text handlers take at most a page (kernel/sysctl.c)


def _sysctl_value(value: Any, where: str) -> str:
    """Return sysctl text as tcptune reads and writes it: printable ASCII on one line."""
    text: str = _text(value, where)
    if len(text) > MAX_VALUE_TEXT or not all(" " <= c <= "~" or c == "\t" for c in text):
        raise _Invalid(f"{where}: not sysctl text (printable ASCII, one line): {_brief(text)}")
    return text


def _changes(data: Any, where: str) -> tuple[Change, ...]:
    if not isinstance(data, list):
        raise _Invalid(f"{where}: expected a list, got {_brief(data)}")
    changes = []
    for index, item in enumerate(data):
        at = f"{where}[{index}]"
        name = _text(_field(item, "name", at), f"{at}.name")
        if not is_valid_sysctl_name(name):
            raise _Invalid(f"{at}.name: not a dotted sysctl name: {_brief(name)}")
        before = _sysctl_value(_field(item, "before", at), f"{at}.before")
        after = _sysctl_value(_field(item, "after", at), f"{at}.after")
        changes.append(Change(name, before, after))
    return tuple(changes)


def _names(data: Any, where: str) -> tuple[str, ...]:
    if not isinstance(data, list):
        raise _Invalid(f"{where}: expected a list, got {_brief(data)}")
    for index, name in enumerate(data):
        if not isinstance(name, str) or not is_valid_sysctl_name(name):
            raise _Invalid(f"{where}[{index}]: not a dotted sysctl name: {_brief(name)}")
    return tuple(data)


def _dropin(data: Any, where: str) -> DropinBackup | None:
    if data is None:
        return None
    path = _text(_field(data, "path", where), f"{where}.path")
    if Path(path).name != DROPIN_NAME:  # tcptune never writes, restores or removes other files
        raise _Invalid(f"{where}.path: not a {DROPIN_NAME} drop-in: {_brief(path)}")
    if not path.startswith("/") or ".." in Path(path).parts or not path.isprintable():
        raise _Invalid(f"{where}.path: not an absolute path without '..': {_brief(path)}")
    previous = _text(_field(data, "previous", where), f"{where}.previous", optional=True)
    written = _text(_field(data, "written", where, None), f"{where}.written", optional=True)
    # tcptune only ever replaces a file carrying its marker, and writes one with it:
    # a record whose saved text lacks it was not written by tcptune.
    for key, text in (("previous", previous), ("written", written)):
        if text is not None and not is_tcptune_file(text):
            raise _Invalid(f"{where}.{key}: not a drop-in tcptune wrote (no marker line)")
    return DropinBackup(path, previous, written)


def _record(data: Any, where: str) -> ApplyRecord:
    def get(key: str, default: Any = ...) -> Any:
        return _field(data, key, where, default)

    unlisted = _names(get("unlisted", []), f"{where}.unlisted")
    changes = _changes(get("changes"), f"{where}.changes")
    for index, change in enumerate(changes):
        if change.name not in KNOWN_SYSCTLS and change.name not in unlisted:
            raise _Invalid(
                f"{where}.changes[{index}].name: {change.name} is not a key tcptune writes "
                "(not in its catalogue, nor allowed by --allow-unlisted in this record)"
            )
    return ApplyRecord(
        id=_int(get("id"), f"{where}.id"),
        time=_time(get("time"), f"{where}.time"),
        profile=_text(get("profile"), f"{where}.profile"),
        netns_inode=_int(get("netns_inode", None), f"{where}.netns_inode", optional=True),
        who=_identity(get("who"), f"{where}.who"),
        changes=changes,
        dropin=_dropin(get("dropin", None), f"{where}.dropin"),
        complete=_flag(get("complete"), f"{where}.complete"),
        netns_cookie=_int(get("netns_cookie", None), f"{where}.netns_cookie", optional=True),
        boot_id=_text(get("boot_id", None), f"{where}.boot_id", optional=True),
        initial_netns=_flag(get("initial_netns", None), f"{where}.initial_netns", optional=True),
        unlisted=unlisted,
    )


def _entry(data: Any) -> HistoryEntry:
    def get(key: str, default: Any = ...) -> Any:
        return _field(data, key, "entry", default)

    entry_id = _int(get("id"), "id")
    moment = _time(get("time"), "time")
    action = _text(get("action"), "action")
    if action not in ACTIONS:
        raise _Invalid(f"action: expected 'apply', 'rollback' or 'forget', got {_brief(action)}")
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
        netns=_text(get("netns", None), "netns", optional=True),
    )


def _no_constants(name: str) -> Any:
    raise _Invalid(f"{name} is not a JSON number")


def _whole_number(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise _Invalid(f"a number with {len(digits.lstrip('-'))} digits is out of range")
    return int(digits)


def _json(text: str) -> Any:
    """Parse strict JSON: NaN, Infinity, huge integers and deep nesting are refused."""
    try:
        return json.loads(text, parse_constant=_no_constants, parse_int=_whole_number)
    except RecursionError:
        raise _Invalid("nested too deeply to be a file tcptune wrote") from None


def _read_error(path: Path, exc: OSError) -> TcptuneError:
    """Return the error for a state file that cannot be read (never 'internal')."""
    if exc.errno in _DENIED:
        return PermissionDeniedError(f"cannot read {path}: {describe_os_error(exc)}")
    if exc.errno == errno.ELOOP:
        return PermissionDeniedError(
            f"{path} is a symbolic link: tcptune never follows links in its state directory; "
            "remove it"
        )
    return BadInputError(f"{path}: cannot read it: {describe_os_error(exc)}")


def _unsafe_owner(status: os.stat_result) -> str | None:
    """Return why a state file or directory is not safe for root to trust, or None."""
    if status.st_uid not in (0, os.geteuid()):
        return f"is owned by uid {status.st_uid}, not root"
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(status.st_mode):04o})"
    return None


def _check_file(fd: int, path: Path) -> None:
    problem = _unsafe_owner(os.fstat(fd))
    if problem is not None:
        raise PermissionDeniedError(
            f"{path} {problem}: refusing to trust it (only root may write tcptune's state)"
        )


def _open_state_file(path: Path, flags: int, mode: int = 0o644) -> int:
    """Open a state file: no link followed, no FIFO waited on, regular and root's only."""
    fd = open_regular(path, flags | _NOFOLLOW, mode)
    try:
        _check_file(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_state_file(path: Path, limit: int) -> bytes | None:
    """Return a state file's bytes (None if absent), refusing anything unsafe or too big."""
    try:
        fd = _open_state_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _read_error(path, exc) from exc
    try:
        return read_fd(fd, limit, path)
    except OSError as exc:
        raise _read_error(path, exc) from exc
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """Return ' (held by pid N)' from the lock file's content, or '' when it holds none."""
    try:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (held by pid {holder})" if holder.isdigit() and len(holder) < 12 else ""


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

    def _prepare_directory(self) -> None:
        """Create the state directory if needed; refuse one that root does not control."""
        try:
            self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        except FileExistsError:
            pass  # a dangling symlink or a file: stat() below names it
        except OSError as exc:
            raise self._directory_error(exc) from exc
        try:
            status = os.stat(self.directory)
        except OSError as exc:
            raise self._directory_error(exc) from exc
        if not stat.S_ISDIR(status.st_mode):
            raise UsageError(f"state directory {self.directory} is not a directory")
        problem = _unsafe_owner(status)
        if problem is not None:
            raise PermissionDeniedError(
                f"state directory {self.directory} {problem}: refusing to use it, since root "
                "acts on what it holds (chown root and chmod go-w it, or choose another "
                "--state-dir); nothing was changed"
            )

    def _directory_error(self, exc: OSError) -> TcptuneError:
        reason = describe_os_error(exc)
        if exc.errno == errno.ELOOP:
            reason = "a loop of symbolic links (ELOOP)"
        message = f"cannot use the state directory {self.directory}: {reason}; nothing was changed"
        if exc.errno in _DENIED:
            return PermissionDeniedError(message)
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
            return UsageError(message)
        return WriteFailedError(message)

    @contextmanager
    def locked(self, timeout: float) -> Iterator[None]:
        """Hold the state lock for the body, waiting up to ``timeout`` seconds for it."""
        self._prepare_directory()
        try:
            fd = _open_state_file(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _read_error(self.lock_path, exc) from exc
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
                        raise LockedError(
                            f"another tcptune apply or rollback holds {self.lock_path}"
                            f"{_holder(fd)}; waited {timeout:g} s; nothing was changed: "
                            "try again"
                        ) from None
                    self._sleep(LOCK_POLL_SECONDS)
                except OSError as exc:  # ENOLCK (e.g. NFS without lockd), EIO, ...
                    raise WriteFailedError(
                        f"cannot lock {self.lock_path}: {describe_os_error(exc)}; nothing was "
                        "changed (choose a local state directory with --state-dir)"
                    ) from exc
            try:  # who holds it, for the message above; a full disk only loses that hint
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            except OSError:
                pass
            yield
        finally:
            os.close(fd)  # flock(2): closing the last descriptor releases the lock

    def _load(self) -> tuple[int, tuple[ApplyRecord, ...]]:
        """Return state.json's id counter and undo stack; BadInputError if it is corrupt."""
        raw = _read_state_file(self.state_path, MAX_STATE_BYTES)
        if raw is None:
            return 0, ()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInputError(
                f"{self.state_path}: corrupt state file: not UTF-8 text (byte {exc.start}); "
                "nothing was changed"
            ) from exc
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
        self._prepare_directory()
        document = {
            "schema": STATE_SCHEMA,
            "next_id": max(counter, max(ids, default=0) + 1),
            "undo_stack": [asdict(r) for r in records],
        }
        try:  # under the lock: a temporary file left behind is a killed writer's
            atomic_write(self.state_path, json.dumps(document, indent=2) + "\n", stale_after=0)
        except AtomicWriteError as exc:
            if not exc.replaced:  # only the directory fsync failed: the new stack is in place
                raise

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
        raw = _read_state_file(self.history_path, MAX_HISTORY_BYTES)
        return [] if raw is None else raw.split(b"\n")

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
        self._prepare_directory()
        line = json.dumps(asdict(entry), separators=(",", ":")) + "\n"
        fd = _open_state_file(self.history_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line
            data = line.encode("utf-8")
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, "short write (disk full?)", str(self.history_path))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _history_ids(self) -> list[int]:
        """Return the ids of every history line that has one; the rest are skipped."""
        try:
            lines = self._history_lines()
        except BadInputError:
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
        used = [r.id for r in stack] + [i for i in self._history_ids() if i < MAX_ID]
        number = max(counter, max(used, default=0) + 1)
        if number >= MAX_ID:
            raise BadInputError(
                f"{self.state_path}: the record counter is at {number}, the largest id tcptune "
                "can write; move state.json and history.jsonl away to start again; nothing "
                "was changed"
            )
        return number

    def claim_id(self, number: int) -> None:
        """Make sure ``number`` is never handed out again, even if the history is rotated."""
        self.save_stack(self.undo_stack(), used=[number])
