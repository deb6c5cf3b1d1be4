"""The catalogue of sysctls tcptune knows: unit, scope, sanity range, kernel range and source.

This table is the single source for what each key means to the inspector (how to
parse and show it), the profile validator (what values are in range) and the
applier (whether a container can write it). Facts come from the kernel's
Documentation/networking/ip-sysctl.rst and the handlers in
net/ipv4/sysctl_net_ipv4.c and net/core/sysctl_net_core.c (Linux 6.x).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import field
from types import MappingProxyType

from tcptune.model.record import record


class Unit(enum.Enum):
    """How a sysctl's value is read and shown."""

    SECONDS = "seconds"
    COUNT = "count"
    MODE = "mode"  # a small enumerated integer, e.g. tcp_tw_reuse 0/1/2
    PORT_RANGE = "port range"  # two integers, "low high"
    PORT_LIST = "port list"  # comma-separated ports and ranges, may be empty
    TEXT = "text"  # words, e.g. a congestion control name (keys outside the catalogue)


class Scope(enum.Enum):
    """Where a sysctl lives in the kernel."""

    NETNS = "per network namespace"
    # Registered only in the initial network namespace (the global ipv4_table
    # in net/ipv4/sysctl_net_ipv4.c): a container's namespace does not show it.
    HOST = "host-wide (initial network namespace only)"


@record
class SysctlSpec:
    """One known sysctl: how to read it, what range it takes, where it applies."""

    name: str
    unit: Unit
    scope: Scope
    summary: str
    # tcptune's sanity policy: inclusive bounds of the values that make sense (a profile
    # must respect them, the audit flags a live value outside them). Not the kernel's
    # limits, which are often wider: see kernel_accepts.
    minimum: int | None = None
    maximum: int | None = None
    removed_in: str | None = None  # kernel version that dropped the key
    modes: Mapping[int, str] = field(default_factory=dict)  # meaning of each MODE value
    # What the kernel's handler stores (net/ipv4/sysctl_net_ipv4.c, net/core/sysctl_net_core.c)
    kernel_accepts: str = ""


