"""Read files under one procfs root, with errors that name what was being read.

Every path tcptune reads is built from a :class:`ProcFS` passed in by the
caller (default ``/proc``), never from a module global, so tests point it at a
fixture tree and the namespace code points it at another process's view.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from tcptune.model.record import record

# The most any one file tcptune reads may hold. /proc/sys values, /proc/PID
# files and sysctl.d files are a few KiB; a bigger or endless file (a tree whose
# net/tcp is /dev/zero) is refused rather than read into memory.
MAX_SMALL_FILE = 1 << 20
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)

# A dotted sysctl name: lowercase words of letters, digits, "_" and "-"
# separated by single dots. Nothing like "net/../../etc" or "net..ipv4" can
# match, so a validated name can never turn into a path outside /proc/sys.
_SYSCTL_NAME = re.compile(r"^[a-z0-9_]+(?:\.[a-z0-9_-]+)+$")


class ProcReadError(Exception):
    """A procfs file could not be read or parsed; the message names it and why."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def is_valid_sysctl_name(name: str) -> bool:
    """Return whether ``name`` is a well-formed dotted sysctl name."""
    return bool(_SYSCTL_NAME.fullmatch(name))  # match() with $ would accept a trailing newline


def describe_os_error(exc: OSError) -> str:
    """Return a short reason for an OSError, e.g. 'permission denied (EACCES)'."""
    code = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or str(exc)
    text = text[0].lower() + text[1:] if text[:1].isupper() and text[1:2].islower() else text
    return f"{text} ({code})" if code else text


def file_kind(mode: int) -> str | None:
    """Return what a file that is not regular is ('a FIFO', ...), or None for a regular file."""
    for test, kind in _FILE_KINDS:
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def open_regular(path: Path | str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """Open ``path`` without blocking on a FIFO and return the fd of a regular file.

    O_NONBLOCK makes opening a FIFO return at once (fifo(7)); fstat(2) then
    refuses anything but a regular file before a byte is read, raising OSError
    (EISDIR for a directory, EINVAL naming the kind otherwise).
    """
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            code = errno.EISDIR if kind == "a directory" else errno.EINVAL
            text = "is a directory" if kind == "a directory" else f"is {kind}, not a regular file"
            raise OSError(code, text, str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int, limit: int, path: Path | str) -> bytes:
    """Return the rest of ``fd``'s content, raising OSError (EFBIG) past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, min(1 << 16, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes, refused", str(path))


def read_bounded(path: Path | str, limit: int = MAX_SMALL_FILE, *, follow: bool = True) -> bytes:
    """Return the bytes of the regular file ``path``, at most ``limit`` of them.

    Never hangs on a FIFO and never reads a device; ``follow=False`` also refuses
    a symlink (ELOOP), for files in directories others may write.
    """
    fd = open_regular(path, os.O_RDONLY | (0 if follow else os.O_NOFOLLOW))
    try:
        return read_fd(fd, limit, path)
    finally:
        os.close(fd)


@record
class ProcFS:
    """One procfs root: ``/proc`` on a live host, a fixture tree in tests."""

    root: Path = Path("/proc")

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def path(self, relative: str) -> Path:
        """Return the path of ``relative`` (e.g. ``net/snmp``) under this root."""
        return self.root / relative

    def sysctl_path(self, name: str) -> Path:
        """Return the ``sys/...`` path of a dotted sysctl name, refusing malformed names."""
        if not is_valid_sysctl_name(name):
            raise ValueError(f"not a well-formed sysctl name: {name!r}")
        return self.root / "sys" / name.replace(".", "/")

    def read_text(self, relative: str) -> str:
        """Return the text of ``relative``, raising ProcReadError naming the file."""
        path = self.path(relative)
        try:
            return read_bounded(path).decode("ascii", "replace")
        except OSError as exc:
            raise ProcReadError(path, describe_os_error(exc)) from exc
