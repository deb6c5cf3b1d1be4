"""The socket-option inventory against the real kernel: C holders in a throwaway namespace."""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcptune.inspect.bpf import loader
from tcptune.inspect.bpf.loader import IterProgram, Read
from tcptune.inspect.bpf.seams import BpfSeams
from tcptune.inspect.bpf.tcpiter import TCP_WANTED, Wanted
from tcptune.inspect.procfs import ProcFS
from tcptune.inspect.sockopts import read_inventory
from tcptune.model.sockopts import InventoryStatus, SocketInventory, SocketOptions
from tcptune.model.tcpstates import TcpState
from tests.lab import fresh_netns, require_netns_capability, skip_or_fail
from tests.lab.holders import Holder, build_holder

pytestmark = pytest.mark.kernel
PROC = ProcFS(Path("/proc"))


def keepalive_time() -> int:
    return int(Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text())


@pytest.fixture(scope="module")
def holder_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_holder(tmp_path_factory.mktemp("holder"))


@pytest.fixture
def netns() -> Iterator[None]:
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    with fresh_netns():
        yield


def inventory(tmp_path: Path, **seams: object) -> SocketInventory:
    status = read_inventory(PROC, keepalive_time(), seams=BpfSeams(cache_dir=tmp_path, **seams))  # type: ignore[arg-type]
    if status.inventory is None:
        skip_or_fail(f"BPF inventory cannot run here: {status.unavailable}")
    return status.inventory


def held_by(inv: SocketInventory, pid: int) -> list[SocketOptions]:
    return [s for s in inv.sockets if pid in inv.holders.get(s.inode, ())]


def accepted(inv: SocketInventory, pid: int) -> list[SocketOptions]:
    return [s for s in held_by(inv, pid) if s.state is TcpState.ESTABLISHED]


def test_every_option_is_read_per_process(netns: None, holder_binary: Path, tmp_path: Path) -> None:
    roles = [
        ("aborter", "linger0", 3),
        ("lingerer", "linger5", 2),
        ("redisish", "keepown", 4),
        ("keepsys", "keepsys", 2),
        ("patient", "usertimeout", 1),
        ("finlinger", "linger2", 2),
        ("finreset", "linger2neg", 1),
        ("noreuse", "noreuse", 1),
    ]
    holders = [
        Holder(holder_binary, name, mode, 7000 + i, n) for i, (name, mode, n) in enumerate(roles)
    ]
    try:
        inv = inventory(tmp_path)
        by_name = {h.process.args[0].rsplit("/", 1)[1]: h for h in holders}  # type: ignore[index, union-attr]
        for name, _mode, count in roles:
            pid = by_name[name].pid
            assert inv.processes[pid].name == name
            assert len(accepted(inv, pid)) == count, name
            listeners = [s for s in held_by(inv, pid) if s.state is TcpState.LISTEN]
            assert len(listeners) == 1
            assert listeners[0].reuseaddr is (name != "noreuse")
        sockets = {name: accepted(inv, by_name[name].pid) for name, _m, _n in roles}
        assert {(s.linger, s.linger_seconds) for s in sockets["aborter"]} == {(True, 0)}
        assert {(s.linger, s.linger_seconds) for s in sockets["lingerer"]} == {(True, 5)}
        assert {
            (s.keepalive, s.keepalive_idle, s.keepalive_interval, s.keepalive_count)
            for s in sockets["redisish"]
        } == {(True, 300, 100, 3)}
        assert {(s.keepalive, s.own_keepalive) for s in sockets["keepsys"]} == {(True, False)}
        assert {s.user_timeout_ms for s in sockets["patient"]} == {30000}
        assert {s.linger2 for s in sockets["finlinger"]} == {10}
        assert {s.linger2 for s in sockets["finreset"]} == {-1}
        assert {s.linger2 for s in sockets["keepsys"]} == {None}
        # the test's own client ends: no option set, owned by this process
        mine = held_by(inv, os.getpid())
        assert len(mine) == sum(n for _name, _mode, n in roles)
        assert not any(s.keepalive or s.linger or s.user_timeout_ms for s in mine)
        assert {s.remote.port for s in mine} == {7000 + i for i in range(len(roles))}
        assert Counter(s.state for s in inv.sockets)[TcpState.LISTEN] == len(roles)
    finally:
        for holder in holders:
            holder.stop()


