"""The command line: options become typed values here, and nothing else happens here.

Each command parses its options, calls one function of the core, hands the
result to tcptune.output and returns an ExitStatus. Errors are mapped to exit
statuses in one place, TcptuneGroup.main (group.py). Commands live by theme:
inspection (audit), watching (watch), reference (profiles, explain), changes (apply,
rollback, verify, history); the group imports a command's module only when
that command runs (COMMANDS in group.py), so an audit does not pay for apply.
"""

from __future__ import annotations

from typing import NoReturn

from tcptune.cli.group import cli


def main() -> NoReturn:
    """Run the tcptune command line as a Unix filter: a reader that leaves ends it.

    Python ignores SIGPIPE, so a closed pipe (`tcptune audit --json | head`)
    would surface as EPIPE, which click turns into exit status 1: the same as a
    WARNING verdict. Restoring the default action makes tcptune end like any
    Unix tool (status 141 in the shell). Only the process entry point does
    this; tcptune writes to no stream socket that it could affect.
    """
    import _signal  # type: ignore[import-not-found]  # not signal: its enums cost ~1 ms

    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
    cli.main()


__all__ = ["cli", "main"]
