"""One value model end to end on the real kernel: audit, apply and verify agree.

Each test runs in a fresh network namespace (the conftest ``netns`` fixture),
so the sysctls it sets are that namespace's and vanish with it.
"""

from __future__ import annotations

import json
from pathlib import Path

from tcptune.exitcodes import ExitStatus
from tcptune.inspect.procfs import ProcFS
from tests.apply_support import write_profile
from tests.conftest import CliRun

RESERVED = "net.ipv4.ip_local_reserved_ports"
CONGESTION = "net.ipv4.tcp_congestion_control"  # per namespace since Linux 4.15


def live(name: str) -> str:
    return ProcFS().sysctl_path(name).read_text().strip()


def where(tmp_path: Path) -> list[str]:
    root = tmp_path / "root"
    (root / "etc/sysctl.d").mkdir(parents=True, exist_ok=True)
    return ["--state-dir", str(tmp_path / "state"), "--boot-root", str(root)]


def mismatches(out: str) -> list[str]:
    return [f["subject"] for f in json.loads(out)["findings"] if f["id"] == "profile-mismatch"]


def test_a_reserved_port_list_in_another_order_is_no_drift(
    netns: str, tmp_path: Path, cli: CliRun
) -> None:
    ProcFS().sysctl_path(RESERVED).write_text("8080,9000-9010\n")
    assert live(RESERVED) == "8080,9000-9010"  # the kernel prints its bitmap merged, sorted
    profile = str(write_profile(tmp_path, "ports", {RESERVED: {"value": "9000-9010,8080"}}))

    code, out, err = cli("audit", "--profile", profile, "--json", "--no-owners")
    assert err == "" and mismatches(out) == []
    code, out, err = cli("verify", profile, "--boot-root", str(tmp_path))
    assert (code, err) == (ExitStatus.OK, ""), out
    code, out, err = cli("apply", profile, *where(tmp_path), "--json")
    assert code == ExitStatus.OK, err
    assert [item["action"] for item in json.loads(out)["items"]] == ["keep"]


def test_a_text_sysctl_validates_audits_applies_and_verifies(
    netns: str, tmp_path: Path, cli: CliRun
) -> None:
    before = live(CONGESTION)
    # Outside the initial namespace only an allowed (non-restricted) algorithm can be
    # the default: tcp_set_default_congestion_control() in net/ipv4/tcp_cong.c says EPERM.
    allowed = live("net.ipv4.tcp_allowed_congestion_control").split()
    wanted = next(name for name in allowed if name != before)
    profile = str(write_profile(tmp_path, "cc", {CONGESTION: {"value": wanted}}))

    code, out, err = cli("profiles", "show", profile)
    assert (code, err) == (ExitStatus.OK, ""), err
    code, out, err = cli("audit", "--profile", profile, "--json", "--no-owners")
    assert mismatches(out) == [CONGESTION], err
    code, out, err = cli("verify", profile, "--boot-root", str(tmp_path))
    assert code == ExitStatus.DRIFT, err

    code, out, err = cli("apply", profile, *where(tmp_path), "--apply")
    assert code == ExitStatus.BAD_INPUT and "pass --allow-unlisted" in err  # issue 11
    assert live(CONGESTION) == before
    code, out, err = cli("apply", profile, *where(tmp_path), "--apply", "--allow-unlisted")
    assert (code, err) == (ExitStatus.OK, ""), out
    assert "scope: outside tcptune's catalogue, allowed by --allow-unlisted: a net.*" in out
    assert live(CONGESTION) == wanted
    code, out, err = cli("audit", "--profile", profile, "--json", "--no-owners")
    assert mismatches(out) == [], err
    code, out, err = cli("verify", profile, "--boot-root", str(tmp_path))
    assert (code, err) == (ExitStatus.OK, ""), out

    code, out, err = cli("rollback", "--state-dir", str(tmp_path / "state"))
    assert (code, err) == (ExitStatus.OK, ""), out
    assert live(CONGESTION) == before


ALLOWED_CC = "net.ipv4.tcp_allowed_congestion_control"


def test_a_namespace_visible_but_host_wide_key_is_refused_in_a_namespace(
    netns: str, tmp_path: Path, cli: CliRun
) -> None:
    # The namespace shows the key, but tcp_set_allowed_congestion_control() edits the
    # kernel's one list: a write here would change the host. The profile asks for the
    # current value, so even a wrong write could not change anything.
    before = live(ALLOWED_CC)
    profile = str(write_profile(tmp_path, "allowed", {ALLOWED_CC: {"value": before}}))
    code, out, err = cli("apply", profile, *where(tmp_path), "--apply", "--allow-unlisted")
    assert code == ExitStatus.BAD_INPUT, out
    assert "host-wide although every network namespace shows it" in err
    assert "tcp_set_allowed_congestion_control()" in err and "nothing was changed" in err
    assert live(ALLOWED_CC) == before
    state = tmp_path / "state"
    assert not state.exists() or {entry.name for entry in state.iterdir()} <= {"lock"}  # no record