def test_reuseport_pair_shares_one_port(netns: None, holder_binary: Path, tmp_path: Path) -> None:
    with (
        Holder(holder_binary, "worker", "reuseport", 7100, 0) as one,
        Holder(holder_binary, "worker", "reuseport", 7100, 0) as two,
    ):
        inv = inventory(tmp_path)
        listeners = [s for s in inv.sockets if s.state is TcpState.LISTEN]
        assert len(listeners) == 2
        assert all(s.reuseport and s.local.port == 7100 for s in listeners)
        holders = {pid for s in listeners for pid in inv.holders[s.inode]}
        assert holders == {one.pid, two.pid}


def test_ipv6_addresses_and_the_btf_cache(netns: None, tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET6) as server:
        server.bind(("::1", 0))
        server.listen()
        first = inventory(tmp_path)
        assert not first.btf_cached
        again = inventory(tmp_path)
        assert again.btf_cached
        assert [str(s.local) for s in again.sockets] == [f"[::1]:{server.getsockname()[1]}"]
        assert again.hz and again.hz in (100, 250, 300, 1000)


def unavailable(tmp_path: Path, **seams: object) -> InventoryStatus:
    status = read_inventory(PROC, keepalive_time(), seams=BpfSeams(cache_dir=tmp_path, **seams))  # type: ignore[arg-type]
    assert status.inventory is None
    assert status.unavailable is not None
    return status


def test_btf_that_is_not_btf_is_a_clean_reason(tmp_path: Path) -> None:
    bogus = tmp_path / "vmlinux"
    bogus.write_bytes(b"\0" * 64)
    status = unavailable(tmp_path, btf_path=bogus)
    assert status.unavailable == (
        "socket options not available: kernel BTF: bad magic 0x0 (not BTF, or another byte order)"
    )


def test_a_member_this_kernel_lacks_is_named(tmp_path: Path) -> None:
    wanted = (*TCP_WANTED, Wanted("future", "keepalive_time_in_the_future"))
    status = unavailable(tmp_path, wanted=wanted)
    assert "no member 'keepalive_time_in_the_future' in struct tcp_sock" in (
        status.unavailable or ""
    )


def test_a_refused_program_reports_the_verifiers_verdict(netns: None, tmp_path: Path) -> None:
    def beyond_the_struct(spec: IterProgram) -> bytes:
        # one load past the end of struct tcp_sock: the verifier checks every load against BTF
        wild = Read("wild", False, (), 1 << 14, 8)
        return loader.build(dataclasses.replace(spec, reads=(*spec.reads, wild)))

    status = read_inventory(
        PROC, keepalive_time(), seams=BpfSeams(cache_dir=tmp_path, build=beyond_the_struct)
    )
    if status.unavailable and "CAP_BPF" in status.unavailable:
        skip_or_fail(status.unavailable)
    assert (
        status.unavailable
        == "socket options not available: the kernel's verifier refused the program"
    )
    assert status.detail == "access beyond struct tcp_sock at off 16384 size 8"


def test_unprivileged_audit_says_once_what_it_cannot_see(netns: None) -> None:
    from tests.lab.privileges import UNPRIVILEGED, run_tcptune

    audit = run_tcptune("audit", prefix=UNPRIVILEGED)
    assert audit.returncode in (0, 1), audit.stderr
    lines = [line for line in audit.stdout.splitlines() if "not available" in line]
    assert len(lines) == 1
    assert "socket options not available: needs CAP_BPF and CAP_PERFMON" in audit.stdout
    assert "inferred from armed timers instead" in " ".join(audit.stdout.split())
    asked = run_tcptune("--debug", "audit", "--options", prefix=UNPRIVILEGED)
    assert asked.returncode == 3
    assert "tcptune: debug: socket options: BPF_PROG_LOAD: Operation not permitted" in asked.stderr
    assert "incomplete: socket options (BPF iterator)" in asked.stderr


