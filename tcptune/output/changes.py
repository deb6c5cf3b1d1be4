"""The applier's plans and records, verify and history, as text and JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tcptune import __version__
from tcptune.model.units import show_value
from tcptune.model.values import format_value
from tcptune.output.common import JSON_SCHEMA_VERSION, WIDTH, indent, iso_time, short_name, table
from tcptune.output.escape import terminal_safe

# --------------------------------------------------------------------------- apply, rollback,
# verify, history: the applier's plans and records as text and JSON.

if TYPE_CHECKING:
    from tcptune.apply.applier import ApplyResult
    from tcptune.apply.history import HistoryEntry, HistoryLog
    from tcptune.apply.plan import Plan, PlanItem
    from tcptune.apply.reach import PlanReach
    from tcptune.apply.records import Change
    from tcptune.apply.rollback import ForgetResult, RollbackResult
    from tcptune.apply.sysctld import DropinPlan
    from tcptune.apply.verify import VerifyReport
    from tcptune.model.snapshot import Context
    from tcptune.model.values import SysctlValue
    from tcptune.profiles.model import Target


def _wrapped(text: str, first: str, rest: str | None = None) -> list[str]:
    import textwrap

    indent = rest if rest is not None else " " * len(first)
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=first,
        subsequent_indent=indent,
        break_long_words=False,  # never split a path or a key
        break_on_hyphens=False,
    )


def _json_value(value: SysctlValue | None) -> object:
    return list(value) if isinstance(value, tuple) else value


def expected_json(goal: Target | None) -> dict[str, Any] | None:
    """Return a target typed for filtering: {"op": "==" | ">=" | "<=", "value": V} or a range.

    ``target`` stays the text ('>= 8192'); this is the same target as data, so that
    ``jq '.items[] | select(.live == .expected.value)'`` compares like with like.
    """
    if goal is None:
        return None
    if goal.value is not None:
        return {"op": "==", "value": _json_value(goal.value)}
    if goal.minimum is not None and goal.maximum is not None:
        return {"op": "between", "min": goal.minimum, "max": goal.maximum}
    if goal.minimum is not None:
        return {"op": ">=", "value": goal.minimum}
    return {"op": "<=", "value": goal.maximum}


def _context_json(context: Context) -> dict[str, Any]:
    return {
        "kernel_release": context.kernel_release,
        "netns_inode": context.netns_inode,
        "initial_netns": context.initial_netns,
        "netns": context.netns_name,
    }


def namespace_note(context: Context) -> str | None:
    """Return what an apply can reach from this network namespace, or None on the host."""
    if context.initial_netns is True:
        return None
    if context.initial_netns is None:
        return (
            "Cannot tell whether this is the host's initial network namespace: per-namespace "
            "keys change only the current namespace."
        )
    return (
        f"Not the host's initial network namespace (net:[{context.netns_inode}]): "
        "per-namespace keys change only this namespace, and host-wide keys cannot be set "
        "from here."
    )


def _where_line(context: Context) -> str:
    where = {
        True: "initial network namespace",
        False: "container network namespace",
        None: "network namespace unknown",
    }[context.initial_netns]
    return f"kernel {context.kernel_release or '?'} · {where} net:[{context.netns_inode}]"


def _value_shown(item: PlanItem, value: SysctlValue | None) -> str:
    if value is None:
        return "?"
    if item.spec is not None:
        return show_value(value, item.spec.unit, item.spec.modes)
    return format_value(value) or '""'


def _plan_sections(plan: Plan, changed_title: str) -> list[str]:
    from tcptune.apply.plan import Action

    lines: list[str] = []
    changes = plan.having(Action.CHANGE)
    if changes:
        lines.append(f"{changed_title} ({len(changes)})")
    for item in changes:
        now, new = _value_shown(item, item.current), _value_shown(item, item.desired)
        lines += _wrapped(f"{short_name(item.name)}: {now} -> {new}", "  ", "      ")
        lines += _wrapped(item.why, "      why:  ")
        lines += _wrapped(item.risk, "      risk: ")
        if item.scope_note:
            lines += _wrapped(item.scope_note, "      scope: ")
    kept = plan.having(Action.KEEP)
    if kept:
        lines.append(f"Already right ({len(kept)})")
    for item in kept:
        now = _value_shown(item, item.current)
        lines += _wrapped(f"{short_name(item.name)}: {now} (target {item.target})", "  ", "      ")
    for action, title in (
        (Action.SKIP, "Skipped"),
        (Action.BLOCKED, "Blocked: these stop the apply before any write"),
    ):
        items = plan.having(action)
        if items:
            lines.append(f"{title} ({len(items)})")
        for item in items:
            lines += _wrapped(f"{short_name(item.name)}: {item.reason}", "  ", "      ")
    return lines


def _dropin_lines(dropin: DropinPlan, done: bool) -> list[str]:
    verbs = {
        "create": ("would create", "created"),
        "replace": ("would replace", "replaced"),
        "unchanged": ("would leave unchanged", "left unchanged"),
    }[dropin.action]
    lines = [f"Persist: {verbs[1] if done else verbs[0]} {dropin.path}"]
    for warning in dropin.warnings:
        lines += _wrapped(warning, "  warning: ")
    if not dropin.warnings:
        lines.append("  no later boot-time file overrides these keys")
    dropped = dropped_lines_note(dropin, done)
    if dropped:
        lines += _wrapped(dropped, "  note: ")
        lines += [f"    line {line.number}: {_printable(line.text)}" for line in dropin.foreign]
    for note in dropin.notes:
        lines += _wrapped(note, "  note: ")
    return lines


def _printable(text: str) -> str:
    return text if text.isprintable() else ascii(text)


def dropped_lines_note(dropin: DropinPlan, done: bool) -> str | None:
    """Return what replacing the drop-in loses: lines tcptune did not write, or None."""
    if not dropin.foreign:
        return None
    count = len(dropin.foreign)
    verb = "were dropped" if done else "will be dropped"
    if dropin.attributed:
        what = f"{count} line(s) in {dropin.path} were not written by tcptune and {verb}"
    else:
        what = (
            f"tcptune has no record of what it last wrote in {dropin.path}, so these "
            f"{count} line(s), which the new drop-in does not keep, may be hand edits; they {verb}"
        )
    undo = "`tcptune rollback` restores" if done else "A rollback of this apply restores"
    return f"{what}. {undo} the file as it was, with them:"


def reach_lines(reach: PlanReach | None) -> list[str]:
    """Return what the plan's keepalive and fin-timeout changes reach among live sockets."""
    if reach is None:
        return []
    if reach.unavailable:
        return _wrapped(
            f"Reach: unknown: {reach.unavailable}; a keepalive sysctl reaches only "
            "SO_KEEPALIVE sockets without their own TCP_KEEP* values",
            "",
        )
    lines = ["Reach among live sockets (read from the kernel)"]
    for item in reach.items:
        text = (
            f"{short_name(item.name)}: reaches {item.reached} of {item.considered} "
            f"{item.what}; {item.overriding} set their own"
        )
        lines += _wrapped(text, "  ", "      ")
    return lines


