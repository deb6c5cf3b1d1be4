"""Prove on the running kernel each behaviour tcptune's advice states (tcptune/reference/claims).

Every test runs in a throwaway network namespace (the ``lab`` fixture): sockets on its own
loopback, sysctl writes only to its own per-namespace keys, counters read from its own
/proc/net. A kernel that behaves differently fails here, and the claim id in each docstring
names the topics and findings that must then be corrected.
"""

from __future__ import annotations

import errno
import fcntl
import re
import select
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lab import (
    SocketLab,
    count_tcp_states,
    current_netns,
    kernel_lab,
    read_netstat,
    read_tcp_table,
    skip_or_fail,
)
from tests.lab.netns import _IFF_UP, _IFREQ, _SIOCGIFFLAGS, _SIOCSIFFLAGS

pytestmark = pytest.mark.kernel

HOST_NETNS = current_netns()  # import happens in the main thread, before any lab
USER_HZ = 100  # /proc/net/tcp tm->when is in clock_t (jiffies_delta_to_clock_t)
REUSEADDR = (socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)


def netns_sysctl(name: str, value: int) -> None:
    """Write a per-namespace sysctl of the lab's namespace, refusing the host's."""
    if current_netns() == HOST_NETNS:
        raise RuntimeError(f"refusing to write {name} outside a throwaway namespace")
    Path("/proc/sys", *name.split(".")).write_text(f"{value}\n")


def tcp_ext(name: str) -> int:
    return read_netstat()["TcpExt"][name]


def tcp(name: str) -> int:
    return read_netstat(name="snmp")["Tcp"][name]