def _spec(*specs: SysctlSpec) -> Mapping[str, SysctlSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


# Ordered as the audit shows them: keepalive, teardown, ports, handshake.
KNOWN_SYSCTLS: Mapping[str, SysctlSpec] = _spec(
    # MAX_TCP_KEEPIDLE/KEEPINTVL (32767) and MAX_TCP_KEEPCNT (127) in
    # include/net/tcp.h are the limits setsockopt enforces; the sysctls take
    # the same meaning, so tcptune's sanity range holds them to those limits
    # although the sysctl handlers take more (kernel_accepts).
    SysctlSpec(
        "net.ipv4.tcp_keepalive_time",
        Unit.SECONDS,
        Scope.NETNS,
        "idle time before the first keepalive probe (SO_KEEPALIVE sockets only)",
        1,
        32767,
        kernel_accepts="any int of seconds that fits in jiffies (proc_dointvec_jiffies, no bounds)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_keepalive_intvl",
        Unit.SECONDS,
        Scope.NETNS,
        "time between keepalive probes",
        1,
        32767,
        kernel_accepts="any int of seconds that fits in jiffies (proc_dointvec_jiffies, no bounds)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_keepalive_probes",
        Unit.COUNT,
        Scope.NETNS,
        "unanswered probes before the connection is reset",
        1,
        127,
        kernel_accepts="0..255 (proc_dou8vec_minmax, a u8)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_fin_timeout",
        Unit.SECONDS,
        Scope.NETNS,
        "lifetime of an orphaned FIN_WAIT_2 socket (not TIME_WAIT)",
        1,
        86400,
        kernel_accepts="any int of seconds that fits in jiffies (proc_dointvec_jiffies, no bounds)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_tw_reuse",
        Unit.MODE,
        Scope.NETNS,
        "reuse TIME_WAIT for new outgoing connections (0 off, 1 on, 2 loopback)",
        0,
        2,
        modes=MappingProxyType({0: "off", 1: "on", 2: "loopback only"}),
        kernel_accepts="0..2 (proc_dou8vec_minmax)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_tw_recycle",
        Unit.MODE,
        Scope.NETNS,
        "removed: broke clients behind NAT",
        0,
        1,
        removed_in="4.12",
        kernel_accepts="any int before 4.12 (proc_dointvec); the key is gone since",
    ),
    SysctlSpec(
        "net.ipv4.tcp_max_tw_buckets",
        Unit.COUNT,
        Scope.NETNS,
        "TIME_WAIT sockets held at once; beyond it sockets skip TIME_WAIT",
        0,
        2**31 - 1,
        kernel_accepts="any int (proc_dointvec, no bounds)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_max_orphans",
        Unit.COUNT,
        Scope.HOST,
        "sockets no process holds, host-wide; beyond it they are reset",
        0,
        2**31 - 1,
        kernel_accepts="any int (proc_dointvec, no bounds)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_orphan_retries",
        Unit.COUNT,
        Scope.NETNS,
        "retries before killing an orphaned socket (0 means 8)",
        0,
        255,
        kernel_accepts="0..255 (proc_dou8vec_minmax, a u8)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_retries2",
        Unit.COUNT,
        Scope.NETNS,
        "retransmission timeout (as a count at minimum RTO) before a connection is dropped",
        0,
        255,
        kernel_accepts="0..255 (proc_dou8vec_minmax, a u8)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_syn_retries",
        Unit.COUNT,
        Scope.NETNS,
        "SYN retransmissions for an outgoing connect()",
        1,
        127,
        kernel_accepts="1..127 (proc_dou8vec_minmax, MAX_TCP_SYNCNT)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_synack_retries",
        Unit.COUNT,
        Scope.NETNS,
        "SYN-ACK retransmissions for a passive open",
        0,
        255,
        kernel_accepts="0..255 (proc_dou8vec_minmax, a u8)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_syncookies",
        Unit.MODE,
        Scope.NETNS,
        "send SYN cookies when the SYN queue overflows (1) or always (2)",
        0,
        2,
        modes=MappingProxyType({0: "off", 1: "on overflow", 2: "always"}),
        kernel_accepts="0..255 (proc_dou8vec_minmax, a u8)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_max_syn_backlog",
        Unit.COUNT,
        Scope.NETNS,
        "half-open (SYN_RECV) requests per listener; only enforced when syncookies=0",
        1,
        2**31 - 1,
        kernel_accepts="any int (proc_dointvec, no bounds)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_timestamps",
        Unit.MODE,
        Scope.NETNS,
        "RFC 7323 timestamps; needed by tcp_tw_reuse and PAWS",
        0,
        2,
        modes=MappingProxyType({0: "off", 1: "on, random offset", 2: "on, no offset"}),
        kernel_accepts="0..255 (proc_dou8vec_minmax, a u8)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_rfc1337",
        Unit.MODE,
        Scope.NETNS,
        "drop RSTs for TIME_WAIT sockets (RFC 1337 TIME-WAIT assassination)",
        0,
        1,
        modes=MappingProxyType({0: "off", 1: "on"}),
        kernel_accepts="0..255 (proc_dou8vec_minmax, a u8)",
    ),
    SysctlSpec(
        "net.ipv4.tcp_migrate_req",
        Unit.MODE,
        Scope.NETNS,
        "migrate queued requests when a SO_REUSEPORT listener closes",
        0,
        1,
        modes=MappingProxyType({0: "off", 1: "on"}),
        kernel_accepts="0..1 (proc_dou8vec_minmax)",
    ),
    SysctlSpec(
        "net.ipv4.ip_local_port_range",
        Unit.PORT_RANGE,
        Scope.NETNS,
        "ephemeral ports for outgoing connections",
        1,
        65535,
        kernel_accepts=(
            "1..65535, low <= high and low >= ip_unprivileged_port_start (ipv4_local_port_range())"
        ),
    ),
    SysctlSpec(
        "net.ipv4.ip_local_reserved_ports",
        Unit.PORT_LIST,
        Scope.NETNS,
        "ports left out of the ephemeral range",
        kernel_accepts="a port list (proc_do_large_bitmap)",
    ),
    SysctlSpec(
        "net.core.somaxconn",
        Unit.COUNT,
        Scope.NETNS,
        "upper limit on a listener's accept-queue backlog",
        1,
        2**31 - 1,
        kernel_accepts=">= 0 (proc_dointvec_minmax, SYSCTL_ZERO); 0 caps every backlog at 0",
    ),
)

# Keys the inspector reads besides the catalogue: kernel-internal facts that
# advice and the plan depend on (not shown as settings).
AUXILIARY_SYSCTLS: tuple[SysctlSpec, ...] = (
    SysctlSpec(
        "net.ipv4.ip_unprivileged_port_start",
        Unit.COUNT,
        Scope.NETNS,
        "lowest port a process without CAP_NET_BIND_SERVICE may bind",
        0,
        65535,
    ),
)


# net.* keys every network namespace shows (they sit in ipv4_net_table) although
# their value is one for the whole kernel: a write from inside a container
# changes the host. Name -> the kernel code that makes it global.
GLOBAL_BEHIND_NAMESPACE: Mapping[str, str] = MappingProxyType(
    {
        "net.ipv4.tcp_allowed_congestion_control": (
            "proc_allowed_congestion_control() calls tcp_set_allowed_congestion_control(), "
            "which marks algorithms in the kernel's one tcp_cong_list "
            "(net/ipv4/sysctl_net_ipv4.c, net/ipv4/tcp_cong.c)"
        ),
    }
)


# The short form of a sysctl name, as reports show keys and users type them
# (tcp_fin_timeout for net.ipv4.tcp_fin_timeout): the one rule for display,
# --ignore ID:KEY and explain lookups.
SHORT_NAME_PREFIXES: tuple[str, ...] = ("net.ipv4.", "net.core.")


def short_name(name: str) -> str:
    """Return ``name`` without its net.ipv4. or net.core. prefix (unchanged if none)."""
    for prefix in SHORT_NAME_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name
