"""Nagios thresholds: range semantics as the Monitoring Plugins guidelines define them.

The table is the guidelines' own ("Threshold and ranges",
https://www.monitoring-plugins.org/doc/guidelines.html#THRESHOLDFORMAT); each
range is also checked against the nagiosplugin library's Range, a real
implementation of that syntax, and each perfdata item against its Performance.
"""

from __future__ import annotations

import math

import nagiosplugin
import pytest
from nagiosplugin.performance import Performance

from tcptune.exitcodes import ExitStatus, UsageError
from tcptune.model.thresholds import (
    SERIES,
    Breach,
    Thresholds,
    breaches,
    check_status,
    parse_range,
    parse_thresholds,
)
from tcptune.output.check import _perf

# (range, values that alert, values that do not): the guidelines' five examples.
GUIDELINES = [
    ("10", [-1, 11, 10.5], [0, 5, 10]),  # < 0 or > 10
    ("10:", [9, -3], [10, 11, 1e9]),  # < 10
    ("~:10", [11, 10.01], [10, 0, -1e9]),  # > 10
    ("10:20", [9, 21], [10, 15, 20]),  # < 10 or > 20
    ("@10:20", [10, 15, 20], [9, 21]),  # >= 10 and <= 20
]


@pytest.mark.parametrize(("text", "alerting", "quiet"), GUIDELINES)
def test_the_guidelines_examples(text: str, alerting: list[float], quiet: list[float]) -> None:
    limit = parse_range(text)
    assert [limit.alerts(value) for value in alerting] == [True] * len(alerting)
    assert [limit.alerts(value) for value in quiet] == [False] * len(quiet)


@pytest.mark.parametrize(
    "text", ["10", "10:", "~:10", "10:20", "@10:20", "0", "@0", "5:5", "~:0", "@~:3", "1.5:2.5"]
)
def test_agrees_with_nagiosplugin(text: str) -> None:
    ours, theirs = parse_range(text), nagiosplugin.Range(text)
    for value in (-100, -1, 0, 0.5, 1.5, 2, 2.5, 3, 5, 9.99, 10, 10.01, 15, 20, 21, 1e6):
        assert ours.alerts(value) == (not theirs.match(value)), (text, value)


def test_ends_and_infinity() -> None:
    assert parse_range("10:").end == math.inf
    assert parse_range("~:10").start == -math.inf
    assert parse_range("10").start == 0


@pytest.mark.parametrize("text", ["", "abc", "20:10", ":", "@", "10:20:30", "1e3", "~"])
def test_what_is_not_a_range(text: str) -> None:
    with pytest.raises(ValueError):
        parse_range(text)


def test_threshold_options() -> None:
    found = parse_thresholds(["close_wait=100,time_wait=20000", "port_use=@50:"], "--warning")
    assert sorted(found) == ["close_wait", "port_use", "time_wait"]
    assert found["port_use"].inside and found["port_use"].start == 50
    for bad in ("close_wait", "nope=3", "close_wait=1,close_wait=2", "orphans=x"):
        with pytest.raises(UsageError):
            parse_thresholds([bad], "--warning")


def test_critical_wins_over_warning_and_the_audit_verdict_counts() -> None:
    thresholds = Thresholds(
        warning={"close_wait": parse_range("10")}, critical={"close_wait": parse_range("100")}
    )
    assert breaches(thresholds, {"close_wait": 5}) == []
    (warned,) = breaches(thresholds, {"close_wait": 50})
    assert warned.level == "warning"
    (critical,) = breaches(thresholds, {"close_wait": 500, "time_wait": None})
    assert critical.level == "critical"
    assert check_status(ExitStatus.OK, [warned]) is ExitStatus.WARNING
    assert check_status(ExitStatus.CRITICAL, [warned]) is ExitStatus.CRITICAL  # a finding
    assert check_status(ExitStatus.WARNING, [critical]) is ExitStatus.CRITICAL
    assert check_status(ExitStatus.INCOMPLETE, [warned]) is ExitStatus.INCOMPLETE
    assert check_status(ExitStatus.INCOMPLETE, [critical]) is ExitStatus.CRITICAL
    assert check_status(ExitStatus.OK, []) is ExitStatus.OK


@pytest.mark.parametrize(
    ("label", "value", "warn", "crit"),
    [
        ("close_wait", 5, "100", "200"),
        ("port_use", 12.5, "50", "@80:"),
        ("orphans", 0, None, None),
        ("time_wait", 3, None, "10:20"),
    ],
)
def test_perfdata_items_match_nagiosplugin(
    label: str, value: float, warn: str | None, crit: str | None
) -> None:
    unit, _what, top = SERIES[label]
    ours = _perf(
        label,
        value,
        unit,
        parse_range(warn) if warn else None,
        parse_range(crit) if crit else None,
        top,
    )
    theirs = Performance(
        label,
        value,
        unit,
        nagiosplugin.Range(warn) if warn else None,
        nagiosplugin.Range(crit) if crit else None,
        0,
        top,
    )
    assert ours == str(theirs)


def test_a_breach_names_its_range() -> None:
    breach = Breach("close_wait", 3, "warning", parse_range("@1:5"))
    assert (breach.range.text, breach.range.inside) == ("@1:5", True)
