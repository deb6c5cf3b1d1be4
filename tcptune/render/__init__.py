"""Every output format lives in this package: text, JSON, metrics and screens.

One module per family of output: audit (text and JSON schema 1), reference
(profiles, explain), changes (plan, apply, rollback, verify, history),
metrics (Prometheus, Nagios check) and watch. Callers use ``tcptune.render.X``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcptune.render.audit import (
        audit_dict,
        audit_text,
        counters_text,
        finding_dict,
        finding_text,
        keepalive_text,
        settings_text,
        states_text,
    )
    from tcptune.render.changes import (
        applied_text,
        history_dict,
        history_text,
        namespace_note,
        plan_dict,
        plan_text,
        rollback_dict,
        rollback_text,
        verify_dict,
        verify_text,
    )
    from tcptune.render.metrics import (
        AUDIT_FORMATS,
        CHECK_WORDS,
        SOCKSTAT_HELP,
        AuditCollector,
        audit_metric_families,
        audit_output,
        audit_prometheus,
        check_error_line,
        check_line,
        check_perfdata,
    )
    from tcptune.render.reference import (
        profile_dict,
        profile_json,
        profile_text,
        profiles_json,
        profiles_text,
        topics_text,
    )
    from tcptune.render.watch import (
        RISING,
        WATCH_ALERT_STYLE,
        WATCH_HEADER_STYLE,
        WATCH_RESET,
        watch_dict,
        watch_json,
        watch_line,
        watch_screen,
    )

# Which module holds each name: submodules load on first use (PEP 562), so a
# command pays only for the formats it prints.
_HOME = {
    "AUDIT_FORMATS": "metrics",
    "AuditCollector": "metrics",
    "CHECK_WORDS": "metrics",
    "RISING": "watch",
    "SOCKSTAT_HELP": "metrics",
    "WATCH_ALERT_STYLE": "watch",
    "WATCH_HEADER_STYLE": "watch",
    "WATCH_RESET": "watch",
    "applied_text": "changes",
    "audit_dict": "audit",
    "audit_metric_families": "metrics",
    "audit_output": "metrics",
    "audit_prometheus": "metrics",
    "audit_text": "audit",
    "check_error_line": "metrics",
    "check_line": "metrics",
    "check_perfdata": "metrics",
    "counters_text": "audit",
    "finding_dict": "audit",
    "finding_text": "audit",
    "history_dict": "changes",
    "history_text": "changes",
    "keepalive_text": "audit",
    "namespace_note": "changes",
    "plan_dict": "changes",
    "plan_text": "changes",
    "profile_dict": "reference",
    "profile_json": "reference",
    "profile_text": "reference",
    "profiles_json": "reference",
    "profiles_text": "reference",
    "rollback_dict": "changes",
    "rollback_text": "changes",
    "settings_text": "audit",
    "states_text": "audit",
    "topics_text": "reference",
    "verify_dict": "changes",
    "verify_text": "changes",
    "watch_dict": "watch",
    "watch_json": "watch",
    "watch_line": "watch",
    "watch_screen": "watch",
}


def __getattr__(name: str) -> Any:
    """Load the submodule that defines ``name`` on first use."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'tcptune.render' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tcptune.render.{home}"), name)


__all__ = [
    "AUDIT_FORMATS",
    "CHECK_WORDS",
    "RISING",
    "SOCKSTAT_HELP",
    "WATCH_ALERT_STYLE",
    "WATCH_HEADER_STYLE",
    "WATCH_RESET",
    "AuditCollector",
    "applied_text",
    "audit_dict",
    "audit_metric_families",
    "audit_output",
    "audit_prometheus",
    "audit_text",
    "check_error_line",
    "check_line",
    "check_perfdata",
    "counters_text",
    "finding_dict",
    "finding_text",
    "history_dict",
    "history_text",
    "keepalive_text",
    "namespace_note",
    "plan_dict",
    "plan_text",
    "profile_dict",
    "profile_json",
    "profile_text",
    "profiles_json",
    "profiles_text",
    "rollback_dict",
    "rollback_text",
    "settings_text",
    "states_text",
    "topics_text",
    "verify_dict",
    "verify_text",
    "watch_dict",
    "watch_json",
    "watch_line",
    "watch_screen",
]
