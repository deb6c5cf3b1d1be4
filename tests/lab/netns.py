"""Move the calling thread into a throwaway network namespace for real-kernel tests.

A network namespace is a per-*thread* attribute on Linux (``task_struct->nsproxy``):
``unshare(CLONE_NEWNET)`` and ``setns(fd, CLONE_NEWNET)`` only change the calling thread, see
unshare(2) and setns(2).  Everything created by that thread afterwards lives in the new
namespace: sockets (``sock_create`` uses ``current->nsproxy->net_ns``) and child processes
(``fork``/``clone`` copy the calling thread's nsproxy), so ``ss``, ``netstat`` or
``python -m tcptune`` started from inside :func:`fresh_netns` see only the test's sockets.

``/proc/net`` is a symlink to ``/proc/self/net`` and ``/proc/self`` names the *thread-group
leader*; ``fs/proc/proc_net.c`` (``get_proc_task_net``) resolves the namespace from that task.
``/proc/net/*`` read in-process therefore reflects the new namespace only because pytest runs
tests in the main thread, which is the leader.  :func:`fresh_netns` refuses to run anywhere
else; ``/proc/thread-self/net/*`` is the per-thread view and is correct from any thread.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

__all__ = [
    "CLONE_NEWNET",
    "current_netns",
    "fresh_netns",
    "require_netns_capability",
    "skip_or_fail",
]

# include/uapi/linux/sched.h
CLONE_NEWNET = 0x40000000
# include/uapi/linux/sockios.h
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
# include/uapi/linux/if.h: IFF_UP; struct ifreq is IFNAMSIZ (16) bytes of name followed by a
# 24-byte union whose first member used here is `short ifr_flags`.
_IFF_UP = 0x1
_IFREQ = struct.Struct("16sH22x")

_THREAD_NETNS = "/proc/thread-self/ns/net"


def _libc() -> ctypes.CDLL:
    """Return the C library with errno capture enabled."""
    return ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    """Raise OSError carrying errno when a libc call returned -1."""
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def current_netns() -> str:
    """Return the calling thread's network namespace identity, e.g. ``net:[4026531840]``."""
    return os.readlink(_THREAD_NETNS)


def _unshare_net(libc: ctypes.CDLL) -> None:
    """Detach the calling thread into a new, empty network namespace."""
    _check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")


def _setns_net(libc: ctypes.CDLL, fd: int) -> None:
    """Move the calling thread into the network namespace referred to by ``fd``."""
    _check(libc.setns(fd, CLONE_NEWNET), "setns(CLONE_NEWNET)")


def _bring_loopback_up() -> None:
    """Set IFF_UP on ``lo`` of the calling thread's namespace with SIOCSIFFLAGS.

    A new namespace has ``lo`` down (net/core/dev.c registers it without IFF_UP); bringing it up
    also installs 127.0.0.1/8 and ::1 (net/ipv4/devinet.c, net/ipv6/addrconf.c init_loopback).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = bytearray(_IFREQ.pack(b"lo", 0))
        fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, req)
        (flags,) = _IFREQ.unpack(req)[1:]
        if not flags & _IFF_UP:
            req = bytearray(_IFREQ.pack(b"lo", flags | _IFF_UP))
            fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, req)


@contextmanager
def fresh_netns() -> Iterator[str]:
    """Run the body in a brand-new network namespace with ``lo`` up, then return to the old one.

    Yields the identity of the new namespace (``net:[inode]``).  Only the calling thread moves;
    it must be the main thread so that ``/proc/net/*`` (the thread-group leader's view) matches.
    Sockets must be closed and children reaped inside the block; the namespace disappears once
    nothing references it any more.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "fresh_netns() must run in the main thread: /proc/net follows the thread-group "
            "leader's namespace (fs/proc/proc_net.c), so other threads would read the wrong one"
        )
    libc = _libc()
    before = current_netns()
    saved_fd = os.open(_THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _unshare_net(libc)
        try:
            inside = current_netns()
            if inside == before:
                raise RuntimeError(f"unshare(CLONE_NEWNET) left the thread in {before}")
            _bring_loopback_up()
            yield inside
        finally:
            _setns_net(libc, saved_fd)
            after = current_netns()
            if after != before:
                raise RuntimeError(f"setns() restored {after}, expected {before}")
    finally:
        os.close(saved_fd)


def _probe(result: list[str]) -> None:
    """Try the whole fresh_netns dance in the current (throwaway) thread; append any failure."""
    try:
        libc = _libc()
        saved_fd = os.open(_THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _unshare_net(libc)
            try:
                _bring_loopback_up()
            finally:
                _setns_net(libc, saved_fd)
        finally:
            os.close(saved_fd)
    except OSError as exc:
        hint = " (needs root / CAP_SYS_ADMIN)" if exc.errno == errno.EPERM else ""
        result.append(f"cannot create a network namespace: {exc}{hint}")
    except Exception as exc:  # report anything else as a reason rather than crash collection
        result.append(f"cannot create a network namespace: {exc!r}")


def require_netns_capability() -> str | None:
    """Return None when throwaway network namespaces work here, else the reason they do not.

    The probe runs in a short-lived helper thread, so even a half-failed attempt cannot leave
    the caller in a foreign namespace.
    """
    if not os.path.exists(_THREAD_NETNS):
        return f"{_THREAD_NETNS} is missing: not Linux >= 3.17 with procfs"
    result: list[str] = []
    probe = threading.Thread(target=_probe, args=(result,), name="netns-probe", daemon=True)
    probe.start()
    probe.join(timeout=10)
    if probe.is_alive():
        return "network namespace probe did not finish within 10 s"
    return result[0] if result else None


def skip_or_fail(reason: str) -> NoReturn:
    """Fail the test under CI (``CI`` env var set), otherwise skip it, with ``reason``."""
    import pytest  # test-only dependency, imported lazily so the module works without it

    if os.environ.get("CI"):
        pytest.fail(f"kernel test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)
