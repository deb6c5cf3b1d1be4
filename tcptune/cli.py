"""The command line: options become typed values here, and nothing else happens here.

Each command parses its options, calls one function of the core, hands the
result to tcptune.render and returns an ExitStatus. Errors are mapped to exit
statuses in one place, TcptuneGroup.main.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from tcptune import __version__
from tcptune.exitcodes import ExitStatus, TcptuneError

NETNS_LABEL = "tcptune.netns"  # ctx.meta key: the namespace entered with --netns/--pid
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 80}


def _fail(message: str, status: ExitStatus) -> NoReturn:
    click.echo(f"tcptune: {message}", err=True)
    sys.exit(int(status))


class TcptuneGroup(click.Group):
    """A click group that maps every exception to one stderr line and an ExitStatus."""

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
        try:
            result = super().main(
                argv, prog_name or "tcptune", complete_var, standalone_mode=False, **extra
            )
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            exc.show()
            sys.exit(int(ExitStatus.USAGE))
        except click.ClickException as exc:
            exc.show()
            sys.exit(int(ExitStatus.USAGE))
        except (click.Abort, KeyboardInterrupt):
            click.echo("tcptune: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(int(ExitStatus.OK))
        except TcptuneError as exc:
            if debug:
                raise
            _fail(str(exc), exc.status)
        except Exception as exc:
            if debug:
                raise
            _fail(
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                ExitStatus.INTERNAL,
            )
        sys.exit(int(result) if isinstance(result, int) else 0)


PROFILE_DIR_OPTION = click.option(
    "--profile-dir",
    "profile_dirs",
    multiple=True,
    metavar="DIR",
    type=click.Path(path_type=Path, file_okay=False),
    help="Also look for profiles here (before ~/.config and /etc). Repeatable.",
)


@click.group(cls=TcptuneGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="tcptune")
@click.option(
    "--proc-root",
    default="/proc",
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    envvar="TCPTUNE_PROC_ROOT",
    help="Read this procfs tree, e.g. a host's /proc mounted at /host/proc.",
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

    \b
    Examples:
      tcptune audit                      what the settings and sockets say
      tcptune audit --profile server-profile
      tcptune audit --json | jq .sockets machine-readable, schema 1
      sudo tcptune apply server-profile  the plan; add --apply to write
      sudo tcptune --pid 4242 audit      inside a container's namespace
      tcptune explain close-wait         the built-in reference
    """
    from tcptune.procfs import ProcFS

    ctx.obj = ProcFS(proc_root)
    if (netns_name is not None or netns_pid is not None) and ctx.invoked_subcommand not in (
        None,
        "explain",
        "profiles",
        "history",
    ):
        from tcptune import netns

        path, label = netns.namespace_path(netns_name, netns_pid, ctx.obj)
        ctx.meta[NETNS_LABEL] = netns.enter(path, label).label


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema 1) on stdout.")
@click.option(
    "--profile",
    "profile",
    metavar="NAME|FILE",
    help="Compare the settings with this profile (see `tcptune profiles`).",
)
@PROFILE_DIR_OPTION
@click.option(
    "--ignore",
    "ignore",
    multiple=True,
    metavar="ID[:SUBJECT]",
    help="Suppress a finding by ID, or one occurrence as ID:SUBJECT. Repeatable.",
)
@click.option(
    "--interval",
    type=float,
    metavar="SECONDS",
    help="Read the counters twice, SECONDS apart, and report rates per second.",
)
@click.option(
    "--source",
    type=click.Choice(["auto", "netlink", "procfs"]),
    default="auto",
    show_default=True,
    help="Where to read socket states: auto uses netlink sock_diag on the live "
    "/proc and the /proc/net/tcp tables otherwise.",
)
@click.pass_obj
def audit(
    procfs: Any,
    as_json: bool,
    profile: str | None,
    profile_dirs: tuple[Path, ...],
    ignore: tuple[str, ...],
    interval: float | None,
    source: str,
) -> ExitStatus:
    """Report TCP settings, sockets per state and counters, with findings.

    \b
    Examples:
      tcptune audit
      tcptune audit --profile server-profile
      tcptune audit --interval 10 --ignore keepalive
      tcptune audit --json > audit.json
      tcptune --proc-root /host/proc audit --source procfs

    \b
    Exit status: 0 healthy, 1 warnings, 2 critical, 3 the inspection was
    incomplete; 64 usage, 65 bad profile, 69 no such profile, 70 internal.
    """
    from tcptune import render
    from tcptune.audit import run_audit
    from tcptune.inspector import SocketSource
    from tcptune.profiles import default_profile_dirs

    result = run_audit(
        procfs,
        netns_name=click.get_current_context().meta.get(NETNS_LABEL),
        source=SocketSource(source),
        profile=profile,
        profile_dirs=(*profile_dirs, *default_profile_dirs()),
        ignore=ignore,
        interval=interval,
    )
    profile_name = result.profile.name if result.profile else None
    if as_json:
        import json

        document = render.audit_dict(result.snapshot, result.findings, profile_name)
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(render.audit_text(result.snapshot, result.findings, profile_name), nl=False)
    for problem in result.snapshot.problems:
        click.echo(f"tcptune: incomplete: {problem.source}: {problem.message}", err=True)
    return result.status


def _locator(profile_dirs: tuple[Path, ...]) -> Any:
    from tcptune.profiles import ProfileLocator, default_profile_dirs

    return ProfileLocator((*profile_dirs, *default_profile_dirs()))


@cli.group(invoke_without_command=True)
@PROFILE_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_context
def profiles(ctx: click.Context, profile_dirs: tuple[Path, ...], as_json: bool) -> ExitStatus:
    """List workload profiles, or show one with `profiles show NAME`.

    \b
    Profiles are searched in --profile-dir, ~/.config/tcptune/profiles,
    /etc/tcptune/profiles, then the ones shipped with tcptune.

    \b
    Examples:
      tcptune profiles
      tcptune profiles show server-profile
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = _locator(profile_dirs)
        return ExitStatus.OK
    from tcptune import render

    locator = _locator(profile_dirs)
    loaded = [locator.load(source.path) for source in locator.available()]
    click.echo(
        render.profiles_json(loaded) if as_json else render.profiles_text(loaded), nl=not as_json
    )
    return ExitStatus.OK


@profiles.command("show")
@click.argument("name", metavar="NAME|FILE")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_obj
def profiles_show(locator: Any, name: str, as_json: bool) -> ExitStatus:
    """Show one profile with inheritance resolved: each target, why and risk.

    \b
    Examples:
      tcptune profiles show server-profile
      tcptune profiles show ./my-profile.toml --json
    """
    from tcptune import render

    profile = locator.load(name)
    click.echo(
        render.profile_json(profile) if as_json else render.profile_text(profile), nl=not as_json
    )
    return ExitStatus.OK


def main() -> NoReturn:
    """Run the tcptune command line."""
    cli.main()
