"""Findings about settings: the profile's targets, and settings that conflict."""

from __future__ import annotations

from collections.abc import Iterator

from tcptune.advise.base import Evidence, FindingDoc, finding
from tcptune.model.findings import Finding, Severity
from tcptune.model.ports import contains, format_port_list, merge_spans, parse_port_list
from tcptune.model.snapshot import ReadStatus
from tcptune.model.sysctls import Scope, short_name
from tcptune.model.units import show_value
from tcptune.model.values import spec_for

PROFILE_MISMATCH = FindingDoc(
    "profile-mismatch",
    "Setting differs from the profile",
    "A live sysctl differs from what the chosen profile wants",
    "The profile sets a target for this key for the workload it describes; the live value "
    "differs. The profile's why says what the target buys, its risk what it costs where "
    "the workload does not fit.",
    ("tcptune profiles show PROFILE", "ip-sysctl.rst"),
)
PROFILE_KEY_ABSENT = FindingDoc(
    "profile-key-absent",
    "The profile sets a key this kernel or namespace does not have",
    "A profile key is missing here: older kernel, or host-wide key",
    "A key the kernel lacks cannot be applied; a host-wide key (such as tcp_max_orphans) "
    "is only visible from the host's initial network namespace, so a container cannot "
    "read or set it.",
    ("ip-sysctl.rst", "net/ipv4/sysctl_net_ipv4.c (ipv4_table vs ipv4_net_table)"),
)
TW_RECYCLE = FindingDoc(
    "tw-recycle",
    "tcp_tw_recycle is set: it breaks clients behind NAT",
    "tcp_tw_recycle dropped connections from NAT; removed in Linux 4.12",
    "tcp_tw_recycle made the kernel reject SYNs whose TCP timestamp was lower than the "
    "last seen from the same IP address. Clients behind one NAT address have unrelated "
    "timestamp clocks, so their connections failed at random. Linux 4.10 randomised "
    "timestamp offsets per connection, which made it useless, and 4.12 removed it. Any "
    "configuration that still sets it is wrong on an old kernel and an error on a new one "
    "(sysctl --system reports the unknown key).",
    ("Linux commit 4396e46187ca (tcp: remove tcp_tw_recycle)", "RFC 7323 §5.8", "RFC 6191"),
)
TIMESTAMPS_TW_REUSE = FindingDoc(
    "timestamps-off",
    "tcp_timestamps=0 silently disables tcp_tw_reuse and PAWS",
    "Without timestamps, tcp_tw_reuse does nothing and PAWS is off",
    "tcp_tw_reuse reuses a TIME_WAIT port only when TCP timestamps prove the new "
    "connection's segments cannot be confused with the old ones; with tcp_timestamps=0 "
    "there are no timestamps, so reuse never happens. PAWS (protection against wrapped "
    "sequence numbers) also needs timestamps, which matters on fast links.",
    (
        "ip-sysctl.rst: tcp_timestamps, tcp_tw_reuse",
        "RFC 7323 §5",
        "net/ipv4/tcp_ipv4.c tcp_twsk_unique",
    ),
)
PORT_RANGE_LISTENERS = FindingDoc(
    "port-range-listeners",
    "Listening ports inside the ephemeral port range",
    "A listener's port in ip_local_port_range can be taken by connect()",
    "Ports in ip_local_port_range are handed out for outgoing connections. A server "
    "listening on a port inside that range can find it taken by an outgoing connection "
    "when it restarts (bind: Address already in use). Add such ports to "
    "ip_local_reserved_ports, or move the range.",
    ("ip-sysctl.rst: ip_local_port_range, ip_local_reserved_ports",),
)
OUT_OF_RANGE = FindingDoc(
    "setting-out-of-range",
    "A setting holds a value outside its meaningful range",
    "The kernel accepted a value that makes no sense for this setting",
    "Many TCP sysctls accept any integer, so a typo or a bad automation run can leave a "
    "value outside the range that means anything. That range is tcptune's sanity policy, "
    "not the kernel's limit: the limits setsockopt() enforces for the same option, or the "
    "values the documentation defines; the kernel's handler often takes more (any int for "
    "the time keys, 0 to 255 for the u8 ones such as tcp_keepalive_probes, >= 0 for "
    "somaxconn). The effect is rarely what was "
    "meant; for example tcp_keepalive_probes=0 resets an idle SO_KEEPALIVE connection "
    "without sending a single probe, and an unknown mode number behaves like one of the "
    "known ones.",
    ("ip-sysctl.rst", "include/net/tcp.h (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPCNT)"),
)
REUSEPORT = FindingDoc(
    "reuseport",
    "Several listeners share one address and port (SO_REUSEPORT)",
    "SO_REUSEPORT listeners: kernel load balancing and its caveats",
    "Several sockets listening on the same address and port means SO_REUSEPORT: the "
    "kernel spreads new connections over them by a hash of the 4-tuple (or a BPF "
    "program). Any process of the same effective user can bind another such listener "
    "and take a share. Closing one listener resets the connections queued on it unless "
    "net.ipv4.tcp_migrate_req=1 (Linux 5.14+). On Linux SO_REUSEADDR never allows two "
    "listeners on one address and port: it only lets bind() succeed while non-listening "
    "sockets (TIME_WAIT or any other state) still hold the port, and only if they set "
    "SO_REUSEADDR too (unlike BSD and Windows, where it allows more).",
    (
        "man 7 socket (SO_REUSEPORT, SO_REUSEADDR)",
        "ip-sysctl.rst: tcp_migrate_req",
        "Linux commit c617f398edd4 (SO_REUSEPORT, 3.9)",
    ),
)


