"""apply, verify, rollback and history through the command line, in throwaway namespaces."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcptune.exitcodes import ExitStatus
from tcptune.inspect.procfs import ProcFS
from tests.apply_support import write_profile
from tests.conftest import invoke as run
from tests.lab import skip_or_fail
from tests.lab.privileges import UNPRIVILEGED, run_tcptune

pytestmark = pytest.mark.kernel

FIN = "net.ipv4.tcp_fin_timeout"
KEEPALIVE = "net.ipv4.tcp_keepalive_time"
TARGETS = {FIN: {"value": 15}, KEEPALIVE: {"value": 600}}


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
    flat = " ".join(out.split())
    assert f"note: This is not the host's initial network namespace ({netns})" in flat
    assert "in the namespace that system runs in; it does not follow this namespace." in flat
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

    # A dry run says what the rollback would restore, and writes and records nothing.
    state_files = sorted((p.name, p.read_bytes()) for p in Path(dirs["state"]).iterdir())
    code, out, err = run("rollback", "--state-dir", dirs["state"], "--dry-run")
    assert (code, err) == (0, "")
    assert "would undo apply #1 of web" in out
    assert f"would set tcp_fin_timeout: 15 -> {before[0].strip()}" in out
    assert "90-tcptune.conf: would be removed" in " ".join(out.split())
    assert out.endswith("Nothing was written (--dry-run).\n")
    code, out, err = run("rollback", "--state-dir", dirs["state"], "--dry-run", "--json")
    document = json.loads(out)
    assert (document["dry_run"], document["undid"], document["entry"]) == (True, 1, None)
    assert {c["name"]: c["after"] for c in document["restored"]}[FIN] == before[0].strip()
    assert live(FIN) == "15\n"
    assert sorted((p.name, p.read_bytes()) for p in Path(dirs["state"]).iterdir()) == state_files

    code, out, err = run("rollback", "--state-dir", dirs["state"])
    assert (code, err) == (0, "")
    assert "undid apply #1 of web" in out
    assert (live(FIN), live(KEEPALIVE)) == before
    assert not Path(dirs["root"], "etc/sysctl.d/90-tcptune.conf").exists()

    code, out, err = run("verify", dirs["profile"], "--boot-root", dirs["root"])
    assert code == ExitStatus.DRIFT == 4
    assert "2 of 2 keys drifted" in out
    for dry_run in ([], ["--dry-run"]):
        code, out, err = run("rollback", "--state-dir", dirs["state"], *dry_run)
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


# ------------------------------------------------------------------ --persist and --netns/--pid


@pytest.fixture(params=["pid", "netns"])
def entered(request: pytest.FixtureRequest, netns: str) -> Iterator[list[str]]:
    """Yield the global options that enter another namespace: --pid PID or --netns NAME."""
    if request.param == "pid":
        holder = subprocess.Popen(["sleep", "60"])  # lives in the test's throwaway namespace
        try:
            yield ["--pid", str(holder.pid)]
        finally:
            holder.kill()
            holder.wait()
        return
    if shutil.which("ip") is None:
        skip_or_fail("ip (iproute2) is not installed")
    name = f"tcptune-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield ["--netns", name]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.parametrize("execute", [["--apply"], []], ids=["apply", "plan"])
def test_persist_in_an_entered_namespace_is_a_usage_error(
    entered: list[str], dirs: dict[str, str], execute: list[str]
) -> None:
    before = live(FIN)
    where = ["--state-dir", dirs["state"], "--boot-root", dirs["root"]]
    result = run_tcptune(*entered, "apply", dirs["profile"], *execute, "--persist", *where)
    assert result.returncode == ExitStatus.USAGE == 64, result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("tcptune: --persist cannot be used with --netns/--pid (netns")
    assert "never to that namespace; nothing was written" in result.stderr
    assert not Path(dirs["state"]).exists()
    assert not Path(dirs["root"], "etc/sysctl.d/90-tcptune.conf").exists()
    assert live(FIN) == before
    plan = run_tcptune(*entered, "apply", dirs["profile"], *where)  # no --persist: as before
    assert plan.returncode == 0, plan.stderr


# ------------------------------------------------------------------ hand edits in the drop-in


def test_apply_output_names_hand_edits_it_drops(netns: str, dirs: dict[str, str]) -> None:
    where = ["--state-dir", dirs["state"], "--boot-root", dirs["root"]]
    code, _, err = run("apply", dirs["profile"], *where, "--persist", "--apply")
    assert (code, err) == (0, "")
    dropin = Path(dirs["root"], "etc/sysctl.d/90-tcptune.conf")
    edited = dropin.read_text() + "vm.swappiness = 1\n"
    dropin.write_text(edited)
    number = len(edited.splitlines())
    other = write_profile(Path(dirs["profile"]).parent, "tight", {FIN: {"value": 20}})

    code, out, err = run("apply", str(other), *where, "--persist", "--json")
    assert (code, err) == (0, "")
    persist = json.loads(out)["persist"]
    assert persist["dropped_lines"] == [{"line": number, "text": "vm.swappiness = 1"}]
    assert persist["dropped_lines_attributed"] is True

    code, out, err = run("apply", str(other), *where, "--persist", "--apply")
    assert (code, err) == (0, "")
    flat = " ".join(out.split())
    assert f"note: 1 line(s) in {dropin} were not written by tcptune and were dropped." in flat
    assert "`tcptune rollback` restores the file as it was, with them:" in flat
    assert f"line {number}: vm.swappiness = 1" in out
    assert "vm.swappiness" not in dropin.read_text()

    code, out, err = run("rollback", "--state-dir", dirs["state"])
    assert (code, err) == (0, "")
    assert dropin.read_text() == edited


# ------------------------------------------------------------------ the history never blocks


def test_a_torn_history_line_blocks_neither_apply_nor_rollback(
    netns: str, dirs: dict[str, str]
) -> None:
    before = live(FIN)
    state = ["--state-dir", dirs["state"]]
    assert run("apply", dirs["profile"], *state, "--apply")[0] == 0
    history = Path(dirs["state"], "history.jsonl")
    with history.open("a") as log:
        log.write('{"id": 2, "time": 17')  # a crash in the middle of an append

    other = write_profile(Path(dirs["profile"]).parent, "tight", {FIN: {"value": 20}})
    code, out, err = run("apply", str(other), *state, "--apply", "--json")
    assert (code, err) == (0, "") and json.loads(out)["record"] == 2
    assert run("rollback", *state)[:3:2] == (0, "")
    assert run("rollback", *state)[:3:2] == (0, "")
    assert live(FIN) == before

    code, out, err = run("history", *state)
    assert code == ExitStatus.BAD_INPUT == 65
    assert "#1 " in out and "#4 " in out  # every readable entry is listed
    assert "Unreadable history lines (skipped" in out
    assert err.startswith(f"tcptune: {history}: line 2: ") and err.count("\n") == 1
    code, out, err = run("history", *state, "--json")
    document = json.loads(out)
    assert code == 65 and [e["id"] for e in document["entries"]] == [1, 2, 3, 4]
    [problem] = document["problems"]
    assert problem.startswith("line 2: ")


# ------------------------------------------------------------------ corrupt state files


CHANGE = {"name": "net.ipv4.tcp_fin_timeout", "before": "60", "after": "15"}
WHO = {"uid": 0, "euid": 0, "user": "root"}
ESCAPING = {
    "schema": 1,
    "undo_stack": [
        {
            "id": 1,
            "time": 1.0,
            "profile": "x",
            "netns_inode": None,
            "who": WHO,
            "changes": [{**CHANGE, "name": "../../etc/passwd"}],
            "dropin": None,
            "complete": True,
        }
    ],
}
HISTORY_LINE = json.dumps(
    {"id": 1, "time": 1.0, "action": "apply", "outcome": "applied", "who": WHO, "changes": []}
)


def _state_dir(tmp_path: Path, file: str, content: bytes | None) -> Path:
    state = tmp_path / "state"
    state.mkdir(parents=True)
    if content is None:
        (state / file).mkdir()
    else:
        (state / file).write_bytes(content)
    return state


@pytest.mark.parametrize(
    ("command", "content", "reason"),
    [
        ("rollback", b"\xff\xfe", "state.json: corrupt state file: not UTF-8 text (byte 0)"),
        ("apply", None, "state.json: cannot read it: is a directory"),
        ("rollback", None, "state.json: cannot read it: is a directory"),
        (
            "rollback",
            json.dumps(ESCAPING).encode(),
            'undo_stack[0].changes[0].name: not a dotted sysctl name: "../../etc/passwd"',
        ),
    ],
    ids=["invalid-utf8", "apply-directory", "rollback-directory", "escaping-name"],
)
def test_a_corrupt_state_file_exits_65_and_nothing_is_written(
    netns: str,
    dirs: dict[str, str],
    tmp_path: Path,
    command: str,
    content: bytes | None,
    reason: str,
) -> None:
    before = live(FIN)
    state = _state_dir(tmp_path / "s", "state.json", content)
    args = ["apply", dirs["profile"], "--apply"] if command == "apply" else ["rollback"]
    code, out, err = run(*args, "--state-dir", str(state))
    assert code == ExitStatus.BAD_INPUT == 65, err
    assert out == "" and err.count("\n") == 1 and reason in err
    assert err.rstrip().endswith("nothing was changed") or "cannot read it" in err
    assert live(FIN) == before
    assert sorted(p.name for p in state.iterdir()) == ["lock", "state.json"]  # no history line


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\n", "line 2: not UTF-8 text (byte 0)"),
        (b'{"time":1e400}\n', "line 2: entry: 'id' is missing"),
        (HISTORY_LINE.replace("1.0", "1e400").encode(), "line 2: time: expected seconds since"),
        (HISTORY_LINE.replace("1.0", "NaN").encode(), "line 2: NaN is not a JSON number"),
        (HISTORY_LINE.replace("1.0", "1e15").encode(), "line 2: time: expected seconds since"),
        (None, "history.jsonl: cannot read it: is a directory"),
    ],
    ids=["invalid-utf8", "no-id", "infinite-time", "nan-time", "far-future", "directory"],
)
def test_a_bad_history_file_exits_65_naming_the_line(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    good = HISTORY_LINE.encode() + b"\n"
    state = _state_dir(tmp_path, "history.jsonl", None if content is None else good + content)
    code, out, err = run("history", "--state-dir", str(state))
    assert code == ExitStatus.BAD_INPUT == 65
    assert err.startswith("tcptune: ") and err.count("\n") == 1 and reason in err
    assert str(state / "history.jsonl") in err
    if content is not None:
        assert out.startswith("#1 ")  # the readable entry is still shown
