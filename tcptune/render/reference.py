"""Profiles and explain topics as text and JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcptune.profiles import Profile, Target


from tcptune.render.common import WIDTH, table

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


def profiles_json(profiles: Sequence[Profile]) -> str:
    """Return the list of profiles as JSON."""
    import json

    return json.dumps(
        [
            {"name": p.name, "summary": p.summary, "path": p.path, "extends": p.extends}
            for p in profiles
        ],
        indent=2,
    )


def profiles_text(profiles: Sequence[Profile]) -> str:
    """Return one line per profile: name and summary."""
    if not profiles:
        return "no profiles found\n"
    rows = [(p.name, p.summary) for p in profiles]
    return table(rows, ("profile", "summary")) + "\n"


def profile_text(profile: Profile) -> str:
    """Return a resolved profile: description, then each target with why and risk."""
    import textwrap

    chain = " -> ".join(profile.chain)
    lines = [
        f"{profile.name}: {profile.summary}",
        f"file: {profile.path}",
        f"inherits: {chain}",
        "",
    ]
    lines += textwrap.wrap(" ".join(profile.description.split()), WIDTH)
    for name, target in profile.targets.items():
        origin = "" if target.defined_in == profile.name else f"  (from {target.defined_in})"
        optional = "  [optional]" if target.optional else ""
        lines += ["", f"{name} = {target.describe()}{optional}{origin}"]
        lines += textwrap.wrap(
            target.why, WIDTH, initial_indent="  why:  ", subsequent_indent="        "
        )
        lines += textwrap.wrap(
            target.risk, WIDTH, initial_indent="  risk: ", subsequent_indent="        "
        )
        if target.references:
            lines += textwrap.wrap(
                "; ".join(target.references),
                WIDTH,
                initial_indent="  see:  ",
                subsequent_indent="        ",
            )
    if profile.references:
        lines += ["", *textwrap.wrap("sources: " + "; ".join(profile.references), WIDTH)]
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
