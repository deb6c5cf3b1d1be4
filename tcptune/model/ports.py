"""Port lists as net.ipv4.ip_local_reserved_ports writes them: "8080,9000-9010".

Parsed into sorted, merged spans so membership and merging cost nothing
however wide a range is (ip-sysctl.rst: ip_local_reserved_ports).
"""

from __future__ import annotations

from collections.abc import Iterable

Span = tuple[int, int]
MAX_PORT = 65535


def parse_port_list(text: str) -> tuple[Span, ...]:
    """Return the merged spans of a port list, raising ValueError if it is malformed."""
    spans: list[Span] = []
    for part in text.strip().split(","):
        if not part and text.strip() == "":
            continue
        low_text, dash, high_text = part.partition("-")
        if not low_text.isdigit() or (dash and not high_text.isdigit()):
            raise ValueError(f"not a port or port range: {part!r}")
        low, high = int(low_text), int(high_text) if dash else int(low_text)
        if high > MAX_PORT or low > high:
            raise ValueError(f"not a port range within 0-{MAX_PORT}: {part!r}")
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
