"""Issue 11, files: links, FIFOs and foreign owners planted where root writes (for real)."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcptune.apply.atomicfile import TEMP_INFIX, atomic_write
from tcptune.cli import cli
from tcptune.exitcodes import ExitStatus
from tcptune.inspect.procfs import ProcFS
from tests.apply_support import write_profile
from tests.conftest import FIXTURES
from tests.lab import fresh_netns, require_netns_capability, skip_or_fail

FIN = "net.ipv4.tcp_fin_timeout"
CONTAINER = str(FIXTURES / "container-ns")
VICTIM_TEXT = "root:x:0:0:precious\n"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def live(name: str) -> str:
    return ProcFS().sysctl_path(name).read_text().strip()


@pytest.fixture
def netns() -> Iterator[str]:
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    with fresh_netns() as inside:
        yield inside


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file root must never write: stands for /etc/shadow."""
    path = tmp_path / "victim"
    path.write_text(VICTIM_TEXT)
    path.chmod(0o600)
    return path


def untouched(victim: Path) -> bool:
    return victim.read_text() == VICTIM_TEXT and stat.S_IMODE(victim.stat().st_mode) == 0o600


def apply_args(tmp_path: Path, state: Path, *extra: str) -> list[str]:
    profile = write_profile(tmp_path / "profiles", "web", {FIN: {"value": 17}})
    root = tmp_path / "root"
    (root / "etc/sysctl.d").mkdir(parents=True, exist_ok=True)
    return ["apply", str(profile), "--apply", "--state-dir", str(state), "--boot-root", str(root)]


def sprayed_links(directory: Path, name: str, victim: Path) -> None:
    """Plant the old predictable temporary names (.NAME.tmp-PID) for every likely PID."""
    for pid in [*range(1, 400), os.getpid(), *range(os.getpid(), os.getpid() + 200)]:
        link = directory / f".{name}.tmp-{pid}"
        if not link.exists():
            link.symlink_to(victim)


def test_output_never_follows_a_planted_temporary_name(tmp_path: Path, victim: Path) -> None:
    collector = tmp_path / "collector"
    collector.mkdir()
    sprayed_links(collector, "tcptune.prom", victim)
    code, _out, err = run(
        "--proc-root", CONTAINER, "audit", "--format", "prometheus",
        "--output", str(collector / "tcptune.prom"),
    )  # fmt: skip
    assert code in (ExitStatus.OK, ExitStatus.WARNING, ExitStatus.CRITICAL), err
    assert untouched(victim)
    assert "tcptune_audit_info" in (collector / "tcptune.prom").read_text()


def test_output_replaces_a_symlink_itself_never_its_target(tmp_path: Path, victim: Path) -> None:
    link = tmp_path / "tcptune.prom"
    link.symlink_to(victim)
    code, _out, err = run("--proc-root", CONTAINER, "audit", "--output", str(link))
    assert code == ExitStatus.WARNING, err
    assert untouched(victim)
    assert not link.is_symlink() and stat.S_IMODE(link.stat().st_mode) == 0o644
    assert "tcptune" in link.read_text()


