"""Apply a profile all or nothing, and roll the last apply back: the only code that writes.

An apply checks everything it can before the first write (privilege, a writable
/proc/sys, every key present, values the kernel will take, a drop-in it owns),
saves the values it will replace, then writes each key and reads it back. Any
failure (an errno from the kernel, or any exception a writer raises, or an
interrupt) restores every key already written, in reverse order, and verifies it.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from tcptune.apply import sysctld
from tcptune.apply.plan import Plan, read_plan
from tcptune.apply.statestore import (
    ApplyRecord,
    Change,
    DropinBackup,
    HistoryEntry,
    StateStore,
    syslog_notice,
)
from tcptune.exitcodes import (
    ExitStatus,
    PermissionDeniedError,
    TcptuneError,
    UnavailableError,
    UsageError,
    WriteFailedError,
)
from tcptune.inspect.inspector import PROC_NET_INIT_INO, read_context
from tcptune.inspect.invoker import Identity
from tcptune.inspect.nsidentity import (
    NamespaceIdentity,
    current_namespace,
    describe_namespace,
    namespace_difference,
)
from tcptune.inspect.procfs import ProcFS, describe_os_error, read_bounded
from tcptune.model.sysctls import KNOWN_SYSCTLS
from tcptune.model.values import same_text, unit_of
from tcptune.profiles.model import Profile

DEFAULT_LOCK_TIMEOUT = 5.0
# Errors that mean "not allowed here" rather than "this value is wrong".
_PERMISSION_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


class SysctlWriter(Protocol):
    """Reads and writes sysctls by dotted name; tests inject one that fails."""

    def read(self, name: str) -> str:
        """Return the sysctl's text as the kernel prints it."""
        ...

    def write(self, name: str, text: str) -> None:
        """Set the sysctl to ``text``, raising OSError with the kernel's errno."""
        ...


@dataclass(frozen=True)
class ProcSysctlWriter:
    """Read and write sysctls through /proc/sys under one procfs root."""

    procfs: ProcFS

    def read(self, name: str) -> str:
        """Return the sysctl's text as the kernel prints it."""
        return self.procfs.sysctl_path(name).read_text(encoding="ascii", errors="replace")

    def write(self, name: str, text: str) -> None:
        """Set the sysctl to ``text`` with one write(2), raising OSError with the kernel's errno."""
        data = f"{text}\n".encode("ascii")
        # fs/proc/proc_sysctl.c proc_sys_call_handler() hands one write(2) to the
        # key's handler, which parses the whole value; a zero-length write is a no-op.
        fd = os.open(self.procfs.sysctl_path(name), os.O_WRONLY | os.O_CLOEXEC)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):
            raise OSError(errno.EIO, f"short write: {written} of {len(data)} bytes")


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback restored, or with --dry-run (entry_id None) would restore."""

    record: ApplyRecord
    entry_id: int | None  # its history entry; None: a dry run, nothing written or recorded
    restored: tuple[Change, ...]
    dropin_action: str | None  # "restored", "removed", or why it was left alone
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # records that could not be updated; the keys are restored

    @property
    def status(self) -> ExitStatus:
        """Return OK, or UNRECORDED when the keys are restored but a record of it failed."""
        return ExitStatus.UNRECORDED if self.problems else ExitStatus.OK


@dataclass(frozen=True)
class ForgetResult:
    """A record dropped from the undo stack by `rollback --forget`, without any write."""

    record: ApplyRecord
    entry_id: int
    problems: tuple[str, ...] = ()

    @property
    def status(self) -> ExitStatus:
        """Return OK, or UNRECORDED when the history line could not be written."""
        return ExitStatus.UNRECORDED if self.problems else ExitStatus.OK


class WriteAborted(Exception):
    """A write failed; the ``restored`` keys written before it were put back and verified."""

    def __init__(
        self, reason: str, errno_value: int | None, restored: int, unrestored: Sequence[str]
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errno = errno_value
        self.restored = restored
        self.unrestored = tuple(unrestored)  # keys the undo could not put back


def check_privilege(identity: Identity, command: str) -> None:
    """Raise PermissionDeniedError, naming the command to run, unless ``identity`` may write.

    ``command`` is the line to run as given by the CLI (cli/commandline.py
    decides whether it starts with sudo).
    """
    if not identity.may_write_net_sysctls:
        raise PermissionDeniedError(
            f"changing kernel settings needs root (or CAP_NET_ADMIN) and you are "
            f"{identity.describe()}; nothing was changed. Run: {command}"
        )


def check_writable(procfs: ProcFS, names: Sequence[str]) -> None:
    """Raise PermissionDeniedError if any key's directory is on a read-only mount."""
    for name in names:
        directory = procfs.sysctl_path(name).parent
        try:
            read_only = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
        except OSError:
            continue  # a missing key is the plan's to report
        if read_only:
            raise PermissionDeniedError(
                f"{directory} is mounted read-only (as container runtimes mount /proc/sys), "
                "so kernel settings cannot be changed from here; nothing was changed. "
                "Apply on the host, or give the container a writable /proc/sys"
            )


