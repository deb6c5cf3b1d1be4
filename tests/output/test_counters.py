"""The audit's counters: current values apart from totals, and per-second rates with --interval."""

from __future__ import annotations

import json

from tcptune.inspect.procfs import ProcFS
from tcptune.output.audit import audit_output
from tcptune.run.audit import run_audit
from tests.conftest import FIXTURES
from tests.lab import SocketLab


def test_interval_shows_a_rate_for_every_counter_in_text_and_json(lab: SocketLab) -> None:
    result = run_audit(ProcFS(), interval=0.5, owners=False, sleep=lambda _s: lab.established(3))
    document = json.loads(audit_output(result, "json"))
    counters = document["counters"]
    assert counters["totals_since"] == "since this network namespace was created"
    rates = counters["rates"]
    assert rates["interval_seconds"] == 0.5
    assert set(rates["tcp"]) == set(counters["tcp"]) - {"CurrEstab"}  # a current value
    assert set(rates["tcp_ext"]) == set(counters["tcp_ext"])
    assert rates["tcp"]["ActiveOpens"] > 0 and rates["tcp_ext"]["TCPAbortOnData"] == 0
    text = audit_output(result, "text")
    assert "Counters (totals since this network namespace was created; rates over 0.5 s)" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("ActiveOpens"))
    total, per_second = row.split()[1:]
    assert int(total) == 3 and float(per_second) > 0


def test_without_interval_there_are_no_rates_and_curr_estab_says_what_it_counts(
    lab: SocketLab,
) -> None:
    lab.established(1)
    lab.close_wait(2)
    result = run_audit(ProcFS(), owners=False)
    assert json.loads(audit_output(result, "json"))["counters"]["rates"] is None
    text = audit_output(result, "text")
    assert "per second" not in text
    row = next(line for line in text.splitlines() if "CurrEstab" in line)
    assert row.split() == ["CurrEstab", "(ESTABLISHED", "+", "CLOSE_WAIT)", "4"]
    assert "Sockets now (current values; this namespace unless marked host-wide)" in text
    assert "sockstat orphan, host-wide" in text


def test_the_initial_namespace_counts_since_boot() -> None:
    result = run_audit(ProcFS(FIXTURES / "old-kernel-host"), owners=False)
    assert "Counters (totals since boot)" in audit_output(result, "text")
