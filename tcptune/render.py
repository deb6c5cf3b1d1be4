"""Turn snapshots and findings into text, JSON and metrics: every output format lives here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tcptune import __version__
from tcptune.findings import Finding, Severity
from tcptune.snapshot import (
    ReadStatus,
    Snapshot,
    SocketCounts,
    keepalive_detection_seconds,
)
from tcptune.tcpstates import TcpState
from tcptune.units import show_value, value_with_seconds

if TYPE_CHECKING:
    from tcptune.profiles import Profile, Target

JSON_SCHEMA_VERSION = 1
WIDTH = 80

NOTABLE_SOCKSTAT = ("inuse", "orphan", "tw", "alloc")
NOTABLE_TCP = ("CurrEstab", "ActiveOpens", "PassiveOpens", "EstabResets", "AttemptFails")
NOTABLE_TCP_EXT = (
    "ListenOverflows",
    "ListenDrops",
    "TCPAbortOnData",
    "TCPAbortOnClose",
    "TCPAbortOnLinger",
    "TCPAbortOnTimeout",
    "TCPAbortOnMemory",
    "TCPTimeWaitOverflow",
    "TW",
    "TWKilled",
    "TWRecycled",
)


def _short(name: str) -> str:
    return name.removeprefix("net.ipv4.")


def _iso(timestamp: float) -> str:
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- JSON


def _sockets_dict(sockets: SocketCounts) -> dict[str, Any]:
    states = {
        state.label: {
            "ipv4": sockets.ipv4.get(state, 0),
            "ipv6": sockets.ipv6.get(state, 0),
            "total": sockets.total(state),
        }
        for state in TcpState
    }
    result: dict[str, Any] = {
        "source": sockets.source,
        "notes": list(sockets.notes),
        "total": sockets.all_sockets,
        "states": states,
    }
    if sockets.details is not None:
        details = sockets.details
        result["details"] = {
            "established_keepalive_armed": details.established_keepalive,
            "fin_wait2_orphaned": details.fin_wait2_orphaned,
            "fin_wait2_held": details.fin_wait2_held,
            "close_wait": details.close_wait,
            "listeners": [
                {
                    "local": str(item.local),
                    "queued": item.queued,
                    "backlog": item.backlog,
                    "inode": item.inode,
                    "uid": item.uid,
                }
                for item in details.listeners
            ],
        }
    return result


def audit_dict(
    snapshot: Snapshot, findings: Sequence[Finding] = (), profile: str | None = None
) -> dict[str, Any]:
    """Return the audit as the versioned JSON document README.md documents (schema 1)."""
    context = snapshot.context
    return {
        "schema": JSON_SCHEMA_VERSION,
        "tool": {"name": "tcptune", "version": __version__},
        "taken_at": _iso(snapshot.taken_at),
        "context": {
            "kernel_release": context.kernel_release,
            "netns_inode": context.netns_inode,
            "initial_netns": context.initial_netns,
            "netns": context.netns_name,
        },
        "complete": snapshot.complete,
        "problems": [{"source": p.source, "message": p.message} for p in snapshot.problems],
        "sysctls": {
            name: {
                "status": reading.status.value,
                "value": list(reading.value) if isinstance(reading.value, tuple) else reading.value,
                "unit": reading.spec.unit.value,
                "scope": "host" if reading.spec.scope.name == "HOST" else "netns",
                "reason": reading.reason,
            }
            for name, reading in snapshot.sysctls.items()
        },
        "keepalive": {"detection_seconds": keepalive_detection_seconds(snapshot)},
        "sockets": _sockets_dict(snapshot.sockets) if snapshot.sockets else None,
        "counters": {
            "sockstat": {
                k: dict(v) for k, v in snapshot.counters.sockstat.items() if k in ("TCP", "TCP6")
            },
            "tcp": dict(snapshot.counters.tcp),
            "tcp_ext": dict(snapshot.counters.tcp_ext),
        },
        "profile": profile,
        "findings": [finding_dict(f) for f in findings],
    }


def finding_dict(finding: Finding) -> dict[str, Any]:
    """Return one finding as JSON-ready data."""
    return {
        "id": finding.id,
        "severity": finding.severity.label,
        "title": finding.title,
        "evidence": list(finding.evidence),
        "explanation": finding.explanation,
        "recommendation": finding.recommendation,
        "references": list(finding.references),
        "data": dict(finding.data),
    }


# --------------------------------------------------------------------------- text


def _table(
    rows: Sequence[Sequence[object]], headers: Sequence[str], align: Sequence[str] | None = None
) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="simple", colalign=align, disable_numparse=True)


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def _context_line(snapshot: Snapshot) -> str:
    context = snapshot.context
    where = {
        True: "initial network namespace",
        False: "container network namespace",
        None: "network namespace unknown",
    }[context.initial_netns]
    if context.netns_name:
        where = context.netns_name
    source = snapshot.sockets.source if snapshot.sockets else "unavailable"
    return f"kernel {context.kernel_release or '?'} · {where} · sockets via {source}"


def settings_text(snapshot: Snapshot) -> str:
    """Return the settings table: each sysctl in human units, or why it is missing."""
    rows = []
    for name, reading in snapshot.sysctls.items():
        if reading.status is ReadStatus.OK and reading.value is not None:
            shown = show_value(reading.value, reading.spec.unit, reading.spec.modes)
        else:
            shown = f"{reading.status.value}"
            if reading.spec.removed_in:
                shown = f"absent (removed in {reading.spec.removed_in})"
        rows.append((_short(name), shown))
    return _table(rows, ("setting", "value"))


def keepalive_text(snapshot: Snapshot) -> str:
    """Return the dead-peer detection sentence for SO_KEEPALIVE sockets."""
    total = keepalive_detection_seconds(snapshot)
    if total is None:
        return "Keepalive: cannot compute dead-peer detection (a keepalive sysctl is unreadable)."
    idle = snapshot.value("net.ipv4.tcp_keepalive_time")
    interval = snapshot.value("net.ipv4.tcp_keepalive_intvl")
    probes = snapshot.value("net.ipv4.tcp_keepalive_probes")
    return (
        f"Keepalive detects a dead peer after {value_with_seconds(total)}\n"
        f"  = {idle} s idle + {probes} probes × {interval} s, and only on sockets that\n"
        "  set SO_KEEPALIVE (TCP_KEEPIDLE/KEEPINTVL/KEEPCNT override it per socket)."
    )


def states_text(sockets: SocketCounts) -> str:
    """Return the eleven-state histogram, IPv4 and IPv6 apart."""
    rows = [
        (state.label, sockets.ipv4.get(state, 0), sockets.ipv6.get(state, 0), sockets.total(state))
        for state in TcpState
    ]
    rows.append(
        ("total", sum(sockets.ipv4.values()), sum(sockets.ipv6.values()), sockets.all_sockets)
    )
    return _table(rows, ("state", "ipv4", "ipv6", "total"), ("left", "right", "right", "right"))


def counters_text(snapshot: Snapshot) -> str:
    """Return the notable counters in two columns."""
    counters = snapshot.counters
    items: list[tuple[str, int]] = []
    tcp_sockstat = counters.sockstat.get("TCP", {})
    items += [
        (f"sockstat {key}", tcp_sockstat[key]) for key in NOTABLE_SOCKSTAT if key in tcp_sockstat
    ]
    if "TCP6" in counters.sockstat:
        items.append(("sockstat6 inuse", counters.sockstat["TCP6"].get("inuse", 0)))
    items += [(key, counters.tcp[key]) for key in NOTABLE_TCP if key in counters.tcp]
    items += [(key, counters.tcp_ext[key]) for key in NOTABLE_TCP_EXT if key in counters.tcp_ext]
    half = (len(items) + 1) // 2
    left, right = items[:half], items[half:]
    rows = []
    for index, (name, value) in enumerate(left):
        other = right[index] if index < len(right) else ("", "")
        rows.append((name, value, other[0], other[1]))
    return _table(
        rows, ("counter", "value", "counter", "value"), ("left", "right", "left", "right")
    )


def finding_text(finding: Finding) -> str:
    """Return one finding as an indented block; info findings leave the why to explain."""
    import textwrap

    def wrap(text: str, first: str = "    ", rest: str = "    ") -> list[str]:
        return textwrap.wrap(text, WIDTH - 2, initial_indent=first, subsequent_indent=rest)

    lines = wrap(f"[{finding.severity.label.upper()}] {finding.id}: {finding.title}", "", "  ")
    for item in finding.evidence:
        lines += wrap(item, "  - ", "    ")
    if finding.severity >= Severity.WARNING:
        lines.append("  what it means:")
        lines += wrap(finding.explanation)
    lines.append("  what to do:")
    lines += wrap(finding.recommendation)
    if finding.severity >= Severity.WARNING and finding.references:
        lines += wrap("; ".join(finding.references), "  sources: ", "    ")
    else:
        lines.append(f"  why and sources: tcptune explain {finding.id}")
    return "\n".join(lines)


def audit_text(
    snapshot: Snapshot, findings: Sequence[Finding] = (), profile: str | None = None
) -> str:
    """Return the human audit report; it fits 80 columns."""
    parts = ["tcptune audit", _context_line(snapshot), ""]
    parts += ["Settings", _indent(settings_text(snapshot)), "", keepalive_text(snapshot), ""]
    if snapshot.sockets is not None:
        parts += ["Sockets by state", _indent(states_text(snapshot.sockets))]
        parts += [f"  note: {note}" for note in snapshot.sockets.notes]
        parts.append("")
    parts += ["Counters (since boot)", _indent(counters_text(snapshot)), ""]
    compared = f"profile {profile}" if profile else "no profile (use --profile NAME)"
    parts.append(f"Findings (compared with {compared})")
    parts += [finding_text(f) + "\n" for f in findings] or ["  none"]
    if snapshot.problems:
        parts += ["", "Incomplete: these could not be read"]
        parts += [f"  {p.source}: {p.message}" for p in snapshot.problems]
    return "\n".join(parts).rstrip() + "\n"


__all__ = ["audit_dict", "audit_text", "finding_dict"]


# --------------------------------------------------------------------------- profiles


def _target_dict(target: Target) -> dict[str, Any]:
    value = list(target.value) if isinstance(target.value, tuple) else target.value
    return {
        "value": value,
        "min": target.minimum,
        "max": target.maximum,
        "target": target.describe(),
        "why": target.why,
        "risk": target.risk,
        "optional": target.optional,
        "references": list(target.references),
        "defined_in": target.defined_in,
    }


def profile_dict(profile: Profile) -> dict[str, Any]:
    """Return a resolved profile as JSON-ready data."""
    return {
        "name": profile.name,
        "summary": profile.summary,
        "description": profile.description,
        "extends": profile.extends,
        "chain": list(profile.chain),
        "path": profile.path,
        "references": list(profile.references),
        "sysctl": {name: _target_dict(t) for name, t in profile.targets.items()},
    }


def profile_json(profile: Profile) -> str:
    """Return one resolved profile as JSON."""
    import json

    return json.dumps(profile_dict(profile), indent=2)


def profiles_json(profiles: Sequence[Profile]) -> str:
    """Return the list of profiles as JSON."""
    import json

    return json.dumps(
        [
            {"name": p.name, "summary": p.summary, "path": p.path, "extends": p.extends}
            for p in profiles
        ],
        indent=2,
    )


def profiles_text(profiles: Sequence[Profile]) -> str:
    """Return one line per profile: name and summary."""
    if not profiles:
        return "no profiles found\n"
    rows = [(p.name, p.summary) for p in profiles]
    return _table(rows, ("profile", "summary")) + "\n"


def profile_text(profile: Profile) -> str:
    """Return a resolved profile: description, then each target with why and risk."""
    import textwrap

    chain = " -> ".join(profile.chain)
    lines = [
        f"{profile.name}: {profile.summary}",
        f"file: {profile.path}",
        f"inherits: {chain}",
        "",
    ]
    lines += textwrap.wrap(" ".join(profile.description.split()), WIDTH)
    for name, target in profile.targets.items():
        origin = "" if target.defined_in == profile.name else f"  (from {target.defined_in})"
        optional = "  [optional]" if target.optional else ""
        lines += ["", f"{name} = {target.describe()}{optional}{origin}"]
        lines += textwrap.wrap(
            target.why, WIDTH, initial_indent="  why:  ", subsequent_indent="        "
        )
        lines += textwrap.wrap(
            target.risk, WIDTH, initial_indent="  risk: ", subsequent_indent="        "
        )
        if target.references:
            lines += textwrap.wrap(
                "; ".join(target.references),
                WIDTH,
                initial_indent="  see:  ",
                subsequent_indent="        ",
            )
    if profile.references:
        lines += ["", *textwrap.wrap("sources: " + "; ".join(profile.references), WIDTH)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- apply, rollback,
# verify, history (issue #4): the applier's plans and records as text and JSON.

if TYPE_CHECKING:
    from tcptune.applier import ApplyResult, RollbackResult
    from tcptune.plan import Plan, PlanItem
    from tcptune.snapshot import Context, SysctlValue
    from tcptune.statestore import Change, HistoryEntry
    from tcptune.sysctld import DropinPlan
    from tcptune.verify import VerifyReport


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
    from tcptune.plan import value_text

    if value is None:
        return "?"
    if item.spec is not None:
        return show_value(value, item.spec.unit, item.spec.modes)
    return value_text(value) or '""'


def _plan_sections(plan: Plan, changed_title: str) -> list[str]:
    from tcptune.plan import Action

    lines: list[str] = []
    changes = plan.having(Action.CHANGE)
    if changes:
        lines.append(f"{changed_title} ({len(changes)})")
    for item in changes:
        now, new = _value_shown(item, item.current), _value_shown(item, item.desired)
        lines += _wrapped(f"{_short(item.name)}: {now} -> {new}", "  ", "      ")
        lines += _wrapped(item.why, "      why:  ")
        lines += _wrapped(item.risk, "      risk: ")
    kept = plan.having(Action.KEEP)
    if kept:
        lines.append(f"Already right ({len(kept)})")
    for item in kept:
        now = _value_shown(item, item.current)
        lines += _wrapped(f"{_short(item.name)}: {now} (target {item.target})", "  ", "      ")
    for action, title in (
        (Action.SKIP, "Skipped"),
        (Action.BLOCKED, "Blocked: these stop the apply before any write"),
    ):
        items = plan.having(action)
        if items:
            lines.append(f"{title} ({len(items)})")
        for item in items:
            lines += _wrapped(f"{_short(item.name)}: {item.reason}", "  ", "      ")
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
    return lines


def plan_text(plan: Plan, dropin: DropinPlan | None, apply_command: str) -> str:
    """Return the dry-run plan: what would change and why, and how to apply it."""
    from tcptune.plan import Action

    lines = [f"tcptune apply {plan.profile}: plan (dry run)", _where_line(plan.context)]
    note = namespace_note(plan.context)
    if note:
        lines += _wrapped(note, "")
    lines += ["", *_plan_sections(plan, "Would change")]
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


def applied_text(result: ApplyResult, rollback_command: str) -> str:
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
                "desired": _json_value(item.desired),
                "why": item.why,
                "risk": item.risk,
                "reason": item.reason,
            }
            for item in plan.items
        ],
        "persist": None
        if dropin is None
        else {"path": str(dropin.path), "action": dropin.action, "warnings": list(dropin.warnings)},
        "apply_command": apply_command,
        "record": None if result is None else result.record_id,
        "written": [] if result is None else _changes_json(result.written),
        "seconds": None if result is None else round(result.seconds, 4),
    }


def _change_text(change: Change, short: bool = False) -> str:
    before = " ".join(change.before.split()) or '""'
    after = " ".join(change.after.split()) or '""'
    return f"{_short(change.name) if short else change.name}: {before} -> {after}"


def _changes_json(changes: Sequence[Change]) -> list[dict[str, str]]:
    return [{"name": c.name, "before": c.before, "after": c.after} for c in changes]


def rollback_text(result: RollbackResult) -> str:
    """Return what a rollback restored and verified."""
    record = result.record
    lines = [
        f"tcptune rollback: undid apply #{record.id} of {record.profile}",
        f"  applied {_iso(record.time)} by {record.who.describe()}",
    ]
    lines += [f"  {_change_text(c, short=True)} (verified)" for c in result.restored]
    if not result.restored:
        lines.append("  every key already had its previous value")
    for note in result.notes:
        lines += _wrapped(note, "  note: ")
    if record.dropin is not None:
        lines += _wrapped(f"{record.dropin.path}: {result.dropin_action}", "  drop-in ")
    lines.append(f"Recorded as #{result.entry_id} in the history.")
    return "\n".join(lines) + "\n"


def rollback_dict(result: RollbackResult) -> dict[str, Any]:
    """Return a rollback as JSON-ready data (schema 1)."""
    record = result.record
    return {
        "schema": JSON_SCHEMA_VERSION,
        "undid": record.id,
        "profile": record.profile,
        "entry": result.entry_id,
        "restored": _changes_json(result.restored),
        "dropin": None
        if record.dropin is None
        else {"path": record.dropin.path, "action": result.dropin_action},
        "notes": list(result.notes),
    }


def verify_text(report: VerifyReport) -> str:
    """Return the live drift and, per key, the boot-time file that sets it."""
    from tcptune.plan import Action

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
            _short(i.name),
            _value_shown(i, i.current) if i.current is not None else "-",
            i.target,
            state[i.action],
        )
        for i in plan.items
    ]
    lines += ["", _indent(_table(rows, ("setting", "live", "target", "state")))]
    for item in plan.items:
        if item.reason:
            lines += _wrapped(f"{_short(item.name)}: {item.reason}", "  ", "    ")
    lines += ["", "At boot (sysctl.d files in name order, /etc/sysctl.conf last)"]
    for item in plan.items:
        setting = report.boot.get(item.name)
        if setting is None:
            text = f"{_short(item.name)}: no file sets it; the kernel default applies"
        else:
            text = f"{_short(item.name)}: {setting.value} from {setting.where()}"
            if not report.boot_agrees.get(item.name, False):
                text += " (misses the target: a reboot brings drift back)"
        lines += _wrapped(text, "  ", "    ")
    for problem in report.problems:
        lines += _wrapped(problem, "  cannot read: ")
    return "\n".join(lines) + "\n"


def verify_dict(report: VerifyReport) -> dict[str, Any]:
    """Return a verify report as JSON-ready data (schema 1)."""
    from tcptune.plan import Action

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


def history_text(entries: Sequence[HistoryEntry]) -> str:
    """Return past applies and rollbacks, oldest first, each with what it changed."""
    if not entries:
        return "No apply or rollback recorded yet.\n"
    lines = []
    for entry in entries:
        what = f"{entry.action} {entry.outcome}"
        if entry.undoes is not None:
            what += f" (undid #{entry.undoes})"
        lines.append(f"#{entry.id}  {_iso(entry.time)}  {what}  profile {entry.profile}")
        lines.append(f"    by {entry.who.describe()}")
        lines += [f"    {_change_text(c)}" for c in entry.changes]
        if entry.dropin:
            lines.append(f"    drop-in {entry.dropin}")
        if entry.outcome == "failed":
            lines += _wrapped(entry.message, "    ")
    return "\n".join(lines) + "\n"


def history_dict(entries: Sequence[HistoryEntry]) -> dict[str, Any]:
    """Return the history as JSON-ready data (schema 1)."""
    return {
        "schema": JSON_SCHEMA_VERSION,
        "entries": [
            {
                "id": e.id,
                "time": _iso(e.time),
                "action": e.action,
                "outcome": e.outcome,
                "profile": e.profile,
                "who": {"uid": e.who.uid, "user": e.who.user, "sudo_user": e.who.sudo_user},
                "changes": _changes_json(e.changes),
                "dropin": e.dropin,
                "message": e.message,
                "undoes": e.undoes,
            }
            for e in entries
        ],
    }


def topics_text(rows: Sequence[tuple[str, str, str]]) -> str:
    """Return the explain topic list, grouped by kind: each name, its summary beneath."""
    lines: list[str] = []
    current = None
    for kind, name, summary in rows:
        if kind != current:
            lines += [*([""] if lines else []), f"{kind}s:"]
            current = kind
        lines += [f"  {name}", f"      {summary}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- audit formats:
# --------------------------------------------------------------------------- prometheus, check

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

    from tcptune.audit import AuditResult
    from tcptune.watch import Frame

AUDIT_FORMATS = ("text", "json", "prometheus", "check")

# Tcp (/proc/net/snmp) and TcpExt (/proc/net/netstat) counters exported as Prometheus
# counters and Nagios perfdata: (table, kernel name, metric name without _total, help).
# Meanings from the kernel's Documentation/networking/snmp_counter.rst and RFC 1213.
EXPORTED_COUNTERS: tuple[tuple[str, str, str, str], ...] = (
    ("Tcp", "ActiveOpens", "tcptune_tcp_active_opens", "Connections started by connect()"),
    ("Tcp", "PassiveOpens", "tcptune_tcp_passive_opens", "Connections accepted on a listener"),
    ("Tcp", "AttemptFails", "tcptune_tcp_attempt_fails", "Connection attempts that failed"),
    ("Tcp", "EstabResets", "tcptune_tcp_estab_resets", "Resets from ESTABLISHED or CLOSE_WAIT"),
    ("Tcp", "OutRsts", "tcptune_tcp_out_rsts", "Segments sent with the RST flag"),
    ("Tcp", "RetransSegs", "tcptune_tcp_retrans_segs", "Segments retransmitted"),
    (
        "TcpExt",
        "ListenOverflows",
        "tcptune_tcpext_listen_overflows",
        "Handshakes dropped because a listener's accept queue was full",
    ),
    (
        "TcpExt",
        "ListenDrops",
        "tcptune_tcpext_listen_drops",
        "SYNs dropped at a listener for any reason, overflows included",
    ),
    (
        "TcpExt",
        "TCPAbortOnData",
        "tcptune_tcpext_abort_on_data",
        "Resets: data arrived after close(), or close() with SO_LINGER 0",
    ),
    (
        "TcpExt",
        "TCPAbortOnClose",
        "tcptune_tcpext_abort_on_close",
        "Resets: close() with unread received data (RFC 2525 2.17)",
    ),
    (
        "TcpExt",
        "TCPAbortOnLinger",
        "tcptune_tcpext_abort_on_linger",
        "Resets: FIN_WAIT2 ended at once because TCP_LINGER2 is negative",
    ),
    (
        "TcpExt",
        "TCPAbortOnTimeout",
        "tcptune_tcpext_abort_on_timeout",
        "Connections given up (no RST) when retransmission or keepalive timed out",
    ),
    (
        "TcpExt",
        "TCPAbortOnMemory",
        "tcptune_tcpext_abort_on_memory",
        "Resets: too many orphans (tcp_max_orphans) or tcp_mem exhausted",
    ),
    (
        "TcpExt",
        "TCPTimeWaitOverflow",
        "tcptune_tcpext_time_wait_overflow",
        "Sockets that skipped TIME_WAIT because tcp_max_tw_buckets was reached",
    ),
    ("TcpExt", "TW", "tcptune_tcpext_tw", "TIME_WAIT sockets that ended by their timer"),
    ("TcpExt", "TWKilled", "tcptune_tcpext_tw_killed", "TIME_WAIT sockets ended early"),
    (
        "TcpExt",
        "TWRecycled",
        "tcptune_tcpext_tw_recycled",
        "TIME_WAIT ports reused for a new connection (tcp_tw_reuse)",
    ),
)
SOCKSTAT_HELP = {
    "inuse": "sockets in use, every state but TIME_WAIT",
    "orphan": "sockets no process holds any more (orphans, host-wide)",
    "tw": "TIME_WAIT sockets and orphaned FIN_WAIT2 ones kept as timewait minisocks",
    "alloc": "sockets allocated, orphans and closing ones included (host-wide)",
}


def audit_output(result: AuditResult, output_format: str) -> str:
    """Return the audit in one of AUDIT_FORMATS, ending with a newline."""
    profile = result.profile.name if result.profile else None
    if output_format == "text":
        return audit_text(result.snapshot, result.findings, profile)
    if output_format == "json":
        import json

        return json.dumps(audit_dict(result.snapshot, result.findings, profile), indent=2) + "\n"
    if output_format == "prometheus":
        return audit_prometheus(result)
    if output_format == "check":
        return check_line(result) + "\n"
    raise ValueError(f"unknown audit format {output_format!r}")


def _counter_value(snapshot: Snapshot, table: str) -> dict[str, int]:
    return dict(snapshot.counters.tcp if table == "Tcp" else snapshot.counters.tcp_ext)


def _sysctl_families(snapshot: Snapshot) -> Iterator[Metric]:
    """Yield one gauge per numeric sysctl; a port range is two series, bound low and high."""
    import re

    from prometheus_client.metrics_core import GaugeMetricFamily

    from tcptune.sysctls import Unit

    for name, reading in snapshot.sysctls.items():
        if reading.status is not ReadStatus.OK:
            continue
        metric = "tcptune_sysctl_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)
        documentation = f"{name}: {reading.spec.summary}."
        value = reading.value
        if isinstance(value, tuple):
            family = GaugeMetricFamily(metric, documentation, labels=["bound"])
            family.add_metric(["low"], value[0])
            family.add_metric(["high"], value[1])
            yield family
        elif isinstance(value, int):
            suffix = "_seconds" if reading.spec.unit is Unit.SECONDS else ""
            yield GaugeMetricFamily(metric + suffix, documentation, value=value)


def audit_metric_families(result: AuditResult) -> Iterator[Metric]:
    """Yield the audit as Prometheus metric families: names, types, help and labels."""
    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        InfoMetricFamily,
    )

    snapshot = result.snapshot
    yield InfoMetricFamily(
        "tcptune_audit",
        "The tcptune version, kernel release, profile and socket source of this audit.",
        value={
            "version": __version__,
            "kernel_release": snapshot.context.kernel_release or "",
            "profile": result.profile.name if result.profile else "",
            "source": snapshot.sockets.source if snapshot.sockets else "",
        },
    )
    yield GaugeMetricFamily(
        "tcptune_audit_timestamp_seconds",
        "When the audit read the kernel, in seconds since the Unix epoch.",
        value=snapshot.taken_at,
    )
    yield GaugeMetricFamily(
        "tcptune_audit_exit_status",
        "The audit's exit status: 0 OK, 1 warning, 2 critical, 3 incomplete inspection.",
        value=int(result.status),
    )
    yield GaugeMetricFamily(
        "tcptune_inspection_complete",
        "1 if every setting, socket table and counter could be read, else 0.",
        value=1 if snapshot.complete else 0,
    )
    per_severity = GaugeMetricFamily(
        "tcptune_findings", "Active (not ignored) findings by severity.", labels=["severity"]
    )
    for severity in Severity:
        count = sum(1 for finding in result.findings if finding.severity is severity)
        per_severity.add_metric([severity.label], count)
    yield per_severity
    active = GaugeMetricFamily(
        "tcptune_finding",
        "1 for each active finding; `tcptune explain ID` says what it means.",
        labels=["id", "subject", "severity"],
    )
    seen: set[tuple[str, str, str]] = set()
    for finding in result.findings:
        labels = (finding.id, finding.subject or "", finding.severity.label)
        if labels not in seen:  # a repeated series would make the textfile collector fail
            seen.add(labels)
            active.add_metric(list(labels), 1)
    yield active
    sockets = GaugeMetricFamily(
        "tcptune_sockets",
        "TCP sockets by state and address family.",
        labels=["state", "family"],
    )
    if snapshot.sockets is not None:
        for state in TcpState:
            sockets.add_metric([state.label.lower(), "ipv4"], snapshot.sockets.ipv4.get(state, 0))
            sockets.add_metric([state.label.lower(), "ipv6"], snapshot.sockets.ipv6.get(state, 0))
    yield sockets
    for table in ("TCP", "TCP6"):
        for key, value in snapshot.counters.sockstat.get(table, {}).items():
            if key == "mem":  # in pages, not sockets: left out rather than guess a page size
                continue
            source = "/proc/net/sockstat6" if table == "TCP6" else "/proc/net/sockstat"
            yield GaugeMetricFamily(
                f"tcptune_sockstat_{table.lower()}_{key}",
                f"{table} {key} in {source}: {SOCKSTAT_HELP.get(key, 'as the kernel reports it')}.",
                value=value,
            )
    for table, name, metric, documentation in EXPORTED_COUNTERS:
        counter = _counter_value(snapshot, table).get(name)
        if counter is not None:
            yield CounterMetricFamily(
                metric, f"{documentation} ({table} {name}, since boot).", value=counter
            )
    detection = keepalive_detection_seconds(snapshot)
    if detection is not None:
        yield GaugeMetricFamily(
            "tcptune_keepalive_detection_seconds",
            "How long SO_KEEPALIVE takes to notice a dead peer: time + intvl × probes.",
            value=detection,
        )
    yield from _sysctl_families(snapshot)


class AuditCollector:
    """A custom Prometheus collector that yields one audit's metric families."""

    def __init__(self, result: AuditResult) -> None:
        """Collect ``result``."""
        self.result = result

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families of the audit."""
        return audit_metric_families(self.result)


def audit_prometheus(result: AuditResult) -> str:
    """Return the audit in the Prometheus text format (node_exporter's textfile collector)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)  # private: no process or GC metrics
    registry.register(AuditCollector(result))
    return generate_latest(registry).decode("utf-8")


CHECK_WORDS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def _plugin_text(text: str) -> str:
    """Return ``text`` on one line without '|', which starts a plugin's perfdata."""
    return " ".join(text.replace("|", "/").split())


def check_perfdata(snapshot: Snapshot) -> str:
    """Return Nagios perfdata: sockets per state, keepalive detection and counters ('c')."""
    items: list[str] = []
    if snapshot.sockets is not None:
        items += [f"{s.label.lower()}={snapshot.sockets.total(s)}" for s in TcpState]
        items.append(f"sockets={snapshot.sockets.all_sockets}")
    detection = keepalive_detection_seconds(snapshot)
    if detection is not None:
        items.append(f"keepalive_detection={detection}s")
    for table, name, _metric, _help in EXPORTED_COUNTERS:
        value = _counter_value(snapshot, table).get(name)
        if value is not None:
            items.append(f"{name}={value}c")
    return " ".join(items)


def check_line(result: AuditResult) -> str:
    """Return the audit as one Nagios plugin status line with perfdata."""
    from tcptune.exitcodes import plugin_status

    snapshot = result.snapshot
    parts: list[str] = []
    if snapshot.problems:
        first, more = snapshot.problems[0], len(snapshot.problems) - 1
        extra = f" (+{more} more)" if more else ""
        parts.append(f"inspection incomplete: {first.source}: {first.message}{extra}")
    raised = [f for f in result.findings if f.severity >= Severity.WARNING]
    if raised:
        noun = "finding" if len(raised) == 1 else "findings"
        parts.append(f"{len(raised)} {noun}: " + ", ".join(f.key for f in raised))
    elif not parts:
        infos = len(result.findings)
        parts.append("no warnings" + (f" ({infos} info)" if infos else ""))
    word = CHECK_WORDS[plugin_status(result.status)]
    return f"TCPTUNE {word} - {_plugin_text('; '.join(parts))} | {check_perfdata(snapshot)}"


def check_error_line(message: str) -> str:
    """Return an error as the plugin's UNKNOWN status line."""
    return f"TCPTUNE UNKNOWN - {_plugin_text(message)}"


# --------------------------------------------------------------------------- watch

WATCH_ALERT_STYLE = "\x1b[1;31m"  # bold red (ECMA-48 SGR 1 and 31)
WATCH_HEADER_STYLE = "\x1b[1m"
WATCH_RESET = "\x1b[0m"
RISING = "▲"

Segment = tuple[str, str | None]  # text and its SGR style (None: plain)


def _watch_rate(rate: float | None) -> str:
    if rate is None:
        return "-"
    if rate == 0:
        return "0"
    return f"{rate:.1f}" if rate < 100 else f"{rate:.0f}"


def watch_line(frame: Frame) -> str:
    """Return one refresh as one log line: counts, rates per second, ▲ on what is rising."""
    words = [_iso(frame.taken_at)]
    for row in frame.states:
        words.append(f"{row.state.label.lower()}={row.total}{RISING if row.alert else ''}")
    words.append(f"total={frame.total}" if frame.states else "sockets=unreadable")
    words.append("|")
    for rate in frame.rates:
        if rate.value is not None:
            shown = _watch_rate(rate.per_second)
            unit = "/s" if rate.per_second is not None else ""
            words.append(f"{rate.name}={shown}{unit}{RISING if rate.alert else ''}")
    if frame.problems:
        words.append("| incomplete: " + "; ".join(frame.problems))
    return " ".join(words)


def watch_dict(frame: Frame) -> dict[str, Any]:
    """Return one refresh as JSON-ready data (one object per line with --json)."""
    return {
        "schema": JSON_SCHEMA_VERSION,
        "refresh": frame.number,
        "taken_at": _iso(frame.taken_at),
        "interval_seconds": frame.interval,
        "elapsed_seconds": None if frame.elapsed is None else round(frame.elapsed, 3),
        "complete": not frame.problems,
        "problems": list(frame.problems),
        "source": frame.source,
        "sockets": {
            "total": frame.total,
            "states": {
                row.state.label: {
                    "ipv4": row.ipv4,
                    "ipv6": row.ipv6,
                    "total": row.total,
                    "change": row.change,
                }
                for row in frame.states
            },
        }
        if frame.states
        else None,
        "counters": {
            rate.name: {
                "value": rate.value,
                "per_second": None if rate.per_second is None else round(rate.per_second, 3),
            }
            for rate in frame.rates
            if rate.value is not None
        },
        "tcp_max_tw_buckets": frame.time_wait_cap,
        "alerts": list(frame.alerts),
    }


def watch_json(frame: Frame) -> str:
    """Return one refresh as a single JSON line."""
    import json

    return json.dumps(watch_dict(frame), separators=(",", ":"))


def _watch_state_block(frame: Frame, styled: bool) -> list[Segment]:
    header = f"{'state':<11}{'ipv4':>7}{'ipv6':>7}{'total':>7}{'+/-':>6} "
    lines: list[Segment] = [(header, WATCH_HEADER_STYLE)]
    for row in frame.states:
        change = f"{row.change:+d}" if row.change else ""
        marker = RISING if row.alert and not styled else " "
        text = f"{row.state.label:<11}{row.ipv4:>7}{row.ipv6:>7}{row.total:>7}{change:>6}{marker}"
        lines.append((text, WATCH_ALERT_STYLE if row.alert else None))
    total = f"{'total':<11}{'':>7}{'':>7}{frame.total:>7}{'':>6} "
    lines.append((total, WATCH_HEADER_STYLE))
    return lines


def _watch_rate_block(frame: Frame, styled: bool) -> list[Segment]:
    lines: list[Segment] = [(f"{'counter':<19}{'per s':>8}{'total':>10} ", WATCH_HEADER_STYLE)]
    for rate in frame.rates:
        if rate.value is None:
            continue
        marker = RISING if rate.alert and not styled else " "
        text = f"{rate.name:<19}{_watch_rate(rate.per_second):>8}{rate.value:>10}{marker}"
        lines.append((text, WATCH_ALERT_STYLE if rate.alert else None))
    return lines


def _fit(segments: Sequence[Segment], width: int) -> list[Segment]:
    """Cut a line of segments to ``width`` characters."""
    fitted: list[Segment] = []
    room = width
    for text, style in segments:
        if room <= 0:
            break
        fitted.append((text[:room], style))
        room -= len(text[:room])
    return fitted


def _paint(segments: Sequence[Segment], styled: bool) -> str:
    if not styled:
        return "".join(text for text, _style in segments)
    return "".join(f"{style}{text}{WATCH_RESET}" if style else text for text, style in segments)


def watch_screen(frame: Frame, width: int, height: int, styled: bool) -> str:
    """Return one refresh laid out for a ``width``×``height`` terminal.

    The state and counter tables stand side by side when they fit (79
    columns), one above the other otherwise; lines are cut to the width and
    the screen to the height. ``styled`` draws rising rows in bold red;
    without it they carry ▲.
    """
    width, height = max(width, 20), max(height, 3)
    title = f"tcptune watch · every {frame.interval:g} s · #{frame.number} · {_iso(frame.taken_at)}"
    quit_hint = "q quits"
    gap = width - len(title) - len(quit_hint)
    rows: list[list[Segment]] = [
        [(title, WATCH_HEADER_STYLE), (" " * gap + quit_hint if gap > 0 else "", None)]
    ]
    noun = "socket" if frame.total == 1 else "sockets"
    where = f"{frame.total} {noun} via {frame.source}" if frame.states else "sockets unreadable"
    if frame.time_wait_cap is not None:
        where += f" · tcp_max_tw_buckets {frame.time_wait_cap}"
    if frame.elapsed is None:
        where += " · rates from the next refresh"
    rows.append([(where, None)])
    # What is rising comes first: on a short terminal the tables are cut, never the alerts.
    for alert in frame.alerts:
        rows.append([(f"{RISING} {alert}", WATCH_ALERT_STYLE)])
    rows += [[(f"incomplete: {problem}", WATCH_ALERT_STYLE)] for problem in frame.problems]
    if not frame.alerts and not frame.problems and frame.elapsed is not None:
        rows.append([("nothing rising", None)])
    rows.append([])
    states = _watch_state_block(frame, styled) if frame.states else []
    rates = _watch_rate_block(frame, styled)
    block_width = max((len(text) for text, _style in states), default=0)
    rate_width = max((len(text) for text, _style in rates), default=0)
    if states and width >= block_width + 2 + rate_width:
        for index in range(max(len(states), len(rates))):
            left = states[index] if index < len(states) else ("", None)
            right = rates[index] if index < len(rates) else ("", None)
            rows.append([(left[0].ljust(block_width), left[1]), ("  ", None), right])
    else:
        rows += [[line] for line in states] + ([[]] if states else [])
        rows += [[line] for line in rates]
    if len(rows) > height:
        rows = [*rows[: height - 1], [("… (enlarge the terminal for the rest)", None)]]
    return "\n".join(_paint(_fit(row, width), styled) for row in rows)