def test_audit_names_own_keepalive_and_linger_abort_holders(
    netns: None, holder_binary: Path, tmp_path: Path
) -> None:
    from tcptune.advise import advise
    from tcptune.run.audit import run_audit

    with (
        Holder(holder_binary, "redis-server", "keepown", 7200, 25),
        Holder(holder_binary, "keepsys", "keepsys", 7201, 3),
        Holder(holder_binary, "aborter", "linger0", 7202, 2),
    ):
        result = run_audit(PROC, options=BpfSeams(cache_dir=tmp_path))
        if result.snapshot.sockopts is None or result.snapshot.sockopts.inventory is None:
            skip_or_fail("BPF inventory cannot run here")
        found = {f.id: f for f in result.findings}
        keepalive = found["keepalive"]
        assert keepalive.data["reached"] == 3
        assert keepalive.data["keepalive_sockets"] == 28
        assert keepalive.data["own_idle"] == [
            {"process": "redis-server", "sockets": 25, "idle": 300}
        ]
        assert any(
            "25 sockets in 1 process set their own TCP_KEEPIDLE (redis-server: 25 sockets, "
            "idle 300 s): a change of tcp_keepalive_time does not reach them" in line
            for line in keepalive.evidence
        )
        abort = found["linger-abort"]
        assert abort.evidence[1] == "aborter: 2 sockets"
        assert abort.severity.label == "warning"
        assert advise  # the same checks the CLI runs


def test_findings_name_each_option_holder(netns: None, holder_binary: Path, tmp_path: Path) -> None:
    from tcptune.run.audit import run_audit

    with (
        Holder(holder_binary, "lingerer", "linger5", 7300, 2),
        Holder(holder_binary, "patient", "usertimeout", 7301, 3),
        Holder(holder_binary, "finlinger", "linger2", 7302, 1),
        Holder(holder_binary, "finreset", "linger2neg", 7303, 2),
        Holder(holder_binary, "noreuse", "noreuse", 7304, 0),
    ):
        result = run_audit(PROC, options=BpfSeams(cache_dir=tmp_path))
        status = result.snapshot.sockopts
        if status is None or status.inventory is None:
            skip_or_fail("BPF inventory cannot run here")
        found = {f.id: f for f in result.findings}
        assert found["linger-block"].data == {"sockets": 2, "processes": ["lingerer"]}
        assert found["linger-block"].evidence[1] == "lingerer: 2 sockets, linger 5 s"
        assert found["user-timeout"].data == {"sockets": 3, "processes": ["patient"], "cut": 0}
        assert found["user-timeout"].evidence[0] == (
            "3 sockets in 1 process set TCP_USER_TIMEOUT: patient: 3 sockets, 30 s"
        )
        assert found["linger2"].data == {"own": 1, "negative": 2}
        assert found["linger2"].severity.label == "warning"
        assert "finlinger: 1 socket, 10 s" in found["linger2"].evidence[0]
        assert found["listener-no-reuseaddr"].data == {
            "listeners": 1,
            "ports": [7304],
            "processes": ["noreuse"],
        }
        assert "linger-abort" not in found
        # every connection here was just made: idle well under a second or two
        assert all(0 <= s.idle_seconds < 5 for s in status.inventory.sockets)


def test_a_plain_audit_leaves_the_options_out_above_its_bound(
    netns: None, holder_binary: Path, tmp_path: Path
) -> None:
    """Above the bound a plain audit says why it did not read them; --options reads them."""
    from tcptune.output.audit import audit_text
    from tcptune.run.audit import run_audit

    with Holder(holder_binary, "redis-server", "keepown", 7210, 5):
        seams = BpfSeams(cache_dir=tmp_path)
        plain = run_audit(PROC, options=seams, options_max_sockets=4)
        asked = run_audit(PROC, options=seams, options_max_sockets=4, options_required=True)
    status = plain.snapshot.sockopts
    assert status is not None and status.inventory is None and not status.requested
    assert status.unavailable is not None
    assert "not read by default with 11 sockets (above 4" in status.unavailable
    assert "--options reads them" in status.unavailable
    assert plain.snapshot.complete  # not asked for: no incomplete inspection
    assert "keepalive" in {f.id for f in plain.findings}  # the timer-based inference
    assert "reached" not in next(f for f in plain.findings if f.id == "keepalive").data
    assert audit_text(plain.snapshot, plain.findings).count("not read by default") == 1  # once
    if asked.snapshot.sockopts is None or asked.snapshot.sockopts.inventory is None:
        skip_or_fail("BPF inventory cannot run here")
    keepalive = next(f for f in asked.findings if f.id == "keepalive")
    assert keepalive.data["own_idle"] == [{"process": "redis-server", "sockets": 5, "idle": 300}]
