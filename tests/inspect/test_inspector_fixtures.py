"""Parse committed procfs trees: counts, details, sysctl statuses and problems."""

from __future__ import annotations

from tcptune.inspect.bpf.seams import BpfSeams
from tcptune.inspect.bpf.syscall import Bpf
from tcptune.inspect.inspector import SocketSource, inspect
from tcptune.inspect.procfs import ProcFS
from tcptune.inspect.statecounts import BPF_SOURCE
from tcptune.model.snapshot import Endpoint, ReadStatus
from tcptune.model.tcpstates import TcpState

EXPECTED_PER_FAMILY = {
    TcpState.LISTEN: 1,
    TcpState.ESTABLISHED: 4,
    TcpState.CLOSE_WAIT: 1,
    TcpState.FIN_WAIT2: 1,
    TcpState.TIME_WAIT: 1,
}


def _nonzero(counts: dict[TcpState, int] | object) -> dict[TcpState, int]:
    assert isinstance(counts, dict)
    return {state: n for state, n in counts.items() if n}


def test_container_tree_counts_both_families(container_proc: ProcFS) -> None:
    snapshot = inspect(container_proc, source=SocketSource.PROCFS, details=True)
    assert snapshot.sockets is not None
    assert snapshot.sockets.source == "procfs"
    assert _nonzero(dict(snapshot.sockets.ipv4)) == EXPECTED_PER_FAMILY
    assert _nonzero(dict(snapshot.sockets.ipv6)) == EXPECTED_PER_FAMILY
    assert snapshot.sockets.all_sockets == 16
    assert snapshot.complete, snapshot.problems


def test_auto_source_on_a_fixture_reads_procfs_not_the_live_kernel(
    container_proc: ProcFS,
) -> None:
    snapshot = inspect(container_proc)
    assert snapshot.sockets is not None and snapshot.sockets.source == "procfs"
    assert snapshot.sockets.all_sockets == 16


def test_a_fixture_never_loads_the_bpf_walk_and_source_bpf_says_why(
    container_proc: ProcFS,
) -> None:
    seams = BpfSeams(bpf=_no_bpf)  # the walk would fail loudly if it were tried
    auto = inspect(container_proc, details=True, socket_seams=seams, bpf_min_sockets=0)
    assert auto.sockets is not None and auto.sockets.source == "procfs"
    assert auto.sockets.notes == () and auto.complete
    asked = inspect(container_proc, source=SocketSource.BPF, details=True, socket_seams=seams)
    assert asked.sockets is None and not asked.complete
    (problem,) = asked.problems
    assert problem.source == BPF_SOURCE
    assert (
        problem.message == f"BPF socket walk not used: {container_proc.root} is not the live /proc"
    )


def _no_bpf() -> Bpf:
    raise AssertionError("bpf(2) used for a procfs fixture")


def test_container_tree_details(container_proc: ProcFS) -> None:
    snapshot = inspect(container_proc, source=SocketSource.PROCFS, details=True, owners=True)
    assert snapshot.sockets is not None and snapshot.sockets.details is not None
    details = snapshot.sockets.details
    assert details.fin_wait2_orphaned == 2  # the client close()d: inode 0
    assert details.fin_wait2_held == 0
    assert details.close_wait_by_local == {
        Endpoint("127.0.0.1", 35057): 1,
        Endpoint("::1", 49769): 1,
    }
    assert sorted(details.close_wait_inodes.values()) == [35057, 49769]
    assert all(inode > 0 for inode in details.close_wait_inodes)
    assert sorted(str(item.local) for item in details.listeners) == [
        "127.0.0.1:35057",
        "[::1]:49769",
    ]
    assert sum(details.time_wait_by_remote.values()) == 2


