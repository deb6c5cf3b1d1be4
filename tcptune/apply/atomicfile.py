"""Replace and remove files so that a crash leaves either the old or the new content.

The recipe is the one rename(2) and fsync(2) promise: write a temporary file in
the same directory, fsync it, rename it over the target (atomic within one file
system), then fsync the directory so the rename itself survives a power cut.

tcptune runs as root in directories other users may write (a node_exporter
textfile directory): the temporary file gets an unpredictable name and is
created exclusively without following links (O_CREAT|O_EXCL|O_NOFOLLOW, as
mkstemp(3) does), mode 0600 until it is complete, so nothing planted in the
directory is ever opened, truncated or chmodded. rename(2) replaces the
directory entry itself: a symlink at the target is replaced, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import time
from pathlib import Path

TEMP_INFIX = ".tmp-"
_CREATE_ATTEMPTS = 16  # EEXIST on a random 64-bit name: someone is planting names
STALE_SECONDS = 600.0  # a temporary file this old was left by a killed writer


class AtomicWriteError(OSError):
    """A replace failed; ``replaced`` says whether the new content is already in place."""

    def __init__(self, exc: OSError, *, replaced: bool) -> None:
        super().__init__(exc.errno, exc.strerror or str(exc), exc.filename)
        self.replaced = replaced


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename or unlink in it) to disk."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_name(path: Path) -> Path:
    """Return an unpredictable temporary name beside ``path`` (64 random bits)."""
    return path.with_name(f".{path.name}{TEMP_INFIX}{secrets.token_hex(8)}")


def _create_exclusive(path: Path) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _attempt in range(_CREATE_ATTEMPTS):
        temporary = temporary_name(path)
        try:
            return os.open(temporary, flags, 0o600), temporary
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "cannot create a temporary file (every name taken)", str(path))


def remove_stale_temporaries(path: Path, older_than: float = STALE_SECONDS) -> int:
    """Remove this process's owner's temporary files for ``path`` left by a killed writer.

    Only entries named like :func:`temporary_name`, not directories, owned by the
    effective user and last modified ``older_than`` seconds ago or more; unlink(2)
    never follows a link. Return how many were removed.
    """
    prefix = f".{path.name}{TEMP_INFIX}"
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            status = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid():
                continue
            if now - status.st_mtime < older_than:
                continue
            os.unlink(entry.path)
            removed += 1
        except OSError:
            continue
    return removed


def atomic_write(
    path: Path, text: str, mode: int = 0o644, *, stale_after: float = STALE_SECONDS
) -> None:
    """Replace ``path`` with ``text`` atomically and durably, raising OSError on failure.

    The error is an :class:`AtomicWriteError`; its ``replaced`` is True when only
    the final directory fsync failed, so the new content is in place already.
    ``stale_after``: clean temporary files this old first (0 under a lock that
    every writer of ``path`` holds).
    """
    remove_stale_temporaries(path, stale_after)
    try:
        fd, temporary = _create_exclusive(path)
    except OSError as exc:
        raise AtomicWriteError(exc, replaced=False) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)  # exactly ``mode``, whatever the umask
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise AtomicWriteError(exc, replaced=False) from exc
        raise
    try:
        fsync_directory(path.parent)
    except OSError as exc:
        raise AtomicWriteError(exc, replaced=True) from exc


def remove_durably(path: Path) -> None:
    """Delete ``path`` if it exists and flush the directory entry."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AtomicWriteError(exc, replaced=False) from exc
    try:
        fsync_directory(path.parent)
    except OSError as exc:
        raise AtomicWriteError(exc, replaced=True) from exc


NEW_FILE_MODE = 0o644  # a collector (node_exporter) usually reads as another user


def replace_output(path: Path, text: str) -> None:
    """Replace the directory entry ``path`` with ``text`` (``--output``), never following a link.

    A regular file keeps its mode; a symlink is itself replaced by a regular
    file (0644), so its target is never opened, written or chmodded, whoever
    planted it; anything else (directory, device, FIFO, socket) is refused with
    OSError, since the rename would swap it for a regular file.
    """
    mode = NEW_FILE_MODE
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISREG(status.st_mode):
            mode = stat.S_IMODE(status.st_mode)
        elif not stat.S_ISLNK(status.st_mode):
            from tcptune.inspect.procfs import file_kind

            kind = file_kind(status.st_mode)
            raise OSError(errno.EINVAL, f"it is {kind}; --output replaces only a regular file")
    atomic_write(path, text, mode)
