"""The audit command: every output format, thresholds, --output (watch is in watching.py)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import click

from tcptune.cli.group import NETNS_LABEL, PROFILE_DIR_OPTION, SECONDS
from tcptune.cli.habits import complete_profile
from tcptune.cli.sockets import BTF_CACHE_OPTION, bpf_seams, report_owners, report_unavailable
from tcptune.exitcodes import ExitStatus, TcptuneError
from tcptune.output import AUDIT_FORMATS


@click.command()
@click.option(
    "--format",
    "output_format",
    type=click.Choice(AUDIT_FORMATS),
    help="text (the default), json (schema 1), prometheus (for node_exporter's "
    "textfile collector), check (one Nagios plugin line; any error exits 3) or html "
    "(one self-contained incident report with charts, for a ticket).",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--output",
    callback=lambda _ctx, _param, value: _output_path(value),
    metavar="FILE",
    help="Replace FILE with the report atomically (temporary file, fsync, rename); "
    "- is stdout. A symlink at FILE is replaced itself, never followed; FILE must be a "
    "regular file, a symlink or not exist yet; a regular file's mode is kept (new: 0644).",
)
@click.option(
    "--profile",
    "profile",
    metavar="NAME|FILE",
    callback=lambda _ctx, _param, value: _profile_name(value),
    shell_complete=complete_profile,
    help="Compare the settings with this profile (see `tcptune profiles`).",
)
@PROFILE_DIR_OPTION
@click.option(
    "--ignore",
    "ignore",
    multiple=True,
    metavar="ID[:SUBJECT]",
    help="Suppress a finding by ID, or one occurrence as ID:SUBJECT (a sysctl key short, "
    "as the report shows it, or dotted). Repeatable; an unknown ID is warned about.",
)
@click.option(
    "--owners/--no-owners",
    default=True,
    show_default=True,
    help="Name the processes holding CLOSE_WAIT sockets and shared listeners. Costs one "
    "BPF task_file pass over the host's descriptors (root), else a readlink per open "
    "descriptor: skip it for frequent monitoring runs.",
)
@click.option(
    "--owners-source",
    type=click.Choice(["auto", "bpf", "procfs"]),
    default="auto",
    show_default=True,
    help="Where owners come from: auto uses the BPF task_file iterator when it can run "
    "(CAP_BPF and CAP_PERFMON, BTF) and /proc/PID/fd links otherwise; bpf makes its "
    "absence an incomplete inspection (3); procfs never loads BPF.",
)
@click.option(
    "--interval",
    type=SECONDS,
    metavar="SECONDS",
    help="Read the counters twice, SECONDS apart (above 0, at most 86400), and report "
    "rates per second.",
)
@click.option(
    "--source",
    type=click.Choice(["auto", "bpf", "netlink", "procfs"]),
    default="auto",
    show_default=True,
    help="Where to read socket states: auto walks the sockets once with a BPF "
    "iterator when it can run (CAP_BPF and CAP_PERFMON, BTF) and there are enough "
    "sockets to pay for loading it, else netlink sock_diag on the live /proc, else "
    "the /proc/net/tcp tables; bpf makes the walk's absence an incomplete inspection (3).",
)
@click.option(
    "--options/--no-options",
    "socket_options",
    default=None,
    help="Read every TCP socket's options with a BPF iterator (needs CAP_BPF and "
    "CAP_PERFMON). Default: read them when possible, else say why once and infer "
    "from timers; --options makes their absence an incomplete inspection (3).",
)
@BTF_CACHE_OPTION
@click.option(
    "-w",
    "--warning",
    multiple=True,
    metavar="SERIES=RANGE[,...]",
    help="With --format check: WARNING when a series leaves RANGE (Monitoring Plugins "
    "syntax: 10, 10:, ~:10, 10:20, @10:20). Series: close_wait, time_wait, orphans, "
    "port_use (%). Repeatable.",
)
@click.option(
    "-c",
    "--critical",
    multiple=True,
    metavar="SERIES=RANGE[,...]",
    help="With --format check: CRITICAL when a series leaves RANGE, as -w.",
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
    owners_source: str,
    interval: float | None,
    source: str,
    socket_options: bool | None,
    btf_cache: Path | None,
    warning: tuple[str, ...],
    critical: tuple[str, ...],
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
      tcptune audit --format check -w close_wait=100,port_use=50 -c close_wait=1000
      tcptune audit --format html --output incident.html
      tcptune audit --format prometheus --output DIR/tcptune.prom
      sudo tcptune audit --options           fail (3) if options are unseen

    \b
    Exit status: 0 healthy, 1 warnings, 2 critical, 3 the inspection was
    incomplete; 64 usage, 65 bad profile, 69 no such profile, 70 internal,
    74 --output not written (or not a regular file). With --format check
    every error is 3 UNKNOWN.
    """
    from tcptune.inspect.inspector import SocketSource
    from tcptune.inspect.owners import OwnerSource
    from tcptune.output.audit import audit_output
    from tcptune.run.audit import run_audit

    chosen = _audit_format(output_format, as_json)
    thresholds = _thresholds(chosen, warning, critical)
    searched: tuple[Path, ...] = ()
    if profile:  # profiles (and tomllib) load only when a profile is asked for
        from tcptune.profiles.locate import default_profile_dirs

        searched = (*profile_dirs, *default_profile_dirs())
    from tcptune.output.escape import one_line

    unknown_words = _unknown_ignores(ignore)
    for unknown in unknown_words:
        click.echo(f"tcptune: {one_line(unknown)}", err=True)
    result = run_audit(
        procfs,
        netns_name=click.get_current_context().meta.get(NETNS_LABEL),
        source=SocketSource(source),
        profile=profile,
        profile_dirs=searched,
        ignore=ignore,
        interval=interval,
        owners=owners,
        options=None if socket_options is False else bpf_seams(btf_cache),
        options_required=bool(socket_options),
        owners_source=OwnerSource(owners_source),
        owner_seams=bpf_seams(btf_cache),
        socket_seams=bpf_seams(btf_cache),
    )
    report_unavailable(result.snapshot.sockopts)
    report_owners(result.snapshot.owners)
    for word in result.unmatched_ignores:
        if not any(word in shown for shown in unknown_words):
            click.echo(
                f"tcptune: --ignore {one_line(word)}: no finding has that ID and subject "
                "in this audit, so it ignores nothing",
                err=True,
            )
    _emit(audit_output(result, chosen, thresholds), output)
    for problem in result.snapshot.problems if chosen != "check" else ():
        click.echo(f"tcptune: incomplete: {problem.source}: {problem.message}", err=True)
    if thresholds is not None:
        from tcptune.model.thresholds import check_verdict

        return check_verdict(result.status, result.snapshot, thresholds)[0]
    return result.status