def reach_dict(reach: PlanReach | None) -> dict[str, Any] | None:
    """Return the reach as JSON-ready data."""
    if reach is None:
        return None
    return {
        "available": reach.unavailable is None,
        "reason": reach.unavailable,
        "items": [
            {
                "name": item.name,
                "reached": item.reached,
                "overriding": item.overriding,
                "considered": item.considered,
                "what": item.what,
            }
            for item in reach.items
        ],
    }


@terminal_safe
def plan_text(
    plan: Plan, dropin: DropinPlan | None, apply_command: str, reach: PlanReach | None = None
) -> str:
    """Return the dry-run plan: what would change and why, and how to apply it."""
    from tcptune.apply.plan import Action

    lines = [f"tcptune apply {plan.profile}: plan (dry run)", _where_line(plan.context)]
    note = namespace_note(plan.context)
    if note:
        lines += _wrapped(note, "")
    lines += ["", *_plan_sections(plan, "Would change")]
    lines += reach_lines(reach)
    if dropin is not None:
        lines += _dropin_lines(dropin, done=False)
    lines.append("")
    if plan.having(Action.BLOCKED):
        lines.append("Nothing was written: the apply is blocked (see above).")
    elif not plan.changes and (dropin is None or dropin.action == "unchanged"):
        lines.append("Nothing to change: the profile is already in place. Nothing was written.")
    else:
        lines += ["Nothing was written (dry run). To apply:", f"  {apply_command}"]
    return "\n".join(lines) + "\n"


