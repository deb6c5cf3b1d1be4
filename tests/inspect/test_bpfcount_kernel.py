"""The BPF state counter on the real kernel: the same counts as sock_diag, or a clean reason."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcptune.inspect.bpf import asm
from tcptune.inspect.bpf.seams import BpfSeams
from tcptune.inspect.bpfcount import BpfCounter
from tcptune.inspect.inspector import SocketSource, inspect
from tcptune.inspect.procfs import ProcFS
from tcptune.inspect.sockdiag import dump_counts
from tcptune.model.tcpstates import TcpState
from tests.lab import SocketLab, kernel_lab, skip_or_fail
from tests.lab.privileges import UNPRIVILEGED, run_tcptune

pytestmark = pytest.mark.kernel
PROC = ProcFS(Path("/proc"))
# include/uapi/linux/tcp.h: the final ACK without data does not complete the handshake
TCP_DEFER_ACCEPT = 9


@pytest.fixture
def lab() -> Iterator[SocketLab]:
    with kernel_lab() as made:
        yield made


def counter(tmp_path: Path, **seams: object) -> BpfCounter:
    return BpfCounter(PROC, BpfSeams(cache_dir=tmp_path, **seams))  # type: ignore[arg-type]


def bpf_counts(made: BpfCounter) -> tuple[list[int], list[int]]:
    found = made.counts()
    if found is None:
        skip_or_fail(f"the BPF state counter cannot run here: {made.reason}")
    return found


def syn_recv(lab: SocketLab, n: int, family: socket.AddressFamily) -> list[socket.socket]:
    """Leave ``n`` request sockets (TCP_NEW_SYN_RECV) on a TCP_DEFER_ACCEPT listener.

    The clients' bare final ACKs are dropped while the deferral lasts
    (net/ipv4/tcp_minisocks.c tcp_check_req), so each client is ESTABLISHED
    and its server side stays a request socket, which /proc/net/tcp and
    sock_diag show as SYN_RECV.
    """
    listener = lab.listen(family=family)
    listener.setsockopt(socket.IPPROTO_TCP, TCP_DEFER_ACCEPT, 30)
    clients = [socket.socket(family, socket.SOCK_STREAM) for _ in range(n)]
    for client in clients:
        client.setblocking(False)
        client.connect_ex(listener.getsockname()[:2])
    return clients


def test_counts_equal_sock_diag_for_every_state_and_both_families(
    lab: SocketLab, tmp_path: Path
) -> None:
    clients: list[socket.socket] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        lab.listen(family=family)
        lab.established(3, family)  # 6 ESTABLISHED
        lab.time_wait(4, family)  # 4 TIME_WAIT minisockets
        lab.close_wait(2, family)  # 2 CLOSE_WAIT + 2 FIN_WAIT2 minisockets (tw_substate)
        lab.fin_wait2_held(1, family)  # 1 CLOSE_WAIT + 1 full FIN_WAIT2 socket
        clients += syn_recv(lab, 2, family)  # 2 request sockets, 2 ESTABLISHED clients, LISTEN
    per_family = {"ESTABLISHED": 8, "TIME_WAIT": 4, "CLOSE_WAIT": 3, "FIN_WAIT2": 3}
    per_family |= {"LISTEN": 2, "SYN_RECV": 2}
    lab.wait_for_states({state: 2 * n for state, n in per_family.items()})
    made = counter(tmp_path)
    ipv4, ipv6 = bpf_counts(made)
    assert (ipv4, ipv6) == dump_counts()
    for counts in (ipv4, ipv6):
        assert {TcpState(code).name: n for code, n in enumerate(counts) if n} == per_family
    assert made.counts() == (ipv4, ipv6) and made.loads == 1  # loaded once, run twice

    again = counter(tmp_path)  # a second watch: the layout comes from the cache
    assert again.counts() == (ipv4, ipv6)
    assert "BPF state counter loaded (cached BTF layout)" in again.debug
    for client in clients:
        client.close()


def test_the_iterator_sees_only_its_creators_namespace(lab: SocketLab, tmp_path: Path) -> None:
    made = counter(tmp_path)
    assert sum(map(sum, bpf_counts(made))) == 0  # a fresh namespace: the host's are not seen
    lab.established(2)
    lab.wait_for_states({"ESTABLISHED": 4})
    assert bpf_counts(made)[0][TcpState.ESTABLISHED] == 4  # the same program, run again


def test_a_refused_program_falls_back_to_netlink_with_the_reason(
    lab: SocketLab, tmp_path: Path
) -> None:
    lab.established(1)
    lab.wait_for_states({"ESTABLISHED": 2})
    bad = asm.program([asm.exit_()])  # r0 is never set: the verifier refuses it
    made = BpfCounter(PROC, BpfSeams(cache_dir=tmp_path), build=lambda _resolved: bad)
    snapshot = inspect(PROC, counter=made)
    assert snapshot.sockets is not None and snapshot.sockets.source == "netlink"
    assert snapshot.sockets.total(TcpState.ESTABLISHED) == 2
    (note,) = snapshot.sockets.notes
    assert note.startswith("BPF state counter not used: the kernel's verifier refused the program")
    assert "R0 !read_ok" in note  # the verifier's own verdict
    assert snapshot.problems == ()  # a slower source, not a missing reading


def test_no_btf_and_an_explicit_source_never_use_the_counter(tmp_path: Path) -> None:
    made = counter(tmp_path, btf_path=tmp_path / "no-such-btf")
    assert made.counts() is None
    assert made.reason is not None and made.reason.startswith("BPF state counter not used: kernel")
    live = counter(tmp_path)
    assert inspect(PROC, counter=live, source=SocketSource.NETLINK).sockets.source == "netlink"  # type: ignore[union-attr]
    assert inspect(PROC, counter=live, details=True).sockets.source == "netlink"  # type: ignore[union-attr]
    assert live.loads == 0  # asked for netlink or for details: never loaded


def watch_documents(*prefix: str) -> list[dict[str, object]]:
    result = run_tcptune("watch", "--json", "--interval", "0.05", "--count", "2", prefix=prefix)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_watch_counts_with_bpf_as_root_and_over_netlink_unprivileged(lab: SocketLab) -> None:
    lab.established(2, socket.AF_INET6)
    lab.close_wait(1)
    lab.wait_for_states({"ESTABLISHED": 4, "CLOSE_WAIT": 1, "FIN_WAIT2": 1})
    root = watch_documents()
    unprivileged = watch_documents(*UNPRIVILEGED)
    if root[0]["source"] != "bpf":
        skip_or_fail(f"the BPF state counter cannot run here: {root[0]['source_notes']}")
    assert [d["source"] for d in unprivileged] == ["netlink", "netlink"]
    notes = unprivileged[0]["source_notes"]
    assert isinstance(notes, list) and len(notes) == 1 and "needs CAP_BPF" in notes[0]
    assert root[0]["source_notes"] == [] and root[1]["problems"] == []
    for bpf, netlink in zip(root, unprivileged, strict=True):
        assert bpf.keys() == netlink.keys()  # the same shape whichever source counted
        assert counts(bpf) == counts(netlink)


def counts(document: dict[str, object]) -> dict[str, tuple[int, int]]:
    sockets = document["sockets"]
    assert isinstance(sockets, dict)
    return {name: (row["ipv4"], row["ipv6"]) for name, row in sockets["states"].items()}
