"""The reviewed meaning of every kernel counter tcptune shows, keyed by the kernel's own name.

One table for every text about a counter: the audit's counter labels, the Prometheus HELP
strings, the Nagios perfdata and finding evidence take their wording from here, and
tests/model/test_kernelcounters.py fails on any counter shown or named that is not in it.
Each entry names the kernel function that counts it (Linux 6.18) and, where a test on the
running kernel shows the behaviour, the claim id (tcptune/reference/claims.py).

Two kinds of numbers live in /proc/net and must not be read alike (issue 10, items 18/21):
Tcp and TcpExt counters are totals per network namespace since it was created (since boot
only in the initial namespace), while CurrEstab and the sockstat fields are current values.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from tcptune.model.record import record


class Kind(enum.Enum):
    """Whether a number is a running total or a value at this moment."""

    TOTAL = "total"  # only grows; a rate over an interval means something
    CURRENT = "current"  # a count of sockets right now


class Scope(enum.Enum):
    """Whose sockets a number counts."""

    NETNS = "this network namespace"
    HOST = "the whole host (every namespace)"


@record
class CounterDoc:
    """One kernel counter: where it is printed, what it counts, who counts it."""

    group: str  # "Tcp" (/proc/net/snmp), "TcpExt" (/proc/net/netstat), "TCP"/"TCP6" (sockstat)
    name: str  # the kernel's field name, exactly as printed
    kind: Kind
    scope: Scope
    meaning: str  # reviewed against the source; one line, no trailing period
    source: str  # the kernel function(s) that count it
    proven_by: tuple[str, ...] = ()  # claim ids in tcptune/reference/claims.py
    note: str = ""  # a short qualifier shown next to the label (e.g. CurrEstab's states)

    @property
    def label(self) -> str:
        """Return the label the audit prints for it."""
        base = f"sockstat {self.name}" if self.group == "TCP" else self.name
        if self.group == "TCP6":
            base = f"sockstat6 {self.name}"
        return f"{base} ({self.note})" if self.note else base


def _table(*docs: CounterDoc) -> Mapping[tuple[str, str], CounterDoc]:
    return MappingProxyType({(doc.group, doc.name): doc for doc in docs})


_T, _C = Kind.TOTAL, Kind.CURRENT
_NS, _HOST = Scope.NETNS, Scope.HOST

COUNTER_DOCS: Mapping[tuple[str, str], CounterDoc] = _table(
    # /proc/net/sockstat{,6}: net/ipv4/proc.c sockstat_seq_show(), net/ipv6/proc.c.
    CounterDoc(
        "TCP",
        "inuse",
        _C,
        _NS,
        "IPv4 TCP sockets in the hash tables now (listening, connecting, connected, "
        "closing); timewait minisockets, request sockets and unbound sockets excluded",
        "sock_prot_inuse_add() in __inet_hash(), inet_ehash_nolisten(), inet_unhash()",
        ("orphan-fin-wait2-minisock", "sockstat-inuse-hashed"),
    ),
    CounterDoc(
        "TCP",
        "orphan",
        _C,
        _HOST,
        "sockets closed by their application that TCP has not finished (FIN_WAIT1, "
        "CLOSING, LAST_ACK; FIN_WAIT2 only at tcp_fin_timeout > 60); what tcp_max_orphans caps",
        "tcp_orphan_count_sum(); counted in __tcp_close(), dropped in inet_csk_destroy_sock()",
        ("orphan-fin-wait2-minisock",),
    ),
    CounterDoc(
        "TCP",
        "tw",
        _C,
        _NS,
        "timewait minisockets now, IPv4 and IPv6: TIME_WAIT and orphaned FIN_WAIT2 "
        "(tcp_fin_timeout <= 60); what tcp_max_tw_buckets caps",
        "net->ipv4.tcp_death_row.tw_refcount - 1 (inet_twsk_alloc(), inet_twsk_put())",
        ("orphan-fin-wait2-minisock", "tw-buckets-count-fin-wait2"),
    ),
    CounterDoc(
        "TCP",
        "alloc",
        _C,
        _HOST,
        "full TCP sockets allocated now, IPv4 and IPv6, in any state (timewait minisockets "
        "excluded)",
        "tcp_sockets_allocated (sk_sockets_allocated_inc() in tcp_init_sock())",
    ),
    CounterDoc(
        "TCP6",
        "inuse",
        _C,
        _NS,
        "IPv6 TCP sockets in the hash tables now; timewait minisockets and request sockets "
        "excluded",
        "net/ipv6/proc.c sockstat6_seq_show(); sock_prot_inuse_add()",
    ),
    # /proc/net/snmp Tcp: net/ipv4/proc.c snmp_seq_show_tcp_udp(), RFC 1213.
    CounterDoc(
        "Tcp",
        "CurrEstab",
        _C,
        _NS,
        "connections in ESTABLISHED or CLOSE_WAIT now (RFC 1213 tcpCurrEstab)",
        "tcp_set_state() (TCP_MIB_CURRESTAB)",
        ("currestab-close-wait",),
        note="ESTABLISHED + CLOSE_WAIT",
    ),
    CounterDoc(
        "Tcp",
        "ActiveOpens",
        _T,
        _NS,
        "connections this side started: SYNs sent by connect()",
        "tcp_connect() (TCP_MIB_ACTIVEOPENS)",
    ),
    CounterDoc(
        "Tcp",
        "PassiveOpens",
        _T,
        _NS,
        "connections a listener accepted: child sockets created by a completed handshake",
        "tcp_create_openreq_child() (TCP_MIB_PASSIVEOPENS)",
    ),
    CounterDoc(
        "Tcp",
        "AttemptFails",
        _T,
        _NS,
        "handshakes that failed: SYN_SENT or SYN_RECV ended in CLOSE, or a request was reset",
        "tcp_done(), tcp_check_req() (TCP_MIB_ATTEMPTFAILS)",
    ),
    CounterDoc(
        "Tcp",
        "EstabResets",
        _T,
        _NS,
        "direct moves from ESTABLISHED or CLOSE_WAIT to CLOSE: resets sent or received and "
        "silent timeouts alike",
        "tcp_set_state() (TCP_MIB_ESTABRESETS)",
    ),
    CounterDoc(
        "Tcp",
        "OutRsts",
        _T,
        _NS,
        "segments sent with the RST flag",
        "tcp_send_active_reset(), tcp_v4_send_reset(), tcp_v6_send_reset()",
        ("linger-zero-rst", "keepalive-timeout-rst", "retrans-timeout-silent"),
    ),
    CounterDoc(
        "Tcp",
        "RetransSegs",
        _T,
        _NS,
        "segments retransmitted",
        "__tcp_retransmit_skb() (TCP_MIB_RETRANSSEGS)",
    ),
    # /proc/net/netstat TcpExt: net/ipv4/proc.c netstat_seq_show(); names in snmp4_net_list.
    CounterDoc(
        "TcpExt",
        "ListenOverflows",
        _T,
        _NS,
        "SYNs and final handshake ACKs dropped because a listener's accept queue was full",
        "tcp_conn_request(), tcp_v4_syn_recv_sock() (LINUX_MIB_LISTENOVERFLOWS)",
        ("user-timeout-connect",),
    ),
    CounterDoc(
        "TcpExt",
        "ListenDrops",
        _T,
        _NS,
        "everything a listener dropped: each ListenOverflows drop plus other SYN or "
        "final-ACK failures (no memory, no route, ...)",
        "tcp_listendrop() in tcp_conn_request(), tcp_v4_syn_recv_sock() and others",
    ),
    CounterDoc(
        "TcpExt",
        "TCPAbortOnData",
        _T,
        _NS,
        "resets from close() with SO_LINGER {1, 0} (in flight or not), from data arriving "
        "after close(), and from an orphan reaching FIN_WAIT2 with TCP_LINGER2 < 0",
        "__tcp_close(), tcp_rcv_state_process()",
        ("linger-zero-rst", "data-after-close-rst", "linger2-negative"),
    ),
    CounterDoc(
        "TcpExt",
        "TCPAbortOnClose",
        _T,
        _NS,
        "resets from close() with unread received data (RFC 2525 2.17)",
        "__tcp_close()",
        ("unread-close-rst",),
    ),
    CounterDoc(
        "TcpExt",
        "TCPAbortOnLinger",
        _T,
        _NS,
        "resets from close() of a socket already in FIN_WAIT2 (after shutdown()) with "
        "TCP_LINGER2 < 0",
        "__tcp_close()",
        ("linger2-negative",),
    ),
    CounterDoc(
        "TcpExt",
        "TCPAbortOnTimeout",
        _T,
        _NS,
        "connections a timer gave up on: retransmission or SYN timeouts (no RST sent) and "
        "keepalive timeouts (an RST is sent)",
        "tcp_write_err() from tcp_write_timeout() and tcp_keepalive_timer()",
        ("keepalive-timeout-rst", "retrans-timeout-silent", "user-timeout-connect"),
    ),
    CounterDoc(
        "TcpExt",
        "TCPAbortOnMemory",
        _T,
        _NS,
        "resets because orphans passed tcp_max_orphans (a half or a quarter of it for idle "
        "or ICMP-hit orphans) or TCP memory (tcp_mem) ran out",
        "tcp_out_of_resources(), __tcp_close() via tcp_check_oom()",
    ),
    CounterDoc(
        "TcpExt",
        "TCPTimeWaitOverflow",
        _T,
        _NS,
        "closing sockets that skipped TIME_WAIT (or FIN_WAIT2) because tcp_max_tw_buckets "
        "timewait minisockets already existed",
        "tcp_time_wait() when inet_twsk_alloc() fails",
        ("tw-buckets-overflow", "tw-buckets-count-fin-wait2"),
    ),
    CounterDoc(
        "TcpExt",
        "TW",
        _T,
        _NS,
        "timewait minisockets (TIME_WAIT and orphaned FIN_WAIT2) started with a timeout "
        "over 4 s, counted when scheduled, not when they end",
        "__inet_twsk_schedule() (LINUX_MIB_TIMEWAITED)",
        ("tw-counters-at-schedule",),
    ),
    CounterDoc(
        "TcpExt",
        "TWKilled",
        _T,
        _NS,
        "timewait minisockets started with a timeout of 4 s or less (e.g. FIN_WAIT2 at "
        "tcp_fin_timeout <= 4), counted when scheduled",
        "__inet_twsk_schedule() (LINUX_MIB_TIMEWAITKILLED)",
        ("tw-counters-at-schedule",),
    ),
    CounterDoc(
        "TcpExt",
        "TWRecycled",
        _T,
        _NS,
        "TIME_WAIT entries taken over by a new connection on the same 4-tuple (tcp_tw_reuse, "
        "or bind() with SO_REUSEADDR then connect())",
        "__inet_check_established() (LINUX_MIB_TIMEWAITRECYCLED)",
        ("reuseaddr-tw-takeover",),
    ),
)


def counter_doc(group: str, name: str) -> CounterDoc:
    """Return the reviewed entry for a counter, or raise KeyError naming it."""
    try:
        return COUNTER_DOCS[(group, name)]
    except KeyError:
        raise KeyError(f"{group} {name} is not in the reviewed counter table") from None


def totals_span(initial_netns: bool | None) -> str:
    """Say since when Tcp/TcpExt totals count: they are per namespace, from its creation."""
    if initial_netns:
        return "since boot"
    if initial_netns is False:
        return "since this network namespace was created"
    return "since boot or namespace creation"


__all__ = ["COUNTER_DOCS", "CounterDoc", "Kind", "Scope", "counter_doc", "totals_span"]
