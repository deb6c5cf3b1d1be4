"""Apply a profile all or nothing, saving the way back first; the records both paths keep.

An apply checks everything it can before the first write (privilege, a writable
/proc/sys, every key present, values the kernel will take, a drop-in it owns),
saves the values it will replace, then writes through writer.write_all. The
history line, syslog notice and undo-stack updates shared with rollback.py live here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from tcptune.apply import sysctld
from tcptune.apply.history import HistoryEntry, syslog_notice
from tcptune.apply.plan import Plan, read_plan
from tcptune.apply.records import ApplyRecord, Change, DropinBackup
from tcptune.apply.statestore import StateStore
from tcptune.apply.writer import (
    SysctlWriter,
    WriteAborted,
    check_privilege,
    check_writable,
    failure_error,
    shown,
    write_all,
)
from tcptune.exitcodes import (
    ExitStatus,
    PermissionDeniedError,
    TcptuneError,
    UsageError,
    WriteFailedError,
)
from tcptune.inspect.invoker import Identity
from tcptune.inspect.nsidentity import (
    NamespaceIdentity,
    current_namespace,
    describe_namespace,
)
from tcptune.inspect.procfs import ProcFS, describe_os_error
from tcptune.model.record import record
from tcptune.model.sysctls import KNOWN_SYSCTLS
from tcptune.profiles.model import Profile

DEFAULT_LOCK_TIMEOUT = 5.0


@record
class Environment:
    """Everything an apply or rollback touches, passed in so tests can point it elsewhere."""

    procfs: ProcFS
    writer: SysctlWriter
    store: StateStore
    boot: sysctld.SearchPath
    dropin_dir: Path
    identity: Identity
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    clock: Callable[[], float] = time.time
    log: Callable[[str], None] = syslog_notice
    # The namespace entered with --netns/--pid: named in reports, and --persist is
    # refused there (a drop-in configures whatever boots this /etc, not that namespace).
    netns_name: str | None = None
    allow_unlisted: bool = False  # --allow-unlisted: keys outside the catalogue, scope shown


@record
class ApplyResult:
    """What an apply did: the plan carried out, the record saved, the drop-in written."""

    plan: Plan
    record_id: int | None  # None: nothing was written
    written: tuple[Change, ...]
    dropin: sysctld.DropinPlan | None
    seconds: float
    problems: tuple[str, ...] = ()  # records that could not be written; the change stands

    @property
    def status(self) -> ExitStatus:
        """Return OK, or UNRECORDED when the change stands but a record of it failed."""
        return ExitStatus.UNRECORDED if self.problems else ExitStatus.OK


def summary(changes: Sequence[Change]) -> str:
    return ", ".join(f"{c.name} {shown(c.before)} -> {shown(c.after)}" for c in changes)


def record_history(
    env: Environment,
    entry_id: int,
    action: str,
    outcome: str,
    profile: str,
    changes: Sequence[Change],
    message: str,
    *,
    netns: str | None,
    dropin: str | None = None,
    undoes: int | None = None,
) -> str | None:
    """Append one history line and send the same fact to syslog; return why the line failed."""
    entry = HistoryEntry(
        id=entry_id,
        time=env.clock(),
        action=action,
        outcome=outcome,
        profile=profile,
        who=env.identity,
        changes=tuple(changes),
        dropin=dropin,
        message=message,
        undoes=undoes,
        netns=netns,
    )
    where = f" in {netns}" if netns else ""
    line = f"{action} #{entry_id} {outcome}{where}: {message} (by {env.identity.describe()})"
    problem = None
    try:
        env.store.append_history(entry)
    except (OSError, TcptuneError) as exc:  # the change itself stands; syslog keeps the trail
        reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        problem = f"the history line for {action} #{entry_id} was not written to "
        problem += f"{env.store.history_path}: {reason} (syslog has it)"
        line += f"; not recorded in {env.store.history_path}: {reason}"
    env.log(line)
    return problem


def namespace_label(env: Environment, namespace: NamespaceIdentity) -> str:
    return describe_namespace(namespace, env.netns_name)


def check_persist_target(env: Environment, persist: bool) -> None:
    """Refuse --persist in a namespace entered with --netns/--pid: boot would not configure it.

    systemd-sysctl and ``sysctl --system`` apply sysctl.d at boot in the network
    namespace they run in: for this /etc, the host's initial one. A namespace made
    by ``ip netns add`` or a container runtime starts from kernel defaults.
    """
    if persist and env.netns_name is not None:
        raise UsageError(
            f"--persist cannot be used with --netns/--pid ({env.netns_name}): the drop-in in "
            f"{env.dropin_dir} is applied at boot to the namespace of whatever boots this "
            "/etc (on a host, its initial namespace), never to that namespace; nothing was "
            "written. Apply without --persist, and persist with that namespace's own "
            "configuration (e.g. the container image)"
        )


def _last_written(env: Environment, path: Path) -> str | None:
    """Return the text tcptune last wrote at ``path`` per the undo stack, or None if unknown."""
    try:
        stack = env.store.undo_stack()
    except PermissionDeniedError:  # a dry run as an ordinary user: attribution unknown
        return None
    for applied in reversed(stack):
        backup = applied.dropin
        if backup is not None and Path(backup.path).absolute() == path.absolute():
            return backup.written
    return None


def _persist_notes(plan: Plan, env: Environment, dropin: sysctld.DropinPlan) -> tuple[str, ...]:
    if plan.context.initial_netns is True:
        return ()
    where = (
        "Cannot tell whether this is the host's initial network namespace"
        if plan.context.initial_netns is None
        else f"This is not the host's initial network namespace (net:[{plan.context.netns_inode}])"
    )
    return (
        f"{where}: {dropin.path} takes effect when a system that boots with "
        f"{dropin.path.parent} starts (systemd-sysctl, sysctl --system), in the namespace that "
        "system runs in; it does not follow this namespace.",
    )


def plan_dropin(plan: Plan, env: Environment) -> sysctld.DropinPlan:
    """Return the drop-in that persists ``plan``: every key it changes or keeps.

    It also names the lines of the current drop-in that tcptune did not write and
    that the new one drops, and what boot will and will not configure from here.
    """
    settings = [(item.name, item.write_text) for item in plan.items if item.desired is not None]
    dropin = sysctld.plan_dropin(
        env.dropin_dir, env.boot, plan.profile, settings, env.clock(), env.identity.describe()
    )
    if dropin.previous is not None and dropin.action != "unchanged":
        written = _last_written(env, dropin.path)
        dropin = replace(
            dropin,
            foreign=sysctld.foreign_lines(dropin.previous, written, dropin.text),
            attributed=written is not None,
        )
    return replace(dropin, notes=_persist_notes(plan, env, dropin))


def preview(
    profile: Profile, env: Environment, *, persist: bool
) -> tuple[Plan, sysctld.DropinPlan | None]:
    """Return the plan for ``profile`` and the drop-in --persist would write; write nothing."""
    check_persist_target(env, persist)
    plan = read_plan(profile, env.procfs, env.netns_name, allow_unlisted=env.allow_unlisted)
    return plan, plan_dropin(plan, env) if persist else None


def apply_profile(
    profile: Profile, env: Environment, *, persist: bool, command: str
) -> ApplyResult:
    """Carry out ``profile`` on this kernel all or nothing, saving the way back first."""
    started = time.monotonic()
    check_persist_target(env, persist)
    check_privilege(env.identity, command)
    check_writable(env.procfs, list(profile.targets))
    with env.store.locked(env.lock_timeout):
        plan = read_plan(  # under the lock: no other apply writes now
            profile, env.procfs, env.netns_name, allow_unlisted=env.allow_unlisted
        )
        blocked = plan.error()
        if blocked is not None:
            raise blocked
        dropin = plan_dropin(plan, env) if persist else None
        write_dropin = dropin if dropin is not None and dropin.action != "unchanged" else None
        changes = tuple(Change(i.name, i.current_text or "", i.write_text) for i in plan.changes)
        record_id = env.store.next_id()
        namespace = current_namespace(env.procfs, plan.context)
        where = namespace_label(env, namespace)
        if not changes and write_dropin is None:
            problems = [claim(env, record_id)]
            problems.append(
                record_history(
                    env,
                    record_id,
                    "apply",
                    "already in place",
                    plan.profile,
                    (),
                    "nothing to change",
                    netns=where,
                )
            )
            return ApplyResult(
                plan, None, (), dropin, time.monotonic() - started, present(problems)
            )
        backup = None
        if write_dropin is not None:
            path = str(write_dropin.path.absolute())  # a rollback may run from another cwd
            backup = DropinBackup(path, write_dropin.previous, write_dropin.text)
        record = ApplyRecord(
            id=record_id,
            time=env.clock(),
            profile=plan.profile,
            netns_inode=namespace.inode,
            who=env.identity,
            changes=changes,
            dropin=backup,
            complete=False,
            netns_cookie=namespace.cookie,
            boot_id=namespace.boot_id,
            initial_netns=namespace.initial,
            unlisted=tuple(c.name for c in changes if c.name not in KNOWN_SYSCTLS),
        )
        try:
            env.store.push(record)  # durable before the first write
        except OSError as exc:
            raise WriteFailedError(
                f"cannot save the previous values in {env.store.state_path}: "
                f"{describe_os_error(exc)}; nothing was changed"
            ) from exc
        last_step = None
        if write_dropin is not None:
            planned = write_dropin
            last_step = (f"write {planned.path}", lambda: sysctld.install_dropin(planned))
        try:
            write_all(changes, env.writer, last_step)
        except WriteAborted as failure:
            error = failure_error(failure, env.store)
            problems = [] if failure.unrestored else [_drop_undone(env, record.id)]
            problems.append(
                record_history(
                    env,
                    record.id,
                    "apply",
                    "failed",
                    plan.profile,
                    changes,
                    str(error),
                    netns=where,
                )
            )
            raise with_problems(error, problems) from failure
        # Every key (and the drop-in) is written and verified: the apply stands. A record
        # left marked incomplete is undone by rollback the same way; it is reported.
        problems = [_mark_complete(env, record.id)]
        dropin_path = str(write_dropin.path) if write_dropin else None
        message = summary(changes) or f"wrote {dropin_path}"
        problems.append(
            record_history(
                env,
                record.id,
                "apply",
                "applied",
                plan.profile,
                changes,
                message,
                netns=where,
                dropin=dropin_path,
            )
        )
        return ApplyResult(
            plan, record.id, changes, dropin, time.monotonic() - started, present(problems)
        )


def present(problems: Sequence[str | None]) -> tuple[str, ...]:
    return tuple(problem for problem in problems if problem is not None)


def with_problems(error: TcptuneError, problems: Sequence[str | None]) -> TcptuneError:
    """Return ``error`` with the records that also failed named at its end."""
    extra = present(problems)
    if not extra:
        return error
    return type(error)(f"{error}; also: {'; '.join(extra)}", status=error.status)


def state_problem(exc: Exception) -> str:
    return describe_os_error(exc) if isinstance(exc, OSError) else str(exc)


def claim(env: Environment, record_id: int) -> str | None:
    """Keep ``record_id`` from being handed out again; return why it could not be kept."""
    try:
        env.store.claim_id(record_id)
    except (OSError, TcptuneError) as exc:
        return f"could not count id #{record_id} in {env.store.state_path}: {state_problem(exc)}"
    return None


def _mark_complete(env: Environment, record_id: int) -> str | None:
    try:
        env.store.mark_complete(record_id)
    except (OSError, TcptuneError) as exc:
        return (
            f"apply #{record_id} stays marked incomplete in {env.store.state_path} "
            f"({state_problem(exc)}); `tcptune rollback` still undoes it"
        )
    return None


def _drop_undone(env: Environment, record_id: int) -> str | None:
    """Take a fully undone apply off the stack; return why it stays there, if it does."""
    try:
        env.store.drop(record_id)
    except (OSError, TcptuneError) as exc:
        # Its 'before' values are what the kernel has again: a rollback writes nothing.
        return (
            f"its undo record #{record_id} stays in {env.store.state_path} "
            f"({state_problem(exc)}); a rollback of it finds nothing to restore"
        )
    return None
