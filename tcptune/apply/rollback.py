"""Roll the last apply back all or nothing, or forget a record whose namespace is gone."""

from __future__ import annotations

import errno
from pathlib import Path

from tcptune.apply import sysctld
from tcptune.apply.applier import (
    Environment,
    claim,
    namespace_label,
    present,
    record_history,
    state_problem,
    summary,
    with_problems,
)
from tcptune.apply.records import ApplyRecord, Change, DropinBackup
from tcptune.apply.writer import (
    Step,
    SysctlWriter,
    WriteAborted,
    check_privilege,
    check_writable,
    describe,
    failure_error,
    same,
    shown,
    write_all,
)
from tcptune.exitcodes import ExitStatus, TcptuneError, UnavailableError, WriteFailedError
from tcptune.inspect.inspector import PROC_NET_INIT_INO, read_context
from tcptune.inspect.nsidentity import NamespaceIdentity, current_namespace, namespace_difference
from tcptune.inspect.procfs import describe_os_error, read_bounded
from tcptune.model.record import record


@record
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


@record
class ForgetResult:
    """A record dropped from the undo stack by `rollback --forget`, without any write."""

    record: ApplyRecord
    entry_id: int
    problems: tuple[str, ...] = ()

    @property
    def status(self) -> ExitStatus:
        """Return OK, or UNRECORDED when the history line could not be written."""
        return ExitStatus.UNRECORDED if self.problems else ExitStatus.OK


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
                f"cannot read {change.name}: {describe(exc)[0]}; nothing was changed"
            ) from exc
        if same(change.name, live, change.before):
            continue
        if not same(change.name, live, change.after):
            notes.append(
                f"{change.name} was changed after apply #{record.id} (now {shown(live)}, "
                f"tcptune set {shown(change.after)}); restoring {shown(change.before)}"
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
        where = namespace_label(env, _recorded_namespace(record))
        try:
            write_all(changes, env.writer, last_step)
        except WriteAborted as failure:
            error = failure_error(failure, env.store)
            problems = [claim(env, entry_id)]
            problems.append(
                record_history(
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
            raise with_problems(error, problems) from failure
        problems = [_drop_restored(env, record.id, entry_id)]
        message = f"undid apply #{record.id}: {summary(changes) or 'no key to restore'}"
        problems.append(
            record_history(
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
            record, entry_id, tuple(changes), dropin_action, tuple(notes), present(problems)
        )


def _drop_restored(env: Environment, record_id: int, entry_id: int) -> str | None:
    try:
        env.store.drop(record_id, used=[entry_id])
    except (OSError, TcptuneError) as exc:
        return (
            f"apply #{record_id} stays on the undo stack in {env.store.state_path} "
            f"({state_problem(exc)}); its keys are restored, so the next rollback finds "
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
            f"({summary(record.changes) or 'none'}) are discarded{dropin}"
        )
        where = namespace_label(env, _recorded_namespace(record))
        problem = record_history(
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
        return ForgetResult(record, entry_id, present([problem]))


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
    added = "; ".join(f"line {line.number}: {shown(line.text)}" for line in lines)
    undo = (
        "removing it (there was no file before)"
        if backup.previous is None
        else "restoring the file as it was before"
    )
    return [
        f"{backup.path} has lines tcptune did not write, added after apply #{record.id}; "
        f"{undo} drops them, so add back any still wanted: {added}"
    ]
