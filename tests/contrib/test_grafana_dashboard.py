"""contrib/grafana: every dashboard query parses (promtool) and selects what tcptune writes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.contrib.promql import input_series, live_audits, live_series, unmatched_selectors
from tests.lab import SocketLab, promtool

DASHBOARD = Path(__file__).resolve().parents[2] / "contrib" / "grafana" / "tcptune-dashboard.json"
# Grafana's variables, replaced by values of their kind so that promtool can parse the query.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$instance": ".*",
}
LABEL_VALUES = re.compile(r"label_values\((\w+), (\w+)\)")


def _dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def _panels(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every panel, those inside collapsed rows included."""
    found: list[dict[str, Any]] = []
    for panel in document["panels"]:
        found.append(panel)
        found += panel.get("panels", [])
    return found


def _queries(document: dict[str, Any]) -> dict[str, str]:
    """Return {panel id and refId: PromQL with Grafana's variables substituted}."""
    queries: dict[str, str] = {}
    for panel in _panels(document):
        for target in panel.get("targets", []):
            expression = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expression = expression.replace(variable, value)
            assert "$" not in expression, f"unknown variable in panel {panel['title']!r}"
            queries[f"panel_{panel['id']}_{target['refId']}"] = expression
    return queries


def test_every_query_parses_as_a_recording_rule(tmp_path: Path) -> None:
    queries = _queries(_dashboard())
    rules = {
        "groups": [
            {
                "name": "tcptune-dashboard",
                "rules": [
                    {"record": f"tcptune_dashboard:{name}", "expr": expression}
                    for name, expression in queries.items()
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(queries)} rules found" in promtool("check", "rules", str(path))


def test_the_dashboard_shows_what_an_incident_needs() -> None:
    document = _dashboard()
    titles = " | ".join(panel["title"] for panel in _panels(document))
    for wanted in [
        "Sockets per state",
        "CLOSE_WAIT per process",
        "Timewait headroom (TIME_WAIT + orphaned FIN_WAIT2)",
        "Ephemeral port headroom",
        "Resets",
        "Drift",
    ]:
        assert wanted in titles
    ids = [panel["id"] for panel in _panels(document)]
    assert len(ids) == len(set(ids))
    for panel in _panels(document):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    assert document["uid"] == "tcptune" and document["schemaVersion"] >= 36


@pytest.mark.kernel
def test_every_query_returns_data_on_a_real_audit(lab: SocketLab, tmp_path: Path) -> None:
    """Load real audits into promtool's test engine; an alert on absent(QUERY) must stay quiet."""
    queries = _queries(_dashboard())
    rules = {
        "groups": [
            {
                "name": "empty-panels",
                "rules": [
                    {"alert": f"Empty_{name}", "expr": f"absent({expression})"}
                    for name, expression in queries.items()
                ],
            }
        ]
    }
    (tmp_path / "empty.yml").write_text(yaml.safe_dump(rules))
    tests = {
        "rule_files": ["empty.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series(live_audits(lab)),
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": f"Empty_{name}", "exp_alerts": []}
                    for name in queries
                ],
            }
        ],
    }
    (tmp_path / "empty.test.yml").write_text(yaml.safe_dump(tests))
    promtool("test", "rules", "empty.test.yml", cwd=tmp_path)


@pytest.mark.kernel
def test_every_query_and_variable_selects_series_tcptune_writes(lab: SocketLab) -> None:
    live = live_series(lab)
    document = _dashboard()
    assert unmatched_selectors(_queries(document).values(), live) == []
    for variable in document["templating"]["list"]:
        if variable["type"] == "query":
            match = LABEL_VALUES.fullmatch(variable["query"]["query"])
            assert match, variable["query"]
            metric, label = match.groups()
            assert metric in live  # instance comes from the scrape; any other label from tcptune
            assert label == "instance" or all(label in labels for labels in live[metric])