def _thresholds(chosen: str, warning: tuple[str, ...], critical: tuple[str, ...]) -> Any:
    """Return -w/-c as Thresholds (None when neither is given); only --format check takes them."""
    if not (warning or critical):
        return None
    from tcptune.exitcodes import UsageError
    from tcptune.model.thresholds import Thresholds, parse_thresholds

    if chosen != "check":
        raise UsageError("-w/--warning and -c/--critical go with --format check")
    return Thresholds(
        parse_thresholds(warning, "--warning"), parse_thresholds(critical, "--critical")
    )


def _audit_format(output_format: str | None, as_json: bool) -> str:
    """Return the audit's output format; --json is another way to say --format json."""
    from tcptune.exitcodes import UsageError

    if as_json and output_format not in (None, "json"):
        raise UsageError(f"--json means --format json; it cannot go with --format {output_format}")
    return "json" if as_json else output_format or "text"


def _unknown_ignores(ignore: tuple[str, ...]) -> list[str]:
    """Return a warning for each --ignore whose ID no check can produce (a typo ignores nothing)."""
    if not ignore:
        return []
    from tcptune.advise import DOCS
    from tcptune.model.findings import unknown_ignore_ids

    return [
        f"--ignore {word}: no finding has the ID {word.partition(':')[0]!r} "
        "(the IDs are listed by `tcptune explain`)"
        for word in unknown_ignore_ids(ignore, DOCS)
    ]


def _profile_name(value: str | None) -> str | None:
    """Refuse --profile '', which would otherwise audit without any profile."""
    if value is not None and not value.strip():
        raise click.BadParameter("needs a profile name or file, got an empty string")
    return value


def _output_path(value: str | None) -> Path | None:
    """Return --output as a Path, None for stdout ("-"); an empty string names no file."""
    if value is None or value == "-":
        return None
    if not value:
        raise click.BadParameter("needs a file name, got an empty string")
    return Path(value)


def _emit(text: str, output: Path | None) -> None:
    """Print ``text``, or replace ``output`` with it atomically (atomicfile.replace_output)."""
    if output is None:
        click.echo(text, nl=False)
        return
    from tcptune.apply.atomicfile import replace_output
    from tcptune.inspect.procfs import describe_os_error

    try:
        replace_output(output, text)
    except OSError as exc:
        reason = exc.strerror if exc.errno == errno.EINVAL else describe_os_error(exc)
        raise TcptuneError(
            f"cannot write {output}: {reason}", status=ExitStatus.WRITE_FAILED
        ) from exc
