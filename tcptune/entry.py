"""The console entry point, which keeps the exit-status promise even when tcptune cannot start.

Only the standard library and tcptune.exitcodes (itself standard library only)
are imported before the command line is loaded: a broken install (a missing
module, a damaged file) must exit with the documented internal-error status,
never with Python's 1, which Nagios reads as WARNING and scripts as findings.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn


def check_format_requested(argv: Sequence[str]) -> bool:
    """Return whether the raw command line asks for --format check (even if it fails to parse)."""
    for index, word in enumerate(argv):
        if word == "--":
            break
        following = argv[index + 1 : index + 2]
        if word == "--format=check" or (word == "--format" and following == ["check"]):
            return True
    return False


def _cannot_start(exc: BaseException) -> NoReturn:
    from tcptune.exitcodes import ExitStatus

    reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
    if check_format_requested(sys.argv[1:]):
        print(f"TCPTUNE UNKNOWN - tcptune cannot start: {reason}")
        sys.exit(int(ExitStatus.INCOMPLETE))
    print(f"tcptune: cannot start (broken installation?): {reason}", file=sys.stderr)
    sys.exit(int(ExitStatus.INTERNAL))


def run() -> NoReturn:
    """Run the tcptune command line; any failure to load it exits as an internal error."""
    try:
        from tcptune.cli import main
    except Exception as exc:  # ImportError, SyntaxError, OSError from a damaged install
        _cannot_start(exc)
    main()
