"""Command-line habits of the ecosystem: global options anywhere, and shell completion.

click parses a group's options before the command name only, so
`tcptune audit --netns blue` would be refused; :func:`hoist_global_options`
moves the global options a user gives after the command to before it, using
each command's own parameters so that an option's value is never mistaken for
an option, and a command's own option of the same name (`sockets --pid`, a
filter) stays the command's. The completion callbacks name shipped and local profiles and the
explain topics for bash, zsh and fish (click's ``_TCPTUNE_COMPLETE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # click.shell_completion is loaded only when a shell asks for completions
    from click.shell_completion import CompletionItem

GLOBAL_WITH_VALUE = frozenset({"--proc-root", "--netns", "--pid"})
GLOBAL_FLAGS = frozenset({"--debug"})


def _takes_value(command: click.Command, word: str) -> bool:
    """Return whether ``word`` is an option of ``command`` that consumes the next word."""
    for param in command.params:
        if isinstance(param, click.Option) and word in (*param.opts, *param.secondary_opts):
            return not (param.is_flag or param.count) and word not in param.secondary_opts
    return False


def _own_option(command: click.Command, word: str) -> bool:
    """Return whether ``command`` has an option named like ``word`` (``sockets --pid``)."""
    name = word.split("=", 1)[0]
    return any(
        isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts)
        for param in command.params
    )


def _global(word: str) -> int:
    """Return how many words a global option starting at ``word`` takes (0: not global)."""
    if word in GLOBAL_FLAGS:
        return 1
    if word in GLOBAL_WITH_VALUE:
        return 2
    if word.split("=", 1)[0] in GLOBAL_WITH_VALUE and "=" in word:
        return 1
    return 0


def hoist_global_options(group: click.Group, ctx: click.Context, args: Sequence[str]) -> list[str]:
    """Return ``args`` with the global options found after the command moved before it."""
    words = list(args)
    index = 0
    while index < len(words) and words[index].startswith("-") and words[index] != "--":
        index += 2 if words[index] in GLOBAL_WITH_VALUE else 1
    if index >= len(words):
        return words
    command: click.Command | None = group.get_command(ctx, words[index])
    if command is None:
        return words
    head, rest, hoisted = words[: index + 1], words[index + 1 :], []
    kept: list[str] = []
    position = 0
    while position < len(rest):
        word = rest[position]
        if word == "--":
            kept += rest[position:]
            break
        size = 0 if _own_option(command, word) else _global(word)
        if size:
            hoisted += rest[position : position + size]
            position += size
            continue
        kept.append(word)
        if _takes_value(command, word) and position + 1 < len(rest):
            kept.append(rest[position + 1])
            position += 2
            continue
        if isinstance(command, click.Group) and not word.startswith("-"):
            command = command.get_command(ctx, word) or command  # a subcommand: its options
        position += 1
    return [*head[:-1], *hoisted, head[-1], *kept]


def _profile_dirs(ctx: click.Context) -> tuple[object, ...]:
    """Return the --profile-dir values given so far on this command line (group and command)."""
    dirs: list[object] = []
    for context in (ctx.parent, ctx):
        if context is not None:
            dirs += context.params.get("profile_dirs", ()) or ()
    return tuple(dirs)


def complete_profile(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Return the names of the profiles tcptune would find, for shell completion."""
    from pathlib import Path

    from tcptune.cli.group import profile_locator

    try:
        dirs = tuple(Path(str(entry)) for entry in _profile_dirs(ctx))
        names = {source.name for source in profile_locator(dirs).available()}
    except Exception:  # completion must never print a traceback into the user's shell
        return []
    return sorted(name for name in names if name.startswith(incomplete))


def complete_topic(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Return the explain topics (with their one-line summaries), for shell completion."""
    from click.shell_completion import CompletionItem

    from tcptune.advise import finding_topics
    from tcptune.reference import explain

    try:
        topics = explain.with_findings(explain.load_topics(), finding_topics())
        listed = explain.topic_list(topics)
    except Exception:  # completion must never print a traceback into the user's shell
        return []
    return [
        CompletionItem(name, help=summary)
        for _kind, name, summary in listed
        if name.startswith(incomplete)
    ]


def help_text(ctx: click.Context, words: Sequence[str]) -> str:
    """Return the --help text of the command named by ``words`` under ctx's parent group."""
    from tcptune.exitcodes import UnavailableError

    current = ctx.find_root()
    command = current.command
    for word in words:
        sub = command.get_command(current, word) if isinstance(command, click.Group) else None
        if sub is None:
            raise UnavailableError(f"no command {' '.join(words)!r}; see `tcptune help`")
        current = click.Context(sub, info_name=word, parent=current)
        command = sub
    return command.get_help(current)


def complete_command(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Return the command names under the words already given to `tcptune help`."""
    command = ctx.find_root().command
    for word in ctx.params.get("command", ()) or ():
        if not isinstance(command, click.Group):
            return []
        command = command.get_command(ctx, word) or command
    if not isinstance(command, click.Group):
        return []
    return [name for name in command.list_commands(ctx) if name.startswith(incomplete)]
