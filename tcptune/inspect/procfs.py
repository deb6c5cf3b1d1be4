"""Read files under one procfs root, with errors that name what was being read.

Every path tcptune reads is built from a :class:`ProcFS` passed in by the
caller (default ``/proc``), never from a module global, so tests point it at a
fixture tree and the namespace code points it at another process's view.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from pathlib import Path

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
    text = (exc.strerror or str(exc)).lower()
    return f"{text} ({code})" if code else text


@dataclass(frozen=True)
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
            return path.read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise ProcReadError(path, describe_os_error(exc)) from exc
