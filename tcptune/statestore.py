"""Keep the way back: the undo stack, the history of applies and rollbacks, and the lock.

Layout of the state directory (default /var/lib/tcptune, see README.md):

- ``state.json``: the undo stack, every apply not yet rolled back, each with the
  values it replaced. Rewritten atomically, and always before the first sysctl write.
- ``history.jsonl``: one JSON object a line for every apply and rollback, appended.
- ``lock``: held with flock(2) for the whole of an apply or rollback.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import syslog
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tcptune.atomicfile import atomic_write
from tcptune.exitcodes import BadInputError, LockedError, PermissionDeniedError, WriteFailedError
from tcptune.identity import Identity
from tcptune.procfs import describe_os_error

DEFAULT_STATE_DIR = Path("/var/lib/tcptune")
STATE_SCHEMA = 1
LOCK_POLL_SECONDS = 0.05
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


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


def _identity(data: Any) -> Identity:
    return Identity(
        uid=int(data["uid"]),
        euid=int(data["euid"]),
        user=str(data["user"]),
        sudo_user=data.get("sudo_user"),
        net_admin=bool(data.get("net_admin", False)),
    )


def _changes(data: Any) -> tuple[Change, ...]:
    return tuple(Change(str(c["name"]), str(c["before"]), str(c["after"])) for c in data)


def _record(data: Any) -> ApplyRecord:
    dropin = data.get("dropin")
    return ApplyRecord(
        id=int(data["id"]),
        time=float(data["time"]),
        profile=str(data["profile"]),
        netns_inode=data.get("netns_inode"),
        who=_identity(data["who"]),
        changes=_changes(data["changes"]),
        dropin=DropinBackup(str(dropin["path"]), dropin["previous"]) if dropin else None,
        complete=bool(data["complete"]),
    )


def _entry(data: Any) -> HistoryEntry:
    return HistoryEntry(
        id=int(data["id"]),
        time=float(data["time"]),
        action=str(data["action"]),
        outcome=str(data["outcome"]),
        profile=data.get("profile"),
        who=_identity(data["who"]),
        changes=_changes(data["changes"]),
        dropin=data.get("dropin"),
        message=str(data.get("message", "")),
        undoes=data.get("undoes"),
    )


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

    def undo_stack(self) -> tuple[ApplyRecord, ...]:
        """Return the applies not yet rolled back, oldest first."""
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ()
        try:
            data = json.loads(text)
            if data.get("schema") != STATE_SCHEMA:
                raise ValueError(f"schema {data.get('schema')!r}, expected {STATE_SCHEMA}")
            return tuple(_record(item) for item in data["undo_stack"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadInputError(f"{self.state_path}: corrupt state file: {exc}") from exc

    def save_stack(self, records: Sequence[ApplyRecord]) -> None:
        """Rewrite the undo stack atomically and durably."""
        self.directory.mkdir(parents=True, exist_ok=True)
        document = {"schema": STATE_SCHEMA, "undo_stack": [asdict(r) for r in records]}
        atomic_write(self.state_path, json.dumps(document, indent=2) + "\n")

    def push(self, record: ApplyRecord) -> None:
        """Add ``record`` on top of the undo stack, durably."""
        self.save_stack([*self.undo_stack(), record])

    def mark_complete(self, record_id: int) -> None:
        """Mark the apply ``record_id`` as fully written."""
        stack = [replace(r, complete=True) if r.id == record_id else r for r in self.undo_stack()]
        self.save_stack(stack)

    def drop(self, record_id: int) -> None:
        """Remove the apply ``record_id`` from the undo stack."""
        self.save_stack([r for r in self.undo_stack() if r.id != record_id])

    def history(self) -> tuple[HistoryEntry, ...]:
        """Return every recorded apply and rollback, oldest first."""
        try:
            lines = self.history_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return ()
        entries = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entries.append(_entry(json.loads(line)))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise BadInputError(f"{self.history_path}: line {number}: {exc}") from exc
        return tuple(entries)

    def append_history(self, entry: HistoryEntry) -> None:
        """Append ``entry`` to the history file and flush it to disk."""
        self.directory.mkdir(parents=True, exist_ok=True)
        line = json.dumps(asdict(entry), separators=(",", ":")) + "\n"
        fd = os.open(
            self.history_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
        )
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def next_id(self) -> int:
        """Return the next record number, one above any in the history or undo stack."""
        used = [e.id for e in self.history()] + [r.id for r in self.undo_stack()]
        return max(used, default=0) + 1
