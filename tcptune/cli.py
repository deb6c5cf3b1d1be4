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
from tcptune.exitcodes import ExitStatus, TcptuneError, plugin_status

NETNS_LABEL = "tcptune.netns"  # ctx.meta key: the namespace entered with --netns/--pid
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 80}


def _fail(message: str, status: int, check: bool = False) -> NoReturn:
    if check:  # Nagios plugin guidelines: one line on stdout, and any error is 3 UNKNOWN
        from tcptune.render import check_error_line

        click.echo(check_error_line(message))
        sys.exit(int(plugin_status(status)))
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
        check = _check_format_requested(argv)  # audit --format check: a monitoring plugin
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
            _fail("interrupted", 130, check)
        except BrokenPipeError:
            sys.exit(int(ExitStatus.OK))
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
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "prometheus", "check"]),
    help="text (the default), json (schema 1), prometheus (for node_exporter's "
    "textfile collector) or check (one Nagios plugin line; any error exits 3).",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Write the report to FILE atomically (temporary file, fsync, rename).",
)
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
    "--owners/--no-owners",
    default=True,
    show_default=True,
    help="Name the processes holding CLOSE_WAIT sockets and shared listeners. Costs a "
    "readlink per open descriptor on the host: skip it for frequent monitoring runs.",
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
    output_format: str | None,
    as_json: bool,
    output: Path | None,
    profile: str | None,
    profile_dirs: tuple[Path, ...],
    ignore: tuple[str, ...],
    owners: bool,
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
      tcptune audit --format check          a Nagios/Icinga check
      tcptune audit --format prometheus --output DIR/tcptune.prom

    \b
    Exit status: 0 healthy, 1 warnings, 2 critical, 3 the inspection was
    incomplete; 64 usage, 65 bad profile, 69 no such profile, 70 internal,
    74 --output not written. With --format check every error is 3 UNKNOWN.
    """
    from tcptune import render
    from tcptune.audit import run_audit
    from tcptune.inspector import SocketSource
    from tcptune.profiles import default_profile_dirs

    chosen = _audit_format(output_format, as_json)
    result = run_audit(
        procfs,
        netns_name=click.get_current_context().meta.get(NETNS_LABEL),
        source=SocketSource(source),
        profile=profile,
        profile_dirs=(*profile_dirs, *default_profile_dirs()),
        ignore=ignore,
        interval=interval,
        owners=owners,
    )
    _emit(render.audit_output(result, chosen), output)
    for problem in result.snapshot.problems if chosen != "check" else ():
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


# --------------------------------------------------------------------------- apply, rollback,
# verify, history (issue #4): the only commands that write, and their records.

DEFAULT_STATE_DIR = "/var/lib/tcptune"
STATE_DIR_OPTION = click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    envvar="TCPTUNE_STATE_DIR",
    metavar="DIR",
    help="Where the undo records, the history and the lock live.",
)
BOOT_ROOT_OPTION = click.option(
    "--boot-root",
    type=click.Path(path_type=Path, file_okay=False),
    default="/",
    show_default=True,
    envvar="TCPTUNE_BOOT_ROOT",
    metavar="DIR",
    help="Read the boot-time configuration (etc/sysctl.d, run/sysctl.d, "
    "usr/local/lib/sysctl.d, usr/lib/sysctl.d, lib/sysctl.d, etc/sysctl.conf) under DIR.",
)
LOCK_TIMEOUT_OPTION = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for another apply or rollback to finish.",
)


def _environment(
    procfs: Any, state_dir: Path, boot_root: Path, sysctl_dir: Path | None, lock_timeout: float
) -> Any:
    import os

    from tcptune.applier import Environment, ProcSysctlWriter
    from tcptune.identity import current_identity
    from tcptune.procfs import ProcFS
    from tcptune.statestore import StateStore
    from tcptune.sysctld import SearchPath

    return Environment(
        procfs=procfs,
        writer=ProcSysctlWriter(procfs),
        store=StateStore(state_dir),
        boot=SearchPath.under(boot_root),
        dropin_dir=sysctl_dir if sysctl_dir is not None else boot_root / "etc/sysctl.d",
        identity=current_identity(os.environ, ProcFS()),
        lock_timeout=lock_timeout,
        netns_name=click.get_current_context().meta.get(NETNS_LABEL),
    )


def _command_line(ctx: click.Context, *words: str) -> str:
    """Return the tcptune command line that repeats this run's global options with ``words``."""
    import shlex

    parent = ctx.parent.params if ctx.parent is not None else {}
    line = ["tcptune"]
    if str(parent.get("proc_root", "/proc")) != "/proc":
        line += ["--proc-root", str(parent["proc_root"])]
    if parent.get("netns_name"):
        line += ["--netns", str(parent["netns_name"])]
    if parent.get("netns_pid") is not None:
        line += ["--pid", str(parent["netns_pid"])]
    return shlex.join([*line, *words])


