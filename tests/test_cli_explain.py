"""`tcptune explain` and `tcptune profiles` through the CLI."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tcptune.advisor import DOCS
from tcptune.cli import cli
from tcptune.exitcodes import ExitStatus


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_explain_lists_every_kind_and_every_finding_id() -> None:
    code, out, _ = run("explain")
    assert code == 0
    for heading in ("states:", "sysctls:", "options:", "concepts:", "findings:"):
        assert heading in out
    listed = {line.strip() for line in out.splitlines() if line.startswith("  ")}
    missing = [doc_id for doc_id in DOCS if doc_id not in listed]
    assert missing == []
    assert max(len(line) for line in out.splitlines()) <= 80


def test_explain_a_state_includes_its_finding() -> None:
    code, out, _ = run("explain", "CLOSE_WAIT")
    assert code == 0
    assert "No sysctl fixes CLOSE-WAIT" in out
    assert "As a tcptune audit finding (close-wait):" in out


def test_explain_a_finding_without_a_state_topic() -> None:
    code, out, _ = run("explain", "linger-zero")
    assert code == 0
    assert out.startswith("Finding linger-zero:")
    assert "TCPAbortOnData" in out


def test_explain_unknown_topic_suggests_close_ones() -> None:
    code, out, err = run("explain", "fin_timeoutt")
    assert code == ExitStatus.UNAVAILABLE
    assert out == ""
    assert err.startswith("tcptune: no explain topic named 'fin_timeoutt'; did you mean:")
    assert "net.ipv4.tcp_fin_timeout" in err


def test_profiles_list_and_show() -> None:
    code, out, _ = run("profiles")
    assert code == 0
    assert "server-profile" in out and "kernel-default" in out
    code, out, _ = run("profiles", "show", "server-profile", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["chain"][0] == "server-profile"
    assert document["sysctl"]["net.ipv4.tcp_fin_timeout"]["why"]
    code, out, _ = run("profiles", "show", "server-profile")
    assert "why:" in out and "risk:" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_profiles_show_unknown_is_unavailable() -> None:
    code, _out, err = run("profiles", "show", "no-such-profile")
    assert code == ExitStatus.UNAVAILABLE
    assert err.startswith("tcptune: no profile named 'no-such-profile' (available: ")
