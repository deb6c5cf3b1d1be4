"""The tcptune(1) man page, rendered from the click command tree so it cannot drift from --help.

scripts/make-manpage.py writes it to tcptune/man/tcptune.1, which ships in the
wheel and which scripts/install.sh installs; tests/output/test_manpage.py checks
that the shipped page is what this module renders today. The output is
deterministic (no date), so a rebuild changes the file only when the help does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import click

from tcptune.exitcodes import ExitStatus

# Environment variables read outside click's options (click's own are listed from the params).
OTHER_ENVIRONMENT = (
    ("NO_COLOR", "watch: mark rising values with \u25b2 instead of colour (https://no-color.org)."),
    (
        "_TCPTUNE_COMPLETE",
        "bash_source, zsh_source or fish_source: print the shell completion script "
        "(see COMPLETION).",
    ),
)
FILES = (
    ("/var/lib/tcptune", "undo records (state.json), history.jsonl and the lock (--state-dir)."),
    ("/etc/sysctl.d/90-tcptune.conf", "the drop-in apply --persist writes."),
    (
        "~/.config/tcptune/profiles, /etc/tcptune/profiles",
        "local profiles, searched before the shipped ones.",
    ),
)
COMPLETION = (
    "bash: _TCPTUNE_COMPLETE=bash_source tcptune > "
    "/usr/local/share/bash-completion/completions/tcptune",
    "zsh: _TCPTUNE_COMPLETE=zsh_source tcptune > /usr/local/share/zsh/site-functions/_tcptune",
    "fish: _TCPTUNE_COMPLETE=fish_source tcptune > "
    "/usr/local/share/fish/vendor_completions.d/tcptune.fish",
)
SEE_ALSO = r"\fBtcp\fR(7), \fBsysctl\fR(8), \fBsysctl.d\fR(5), \fBss\fR(8), \fBip\-netns\fR(8)"


def escape(text: str) -> str:
    """Return ``text`` safe for roff: backslashes, hyphens, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def _paragraphs(help_text: str) -> Iterator[str]:
    """Yield roff for click help text: paragraphs, and ``\\b`` blocks kept as written."""
    for block in click.unstyle(help_text).strip().split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].strip() == "\b":
            yield ".PP\n.nf\n" + "\n".join(escape(line) for line in lines[1:]) + "\n.fi"
        else:
            yield ".PP\n" + escape(" ".join(line.strip() for line in lines))


def _options(ctx: click.Context, command: click.Command) -> Iterator[str]:
    """Yield a tagged paragraph per option or argument help record."""
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, text = record
        yield f".TP\n\\fB{escape(names)}\\fR\n{escape(text)}"


def _commands(ctx: click.Context, group: click.Group, prefix: str) -> Iterator[str]:
    """Yield a subsection per command, depth first (``profiles`` then ``profiles show``)."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = click.Context(command, info_name=name, parent=ctx)
        usage = " ".join(command.collect_usage_pieces(sub))
        yield f'.SS "{escape(f"{prefix} {name} {usage}")}"'
        yield from _paragraphs(command.help or "")
        yield from _options(sub, command)
        if isinstance(command, click.Group):
            yield from _commands(sub, command, f"{prefix} {name}")


def _environment(ctx: click.Context, group: click.Group) -> Iterator[tuple[str, str]]:
    """Yield (variable, what it sets) for every option read from the environment."""
    seen: set[str] = set()

    def walk(context: click.Context, command: click.Command) -> Iterator[tuple[str, str]]:
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str) and envvar not in seen:
                seen.add(envvar)
                yield (
                    envvar,
                    f"the default of {param.opts[0]}: " + (getattr(param, "help", None) or ""),
                )
        if isinstance(command, click.Group):
            for name in command.list_commands(context):
                sub = command.get_command(context, name)
                if sub is not None:
                    yield from walk(click.Context(sub, info_name=name, parent=context), sub)

    yield from walk(ctx, group)
    yield from OTHER_ENVIRONMENT


def _tagged(rows: Sequence[tuple[str, str]]) -> Iterator[str]:
    for tag, text in rows:
        yield f".TP\n\\fB{escape(tag)}\\fR\n{escape(text)}"


def render_manpage(group: click.Group, version: str) -> str:
    """Return tcptune(1) in roff (man(7) macros) for ``group``, the tcptune command line."""
    ctx = click.Context(group, info_name="tcptune", **group.context_settings)
    summary = (group.help or "").strip().splitlines()[0].rstrip(".")
    statuses = ", ".join(f"{int(status)} {status.name.lower()}" for status in ExitStatus)
    parts = [
        f'.TH TCPTUNE 1 "" "tcptune {escape(version)}" "User Commands"',
        ".SH NAME",
        f"tcptune \\- {escape(summary[:1].lower() + summary[1:])}",
        ".SH SYNOPSIS",
        ".B tcptune\n[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGS\\fR]",
        ".SH DESCRIPTION",
        *_paragraphs(group.help or ""),
        ".SH GLOBAL OPTIONS",
        *_options(ctx, group),
        ".SH COMMANDS",
        *_commands(ctx, group, "tcptune"),
        ".SH ENVIRONMENT",
        *_tagged(list(_environment(ctx, group))),
        ".SH EXIT STATUS",
        ".PP\n" + escape(statuses + "; each command's help says which it uses."),
        ".SH FILES",
        *_tagged(FILES),
        ".SH COMPLETION",
        ".PP\nscripts/install.sh installs these; by hand:\n.nf\n"
        + "\n".join(escape(line) for line in COMPLETION)
        + "\n.fi",
        ".SH SEE ALSO",
        SEE_ALSO,
    ]
    return "\n".join(parts) + "\n"
