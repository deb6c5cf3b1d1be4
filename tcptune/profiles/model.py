"""The profile records: a target, a resolved profile, a found file, a broken one.

Pure frozen records, so that the layers that only read a profile (plan,
verify, advise, output) import them without the TOML loader.
"""

from __future__ import annotations

from collections.abc import Mapping

from tcptune.model.record import record
from tcptune.model.sysctls import KNOWN_SYSCTLS, SysctlSpec, Unit
from tcptune.model.values import SysctlValue, format_value, meets, spec_for, unit_of


@record
class Target:
    """What a profile wants for one sysctl: an exact value or a bound, and why."""

    name: str
    value: SysctlValue | None
    minimum: int | None
    maximum: int | None
    why: str
    risk: str
    optional: bool
    references: tuple[str, ...]
    defined_in: str  # the profile that set it (inheritance)

    @property
    def unit(self) -> Unit:
        """Return the unit the value is read and compared in (model/values.py)."""
        return unit_of(self.name, self.value)

    def satisfied_by(self, current: SysctlValue | None) -> bool:
        """Return whether ``current`` meets this target (the one rule: values.meets)."""
        return meets(self.unit, current, self.value, self.minimum, self.maximum)

    def desired(self, current: SysctlValue | None) -> SysctlValue:
        """Return the value to write: the exact value, or the bound ``current`` misses."""
        if self.value is not None:
            return self.value
        if isinstance(current, int) and self.satisfied_by(current):
            return current
        if self.minimum is not None and (not isinstance(current, int) or current < self.minimum):
            return self.minimum
        assert self.maximum is not None
        return self.maximum

    def describe(self) -> str:
        """Return the target as text: '600', '32768 60999', '>= 4096', '<= 60' or '1024..65535'."""
        if self.value is not None:
            return format_value(self.value) if self.value != "" else '""'
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum}..{self.maximum}"
        return f">= {self.minimum}" if self.minimum is not None else f"<= {self.maximum}"


@record
class Profile:
    """A validated profile with inheritance resolved."""

    name: str
    summary: str
    description: str
    extends: str | None
    references: tuple[str, ...]
    targets: Mapping[str, Target]
    path: str
    chain: tuple[str, ...]  # this profile, then its ancestors

    def specs_outside_catalogue(self) -> tuple[SysctlSpec, ...]:
        """Return how to read the keys this profile sets that the catalogue does not know."""
        return tuple(
            spec_for(name, target.value)
            for name, target in self.targets.items()
            if name not in KNOWN_SYSCTLS
        )


@record
class ProfileSource:
    """A profile file found by the locator, not yet validated."""

    name: str
    path: str
    text: str
    position: int | None = None  # index in the locator's search order; None: given as a path


@record
class BrokenProfile:
    """A findable profile that cannot be used: unreadable, invalid, or a bad ancestor."""

    name: str
    path: str
    reason: str  # the error, naming the file and key
