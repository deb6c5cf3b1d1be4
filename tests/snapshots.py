"""Constructed snapshots and profiles: frozen inputs for the pure layers (advise, plan)."""

from __future__ import annotations

from collections.abc import Mapping

from tcptune.model.heavyhitters import TopCounts
from tcptune.model.snapshot import (
    Context,
    Counters,
    Endpoint,
    Listener,
    ReadStatus,
    Snapshot,
    SocketCounts,
    SocketDetails,
    SocketOwners,
    SysctlReading,
)
from tcptune.model.sysctls import KNOWN_SYSCTLS
from tcptune.model.tcpstates import TcpState
from tcptune.model.values import SysctlValue, format_value
from tcptune.profiles.model import Profile, Target

__all__ = ["Listener", "details", "profile", "settings", "snapshot", "target"]


def settings(**values: SysctlValue) -> dict[str, SysctlReading]:
    """Return catalogue readings: kernel defaults unless given (names without net.ipv4.)."""
    defaults: dict[str, SysctlValue] = {
        "tcp_keepalive_time": 7200,
        "tcp_keepalive_intvl": 75,
        "tcp_keepalive_probes": 9,
        "tcp_fin_timeout": 60,
        "tcp_tw_reuse": 2,
        "tcp_max_tw_buckets": 262144,
        "tcp_max_orphans": 262144,
        "tcp_timestamps": 1,
        "tcp_migrate_req": 0,
        "ip_local_port_range": (32768, 60999),
        "ip_local_reserved_ports": "",
        "somaxconn": 4096,
    }
    defaults.update(values)
    readings = {}
    for name, spec in KNOWN_SYSCTLS.items():
        short = name.rsplit(".", 1)[1]
        if short in defaults:
            value = defaults[short]
            readings[name] = SysctlReading(spec, ReadStatus.OK, value, format_value(value))
        else:
            readings[name] = SysctlReading(spec, ReadStatus.ABSENT, reason="not in this test")
    return readings


def details(
    listeners: tuple[Listener, ...] = (), close_wait: Mapping[int, int] | None = None
) -> SocketDetails:
    close_wait = close_wait or {}
    by_local: dict[Endpoint, int] = {}
    for port in close_wait.values():
        by_local[Endpoint("127.0.0.1", port)] = by_local.get(Endpoint("127.0.0.1", port), 0) + 1
    return SocketDetails(
        0,
        0,
        0,
        close_wait,
        TopCounts(by_local, total=sum(by_local.values())),
        listeners,
        TopCounts(),
    )


def snapshot(
    readings: dict[str, SysctlReading] | None = None,
    socket_details: SocketDetails | None = None,
    owners: SocketOwners | None = None,
    states: Mapping[TcpState, int] | None = None,
    profile_sysctls: Mapping[str, SysctlReading] | None = None,
) -> Snapshot:
    counts = SocketCounts("netlink", dict(states or {}), {}, socket_details)
    return Snapshot(
        taken_at=0.0,
        context=Context("6.18", 4026531840, True),
        sysctls=readings or settings(),
        sockets=counts,
        counters=Counters(),
        problems=(),
        auxiliary={"net.ipv4.ip_unprivileged_port_start": 1024},
        profile_sysctls=profile_sysctls or {},
        owners=owners,
    )


def profile(*targets: Target) -> Profile:
    return Profile("t", "test", "test", None, (), {t.name: t for t in targets}, "<test>", ("t",))


def target(name: str, value: SysctlValue | None = None, **bounds: int) -> Target:
    return Target(
        name, value, bounds.get("minimum"), bounds.get("maximum"), "why", "risk", False, (), "t"
    )