def check_profile(ev: Evidence) -> Iterator[Finding]:
    """Compare each profile target with the live value."""
    if ev.profile is None:
        return
    for name, target in ev.profile.targets.items():
        reading = ev.snapshot.reading(name)
        spec = spec_for(name, target.value)
        current = reading.value if reading is not None else None
        status = reading.status if reading is not None else ReadStatus.ABSENT
        if status is not ReadStatus.OK:
            scope_host = spec.scope is Scope.HOST
            why = reading.reason if reading else "not read by this inspection"
            severity = Severity.INFO if target.optional or scope_host else Severity.WARNING
            yield finding(
                PROFILE_KEY_ABSENT,
                severity,
                [f"{name}: {why}"],
                "Apply it from the host's initial namespace"
                if scope_host
                else "Mark it optional in the profile, or use a kernel that has it.",
                title=f"{name}: {status.value}",
                subject=name,
            )
            continue
        if target.satisfied_by(current):
            continue
        shown = show_value(current, spec.unit, spec.modes) if current is not None else "?"
        yield finding(
            PROFILE_MISMATCH,
            Severity.WARNING,
            [f"{name} = {shown}; profile {ev.profile.name} wants {target.describe()}"],
            f"See the plan with `tcptune apply {ev.profile.name}`, then add --apply. "
            f"What it costs: {target.risk}",
            title=f"{short_name(name)} differs from {ev.profile.name}",
            explanation=target.why,
            subject=name,
            references=target.references,
            data={
                "current": list(current) if isinstance(current, tuple) else current,
                "target": target.describe(),
                "why": target.why,
                "risk": target.risk,
            },
        )


def check_tw_recycle(ev: Evidence) -> Iterator[Finding]:
    """Flag tcp_tw_recycle enabled live or set by the profile."""
    live = ev.int_value("net.ipv4.tcp_tw_recycle")
    target = ev.profile.targets.get("net.ipv4.tcp_tw_recycle") if ev.profile else None
    # A profile that pins it to 0 (on kernels that still have it) is right, not a risk.
    in_profile = target is not None and not target.satisfied_by(0)
    if not live and not in_profile:
        return
    evidence = []
    if live:
        evidence.append(f"net.ipv4.tcp_tw_recycle = {live} on this kernel")
    if in_profile and ev.profile is not None:
        evidence.append(f"profile {ev.profile.name} enables net.ipv4.tcp_tw_recycle")
    yield finding(
        TW_RECYCLE,
        Severity.CRITICAL,
        evidence,
        "Set it to 0 now and remove it from every sysctl.conf / sysctl.d file; for "
        "outbound TIME_WAIT pressure use tcp_tw_reuse=1 instead.",
    )


def check_timestamps(ev: Evidence) -> Iterator[Finding]:
    """Warn when tcp_timestamps=0 makes tcp_tw_reuse a no-op."""
    if ev.int_value("net.ipv4.tcp_timestamps") != 0:
        return
    reuse = ev.int_value("net.ipv4.tcp_tw_reuse")
    evidence = ["net.ipv4.tcp_timestamps = 0"]
    if reuse:
        evidence.append(f"net.ipv4.tcp_tw_reuse = {reuse}: has no effect without timestamps")
    yield finding(
        TIMESTAMPS_TW_REUSE,
        Severity.WARNING,
        evidence,
        "Set net.ipv4.tcp_timestamps=1 (the default) unless a documented middlebox problem "
        "requires otherwise.",
    )


