"""Keep the way back: the undo stack, the history of applies and rollbacks, and the lock.

Layout of the state directory (default /var/lib/tcptune, see README.md):

- ``state.json``: the undo stack, every apply not yet rolled back, each with the
  values it replaced and the namespace it changed, and ``next_id``, the record
  counter. Rewritten atomically, and always before the first sysctl write.
- ``history.jsonl``: one JSON object a line for every apply and rollback, appended.
  It is a log: a torn or garbled line never blocks an apply or a rollback.
- ``lock``: held with flock(2) for the whole of an apply or rollback.

Both files are read strictly (records.py, history.py): a value of the wrong type,
a sysctl name that is not a dotted name, a time that is not a finite moment in
years 1970-9999 are named with the file and the line (or record) and refused
(exit 65); nothing is written. This module owns the directory, the lock, the
file rules below and the atomic rewrite of state.json.

tcptune acts on these files as root, so the directory must be owned by root (or
the effective user) and writable by nobody else, and every file in it is opened
without following links, refused unless it is a regular file with the same
owner rule, and read up to a bound (exit 77 for an unsafe directory or file).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

from tcptune.apply import DEFAULT_STATE_DIR
from tcptune.apply.atomicfile import AtomicWriteError, atomic_write
from tcptune.apply.history import (
    HistoryEntry,
    HistoryLog,
    append_entry,
    history_ids,
    parse_history,
)
from tcptune.apply.records import MAX_ID, STATE_SCHEMA, ApplyRecord, load_state
from tcptune.exitcodes import (
    BadInputError,
    LockedError,
    PermissionDeniedError,
    TcptuneError,
    UsageError,
    WriteFailedError,
)
from tcptune.inspect.procfs import describe_os_error, open_regular, read_fd

LOCK_POLL_SECONDS = 0.05
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
MAX_STATE_BYTES = 16 << 20  # state.json: thousands of records fit in far less
MAX_HISTORY_BYTES = 64 << 20  # history.jsonl: rotate it (README) long before this
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


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
        return load_state(raw, self.state_path)

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
        return parse_history(self._history_lines())

    def history(self) -> tuple[HistoryEntry, ...]:
        """Return every recorded apply and rollback, oldest first; BadInputError on a bad line."""
        log = self.read_history()
        if log.problems:
            raise BadInputError(f"{self.history_path}: {log.problems[0]}")
        return log.entries

    def append_history(self, entry: HistoryEntry) -> None:
        """Append ``entry`` to the history file as one line and flush it to disk."""
        self._prepare_directory()
        fd = _open_state_file(self.history_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            append_entry(fd, entry, self.history_path)
        finally:
            os.close(fd)

    def _history_ids(self) -> list[int]:
        """Return the ids of every history line that has one; the rest are skipped."""
        try:
            lines = self._history_lines()
        except BadInputError:
            return []  # the log is unreadable: state.json's counter still holds
        return history_ids(lines)

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
