"""The Finding record the advisor produces and the renderers show."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import field

from tcptune.exitcodes import ExitStatus
from tcptune.model.record import record
from tcptune.model.sysctls import short_name


class Severity(enum.IntEnum):
    """How much a finding matters; the exit status follows the worst one."""

    INFO = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        """Return the lowercase name used in text and JSON."""
        return self.name.lower()


@record
class Finding:
    """One thing worth knowing: evidence, meaning, what to do, what it costs, sources."""

    id: str  # stable, e.g. "close-wait"; also an explain topic
    severity: Severity
    title: str
    evidence: tuple[str, ...]
    explanation: str
    recommendation: str
    references: tuple[str, ...]
    subject: str | None = None  # what it is about when an ID recurs, e.g. a sysctl key
    data: Mapping[str, object] = field(default_factory=dict)  # machine-readable extras

    @property
    def key(self) -> str:
        """Return ``id`` or ``id:subject``: what ``--ignore`` matches."""
        return f"{self.id}:{self.subject}" if self.subject else self.id


def is_ignored(finding: Finding, ignore: Iterable[str]) -> bool:
    """Return whether ``--ignore`` names this finding's ID or its ``id:subject`` key.

    A sysctl subject matches its full dotted name or its short name
    (model/sysctls.py short_name: ``profile-mismatch:tcp_keepalive_time``).
    """
    for word in ignore:
        finding_id, colon, subject = word.partition(":")
        if finding_id != finding.id:
            continue
        if not colon or subject == finding.subject:
            return True
        if finding.subject and short_name(finding.subject) == subject:
            return True
    return False


def unknown_ignore_ids(ignore: Iterable[str], known_ids: Iterable[str]) -> list[str]:
    """Return the ``--ignore`` words whose ID (before any ``:``) is none of ``known_ids``."""
    known = set(known_ids)
    return [word for word in ignore if word.partition(":")[0] not in known]


def exit_status(findings: Iterable[Finding], complete: bool) -> ExitStatus:
    """Return the audit's exit status: CRITICAL > INCOMPLETE > WARNING > OK (Icinga's order)."""
    worst = max((finding.severity for finding in findings), default=Severity.INFO)
    if worst is Severity.CRITICAL:
        return ExitStatus.CRITICAL
    if not complete:
        return ExitStatus.INCOMPLETE
    if worst is Severity.WARNING:
        return ExitStatus.WARNING
    return ExitStatus.OK
