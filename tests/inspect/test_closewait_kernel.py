"""CLOSE_WAIT ages from tcp_info against the real kernel: a leaking holder in a throwaway netns."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcptune.inspect.closewait import read_close_wait_ages
from tests.lab import fresh_netns, promtool, require_netns_capability, skip_or_fail
from tests.lab.holders import Holder, build_holder
from tests.lab.privileges import UNPRIVILEGED, run_tcptune

pytestmark = pytest.mark.kernel
WAITED = 1.2  # seconds the sockets sit in CLOSE_WAIT before they are read


@pytest.fixture(scope="module")
def holder_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_holder(tmp_path_factory.mktemp("holder"))


@pytest.fixture
def leaked(holder_binary: Path) -> Iterator[Holder]:
    """A 'leakyd' holding 3 CLOSE_WAIT sockets: the peers closed, it never does."""
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    with fresh_netns(), Holder(holder_binary, "leakyd", "plain", 7400, 3) as holder:
        for client in holder.clients:
            client.close()  # the peer's FIN: leakyd's ends go to CLOSE_WAIT
        time.sleep(WAITED)
        yield holder


def test_ages_are_the_time_since_the_peers_fin(leaked: Holder) -> None:
    found = read_close_wait_ages()
    assert len(found.ages) == 3
    for estimate, bound in found.ages.values():
        assert WAITED <= estimate <= bound < WAITED + 5
    assert set(found.local_ports.values()) == {7400}


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


def test_ages_need_no_privilege(leaked: Holder) -> None:
    done = run_tcptune("audit", "--json", prefix=UNPRIVILEGED)
    close_wait = next(f for f in json.loads(done.stdout)["findings"] if f["id"] == "close-wait")
    assert close_wait["data"]["age_buckets"]["1m"] == 3
