"""Who is running tcptune: the user for the audit trail and the privilege to write sysctls."""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping

from tcptune.inspect.procfs import ProcFS, ProcReadError
from tcptune.model.record import record

# include/uapi/linux/capability.h: CAP_NET_ADMIN is capability bit 12.
CAP_NET_ADMIN = 12


@record
class Identity:
    """The user behind a run, as recorded in the history, and what it may write."""

    uid: int
    euid: int
    user: str
    sudo_user: str | None = None  # SUDO_USER: who ran sudo, when sudo was used
    net_admin: bool = False  # CAP_NET_ADMIN in the effective set

    @property
    def may_write_net_sysctls(self) -> bool:
        """Return whether the kernel lets this identity write /proc/sys/net.

        fs/proc/proc_sysctl.c test_perm() gives root the owner bits, and
        net/sysctl_net.c net_ctl_permissions() gives them to CAP_NET_ADMIN holders.
        """
        return self.euid == 0 or self.net_admin

    def describe(self) -> str:
        """Return e.g. 'root (uid 0, via sudo from alice)'."""
        via = f", via sudo from {self.sudo_user}" if self.sudo_user else ""
        return f"{self.user} (uid {self.uid}{via})"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _has_net_admin(procfs: ProcFS) -> bool:
    try:
        status = procfs.read_text("self/status")
    except ProcReadError:
        return False
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    return False


def current_identity(environ: Mapping[str, str], procfs: ProcFS) -> Identity:
    """Return the identity of this process, with SUDO_USER from ``environ``."""
    uid = os.getuid()
    return Identity(
        uid=uid,
        euid=os.geteuid(),
        user=_user_name(uid),
        sudo_user=environ.get("SUDO_USER") or None,
        net_admin=_has_net_admin(procfs),
    )
