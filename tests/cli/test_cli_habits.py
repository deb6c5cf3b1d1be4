"""CLI habits: global options anywhere, -V, --output -, tcptune help, shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tcptune import __version__
from tcptune.cli import cli as tcptune_cli
from tcptune.cli.habits import hoist_global_options
from tcptune.exitcodes import ExitStatus
from tests.conftest import FIXTURES, CliRun

REPO = Path(__file__).resolve().parents[2]
CONTAINER = str(FIXTURES / "container-ns")


def hoist(*args: str) -> list[str]:
    ctx = click.Context(tcptune_cli, info_name="tcptune")
    return hoist_global_options(tcptune_cli, ctx, list(args))


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        (["audit", "--netns", "blue"], ["--netns", "blue", "audit"]),
        (["audit", "--json", "--pid=7", "--debug"], ["--pid=7", "--debug", "audit", "--json"]),
        (["--debug", "audit", "--proc-root", "/p"], ["--debug", "--proc-root", "/p", "audit"]),
        (["--netns", "a", "audit", "--json"], ["--netns", "a", "audit", "--json"]),
        # an option's value that looks like a global option stays the option's value
        (["audit", "--ignore", "--debug"], ["audit", "--ignore", "--debug"]),
        (["audit", "--profile", "--netns", "x"], ["audit", "--profile", "--netns", "x"]),
        # a command's own option of a global option's name is the command's (a filter)
        (["sockets", "--pid", "7", "--netns", "a"], ["--netns", "a", "sockets", "--pid", "7"]),
        # after -- nothing is an option; an unknown command is left to click to refuse
        (["explain", "--", "--debug"], ["explain", "--", "--debug"]),
        (["nosuch", "--debug"], ["nosuch", "--debug"]),
        # a subcommand of a group: its own options are known too
        (
            ["profiles", "show", "--profile-dir", "--pid", "x", "--pid", "1"],
            ["--pid", "1", "profiles", "show", "--profile-dir", "--pid", "x"],
        ),
    ],
)
def test_global_options_are_moved_before_the_command(given: list[str], parsed: list[str]) -> None:
    assert hoist(*given) == parsed


def test_global_options_after_the_command_work(cli: CliRun) -> None:
    before = cli("--proc-root", CONTAINER, "audit", "--json")
    after = cli("audit", "--json", "--proc-root", CONTAINER)
    assert before[0] == after[0] == ExitStatus.WARNING
    strip = {"taken_at": None}
    assert {**json.loads(before[1]), **strip} == {**json.loads(after[1]), **strip}
    code, out, err = cli("audit", "--netns", "tcptune-no-such-namespace")
    assert code == ExitStatus.UNAVAILABLE and out == ""
    assert "no network namespace 'tcptune-no-such-namespace'" in err  # not "no such option"


def test_short_and_long_version(cli: CliRun) -> None:
    assert cli("-V") == cli("--version") == (0, f"tcptune, version {__version__}\n", "")


def test_help_command_is_the_commands_help(cli: CliRun) -> None:
    assert cli("help") == cli("--help")
    assert cli("help", "audit") == cli("audit", "--help")
    assert cli("help", "profiles", "show") == cli("profiles", "show", "--help")
    code, out, err = cli("help", "nosuch")
    assert code == ExitStatus.UNAVAILABLE and out == ""
    assert err == "tcptune: no command 'nosuch'; see `tcptune help`\n"


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run this checkout's tcptune from ``cwd`` (PYTHONPATH: the checkout, not main's install)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tcptune", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_output_dash_is_stdout(tmp_path: Path) -> None:
    done = run(
        "--proc-root", CONTAINER, "audit", "--format", "check", "--output", "-", cwd=tmp_path
    )
    assert done.returncode == ExitStatus.WARNING, done.stderr
    assert done.stdout.startswith("TCPTUNE WARNING - ")
    assert list(tmp_path.iterdir()) == []  # no file named "-"


def complete(shell: str, words: str, cwd: Path) -> list[str]:
    """Ask click's completion (as the installed scripts do) for the last word of ``words``."""
    parts = words.split(" ")
    env = {
        "_TCPTUNE_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
    }
    done = run(cwd=cwd, env=env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    if shell == "bash":  # "type,value" per line
        return [line.split(",", 1)[1] for line in done.stdout.splitlines()]
    raise AssertionError(shell)


def test_completion_names_profiles_topics_and_commands(tmp_path: Path) -> None:
    assert complete("bash", "tcptune apply serv", tmp_path) == ["server-profile"]
    assert "long-lived-nat" in complete("bash", "tcptune audit --profile l", tmp_path)
    assert complete("bash", "tcptune profiles show kernel-d", tmp_path) == ["kernel-default"]
    assert "close-wait" in complete("bash", "tcptune explain close", tmp_path)
    assert complete("bash", "tcptune help profiles s", tmp_path) == ["show"]
    assert complete("bash", "tcptune audit --netns x --profile out", tmp_path) == [
        "outbound-client"
    ]
    local = tmp_path / "profiles"
    local.mkdir()
    (local / "mine.toml").write_text("schema = 1\n")
    assert complete("bash", f"tcptune audit --profile-dir {local} --profile mi", tmp_path) == [
        "mine"
    ]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_generated(shell: str, tmp_path: Path) -> None:
    done = run(cwd=tmp_path, env={"_TCPTUNE_COMPLETE": f"{shell}_source"})
    assert done.returncode == 0 and done.stderr == ""
    assert "_TCPTUNE_COMPLETE" in done.stdout
