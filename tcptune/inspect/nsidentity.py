"""Tell one network namespace from another over time, for rollback's "same namespace?" check.

A namespace's inode number (net:[N]) is not an identity over time: the kernel
hands a freed inode to the next namespace, so every ``unshare -n`` in a row can
get the same number. The namespace cookie is: a 64-bit number taken from a
global counter when the namespace is made (net/core/net_namespace.c), never
reused before a reboot. Together with the boot id it names one namespace for
good; the inode is the fallback where the cookie is unavailable.
"""

from __future__ import annotations

import socket
import sys

from tcptune.inspect.procfs import ProcFS, ProcReadError
from tcptune.model.record import record
from tcptune.model.snapshot import Context

# include/uapi/asm-generic/socket.h (Linux 5.14): getsockopt(SOL_SOCKET,
# SO_NETNS_COOKIE) returns the u64 net_cookie of the socket's namespace. 71 is the
# asm-generic number (x86, arm, arm64, riscv, s390, powerpc, mips use it); Python
# 3.11 has no constant for it.
SO_NETNS_COOKIE = getattr(socket, "SO_NETNS_COOKIE", 71)
# drivers/char/random.c: a random UUID chosen once per boot.
BOOT_ID = "sys/kernel/random/boot_id"


@record
class NamespaceIdentity:
    """What tells this network namespace from every other one, recorded with each apply."""

    inode: int | None  # net:[N]; reused once a namespace is freed
    initial: bool | None  # the host's initial namespace (None: cannot tell)
    cookie: int | None  # SO_NETNS_COOKIE; None before Linux 5.14 or where it fails
    boot_id: str | None  # None where the procfs root has no boot_id


def netns_cookie() -> int | None:
    """Return the calling thread's network namespace cookie, or None where unavailable."""
    try:
        # A socket belongs to the namespace of the thread that creates it (sock_create).
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            raw = sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8)
    except OSError:  # ENOPROTOOPT before 5.14; EAFNOSUPPORT or EPERM under a filter
        return None
    return int.from_bytes(raw, sys.byteorder) if len(raw) == 8 else None


def boot_id(procfs: ProcFS) -> str | None:
    """Return this boot's id from the procfs root, or None if it cannot be read."""
    try:
        text = procfs.read_text(BOOT_ID).strip()
    except ProcReadError:
        return None
    return text or None


def current_namespace(procfs: ProcFS, context: Context) -> NamespaceIdentity:
    """Return the identity of the namespace this process writes sysctls in."""
    return NamespaceIdentity(
        context.netns_inode, context.initial_netns, netns_cookie(), boot_id(procfs)
    )


def _shown(identity: NamespaceIdentity) -> str:
    cookie = f" (cookie {identity.cookie})" if identity.cookie is not None else ""
    return f"net:[{identity.inode if identity.inode is not None else '?'}]{cookie}"


def describe_namespace(identity: NamespaceIdentity, name: str | None = None) -> str:
    """Return the namespace for history and syslog, e.g. 'net:[4026531840] (initial)'."""
    kind = {True: "initial", False: "not initial", None: "initial or not unknown"}
    cookie = f"cookie {identity.cookie}, " if identity.cookie is not None else ""
    inode = identity.inode if identity.inode is not None else "?"
    label = f"net:[{inode}] ({cookie}{kind[identity.initial]})"
    return f"{name} {label}" if name else label


def namespace_difference(recorded: NamespaceIdentity, here: NamespaceIdentity) -> str | None:
    """Return how ``here`` is not the namespace ``recorded``, or None if it is (or may be).

    The host's initial namespace counts as the same one across reboots: it is the
    host's, and an apply with --persist must stay undoable after a reboot. Any other
    namespace dies with the boot; within one boot the cookie decides, and only
    where either side lacks one is the (reusable) inode number compared.
    """
    if recorded.initial is True and here.initial is True:
        return None
    if recorded.initial is True or here.initial is True:
        which = "the host's initial namespace" if recorded.initial else "another namespace"
        return f"was {which}, {_shown(recorded)}, and this is {_shown(here)}"
    if recorded.boot_id and here.boot_id and recorded.boot_id != here.boot_id:
        return (
            f"was {_shown(recorded)} during an earlier boot (boot id {recorded.boot_id}), "
            f"so that namespace no longer exists, whatever this one's number ({_shown(here)})"
        )
    if recorded.cookie is not None and here.cookie is not None:
        if recorded.cookie == here.cookie:
            return None
        reused = recorded.inode == here.inode
        same = " (the same inode number: the kernel reused it)" if reused else ""
        return f"was {_shown(recorded)} and this is {_shown(here)}{same}"
    if recorded.inode is not None and here.inode is not None and recorded.inode != here.inode:
        return f"was {_shown(recorded)} and this is {_shown(here)}"
    return None