def _state_words(state_dir: Path) -> list[str]:
    return [] if str(state_dir) == DEFAULT_STATE_DIR else ["--state-dir", str(state_dir)]


@cli.command()
@click.argument("profile_name", metavar="PROFILE")
@click.option(
    "--apply",
    "execute",
    is_flag=True,
    help="Carry the plan out. Without it: show it, write nothing.",
)
@click.option("--persist", is_flag=True, help="Also write a sysctl.d drop-in for the next boot.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the plan or result as JSON (schema 1)."
)
@STATE_DIR_OPTION
@click.option(
    "--sysctl-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    metavar="DIR",
    help="Where --persist writes 90-tcptune.conf  [default: BOOT_ROOT/etc/sysctl.d]",
)
@BOOT_ROOT_OPTION
@LOCK_TIMEOUT_OPTION
@PROFILE_DIR_OPTION
@click.pass_context
def apply(
    ctx: click.Context,
    profile_name: str,
    execute: bool,
    persist: bool,
    as_json: bool,
    state_dir: Path,
    sysctl_dir: Path | None,
    boot_root: Path,
    lock_timeout: float,
    profile_dirs: tuple[Path, ...],
) -> ExitStatus:
    """Show what PROFILE would change; with --apply, change it all or nothing.

    Every key is checked before the first write; the previous values are saved
    in the state directory; each write is read back, and any failure restores
    every key already written. Per-namespace keys change only the current
    network namespace.

    \b
    Examples:
      sudo tcptune apply server-profile             the plan; writes nothing
      sudo tcptune apply server-profile --apply     write, verify, record
      sudo tcptune apply server-profile --apply --persist   and /etc/sysctl.d
      tcptune apply ./my-profile.toml --json        the plan as JSON

    \b
    Exit status: 0 applied, or plan shown; 64 usage, or a drop-in tcptune did
    not write is in the way; 65 invalid profile or a value the kernel would
    reject; 69 no such profile or key; 74 a write failed (all restored);
    75 another apply holds the lock; 77 not root, or /proc/sys is read-only.
    """
    import json

    from tcptune import render
    from tcptune.applier import apply_profile, preview

    profile = _locator(profile_dirs).load(profile_name)
    env = _environment(ctx.obj, state_dir, boot_root, sysctl_dir, lock_timeout)
    words = ["apply", profile_name, "--apply", *(["--persist"] if persist else [])]
    words += _state_words(state_dir)
    if sysctl_dir is not None:
        words += ["--sysctl-dir", str(sysctl_dir)]
    if str(boot_root) != "/":
        words += ["--boot-root", str(boot_root)]
    for directory in profile_dirs:
        words += ["--profile-dir", str(directory)]
    command = _command_line(ctx, *words)
    if not execute:
        plan, dropin = preview(profile, env, persist=persist)
        shown = command if env.identity.euid == 0 else f"sudo {command}"
        if as_json:
            click.echo(json.dumps(render.plan_dict(plan, dropin, shown), indent=2))
        else:
            click.echo(render.plan_text(plan, dropin, shown), nl=False)
        error = plan.error()
        if error is not None:
            raise error
        return ExitStatus.OK
    result = apply_profile(profile, env, persist=persist, command=command)
    if as_json:
        click.echo(json.dumps(render.plan_dict(result.plan, result.dropin, None, result), indent=2))
    else:
        undo = _command_line(ctx, "rollback", *_state_words(state_dir))
        click.echo(
            render.applied_text(result, undo if env.identity.euid == 0 else f"sudo {undo}"),
            nl=False,
        )
    return ExitStatus.OK


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was restored as JSON.")
@STATE_DIR_OPTION
@LOCK_TIMEOUT_OPTION
@click.pass_context
def rollback(ctx: click.Context, as_json: bool, state_dir: Path, lock_timeout: float) -> ExitStatus:
    """Undo the newest apply not yet rolled back, and verify every key.

    Applies form a stack: each rollback undoes one apply and takes it off, so a
    second rollback undoes the apply before it; it never re-applies anything.
    The drop-in written by --persist is restored to what it was, or removed.

    \b
    Examples:
      sudo tcptune rollback
      sudo tcptune rollback --state-dir /srv/tcptune-state

    \b
    Exit status: 0 rolled back; 69 nothing to roll back, or the apply was made
    in another network namespace; 74 a write failed (all restored); 75 another
    apply holds the lock; 77 not root, or /proc/sys is read-only.
    """
    import json

    from tcptune import applier, render

    env = _environment(ctx.obj, state_dir, Path("/"), None, lock_timeout)
    command = _command_line(ctx, "rollback", *_state_words(state_dir))
    result = applier.rollback(env, command=command)
    if as_json:
        click.echo(json.dumps(render.rollback_dict(result), indent=2))
    else:
        click.echo(render.rollback_text(result), nl=False)
    return ExitStatus.OK


