"""Run `tcptune audit` in-process with CliRunner: stdout, stderr and exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from tcptune.cli.group import SECONDS, SECONDS_OR_ZERO
from tcptune.exitcodes import ExitStatus
from tests.conftest import FIXTURES
from tests.conftest import invoke as _run

CONTAINER = str(FIXTURES / "container-ns")


def test_text_report_fits_80_columns_and_shows_human_units() -> None:
    code, out, err = _run("--proc-root", str(FIXTURES / "container-ns"), "audit")
    # The fixture's listeners were bound to port 0, so they sit in the ephemeral range.
    assert code == ExitStatus.WARNING, err
    assert "[WARNING] port-range-listeners:" in out
    assert err == ""
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "tcp_keepalive_time       2 h (7200 s)" in out
    assert "Keepalive detects a dead peer after 2 h 11 min (7875 s)" in out
    assert "tcp_max_orphans          not in this namespace" in out
    assert "container network namespace" in out
    assert "sockets via procfs" in out


def test_json_is_versioned_and_on_stdout_only() -> None:
    code, out, err = _run("--proc-root", str(FIXTURES / "container-ns"), "audit", "--json")
    assert code == ExitStatus.WARNING
    assert err == ""
    document = json.loads(out)
    assert document["schema"] == 1
    assert document["complete"] is True
    assert document["sockets"]["states"]["CLOSE_WAIT"] == {"ipv4": 1, "ipv6": 1, "total": 2}
    assert document["sockets"]["total"] == 16
    assert document["sysctls"]["net.ipv4.ip_local_port_range"]["value"] == [32768, 60999]
    assert document["sysctls"]["net.ipv4.tcp_max_orphans"]["status"] == "not in this namespace"
    assert document["keepalive"]["detection_seconds"] == 7875
    assert document["counters"]["tcp"]["ActiveOpens"] == 8
    assert set(document["counters"]["sockstat"]) == {"TCP", "TCP6"}
    ids = [finding["id"] for finding in document["findings"]]
    assert ids[0] == "port-range-listeners"  # worst first
    assert {"close-wait", "fin-wait-2", "keepalive"} <= set(ids)
    assert document["profile"] is None


def test_ignore_suppresses_a_finding_and_the_exit_status_follows() -> None:
    code, out, _err = _run(
        "--proc-root",
        str(FIXTURES / "container-ns"),
        "audit",
        "--json",
        "--ignore",
        "port-range-listeners",
    )
    assert code == ExitStatus.OK
    assert "port-range-listeners" not in [f["id"] for f in json.loads(out)["findings"]]


def test_incomplete_inspection_exits_3_and_names_each_problem_on_stderr() -> None:
    broken = FIXTURES / "broken"
    code, out, err = _run("--proc-root", str(broken), "audit")
    assert code == ExitStatus.INCOMPLETE == 3
    assert "Sockets by state" in out  # the rest of the report still prints
    assert f"tcptune: incomplete: {broken}/net/tcp: line 6: unknown TCP state code 0F" in err
    assert "Traceback" not in err


def test_usage_error_is_64_with_a_hint() -> None:
    code, _out, err = _run("audit", "--no-such-flag")
    assert code == ExitStatus.USAGE == 64
    assert "No such option '--no-such-flag'" in err


def test_missing_proc_root_is_a_usage_error() -> None:
    code, _out, err = _run("--proc-root", "/nonexistent/proc", "audit")
    assert code == ExitStatus.USAGE
    assert "'/nonexistent/proc' does not exist" in err


def test_help_has_examples() -> None:
    code, out, _err = _run("audit", "--help")
    assert code == 0
    assert "Examples:" in out and "tcptune audit --json" in out


def test_a_reader_that_leaves_ends_tcptune_like_any_unix_filter() -> None:
    import os
    import signal
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before tcptune writes a byte
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tcptune", "explain"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert result.returncode == -signal.SIGPIPE  # 141 in a shell; never 1 (= WARNING)
    assert result.stderr == ""


BAD_INTERVALS = ["nan", "inf", "-inf", "1e12", "0", "-1", "soon"]


# 86401 is tried with watch only: an audit without the bound would sleep for a day.
@pytest.mark.parametrize(
    ("command", "interval"),
    [
        *((["audit"], interval) for interval in BAD_INTERVALS),
        *((["watch", "--count", "1"], interval) for interval in [*BAD_INTERVALS, "86401"]),
    ],
)
def test_every_interval_is_finite_positive_and_at_most_a_day(
    command: list[str], interval: str
) -> None:
    code, out, err = _run("--proc-root", CONTAINER, *command, "--interval", interval)
    assert code == ExitStatus.USAGE, err
    assert out == ""
    assert (
        "Invalid value for '--interval': must be a number of seconds above 0 and at most "
        f"86400 (one day), got '{interval}'" in err
    )


def test_the_seconds_types_accept_their_range() -> None:
    assert SECONDS.convert("0.5", None, None) == 0.5
    assert SECONDS.convert("86400", None, None) == 86400.0
    assert SECONDS.convert(2.0, None, None) == 2.0  # a default arrives as a float
    assert SECONDS_OR_ZERO.convert("0", None, None) == 0.0
    for bad in ("nan", "-0.1", "86400.5", "inf"):
        with pytest.raises(click.BadParameter, match="from 0 to 86400"):
            SECONDS_OR_ZERO.convert(bad, None, None)


def _findings(*args: str) -> tuple[int, list[dict[str, object]], str]:
    code, out, err = _run("--proc-root", CONTAINER, "audit", "--json", *args)
    return code, json.loads(out)["findings"], err


def test_findings_json_names_the_subject_of_each_finding() -> None:
    _code, findings, _err = _findings("--profile", "server-profile")
    mismatches = [f["subject"] for f in findings if f["id"] == "profile-mismatch"]
    assert len(mismatches) == 5 and len(set(mismatches)) == 5
    assert "net.ipv4.tcp_keepalive_time" in mismatches
    assert all("subject" in f for f in findings)
    assert next(f for f in findings if f["id"] == "close-wait")["subject"] is None


@pytest.mark.parametrize("key", ["tcp_keepalive_time", "net.ipv4.tcp_keepalive_time"])
def test_ignore_takes_the_short_or_dotted_key_the_report_shows(key: str) -> None:
    _code, before, _err = _findings("--profile", "server-profile")
    _code, after, err = _findings(
        "--profile", "server-profile", "--ignore", f"profile-mismatch:{key}"
    )
    assert [f["subject"] for f in before if f not in after] == ["net.ipv4.tcp_keepalive_time"]
    assert err == ""


def test_ignore_takes_a_short_net_core_key(tmp_path: Path) -> None:
    profile = tmp_path / "backlog.toml"
    profile.write_text(
        'schema = 1\nname = "backlog"\nsummary = "s"\ndescription = "d"\n'
        '[sysctl."net.core.somaxconn"]\nvalue = 1024\nwhy = "w"\nrisk = "r"\n'
    )
    _code, before, _err = _findings("--profile", str(profile))
    assert [f["subject"] for f in before if f["id"] == "profile-mismatch"] == ["net.core.somaxconn"]
    _code, after, _err = _findings(
        "--profile", str(profile), "--ignore", "profile-mismatch:somaxconn"
    )
    assert [f for f in after if f["id"] == "profile-mismatch"] == []


def test_an_ignore_id_no_finding_has_is_warned_about_and_the_audit_still_runs() -> None:
    code, findings, err = _findings(
        "--ignore", "nonsense-id", "--ignore", "close-wiat:x", "--ignore", "keepalive"
    )
    assert code == ExitStatus.WARNING
    assert "keepalive" not in [f["id"] for f in findings]
    assert err.splitlines() == [
        "tcptune: --ignore nonsense-id: no finding has the ID 'nonsense-id' "
        "(the IDs are listed by `tcptune explain`)",
        "tcptune: --ignore close-wiat:x: no finding has the ID 'close-wiat' "
        "(the IDs are listed by `tcptune explain`)",
    ]


def test_findings_heading_has_no_nested_parentheses() -> None:
    _code, out, _err = _run("--proc-root", CONTAINER, "audit")
    heading = next(line for line in out.splitlines() if line.startswith("Findings"))
    assert heading == "Findings (no profile; add --profile NAME to compare with one)"
    _code, out, _err = _run("--proc-root", CONTAINER, "audit", "--profile", "server-profile")
    assert "Findings (compared with profile server-profile)" in out
