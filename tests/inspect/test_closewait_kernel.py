"""CLOSE_WAIT ages from tcp_info against the real kernel: leaking holders in a throwaway netns.

The ages come from the main sock_diag dump's CLOSE_WAIT pass (INET_DIAG_INFO),
read in bulk when a chunk holds enough messages and message by message
otherwise: both are exercised, and the counts must match exactly.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcptune.advise import Evidence
from tcptune.inspect.inspector import SocketSource, inspect
from tcptune.model.closewait import CloseWaitAges
from tcptune.model.tcpstates import TcpState
from tests.lab import SocketLab, fresh_netns, promtool, require_netns_capability, skip_or_fail
from tests.lab.holders import Holder, build_holder
from tests.lab.privileges import UNPRIVILEGED, run_tcptune

pytestmark = pytest.mark.kernel
WAITED = 1.2  # seconds the sockets sit in CLOSE_WAIT before they are read


@pytest.fixture(scope="module")
def holder_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_holder(tmp_path_factory.mktemp("holder"))


@pytest.fixture
def namespace() -> Iterator[None]:
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    with fresh_netns():
        yield


@pytest.fixture
def leaked(holder_binary: Path, namespace: None) -> Iterator[Holder]:
    """A 'leakyd' holding 3 CLOSE_WAIT sockets: the peers closed, it never does."""
    with Holder(holder_binary, "leakyd", "plain", 7400, 3) as holder:
        for client in holder.clients:
            client.close()  # the peer's FIN: leakyd's ends go to CLOSE_WAIT
        time.sleep(WAITED)
        yield holder


def _ages(owners: bool = False) -> CloseWaitAges:
    snapshot = inspect(source=SocketSource.NETLINK, details=True, owners=owners)
    assert snapshot.problems == ()
    assert snapshot.close_wait_ages is not None
    assert snapshot.sockets is not None
    assert len(snapshot.close_wait_ages) == snapshot.sockets.total(TcpState.CLOSE_WAIT)
    return snapshot.close_wait_ages


def test_ages_are_the_time_since_the_peers_fin_and_grow(leaked: Holder) -> None:
    found = _ages(owners=True)
    assert len(found) == 3
    assert list(found.inodes) == sorted(found.inodes) and 0 not in found.inodes
    for ack, data in zip(found.last_ack_ms, found.last_data_ms, strict=True):
        assert WAITED * 1000 <= ack <= data < (WAITED + 5) * 1000
    assert set(found.local_ports) == {7400}
    time.sleep(0.3)
    later = _ages(owners=True)
    assert list(later.inodes) == list(found.inodes)
    for before, after in zip(found.last_ack_ms, later.last_ack_ms, strict=True):
        assert after >= before + 250  # the same sockets, 0.3 s older


def test_bulk_and_mixed_chunks_give_every_socket_its_age(namespace: None) -> None:
    with SocketLab() as lab:
        lab.close_wait(40)  # one family: chunks read in bulk at a fixed tcp_info offset
        time.sleep(0.2)
        bulk = _ages(owners=True)
        assert len(bulk) == 40 and 150 <= min(bulk.last_ack_ms) <= max(bulk.last_ack_ms) < 5000
        lab.close_wait(12, socket.AF_INET6)  # both families in a chunk: message by message
        mixed = _ages(owners=True)
        assert len(mixed) == 52
        assert max(mixed.last_ack_ms) >= min(bulk.last_ack_ms)
        assert max(mixed.last_ack_ms) < 5000


def test_unaccepted_close_wait_sockets_are_counted_without_a_process(namespace: None) -> None:
    """A connection its peer closed before accept(): CLOSE_WAIT with inode 0, in the queue."""
    with SocketLab() as lab:
        listener = lab.listen(backlog=8)
        clients = [socket.create_connection(listener.getsockname()[:2]) for _ in range(3)]
        for client in clients:
            client.close()
        lab.close_wait(2)  # and two accepted, held by this process
        lab.wait_for_states({"LISTEN": 1, "CLOSE_WAIT": 5, "FIN_WAIT2": 5})
        snapshot = inspect(source=SocketSource.NETLINK, details=True, owners=True)
        ages = snapshot.close_wait_ages
        assert ages is not None and list(ages.inodes).count(0) == 3 and len(ages) == 5
        summary = Evidence(snapshot).close_wait_summary
        assert summary is not None and summary.sockets == 5
        by_name = {p.name: p.sockets for p in summary.processes}
        assert by_name["(no process)"] == 3 and sum(by_name.values()) == 5


def test_each_holder_is_named_with_its_own_sockets(holder_binary: Path, namespace: None) -> None:
    with (
        Holder(holder_binary, "leakyd", "plain", 7400, 5) as leaky,
        Holder(holder_binary, "slowd", "plain", 7401, 2) as slow,
    ):
        for client in (*leaky.clients, *slow.clients):
            client.close()
        time.sleep(0.2)
        document = json.loads(run_tcptune("audit", "--json", "--no-options").stdout)
        close_wait = next(f for f in document["findings"] if f["id"] == "close-wait")
        named = {
            p["name"]: (p["pids"], p["sockets"]) for p in close_wait["data"]["ages_by_process"]
        }
        assert named == {"leakyd": ([leaky.pid], 5), "slowd": ([slow.pid], 2)}
        owners = {o["name"]: (o["pid"], o["sockets"]) for o in close_wait["data"]["owners"]}
        assert owners == {"leakyd": (leaky.pid, 5), "slowd": (slow.pid, 2)}
        assert [o["name"] for o in close_wait["data"]["owners"]] == ["leakyd", "slowd"]
        assert close_wait["data"]["count"] == 7


def test_audit_names_the_oldest_per_process_in_text_json_and_prometheus(leaked: Holder) -> None:
    document = json.loads(run_tcptune("audit", "--json", "--no-options").stdout)
    close_wait = next(f for f in document["findings"] if f["id"] == "close-wait")
    (leaky,) = close_wait["data"]["ages_by_process"]
    assert (leaky["name"], leaky["pids"], leaky["sockets"]) == ("leakyd", [leaked.pid], 3)
    assert WAITED <= leaky["oldest_seconds"] < WAITED + 5
    assert leaky["last_minute"] == 3
    assert close_wait["data"]["age_buckets"] == {"1m": 3, "10m": 0, "1h": 0, "1d": 0, "older": 0}
    text = run_tcptune("audit", "--no-options").stdout
    joined = " ".join(text.split())
    assert re.search(r"leakyd: 3 sockets, oldest stuck \d s, 3 in the last minute", joined)
    metrics = run_tcptune("audit", "--format", "prometheus", "--no-options").stdout
    promtool("check", "metrics", stdin=metrics)
    oldest = [line for line in metrics.splitlines() if line.startswith("tcptune_close_wait_oldest")]
    assert len(oldest) == 1 and oldest[0].startswith(
        'tcptune_close_wait_oldest_seconds{process="leakyd"}'
    )
    assert 'tcptune_close_wait_age_sockets{below="1m"} 3.0' in metrics
    assert 'tcptune_close_wait_sockets{process="leakyd"} 3.0' in metrics


def test_ages_need_no_privilege(leaked: Holder) -> None:
    done = run_tcptune("audit", "--json", prefix=UNPRIVILEGED)
    close_wait = next(f for f in json.loads(done.stdout)["findings"] if f["id"] == "close-wait")
    assert close_wait["data"]["age_buckets"]["1m"] == 3