@terminal_safe
def applied_text(result: ApplyResult, rollback_command: str, reach: PlanReach | None = None) -> str:
    """Return what an apply did: each key written and verified, the drop-in, how to undo."""
    plan = result.plan
    if result.record_id is None:
        head = f"tcptune apply {plan.profile}: already in place; nothing was written"
    else:
        head = f"tcptune apply {plan.profile}: applied as #{result.record_id}"
        head += f" in {result.seconds * 1000:.0f} ms"
    lines = [head, _where_line(plan.context)]
    note = namespace_note(plan.context)
    if note:
        lines += _wrapped(note, "")
    lines += ["", *_plan_sections(plan, "Changed, each read back and verified")]
    lines += reach_lines(reach)
    if result.dropin is not None:
        lines += _dropin_lines(result.dropin, done=True)
    if result.record_id is not None:
        lines += ["", f"Undo with: {rollback_command}"]
    return "\n".join(lines) + "\n"


def plan_dict(
    plan: Plan,
    dropin: DropinPlan | None,
    apply_command: str | None,
    result: ApplyResult | None = None,
    reach: PlanReach | None = None,
) -> dict[str, Any]:
    """Return a plan (dry run) or an apply's result as JSON-ready data (schema 1)."""
    return {
        "schema": JSON_SCHEMA_VERSION,
        "tool": {"name": "tcptune", "version": __version__},
        "mode": "dry-run" if result is None else "applied",
        "profile": plan.profile,
        "profile_path": plan.profile_path,
        "context": _context_json(plan.context),
        "namespace_note": namespace_note(plan.context),
        "items": [
            {
                "name": item.name,
                "action": item.action.value,
                "current": _json_value(item.current),
                "target": item.target,
                "expected": expected_json(item.goal),
                "desired": _json_value(item.desired),
                "why": item.why,
                "risk": item.risk,
                "reason": item.reason,
                "scope_note": item.scope_note,
            }
            for item in plan.items
        ],
        "persist": None if dropin is None else _persist_json(dropin),
        "reach": reach_dict(reach),
        "apply_command": apply_command,
        "record": None if result is None else result.record_id,
        "written": [] if result is None else _changes_json(result.written),
        "seconds": None if result is None else round(result.seconds, 4),
        "problems": [] if result is None else list(result.problems),
    }


def _persist_json(dropin: DropinPlan) -> dict[str, Any]:
    return {
        "path": str(dropin.path),
        "action": dropin.action,
        "warnings": list(dropin.warnings),
        "notes": list(dropin.notes),
        # Lines of the current drop-in the new one drops and tcptune did not write
        # ("attributed": false: no record of what it wrote, so maybe some of its own).
        "dropped_lines": [{"line": x.number, "text": x.text} for x in dropin.foreign],
        "dropped_lines_attributed": dropin.attributed,
    }


def _change_text(change: Change, short: bool = False) -> str:
    before = " ".join(change.before.split()) or '""'
    after = " ".join(change.after.split()) or '""'
    return f"{short_name(change.name) if short else change.name}: {before} -> {after}"


