"""Check that the real-kernel lab makes namespaces and socket states exactly as promised."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from tests.lab import (
    SocketLab,
    count_tcp_states,
    current_netns,
    fresh_netns,
    kernel_lab,
    read_netstat,
    read_tcp_table,
    require_netns_capability,
    skip_or_fail,
)

FAMILIES = [
    pytest.param(socket.AF_INET, id="ipv4"),
    pytest.param(socket.AF_INET6, id="ipv6"),
]


@pytest.fixture
def lab() -> Iterator[SocketLab]:
    """Provide a SocketLab in a fresh network namespace."""
    with kernel_lab() as the_lab:
        yield the_lab


@pytest.fixture
def netns_ok() -> None:
    """Skip (or fail under CI) when network namespaces cannot be created."""
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)


def tcpext(counter: str) -> int:
    """Return a TcpExt counter of the current namespace."""
    return read_netstat()["TcpExt"][counter]


# -- skip_or_fail (no kernel needed) ---------------------------------------------------------


def test_skip_or_fail_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no netns"):
        skip_or_fail("no netns")


def test_skip_or_fail_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no netns"):
        skip_or_fail("no netns")


# -- fresh_netns -----------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.usefixtures("netns_ok")
def test_fresh_netns_switches_and_restores() -> None:
    before = current_netns()
    with fresh_netns() as inside:
        assert inside != before
        assert current_netns() == inside
        assert count_tcp_states() == {}
        # Children forked from this thread inherit its namespace.
        child = subprocess.run(
            ["readlink", "/proc/self/ns/net"], capture_output=True, text=True, check=True
        )
        assert child.stdout.strip() == inside
    assert current_netns() == before


@pytest.mark.kernel
@pytest.mark.usefixtures("netns_ok")
def test_fresh_netns_restores_after_exception() -> None:
    before = current_netns()
    with pytest.raises(ZeroDivisionError), fresh_netns():
        _ = 1 / 0
    assert current_netns() == before


@pytest.mark.kernel
@pytest.mark.usefixtures("netns_ok")
def test_fresh_netns_refuses_other_threads() -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with fresh_netns():
                pass
        except RuntimeError as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=10)
    assert len(errors) == 1
    assert "main thread" in str(errors[0])


@pytest.mark.kernel
def test_proc_net_matches_thread_view_in_main_thread(lab: SocketLab) -> None:
    listener = lab.listen()
    port = listener.getsockname()[1]
    assert read_tcp_table("/proc/net") == read_tcp_table()
    assert [e.local for e in read_tcp_table("/proc/net")] == [("127.0.0.1", port)]


@pytest.mark.kernel
def test_lo_is_up_in_fresh_netns(lab: SocketLab) -> None:
    for family in (socket.AF_INET, socket.AF_INET6):
        (conn,) = lab.established(1, family=family)
        assert conn.client is not None and conn.server is not None
        conn.client.sendall(b"ping")
        assert conn.server.recv(4) == b"ping"


# -- state makers ----------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("family", FAMILIES)
def test_listen(lab: SocketLab, family: socket.AddressFamily) -> None:
    first = lab.listen(family=family, reuseport=True)
    port = first.getsockname()[1]
    lab.listen(port=port, family=family, reuseport=True)
    lab.wait_for_states({"LISTEN": 2})
    assert {e.local[1] for e in read_tcp_table()} == {port}


@pytest.mark.kernel
@pytest.mark.parametrize("family", FAMILIES)
def test_established(lab: SocketLab, family: socket.AddressFamily) -> None:
    conns = lab.established(3, family=family)
    assert lab.wait_for_states({"ESTABLISHED": 6}) == {"ESTABLISHED": 6}
    inodes = {e.inode for e in read_tcp_table()}
    assert inodes == {c.client_inode for c in conns} | {c.server_inode for c in conns}
    assert all(e.family == family for e in read_tcp_table())


@pytest.mark.kernel
@pytest.mark.parametrize("family", FAMILIES)
def test_close_wait(lab: SocketLab, family: socket.AddressFamily) -> None:
    conns = lab.close_wait(4, family=family)
    lab.wait_for_states({"CLOSE_WAIT": 4, "FIN_WAIT2": 4})
    by_state: dict[str, set[int]] = {}
    for e in read_tcp_table():
        by_state.setdefault(e.state, set()).add(e.inode)
    assert by_state["CLOSE_WAIT"] == {c.server_inode for c in conns}
    assert by_state["FIN_WAIT2"] == {0}  # orphaned: no struct socket, inode printed as 0
    assert all(c.client is None and c.server is not None for c in conns)


@pytest.mark.kernel
@pytest.mark.parametrize("family", FAMILIES)
def test_fin_wait2_held(lab: SocketLab, family: socket.AddressFamily) -> None:
    conns = lab.fin_wait2_held(2, family=family)
    lab.wait_for_states({"FIN_WAIT2": 2, "CLOSE_WAIT": 2})
    fin_wait2 = {e.inode for e in read_tcp_table() if e.state == "FIN_WAIT2"}
    assert fin_wait2 == {c.client_inode for c in conns}


@pytest.mark.kernel
@pytest.mark.parametrize("family", FAMILIES)
def test_time_wait(lab: SocketLab, family: socket.AddressFamily) -> None:
    conns = lab.time_wait(5, family=family)
    assert lab.wait_for_states({"TIME_WAIT": 5}) == {"TIME_WAIT": 5}
    entries = read_tcp_table()
    assert {e.local[1] for e in entries} == {c.client_port for c in conns}
    assert {e.timer for e in entries} == {3}  # TIME_WAIT timer (net/ipv4/tcp_ipv4.c)


@pytest.mark.kernel
def test_states_mix_exactly(lab: SocketLab) -> None:
    lab.listen()
    lab.established(2)
    lab.close_wait(3, family=socket.AF_INET6)
    lab.fin_wait2_held(1)
    lab.time_wait(4)
    expected = {"LISTEN": 1, "ESTABLISHED": 4, "CLOSE_WAIT": 4, "FIN_WAIT2": 4, "TIME_WAIT": 4}
    assert lab.wait_for_states(expected) == expected
    # Tools run as children see the same namespace: ss counts the same sockets.
    ss = subprocess.run(["ss", "-Htan"], capture_output=True, text=True, check=True)
    assert len(ss.stdout.splitlines()) == sum(expected.values())


@pytest.mark.kernel
def test_keepalive_timer_armed(lab: SocketLab) -> None:
    conns = lab.keepalive(2, idle=300, interval=20, count=3)
    clients = {c.client_inode for c in conns}
    for entry in read_tcp_table():
        if entry.inode in clients:
            assert entry.timer == 2  # keepalive (sk_timer pending)
            assert 290 * 100 <= entry.timer_when <= 300 * 100  # USER_HZ ticks
        else:
            assert entry.timer == 0
    for conn in conns:
        assert conn.client is not None
        assert conn.client.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert conn.client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 300
        assert conn.client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 20
        assert conn.client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3


@pytest.mark.kernel
def test_linger_zero_close_counts_abort_on_data(lab: SocketLab) -> None:
    on_data, on_close = tcpext("TCPAbortOnData"), tcpext("TCPAbortOnClose")
    conns = lab.linger_zero_close(3)
    assert tcpext("TCPAbortOnData") - on_data == 3
    assert tcpext("TCPAbortOnClose") == on_close
    assert lab.wait_for_states({}) == {}
    assert conns[0].server is not None
    with pytest.raises(ConnectionResetError):
        conns[0].server.recv(1)


@pytest.mark.kernel
def test_close_with_unread_data_counts_abort_on_close(lab: SocketLab) -> None:
    on_data, on_close = tcpext("TCPAbortOnData"), tcpext("TCPAbortOnClose")
    lab.close_with_unread_data(2, family=socket.AF_INET6)
    assert tcpext("TCPAbortOnClose") - on_close == 2
    assert tcpext("TCPAbortOnData") == on_data
    assert lab.wait_for_states({}) == {}


@pytest.mark.kernel
def test_syn_recv_overflow_counts_listen_overflows(lab: SocketLab) -> None:
    overflow = lab.syn_recv_overflow(connects=5)
    assert tcpext("ListenOverflows") > 0
    assert tcpext("ListenDrops") > 0
    counts = count_tcp_states()
    assert counts["LISTEN"] == 1
    assert counts["SYN_SENT"] + counts["ESTABLISHED"] // 2 == len(overflow.clients)


@pytest.mark.kernel
def test_wait_for_states_reports_actual_counts_on_timeout(lab: SocketLab) -> None:
    lab.established(1)
    with pytest.raises(TimeoutError, match="ESTABLISHED"):
        lab.wait_for_states({"ESTABLISHED": 3}, timeout=0.05)
    assert lab.wait_for_states({"ESTABLISHED": 2, "LISTEN": 0}, exact=False)["ESTABLISHED"] == 2
    with pytest.raises(ValueError, match="unknown TCP state"):
        lab.wait_for_states({"ESTAB": 1})


@pytest.mark.kernel
def test_lab_close_releases_descriptors(lab: SocketLab) -> None:
    conns = lab.established(2)
    lab.close()
    assert all(c.client is not None and c.client.fileno() == -1 for c in conns)
