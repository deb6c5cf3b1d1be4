"""The benchmark's pure parts: mixes and plans, output parsing, targets and tables (no timing)."""

from __future__ import annotations

from typing import Any

import pytest

from bench import report
from bench.specs import MIXES, Mix, Plan, Tools, client_address, commands, parse_counts, select


def test_the_issue_mix_at_its_size() -> None:
    plan = Plan.for_size(192_528, MIXES["server"])
    assert plan.server_time_wait
    expected = plan.expected
    assert sum(expected.values()) == 192_528
    assert expected["ESTABLISHED"] == 2 * plan.established_pairs  # ~25k pairs
    assert 24_000 <= plan.established_pairs <= 26_000
    assert 29_000 <= expected["CLOSE_WAIT"] <= 31_000
    assert 99_000 <= expected["TIME_WAIT"] <= 101_000
    assert expected["FIN_WAIT2"] <= expected["CLOSE_WAIT"]


@pytest.mark.parametrize("name", sorted(MIXES))
@pytest.mark.parametrize("size", [0, 1, 999, 10_000, 200_000])
def test_every_plan_adds_up_and_splits_evenly(name: str, size: int) -> None:
    plan = Plan.for_size(size, MIXES[name])
    assert sum(plan.expected.values()) == size
    parts = plan.split(3)
    assert sum(p.established_pairs for p in parts) == plan.established_pairs
    assert sum(p.detached_close_wait for p in parts) == plan.detached_close_wait
    assert max(p.held_fds for p in parts) - min(p.held_fds for p in parts) <= 4


def test_timewait_mix_needs_no_descriptor() -> None:
    plan = Plan.for_size(500_000, MIXES["timewait"])
    assert plan.held_fds == 0 and plan.expected == {"TIME_WAIT": 500_000}


def test_a_mix_must_add_up() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        Mix("bad", 0.5, 0.5, 0.1, 0.0, False, "")


def test_client_addresses_are_loopback_and_distinct() -> None:
    addresses = [client_address(i) for i in range(70_000)]
    assert len(set(addresses)) == 70_000
    assert all(a.startswith("127.") for a in addresses)
    assert all(0 <= int(part) <= 255 for a in addresses[::997] for part in a.split("."))


def test_output_parsers() -> None:
    assert parse_counts("uniq-c", "  3 ESTAB\n  1 State\n 2 TIME-WAIT\n") == {
        "ESTABLISHED": 3,
        "TIME_WAIT": 2,
    }
    assert parse_counts("floor", "1:4 6:10 close_wait_inodes:0 procs:3\n") == {
        "ESTABLISHED": 4,
        "TIME_WAIT": 10,
    }
    assert parse_counts("json-dict", '{"ESTABLISHED": 2, "CLOSE_WAIT": 0}') == {"ESTABLISHED": 2}
    tcptune = '{"sockets": {"states": {"LISTEN": {"total": 1}, "CLOSING": {"total": 0}}}}'
    assert parse_counts("tcptune-json", tcptune) == {"LISTEN": 1}
    assert parse_counts("tcptune-json", "not json") is None


def test_commands_and_selection() -> None:
    specs = commands(Tools("/venv/bin/python", ("/venv/bin/tcptune",), "/tmp/nlcount", None))
    keys = [s.key for s in specs]
    assert "nlcount" in keys and "auditfloor" not in keys
    assert [s.key for s in select(specs, ["watch"])] == ["watch-1", "watch"]
    with pytest.raises(ValueError, match="unknown command key"):
        select(specs, ["nope"])


def _command(key: str, wall: float, rss: float = 20.0, **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "name": key,
        "ok": True,
        "median_wall_s": wall,
        "min_wall_s": wall,
        "median_cpu_s": wall,
        "max_rss_mib": rss,
        "walls_s": [wall],
        "exit_codes": [0],
        **extra,
    }


def _scenario(size: int, rss: float) -> dict[str, Any]:
    return {
        "name": f"server {size:,}",
        "mix": "server",
        "sockets": size,
        "commands": [
            _command("tcptune", 0.4, rss + 5),
            _command("tcptune-no-owners", 0.2, rss),
            _command("nlcount", 0.15),
            _command("auditfloor", 0.3),
            _command("ss", 0.5),
            _command("ss-p", 1.5),
            _command("watch", 0.5, cpu_per_refresh_s=0.08),
        ],
    }


def test_targets_from_medians() -> None:
    rows = {row.measure: row for row in report.scenario_targets(_scenario(200_000, 25.0))}
    assert rows["tcptune-no-owners / nlcount"].value == pytest.approx(0.2 / 0.15)
    assert rows["tcptune-no-owners / nlcount"].met
    assert rows["tcptune / ss + ss-p"].value == pytest.approx(0.2)
    assert rows["tcptune max RSS MiB"].met  # 30 <= 40
    assert rows["watch CPU ms per refresh"].value == pytest.approx(80)
    # With BPF the full audit's bound is the C procfs floor itself; without, 1.6x of it.
    assert rows["tcptune / auditfloor"].value == pytest.approx(0.4 / 0.3)
    assert rows["tcptune / auditfloor"].met is False
    assert rows["tcptune-no-bpf / auditfloor"].note == "tcptune-no-bpf not measured"


def test_missing_or_failed_commands_are_named_not_met() -> None:
    scenario = _scenario(10_000, 20.0)
    scenario["commands"] = [c for c in scenario["commands"] if c["key"] != "nlcount"]
    scenario["commands"][0]["ok"] = False
    rows = {row.measure: row for row in report.scenario_targets(scenario)}
    assert rows["tcptune-no-owners / nlcount"].note == "nlcount not measured"
    assert rows["tcptune / auditfloor"].note == "tcptune failed"
    assert rows["tcptune / auditfloor"].met is None


def test_flatness_per_mix() -> None:
    rows = report.flatness([_scenario(10_000, 20.0), _scenario(200_000, 23.0)])
    by_measure = {row.measure: row for row in rows}
    spread = by_measure["tcptune-no-owners RSS spread over 2 sizes MiB"]
    assert spread.value == pytest.approx(3.0) and spread.met is False


def test_tables_render() -> None:
    scenarios = [
        _scenario(10_000, 20.0),
        {"name": "x", "mix": "server", "sockets": 5, "error": "boom"},
    ]
    assert "| server | 10,000 | 400 ms, 25.0 MiB |" in report.scaling_markdown(scenarios)
    rows = report.result_rows(scenarios)
    assert rows[-1][2] == "ERROR: boom"
    assert report.targets_markdown(report.all_targets(scenarios)).startswith("| scenario |")