def _changes_json(changes: Sequence[Change]) -> list[dict[str, str]]:
    return [{"name": c.name, "before": c.before, "after": c.after} for c in changes]


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
        lines += [f"  would set {_change_text(c, short=True)}" for c in result.restored]
    else:
        lines += [f"  {_change_text(c, short=True)} (verified)" for c in result.restored]
    if not result.restored:
        lines.append(f"  every key already {'has' if dry_run else 'had'} its previous value")
    for note in result.notes:
        lines += _wrapped(note, "  note: ")
    if record.dropin is not None:
        action = result.dropin_action
        shown = f"would be {action}" if dry_run and action in ("restored", "removed") else action
        lines += _wrapped(f"{record.dropin.path}: {shown}", "  drop-in ")
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
        "restored": _changes_json(result.restored),
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
    lines += [f"  {_change_text(c, short=True)} (not restored)" for c in record.changes]
    if record.dropin is not None:
        lines += _wrapped(f"{record.dropin.path} is left as it is", "  drop-in ")
    lines.append(f"Recorded as #{result.entry_id} in the history.")
    return "\n".join(lines) + "\n"


def forget_dict(result: ForgetResult) -> dict[str, Any]:
    """Return a `rollback --forget` as JSON-ready data (schema 1)."""
    return {
        "schema": JSON_SCHEMA_VERSION,
        "forgot": result.record.id,
        "profile": result.record.profile,
        "entry": result.entry_id,
        "discarded": _changes_json(result.record.changes),
        "problems": list(result.problems),
    }


@terminal_safe
def verify_text(report: VerifyReport) -> str:
    """Return the live drift and, per key, the boot-time file that sets it."""
    from tcptune.apply.plan import Action

    plan = report.plan
    drifted = len(report.drifted)
    verdict = f"{drifted} of {len(plan.items)} keys drifted" if drifted else "no drift"
    lines = [f"tcptune verify {plan.profile}: {verdict}", _where_line(plan.context)]
    state = {
        Action.KEEP: "ok",
        Action.CHANGE: "DRIFT",
        Action.SKIP: "skipped",
        Action.BLOCKED: "DRIFT",
    }
    rows = [
        (
            short_name(i.name),
            _value_shown(i, i.current) if i.current is not None else "-",
            i.target,
            state[i.action],
        )
        for i in plan.items
    ]
    lines += ["", indent(table(rows, ("setting", "live", "target", "state")))]
    for item in plan.items:
        if item.reason:
            lines += _wrapped(f"{short_name(item.name)}: {item.reason}", "  ", "    ")
    lines += ["", "At boot (sysctl.d files in name order, /etc/sysctl.conf last)"]
    for item in plan.items:
        setting = report.boot.get(item.name)
        if setting is None:
            text = f"{short_name(item.name)}: no file sets it; the kernel default applies"
        else:
            text = f"{short_name(item.name)}: {setting.value} from {setting.where()}"
            if not report.boot_agrees.get(item.name, False):
                text += " (misses the target: a reboot brings drift back)"
        lines += _wrapped(text, "  ", "    ")
    for problem in report.problems:
        lines += _wrapped(problem, "  cannot read: ")
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
                "live": _json_value(item.current),
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
        "context": _context_json(report.plan.context),
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
        lines += [f"    {_change_text(c)}" for c in entry.changes]
        if entry.dropin:
            lines.append(f"    drop-in {entry.dropin}")
        if entry.outcome in ("failed", "forgotten"):
            lines += _wrapped(entry.message, "    ")
    if problems:
        lines.append("Unreadable history lines (skipped; the entries above are all the others):")
        lines += [line for problem in problems for line in _wrapped(problem, "    ")]
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
                "changes": _changes_json(e.changes),
                "dropin": e.dropin,
                "message": e.message,
                "undoes": e.undoes,
                "netns": e.netns,
            }
            for e in entries
        ],
    }
