"""apply, verify, rollback and history through the command line, in throwaway namespaces."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcptune.cli import cli
from tcptune.exitcodes import ExitStatus
from tcptune.procfs import ProcFS
from tests.apply_support import write_profile
from tests.lab import fresh_netns, require_netns_capability, skip_or_fail
from tests.lab.privileges import UNPRIVILEGED, run_tcptune

pytestmark = pytest.mark.kernel

FIN = "net.ipv4.tcp_fin_timeout"
KEEPALIVE = "net.ipv4.tcp_keepalive_time"
TARGETS = {FIN: {"value": 15}, KEEPALIVE: {"value": 600}}


@pytest.fixture
def netns() -> Iterator[str]:
    """Run the test in a brand-new network namespace (kernel defaults), then leave it."""
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    with fresh_netns() as inside:
        yield inside


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, str]:
    """Return the profile, state directory and boot root of one test."""
    root = tmp_path / "root"
    (root / "etc/sysctl.d").mkdir(parents=True)
    (root / "usr/lib/sysctl.d").mkdir(parents=True)
    profile = write_profile(tmp_path / "profiles", "web", TARGETS)
    return {"profile": str(profile), "state": str(tmp_path / "state"), "root": str(root)}


def live(name: str) -> str:
    return ProcFS().sysctl_path(name).read_text()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_plan_apply_verify_history_rollback(netns: str, dirs: dict[str, str]) -> None:
    before = (live(FIN), live(KEEPALIVE))
    where = ["--state-dir", dirs["state"], "--boot-root", dirs["root"]]
    vendor = Path(dirs["root"], "usr/lib/sysctl.d/95-vendor.conf")
    vendor.write_text("net.ipv4.tcp_fin_timeout = 45\n")

    code, out, err = run("apply", dirs["profile"], *where, "--persist")
    assert (code, err) == (0, "")
    assert "Nothing was written (dry run). To apply:" in out
    assert f"tcptune apply {dirs['profile']} --apply --persist {' '.join(where)}" in out
    assert "95-vendor.conf:1 sets '45', which overrides '15' at boot" in " ".join(out.split())
    assert (live(FIN), live(KEEPALIVE)) == before

    code, out, err = run("apply", dirs["profile"], *where, "--persist", "--apply", "--json")
    assert (code, err) == (ExitStatus.OK, "")
    document = json.loads(out)
    assert (document["mode"], document["record"]) == ("applied", 1)
    assert [c["name"] for c in document["written"]] == [FIN, KEEPALIVE]
    assert document["persist"]["action"] == "create" and len(document["persist"]["warnings"]) == 1
    assert live(FIN) == "15\n"

    code, out, err = run("verify", dirs["profile"], "--boot-root", dirs["root"], "--json")
    assert (code, err) == (ExitStatus.OK, "")
    items = {item["name"]: item for item in json.loads(out)["items"]}
    assert items[FIN]["state"] == "ok"
    assert items[FIN]["boot"] == {
        "file": str(vendor),
        "line": 1,
        "value": "45",
        "meets_target": False,
    }

    code, out, _ = run("history", "--state-dir", dirs["state"], "--json")
    [entry] = json.loads(out)["entries"]
    assert (entry["action"], entry["outcome"], entry["profile"]) == ("apply", "applied", "web")
    assert entry["who"]["uid"] == os.getuid()

    code, out, err = run("rollback", "--state-dir", dirs["state"])
    assert (code, err) == (0, "")
    assert "undid apply #1 of web" in out
    assert (live(FIN), live(KEEPALIVE)) == before
    assert not Path(dirs["root"], "etc/sysctl.d/90-tcptune.conf").exists()

    code, out, err = run("verify", dirs["profile"], "--boot-root", dirs["root"])
    assert code == ExitStatus.DRIFT == 4
    assert "2 of 2 keys drifted" in out
    code, out, err = run("rollback", "--state-dir", dirs["state"])
    assert code == ExitStatus.UNAVAILABLE and out == ""
    assert err.startswith("tcptune: nothing to roll back")


BAD_PROFILES = {
    "syntax": 'schema = 1\nname = "bad"\n[sysctl\n',
    "type": "value = 'fifteen'",
    "range": "value = 0",
    "name": "net/../../etc",
}


@pytest.mark.parametrize("problem", list(BAD_PROFILES))
def test_a_bad_profile_exits_65_before_any_write(netns: str, tmp_path: Path, problem: str) -> None:
    before = live(FIN)
    path = tmp_path / "bad.toml"
    base = 'schema = 1\nname = "bad"\nsummary = "s"\ndescription = "d"\n'
    key, value = FIN, BAD_PROFILES[problem]
    if problem == "name":
        key, value = BAD_PROFILES["name"], "value = 15"
    text = (
        BAD_PROFILES["syntax"]
        if problem == "syntax"
        else f'{base}[sysctl."{key}"]\n{value}\nwhy = "w"\nrisk = "r"\n'
    )
    path.write_text(text)
    state = tmp_path / "state"
    code, out, err = run("apply", str(path), "--apply", "--state-dir", str(state))
    assert code == ExitStatus.BAD_INPUT == 65
    assert out == "" and err.startswith(f"tcptune: {path}") and err.count("\n") == 1
    assert live(FIN) == before and not state.exists()


def test_an_unknown_profile_or_a_held_lock(netns: str, dirs: dict[str, str]) -> None:
    code, _, err = run("apply", "no-such-profile-anywhere", "--state-dir", dirs["state"])
    assert code == ExitStatus.UNAVAILABLE and "no profile named" in err
    Path(dirs["state"]).mkdir()
    holder = os.open(Path(dirs["state"], "lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        args = ["apply", dirs["profile"], "--apply", "--state-dir", dirs["state"]]
        code, out, err = run(*args, "--lock-timeout", "0.1")
    finally:
        os.close(holder)
    assert code == ExitStatus.LOCKED == 75 and out == ""
    assert "another tcptune apply or rollback holds" in err


def test_a_non_root_user_gets_one_clear_line_and_exit_77(netns: str, dirs: dict[str, str]) -> None:
    if shutil.which("setpriv") is None:
        skip_or_fail("setpriv (util-linux) is not installed")
    before = live(FIN)
    args = ("apply", dirs["profile"], "--state-dir", dirs["state"])
    plan = run_tcptune(*args, prefix=UNPRIVILEGED)
    assert plan.returncode == 0, plan.stderr
    assert f"sudo tcptune apply {dirs['profile']} --apply --state-dir" in plan.stdout
    result = run_tcptune(*args, "--apply", prefix=UNPRIVILEGED)
    assert result.returncode == ExitStatus.NO_PERMISSION == 77
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert "needs root (or CAP_NET_ADMIN) and you are nobody (uid 65534)" in result.stderr
    assert f"Run: sudo tcptune apply {dirs['profile']} --apply" in result.stderr
    assert live(FIN) == before and not Path(dirs["state"]).exists()


def test_a_read_only_proc_sys_gets_a_clear_message(netns: str, dirs: dict[str, str]) -> None:
    if shutil.which("unshare") is None:
        skip_or_fail("unshare (util-linux) is not installed")
    before = live(FIN)
    # A private mount namespace, as container runtimes make: /proc/sys bound read-only
    # there and nowhere else.
    remount = 'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$@"'
    prefix = ("unshare", "--mount", "--propagation", "private", "sh", "-c", remount, "sh")
    args = ("apply", dirs["profile"], "--apply", "--state-dir", dirs["state"])
    result = run_tcptune(*args, prefix=prefix)
    assert result.returncode == ExitStatus.NO_PERMISSION, result.stderr
    assert "/proc/sys/net/ipv4 is mounted read-only" in result.stderr
    assert live(FIN) == before and not Path(dirs["state"]).exists()


def test_the_shipped_server_profile_plans_in_a_fresh_namespace(netns: str, tmp_path: Path) -> None:
    code, out, err = run("apply", "server-profile", "--json", "--state-dir", str(tmp_path))
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["mode"] == "dry-run" and document["profile"] == "server-profile"
    assert document["context"]["initial_netns"] is False
    assert "blocked" not in {item["action"] for item in document["items"]}
    assert not any(tmp_path.iterdir())
