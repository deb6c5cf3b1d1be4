"""The write path: the SysctlWriter, the pre-write checks, and all-or-nothing write_all.

An apply or rollback checks what it can before the first write (privilege, a
writable /proc/sys), then writes each key and reads it back. Any failure (an
errno from the kernel, or any exception a writer raises, or an interrupt)
restores every key already written, in reverse order, and verifies it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from typing import Protocol

from tcptune.apply.records import Change
from tcptune.apply.statestore import StateStore
from tcptune.exitcodes import PermissionDeniedError, TcptuneError, WriteFailedError
from tcptune.inspect.invoker import Identity
from tcptune.inspect.procfs import ProcFS, describe_os_error
from tcptune.model.record import record
from tcptune.model.values import same_text, unit_of

# Errors that mean "not allowed here" rather than "this value is wrong".
_PERMISSION_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


class SysctlWriter(Protocol):
    """Reads and writes sysctls by dotted name; tests inject one that fails."""

    def read(self, name: str) -> str:
        """Return the sysctl's text as the kernel prints it."""
        ...

    def write(self, name: str, text: str) -> None:
        """Set the sysctl to ``text``, raising OSError with the kernel's errno."""
        ...


@record
class ProcSysctlWriter:
    """Read and write sysctls through /proc/sys under one procfs root."""

    procfs: ProcFS

    def read(self, name: str) -> str:
        """Return the sysctl's text as the kernel prints it."""
        return self.procfs.sysctl_path(name).read_text(encoding="ascii", errors="replace")

    def write(self, name: str, text: str) -> None:
        """Set the sysctl to ``text`` with one write(2), raising OSError with the kernel's errno."""
        data = f"{text}\n".encode("ascii")
        # fs/proc/proc_sysctl.c proc_sys_call_handler() hands one write(2) to the
        # key's handler, which parses the whole value; a zero-length write is a no-op.
        fd = os.open(self.procfs.sysctl_path(name), os.O_WRONLY | os.O_CLOEXEC)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):
            raise OSError(errno.EIO, f"short write: {written} of {len(data)} bytes")


class WriteAborted(Exception):
    """A write failed; the ``restored`` keys written before it were put back and verified."""

    def __init__(
        self, reason: str, errno_value: int | None, restored: int, unrestored: Sequence[str]
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errno = errno_value
        self.restored = restored
        self.unrestored = tuple(unrestored)  # keys the undo could not put back


def check_privilege(identity: Identity, command: str) -> None:
    """Raise PermissionDeniedError, naming the command to run, unless ``identity`` may write.

    ``command`` is the line to run as given by the CLI (cli/commandline.py
    decides whether it starts with sudo).
    """
    if not identity.may_write_net_sysctls:
        raise PermissionDeniedError(
            f"changing kernel settings needs root (or CAP_NET_ADMIN) and you are "
            f"{identity.describe()}; nothing was changed. Run: {command}"
        )


def check_writable(procfs: ProcFS, names: Sequence[str]) -> None:
    """Raise PermissionDeniedError if any key's directory is on a read-only mount."""
    for name in names:
        directory = procfs.sysctl_path(name).parent
        try:
            read_only = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
        except OSError:
            continue  # a missing key is the plan's to report
        if read_only:
            raise PermissionDeniedError(
                f"{directory} is mounted read-only (as container runtimes mount /proc/sys), "
                "so kernel settings cannot be changed from here; nothing was changed. "
                "Apply on the host, or give the container a writable /proc/sys"
            )


def shown(text: str) -> str:
    """Return a value for a one-line message: whitespace collapsed, anything unprintable escaped."""
    flat = " ".join(text.split()) or '""'
    return flat if flat.isprintable() else ascii(flat)


def describe(exc: BaseException) -> tuple[str, int | None]:
    """Return why a writer call failed, and the errno it stands for (None: none fits)."""
    if isinstance(exc, OSError):
        return describe_os_error(exc), exc.errno
    if isinstance(exc, UnicodeError):
        # /proc/sys takes bytes a handler parses as ASCII numbers or names: a value
        # that is not ASCII is one the kernel would reject, as it does with EINVAL.
        return "the value is not ASCII text, which /proc/sys takes (invalid argument)", errno.EINVAL
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", errno.EINTR
    detail = " ".join(str(exc).split())
    return f"{type(exc).__name__}{': ' + detail if detail else ''}", None


def _restore(done: Sequence[Change], writer: SysctlWriter) -> list[str]:
    """Put back each change's 'before' text, newest first; return what could not be restored."""
    failed = []
    for change in reversed(done):
        try:
            if not same(change.name, writer.read(change.name), change.before):
                writer.write(change.name, change.before)
                if not same(change.name, writer.read(change.name), change.before):
                    failed.append(f"{change.name} (reads back wrong)")
        except Exception as exc:  # keep restoring the others whatever one of them raises
            failed.append(f"{change.name} ({describe(exc)[0]})")
    return failed


def same(name: str, a: str, b: str) -> bool:
    """Return whether two texts of sysctl ``name`` are one value (model/values.py decides)."""
    return same_text(unit_of(name), a, b)


Step = tuple[str, Callable[[], None]]  # what a last write is called, and the write


def write_all(
    changes: Sequence[Change],
    writer: SysctlWriter,
    last_step: Step | None = None,
) -> None:
    """Write and read back every change, then run ``last_step``; on any failure undo all.

    Raises WriteAborted after restoring (and verifying) every key already written,
    whatever the writer raised: an OSError with the kernel's errno, an encoding
    error, any other exception, or an interrupt (Ctrl-C) in the middle.
    """
    done: list[Change] = []
    for change in changes:
        try:
            writer.write(change.name, change.after)
            readback = writer.read(change.name)
        except (Exception, KeyboardInterrupt) as exc:
            reason, code = describe(exc)
            raise WriteAborted(
                f"could not set {change.name} to {shown(change.after)}: {reason}",
                code,
                len(done),
                _restore([*done, change], writer),  # the failed write may have landed
            ) from exc
        done.append(change)
        if not same(change.name, readback, change.after):
            raise WriteAborted(
                f"{change.name} reads back {shown(readback)!r} after writing {shown(change.after)}",
                None,
                len(done),
                _restore(done, writer),
            )
    if last_step is not None:
        label, step = last_step
        try:
            step()
        except (Exception, KeyboardInterrupt) as exc:
            reason, code = describe(exc)
            raise WriteAborted(
                f"could not {label}: {reason}", code, len(done), _restore(done, writer)
            ) from exc


def failure_error(failure: WriteAborted, store: StateStore) -> TcptuneError:
    if failure.unrestored:
        return WriteFailedError(
            f"{failure.reason}; RESTORE FAILED for {', '.join(failure.unrestored)}: the "
            f"previous values are saved in {store.state_path}; run `tcptune rollback`"
        )
    undone = f"restored and verified {failure.restored} key(s) already written; "
    message = f"{failure.reason}; {undone if failure.restored else ''}nothing was changed"
    if failure.errno in _PERMISSION_ERRNOS:
        return PermissionDeniedError(message)
    return WriteFailedError(message)