def test_atomic_write_cleans_stale_temporaries_but_not_fresh_or_foreign_ones(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out.prom"
    stale, fresh = (tmp_path / f".out.prom{TEMP_INFIX}{n}" for n in ("dead", "live"))
    for path in (stale, fresh):
        path.write_text("half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    atomic_write(target, "new\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh.name, "out.prom"]
    atomic_write(target, "newer\n", stale_after=0)  # under a lock: every leftover is stale
    assert [p.name for p in tmp_path.iterdir()] == ["out.prom"]


@pytest.mark.kernel
@pytest.mark.parametrize("file", ["state.json", "history.jsonl", "lock"])
def test_state_files_planted_as_symlinks_are_refused(
    netns: str, tmp_path: Path, victim: Path, file: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / file).symlink_to(victim)
    sprayed_links(state, "state.json", victim)
    before = live(FIN)
    code, out, err = run(*apply_args(tmp_path, state))
    assert code == ExitStatus.NO_PERMISSION, err
    assert out == "" and err.count("\n") == 1
    assert f"{state / file} is a symbolic link" in err
    assert untouched(victim) and live(FIN) == before


@pytest.mark.kernel
def test_a_killed_writer_s_temporary_state_file_is_cleaned_by_the_next_apply(
    netns: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    leftover = state / f".state.json{TEMP_INFIX}0123456789abcdef"
    leftover.write_text('{"half": ')
    code, _out, err = run(*apply_args(tmp_path, state))
    assert code == ExitStatus.OK, err
    assert not leftover.exists()
    assert sorted(p.name for p in state.iterdir()) == ["history.jsonl", "lock", "state.json"]


@pytest.mark.kernel
@pytest.mark.parametrize("problem", ["foreign-owner", "group-writable", "world-writable"])
def test_a_state_directory_root_does_not_control_is_refused(
    netns: str, tmp_path: Path, problem: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    if problem == "foreign-owner":
        os.chown(state, 65534, 65534)
    else:
        state.chmod(0o775 if problem == "group-writable" else 0o1777)
    before = live(FIN)
    code, out, err = run(*apply_args(tmp_path, state))
    assert code == ExitStatus.NO_PERMISSION, err
    assert out == "" and err.count("\n") == 1
    expected = "is owned by uid 65534" if problem == "foreign-owner" else "is writable by group"
    assert f"state directory {state} {expected}" in err
    assert live(FIN) == before and os.listdir(state) == []


@pytest.mark.kernel
def test_a_state_file_owned_by_another_user_is_refused(netns: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    forged = {"schema": 1, "next_id": 1, "undo_stack": []}
    (state / "state.json").write_text(json.dumps(forged))
    os.chown(state / "state.json", 65534, 65534)
    code, _out, err = run("rollback", "--state-dir", str(state))
    assert code == ExitStatus.NO_PERMISSION, err
    assert "state.json is owned by uid 65534, not root: refusing to trust it" in err


@pytest.mark.kernel
@pytest.mark.parametrize("file", ["state.json", "history.jsonl", "lock"])
def test_a_fifo_in_the_state_directory_never_hangs(netns: str, tmp_path: Path, file: str) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.mkfifo(state / file)
    before = live(FIN)
    code, _out, err = run(*apply_args(tmp_path, state))  # a hang would time the suite out
    assert err.count("\n") == 1 and "is a FIFO, not a regular file" in err
    if file == "history.jsonl":  # the apply stands; the missing history line is reported
        assert code == ExitStatus.UNRECORDED and err.startswith("tcptune: warning: the history")
        assert live(FIN) == "17"
    else:
        assert code in (ExitStatus.BAD_INPUT, ExitStatus.WRITE_FAILED), err
        assert live(FIN) == before


@pytest.mark.kernel
@pytest.mark.parametrize("kind", ["loop", "file"])
def test_a_bad_state_dir_is_one_clear_line(netns: str, tmp_path: Path, kind: str) -> None:
    state = tmp_path / "state"
    if kind == "loop":
        state.symlink_to(state)
    else:
        state.write_text("")
    code, _out, err = run(*apply_args(tmp_path, state))
    assert code == ExitStatus.USAGE, err
    if kind == "file":  # click's own check
        assert f"Invalid value for '--state-dir': Directory '{state}' is a file" in err
        return
    assert err.count("\n") == 1 and "a loop of symbolic links (ELOOP)" in err
    assert "EEXIST" not in err


@pytest.mark.parametrize("command", [["history"], ["rollback"], ["apply", "web", "--apply"]])
def test_an_empty_state_dir_is_a_usage_error_not_the_current_directory(command: list[str]) -> None:
    code, _out, err = run(*command, "--state-dir", "")
    assert code == ExitStatus.USAGE
    assert "Invalid value for '--state-dir': needs a directory, got an empty string" in err


@pytest.mark.kernel
def test_a_record_of_a_namespace_that_is_gone_can_be_forgotten_and_it_is_logged(
    tmp_path: Path,
) -> None:
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    state = tmp_path / "state"
    with fresh_netns():  # a container that will exit
        code, _out, err = run(*apply_args(tmp_path, state))
        assert code == ExitStatus.OK, err
    with fresh_netns():  # another namespace: the first one is gone
        code, _out, err = run("rollback", "--state-dir", str(state))
        assert code == ExitStatus.UNAVAILABLE
        assert "changed another network namespace" in err
        assert "`tcptune rollback --forget 1`" in err
        code, out, err = run("rollback", "--state-dir", str(state), "--forget", "1")
        assert (code, err) == (ExitStatus.OK, ""), err
        assert "dropped apply #1 of web from the undo stack; nothing was written" in out
        code, _out, err = run("rollback", "--state-dir", str(state), "--forget", "1")
        assert code == ExitStatus.UNAVAILABLE and "no apply #1 on the undo stack" in err
    assert json.loads((state / "state.json").read_text())["undo_stack"] == []
    lines = [json.loads(line) for line in (state / "history.jsonl").read_text().splitlines()]
    assert [(e["id"], e["action"], e["outcome"]) for e in lines] == [
        (1, "apply", "applied"),
        (2, "forget", "forgotten"),
    ]
    assert lines[1]["undoes"] == 1 and "without restoring anything" in lines[1]["message"]
    assert lines[0]["netns"] == lines[1]["netns"] and "not initial" in lines[0]["netns"]
    code, out, _err = run("history", "--state-dir", str(state))
    assert code == ExitStatus.OK and out.count("    in net:[") == 2
