"""tcptune(1): the shipped page is the click help of today, and man renders it cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import tcptune
from tcptune.cli import cli
from tcptune.output.manpage import escape, render_manpage

PAGE = Path(tcptune.__file__).parent / "man" / "tcptune.1"


def test_the_shipped_page_is_current() -> None:
    assert PAGE.read_text() == render_manpage(cli, tcptune.__version__), (
        "tcptune/man/tcptune.1 is stale: run python3 scripts/make-manpage.py"
    )


def test_every_command_and_global_option_is_in_the_page() -> None:
    page = PAGE.read_text()
    for name in cli.list_commands(None):  # type: ignore[arg-type]
        assert f'.SS "tcptune {name} ' in page, name
    assert '.SS "tcptune profiles show ' in page
    for option in ("\\-\\-proc\\-root", "\\-\\-netns", "\\-\\-pid", "\\-\\-debug", "\\-V"):
        assert option in page
    for variable in ("TCPTUNE_PROC_ROOT", "TCPTUNE_STATE_DIR", "TCPTUNE_BOOT_ROOT", "NO_COLOR"):
        assert f"\\fB{escape(variable)}\\fR" in page, variable


def test_roff_escaping() -> None:
    assert escape(".TH not a macro") == "\\&.TH not a macro"
    assert escape("'quoted") == "\\&'quoted"
    assert escape("a\\b --x") == "a\\eb \\-\\-x"


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db is not installed")
def test_man_renders_the_page_without_warnings() -> None:
    done = subprocess.run(
        ["man", "--warnings", "-l", str(PAGE)],
        capture_output=True,
        text=True,
        env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"},
        check=False,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert "tcptune audit [OPTIONS]" in done.stdout and "EXIT STATUS" in done.stdout