def _shown(text: str) -> str:
    """Return a value for a one-line message: whitespace collapsed, anything unprintable escaped."""
    shown = " ".join(text.split()) or '""'
    return shown if shown.isprintable() else ascii(shown)


def _describe(exc: BaseException) -> tuple[str, int | None]:
    """Return why a writer call failed, and the errno it stands for (None: none fits)."""
    if isinstance(exc, OSError):
        return describe_os_error(exc), exc.errno
    if isinstance(exc, UnicodeError):
        # /proc/sys takes bytes a handler parses as ASCII numbers or names: a value
        # that is not ASCII is one the kernel would reject, as it does with EINVAL.
        return "the value is not ASCII text, which /proc/sys takes (invalid argument)", errno.EINVAL
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", errno.EINTR
    detail = " ".join(str(exc).split())
    return f"{type(exc).__name__}{': ' + detail if detail else ''}", None


def _restore(done: Sequence[Change], writer: SysctlWriter) -> list[str]:
    """Put back each change's 'before' text, newest first; return what could not be restored."""
    failed = []
    for change in reversed(done):
        try:
            if not _same(change.name, writer.read(change.name), change.before):
                writer.write(change.name, change.before)
                if not _same(change.name, writer.read(change.name), change.before):
                    failed.append(f"{change.name} (reads back wrong)")
        except Exception as exc:  # keep restoring the others whatever one of them raises
            failed.append(f"{change.name} ({_describe(exc)[0]})")
    return failed


def _same(name: str, a: str, b: str) -> bool:
    """Return whether two texts of sysctl ``name`` are one value (model/values.py decides)."""
    return same_text(unit_of(name), a, b)


Step = tuple[str, Callable[[], None]]  # what a last write is called, and the write


def write_all(
    changes: Sequence[Change],
    writer: SysctlWriter,
    last_step: Step | None = None,
) -> None:
    """Write and read back every change, then run ``last_step``; on any failure undo all.

    Raises WriteAborted after restoring (and verifying) every key already written,
    whatever the writer raised: an OSError with the kernel's errno, an encoding
    error, any other exception, or an interrupt (Ctrl-C) in the middle.
    """
    done: list[Change] = []
    for change in changes:
        try:
            writer.write(change.name, change.after)
            readback = writer.read(change.name)
        except (Exception, KeyboardInterrupt) as exc:
            reason, code = _describe(exc)
            raise WriteAborted(
                f"could not set {change.name} to {_shown(change.after)}: {reason}",
                code,
                len(done),
                _restore([*done, change], writer),  # the failed write may have landed
            ) from exc
        done.append(change)
        if not _same(change.name, readback, change.after):
            raise WriteAborted(
                f"{change.name} reads back {_shown(readback)!r} after writing "
                f"{_shown(change.after)}",
                None,
                len(done),
                _restore(done, writer),
            )
    if last_step is not None:
        label, step = last_step
        try:
            step()
        except (Exception, KeyboardInterrupt) as exc:
            reason, code = _describe(exc)
            raise WriteAborted(
                f"could not {label}: {reason}", code, len(done), _restore(done, writer)
            ) from exc


