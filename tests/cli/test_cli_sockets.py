"""`tcptune sockets` against real holders in a throwaway namespace: table, filters, JSON schema."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import fresh_netns, require_netns_capability, skip_or_fail
from tests.lab.holders import Holder, build_holder
from tests.lab.privileges import UNPRIVILEGED, run_tcptune

pytestmark = pytest.mark.kernel
SCHEMA = Path(__file__).resolve().parents[2] / "tcptune" / "schemas" / "sockets.json"


@pytest.fixture(scope="module")
def holder_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_holder(tmp_path_factory.mktemp("holder"))


@pytest.fixture
def held(holder_binary: Path) -> Iterator[dict[str, Holder]]:
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    with (
        fresh_netns(),
        Holder(holder_binary, "redis-server", "keepown", 6379, 3) as redis,
        Holder(holder_binary, "aborter", "linger0", 7001, 2) as aborter,
        Holder(holder_binary, "patient", "usertimeout", 7002, 1) as patient,
    ):
        yield {"redis": redis, "aborter": aborter, "patient": patient}


def sockets(*args: str) -> str:
    done = run_tcptune("sockets", *args)
    if done.returncode == 3 and "CAP_BPF" in done.stderr:
        skip_or_fail(done.stderr)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_table_fits_80_columns_and_says_whose_keepalive(held: dict[str, Holder]) -> None:
    text = sockets()
    assert max(len(line) for line in text.splitlines()) <= 80
    redis = [line for line in text.splitlines() if f"redis-server[{held['redis'].pid}]" in line]
    assert len(redis) == 4  # the listener and three accepted sockets
    assert sum("300s own" in line for line in redis) == 3
    aborts = [line for line in text.splitlines() if "aborter[" in line and "ESTAB" in line]
    assert len(aborts) == 2 and all("{1,0}" in line for line in aborts)
    assert "uto=30s" in text
    assert "15 of 15 TCP sockets shown" in text  # 3 listeners, 6 accepted, 6 client ends


def test_filters_and_wide(held: dict[str, Holder]) -> None:
    text = sockets("--pid", str(held["redis"].pid), "--state", "established", "--wide")
    rows = [line for line in text.splitlines() if line.startswith("ESTAB")]
    assert len(rows) == 3
    assert all("300s(own)/100s(own)/3(own)" in row and "127.0.0.1:6379" in row for row in rows)
    port = sockets("--port", "7001")
    assert "5 of" in port  # the listener, two accepted, two client ends
    mine = sockets("--pid", str(os.getpid()), "--json")
    assert len(json.loads(mine)["sockets"]) == 6


def test_json_matches_its_schema(held: dict[str, Holder]) -> None:
    import jsonschema

    document = json.loads(sockets("--json"))
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))
    redis = [
        s for s in document["sockets"] if s["owners"] and s["owners"][0]["name"] == "redis-server"
    ]
    established = [s for s in redis if s["state"] == "ESTABLISHED"]
    assert {s["keepalive"]["idle"]["source"] for s in established} == {"own"}
    assert {s["keepalive"]["idle"]["value"] for s in established} == {300}
    listener = next(s for s in redis if s["state"] == "LISTEN")
    assert listener["keepalive"] == {
        "on": False,
        "idle": {"value": document["defaults"]["tcp_keepalive_time"], "source": "sysctl"},
        "interval": {"value": document["defaults"]["tcp_keepalive_intvl"], "source": "sysctl"},
        "count": {"value": document["defaults"]["tcp_keepalive_probes"], "source": "sysctl"},
    }


def test_unprivileged_sockets_exits_3_with_the_reason(held: dict[str, Holder]) -> None:
    done = run_tcptune("sockets", prefix=UNPRIVILEGED)
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr == (
        "tcptune: socket options not available: needs CAP_BPF and CAP_PERFMON "
        "(BPF_PROG_LOAD: Operation not permitted)\n"
    )
    as_json = run_tcptune("sockets", "--json", prefix=UNPRIVILEGED)
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout)["available"] is False
