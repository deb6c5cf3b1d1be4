"""The ``tcptune explain counters`` topic, written from the reviewed counter table."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tcptune.reference.explain import Topic


def counters_topic() -> Topic:
    """Return a concept topic listing every counter tcptune shows, what it counts and where."""
    import textwrap

    from tcptune.model.kernelcounters import COUNTER_DOCS, Kind, Scope
    from tcptune.reference.explain import BODY_WIDTH, Topic

    lines = [
        "Two kinds of numbers. Tcp (/proc/net/snmp) and TcpExt (/proc/net/netstat)",
        "counters are totals per network namespace, counted since the namespace was",
        "created (since boot only in the initial namespace): a container's counters",
        "start at zero. CurrEstab and the sockstat fields are current values, not",
        "totals; sockstat orphan and alloc count the whole host.",
    ]
    for kind, heading in ((Kind.CURRENT, "CURRENT VALUES"), (Kind.TOTAL, "TOTALS")):
        lines += ["", heading]
        for doc in COUNTER_DOCS.values():
            if doc.kind is not kind:
                continue
            where = "host-wide" if doc.scope is Scope.HOST else "per namespace"
            name = doc.label if doc.group in ("TCP", "TCP6") else f"{doc.group} {doc.name}"
            text = f"{name} ({where}): {doc.meaning}. Kernel: {doc.source}."
            if doc.proven_by:
                text += f" Proven by: {', '.join(doc.proven_by)}."
            lines += [
                "",
                *textwrap.wrap(text, BODY_WIDTH, subsequent_indent="  ", break_on_hyphens=False),
            ]
    return Topic(
        name="counters",
        kind="concept",
        title="Kernel counters tcptune shows: what each counts, and since when",
        summary="Tcp/TcpExt totals per namespace; sockstat and CurrEstab are now.",
        references=(
            "Documentation/networking/snmp_counter.rst",
            "net/ipv4/proc.c: sockstat_seq_show(), netstat_seq_show()",
            "RFC 1213",
        ),
        aliases=("counter", "nstat", "sockstat", "snmp", "netstat-counters", "mib"),
        body="\n".join(lines),
    )


__all__ = ["counters_topic"]