@cli.command()
@click.argument("profile_name", metavar="PROFILE")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON (schema 1).")
@BOOT_ROOT_OPTION
@PROFILE_DIR_OPTION
@click.pass_obj
def verify(
    procfs: Any, profile_name: str, as_json: bool, boot_root: Path, profile_dirs: tuple[Path, ...]
) -> ExitStatus:
    """Compare live values with PROFILE, and show which boot-time file sets each key.

    Made for cron jobs and monitoring: it only reads, and exits 4 on drift.

    \b
    Examples:
      tcptune verify server-profile
      tcptune verify server-profile --json | jq '.items[] | select(.state != "ok")'

    \b
    Exit status: 0 no drift, 4 a live value differs from the profile (or a key
    is missing); 65 invalid profile; 69 no such profile.
    """
    import json

    from tcptune import render
    from tcptune.sysctld import SearchPath
    from tcptune.verify import verify_profile

    profile = _locator(profile_dirs).load(profile_name)
    netns_name = click.get_current_context().meta.get(NETNS_LABEL)
    report = verify_profile(profile, procfs, SearchPath.under(boot_root), netns_name)
    if as_json:
        click.echo(json.dumps(render.verify_dict(report), indent=2))
    else:
        click.echo(render.verify_text(report), nl=False)
    return report.status


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON (schema 1).")
@click.option("-n", "--last", type=click.IntRange(min=1), help="Show only the last N entries.")
@STATE_DIR_OPTION
def history(as_json: bool, last: int | None, state_dir: Path) -> ExitStatus:
    """List past applies and rollbacks: when, who, which profile, what changed.

    \b
    Examples:
      tcptune history
      tcptune history -n 5 --json

    \b
    Exit status: 0 listed (also when empty); 65 the history file is corrupt.
    """
    import json

    from tcptune import render
    from tcptune.statestore import StateStore

    entries = StateStore(state_dir).history()
    if last is not None:
        entries = entries[-last:]
    if as_json:
        click.echo(json.dumps(render.history_dict(entries), indent=2))
    else:
        click.echo(render.history_text(entries), nl=False)
    return ExitStatus.OK


@cli.command()
@click.argument("topic", required=False)
@click.pass_obj
def explain(_procfs: Any, topic: str | None) -> ExitStatus:
    """Explain a TCP state, sysctl, socket option or finding ID; alone, list topics.

    \b
    Examples:
      tcptune explain                    every topic, one line each
      tcptune explain close-wait         the state and the finding
      tcptune explain tcp_fin_timeout    a sysctl (prefix optional)
      tcptune explain so_linger          a socket option, with C and Python
      tcptune explain misconceptions     what the web gets wrong
    """
    from tcptune import explain as reference
    from tcptune import render
    from tcptune.advisor import finding_topics
    from tcptune.exitcodes import UnavailableError

    topics = reference.with_findings(reference.load_topics(), finding_topics())
    if topic is None:
        click.echo(render.topics_text(reference.topic_list(topics)), nl=False)
        return ExitStatus.OK
    try:
        found = reference.find_topic(topics, topic)
    except reference.UnknownTopic as exc:
        raise UnavailableError(str(exc)) from exc
    click.echo(reference.format_topic(found), nl=False)
    return ExitStatus.OK


