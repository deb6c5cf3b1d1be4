"""The audit's kernel counters, labelled for what they are: current values or totals (and rates).

Every label comes from the reviewed table in tcptune/model/kernelcounters.py. Sockstat and
CurrEstab are counts of sockets now; Tcp/TcpExt counters are totals of this network
namespace since it was created (since boot in the initial one), so with --interval each is
also shown per second.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcptune.model.kernelcounters import CounterDoc, Kind, Scope, counter_doc, totals_span
from tcptune.model.snapshot import Snapshot
from tcptune.output.common import NOTABLE_SOCKSTAT, NOTABLE_TCP, NOTABLE_TCP_EXT, table

Rates = Mapping[str, float]  # Tcp/TcpExt counter name -> change per second


def current_values(snapshot: Snapshot) -> list[tuple[CounterDoc, int]]:
    """Return the shown counts of sockets now: sockstat fields and CurrEstab."""
    counters = snapshot.counters
    items: list[tuple[CounterDoc, int]] = []
    tcp_sockstat = counters.sockstat.get("TCP", {})
    items += [
        (counter_doc("TCP", key), tcp_sockstat[key])
        for key in NOTABLE_SOCKSTAT
        if key in tcp_sockstat
    ]
    if "TCP6" in counters.sockstat:
        items.append((counter_doc("TCP6", "inuse"), counters.sockstat["TCP6"].get("inuse", 0)))
    if "CurrEstab" in counters.tcp:
        items.append((counter_doc("Tcp", "CurrEstab"), counters.tcp["CurrEstab"]))
    return items


def totals(snapshot: Snapshot) -> list[tuple[CounterDoc, int]]:
    """Return the shown Tcp and TcpExt running totals."""
    counters = snapshot.counters
    items = [
        (counter_doc("Tcp", key), counters.tcp[key])
        for key in NOTABLE_TCP
        if key in counters.tcp and counter_doc("Tcp", key).kind is Kind.TOTAL
    ]
    items += [
        (counter_doc("TcpExt", key), counters.tcp_ext[key])
        for key in NOTABLE_TCP_EXT
        if key in counters.tcp_ext
    ]
    return items


def _label(doc: CounterDoc) -> str:
    return f"{doc.label}, host-wide" if doc.scope is Scope.HOST else doc.label


def current_heading() -> str:
    """Return the heading of the current-values group."""
    return "Sockets now (current values; this namespace unless marked host-wide)"


def totals_heading(snapshot: Snapshot, interval: float | None) -> str:
    """Return the heading of the totals group: since when, and the rate interval."""
    span = totals_span(snapshot.context.initial_netns)
    heading = f"Counters (totals {span}"
    if interval is not None:
        heading += f"; rates over {interval:g} s"
    return heading + ")"


def _two_columns(items: list[tuple[str, int]]) -> str:
    half = (len(items) + 1) // 2
    left, right = items[:half], items[half:]
    rows = []
    for index, (name, value) in enumerate(left):
        other: tuple[str, int | str] = right[index] if index < len(right) else ("", "")
        rows.append((name, value, other[0], other[1]))
    return table(rows, ("counter", "value", "counter", "value"), ("left", "right", "left", "right"))


def current_text(snapshot: Snapshot) -> str:
    """Return the current values, one per line (labels say what each counts)."""
    rows = [(_label(doc), value) for doc, value in current_values(snapshot)]
    return table(rows, ("count", "now"), ("left", "right"))


def totals_text(snapshot: Snapshot, rates: Rates | None) -> str:
    """Return the totals in two columns, or one column with a per-second rate."""
    items = totals(snapshot)
    if rates is None:
        return _two_columns([(doc.label, value) for doc, value in items])
    rows = [
        (doc.label, value, f"{rates[doc.name]:.2f}" if doc.name in rates else "?")
        for doc, value in items
    ]
    return table(rows, ("counter", "total", "per second"), ("left", "right", "right"))


def counters_dict(
    snapshot: Snapshot, rates: Rates | None = None, interval: float | None = None
) -> dict[str, Any]:
    """Return the counters for JSON: raw tables, what they are, and rates with --interval."""
    counters = snapshot.counters
    result: dict[str, Any] = {
        "sockstat": {k: dict(v) for k, v in counters.sockstat.items() if k in ("TCP", "TCP6")},
        "tcp": dict(counters.tcp),
        "tcp_ext": dict(counters.tcp_ext),
        "totals_since": totals_span(snapshot.context.initial_netns),
        "current": ["sockstat", "tcp.CurrEstab"],
        "rates": None,
    }
    if rates is not None:
        result["rates"] = {
            "interval_seconds": interval,
            "tcp": {k: rates[k] for k in counters.tcp if k in rates},
            "tcp_ext": {k: rates[k] for k in counters.tcp_ext if k in rates},
        }
    return result


__all__ = [
    "counters_dict",
    "current_heading",
    "current_text",
    "current_values",
    "totals",
    "totals_heading",
    "totals_text",
]
