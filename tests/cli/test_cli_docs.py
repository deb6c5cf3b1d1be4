"""README.md and --help agree: every option and environment variable of one is in the other."""

from __future__ import annotations

import re
from pathlib import Path

import click

from tcptune.cli import cli
from tcptune.output.manpage import OTHER_ENVIRONMENT

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
# Options README gives for other programs: ansible-playbook, pip, bench.py, systemctl,
# sysctl and scripts/install.sh.
OTHER_PROGRAMS = {
    "--check",
    "--find-links",
    "--index-url",
    "--no-deps",
    "--no-index",
    "--include",
    "--now",
    "--system",
    "--uninstall",
}
# Environment variables README gives for scripts/install.sh, not for tcptune.
INSTALL_SCRIPT = {"TCPTUNE_ROOT", "TCPTUNE_PYTHON", "TCPTUNE_VENV", "TCPTUNE_BIN_DIR"}
INSTALL_SCRIPT |= {"TCPTUNE_PIP_ARGS"}
OPTION = re.compile(r"(?<![\w.-])(--[a-z][a-z0-9-]*)(?![\w.])")
VARIABLE = re.compile(r"\b(TCPTUNE_[A-Z_]+|NO_COLOR)\b")


def commands(command: click.Command, ctx: click.Context) -> list[tuple[click.Command, str]]:
    """Return ``command`` and every command under it, with their --help texts."""
    found = [(command, command.get_help(ctx))]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            found += commands(sub, click.Context(sub, info_name=name, parent=ctx))
    return found


def everything() -> list[tuple[click.Command, str]]:
    return commands(cli, click.Context(cli, info_name="tcptune", **cli.context_settings))


def help_options() -> set[str]:
    """Return every long option any --help shows (both halves of --x/--no-x)."""
    shown: set[str] = set()
    for command, text in everything():
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                names = {name for name in (*param.opts, *param.secondary_opts)}
                assert all(name in text for name in names), (command.name, names)
                shown |= {name for name in names if name.startswith("--")}
    return shown | {"--help"}


def help_variables() -> set[str]:
    """Return every environment variable a --help text names."""
    return {name for _command, text in everything() for name in VARIABLE.findall(text)}


def test_every_option_in_help_is_in_the_readme_and_the_reverse() -> None:
    in_readme = set(OPTION.findall(README)) - OTHER_PROGRAMS
    assert sorted(help_options() - in_readme) == [], "options --help shows that README lacks"
    assert sorted(in_readme - help_options()) == [], "options README names that tcptune lacks"
    assert "`-V`" in README and "-n/--last" in README


def test_every_environment_variable_in_help_is_in_the_readme_and_the_reverse() -> None:
    in_readme = set(VARIABLE.findall(README)) - INSTALL_SCRIPT
    assert {"TCPTUNE_PROC_ROOT", "TCPTUNE_STATE_DIR", "NO_COLOR"} <= help_variables()
    assert sorted(help_variables() - in_readme) == []
    assert sorted(in_readme - help_variables()) == []


def test_every_variable_tcptune_reads_is_shown_by_help() -> None:
    # click options with envvar= must say so in --help (show_envvar), and the man page's
    # other variables (NO_COLOR) must be named in some --help text.
    for command, text in everything():
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str):
                assert envvar in text, (command.name, envvar)
    named = help_variables()
    assert [name for name, _ in OTHER_ENVIRONMENT if not name.startswith("_")] == ["NO_COLOR"]
    assert "NO_COLOR" in named


EXIT_PARAGRAPH = re.compile(r"Exit status(?:es)?:(.*?)(?:\n\s*\n|$)", re.S)
STATUS = re.compile(r"(?<![\w.-])(\d{1,3})(?![\w.%-])")


def test_every_command_help_has_examples() -> None:
    missing = [
        command.name
        for command, text in everything()
        if not command.hidden and "Examples:" not in text
    ]
    assert missing == []


def test_every_exit_status_a_help_text_names_is_an_exit_status() -> None:
    from tcptune.exitcodes import ExitStatus

    known = {int(status) for status in ExitStatus}
    named: dict[str, set[int]] = {}
    for command, text in everything():
        for paragraph in EXIT_PARAGRAPH.findall(text):
            named[command.name or "tcptune"] = {int(n) for n in STATUS.findall(paragraph)}
    assert named, "no help text names its exit statuses"
    unknown = {name: sorted(found - known) for name, found in named.items() if found - known}
    assert unknown == {}
