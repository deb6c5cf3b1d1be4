"""Issue 11, bad input: one clear line, never a hang, a traceback or unbounded memory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcptune.cli import cli
from tcptune.exitcodes import ExitStatus
from tests.apply_support import profile_text
from tests.conftest import FIXTURES
from tests.lab import SocketLab
from tests.lab.privileges import UNPRIVILEGED, run_tcptune

FIN = "net.ipv4.tcp_fin_timeout"
WORKTREE = Path(__file__).resolve().parents[2]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def tree(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    shutil.copytree(FIXTURES / "container-ns", root, symlinks=True)
    return root


def one_line(err: str) -> bool:
    return err.startswith("tcptune: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        (profile_text("p", {}).replace("schema = 1", "schema = true"), "schema: must be 1"),
        (profile_text("p", {}).replace("schema = 1", "schema = 1.0"), "schema: must be 1"),
    ],
    ids=["deep-nesting", "schema-true", "schema-float"],
)
def test_a_hostile_profile_is_one_line(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    code, _out, err = run("--proc-root", str(tree(tmp_path)), "audit", "--profile", str(path))
    assert code == ExitStatus.BAD_INPUT and one_line(err) and reason in err, err
    code, _out, err = run("profiles", "--profile-dir", str(tmp_path))
    assert code == ExitStatus.OK and reason in err  # the other profiles are still listed


def test_a_directory_given_as_a_profile_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "d.toml").mkdir()
    code, _out, err = run("apply", str(tmp_path / "d.toml"))
    assert code == ExitStatus.UNAVAILABLE and one_line(err)
    assert "is a directory, not a profile file" in err


def test_an_empty_profile_is_a_usage_error(tmp_path: Path) -> None:
    code, _out, err = run("--proc-root", str(tree(tmp_path)), "audit", "--profile", "")
    assert code == ExitStatus.USAGE and "needs a profile name or file" in err


def test_twenty_thousand_blocked_keys_make_a_short_line(tmp_path: Path) -> None:
    path = tmp_path / "many.toml"
    path.write_text(
        profile_text("many", {f"net.ipv4.nokey_{i}": {"value": 1} for i in range(20000)})
    )
    code, out, err = run("--proc-root", str(tree(tmp_path)), "apply", str(path))
    assert code == ExitStatus.BAD_INPUT and one_line(err)
    assert len(err) < 2000 and "and 19995 more key(s)" in err
    assert out.count("nokey_") == 20000  # the plan itself lists every one


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_an_endless_or_blocking_net_tcp_is_refused_not_read(tmp_path: Path, kind: str) -> None:
    root = tree(tmp_path)
    for name in ("tcp", "tcp6"):
        (root / "net" / name).unlink()
        if kind == "fifo":
            os.mkfifo(root / "net" / name)
        else:
            (root / "net" / name).symlink_to("/dev/zero")
    code, out, err = run(
        "--proc-root", str(root), "audit", "--source", "procfs", "--no-owners", "--json"
    )
    assert code == ExitStatus.INCOMPLETE, err
    expected = "a FIFO" if kind == "fifo" else "a character device"
    assert f"is {expected}, not a regular file" in out


def test_ports_above_65535_in_a_tree_are_named(tmp_path: Path) -> None:
    root = tree(tmp_path)
    lines = (root / "net/tcp").read_text().splitlines()
    row = "   9: 0100007F:FFFFFF 0100007F:1F90 08 00000000:00000000 00:00000000 00000000"
    (root / "net/tcp").write_text("\n".join([*lines, row + "     0        0 4242 1"]) + "\n")
    code, out, _err = run("--proc-root", str(root), "audit", "--source", "procfs", "--json")
    assert code == ExitStatus.INCOMPLETE
    assert "port 16777215 is above 65535" in out


def test_an_unreadable_home_profile_directory_is_skipped_with_a_note(tmp_path: Path) -> None:
    home = tmp_path / "home"
    profiles = home / ".config/tcptune/profiles"
    profiles.mkdir(parents=True)
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (scripts/install-deps.sh)")
    # As root every directory is readable: make the kernel say EACCES for it, for real.
    result = subprocess.run(
        ["strace", "-f", "-qq", "-o", "/dev/null", "-P", str(profiles),
         "-e", "inject=all:error=EACCES", sys.executable, "-B", "-m", "tcptune", "profiles"],
        capture_output=True, text=True, env={**os.environ, "HOME": str(home)}, cwd=WORKTREE,
        timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "server-profile" in result.stdout
    assert f"tcptune: note: skipped profile directory {profiles}: permission denied" in (
        result.stderr
    )


def test_a_huge_integer_in_a_profile_is_named_without_python_s_words(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text(
        profile_text("big", {FIN: {"value": 1}}).replace("= 1\n", "= 1" + "0" * 5000 + "\n")
    )
    code, _out, err = run("--proc-root", str(tree(tmp_path)), "audit", "--profile", str(path))
    assert code == ExitStatus.BAD_INPUT and one_line(err)
    assert "far more digits" in err and "set_int_max_str_digits" not in err


@pytest.mark.parametrize("fmt", ["text", "check"])
def test_a_tree_without_sys_net_is_incomplete_not_healthy(tmp_path: Path, fmt: str) -> None:
    root = tree(tmp_path)
    shutil.rmtree(root / "sys/net")
    code, out, _err = run("--proc-root", str(root), "audit", "--format", fmt, "--source", "procfs")
    assert code == ExitStatus.INCOMPLETE
    if fmt == "check":
        assert out.startswith("TCPTUNE UNKNOWN - inspection incomplete")


def test_garbage_process_files_in_a_tree_never_crash_the_audit(tmp_path: Path) -> None:
    root = tree(tmp_path)
    lines = (root / "net/tcp").read_text().splitlines()
    row = "   9: 0100007F:1F90 0100007F:A000 08 00000000:00000000 00:00000000 00000000"
    (root / "net/tcp").write_text("\n".join([*lines, row + "     0        0 4242 1"]) + "\n")
    for pid, status in (("77", "Name:\tx\nUid:\n"), ("78", "Uid:\t" + "9" * 40 + "\n")):
        fd = root / pid / "fd"
        fd.mkdir(parents=True)
        (fd / "3").symlink_to("socket:[4242]")
        (fd / "4").symlink_to("socket:[not-a-number]")
        (fd / "5").symlink_to("socket:[")
        (root / pid / "comm").write_text("\x1b]0;owned\x07\n")
        (root / pid / "status").write_text(status)
    code, out, err = run("--proc-root", str(root), "audit", "--source", "procfs")
    assert code in (ExitStatus.OK, ExitStatus.WARNING), err
    assert "pid 77 \\x1b]0;owned\\x07 (user ?)" in " ".join(out.split())
    assert "\x1b" not in out


def test_an_ignore_subject_that_matches_nothing_warns(tmp_path: Path) -> None:
    code, _out, err = run(
        "--proc-root", str(tree(tmp_path)), "audit", "--ignore", "keepalive:no\x1b[2Jsuch"
    )
    assert code in (ExitStatus.OK, ExitStatus.WARNING)
    assert "tcptune: --ignore keepalive:no\\x1b[2Jsuch: no finding has that ID and subject" in err
    assert "\x1b" not in err


@pytest.mark.kernel
def test_an_unprivileged_audit_says_owners_need_root(lab: SocketLab) -> None:
    lab.close_wait(2)
    lab.wait_for_states({"CLOSE_WAIT": 2, "FIN_WAIT2": 2})
    result = run_tcptune("audit", "--json", prefix=UNPRIVILEGED)
    evidence = [line for f in json.loads(result.stdout)["findings"] for line in f["evidence"]]
    assert any("needs root (or CAP_SYS_PTRACE)" in line for line in evidence), evidence


def test_negative_and_endless_counters_in_a_tree_are_named(tmp_path: Path) -> None:
    root = tree(tmp_path)
    sockstat = (root / "net/sockstat").read_text().replace("orphan 0", "orphan -5")
    (root / "net/sockstat").write_text(sockstat.replace("tw 4", "tw " + "9" * 5000))
    code, out, err = run("--proc-root", str(root), "audit", "--json", "--no-owners")
    assert code == ExitStatus.INCOMPLETE, err
    document = json.loads(out)
    problems = " ".join(p["message"] for p in document["problems"])
    assert "no 64-bit counter" in problems and "set_int_max_str_digits" not in problems
    sockstat = (root / "net/sockstat").read_text().replace("tw " + "9" * 5000, "tw 4")
    (root / "net/sockstat").write_text(sockstat)
    code, out, _err = run("--proc-root", str(root), "audit", "--json", "--no-owners")
    problems = " ".join(p["message"] for p in json.loads(out)["problems"])
    assert code == ExitStatus.INCOMPLETE and "orphan is -5: a count is never negative" in problems
