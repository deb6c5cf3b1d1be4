"""Make text from the system safe to print: the one escaping function every text output uses.

Process names, paths, sysctl values and profile text are chosen by whoever
controls them (any local user can name a process ``ESC[2J``). Printed raw on a
terminal, control characters move the cursor, clear the screen, set the title
(OSC ... BEL) or hide text; bidirectional overrides reorder it. Text output
shows every character that is not printable (``str.isprintable``: controls,
C1 controls such as CSI U+009B, format characters such as U+202E) as a Python-
style escape; JSON output stays exact, since its encoder escapes controls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
P = ParamSpec("P")


def escape(text: str) -> str:
    """Return ``text`` on one line with every unprintable character escaped (\\x1b, \\u202e)."""
    if text.isprintable():
        return text
    shown = []
    for character in text:
        if character.isprintable():
            shown.append(character)
        elif character in _NAMED:
            shown.append(_NAMED[character])
        elif ord(character) < 0x100:
            shown.append(f"\\x{ord(character):02x}")
        elif ord(character) < 0x10000:
            shown.append(f"\\u{ord(character):04x}")
        else:
            shown.append(f"\\U{ord(character):08x}")
    return "".join(shown)


def one_line(text: str, limit: int = 4000) -> str:
    """Return a message as one escaped line of at most ``limit`` characters (stderr errors)."""
    shown = escape(text)
    if len(shown) <= limit:
        return shown
    return f"{shown[: limit - 40]}... ({len(shown) - limit + 40} more characters)"


def terminal_text(text: str) -> str:
    """Return rendered lines with every unprintable character but the line breaks escaped."""
    if text.replace("\n", "").isprintable():
        return text
    return "\n".join(escape(line) for line in text.split("\n"))


def terminal_safe(render: Callable[P, str]) -> Callable[P, str]:
    """Decorate a text renderer so that what it returns is :func:`terminal_text`."""

    @functools.wraps(render)
    def safe(*args: P.args, **kwargs: P.kwargs) -> str:
        return terminal_text(render(*args, **kwargs))

    return safe
