"""Compare live values with a profile, and show which boot-time file sets each key."""

from __future__ import annotations

from collections.abc import Mapping

from tcptune.apply.plan import Action, Plan, PlanItem, read_plan
from tcptune.apply.sysctld import (
    BootSetting,
    SearchPath,
    boot_settings,
    name_to_path,
    winning_settings,
)
from tcptune.exitcodes import ExitStatus
from tcptune.inspect.procfs import ProcFS
from tcptune.model.record import record
from tcptune.model.values import text_meets
from tcptune.profiles.model import Profile, Target


@record
class VerifyReport:
    """The plan read as drift, plus the boot-time setting in effect for each key."""

    plan: Plan
    boot: Mapping[str, BootSetting]  # key -> the setting applied last at boot, if any
    boot_agrees: Mapping[str, bool]  # key -> whether that boot value meets the target
    problems: tuple[str, ...]  # configuration files that could not be read

    @property
    def drifted(self) -> tuple[PlanItem, ...]:
        """Return the keys whose live value misses the profile (or that are missing)."""
        return tuple(i for i in self.plan.items if i.action in (Action.CHANGE, Action.BLOCKED))

    @property
    def status(self) -> ExitStatus:
        """Return DRIFT when any key drifted, else OK."""
        return ExitStatus.DRIFT if self.drifted else ExitStatus.OK


def verify_profile(
    profile: Profile, procfs: ProcFS, search: SearchPath, netns_name: str | None = None
) -> VerifyReport:
    """Return how the live kernel and the boot-time configuration compare with ``profile``."""
    plan = read_plan(profile, procfs, netns_name, allow_unlisted=True)  # reads only
    settings, problems = boot_settings(search)
    winners = winning_settings(settings)
    boot = {
        name: winners[name_to_path(name)]
        for name in profile.targets
        if name_to_path(name) in winners
    }
    agrees = {name: boot_value_meets(profile.targets[name], s.value) for name, s in boot.items()}
    return VerifyReport(plan, boot, agrees, tuple(problems))


def boot_value_meets(target: Target, text: str) -> bool:
    """Return whether a boot-time file's text for a key meets ``target``."""
    return text_meets(target.unit, text, target.value, target.minimum, target.maximum)
