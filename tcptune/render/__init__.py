"""Every output format lives in this package: text, JSON, metrics and screens.

One module per family of output: audit (text and JSON schema 1), reference
(profiles, explain), changes (plan, apply, rollback, verify, history),
metrics (Prometheus, Nagios check) and watch. Callers use ``tcptune.render.X``.
"""

from __future__ import annotations

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
