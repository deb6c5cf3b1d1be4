"""Commands for the built-in knowledge: profiles, profiles show, explain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tcptune.cli.group import PROFILE_DIR_OPTION, profile_locator
from tcptune.cli.habits import complete_command, complete_profile, complete_topic
from tcptune.exitcodes import ExitStatus


@click.group(invoke_without_command=True)
@PROFILE_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_context
def profiles(ctx: click.Context, profile_dirs: tuple[Path, ...], as_json: bool) -> ExitStatus:
    """List workload profiles, or show one with `profiles show NAME`.

    \b
    Profiles are searched in --profile-dir, ~/.config/tcptune/profiles,
    /etc/tcptune/profiles, then the ones shipped with tcptune. A profile
    that cannot be used is listed as INVALID with the reason, also on stderr.

    \b
    Examples:
      tcptune profiles
      tcptune profiles --profile-dir ./profiles
      tcptune profiles show server-profile
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = profile_dirs  # `show` adds its own --profile-dir after these
        return ExitStatus.OK
    from tcptune.output import reference
    from tcptune.output.escape import one_line
    from tcptune.profiles.model import BrokenProfile

    locator = profile_locator(profile_dirs)
    entries = locator.catalogue()
    click.echo(
        reference.profiles_json(entries) if as_json else reference.profiles_text(entries),
        nl=not as_json,
    )
    for note in locator.notes:
        click.echo(f"tcptune: note: {one_line(note)}", err=True)
    for entry in entries:
        if isinstance(entry, BrokenProfile):
            click.echo(f"tcptune: invalid profile {entry.name}: {one_line(entry.reason)}", err=True)
    return ExitStatus.OK


@profiles.command("show")
@click.argument("name", metavar="NAME|FILE", shell_complete=complete_profile)
@PROFILE_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_obj
def profiles_show(
    group_dirs: tuple[Path, ...], name: str, profile_dirs: tuple[Path, ...], as_json: bool
) -> ExitStatus:
    """Show one profile with inheritance resolved: each target, why and risk.

    \b
    Examples:
      tcptune profiles show server-profile
      tcptune profiles show my-profile --profile-dir ./profiles
      tcptune profiles show ./my-profile.toml --json
    """
    from tcptune.output import reference

    profile = profile_locator((*group_dirs, *profile_dirs)).load(name)
    click.echo(
        reference.profile_json(profile) if as_json else reference.profile_text(profile),
        nl=not as_json,
    )
    return ExitStatus.OK


# --------------------------------------------------------------------------- apply, rollback,
# verify, history: the only commands that write, and their records.


@click.command()
@click.argument("topic", required=False, shell_complete=complete_topic)
@click.option(
    "--show",
    is_flag=True,
    help="Run the topic's experiment in a throwaway network namespace (root) and print "
    "what the kernel did; never touches this host's settings.",
)
@click.pass_obj
def explain(_procfs: Any, topic: str | None, show: bool) -> ExitStatus:
    """Explain a TCP state, sysctl, socket option or finding ID; alone, list topics.

    \b
    Examples:
      tcptune explain                    every topic, one line each
      tcptune explain close-wait         the state and the finding
      tcptune explain tcp_fin_timeout    a sysctl (prefix optional)
      tcptune explain so_linger          a socket option, with C and Python
      tcptune explain misconceptions     what the web gets wrong
      sudo tcptune explain so_linger --show   watch the kernel do it
    """
    from tcptune.advise import finding_topics
    from tcptune.exitcodes import UnavailableError
    from tcptune.output import reference
    from tcptune.reference import explain
    from tcptune.reference.counters import counters_topic

    topics = explain.with_findings(explain.load_topics((counters_topic(),)), finding_topics())
    if topic is None:
        click.echo(reference.topics_text(explain.topic_list(topics)), nl=False)
        return ExitStatus.OK
    try:
        found = explain.find_topic(topics, topic)
    except explain.UnknownTopic as exc:
        raise UnavailableError(str(exc)) from exc
    if show:
        from tcptune.exitcodes import UsageError
        from tcptune.reference import show as experiments

        if found.name not in experiments.EXPERIMENTS:
            names = ", ".join(sorted(experiments.EXPERIMENTS))
            raise UsageError(f"no experiment for {found.name!r}; --show works for: {names}")
        try:
            result = experiments.run_show(found.name, found.title)
        except experiments.ShowNotPermitted as exc:
            from tcptune.exitcodes import PermissionDeniedError

            raise PermissionDeniedError(f"explain --show: {exc}") from exc
        except experiments.ShowUnavailable as exc:
            raise UnavailableError(f"explain --show: {exc}") from exc
        click.echo(reference.show_text(result), nl=False)
        return ExitStatus.OK
    click.echo(explain.format_topic(found), nl=False)
    return ExitStatus.OK


@click.command("help")
@click.argument("command", nargs=-1, shell_complete=complete_command)
@click.pass_context
def help_command(ctx: click.Context, command: tuple[str, ...]) -> ExitStatus:
    """Show the help of tcptune, or of COMMAND (the same as COMMAND --help).

    \b
    Examples:
      tcptune help
      tcptune help audit
      tcptune help profiles show
    """
    from tcptune.cli.habits import help_text

    click.echo(help_text(ctx, command))
    return ExitStatus.OK
