"""Profiles and explain topics as text and JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcptune.profiles.model import BrokenProfile, Profile, Target
    from tcptune.reference.show import ShowResult


from tcptune.output.common import WIDTH, table
from tcptune.output.escape import terminal_safe

# --------------------------------------------------------------------------- profiles


def _target_dict(target: Target) -> dict[str, Any]:
    value = list(target.value) if isinstance(target.value, tuple) else target.value
    return {
        "value": value,
        "min": target.minimum,
        "max": target.maximum,
        "target": target.describe(),
        "why": target.why,
        "risk": target.risk,
        "optional": target.optional,
        "references": list(target.references),
        "defined_in": target.defined_in,
    }


def profile_dict(profile: Profile) -> dict[str, Any]:
    """Return a resolved profile as JSON-ready data."""
    return {
        "name": profile.name,
        "summary": profile.summary,
        "description": profile.description,
        "extends": profile.extends,
        "chain": list(profile.chain),
        "path": profile.path,
        "references": list(profile.references),
        "sysctl": {name: _target_dict(t) for name, t in profile.targets.items()},
    }


def profile_json(profile: Profile) -> str:
    """Return one resolved profile as JSON."""
    import json

    return json.dumps(profile_dict(profile), indent=2)


def profiles_json(entries: Sequence[Profile | BrokenProfile]) -> str:
    """Return the list of profiles as JSON; ``error`` says why one cannot be used (else null)."""
    import json

    from tcptune.profiles.model import BrokenProfile

    return json.dumps(
        [
            {"name": p.name, "summary": None, "path": p.path, "extends": None, "error": p.reason}
            if isinstance(p, BrokenProfile)
            else {
                "name": p.name,
                "summary": p.summary,
                "path": p.path,
                "extends": p.extends,
                "error": None,
            }
            for p in entries
        ],
        indent=2,
    )


PROFILE_NAME_COLUMN = 24  # at most; a longer name is wrapped within it


def _wrap(text: str, width: int, first: str = "", rest: str = "") -> list[str]:
    import textwrap

    return textwrap.wrap(
        text, width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False
    )


@terminal_safe
def profiles_text(entries: Sequence[Profile | BrokenProfile]) -> str:
    """Return one row per profile, name and summary, in 80 columns; INVALID ones say why."""
    from tcptune.profiles.model import BrokenProfile

    if not entries:
        return "no profiles found\n"
    name_width = min(max(len("profile"), *(len(p.name) for p in entries)), PROFILE_NAME_COLUMN)
    summary_width = WIDTH - name_width - 2  # the column gap
    rows = []
    for entry in entries:
        if isinstance(entry, BrokenProfile):
            summary = "INVALID: " + entry.reason.removeprefix(f"{entry.path}: ")
        else:
            summary = entry.summary
        name = "\n".join(_wrap(entry.name, name_width))
        rows.append((name, "\n".join(_wrap(summary, summary_width) or [""])))
    return table(rows, ("profile", "summary")) + "\n"


@terminal_safe
def profile_text(profile: Profile) -> str:
    """Return a resolved profile: description, then each target with why and risk."""
    chain = " -> ".join(profile.chain)
    lines = [
        *_wrap(f"{profile.name}: {profile.summary}", WIDTH, rest="  "),
        *_wrap(f"file: {profile.path}", WIDTH, rest="  "),
        *_wrap(f"inherits: {chain}", WIDTH, rest="  "),
        "",
    ]
    lines += _wrap(" ".join(profile.description.split()), WIDTH)
    for name, target in profile.targets.items():
        origin = "" if target.defined_in == profile.name else f"  (from {target.defined_in})"
        optional = "  [optional]" if target.optional else ""
        lines += ["", *_wrap(f"{name} = {target.describe()}{optional}{origin}", WIDTH, rest="    ")]
        lines += _wrap(target.why, WIDTH, "  why:  ", "        ")
        lines += _wrap(target.risk, WIDTH, "  risk: ", "        ")
        if target.references:
            lines += _wrap("; ".join(target.references), WIDTH, "  see:  ", "        ")
    if profile.references:
        lines += ["", *_wrap("sources: " + "; ".join(profile.references), WIDTH)]
    return "\n".join(lines) + "\n"


def topics_text(rows: Sequence[tuple[str, str, str]]) -> str:
    """Return the explain topic list, grouped by kind: each name, its summary beneath."""
    lines: list[str] = []
    current = None
    for kind, name, summary in rows:
        if kind != current:
            lines += [*([""] if lines else []), f"{kind}s:"]
            current = kind
        lines += [f"  {name}", f"      {summary}"]
    return "\n".join(lines) + "\n"


def show_text(result: ShowResult) -> str:
    """Return what an ``explain --show`` experiment saw, headed by its topic."""
    import textwrap

    lines = textwrap.wrap(result.title, WIDTH, subsequent_indent="  ")
    lines += ["", "What the kernel did, in a throwaway network namespace:"]
    lines += [f"  {line}" for line in result.lines]
    return "\n".join(lines) + "\n"