def sockstat() -> dict[str, int]:
    """Return the TCP line of the namespace's sockstat."""
    for line in Path("/proc/thread-self/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            words = line.split()[1:]
            return {key: int(value) for key, value in zip(words[::2], words[1::2], strict=True)}
    raise AssertionError("no TCP line in sockstat")


class Delta:
    """Counter changes since construction: ``delta('TcpExt', 'TW')``."""

    def __init__(self) -> None:
        self.before = {**read_netstat(), **read_netstat(name="snmp")}

    def __call__(self, group: str, name: str) -> int:
        now = {**read_netstat(), **read_netstat(name="snmp")}
        return now[group][name] - self.before[group][name]


def wait_for(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll ``check`` every 10 ms until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def rows(port: int) -> list[tuple[str, int, float]]:
    """Return (state, timer kind, seconds left) for the sockets with local ``port``."""
    return [
        (e.state, e.timer, e.timer_when / USER_HZ) for e in read_tcp_table() if e.local[1] == port
    ]


def pair(
    lab: SocketLab, prepare: Callable[[socket.socket], None] | None = None
) -> tuple[socket.socket, socket.socket]:
    """Return one connected (client, server) pair tracked by the lab."""
    ((client, server),) = lab._pairs(1, socket.AF_INET, prepare)
    return client, server


def close(lab: SocketLab, sock: socket.socket) -> None:
    lab._close(sock)


def reset_seen(sock: socket.socket) -> bool:
    """True when ``sock`` was reset by its peer (ECONNRESET on recv, or EPIPE on send)."""
    sock.settimeout(2)
    try:
        while sock.recv(1024):
            pass
        sock.send(b"?")  # EOF without a reset so far: a send after an RST fails with EPIPE
        time.sleep(0.05)
        sock.send(b"?")
    except (ConnectionResetError, BrokenPipeError):
        return True
    return False


def set_lo(up: bool) -> None:
    """Bring the namespace's loopback up or down (a silent peer: every segment is lost)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = bytearray(_IFREQ.pack(b"lo", 0))
        fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, req)
        (flags,) = _IFREQ.unpack(req)[1:]
        flags = flags | _IFF_UP if up else flags & ~_IFF_UP
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, bytearray(_IFREQ.pack(b"lo", flags)))


# -- resets on close ----------------------------------------------------------------------


def test_linger_zero_close_sends_rst_and_counts_abort_on_data(lab: SocketLab) -> None:
    """Claim linger-zero-rst: nothing in flight, and still an RST and TCPAbortOnData."""
    client, server = pair(lab)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    delta = Delta()
    close(lab, client)
    assert delta("TcpExt", "TCPAbortOnData") == 1
    assert delta("TcpExt", "TCPAbortOnClose") == 0
    assert delta("Tcp", "OutRsts") == 1
    assert reset_seen(server)
    assert count_tcp_states().get("TIME_WAIT", 0) == 0


def test_close_with_unread_data_sends_rst_and_counts_abort_on_close(lab: SocketLab) -> None:
    """Claim unread-close-rst: unread data wins over SO_LINGER, counted in TCPAbortOnClose."""
    client, server = pair(lab)
    server.sendall(b"unread")
    assert select.select([client], [], [], 2)[0]
    delta = Delta()
    close(lab, client)
    assert delta("TcpExt", "TCPAbortOnClose") == 1
    assert delta("TcpExt", "TCPAbortOnData") == 0
    assert delta("Tcp", "OutRsts") == 1
    assert reset_seen(server)


def test_data_after_close_sends_rst_and_counts_abort_on_data(lab: SocketLab) -> None:
    """Claim data-after-close-rst: the orphan (a full socket at fin_timeout > 60) resets."""
    netns_sysctl("net.ipv4.tcp_fin_timeout", 90)  # > 60 s: FIN_WAIT2 stays a full socket
    (conn,) = lab.close_wait(1)
    assert conn.server is not None
    delta = Delta()
    conn.server.send(b"late")
    assert wait_for(lambda: delta("TcpExt", "TCPAbortOnData") == 1)
    assert delta("Tcp", "OutRsts") == 1
    assert reset_seen(conn.server)


def test_negative_linger2_counts_abort_on_linger_only_from_fin_wait2(lab: SocketLab) -> None:
    """Claim linger2-negative: plain close() -> TCPAbortOnData; from FIN_WAIT2 -> OnLinger."""
    linger2 = (socket.IPPROTO_TCP, socket.TCP_LINGER2, -1)
    client, server = pair(lab)
    client.setsockopt(*linger2)
    delta = Delta()
    close(lab, client)  # FIN_WAIT1; the peer's ACK finds linger2 < 0
    assert wait_for(lambda: delta("TcpExt", "TCPAbortOnData") == 1)
    assert delta("TcpExt", "TCPAbortOnLinger") == 0
    assert delta("Tcp", "OutRsts") == 1
    assert reset_seen(server)

    client, server = pair(lab)
    client.setsockopt(*linger2)
    client.shutdown(socket.SHUT_WR)
    assert wait_for(lambda: ("FIN_WAIT2", 0, 0.0) in rows(client.getsockname()[1]))
    delta = Delta()
    close(lab, client)  # already FIN_WAIT2: __tcp_close() resets at once
    assert delta("TcpExt", "TCPAbortOnLinger") == 1
    assert delta("TcpExt", "TCPAbortOnData") == 0
    assert delta("Tcp", "OutRsts") == 1
    assert reset_seen(server)


# -- orphans, FIN_WAIT2 and TIME_WAIT -----------------------------------------------------


def test_orphaned_fin_wait2_is_a_timewait_minisocket(lab: SocketLab) -> None:
    """Claim orphan-fin-wait2-minisock: in sockstat tw, not in inuse; st 05, inode 0."""
    conns = lab.close_wait(3)  # tcp_fin_timeout 60 (the default) <= TCP_TIMEWAIT_LEN
    counts = sockstat()
    assert counts["tw"] == 3
    assert counts["inuse"] == 3  # the three CLOSE_WAIT server ends only
    orphans = [e for e in read_tcp_table() if e.state == "FIN_WAIT2"]
    assert len(orphans) == 3
    assert {e.local[1] for e in orphans} == {c.client_port for c in conns}
    assert all(e.inode == 0 and e.timer == 3 for e in orphans)  # 3: the timewait timer


def test_tw_and_twkilled_count_when_scheduled(lab: SocketLab) -> None:
    """Claim tw-counters-at-schedule: counted at once, TWKilled for timeouts <= 4 s."""
    delta = Delta()
    lab.close_wait(2)  # FIN_WAIT2 minisockets for 60 s
    assert delta("TcpExt", "TW") == 2
    assert delta("TcpExt", "TWKilled") == 0
    netns_sysctl("net.ipv4.tcp_fin_timeout", 2)
    delta = Delta()
    lab.close_wait(2)  # FIN_WAIT2 minisockets for 2 s
    assert delta("TcpExt", "TWKilled") == 2
    assert delta("TcpExt", "TW") == 0


def test_time_wait_length_ignores_tcp_fin_timeout(lab: SocketLab) -> None:
    """Claim time-wait-fixed: fin_timeout=1 ends FIN_WAIT2 in ~1 s, TIME_WAIT keeps ~60 s."""
    netns_sysctl("net.ipv4.tcp_fin_timeout", 1)
    (waiting,) = lab.time_wait(1)
    (orphan,) = lab.close_wait(1)
    assert wait_for(lambda: not rows(orphan.client_port), timeout=3)  # gone after ~1 s
    ((state, timer, left),) = rows(waiting.client_port)
    assert (state, timer) == ("TIME_WAIT", 3)
    assert left > 55  # TCP_TIMEWAIT_LEN: 60 s minus the second or so spent here


def test_keepalive_sysctls_apply_only_to_so_keepalive_sockets(lab: SocketLab) -> None:
    """Claim keepalive-opt-in: no SO_KEEPALIVE, no timer; TCP_KEEPIDLE beats the sysctl."""
    netns_sysctl("net.ipv4.tcp_keepalive_time", 5)
    (plain,) = lab.established(1)
    (own_idle,) = lab.keepalive(1, idle=100)
    client, _ = pair(lab, lambda s: s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    ((_, timer, _),) = rows(plain.client_port)
    assert timer == 0  # no keepalive timer at all (tr 2 would be sk_timer)
    ((_, timer, left),) = rows(own_idle.client_port)
    assert timer == 2 and 95 < left <= 100
    ((_, timer, left),) = rows(client.getsockname()[1])
    assert timer == 2 and 3 < left <= 5


def test_keepalive_give_up_sends_rst(lab: SocketLab) -> None:
    """Claim keepalive-timeout-rst: ETIMEDOUT, TCPAbortOnTimeout and an RST (OutRsts)."""
    (conn,) = lab.keepalive(1, idle=1, interval=1, count=1)
    assert conn.client is not None
    delta = Delta()
    set_lo(False)  # every probe is lost from now on
    try:
        conn.client.settimeout(5)
        with pytest.raises(TimeoutError) as caught:
            conn.client.recv(1)
        assert caught.value.errno == errno.ETIMEDOUT
    finally:
        set_lo(True)
    assert delta("TcpExt", "TCPAbortOnTimeout") == 1
    assert delta("Tcp", "OutRsts") == 1  # tcp_send_active_reset() counts before sending


def test_retransmission_timeout_sends_no_rst(lab: SocketLab) -> None:
    """Claim retrans-timeout-silent: ETIMEDOUT and TCPAbortOnTimeout, OutRsts unchanged."""
    (conn,) = lab.established(1)
    assert conn.client is not None
    conn.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1000)
    delta = Delta()
    set_lo(False)
    try:
        conn.client.send(b"lost")
        conn.client.settimeout(5)
        with pytest.raises(TimeoutError) as caught:
            conn.client.recv(1)
        assert caught.value.errno == errno.ETIMEDOUT
    finally:
        set_lo(True)
    assert delta("TcpExt", "TCPAbortOnTimeout") == 1
    assert delta("Tcp", "OutRsts") == 0


# -- CLOSE_WAIT -----------------------------------------------------------------------------


def test_curr_estab_counts_established_and_close_wait(lab: SocketLab) -> None:
    """Claim currestab-close-wait: 2 ESTABLISHED pairs + 3 CLOSE_WAIT = CurrEstab 7."""
    lab.established(2)
    lab.close_wait(3)
    states = count_tcp_states()
    assert states["ESTABLISHED"] == 4 and states["CLOSE_WAIT"] == 3
    assert tcp("CurrEstab") == 7


def test_close_wait_ends_without_close_but_descriptor_stays(lab: SocketLab) -> None:
    """Claim close-wait-exits: shutdown(SHUT_WR) -> LAST_ACK -> gone; ss -K kills one."""
    (first, second) = lab.close_wait(2)
    assert first.server is not None and second.server is not None
    first.server.shutdown(socket.SHUT_WR)  # CLOSE_WAIT -> LAST_ACK -> CLOSED
    assert wait_for(lambda: count_tcp_states() == {"CLOSE_WAIT": 1, "FIN_WAIT2": 1, "TIME_WAIT": 1})
    assert first.server.fileno() >= 0  # the descriptor is still the application's
    killed = subprocess.run(
        ["ss", "-K", "-tn", "state", "close-wait"], capture_output=True, text=True, check=False
    )
    assert killed.returncode == 0, killed.stderr
    assert wait_for(lambda: count_tcp_states().get("CLOSE_WAIT", 0) == 0)
    assert second.server.fileno() >= 0
    with pytest.raises(OSError):
        second.server.send(b"x")  # aborted: the 4-tuple is free, the descriptor leaks on


# -- TIME_WAIT reuse and limits -------------------------------------------------------------


def test_reuseaddr_bind_connect_takes_over_time_wait(lab: SocketLab) -> None:
    """Claim reuseaddr-tw-takeover: tcp_tw_reuse=0, yet bind()+connect() recycles TIME_WAIT."""
    netns_sysctl("net.ipv4.tcp_tw_reuse", 0)
    listener = lab.listen()
    peer = listener.getsockname()
    for timestamps in (1, 0):
        netns_sysctl("net.ipv4.tcp_timestamps", timestamps)
        old = lab._track(socket.socket())
        old.setsockopt(*REUSEADDR)
        old.bind(("127.0.0.1", 0))
        old.connect(peer)
        accepted = lab._track(listener.accept()[0])
        port = old.getsockname()[1]
        close(lab, old)
        assert accepted.recv(1) == b""
        close(lab, accepted)
        assert wait_for(lambda p=port: [state for state, _, _ in rows(p)] == ["TIME_WAIT"])
        plain = lab._track(socket.socket())
        with pytest.raises(OSError) as caught:
            plain.bind(("127.0.0.1", port))
        assert caught.value.errno == errno.EADDRINUSE  # the old socket's flag alone is not enough
        close(lab, plain)
        new = lab._track(socket.socket())
        new.setsockopt(*REUSEADDR)
        new.bind(("127.0.0.1", port))
        delta = Delta()
        if timestamps:
            new.connect(peer)
            assert delta("TcpExt", "TWRecycled") == 1
            assert [state for state, _, _ in rows(port)] == ["ESTABLISHED"]  # TIME_WAIT gone
            close(lab, lab._track(listener.accept()[0]))
        else:
            with pytest.raises(OSError) as caught:
                new.connect(peer)
            assert caught.value.errno == errno.EADDRNOTAVAIL  # no timestamp, no takeover
            assert delta("TcpExt", "TWRecycled") == 0
        close(lab, new)


def test_listener_without_reuseaddr_cannot_restart_over_its_time_wait(lab: SocketLab) -> None:
    """Claim listener-restart-eaddrinuse: a server that closed first leaves TIME_WAIT on its
    port; a new listener's bind() then fails with EADDRINUSE unless both set SO_REUSEADDR."""
    for reuse in (False, True):
        listener = lab._track(socket.socket())
        if reuse:
            listener.setsockopt(*REUSEADDR)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = lab._track(socket.create_connection(("127.0.0.1", port)))
        accepted = lab._track(listener.accept()[0])  # inherits the listener's SO_REUSEADDR
        close(lab, accepted)  # the server closes first: its end goes to TIME_WAIT
        assert client.recv(1) == b""
        close(lab, client)
        close(lab, listener)  # the old server is gone ...
        assert wait_for(lambda p=port: [state for state, _, _ in rows(p)] == ["TIME_WAIT"])
        restarted = lab._track(socket.socket())
        if reuse:
            restarted.setsockopt(*REUSEADDR)
            restarted.bind(("127.0.0.1", port))  # ... and the new one binds at once
            restarted.listen()
        else:
            with pytest.raises(OSError) as caught:
                restarted.bind(("127.0.0.1", port))
            assert caught.value.errno == errno.EADDRINUSE
        close(lab, restarted)


def test_user_timeout_bounds_connect(lab: SocketLab) -> None:
    """Claim user-timeout-connect: a dropped SYN fails connect() after TCP_USER_TIMEOUT."""
    listener = lab.listen(backlog=0)
    peer = listener.getsockname()
    lab._track(socket.socket()).connect(peer)  # fills the accept queue: later SYNs are dropped
    bounded = lab._track(socket.socket())
    bounded.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1000)
    unbounded = lab._track(socket.socket())
    started = time.monotonic()
    for sock in (bounded, unbounded):
        sock.setblocking(False)
        sock.connect_ex(peer)
    assert select.select([], [bounded], [], 5)[1]
    elapsed = time.monotonic() - started
    assert bounded.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ETIMEDOUT
    assert 0.9 < elapsed < 2.5  # not the ~131 s of tcp_syn_retries=6
    assert [state for state, _, _ in rows(unbounded.getsockname()[1])] == ["SYN_SENT"]


def _close_pairs(lab: SocketLab, n: int) -> None:
    """Close n pairs client first, so each client end enters TIME_WAIT (if allowed)."""
    for client, server in lab._pairs(n, socket.AF_INET):
        close(lab, client)
        assert server.recv(1) == b""
        close(lab, server)


def test_max_tw_buckets_overflow_counts_time_wait_overflow(lab: SocketLab) -> None:
    """Claim tw-buckets-overflow: cap 2, four closes: two TIME_WAIT, two overflows."""
    netns_sysctl("net.ipv4.tcp_max_tw_buckets", 2)
    delta = Delta()
    _close_pairs(lab, 4)
    assert wait_for(lambda: delta("TcpExt", "TCPTimeWaitOverflow") == 2)
    assert count_tcp_states() == {"TIME_WAIT": 2}


def test_max_tw_buckets_counts_orphaned_fin_wait2(lab: SocketLab) -> None:
    """Claim tw-buckets-count-fin-wait2: two FIN_WAIT2 orphans fill a cap of 2."""
    netns_sysctl("net.ipv4.tcp_max_tw_buckets", 2)
    lab.close_wait(2)
    delta = Delta()
    _close_pairs(lab, 1)
    assert wait_for(lambda: delta("TcpExt", "TCPTimeWaitOverflow") == 1)
    assert count_tcp_states().get("TIME_WAIT", 0) == 0


def test_proc_net_tcp_prints_hex_state_codes(lab: SocketLab) -> None:
    """Claim proc-net-tcp-hex: st is 0A, 06, 08 and 05 (orphaned FIN_WAIT2), not names."""
    lab.listen()
    lab.time_wait(1)
    lab.close_wait(1)
    lines = Path("/proc/thread-self/net/tcp").read_text().splitlines()[1:]
    assert sorted(line.split()[3] for line in lines) == ["05", "06", "08", "0A"]


# -- memory and namespaces ------------------------------------------------------------------


def test_orphan_keeps_its_whole_write_queue(lab: SocketLab) -> None:
    """Claim orphan-write-queue: an orphan keeps its unsent data, megabytes, not ~64 KB."""
    client, _server = pair(lab)  # the server never reads: its window fills, ours queues
    client.setblocking(False)
    queued, deadline = 0, time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            queued += client.send(b"x" * 65536)
        except BlockingIOError:
            if not select.select([], [client], [], 0.2)[1]:
                break  # the send buffer stays full: tcp_wmem[2] reached
    close(lab, client)  # FIN queued behind the data: an orphan in FIN_WAIT1
    shown = subprocess.run(
        ["ss", "-tnm", "state", "fin-wait-1"], capture_output=True, text=True, check=True
    ).stdout
    skmem = re.search(r"skmem:\(([^)]*)\)", shown)
    assert skmem is not None, shown
    fields = dict(re.findall(r"([a-z_]+)(\d+)", skmem.group(1)))  # ss(8): w = wmem_queued
    wmem_queued = int(fields["w"])
    wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    assert queued > 1 << 20
    assert wmem_queued > 1 << 20  # far above ip-sysctl.rst's "~64K" per orphan
    assert wmem_queued <= 2 * wmem_max


def test_new_namespace_copies_buffers_and_congestion_control_from_init_net() -> None:
    """Claim netns-inherits-init-net: tcp_rmem, tcp_wmem and the congestion control come
    from the initial namespace (tcp_sk_init), not from built-in defaults."""
    keys = ("tcp_rmem", "tcp_wmem", "tcp_congestion_control")
    if not Path("/proc/sys/net/ipv4/tcp_max_orphans").exists():  # host-only key: init_net
        skip_or_fail("the tests do not run in the initial network namespace")
    host = {key: Path("/proc/sys/net/ipv4", key).read_text() for key in keys}
    with kernel_lab():
        assert current_netns() != HOST_NETNS
        inside = {key: Path("/proc/sys/net/ipv4", key).read_text() for key in keys}
    assert inside == host


def test_sockstat_inuse_counts_hashed_sockets_only(lab: SocketLab) -> None:
    """Claim sockstat-inuse-hashed: unbound and bound-only sockets, request sockets and
    timewait minisockets are not in sockstat inuse; listeners, SYN_SENT and children are."""
    assert sockstat()["inuse"] == 0
    idle = lab._track(socket.socket())
    idle.bind(("127.0.0.1", 0))
    assert sockstat()["inuse"] == 0  # bound, never listening or connecting: not hashed
    listener = lab.listen(backlog=0)
    assert sockstat()["inuse"] == 1
    lab._track(socket.socket()).connect(listener.getsockname())  # client + queued child
    assert wait_for(lambda: sockstat()["inuse"] == 3)
    pending = lab._track(socket.socket())
    pending.setblocking(False)
    pending.connect_ex(listener.getsockname())  # SYN_SENT: its SYNs are dropped (queue full)
    assert wait_for(lambda: sockstat()["inuse"] == 4)
    lab.time_wait(1)
    assert sockstat()["inuse"] == 4 and sockstat()["tw"] == 1
