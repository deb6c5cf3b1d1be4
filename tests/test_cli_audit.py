"""Run `tcptune audit` in-process with CliRunner: stdout, stderr and exit statuses."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tcptune.cli import cli
from tcptune.exitcodes import ExitStatus
from tests.conftest import FIXTURES


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


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
