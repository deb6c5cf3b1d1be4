"""Every Prometheus output tcptune writes passes `promtool check metrics`, with bounded labels."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from tcptune.cli import cli
from tcptune.inspect.procfs import ProcFS
from tcptune.output.metrics import OTHER_PROCESSES, TOP_PROCESSES, audit_prometheus
from tcptune.run.audit import run_audit
from tests.conftest import FIXTURES
from tests.lab import SocketLab, current_netns, promtool


def _prometheus(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--format", "prometheus"])
    assert result.exit_code in (0, 1, 2, 3), result.stderr
    return result.stdout


def _series(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


@pytest.mark.parametrize("tree", ["container-ns", "broken", "old-kernel-host"])
@pytest.mark.parametrize("options", [(), ("--no-owners",), ("--profile", "server-profile")])
def test_promtool_accepts_the_output_of_every_fixture(tree: str, options: tuple[str, ...]) -> None:
    text = _prometheus("--proc-root", str(FIXTURES / tree), "audit", *options)
    assert promtool("check", "metrics", stdin=text).strip() == ""  # no lint warning either


@pytest.mark.kernel
def test_promtool_accepts_a_live_audit_with_owners_drift_and_every_state(lab: SocketLab) -> None:
    lab.listen()
    lab.established(2)
    lab.close_wait(3)
    lab.time_wait(2)
    lab.linger_zero_close(1)
    for options in [(), ("--no-owners",), ("--profile", "server-profile")]:
        text = _prometheus("audit", *options)
        assert promtool("check", "metrics", stdin=text).strip() == ""
    drift = _series(text, "tcptune_finding")
    assert any(dict(labels)["id"] == "profile-mismatch" for labels in drift)
    (info,) = _series(text, "tcptune_audit_info")
    assert dict(info)["netns"] == current_netns()  # "net:[INODE]", as readlink shows it
    assert dict(info)["profile"] == "server-profile"
    owners = _series(_prometheus("audit"), "tcptune_close_wait_sockets")
    assert sum(owners.values()) == 3 and len(owners) == 1
    assert _series(_prometheus("audit", "--no-owners"), "tcptune_close_wait_sockets") == {}


@pytest.mark.kernel
def test_close_wait_per_process_counts_a_shared_socket_once_per_name(lab: SocketLab) -> None:
    conns = lab.close_wait(3)
    fds = [conn.server.fileno() for conn in conns if conn.server is not None]
    # Two `sleep` processes inherit the same three CLOSE_WAIT sockets (as forked workers do).
    sleepers = [subprocess.Popen(["sleep", "30"], pass_fds=fds) for _ in range(2)]
    try:
        owners = _series(_prometheus("audit"), "tcptune_close_wait_sockets")
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()
    by_name = {dict(labels)["process"]: value for labels, value in owners.items()}
    assert by_name.pop("sleep") == 3  # not 6
    assert list(by_name.values()) == [3]  # and this test's own process holds them too


def test_per_process_series_are_bounded_and_hostile_names_escaped() -> None:
    result = run_audit(ProcFS(FIXTURES / "container-ns"))
    hostile = {
        'quote"back\\slash': 50,
        "new\nline": 40,
        "bad-utf8-\udcff": 30,
        "clear\x1b[2J": 25,  # an ESC sequence never reaches a terminal that cats the file
        "clear\\x1b[2J": 20,  # ... and a name spelled like its escaped form joins it
        OTHER_PROCESSES: 2,  # a real process of that name joins the rest, never twice
    }
    many = {f"worker-{n:02d}": n + 1 for n in range(30)}  # 1 to 30 sockets each
    result = dataclasses.replace(result, close_wait_by_process={**hostile, **many})
    text = audit_prometheus(result)
    assert promtool("check", "metrics", stdin=text).strip() == ""
    series = {
        dict(labels)["process"]: value
        for labels, value in _series(text, "tcptune_close_wait_sockets").items()
    }
    assert len(series) == TOP_PROCESSES + 1
    assert series['quote"back\\slash'] == 50 and series["new\\nline"] == 40
    assert series["clear\\x1b[2J"] == 45 and not any("\x1b" in name for name in series)
    assert series["bad-utf8-\\udcff"] == 30  # the undecodable byte survives, visibly
    kept = sum(value for name, value in series.items() if name != OTHER_PROCESSES)
    assert series[OTHER_PROCESSES] == 165 + sum(range(1, 31)) + 2 - kept
    assert sum(series.values()) == 165 + sum(range(1, 31)) + 2  # nothing lost or doubled
