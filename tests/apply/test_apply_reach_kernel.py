"""`apply PROFILE` says how many live sockets its keepalive and fin-timeout changes reach."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcptune.apply.reach import PlanReach, Reach
from tcptune.cli import cli
from tcptune.output.plan import reach_lines
from tests.apply_support import write_profile
from tests.lab import fresh_netns, require_netns_capability, skip_or_fail
from tests.lab.holders import Holder, build_holder

pytestmark = pytest.mark.kernel
TARGETS = {
    "net.ipv4.tcp_keepalive_time": {"value": 600},
    "net.ipv4.tcp_keepalive_probes": {"value": 5},
    "net.ipv4.tcp_fin_timeout": {"value": 15},
}


@pytest.fixture(scope="module")
def holder_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_holder(tmp_path_factory.mktemp("holder"))


@pytest.fixture
def holders(holder_binary: Path) -> Iterator[None]:
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    with (
        fresh_netns(),
        Holder(holder_binary, "redis-server", "keepown", 7500, 4),
        Holder(holder_binary, "keepsys", "keepsys", 7501, 2),
        Holder(holder_binary, "patient", "usertimeout", 7502, 1),
        Holder(holder_binary, "finlinger", "linger2", 7503, 3),
    ):
        yield


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_dry_run_and_apply_say_what_the_change_reaches(holders: None, tmp_path: Path) -> None:
    profile = str(write_profile(tmp_path / "profiles", "keep", TARGETS))
    state = str(tmp_path / "state")
    code, out, err = run("apply", profile, "--state-dir", state, "--json")
    assert code == 0, err
    reach = json.loads(out)["reach"]
    if not reach["available"] and "CAP_BPF" in reach["reason"]:
        skip_or_fail(reach["reason"])
    items = {item["name"]: item for item in reach["items"]}
    # 4 (redis-server, own idle/intvl/count) + 2 (keepsys) keepalive sockets
    assert (
        items["net.ipv4.tcp_keepalive_time"]["reached"],
        items["net.ipv4.tcp_keepalive_time"]["overriding"],
    ) == (2, 4)
    assert items["net.ipv4.tcp_keepalive_probes"]["considered"] == 6
    # 10 accepted + 10 client ends are open; 3 set TCP_LINGER2
    assert (
        items["net.ipv4.tcp_fin_timeout"]["reached"],
        items["net.ipv4.tcp_fin_timeout"]["overriding"],
    ) == (17, 3)
    code, out, err = run("apply", profile, "--state-dir", state, "--apply")
    assert code == 0, err
    assert "tcp_keepalive_time: reaches 2 of 6 SO_KEEPALIVE sockets; 4 set their own" in out
    assert "tcp_fin_timeout: reaches 17 of 20 open sockets (when they close); 3 set" in out


def test_reach_lines_when_the_options_are_unknown() -> None:
    lines = reach_lines(PlanReach((), "socket options not available: needs CAP_BPF"))
    assert lines[0].startswith("Reach: unknown: socket options not available: needs CAP_BPF;")
    lines = reach_lines(PlanReach((Reach("net.ipv4.tcp_fin_timeout", 1, 0, 1, "open sockets"),)))
    assert lines[1] == "  tcp_fin_timeout: reaches 1 of 1 open sockets; 0 set their own"