# --------------------------------------------------------------------------- operations:
# --------------------------------------------------------------------------- output, watch


def _check_format_requested(argv: Sequence[str]) -> bool:
    """Return whether the raw command line asks for --format check (even if it fails to parse)."""
    for index, word in enumerate(argv):
        if word == "--":
            break
        following = argv[index + 1 : index + 2]
        if word == "--format=check" or (word == "--format" and following == ["check"]):
            return True
    return False


def _audit_format(output_format: str | None, as_json: bool) -> str:
    """Return the audit's output format; --json is another way to say --format json."""
    from tcptune.exitcodes import UsageError

    if as_json and output_format not in (None, "json"):
        raise UsageError(f"--json means --format json; it cannot go with --format {output_format}")
    return "json" if as_json else output_format or "text"


def _emit(text: str, output: Path | None) -> None:
    """Print ``text``, or replace ``output`` with it atomically so no reader sees half a file."""
    if output is None:
        click.echo(text, nl=False)
        return
    from tcptune.atomicfile import atomic_write
    from tcptune.procfs import describe_os_error

    try:
        atomic_write(output, text)
    except OSError as exc:
        raise TcptuneError(
            f"cannot write {output}: {describe_os_error(exc)}", status=ExitStatus.WRITE_FAILED
        ) from exc


@cli.command()
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Refresh every SECONDS.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop after N refreshes (default: run until q or Ctrl-C).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per refresh (JSON lines)."
)
@click.option(
    "--source",
    type=click.Choice(["auto", "netlink", "procfs"]),
    default="auto",
    show_default=True,
    help="Where to read socket states, as for audit.",
)
@click.pass_obj
def watch(
    procfs: Any, interval: float, count: int | None, as_json: bool, source: str
) -> ExitStatus:
    """Watch sockets per state and TCP counter rates live, marking what is rising.

    On a terminal the screen is redrawn every --interval; rising trouble is
    bold red: CLOSE_WAIT growing, TIME_WAIT past 80% of tcp_max_tw_buckets,
    listen overflows or drops, TIME_WAIT overflows, memory aborts. q or
    Ctrl-C quits. Piped or redirected, it prints one line per refresh with ▲
    on what is rising (--json: one JSON object per line). Each refresh is one
    counts-only inspection (one sock_diag dump, no per-socket details), cheap
    with hundreds of thousands of sockets.

    \b
    Examples:
      tcptune watch
      tcptune watch --interval 1 --count 300 >> incident.log
      tcptune watch --json | jq -c .sockets.states.CLOSE_WAIT
      sudo tcptune --pid 4242 watch          a container's namespace

    \b
    Exit status: 0 after --count refreshes or when quit on the terminal;
    130 Ctrl-C in line mode; 64 usage.
    """
    import os

    from tcptune import render
    from tcptune import watch as live
    from tcptune.inspector import SocketSource, inspect
    from tcptune.snapshot import Snapshot

    netns_name = click.get_current_context().meta.get(NETNS_LABEL)

    def take() -> Snapshot:
        return inspect(procfs, source=SocketSource(source), netns_name=netns_name)

    full_screen = sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
    from tcptune import terminal

    if as_json or not full_screen:
        line = render.watch_json if as_json else render.watch_line
        try:
            live.run_watch(
                take, lambda frame: click.echo(line(frame)), interval=interval, count=count
            )
        except BrokenPipeError:  # the reader left (`| head`): an end, like a closed terminal
            terminal.discard_stdout()
        return ExitStatus.OK

    styled = not os.environ.get("NO_COLOR")  # https://no-color.org

    def on_screen(screen: terminal.FullScreen) -> None:
        def show(frame: live.Frame) -> None:
            screen.draw(render.watch_screen(frame, *screen.size(), styled))

        live.run_watch(take, show, interval=interval, count=count, read_key=screen.read_key)

    try:
        keys: int | None = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        keys = None
    terminal.run_fullscreen(on_screen, sys.stdout.fileno(), keys)
    return ExitStatus.OK


def main() -> NoReturn:
    """Run the tcptune command line."""
    cli.main()
