"""Port lists as net.ipv4.ip_local_reserved_ports writes them: "8080,9000-9010".

Parsed into sorted, merged spans so membership and merging cost nothing
however wide a range is (ip-sysctl.rst: ip_local_reserved_ports). This is the
only port-list parser: the value model, the profile validator and the
advisor all go through :func:`parse_port_list`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

Span = tuple[int, int]
MAX_PORT = 65535
# ASCII digits only: str.isdigit() also accepts "٨٠", which int() reads as 80.
_ITEM = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def _port(digits: str) -> int:
    """Return a port number, refusing one above MAX_PORT without converting huge digit runs."""
    significant = digits.lstrip("0")
    if len(significant) > len(str(MAX_PORT)) or int(digits) > MAX_PORT:
        shown = digits if len(digits) <= 12 else f"{digits[:12]}…"
        raise ValueError(f"port {shown} is above {MAX_PORT}")
    return int(digits)


def parse_port_list(text: str) -> tuple[Span, ...]:
    """Return the merged spans of a port list ('' is the empty list), or raise ValueError."""
    stripped = text.strip()
    if not stripped:
        return ()
    spans: list[Span] = []
    for part in stripped.split(","):
        match = _ITEM.fullmatch(part)
        if match is None:
            raise ValueError(f"not a port or port range: {part!r}")
        low = _port(match[1])
        high = low if match[2] is None else _port(match[2])
        if low > high:
            raise ValueError(f"port range {part}: {low} is above {high}")
        spans.append((low, high))
    return merge_spans(spans)


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Return the spans sorted, with overlapping and adjacent ones joined."""
    merged: list[Span] = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return tuple(merged)


def contains(spans: Iterable[Span], port: int) -> bool:
    """Return whether ``port`` lies in any of the spans."""
    return any(low <= port <= high for low, high in spans)


def format_port_list(spans: Iterable[Span]) -> str:
    """Return spans in the kernel's syntax, e.g. '8080,9000-9010'."""
    return ",".join(f"{low}" if low == high else f"{low}-{high}" for low, high in spans)