def _failure_error(failure: WriteAborted, store: StateStore) -> TcptuneError:
    if failure.unrestored:
        return WriteFailedError(
            f"{failure.reason}; RESTORE FAILED for {', '.join(failure.unrestored)}: the "
            f"previous values are saved in {store.state_path}; run `tcptune rollback`"
        )
    undone = f"restored and verified {failure.restored} key(s) already written; "
    message = f"{failure.reason}; {undone if failure.restored else ''}nothing was changed"
    if failure.errno in _PERMISSION_ERRNOS:
        return PermissionDeniedError(message)
    return WriteFailedError(message)


def _summary(changes: Sequence[Change]) -> str:
    return ", ".join(f"{c.name} {_shown(c.before)} -> {_shown(c.after)}" for c in changes)


def _record_history(
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


def _namespace_label(env: Environment, namespace: NamespaceIdentity) -> str:
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
    for record in reversed(stack):
        backup = record.dropin
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
        where = _namespace_label(env, namespace)
        if not changes and write_dropin is None:
            problems = [_claim(env, record_id)]
            problems.append(
                _record_history(
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
                plan, None, (), dropin, time.monotonic() - started, _present(problems)
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
            error = _failure_error(failure, env.store)
            problems = [] if failure.unrestored else [_drop_undone(env, record.id)]
            problems.append(
                _record_history(
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
            raise _with_problems(error, problems) from failure
        # Every key (and the drop-in) is written and verified: the apply stands. A record
        # left marked incomplete is undone by rollback the same way; it is reported.
        problems = [_mark_complete(env, record.id)]
        dropin_path = str(write_dropin.path) if write_dropin else None
        message = _summary(changes) or f"wrote {dropin_path}"
        problems.append(
            _record_history(
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
            plan, record.id, changes, dropin, time.monotonic() - started, _present(problems)
        )


def _present(problems: Sequence[str | None]) -> tuple[str, ...]:
    return tuple(problem for problem in problems if problem is not None)


def _with_problems(error: TcptuneError, problems: Sequence[str | None]) -> TcptuneError:
    """Return ``error`` with the records that also failed named at its end."""
    extra = _present(problems)
    if not extra:
        return error
    return type(error)(f"{error}; also: {'; '.join(extra)}", status=error.status)


def _state_problem(exc: Exception) -> str:
    return describe_os_error(exc) if isinstance(exc, OSError) else str(exc)


def _claim(env: Environment, record_id: int) -> str | None:
    """Keep ``record_id`` from being handed out again; return why it could not be kept."""
    try:
        env.store.claim_id(record_id)
    except (OSError, TcptuneError) as exc:
        return f"could not count id #{record_id} in {env.store.state_path}: {_state_problem(exc)}"
    return None


def _mark_complete(env: Environment, record_id: int) -> str | None:
    try:
        env.store.mark_complete(record_id)
    except (OSError, TcptuneError) as exc:
        return (
            f"apply #{record_id} stays marked incomplete in {env.store.state_path} "
            f"({_state_problem(exc)}); `tcptune rollback` still undoes it"
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
            f"({_state_problem(exc)}); a rollback of it finds nothing to restore"
        )
    return None


def _recorded_namespace(record: ApplyRecord) -> NamespaceIdentity:
    initial = record.initial_netns
    if initial is None and record.netns_inode is not None:  # a record from before the field
        initial = record.netns_inode == PROC_NET_INIT_INO
    return NamespaceIdentity(record.netns_inode, initial, record.netns_cookie, record.boot_id)


def _rollback_changes(record: ApplyRecord, writer: SysctlWriter) -> tuple[list[Change], list[str]]:
    """Return the writes that put back ``record``'s previous values, newest first, and notes."""
    changes, notes = [], []
    for change in reversed(record.changes):
        try:
            live = writer.read(change.name).strip()
        except Exception as exc:
            raise UnavailableError(
                f"cannot read {change.name}: {_describe(exc)[0]}; nothing was changed"
            ) from exc
        if _same(change.name, live, change.before):
            continue
        if not _same(change.name, live, change.after):
            notes.append(
                f"{change.name} was changed after apply #{record.id} (now {_shown(live)}, "
                f"tcptune set {_shown(change.after)}); restoring {_shown(change.before)}"
            )
        changes.append(Change(change.name, live, change.before))
    return changes, notes


def _rollback_steps(
    env: Environment,
) -> tuple[ApplyRecord, list[Change], list[str], str | None, Step | None]:
    """Return the newest undo record and what undoing it writes: keys, notes, drop-in step."""
    stack = env.store.undo_stack()
    if not stack:
        raise UnavailableError(
            f"nothing to roll back: no apply is recorded in {env.store.state_path} "
            "(see `tcptune history`)"
        )
    record = stack[-1]
    here = current_namespace(env.procfs, read_context(env.procfs))
    difference = namespace_difference(_recorded_namespace(record), here)
    if record.changes and difference is not None:
        raise UnavailableError(
            f"apply #{record.id} changed another network namespace: it {difference}. "
            "Its saved values belong to that namespace; roll back from inside it "
            f"(--netns/--pid), or, if it is gone, drop the record with "
            f"`tcptune rollback --forget {record.id}`; nothing was changed"
        )
    changes, notes = _rollback_changes(record, env.writer)
    dropin_action: str | None = None
    last_step: Step | None = None
    if record.dropin is not None:
        backup = record.dropin
        dropin_action, current = _dropin_rollback_action(backup)
        if dropin_action in ("restored", "removed"):
            notes += _hand_edit_notes(record, backup, current)
            last_step = (
                f"restore {backup.path}",
                lambda: sysctld.restore_dropin(Path(backup.path), backup.previous),
            )
    return record, changes, notes, dropin_action, last_step


def rollback_preview(env: Environment) -> RollbackResult:
    """Return what ``rollback`` would restore now, reading only (``rollback --dry-run``)."""
    record, changes, notes, dropin_action, _step = _rollback_steps(env)
    return RollbackResult(record, None, tuple(changes), dropin_action, tuple(notes))


def rollback(env: Environment, *, command: str) -> RollbackResult:
    """Undo the newest apply not yet rolled back, all or nothing, and verify it."""
    check_privilege(env.identity, command)
    with env.store.locked(env.lock_timeout):
        stack = env.store.undo_stack()
        if stack:
            check_writable(env.procfs, [c.name for c in stack[-1].changes])
        record, changes, notes, dropin_action, last_step = _rollback_steps(env)
        entry_id = env.store.next_id()
        where = _namespace_label(env, _recorded_namespace(record))
        try:
            write_all(changes, env.writer, last_step)
        except WriteAborted as failure:
            error = _failure_error(failure, env.store)
            problems = [_claim(env, entry_id)]
            problems.append(
                _record_history(
                    env,
                    entry_id,
                    "rollback",
                    "failed",
                    record.profile,
                    changes,
                    str(error),
                    netns=where,
                    undoes=record.id,
                )
            )
            raise _with_problems(error, problems) from failure
        problems = [_drop_restored(env, record.id, entry_id)]
        message = f"undid apply #{record.id}: {_summary(changes) or 'no key to restore'}"
        problems.append(
            _record_history(
                env,
                entry_id,
                "rollback",
                "rolled back",
                record.profile,
                changes,
                message,
                netns=where,
                dropin=record.dropin.path if record.dropin else None,
                undoes=record.id,
            )
        )
        return RollbackResult(
            record, entry_id, tuple(changes), dropin_action, tuple(notes), _present(problems)
        )


def _drop_restored(env: Environment, record_id: int, entry_id: int) -> str | None:
    try:
        env.store.drop(record_id, used=[entry_id])
    except (OSError, TcptuneError) as exc:
        return (
            f"apply #{record_id} stays on the undo stack in {env.store.state_path} "
            f"({_state_problem(exc)}); its keys are restored, so the next rollback finds "
            "nothing to write for it and removes it"
        )
    return None


def forget(env: Environment, record_id: int, *, command: str) -> ForgetResult:
    """Drop apply ``record_id`` from the undo stack without writing anything, and log it.

    The way out for a record whose namespace is gone (a container that exited):
    its saved values can never be restored, and it would block every older rollback.
    """
    check_privilege(env.identity, command)
    with env.store.locked(env.lock_timeout):
        stack = env.store.undo_stack()
        record = next((r for r in stack if r.id == record_id), None)
        if record is None:
            ids = ", ".join(f"#{r.id}" for r in stack) or "none"
            raise UnavailableError(
                f"no apply #{record_id} on the undo stack in {env.store.state_path} "
                f"(recorded: {ids}); nothing was changed"
            )
        entry_id = env.store.next_id()
        try:
            env.store.drop(record_id, used=[entry_id])
        except OSError as exc:
            raise WriteFailedError(
                f"cannot update {env.store.state_path}: {describe_os_error(exc)}; "
                "nothing was changed"
            ) from exc
        dropin = f"; {record.dropin.path} is left as it is" if record.dropin else ""
        message = (
            f"forgot apply #{record_id} without restoring anything: its saved values "
            f"({_summary(record.changes) or 'none'}) are discarded{dropin}"
        )
        where = _namespace_label(env, _recorded_namespace(record))
        problem = _record_history(
            env,
            entry_id,
            "forget",
            "forgotten",
            record.profile,
            record.changes,
            message,
            netns=where,
            undoes=record_id,
        )
        return ForgetResult(record, entry_id, _present([problem]))


def _dropin_rollback_action(backup: DropinBackup) -> tuple[str, str | None]:
    """Return what rollback does with the drop-in, and its current text (None: absent).

    A drop-in that cannot be read (EIO, EACCES) stops the rollback before any
    write: restoring the keys but not the file would leave boot re-applying them.
    """
    path = Path(backup.path)
    try:
        text = read_bounded(path, follow=False).decode("utf-8", "replace")
    except FileNotFoundError:
        return ("restored" if backup.previous is not None else "already gone"), None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "left alone: it is now a symbolic link, which tcptune did not write", None
        raise WriteFailedError(
            f"cannot read {path} to restore it: {describe_os_error(exc)}; nothing was changed"
        ) from exc
    if not sysctld.is_tcptune_file(text):
        return "left alone: someone replaced it with a file tcptune did not write", text
    return ("restored" if backup.previous is not None else "removed"), text


def _hand_edit_notes(record: ApplyRecord, backup: DropinBackup, current: str | None) -> list[str]:
    """Name the lines added to the drop-in after ``record`` wrote it, which a restore drops."""
    if backup.written is None or current is None:
        return []
    lines = sysctld.foreign_lines(current, backup.written, backup.previous or "")
    if not lines:
        return []
    shown = "; ".join(f"line {line.number}: {_shown(line.text)}" for line in lines)
    undo = (
        "removing it (there was no file before)"
        if backup.previous is None
        else "restoring the file as it was before"
    )
    return [
        f"{backup.path} has lines tcptune did not write, added after apply #{record.id}; "
        f"{undo} drops them, so add back any still wanted: {shown}"
    ]
