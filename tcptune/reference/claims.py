"""Kernel behaviour tcptune's advice depends on, each proven by a test on the running kernel.

A topic file or a finding that states one of these facts names it on a ``Proven by:`` line
(topics) or in ``FindingDoc.proven_by`` (findings). Every claim's test runs in a throwaway
network namespace (tests/kernel/test_claims.py), so a kernel that changes the behaviour fails
the suite instead of silently making the advice wrong. tests/reference/test_claims_registry.py
checks that every test named here exists and every ``Proven by:`` names a claim here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tcptune.model.record import record

TEST_MODULE = "tests/kernel/test_claims.py"


@record
class Claim:
    """One fact about the kernel, where the kernel does it, and the test that shows it."""

    id: str
    statement: str
    source: str  # the kernel function(s) that implement it
    test: str  # test function name in TEST_MODULE

    @property
    def node_id(self) -> str:
        """Return the pytest node id of the proving test."""
        return f"{TEST_MODULE}::{self.test}"


def _claims(*claims: Claim) -> Mapping[str, Claim]:
    return MappingProxyType({claim.id: claim for claim in claims})


CLAIMS: Mapping[str, Claim] = _claims(
    Claim(
        "linger-zero-rst",
        "close() with SO_LINGER {1, 0} sends an RST and counts TcpExtTCPAbortOnData, even "
        "with nothing in flight",
        "net/ipv4/tcp.c __tcp_close() -> tcp_disconnect()",
        "test_linger_zero_close_sends_rst_and_counts_abort_on_data",
    ),
    Claim(
        "unread-close-rst",
        "close() with unread received data sends an RST and counts TcpExtTCPAbortOnClose",
        "net/ipv4/tcp.c __tcp_close() (RFC 2525 2.17)",
        "test_close_with_unread_data_sends_rst_and_counts_abort_on_close",
    ),
    Claim(
        "data-after-close-rst",
        "data arriving at a closed (orphaned, full) socket is answered with an RST and counted "
        "in TcpExtTCPAbortOnData",
        "net/ipv4/tcp_input.c tcp_rcv_state_process() (TCP_FIN_WAIT1/2, RCV_SHUTDOWN)",
        "test_data_after_close_sends_rst_and_counts_abort_on_data",
    ),
    Claim(
        "linger2-negative",
        "a negative TCP_LINGER2 resets on close(): TCPAbortOnLinger only for a socket already "
        "in FIN_WAIT2 (after shutdown(SHUT_WR)), TCPAbortOnData for the usual close()",
        "net/ipv4/tcp.c __tcp_close(); net/ipv4/tcp_input.c tcp_rcv_state_process()",
        "test_negative_linger2_counts_abort_on_linger_only_from_fin_wait2",
    ),
    Claim(
        "orphan-fin-wait2-minisock",
        "with tcp_fin_timeout <= 60 s an orphaned FIN_WAIT2 socket is a timewait minisocket: "
        "counted in sockstat tw, not in inuse; /proc/net/tcp shows st 05 and inode 0",
        "net/ipv4/tcp_input.c tcp_rcv_state_process() -> tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)",
        "test_orphaned_fin_wait2_is_a_timewait_minisocket",
    ),
    Claim(
        "tw-counters-at-schedule",
        "TcpExtTW and TWKilled count timewait minisockets when they are scheduled (TWKilled "
        "for a timeout <= 4 s), orphaned FIN_WAIT2 included, not when they end",
        "net/ipv4/inet_timewait_sock.c __inet_twsk_schedule()",
        "test_tw_and_twkilled_count_when_scheduled",
    ),
    Claim(
        "time-wait-fixed",
        "TIME_WAIT lasts TCP_TIMEWAIT_LEN (60 s) whatever tcp_fin_timeout says",
        "include/net/tcp.h TCP_TIMEWAIT_LEN; net/ipv4/tcp_minisocks.c tcp_time_wait()",
        "test_time_wait_length_ignores_tcp_fin_timeout",
    ),
    Claim(
        "keepalive-opt-in",
        "the tcp_keepalive_* sysctls arm no timer on sockets without SO_KEEPALIVE, and "
        "TCP_KEEPIDLE overrides tcp_keepalive_time",
        "net/ipv4/tcp_timer.c tcp_set_keepalive(); include/net/tcp.h keepalive_time_when()",
        "test_keepalive_sysctls_apply_only_to_so_keepalive_sockets",
    ),
    Claim(
        "keepalive-timeout-rst",
        "a keepalive give-up sends an RST and counts TcpExtTCPAbortOnTimeout",
        "net/ipv4/tcp_timer.c tcp_keepalive_timer() -> tcp_send_active_reset(), tcp_write_err()",
        "test_keepalive_give_up_sends_rst",
    ),
    Claim(
        "retrans-timeout-silent",
        "a retransmission timeout ends the connection with ETIMEDOUT and no RST",
        "net/ipv4/tcp_timer.c tcp_write_timeout() -> tcp_write_err()",
        "test_retransmission_timeout_sends_no_rst",
    ),
    Claim(
        "currestab-close-wait",
        "Tcp CurrEstab counts sockets in ESTABLISHED and CLOSE_WAIT",
        "net/ipv4/tcp.c tcp_set_state() (TCP_MIB_CURRESTAB)",
        "test_curr_estab_counts_established_and_close_wait",
    ),
    Claim(
        "close-wait-exits",
        "CLOSE_WAIT also ends by shutdown(SHUT_WR) (to LAST_ACK) or ss -K; the descriptor "
        "stays until close()",
        "net/ipv4/tcp.c tcp_shutdown(), tcp_abort()",
        "test_close_wait_ends_without_close_but_descriptor_stays",
    ),
    Claim(
        "reuseaddr-tw-takeover",
        "with SO_REUSEADDR on the old and the new socket, bind() to a TIME_WAIT port then "
        "connect() to the same peer takes the TIME_WAIT over when it used timestamps, even "
        "with tcp_tw_reuse=0 (TcpExtTWRecycled rises, the TIME_WAIT entry goes)",
        "net/ipv4/tcp_ipv4.c tcp_twsk_unique() (twp == NULL); "
        "net/ipv4/inet_hashtables.c __inet_check_established()",
        "test_reuseaddr_bind_connect_takes_over_time_wait",
    ),
    Claim(
        "listener-restart-eaddrinuse",
        "a listener's port with a TIME_WAIT socket left by the server's own close cannot be "
        "bound again (EADDRINUSE) unless the old and the new socket set SO_REUSEADDR",
        "net/ipv4/inet_connection_sock.c inet_csk_bind_conflict() (sk_reuse on both)",
        "test_listener_without_reuseaddr_cannot_restart_over_its_time_wait",
    ),
    Claim(
        "user-timeout-connect",
        "TCP_USER_TIMEOUT also bounds connect(): a SYN that is never answered fails with "
        "ETIMEDOUT after the user timeout",
        "net/ipv4/tcp_timer.c tcp_write_timeout(), retransmits_timed_out()",
        "test_user_timeout_bounds_connect",
    ),
    Claim(
        "tw-buckets-overflow",
        "past tcp_max_tw_buckets a closing socket skips TIME_WAIT, counted in "
        "TcpExtTCPTimeWaitOverflow",
        "net/ipv4/inet_timewait_sock.c inet_twsk_alloc(); net/ipv4/tcp_minisocks.c tcp_time_wait()",
        "test_max_tw_buckets_overflow_counts_time_wait_overflow",
    ),
    Claim(
        "tw-buckets-count-fin-wait2",
        "tcp_max_tw_buckets counts every timewait minisocket, orphaned FIN_WAIT2 included",
        "net/ipv4/inet_timewait_sock.c inet_twsk_alloc() (tw_refcount)",
        "test_max_tw_buckets_counts_orphaned_fin_wait2",
    ),
    Claim(
        "proc-net-tcp-hex",
        "/proc/net/tcp prints states as hex codes in st: 06 TIME_WAIT, 08 CLOSE_WAIT, "
        "0A LISTEN, 05 for an orphaned FIN_WAIT2 minisocket",
        "net/ipv4/tcp_ipv4.c get_tcp4_sock(), get_timewait4_sock()",
        "test_proc_net_tcp_prints_hex_state_codes",
    ),
    Claim(
        "sockstat-inuse-hashed",
        "sockstat inuse counts sockets in the hash tables (listeners, SYN_SENT, connected, "
        "closing); unbound or bound-only sockets and timewait minisockets are left out",
        "net/ipv4/inet_hashtables.c __inet_hash(), inet_ehash_nolisten(), inet_unhash() "
        "(sock_prot_inuse_add())",
        "test_sockstat_inuse_counts_hashed_sockets_only",
    ),
    Claim(
        "orphan-write-queue",
        "an orphan keeps its whole unsent write queue, up to tcp_wmem[2] (4 MiB by default), "
        "not the ~64 KB ip-sysctl.rst mentions",
        "net/ipv4/tcp.c __tcp_close() (the FIN is queued behind unsent data)",
        "test_orphan_keeps_its_whole_write_queue",
    ),
    Claim(
        "netns-inherits-init-net",
        "a new network namespace copies tcp_rmem, tcp_wmem and the congestion control from the "
        "initial namespace; other keys start at built-in defaults",
        "net/ipv4/tcp_ipv4.c tcp_sk_init()",
        "test_new_namespace_copies_buffers_and_congestion_control_from_init_net",
    ),
)

__all__ = ["CLAIMS", "TEST_MODULE", "Claim"]
