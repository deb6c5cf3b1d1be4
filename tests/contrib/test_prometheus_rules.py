"""contrib/prometheus: the alert rules pass promtool's check and unit tests, and fit tcptune.

`promtool check rules` parses every rule; `promtool test rules` runs the unit tests beside
the rules on synthetic series. Those series are checked against real audits here, so they
have the names and labels tcptune writes, and every runbook's `tcptune explain ID` exists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tcptune.cli import cli
from tests.contrib.promql import PENDING, live_series, selectors, unmatched_selectors
from tests.lab import SocketLab, promtool

RULES_DIR = Path(__file__).resolve().parents[2] / "contrib" / "prometheus"
RULES = RULES_DIR / "tcptune-alerts.yml"
UNIT_TESTS = RULES_DIR / "tcptune-alerts.test.yml"
# Labels whose values tcptune fixes (states, counters, keys): a test series must use real ones.
VOCABULARY = frozenset({"state", "family", "table", "field", "counter", "key", "bound"})
EXPLAIN = re.compile(r"`tcptune explain ?([^`]*)`")  # bare: the list of topics


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_check_rules_accepts_every_rule() -> None:
    output = promtool("check", "rules", str(RULES))
    assert f"SUCCESS: {len(_rules())} rules found" in output


def test_promtool_unit_tests_pass_and_cover_every_alert() -> None:
    output = promtool("test", "rules", UNIT_TESTS.name, cwd=RULES_DIR)
    assert "SUCCESS" in output
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert firing == {rule["alert"] for rule in _rules()}  # each alert fires in some test


def test_every_rule_has_a_summary_and_a_runbook_naming_a_real_explain_topic() -> None:
    for rule in _rules():
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        topics = EXPLAIN.findall(annotations["runbook"])
        assert topics, f"{rule['alert']}: the runbook names no `tcptune explain ID`"
        for topic in topics:
            result = CliRunner().invoke(cli, ["explain", *topic.split()])
            assert result.exit_code == 0, f"{rule['alert']}: tcptune explain {topic}"


@pytest.mark.kernel
def test_rules_and_their_test_series_use_only_what_tcptune_writes(lab: SocketLab) -> None:
    live = live_series(lab)
    assert unmatched_selectors([rule["expr"] for rule in _rules()], live) == []
    # The synthetic series have tcptune's names and exactly its labels (plus the scrape's).
    for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for item in test["input_series"]:
            ((name, matchers),) = selectors(item["series"])
            labels = {label for label, _op, _value in matchers} - {"instance", "job"}
            if name in PENDING and name not in live:
                assert labels == {"process"}, item["series"]
                continue
            assert name in live, item["series"]
            assert any(set(real) == labels for real in live[name]), item["series"]
            fixed = [m for m in matchers if m[0] in VOCABULARY]  # not hosts, processes, ...
            assert any(_has(real, fixed) for real in live[name]), item["series"]


def _has(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    return all(labels.get(label) == value for label, _op, value in matchers)
