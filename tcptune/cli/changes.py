"""Commands that change or review changes: apply, rollback, verify, history."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from tcptune.apply import DEFAULT_STATE_DIR
from tcptune.cli.commandline import as_root, command_line
from tcptune.cli.group import (
    NETNS_LABEL,
    PROFILE_DIR_OPTION,
    SECONDS_OR_ZERO,
    profile_locator,
)
from tcptune.cli.habits import complete_profile
from tcptune.cli.sockets import BTF_CACHE_OPTION
from tcptune.exitcodes import ExitStatus


def _directory(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Path | None:
    """Return a directory option as a Path; refuse '', which Path('') turns into '.'."""
    if value is None:
        return None
    if not value:
        raise click.BadParameter("needs a directory, got an empty string")
    return Path(value)


STATE_DIR_OPTION = click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    callback=_directory,
    default=str(DEFAULT_STATE_DIR),
    show_default=True,
    envvar="TCPTUNE_STATE_DIR",
    metavar="DIR",
    help="Where the undo records, the history and the lock live (environment: TCPTUNE_STATE_DIR).",
)
BOOT_ROOT_OPTION = click.option(
    "--boot-root",
    type=click.Path(path_type=Path, file_okay=False),
    default="/",
    show_default=True,
    envvar="TCPTUNE_BOOT_ROOT",
    metavar="DIR",
    help="Read the boot-time configuration (etc/sysctl.d, run/sysctl.d, "
    "usr/local/lib/sysctl.d, usr/lib/sysctl.d, lib/sysctl.d, etc/sysctl.conf) under DIR "
    "(environment: TCPTUNE_BOOT_ROOT).",
)
LOCK_TIMEOUT_OPTION = click.option(
    "--lock-timeout",
    type=SECONDS_OR_ZERO,
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for another apply or rollback to finish.",
)


def _environment(
    procfs: Any, state_dir: Path, boot_root: Path, sysctl_dir: Path | None, lock_timeout: float
) -> Any:
    import os

    from tcptune.apply.applier import Environment
    from tcptune.apply.statestore import StateStore
    from tcptune.apply.sysctld import SearchPath
    from tcptune.apply.writer import ProcSysctlWriter
    from tcptune.inspect.invoker import current_identity
    from tcptune.inspect.procfs import ProcFS

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


@click.command()
@click.argument("profile_name", metavar="PROFILE", shell_complete=complete_profile)
@click.option(
    "--apply",
    "execute",
    is_flag=True,
    help="Carry the plan out. Without it: show it, write nothing.",
)
@click.option("--persist", is_flag=True, help="Also write a sysctl.d drop-in for the next boot.")
@click.option(
    "--allow-unlisted",
    is_flag=True,
    help="Also write keys outside tcptune's catalogue; the plan shows each one's scope "
    "(host-wide ones are still refused inside a container).",
)
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
@BTF_CACHE_OPTION
@click.pass_context
def apply(
    ctx: click.Context,
    profile_name: str,
    execute: bool,
    persist: bool,
    allow_unlisted: bool,
    as_json: bool,
    state_dir: Path,
    sysctl_dir: Path | None,
    boot_root: Path,
    lock_timeout: float,
    profile_dirs: tuple[Path, ...],
    btf_cache: Path | None,
) -> ExitStatus:
    """Show what PROFILE would change; with --apply, change it all or nothing.

    Every key is checked before the first write; the previous values are saved
    in the state directory; each write is read back, and any failure restores
    every key already written. Per-namespace keys change only the current
    network namespace. Only keys of tcptune's catalogue are written, unless
    --allow-unlisted (the plan then shows where each write lands). --persist
    cannot be combined with --netns/--pid: boot applies the drop-in to
    whatever boots this /etc, never to that namespace.

    \b
    Examples:
      sudo tcptune apply server-profile             the plan; writes nothing
      sudo tcptune apply server-profile --apply     write, verify, record
      sudo tcptune apply server-profile --apply --persist   and /etc/sysctl.d
      tcptune apply ./my-profile.toml --json        the plan as JSON

    \b
    Exit status: 0 applied, or plan shown; 64 usage (also --persist with
    --netns/--pid), or a drop-in tcptune did not write is in the way; 65 invalid
    profile, a value the kernel would reject, or a corrupt state file; 69 no
    such profile or key; 73 applied, but the undo record or the history line
    could not be updated (stderr says which); 74 a write failed (all
    restored); 75 another apply holds the lock; 77 not root, /proc/sys is
    read-only, or the state directory is not root's alone.
    """
    import json

    from tcptune.apply.applier import apply_profile, preview
    from tcptune.apply.reach import read_reach
    from tcptune.cli.sockets import bpf_seams
    from tcptune.output import plan as plan_output

    profile = profile_locator(profile_dirs).load(profile_name)
    env = replace(
        _environment(ctx.obj, state_dir, boot_root, sysctl_dir, lock_timeout),
        allow_unlisted=allow_unlisted,
    )
    command = as_root(
        command_line(ctx, drop={"as_json"}, add={"execute": "--apply"}), env.identity.euid
    )
    seams = bpf_seams(btf_cache)
    if not execute:
        plan, dropin = preview(profile, env, persist=persist)
        reach = read_reach(plan, ctx.obj, seams)
        shown = command
        if as_json:
            click.echo(
                json.dumps(plan_output.plan_dict(plan, dropin, shown, reach=reach), indent=2)
            )
        else:
            click.echo(plan_output.plan_text(plan, dropin, shown, reach), nl=False)
        error = plan.error()
        if error is not None:
            raise error
        return ExitStatus.OK
    result = apply_profile(profile, env, persist=persist, command=command)
    reach = read_reach(result.plan, ctx.obj, seams)
    if as_json:
        text = json.dumps(
            plan_output.plan_dict(result.plan, result.dropin, None, result, reach), indent=2
        )
    else:
        undo = command_line(ctx, command="rollback", keep={"state_dir"})
        text = plan_output.applied_text(result, as_root(undo, env.identity.euid), reach)
    return _report(text, result.problems, result.status)


def _report(text: str, problems: tuple[str, ...], status: ExitStatus) -> ExitStatus:
    """Print a change's report, then each record that failed; the change stands either way.

    A report that cannot be printed (EIO, a closed pipe) is one more thing the
    user must know, never an internal error: the writes are done (exit 73).
    """
    from tcptune.inspect.procfs import describe_os_error
    from tcptune.output.escape import one_line

    try:
        click.echo(text, nl=not text.endswith("\n"))
    except OSError as exc:
        problems += (f"the report could not be printed: {describe_os_error(exc)}",)
        status = ExitStatus.UNRECORDED
    for problem in problems:
        with contextlib.suppress(OSError):  # stderr gone too: the exit status still says it
            click.echo(f"tcptune: warning: {one_line(problem)}", err=True)
    return status


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print what was restored as JSON.")
@click.option(
    "--forget",
    type=click.IntRange(min=0),
    metavar="ID",
    help="Drop apply ID from the undo stack without restoring anything (for a namespace "
    "that no longer exists); logged in the history and syslog.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show what the rollback would restore and write nothing: no lock, no history entry.",
)
@STATE_DIR_OPTION
@LOCK_TIMEOUT_OPTION
@click.pass_context
def rollback(
    ctx: click.Context,
    as_json: bool,
    forget: int | None,
    dry_run: bool,
    state_dir: Path,
    lock_timeout: float,
) -> ExitStatus:
    """Undo the newest apply not yet rolled back, and verify every key.

    Applies form a stack: each rollback undoes one apply and takes it off, so a
    second rollback undoes the apply before it; it never re-applies anything.
    The drop-in written by --persist is restored to what it was, or removed.
    --dry-run reads the same record and the live values and says what would
    be restored, writing nothing.

    \b
    A record whose namespace no longer exists (a container that exited) can
    never be rolled back and blocks the older ones: --forget ID drops it
    without writing any key, and the history and syslog say so.

    \b
    Examples:
      sudo tcptune rollback
      tcptune rollback --dry-run           what it would restore
      sudo tcptune rollback --state-dir /srv/tcptune-state
      sudo tcptune rollback --forget 7      drop record 7, restore nothing

    \b
    Exit status: 0 rolled back (or forgotten); 65 state.json is corrupt
    (nothing is written); 69 nothing to roll back, no such record, or the
    apply was made in another network namespace (told apart by namespace
    cookie and boot id, not only the inode number); 73 rolled back, but the
    undo record or the history line could not be updated (stderr says which);
    74 a write failed (all restored); 75 another apply holds the lock; 77 not
    root, /proc/sys is read-only, or the state directory is not root's alone.
    """
    import json

    from tcptune.apply import rollback as undo
    from tcptune.output import records

    env = _environment(ctx.obj, state_dir, Path("/"), None, lock_timeout)
    command = as_root(command_line(ctx, drop={"as_json", "dry_run"}), env.identity.euid)
    if forget is not None and dry_run:
        from tcptune.exitcodes import UsageError

        raise UsageError("--dry-run shows a rollback; it cannot go with --forget")
    if forget is not None:
        forgotten = undo.forget(env, forget, command=command)
        shown = (
            json.dumps(records.forget_dict(forgotten), indent=2)
            if as_json
            else records.forget_text(forgotten)
        )
        return _report(shown, forgotten.problems, forgotten.status)
    result = undo.rollback_preview(env) if dry_run else undo.rollback(env, command=command)
    text = (
        json.dumps(records.rollback_dict(result), indent=2)
        if as_json
        else records.rollback_text(result)
    )
    return _report(text, result.problems, result.status)


@click.command()
@click.argument("profile_name", metavar="PROFILE", shell_complete=complete_profile)
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

    from tcptune.apply.sysctld import SearchPath
    from tcptune.apply.verify import verify_profile
    from tcptune.output import records

    profile = profile_locator(profile_dirs).load(profile_name)
    netns_name = click.get_current_context().meta.get(NETNS_LABEL)
    report = verify_profile(profile, procfs, SearchPath.under(boot_root), netns_name)
    if as_json:
        click.echo(json.dumps(records.verify_dict(report), indent=2))
    else:
        click.echo(records.verify_text(report), nl=False)
    return report.status


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON (schema 1).")
@click.option("-n", "--last", type=click.IntRange(min=1), help="Show only the last N entries.")
@STATE_DIR_OPTION
def history(as_json: bool, last: int | None, state_dir: Path) -> ExitStatus:
    """List past applies and rollbacks: when, who, which profile, what changed.

    A line of the history file that cannot be read (torn by a crash, edited) is
    skipped: every other entry is still listed, the bad line is named at the end
    (and in "problems" with --json), and the exit status is 65.

    \b
    Examples:
      tcptune history
      tcptune history -n 5 --json

    \b
    Exit status: 0 listed (also when empty); 65 a line of the history file, or
    the file itself, cannot be read (the readable entries are still listed).
    """
    import json

    from tcptune.apply.statestore import StateStore
    from tcptune.exitcodes import BadInputError
    from tcptune.output import records

    store = StateStore(state_dir)
    log = store.read_history()
    entries = log.entries if last is None else log.entries[-last:]
    if as_json:
        click.echo(json.dumps(records.history_dict(entries, log), indent=2))
    else:
        click.echo(records.history_text(entries, log), nl=False)
    if log.problems:
        raise BadInputError(
            f"{store.history_path}: {'; '.join(log.problems)} (skipped; the other entries "
            "are listed)"
        )
    return ExitStatus.OK
