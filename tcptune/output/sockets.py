"""Socket options: the `tcptune sockets` table and JSON, and the audit's inventory line."""

from __future__ import annotations

from typing import Any

from tcptune.model.sockopts import InventoryStatus

FALLBACK = "keepalive use is inferred from armed timers instead"


def inventory_lines(status: InventoryStatus | None) -> list[str]:
    """Return the audit's one-line account of the socket-option inventory (or why none)."""
    if status is None:
        return []
    inventory = status.inventory
    if inventory is None:
        return [f"{status.unavailable}; {FALLBACK}"]
    owned = sum(1 for s in inventory.sockets if inventory.holders.get(s.inode))
    return [
        f"{len(inventory.sockets)} sockets' options read from the kernel (BPF iterator), "
        f"{owned} with a known owner"
    ]


def inventory_dict(status: InventoryStatus | None) -> dict[str, Any] | None:
    """Return the audit JSON's socket_options summary."""
    if status is None:
        return None
    inventory = status.inventory
    return {
        "available": inventory is not None,
        "reason": status.unavailable,
        "sockets": len(inventory.sockets) if inventory else None,
        "hz": inventory.hz if inventory else None,
        "cost_ms": round(inventory.cost_seconds * 1000, 1) if inventory else None,
    }