def test_container_namespace_hides_host_wide_keys(container_proc: ProcFS) -> None:
    snapshot = inspect(container_proc, source=SocketSource.PROCFS)
    assert snapshot.context.initial_netns is False
    assert snapshot.context.netns_inode == 4026532177
    assert snapshot.context.kernel_release == "6.18.44-fc-v669"
    orphans = snapshot.sysctls["net.ipv4.tcp_max_orphans"]
    assert orphans.status is ReadStatus.NOT_IN_NAMESPACE
    recycle = snapshot.sysctls["net.ipv4.tcp_tw_recycle"]
    assert recycle.status is ReadStatus.ABSENT
    assert recycle.reason == "removed in Linux 4.12"


def test_values_keep_their_units(container_proc: ProcFS) -> None:
    snapshot = inspect(container_proc, source=SocketSource.PROCFS)
    assert snapshot.value("net.ipv4.tcp_keepalive_time") == 7200
    assert snapshot.value("net.ipv4.ip_local_port_range") == (32768, 60999)
    assert snapshot.value("net.ipv4.ip_local_reserved_ports") == ""
    assert snapshot.auxiliary["net.ipv4.ip_unprivileged_port_start"] == 1024


def test_old_host_kernel_still_shows_tw_recycle(old_host_proc: ProcFS) -> None:
    snapshot = inspect(old_host_proc, source=SocketSource.PROCFS)
    # The initial namespace is recognised by the host-only key, not the inode.
    assert snapshot.context.initial_netns is True
    assert snapshot.value("net.ipv4.tcp_tw_recycle") == 1
    assert snapshot.value("net.ipv4.tcp_max_orphans") == 262144
    migrate = snapshot.sysctls["net.ipv4.tcp_migrate_req"]
    assert migrate.status is ReadStatus.ABSENT
    assert migrate.reason == "this kernel has no such key"


def test_broken_tree_reports_each_problem_and_keeps_the_rest(broken_proc: ProcFS) -> None:
    snapshot = inspect(broken_proc, source=SocketSource.PROCFS, details=True)
    messages = [f"{p.source}: {p.message}" for p in snapshot.problems]
    tcp = str(broken_proc.path("net/tcp"))
    assert (
        f"{tcp}: line 4: 3 fields, expected at least 10: '9: 0100007F:8B5C 0100007F:88F1'"
        in messages
    )
    assert any(m.startswith(f"{tcp}: line 6: unknown TCP state code 0F") for m in messages)
    assert "IPv6 not available: no /proc/net/tcp6" in snapshot.sockets.notes  # type: ignore[union-attr]
    assert any("net/sockstat6: no such file" in m for m in messages)
    assert f"{broken_proc.path('net/snmp')}: line 6: Tcp has 15 names but 14 values" in messages
    fin = snapshot.sysctls["net.ipv4.tcp_fin_timeout"]
    assert fin.status is ReadStatus.UNREADABLE
    assert (fin.reason or "").endswith("unexpected value: expected an integer, got 'fast'")
    port_range = snapshot.sysctls["net.ipv4.ip_local_port_range"]
    assert port_range.status is ReadStatus.UNREADABLE
    # The good lines still count.
    assert snapshot.sockets is not None
    assert snapshot.sockets.ipv4[TcpState.ESTABLISHED] == 4
    assert snapshot.sockets.ipv4[TcpState.CLOSE_WAIT] == 1
    assert snapshot.counters.tcp_ext["TCPAbortOnData"] >= 0
    assert not snapshot.counters.tcp  # the broken Tcp table is dropped, not misread
    assert not snapshot.complete


def test_missing_procfs_files_are_problems_not_crashes(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    snapshot = inspect(ProcFS(tmp_path), source=SocketSource.PROCFS)
    assert snapshot.sockets is None
    assert {r.status for r in snapshot.sysctls.values()} == {ReadStatus.ABSENT}
    sources = {p.source for p in snapshot.problems}
    assert str(tmp_path / "net/tcp") in sources
    assert str(tmp_path / "net/snmp") in sources
