"""Repeat a command line from the parsed click parameters: "run this to apply", "to undo".

The words come from what click parsed (every option the user set, on the
command line or through its environment variable), never from a hand-kept
list, so a new option cannot be left out; whether to prefix sudo is decided
once, by :func:`as_root`.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Mapping

import click
from click.core import ParameterSource

_GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def _option_words(param: click.Option, value: object) -> list[str]:
    if param.is_flag and param.secondary_opts:  # --owners/--no-owners
        return [param.opts[0] if value else param.secondary_opts[0]]
    if param.is_flag:
        return [param.opts[0]] if value else []
    values = value if param.multiple and isinstance(value, tuple | list) else (value,)
    return [word for item in values for word in (param.opts[0], str(item))]


def parsed_words(
    ctx: click.Context, keep: Collection[str] | None = None, drop: Collection[str] = ()
) -> tuple[list[str], list[str]]:
    """Return the arguments, and the options the user set, of ``ctx`` in declaration order."""
    arguments: list[str] = []
    options: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if name is None or name in drop or (keep is not None and name not in keep):
            continue
        value = ctx.params.get(name)
        if isinstance(param, click.Argument):
            arguments.append(str(value))
        elif isinstance(param, click.Option) and ctx.get_parameter_source(name) in _GIVEN:
            options += _option_words(param, value)
    return arguments, options


def command_line(
    ctx: click.Context,
    *,
    command: str | None = None,
    keep: Collection[str] | None = None,
    drop: Collection[str] = (),
    add: Mapping[str, str] | None = None,
) -> str:
    """Return ``tcptune [global options] COMMAND ARGS [options]`` as this run parsed them.

    ``command`` names another command (rollback after an apply) that takes
    only the parameters named in ``keep``; ``drop`` leaves parameters out;
    ``add`` maps parameter names to flags set in the new line (``execute`` ->
    ``--apply``), shown right after the arguments.
    """
    added = dict(add or {})
    line = ["tcptune"]
    if ctx.parent is not None:
        line += parsed_words(ctx.parent, drop=("debug",))[1]
    arguments, options = parsed_words(ctx, keep, (*drop, *added))
    line += [command or ctx.info_name or "", *arguments, *added.values(), *options]
    return shlex.join(line)


def as_root(line: str, euid: int) -> str:
    """Return ``line`` as the user must run it: with sudo unless already root."""
    return line if euid == 0 else f"sudo {line}"
