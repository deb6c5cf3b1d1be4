"""The tcptune click group: global options, the namespace switch, and error mapping."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import click

from tcptune import __version__
from tcptune.entry import check_format_requested
from tcptune.exitcodes import ExitStatus, TcptuneError, plugin_status

NETNS_LABEL = "tcptune.inspect.netns"  # ctx.meta key: the namespace entered with --netns/--pid
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 80}


def _fail(message: str, status: int, check: bool = False) -> NoReturn:
    if check:  # Nagios plugin guidelines: one line on stdout, and any error is 3 UNKNOWN
        from tcptune.output.check import check_error_line

        click.echo(check_error_line(message))
        sys.exit(int(plugin_status(status)))
    from tcptune.output.escape import one_line

    click.echo(f"tcptune: {one_line(message)}", err=True)
    sys.exit(int(status))


class LazyCommand(NamedTuple):
    """Where a command lives (``module:attribute``) and the short help `tcptune --help` lists."""

    target: str
    short_help: str


# Every command, imported only when it runs (click's lazy-loading pattern): an audit does
# not load apply's modules. The short help is each command's first docstring sentence, as
# click makes it; tests/cli/test_lazy_commands.py checks both columns against the commands.
COMMANDS: dict[str, LazyCommand] = {
    "apply": LazyCommand(
        "tcptune.cli.changes:apply",
        "Show what PROFILE would change; with --apply, change it all or nothing.",
    ),
    "audit": LazyCommand(
        "tcptune.cli.inspection:audit",
        "Report TCP settings, sockets per state and counters, with findings.",
    ),
    "explain": LazyCommand(
        "tcptune.cli.reference:explain",
        "Explain a TCP state, sysctl, socket option or finding ID; alone, list topics.",
    ),
    "help": LazyCommand(
        "tcptune.cli.reference:help_command",
        "Show the help of tcptune, or of COMMAND (the same as COMMAND --help).",
    ),
    "history": LazyCommand(
        "tcptune.cli.changes:history",
        "List past applies and rollbacks: when, who, which profile, what changed.",
    ),
    "profiles": LazyCommand(
        "tcptune.cli.reference:profiles",
        "List workload profiles, or show one with `profiles show NAME`.",
    ),
    "rollback": LazyCommand(
        "tcptune.cli.changes:rollback",
        "Undo the newest apply not yet rolled back, and verify every key.",
    ),
    "sockets": LazyCommand(
        "tcptune.cli.sockets:sockets",
        "Show every TCP socket's options as the kernel holds them, and who holds it.",
    ),
    "verify": LazyCommand(
        "tcptune.cli.changes:verify",
        "Compare live values with PROFILE, and show which boot-time file sets each key.",
    ),
    "watch": LazyCommand(
        "tcptune.cli.watching:watch",
        "Watch sockets per state and TCP counter rates live, marking what is rising.",
    ),
}


def _short_help(name: str, limit: int = 45) -> str:
    """Return the short help of command ``name`` shortened to ``limit`` the way click does."""
    return click.Command(name, help=COMMANDS[name].short_help).get_short_help_str(limit)


class TcptuneGroup(click.Group):
    """A click group that loads its commands lazily and maps every exception to an ExitStatus."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Return every command name, without importing any command's module."""
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return the command ``cmd_name``, importing its module the first time it is asked for."""
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, attribute = COMMANDS[cmd_name].target.partition(":")
            command = getattr(import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{COMMANDS[cmd_name].target} is not a click command")
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands with their short help from COMMANDS (no command is imported)."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)  # as click.Group does
        with formatter.section("Commands"):
            formatter.write_dl([(name, _short_help(name, limit)) for name in names])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Complete command names (help from COMMANDS, nothing imported), then the options."""
        from click.shell_completion import CompletionItem

        commands = [
            CompletionItem(name, help=_short_help(name))
            for name in self.list_commands(ctx)
            if name.startswith(incomplete)
        ]
        return [*commands, *click.Command.shell_complete(self, ctx, incomplete)]

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse the global options wherever they are: `tcptune audit --netns blue` too."""
        from tcptune.cli.habits import hoist_global_options

        return super().parse_args(ctx, hoist_global_options(self, ctx, args))

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> NoReturn:
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv
        check = check_format_requested(argv)  # audit --format check: a monitoring plugin
        try:
            result = super().main(
                argv, prog_name or "tcptune", complete_var, standalone_mode=False, **extra
            )
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            if check:
                _fail(exc.format_message(), ExitStatus.USAGE, check)
            exc.show()
            sys.exit(int(ExitStatus.USAGE))
        except click.ClickException as exc:
            if check:
                _fail(exc.format_message(), ExitStatus.USAGE, check)
            exc.show()
            sys.exit(int(ExitStatus.USAGE))
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted", ExitStatus.INTERRUPTED, check)
        except TcptuneError as exc:
            if debug:
                raise
            _fail(str(exc), exc.status, check)
        except Exception as exc:
            if debug:
                raise
            _fail(
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                ExitStatus.INTERNAL,
                check,
            )
        status = int(result) if isinstance(result, int) else 0
        sys.exit(int(plugin_status(status)) if check else status)


MAX_SECONDS = 86400.0  # one day: the longest interval or wait any option accepts

if TYPE_CHECKING:  # click.ParamType is generic only from click 8.4 on; pyproject allows 8.2
    from click.shell_completion import CompletionItem

    _FloatParamType = click.ParamType[float]
else:
    _FloatParamType = click.ParamType


class Seconds(_FloatParamType):
    """A duration option in seconds: a finite number above 0 (or from 0) up to MAX_SECONDS.

    One type for every duration (audit and watch --interval, apply --lock-timeout),
    so each refuses nan, inf and absurd values with the same words before
    time.sleep or a deadline can overflow or spin.
    """

    name = "seconds"

    def __init__(self, *, zero_ok: bool = False) -> None:
        self.zero_ok = zero_ok

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        """Return ``value`` as seconds, or fail with a usage error naming the allowed range."""
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        low_ok = seconds >= 0 if self.zero_ok else seconds > 0
        if not (math.isfinite(seconds) and low_ok and seconds <= MAX_SECONDS):
            allowed = "from 0 to" if self.zero_ok else "above 0 and at most"
            self.fail(
                f"must be a number of seconds {allowed} {MAX_SECONDS:.0f} (one day), got {value!r}",
                param,
                ctx,
            )
        return seconds


SECONDS = Seconds()  # an interval: 0 < s <= 86400
SECONDS_OR_ZERO = Seconds(zero_ok=True)  # a wait where 0 means "do not wait": 0 <= s <= 86400

PROFILE_DIR_OPTION = click.option(
    "--profile-dir",
    "profile_dirs",
    multiple=True,
    metavar="DIR",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Also look for profiles here (before ~/.config and /etc); it must exist. Repeatable.",
)


@click.group(cls=TcptuneGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="tcptune")
@click.option(
    "--proc-root",
    default="/proc",
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    envvar="TCPTUNE_PROC_ROOT",
    help="Read this procfs tree, e.g. a host's /proc mounted at /host/proc "
    "(environment: TCPTUNE_PROC_ROOT).",
)
@click.option(
    "--netns",
    "netns_name",
    metavar="NAME",
    help="Work in the network namespace NAME (made with `ip netns add`).",
)
@click.option(
    "--pid",
    "netns_pid",
    type=int,
    metavar="PID",
    help="Work in the network namespace of process PID (e.g. a container).",
)
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
@click.pass_context
def cli(
    ctx: click.Context, proc_root: Path, netns_name: str | None, netns_pid: int | None, debug: bool
) -> None:
    """Inspect, explain and safely tune Linux TCP teardown and keepalive settings.

    The global options work before or after the command
    (`tcptune audit --netns blue`). `tcptune help COMMAND` is `COMMAND --help`.

    \b
    Examples:
      tcptune audit                      what the settings and sockets say
      tcptune audit --profile server-profile
      tcptune audit --json | jq .sockets machine-readable, schema 1
      sudo tcptune apply server-profile  the plan; add --apply to write
      sudo tcptune --pid 4242 audit      inside a container's namespace
      tcptune explain close-wait         the built-in reference
    """
    from tcptune.inspect.procfs import ProcFS

    ctx.obj = ProcFS(proc_root)
    if (netns_name is not None or netns_pid is not None) and ctx.invoked_subcommand not in (
        None,
        "explain",
        "profiles",
        "history",
        "help",
    ):
        from tcptune.inspect import netns

        path, label = netns.namespace_path(netns_name, netns_pid, ctx.obj)
        netns.enter(path, label)
        ctx.meta[NETNS_LABEL] = label


def profile_locator(profile_dirs: tuple[Path, ...]) -> Any:
    """Return a ProfileLocator over --profile-dir, then ~/.config and /etc, then shipped."""
    from tcptune.profiles.locate import ProfileLocator, default_profile_dirs

    return ProfileLocator((*profile_dirs, *default_profile_dirs()))
