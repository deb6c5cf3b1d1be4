"""Socket options: the `tcptune sockets` table and JSON, and the audit's inventory line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tcptune import __version__
from tcptune.model.tcpstates import TcpState
from tcptune.output.common import WIDTH, short_name
from tcptune.output.escape import escape

if TYPE_CHECKING:  # only annotations: an audit without socket options never loads the records
    from tcptune.model.sockopts import InventoryStatus, SocketInventory, SocketOptions
    from tcptune.run.sockets import SocketsResult

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


# --------------------------------------------------------------------------- sockets command

# ss(8)'s state names (misc/ss.c sstate_name)
SS_STATES = {
    TcpState.ESTABLISHED: "ESTAB",
    TcpState.SYN_SENT: "SYN-SENT",
    TcpState.SYN_RECV: "SYN-RECV",
    TcpState.FIN_WAIT1: "FIN-WAIT-1",
    TcpState.FIN_WAIT2: "FIN-WAIT-2",
    TcpState.TIME_WAIT: "TIME-WAIT",
    TcpState.CLOSE: "UNCONN",
    TcpState.CLOSE_WAIT: "CLOSE-WAIT",
    TcpState.LAST_ACK: "LAST-ACK",
    TcpState.LISTEN: "LISTEN",
    TcpState.CLOSING: "CLOSING",
}
GAP = "  "
SOCKETS_SCHEMA = "https://tcptune.invalid/schemas/sockets.json"  # tcptune/schemas/sockets.json
KEEPALIVE_KEYS = (
    ("idle", "keepalive_idle", "net.ipv4.tcp_keepalive_time"),
    ("interval", "keepalive_interval", "net.ipv4.tcp_keepalive_intvl"),
    ("count", "keepalive_count", "net.ipv4.tcp_keepalive_probes"),
)


def _effective(
    item: SocketOptions, attribute: str, key: str, defaults: Mapping[str, int]
) -> tuple[int | None, str]:
    """Return a keepalive value in effect and whose it is: 'own' or 'sysctl'."""
    own = getattr(item, attribute)
    if own is not None:
        return own, "own"
    return defaults.get(key), "sysctl"


def linger_text(item: SocketOptions) -> str:
    """Return 'off', '{1,0}' (close() aborts) or '{1,N}' (close() blocks up to N s)."""
    if not item.linger:
        return "off"
    return "{1,inf}" if item.linger_seconds < 0 else f"{{1,{item.linger_seconds}}}"


def keepalive_text(item: SocketOptions, defaults: Mapping[str, int], wide: bool) -> str:
    """Return 'off', or the effective idle (narrow) / idle, interval, count (wide) and whose."""
    if not item.keepalive:
        return "off"
    parts = []
    for label, attribute, key in KEEPALIVE_KEYS[: 3 if wide else 1]:
        value, whose = _effective(item, attribute, key, defaults)
        unit = "" if label == "count" else "s"
        shown = "?" if value is None else f"{value}{unit}"
        parts.append(f"{shown}({whose})" if wide else f"{shown} {whose}")
    return "/".join(parts)


def other_text(item: SocketOptions, defaults: Mapping[str, int], wide: bool) -> str:
    """Return user timeout, linger2 and reuse flags in short form."""
    parts = []
    if item.user_timeout_ms:
        parts.append(f"uto={item.user_timeout_ms / 1000:g}s")
    if item.linger2 is not None:
        parts.append("l2=RST" if item.linger2 < 0 else f"l2={item.linger2}s")
    elif wide and item.state in (TcpState.FIN_WAIT2, TcpState.FIN_WAIT1):
        parts.append(f"l2={defaults.get('net.ipv4.tcp_fin_timeout', '?')}s(sysctl)")
    if wide or item.state is TcpState.LISTEN:  # accepted sockets inherit them (sk_clone_lock)
        if item.reuseaddr:
            parts.append("ra")
        if item.reuseport:
            parts.append("rp")
    return ",".join(parts) or "-"


def owner_text(
    inventory: SocketInventory, item: SocketOptions, wide: bool, width: int = WIDTH
) -> str:
    """Return 'name[pid]' (narrow: the first holder, '+N', the name cut to ``width``), escaped."""
    owners = inventory.owners(item.inode)
    if not owners:
        return "-"
    if wide:
        return ",".join(f"{escape(o.name)}[{o.pid}]" for o in owners)
    suffix = f"[{owners[0].pid}]" + (f"+{len(owners) - 1}" if len(owners) > 1 else "")
    name = escape(owners[0].name)
    room = max(width - len(suffix), 4)
    return (name if len(name) <= room else name[: room - 1] + "…") + suffix


def _order(item: SocketOptions) -> tuple[bool, int, str, int]:
    """Listeners first, then by local port and peer: a server's sockets stay together."""
    return (
        item.state is not TcpState.LISTEN,
        item.local.port,
        item.remote.address,
        item.remote.port,
    )


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def sockets_text(result: SocketsResult, wide: bool = False) -> str:
    """Return the per-socket table; narrow fits 80 columns (cells are cut, the owner last)."""
    inventory = result.status.inventory
    assert inventory is not None
    rows = []
    for item in sorted(result.shown, key=_order):
        local = str(item.local) if wide else str(item.local.port)
        peer = "*" if item.state is TcpState.LISTEN else str(item.remote)
        rows.append(
            [
                SS_STATES[item.state],
                local,
                peer if wide else _cut(peer, 21),
                keepalive_text(item, result.defaults, wide),
                linger_text(item),
                other_text(item, result.defaults, wide),
                "",  # the owner: cut to what is left of the 80 columns below
            ]
        )
    headers = [
        "State",
        "Local" if wide else "Port",
        "Peer",
        "Keepalive",
        "Linger",
        "Other",
        "Owner",
    ]
    if not wide:
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
        room = WIDTH - sum(widths[:-1]) - len(GAP) * (len(widths) - 1)
    else:
        room = WIDTH
    for row, item in zip(rows, sorted(result.shown, key=_order), strict=True):
        row[-1] = owner_text(inventory, item, wide, room)
    lines = [_columns(headers, rows)] if rows else []
    total = len(inventory.sockets)
    lines.append(
        f"{len(result.shown)} of {total} TCP sockets shown (TIME-WAIT and SYN-RECV have no options)"
    )
    if not wide:
        lines.append("keepalive: idle in effect; own = TCP_KEEPIDLE, sysctl = tcp_keepalive_time")
    return "\n".join(lines) + "\n"


