"""Turn a snapshot and an optional profile into findings: the checks and their docs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from tcptune.advise import aborts, keepalive, settings, sockopts, teardown
from tcptune.advise.base import Evidence, FindingDoc
from tcptune.model.findings import Finding, is_ignored
from tcptune.model.snapshot import Counters

if TYPE_CHECKING:
    from tcptune.reference.explain import Topic

Check = Callable[[Evidence], Iterator[Finding]]

# Order is the report's order: settings first, then sockets, then counters.
CHECKS: tuple[Check, ...] = (
    *settings.CHECKS,
    *keepalive.CHECKS,
    *sockopts.CHECKS,
    *teardown.CHECKS,
    *aborts.CHECKS,
)
DOCS: Mapping[str, FindingDoc] = {
    doc.id: doc
    for doc in (*settings.DOCS, *keepalive.DOCS, *sockopts.DOCS, *teardown.DOCS, *aborts.DOCS)
}


def advise(evidence: Evidence, ignore: Iterable[str] = ()) -> list[Finding]:
    """Run every check and return the findings not ignored, worst first, stable order."""
    return advise_ignoring(evidence, ignore)[0]


def advise_ignoring(
    evidence: Evidence, ignore: Iterable[str] = ()
) -> tuple[list[Finding], list[str]]:
    """Return :func:`advise`'s findings and the ``--ignore ID:SUBJECT`` words that hid none."""
    ignore = tuple(ignore)
    every = [item for check in CHECKS for item in check(evidence)]
    found = [item for item in every if not is_ignored(item, ignore)]
    unmatched = [
        word
        for word in ignore
        if ":" in word and not any(is_ignored(item, (word,)) for item in every)
    ]
    return sorted(found, key=lambda item: -item.severity), unmatched


def counter_rates(before: Counters, after: Counters, seconds: float) -> dict[str, float]:
    """Return each Tcp/TcpExt counter's change per second between two readings."""
    rates: dict[str, float] = {}
    for old, new in ((before.tcp, after.tcp), (before.tcp_ext, after.tcp_ext)):
        for name, value in new.items():
            if name in old and name != "CurrEstab" and seconds > 0:
                rates[name] = max(0, value - old[name]) / seconds
    return rates


__all__ = ["CHECKS", "DOCS", "Evidence", "FindingDoc", "advise", "counter_rates", "finding_topics"]


def finding_topics() -> list[Topic]:
    """Return an explain topic for every finding ID, from its FindingDoc."""
    import textwrap

    from tcptune.reference.explain import BODY_WIDTH, Topic

    return [
        Topic(
            name=doc.id,
            kind="finding",
            title=f"Finding {doc.id}: {doc.title}",
            summary=doc.summary,
            references=doc.references,
            aliases=(),
            body=textwrap.fill(doc.explanation, BODY_WIDTH) + _proven_by(doc),
        )
        for doc in DOCS.values()
    ]


def _proven_by(doc: FindingDoc) -> str:
    """Return the ``Proven by:`` paragraph of a finding topic, or nothing."""
    import textwrap

    from tcptune.reference.explain import BODY_WIDTH

    if not doc.proven_by:
        return ""
    return "\n\n" + textwrap.fill("Proven by: " + ", ".join(doc.proven_by), BODY_WIDTH)
