"""The inspector against the real kernel, in a throwaway network namespace per test."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tcptune.inspect.inspector import SocketSource, inspect
from tcptune.inspect.procfs import ProcFS
from tcptune.model.snapshot import ReadStatus
from tcptune.model.sysctls import KNOWN_SYSCTLS, Scope
from tcptune.model.tcpstates import TcpState
from tests.lab import SocketLab

SOURCES = [
    pytest.param(SocketSource.NETLINK, id="netlink"),
    pytest.param(SocketSource.PROCFS, id="procfs"),
]
FAMILIES = [pytest.param(socket.AF_INET, id="ipv4"), pytest.param(socket.AF_INET6, id="ipv6")]


@pytest.mark.kernel
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("family", FAMILIES)
def test_exact_counts_of_every_state_made(
    lab: SocketLab, source: SocketSource, family: socket.AddressFamily
) -> None:
    lab.listen(family=family)  # 1 LISTEN
    lab.established(3, family)  # 6 ESTABLISHED
    lab.close_wait(2, family)  # 2 CLOSE_WAIT + 2 FIN_WAIT2 (orphaned)
    lab.fin_wait2_held(1, family)  # 1 CLOSE_WAIT + 1 FIN_WAIT2 (held)
    lab.time_wait(4, family)  # 4 TIME_WAIT
    snapshot = inspect(ProcFS(), source=source, details=True, owners=True)
    assert snapshot.sockets is not None
    assert snapshot.sockets.source == source.value
    made, other = (
        (snapshot.sockets.ipv4, snapshot.sockets.ipv6)
        if family == socket.AF_INET
        else (snapshot.sockets.ipv6, snapshot.sockets.ipv4)
    )
    assert {state: n for state, n in made.items() if n} == {
        TcpState.LISTEN: 1,
        TcpState.ESTABLISHED: 6,
        TcpState.CLOSE_WAIT: 3,
        TcpState.FIN_WAIT2: 3,
        TcpState.TIME_WAIT: 4,
    }
    assert sum(other.values()) == 0
    details = snapshot.sockets.details
    assert details is not None
    assert (details.fin_wait2_orphaned, details.fin_wait2_held) == (2, 1)
    assert details.close_wait == 3
    assert len(details.close_wait_inodes) == 3
    assert sum(details.time_wait_by_remote.values()) == 4
    assert snapshot.complete, snapshot.problems


@pytest.mark.kernel
def test_netlink_and_procfs_agree(lab: SocketLab) -> None:
    lab.established(5)
    lab.close_wait(3, socket.AF_INET6)
    lab.time_wait(2)
    netlink = inspect(ProcFS(), source=SocketSource.NETLINK, details=True, owners=True).sockets
    procfs = inspect(ProcFS(), source=SocketSource.PROCFS, details=True, owners=True).sockets
    assert netlink is not None and procfs is not None
    assert dict(netlink.ipv4) == dict(procfs.ipv4)
    assert dict(netlink.ipv6) == dict(procfs.ipv6)
    assert netlink.details is not None and procfs.details is not None
    assert netlink.details.close_wait_inodes == procfs.details.close_wait_inodes
    assert netlink.details.close_wait_by_local == procfs.details.close_wait_by_local
    assert netlink.details.time_wait_by_remote == procfs.details.time_wait_by_remote


@pytest.mark.kernel
def test_keepalive_timer_is_seen_per_socket(lab: SocketLab) -> None:
    lab.keepalive(3)  # client ends armed
    lab.established(2)  # no keepalive
    for source in (SocketSource.NETLINK, SocketSource.PROCFS):
        snapshot = inspect(ProcFS(), source=source, details=True)
        assert snapshot.sockets is not None and snapshot.sockets.details is not None
        assert snapshot.sockets.total(TcpState.ESTABLISHED) == 10
        assert snapshot.sockets.details.established_keepalive == 3, source


@pytest.mark.kernel
def test_listener_queue_and_backlog_from_netlink(lab: SocketLab) -> None:
    listener = lab.listen(backlog=7)
    port = listener.getsockname()[1]
    snapshot = inspect(ProcFS(), source=SocketSource.NETLINK, details=True)
    assert snapshot.sockets is not None and snapshot.sockets.details is not None
    (mine,) = [item for item in snapshot.sockets.details.listeners if item.local.port == port]
    assert (mine.local.address, mine.backlog, mine.queued) == ("127.0.0.1", 7, 0)
    assert mine.inode == os.fstat(listener.fileno()).st_ino


@pytest.mark.kernel
def test_every_sysctl_matches_sysctl_n_in_the_same_namespace(lab: SocketLab) -> None:
    # A value that differs from the default proves we read this namespace, not the host.
    with open("/proc/sys/net/ipv4/tcp_fin_timeout", "w") as handle:
        handle.write("17")
    snapshot = inspect(ProcFS())
    assert snapshot.context.initial_netns is False
    assert snapshot.value("net.ipv4.tcp_fin_timeout") == 17
    for name, reading in snapshot.sysctls.items():
        result = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, check=False)
        if reading.status is ReadStatus.OK:
            assert result.returncode == 0, name
            assert reading.raw is not None
            assert reading.raw.split() == result.stdout.split(), name
        else:
            assert result.returncode != 0, name
            spec = KNOWN_SYSCTLS[name]
            if spec.removed_in:
                assert reading.status is ReadStatus.ABSENT
            elif spec.scope is Scope.HOST:
                assert reading.status is ReadStatus.NOT_IN_NAMESPACE, name


@pytest.mark.kernel
def test_counters_move_with_real_traffic(lab: SocketLab) -> None:
    before = inspect(ProcFS()).counters
    lab.linger_zero_close(3)
    lab.close_with_unread_data(2)
    after = inspect(ProcFS()).counters
    assert after.tcp_ext["TCPAbortOnData"] - before.tcp_ext["TCPAbortOnData"] == 3
    assert after.tcp_ext["TCPAbortOnClose"] - before.tcp_ext["TCPAbortOnClose"] == 2
    assert after.tcp["ActiveOpens"] - before.tcp["ActiveOpens"] == 5


@pytest.mark.kernel
@pytest.mark.parametrize("source", SOURCES)
def test_inodes_are_kept_only_when_asked(lab: SocketLab, source: SocketSource) -> None:
    lab.close_wait(4)
    kept = inspect(ProcFS(), source=source, details=True, owners=True)
    skipped = inspect(ProcFS(), source=source, details=True)
    assert kept.sockets is not None and skipped.sockets is not None
    assert kept.sockets.details is not None and skipped.sockets.details is not None
    assert len(kept.sockets.details.close_wait_inodes) == 4
    assert skipped.sockets.details.close_wait_inodes == {}
    assert skipped.sockets.details.close_wait == 4  # still counted per local endpoint


@pytest.mark.kernel
def test_server_side_time_wait_is_summed_by_local_port_in_bulk(lab: SocketLab) -> None:
    # 300 TIME_WAIT on the server side (the server closes first), each from its own
    # client address: enough messages of one size for the bulk parser, and a
    # distinct remote endpoint each, which the bounded summaries must not keep.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    port = listener.getsockname()[1]
    for i in range(300):
        client = socket.socket()
        client.bind((f"127.1.{i // 250}.{1 + i % 250}", 0))
        client.connect(("127.0.0.1", port))
        server, _ = listener.accept()
        server.close()
        assert client.recv(1) == b""
        client.close()
    listener.close()
    netlink = inspect(ProcFS(), source=SocketSource.NETLINK, details=True).sockets
    procfs = inspect(ProcFS(), source=SocketSource.PROCFS, details=True).sockets
    assert netlink is not None and procfs is not None
    assert netlink.total(TcpState.TIME_WAIT) == 300
    for sockets in (netlink, procfs):
        details = sockets.details
        assert details is not None
        assert details.time_wait_by_local_port.heavy() == [(port, 300)]
        assert details.time_wait_by_remote_address.heavy() == []  # 300 distinct clients
        assert details.time_wait_by_remote.total == 300
        assert len(details.time_wait_by_remote) <= details.time_wait_by_remote.capacity


@pytest.mark.kernel
def test_owner_walk_names_every_holder_unless_one_is_enough(lab: SocketLab) -> None:
    import os
    import subprocess

    from tcptune.inspect.owners import socket_holders

    (conn,) = lab.close_wait(1)
    assert conn.server is not None
    inode = os.fstat(conn.server.fileno()).st_ino
    child = subprocess.Popen(["sleep", "30"], pass_fds=[conn.server.fileno()])
    try:
        every = socket_holders(ProcFS(), [inode])
        first = socket_holders(ProcFS(), [inode], first_holder=True)
    finally:
        child.kill()
        child.wait()
    assert sorted(every[inode]) == sorted([os.getpid(), child.pid])
    assert len(first[inode]) == 1 and first[inode][0] in every[inode]


def test_holders_keep_first_and_extra_pids_compactly() -> None:
    from tcptune.inspect.owners import Holders

    wanted = [5, 3, 1 << 20 | 5, 0, 3]  # 0 is no inode; 3 twice; two share a bitmap bit
    holders = Holders(wanted)
    assert holders.wanted == 3
    assert holders.index(5) >= 0 and holders.index(1 << 20 | 5) >= 0
    assert holders.index(4) == -1 and holders.index(2 << 20 | 5) == -1
    assert holders.add(holders.index(5), 100)
    assert not holders.add(holders.index(5), 200)  # a forked child: a second holder
    assert not holders.add(holders.index(5), 200)
    assert holders.add(holders.index(3), 100)
    assert dict(holders) == {3: (100,), 5: (100, 200)}
    assert len(holders) == 2 and holders.get(1 << 20 | 5) is None
    assert holders.pids() == {100, 200}


def test_holders_answer_for_a_whole_sorted_column() -> None:
    from array import array

    from tcptune.inspect.owners import Holders
    from tcptune.model.holding import HeldSockets, aligned_holders

    holders = Holders([3, 5, 9, 12])
    holders.add(holders.index(5), 100)
    holders.add(holders.index(5), 200)  # shared with a forked child
    holders.add(holders.index(9), 200)
    holders.add(holders.index(12), 100)
    same = array("Q", [3, 5, 9, 12])  # the column looked up itself: copied
    assert holders.aligned(same) == (array("l", [0, 100, 200, 100]), {1: (200,)})
    subset = array("Q", [0, 5, 7, 12])  # a sub-column (the lookup also had listeners)
    assert holders.aligned(subset) == (array("l", [0, 100, 0, 100]), {1: (200,)})
    unsorted = [12, 5, 3]
    assert holders.aligned(unsorted) == (array("l", [100, 100, 0]), {1: (200,)})
    plain = {inode: pids for inode, pids in holders.items()}  # a plain mapping agrees
    for column in (same, subset, unsorted):
        assert aligned_holders(plain, column) == holders.aligned(column)
    held = HeldSockets.of(holders, same)
    assert dict(held.by_pid) == {100: array("I", [1, 3]), 200: array("I", [1, 2])}
    assert held.unheld == array("I", [0]) and held.size == 4
    assert held.union([100, 200]) == array("I", [1, 2, 3])  # the shared socket once


def test_held_sockets_group_many_holders_like_few() -> None:
    from array import array

    from tcptune.model.holding import FEW_PIDS, HeldSockets

    pids = list(range(1000, 1000 + 2 * FEW_PIDS))
    holders = {inode: (pids[inode % len(pids)],) for inode in range(1, 200) if inode % 7}
    held = HeldSockets.of(holders, list(range(200)))
    assert held.unheld == array("I", [i for i in range(200) if not i % 7 or i == 0])
    for pid in pids:
        assert list(held.by_pid[pid]) == [i for i in holders if holders[i] == (pid,)]
    few = HeldSockets.of({i: p for i, p in holders.items() if p[0] < 1002}, list(range(200)))
    assert sorted(few.union([1000, 1001])) == sorted(i for i in holders if holders[i][0] < 1002)