def _columns(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = [
        GAP.join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    ]
    return "\n".join(lines)


def sockets_dict(result: SocketsResult) -> dict[str, Any]:
    """Return the sockets document described by tcptune/schemas/sockets.json."""
    inventory = result.status.inventory
    document: dict[str, Any] = {
        "schema": 1,
        "tool": {"name": "tcptune", "version": __version__},
        "netns": result.netns_name,
        "available": inventory is not None,
        "reason": result.status.unavailable,
        "defaults": {short_name(k): v for k, v in result.defaults.items()},
        "total": len(inventory.sockets) if inventory else 0,
        "sockets": [],
    }
    if inventory is None:
        return document
    for item in result.shown:
        keepalive: dict[str, Any] = {"on": item.keepalive}
        for label, attribute, key in KEEPALIVE_KEYS:
            value, whose = _effective(item, attribute, key, result.defaults)
            keepalive[label] = {"value": value, "source": whose}
        document["sockets"].append(
            {
                "inode": item.inode,
                "state": item.state.label,
                "local": {"address": item.local.address, "port": item.local.port},
                "remote": {"address": item.remote.address, "port": item.remote.port},
                "uid": item.uid,
                "linger": {
                    "on": item.linger,
                    "seconds": item.linger_seconds if item.linger else None,
                },
                "keepalive": keepalive,
                "user_timeout_ms": item.user_timeout_ms,
                "linger2": {
                    "value": item.linger2,
                    "source": "sysctl" if item.linger2 is None else "own",
                },
                "reuseaddr": item.reuseaddr,
                "reuseport": item.reuseport,
                "owners": [
                    {"pid": o.pid, "name": o.name, "user": o.user}
                    for o in inventory.owners(item.inode)
                ],
            }
        )
    return document
