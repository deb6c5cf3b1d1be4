"""Enter another network namespace (by `ip netns` name or a process's PID) before reading.

After setns(2) moves this single-threaded process, /proc/sys/net and
/proc/self/net show the target namespace: net sysctls resolve through
current->nsproxy (fs/proc/proc_sysctl.c, net/sysctl_net.c) and /proc/self/net
through the task's namespace (fs/proc/proc_net.c). Process attribution keeps
working because socket inodes are unique host-wide.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from tcptune.exitcodes import PermissionDeniedError, TcptuneError, UnavailableError, UsageError
from tcptune.inspect.procfs import ProcFS, describe_os_error

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = Path("/run/netns")  # where `ip netns add` bind-mounts named namespaces


def namespace_path(
    name: str | None, pid: int | None, procfs: ProcFS, run_dir: Path = NETNS_RUN_DIR
) -> tuple[Path, str]:
    """Return the namespace file to enter and a label, checking that it exists."""
    if name is not None and pid is not None:
        raise UsageError("--netns and --pid name two namespaces: give one")
    if name is not None:
        if not name or "/" in name or name in (".", ".."):
            raise UsageError(f"not a namespace name: {name!r}")
        path = run_dir / name
        if not path.exists():
            raise UnavailableError(f"no network namespace {name!r} (see `ip netns list`)")
        return path, f"netns {name}"
    assert pid is not None
    proc_dir = procfs.path(str(pid))
    if not proc_dir.is_dir():
        raise UnavailableError(f"no process {pid}")
    try:
        comm = (proc_dir / "comm").read_text().strip()
    except OSError:
        comm = "?"
    return proc_dir / "ns" / "net", f"netns of pid {pid} ({comm})"


def open_error(exc: OSError, label: str, path: Path, euid: int) -> TcptuneError:
    """Return the error to report when the namespace file at ``path`` cannot be opened.

    "Needs root" is only the answer for a user who is not root. Root itself
    gets EACCES when the ptrace access check refuses it: proc_ns_get_link
    (fs/proc/namespaces.c) asks ptrace_may_access(PTRACE_MODE_READ_FSCREDS),
    which a security module or a target holding capabilities this process
    lacks can refuse (kernel/ptrace.c, security/commoncap.c).
    """
    reason = describe_os_error(exc)
    if isinstance(exc, FileNotFoundError):
        return UnavailableError(f"{label}: gone ({path} does not exist)")
    if isinstance(exc, PermissionError):
        if euid != 0:
            return PermissionDeniedError(f"{label}: cannot open {path}: {reason}; needs root")
        return PermissionDeniedError(
            f"{label}: cannot open {path}: {reason} even as root "
            "(the kernel's ptrace access check on the process refused it)"
        )
    return UnavailableError(f"{label}: cannot open {path}: {reason}")


def enter(path: Path, label: str) -> None:
    """Move this process into the network namespace at ``path`` with setns(2).

    ``label`` (e.g. "netns blue", "netns of pid 4242 (nginx)") names it in errors.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise open_error(exc, label, path, os.geteuid()) from exc
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            if code == errno.EPERM:
                raise PermissionDeniedError(
                    f"{label}: entering a network namespace needs CAP_SYS_ADMIN (run as root)"
                )
            if code == errno.EINVAL:
                raise UnavailableError(f"{label}: {path} is not a network namespace")
            raise UnavailableError(f"{label}: setns failed: {os.strerror(code)}")
    finally:
        os.close(fd)
