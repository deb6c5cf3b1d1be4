"""`tcptune explain` and `tcptune profiles` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcptune.advise import DOCS
from tcptune.exitcodes import ExitStatus
from tests.conftest import invoke as run


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


PROFILE = 'schema = 1\nname = "{name}"\nsummary = "{summary}"\ndescription = "d"\n'


@pytest.mark.parametrize(
    "args",
    [
        ["profiles"],
        ["profiles", "show", "server-profile"],
        ["audit", "--profile", "server-profile"],
        ["apply", "server-profile"],  # the plan only, and refused before it is made
    ],
)
def test_a_missing_profile_dir_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    # A typo would otherwise fall back to a shipped profile of the same name.
    missing = tmp_path / "no-such-dir"
    position = 2 if args[:2] == ["profiles", "show"] else 1
    code, out, err = run(*args[:position], "--profile-dir", str(missing), *args[position:])
    assert code == ExitStatus.USAGE, err
    assert out == ""
    assert f"'{missing}' does not exist" in err


def test_profiles_show_takes_profile_dir_too(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(PROFILE.format(name="mine", summary="my own"))
    code, out, err = run("profiles", "show", "mine", "--profile-dir", str(tmp_path))
    assert code == 0, err
    assert out.startswith("mine: my own\n")
    code, out, err = run("profiles", "--profile-dir", str(tmp_path), "show", "mine", "--json")
    assert code == 0, err
    assert json.loads(out)["name"] == "mine"


def test_a_broken_profile_is_listed_as_invalid_and_the_rest_still_are(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(PROFILE.format(name="mine", summary="my own"))
    (tmp_path / "broken.toml").write_text("schema = [\n")
    code, out, err = run("profiles", "--profile-dir", str(tmp_path))
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line and line[0] != " "}
    assert rows["broken"].split(None, 1)[1].startswith("INVALID: TOML syntax")
    assert "my own" in rows["mine"]
    assert "server-profile" in rows  # the shipped ones are still listed
    assert err.count("\n") == 1  # one line per broken profile
    assert err.startswith(f"tcptune: invalid profile broken: {tmp_path / 'broken.toml'}: TOML")
    code, out, err = run("profiles", "--profile-dir", str(tmp_path), "--json")
    listed = {entry["name"]: entry for entry in json.loads(out)}
    assert listed["broken"]["error"].startswith(f"{tmp_path / 'broken.toml'}: TOML syntax")
    assert listed["mine"]["error"] is None and listed["mine"]["summary"] == "my own"


def test_a_user_profile_can_extend_the_shipped_one_it_overrides(tmp_path: Path) -> None:
    (tmp_path / "server-profile.toml").write_text(
        PROFILE.format(name="server-profile", summary="ours")
        + 'extends = "server-profile"\n'
        + '[sysctl."net.ipv4.tcp_fin_timeout"]\nvalue = 20\nwhy = "w"\nrisk = "r"\n'
    )
    code, out, err = run(
        "profiles", "show", "server-profile", "--profile-dir", str(tmp_path), "--json"
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["chain"][:2] == ["server-profile", "server-profile"]
    assert document["sysctl"]["net.ipv4.tcp_fin_timeout"]["value"] == 20
    assert document["sysctl"]["net.ipv4.tcp_keepalive_time"]["defined_in"] == "server-profile"
