"""Exit statuses and the errors that carry them: the one place either is defined.

The first four statuses follow the Nagios/Icinga/Sensu plugin convention
(0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), so ``tcptune audit`` drops into
existing alerting. Errors use the BSD sysexits.h numbers so they can never be
mistaken for a finding's severity.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Every exit status any tcptune command returns."""

    OK = 0  # healthy: no warning or critical finding
    WARNING = 1  # the worst finding is a warning
    CRITICAL = 2  # the worst finding is critical
    INCOMPLETE = 3  # the inspection could not read everything (check format: UNKNOWN)
    DRIFT = 4  # verify: live values differ from the profile
    USAGE = 64  # EX_USAGE: bad command line
    BAD_INPUT = 65  # EX_DATAERR: a profile or other input file is invalid
    UNAVAILABLE = 69  # EX_UNAVAILABLE: the target (namespace, process, key) does not exist
    INTERNAL = 70  # EX_SOFTWARE: a bug in tcptune
    UNRECORDED = 73  # EX_CANTCREAT: the change stands, but its record or history line failed
    WRITE_FAILED = 74  # EX_IOERR: a write failed; everything already written was restored
    LOCKED = 75  # EX_TEMPFAIL: another apply holds the lock; try again
    NO_PERMISSION = 77  # EX_NOPERM: needs root (or CAP_NET_ADMIN) or a writable /proc/sys
    INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended


class TcptuneError(Exception):
    """An expected failure reported as one line on stderr with its own exit status."""

    status: ExitStatus = ExitStatus.INTERNAL

    def __init__(self, message: str, *, status: ExitStatus | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UsageError(TcptuneError):
    """The command line asks for something that cannot be done."""

    status = ExitStatus.USAGE


class BadInputError(TcptuneError):
    """An input file (profile, state file) is malformed; nothing was changed."""

    status = ExitStatus.BAD_INPUT


class UnavailableError(TcptuneError):
    """The thing asked for does not exist here (profile, namespace, process, key)."""

    status = ExitStatus.UNAVAILABLE


class PermissionDeniedError(TcptuneError):
    """The operation needs a privilege this process does not have."""

    status = ExitStatus.NO_PERMISSION


class WriteFailedError(TcptuneError):
    """A write failed part-way and every value already written was restored."""

    status = ExitStatus.WRITE_FAILED


class LockedError(TcptuneError):
    """Another tcptune apply or rollback holds the lock."""

    status = ExitStatus.LOCKED


def plugin_status(status: int) -> ExitStatus:
    """Return ``status`` as a monitoring-plugin status: 0-3 stay, any error is 3 UNKNOWN.

    The Nagios plugin guidelines (and Icinga, Sensu, Checkmk after them) read
    only 0 OK, 1 WARNING, 2 CRITICAL and 3 UNKNOWN; an error such as a usage
    mistake or a missing profile must not look like a verdict on the host.
    """
    if ExitStatus.OK <= status <= ExitStatus.INCOMPLETE:
        return ExitStatus(status)
    return ExitStatus.INCOMPLETE
