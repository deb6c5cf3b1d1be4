"""Plans and their application (apply, dry run, --persist drop-in, reach) as text and JSON.

Also the helpers the change records in output/records.py share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tcptune import __version__
from tcptune.model.units import show_value
from tcptune.model.values import format_value
from tcptune.output.common import JSON_SCHEMA_VERSION, WIDTH, short_name
from tcptune.output.escape import terminal_safe

# --------------------------------------------------------------------------- apply, rollback,
# verify, history: the applier's plans and records as text and JSON.

if TYPE_CHECKING:
    from tcptune.apply.applier import ApplyResult
    from tcptune.apply.plan import Plan, PlanItem
    from tcptune.apply.reach import PlanReach
    from tcptune.apply.records import Change
    from tcptune.apply.sysctld import DropinPlan
    from tcptune.model.snapshot import Context
    from tcptune.model.values import SysctlValue
    from tcptune.profiles.model import Target


def wrapped(text: str, first: str, rest: str | None = None) -> list[str]:
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


def json_value(value: SysctlValue | None) -> object:
    return list(value) if isinstance(value, tuple) else value


def expected_json(goal: Target | None) -> dict[str, Any] | None:
    """Return a target typed for filtering: {"op": "==" | ">=" | "<=", "value": V} or a range.

    ``target`` stays the text ('>= 8192'); this is the same target as data, so that
    ``jq '.items[] | select(.live == .expected.value)'`` compares like with like.
    """
    if goal is None:
        return None
    if goal.value is not None:
        return {"op": "==", "value": json_value(goal.value)}
    if goal.minimum is not None and goal.maximum is not None:
        return {"op": "between", "min": goal.minimum, "max": goal.maximum}
    if goal.minimum is not None:
        return {"op": ">=", "value": goal.minimum}
    return {"op": "<=", "value": goal.maximum}


def context_json(context: Context) -> dict[str, Any]:
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


def where_line(context: Context) -> str:
    where = {
        True: "initial network namespace",
        False: "container network namespace",
        None: "network namespace unknown",
    }[context.initial_netns]
    return f"kernel {context.kernel_release or '?'} · {where} net:[{context.netns_inode}]"


def value_shown(item: PlanItem, value: SysctlValue | None) -> str:
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
        now, new = value_shown(item, item.current), value_shown(item, item.desired)
        lines += wrapped(f"{short_name(item.name)}: {now} -> {new}", "  ", "      ")
        lines += wrapped(item.why, "      why:  ")
        lines += wrapped(item.risk, "      risk: ")
        if item.scope_note:
            lines += wrapped(item.scope_note, "      scope: ")
    kept = plan.having(Action.KEEP)
    if kept:
        lines.append(f"Already right ({len(kept)})")
    for item in kept:
        now = value_shown(item, item.current)
        lines += wrapped(f"{short_name(item.name)}: {now} (target {item.target})", "  ", "      ")
    for action, title in (
        (Action.SKIP, "Skipped"),
        (Action.BLOCKED, "Blocked: these stop the apply before any write"),
    ):
        items = plan.having(action)
        if items:
            lines.append(f"{title} ({len(items)})")
        for item in items:
            lines += wrapped(f"{short_name(item.name)}: {item.reason}", "  ", "      ")
    return lines


def _dropin_lines(dropin: DropinPlan, done: bool) -> list[str]:
    verbs = {
        "create": ("would create", "created"),
        "replace": ("would replace", "replaced"),
        "unchanged": ("would leave unchanged", "left unchanged"),
    }[dropin.action]
    lines = [f"Persist: {verbs[1] if done else verbs[0]} {dropin.path}"]
    for warning in dropin.warnings:
        lines += wrapped(warning, "  warning: ")
    if not dropin.warnings:
        lines.append("  no later boot-time file overrides these keys")
    dropped = dropped_lines_note(dropin, done)
    if dropped:
        lines += wrapped(dropped, "  note: ")
        lines += [f"    line {line.number}: {_printable(line.text)}" for line in dropin.foreign]
    for note in dropin.notes:
        lines += wrapped(note, "  note: ")
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
        return wrapped(
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
        lines += wrapped(text, "  ", "      ")
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

    lines = [f"tcptune apply {plan.profile}: plan (dry run)", where_line(plan.context)]
    note = namespace_note(plan.context)
    if note:
        lines += wrapped(note, "")
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
    lines = [head, where_line(plan.context)]
    note = namespace_note(plan.context)
    if note:
        lines += wrapped(note, "")
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
        "context": context_json(plan.context),
        "namespace_note": namespace_note(plan.context),
        "items": [
            {
                "name": item.name,
                "action": item.action.value,
                "current": json_value(item.current),
                "target": item.target,
                "expected": expected_json(item.goal),
                "desired": json_value(item.desired),
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
        "written": [] if result is None else changes_json(result.written),
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


def change_text(change: Change, short: bool = False) -> str:
    before = " ".join(change.before.split()) or '""'
    after = " ".join(change.after.split()) or '""'
    return f"{short_name(change.name) if short else change.name}: {before} -> {after}"


def changes_json(changes: Sequence[Change]) -> list[dict[str, str]]:
    return [{"name": c.name, "before": c.before, "after": c.after} for c in changes]
