"""Resolve a profile's ``extends`` chain into one Profile, the child winning per key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcptune.exitcodes import BadInputError, UnavailableError
from tcptune.profiles.model import Profile, ProfileSource, Target

if TYPE_CHECKING:
    from tcptune.profiles.locate import ProfileLocator


def resolve(source: ProfileSource, locator: ProfileLocator) -> Profile:
    """Validate ``source`` and its ancestors and merge them, the child winning per key.

    A parent with the child's own name is searched for only in the locations
    after the child's (a user profile overriding a shipped one and extending
    it); any other parent is found as a name is. A file met twice is a cycle.
    """
    sources = [source]
    chain: list[Profile] = [locator.validate(source)]
    seen = {locator.identity(source)}
    while chain[-1].extends is not None:
        parent_name, child = chain[-1].extends, sources[-1]
        same_name = parent_name == child.name
        try:
            parent_source = locator.find(parent_name, after=child if same_name else None)
        except UnavailableError as exc:
            later = " in a location after this one" if same_name else ""
            raise BadInputError(
                f"{child.path}: extends: parent profile {parent_name!r} not found{later}"
            ) from exc
        parent_key = locator.identity(parent_source)
        if parent_key in seen:
            cycle = " -> ".join([*(p.name for p in chain), parent_name])
            raise BadInputError(f"{source.path}: extends: inheritance cycle {cycle}")
        seen.add(parent_key)
        sources.append(parent_source)
        chain.append(locator.validate(parent_source))
    targets: dict[str, Target] = {}
    for profile in reversed(chain):
        targets.update(profile.targets)
    head = chain[0]
    return Profile(
        name=head.name,
        summary=head.summary,
        description=head.description,
        extends=head.extends,
        references=head.references,
        targets=targets,
        path=head.path,
        chain=tuple(p.name for p in chain),
    )
