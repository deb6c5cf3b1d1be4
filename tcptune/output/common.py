"""Shared pieces of the renderers: width, tables, names, times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from tcptune.model.sysctls import short_name

__all__ = ["short_name"]

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


def iso_time(timestamp: float) -> str:
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def table(
    rows: Sequence[Sequence[object]], headers: Sequence[str], align: Sequence[str] | None = None
) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="simple", colalign=align, disable_numparse=True)


def indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())
