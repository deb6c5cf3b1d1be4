"""The applier's records: rollback, forget, verify and history, as text and JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tcptune.output.common import JSON_SCHEMA_VERSION, indent, iso_time, short_name, table
from tcptune.output.escape import terminal_safe
from tcptune.output.plan import (
    change_text,
    changes_json,
    context_json,
    expected_json,
    json_value,
    value_shown,
    where_line,
    wrapped,
)

if TYPE_CHECKING:
    from tcptune.apply.history import HistoryEntry, HistoryLog
    from tcptune.apply.rollback import ForgetResult, RollbackResult
    from tcptune.apply.verify import VerifyReport


@terminal_safe
def rollback_text(result: RollbackResult) -> str:
    """Return what a rollback restored and verified, or (a dry run) would restore."""
    record = result.record
    dry_run = result.entry_id is None
    verb = "would undo" if dry_run else "undid"
    lines = [
        f"tcptune rollback: {verb} apply #{record.id} of {record.profile}",
        f"  applied {iso_time(record.time)} by {record.who.describe()}",
    ]
    if dry_run:
        lines += [f"  would set {change_text(c, short=True)}" for c in result.restored]
    else:
        lines += [f"  {change_text(c, short=True)} (verified)" for c in result.restored]
    if not result.restored:
        lines.append(f"  every key already {'has' if dry_run else 'had'} its previous value")
    for note in result.notes:
        lines += wrapped(note, "  note: ")
    if record.dropin is not None:
        action = result.dropin_action
        shown = f"would be {action}" if dry_run and action in ("restored", "removed") else action
        lines += wrapped(f"{record.dropin.path}: {shown}", "  drop-in ")
    if dry_run:
        lines.append("Nothing was written (--dry-run).")
    else:
        lines.append(f"Recorded as #{result.entry_id} in the history.")
    return "\n".join(lines) + "\n"


def rollback_dict(result: RollbackResult) -> dict[str, Any]:
    """Return a rollback as JSON-ready data (schema 1)."""
    record = result.record
    return {
        "schema": JSON_SCHEMA_VERSION,
        "undid": record.id,  # with dry_run: the apply it would undo
        "dry_run": result.entry_id is None,
        "profile": record.profile,
        "entry": result.entry_id,
        "restored": changes_json(result.restored),
        "dropin": None
        if record.dropin is None
        else {"path": record.dropin.path, "action": result.dropin_action},
        "notes": list(result.notes),
        "problems": list(result.problems),
    }


@terminal_safe
def forget_text(result: ForgetResult) -> str:
    """Return which record `rollback --forget` dropped, and that nothing was restored."""
    record = result.record
    lines = [
        f"tcptune rollback --forget: dropped apply #{record.id} of {record.profile} "
        "from the undo stack; nothing was written",
        f"  applied {iso_time(record.time)} by {record.who.describe()}",
    ]
    lines += [f"  {change_text(c, short=True)} (not restored)" for c in record.changes]
    if record.dropin is not None:
        lines += wrapped(f"{record.dropin.path} is left as it is", "  drop-in ")
    lines.append(f"Recorded as #{result.entry_id} in the history.")
    return "\n".join(lines) + "\n"


def forget_dict(result: ForgetResult) -> dict[str, Any]:
    """Return a `rollback --forget` as JSON-ready data (schema 1)."""
    return {
        "schema": JSON_SCHEMA_VERSION,
        "forgot": result.record.id,
        "profile": result.record.profile,
        "entry": result.entry_id,
        "discarded": changes_json(result.record.changes),
        "problems": list(result.problems),
    }


@terminal_safe
def verify_text(report: VerifyReport) -> str:
    """Return the live drift and, per key, the boot-time file that sets it."""
    from tcptune.apply.plan import Action

    plan = report.plan
    drifted = len(report.drifted)
    verdict = f"{drifted} of {len(plan.items)} keys drifted" if drifted else "no drift"
    lines = [f"tcptune verify {plan.profile}: {verdict}", where_line(plan.context)]
    state = {
        Action.KEEP: "ok",
        Action.CHANGE: "DRIFT",
        Action.SKIP: "skipped",
        Action.BLOCKED: "DRIFT",
    }
    rows = [
        (
            short_name(i.name),
            value_shown(i, i.current) if i.current is not None else "-",
            i.target,
            state[i.action],
        )
        for i in plan.items
    ]
    lines += ["", indent(table(rows, ("setting", "live", "target", "state")))]
    for item in plan.items:
        if item.reason:
            lines += wrapped(f"{short_name(item.name)}: {item.reason}", "  ", "    ")
    lines += ["", "At boot (sysctl.d files in name order, /etc/sysctl.conf last)"]
    for item in plan.items:
        setting = report.boot.get(item.name)
        if setting is None:
            text = f"{short_name(item.name)}: no file sets it; the kernel default applies"
        else:
            text = f"{short_name(item.name)}: {setting.value} from {setting.where()}"
            if not report.boot_agrees.get(item.name, False):
                text += " (misses the target: a reboot brings drift back)"
        lines += wrapped(text, "  ", "    ")
    for problem in report.problems:
        lines += wrapped(problem, "  cannot read: ")
    return "\n".join(lines) + "\n"


def verify_dict(report: VerifyReport) -> dict[str, Any]:
    """Return a verify report as JSON-ready data (schema 1)."""
    from tcptune.apply.plan import Action

    state = {Action.KEEP: "ok", Action.CHANGE: "drift", Action.SKIP: "skipped"}
    items = []
    for item in report.plan.items:
        boot = report.boot.get(item.name)
        items.append(
            {
                "name": item.name,
                "state": state.get(item.action, "missing"),
                "live": json_value(item.current),
                "target": item.target,
                "expected": expected_json(item.goal),
                "reason": item.reason,
                "boot": None
                if boot is None
                else {
                    "file": str(boot.file),
                    "line": boot.line,
                    "value": boot.value,
                    "meets_target": report.boot_agrees.get(item.name, False),
                },
            }
        )
    return {
        "schema": JSON_SCHEMA_VERSION,
        "profile": report.plan.profile,
        "drifted": bool(report.drifted),
        "context": context_json(report.plan.context),
        "items": items,
        "problems": list(report.problems),
    }


@terminal_safe
def history_text(entries: Sequence[HistoryEntry], log: HistoryLog | None = None) -> str:
    """Return past applies and rollbacks, oldest first, then any line that could not be read."""
    problems = list(log.problems) if log is not None else []
    if not entries and not problems:
        return "No apply or rollback recorded yet.\n"
    lines = []
    for entry in entries:
        what = f"{entry.action} {entry.outcome}"
        if entry.undoes is not None:
            what += f" (undid #{entry.undoes})"
        lines.append(f"#{entry.id}  {iso_time(entry.time)}  {what}  profile {entry.profile}")
        lines.append(f"    by {entry.who.describe()}")
        if entry.netns:
            lines.append(f"    in {entry.netns}")
        lines += [f"    {change_text(c)}" for c in entry.changes]
        if entry.dropin:
            lines.append(f"    drop-in {entry.dropin}")
        if entry.outcome in ("failed", "forgotten"):
            lines += wrapped(entry.message, "    ")
    if problems:
        lines.append("Unreadable history lines (skipped; the entries above are all the others):")
        lines += [line for problem in problems for line in wrapped(problem, "    ")]
    return "\n".join(lines) + "\n"


def history_dict(entries: Sequence[HistoryEntry], log: HistoryLog | None = None) -> dict[str, Any]:
    """Return the history as JSON-ready data (schema 1), with any unreadable lines."""
    return {
        "schema": JSON_SCHEMA_VERSION,
        "problems": list(log.problems) if log is not None else [],
        "entries": [
            {
                "id": e.id,
                "time": iso_time(e.time),
                "action": e.action,
                "outcome": e.outcome,
                "profile": e.profile,
                "who": {"uid": e.who.uid, "user": e.who.user, "sudo_user": e.who.sudo_user},
                "changes": changes_json(e.changes),
                "dropin": e.dropin,
                "message": e.message,
                "undoes": e.undoes,
                "netns": e.netns,
            }
            for e in entries
        ],
    }
