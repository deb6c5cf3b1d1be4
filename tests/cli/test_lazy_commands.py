"""The group loads a command's module only when it runs; its table says what the commands say."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import click

from tcptune.cli import cli
from tcptune.cli.group import COMMANDS

# Run tcptune's console entry and print, at exit, every module the run imported.
PROBE = (
    "import atexit, sys\n"
    "names = lambda: ' '.join(sorted(sys.modules))\n"
    "atexit.register(lambda: sys.stderr.write('MODULES ' + names() + '\\n'))\n"
    "from tcptune.entry import run\n"
    "run()\n"
)
REPO = Path(__file__).resolve().parents[2]
COMMAND_MODULES = {target.partition(":")[0] for target, _help in COMMANDS.values()}


def loaded_modules(*args: str) -> set[str]:
    """Return the modules `tcptune ARGS` imports, run in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("MODULES ")]
    return set(line.split()[1:])


def context(group: click.Group) -> click.Context:
    """Return a top-level context for ``group`` with its own settings (as ``main`` makes it)."""
    return click.Context(group, info_name="tcptune", **group.context_settings)


def eager_group() -> click.Group:
    """Return a plain click group holding every command, loaded up front (the old way)."""
    commands = {}
    for name, (target, _help) in COMMANDS.items():
        module, _, attribute = target.partition(":")
        commands[name] = getattr(import_module(module), attribute)
    return click.Group(
        "tcptune",
        commands=commands,
        params=cli.params,
        help=cli.help,
        context_settings=cli.context_settings,
    )


def test_the_table_names_each_command_and_its_own_short_help() -> None:
    for name, (target, short_help) in COMMANDS.items():
        module, _, attribute = target.partition(":")
        command = getattr(import_module(module), attribute)
        assert isinstance(command, click.Command) and command.name == name, target
        assert command.get_short_help_str(limit=1000) == short_help, name


def test_group_help_lists_every_command_as_an_eager_group_would() -> None:
    lazy = cli.get_help(context(cli))
    eager = eager_group()
    assert lazy == eager.get_help(context(eager))
    assert all(f"\n  {name}  " in lazy for name in COMMANDS)


def test_command_name_completion_matches_an_eager_group() -> None:
    eager = eager_group()
    for incomplete in ("", "a", "pro", "--", "nosuch"):
        lazy_items = cli.shell_complete(context(cli), incomplete)
        eager_items = eager.shell_complete(context(eager), incomplete)
        assert [(item.value, item.help) for item in lazy_items] == [
            (item.value, item.help) for item in eager_items
        ], incomplete


def test_group_help_imports_no_command_module() -> None:
    loaded = loaded_modules("--help")
    assert not loaded & COMMAND_MODULES, loaded & COMMAND_MODULES


def test_a_command_imports_its_own_module_only() -> None:
    loaded = loaded_modules("explain", "close-wait")
    assert "tcptune.cli.reference" in loaded
    assert not loaded & (COMMAND_MODULES - {"tcptune.cli.reference"})