def check_port_range(ev: Evidence) -> Iterator[Finding]:
    """Find listeners whose port lies in the ephemeral range and is not reserved."""
    port_range = ev.value("net.ipv4.ip_local_port_range")
    reserved_spec = ev.value("net.ipv4.ip_local_reserved_ports")
    if not isinstance(port_range, tuple) or ev.details is None:
        return
    # The inspector has validated the list; an unreadable one counts as empty.
    reserved = parse_port_list(reserved_spec) if isinstance(reserved_spec, str) else ()
    low, high = port_range
    exposed = sorted(
        {
            item.local.port
            for item in ev.details.listeners
            if low <= item.local.port <= high and not contains(reserved, item.local.port)
        }
    )
    if not exposed:
        return
    ports = ",".join(str(port) for port in exposed)
    # The sysctl replaces the whole list: keep what is already reserved.
    wanted = format_port_list(merge_spans([*reserved, *((p, p) for p in exposed)]))
    yield finding(
        PORT_RANGE_LISTENERS,
        Severity.WARNING,
        [f"ip_local_port_range = {low}-{high}", f"listening inside it: {ports}"],
        f"sysctl -w net.ipv4.ip_local_reserved_ports={wanted} (the list replaces the old one, "
        "so it keeps what is reserved already; persist it too), or move the listeners below "
        "the range.",
        data={"ports": exposed},
    )


def check_ranges(ev: Evidence) -> Iterator[Finding]:
    """Flag live values outside the range the catalogue gives for each setting."""
    for name, reading in ev.snapshot.sysctls.items():
        spec, value = reading.spec, reading.value
        if reading.status is not ReadStatus.OK or not isinstance(value, int):
            continue
        low = spec.minimum if spec.minimum is not None else value
        high = spec.maximum if spec.maximum is not None else value
        if low <= value <= high:
            continue
        evidence = [f"{name} = {value}, outside tcptune's sanity range {low}..{high}"]
        if spec.kernel_accepts:
            evidence.append(f"the kernel accepts {spec.kernel_accepts}")
        yield finding(
            OUT_OF_RANGE,
            Severity.WARNING,
            evidence,
            f"Set {name} to a value in {low}..{high}; `tcptune explain {name}` says what each "
            "value does, and a profile can pin it.",
            title=f"{short_name(name)} = {value} is outside the sensible {low}..{high}",
            subject=name,
        )


def check_reuseport(ev: Evidence) -> Iterator[Finding]:
    """Show groups of listeners sharing an address and port, and who owns them."""
    if ev.details is None:
        return
    groups: dict[str, list[int]] = {}
    for item in ev.details.listeners:
        groups.setdefault(str(item.local), []).append(item.inode)
    shared = {local: inodes for local, inodes in groups.items() if len(inodes) > 1}
    for local, inodes in sorted(shared.items()):
        port = int(local.rsplit(":", 1)[1])
        owners = ev.owners_of(inodes, [port] * len(inodes))
        names = sorted({f"{o.owner.name}[{o.owner.pid}] ({o.owner.user})" for o in owners})
        evidence = [f"{len(inodes)} listeners on {local}"]
        if names:
            evidence.append("held by " + ", ".join(names))
        migrate = ev.int_value("net.ipv4.tcp_migrate_req")
        evidence.append(f"net.ipv4.tcp_migrate_req = {migrate}")
        distinct = {o.owner.name for o in owners}
        severity = Severity.WARNING if len(distinct) > 1 else Severity.INFO
        yield finding(
            REUSEPORT,
            severity,
            evidence,
            "Expected for multi-worker servers (nginx reuseport, envoy); check every holder "
            "is meant to serve this port. Set tcp_migrate_req=1 so restarts do not reset "
            "queued connections, if every listener in the group has the same socket options "
            "(ip-sysctl.rst warns that migrating between differently set listeners may crash "
            "applications).",
            title=f"{len(inodes)} listeners share {local} (SO_REUSEPORT)",
            subject=local,
        )


DOCS = (
    PROFILE_MISMATCH,
    OUT_OF_RANGE,
    PROFILE_KEY_ABSENT,
    TW_RECYCLE,
    TIMESTAMPS_TW_REUSE,
    PORT_RANGE_LISTENERS,
    REUSEPORT,
)
CHECKS = (
    check_profile,
    check_ranges,
    check_tw_recycle,
    check_timestamps,
    check_port_range,
    check_reuseport,
)
