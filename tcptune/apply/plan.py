"""Compare a profile with the live kernel and say, key by key, what an apply would do.

Building a plan is a pure function of the profile and a settings Snapshot
(inspect.inspect_settings reads it); the applier carries out exactly the
plan's CHANGE items under its lock; verify reads the same plan as drift.
"""

from __future__ import annotations

import enum
from dataclasses import replace

from tcptune.exitcodes import BadInputError, ExitStatus, TcptuneError, UnavailableError
from tcptune.inspect.inspector import inspect_settings
from tcptune.inspect.procfs import ProcFS
from tcptune.model.record import record
from tcptune.model.snapshot import Context, ReadStatus, Snapshot
from tcptune.model.sysctls import GLOBAL_BEHIND_NAMESPACE, KNOWN_SYSCTLS, SysctlSpec
from tcptune.model.values import SysctlValue, format_value
from tcptune.profiles.model import Profile, Target

PORT_RANGE = "net.ipv4.ip_local_port_range"
UNPRIVILEGED_PORT_START = "net.ipv4.ip_unprivileged_port_start"


MAX_REASONS = 5  # blocked keys named in the one-line error; the plan lists every one


class Action(enum.Enum):
    """What an apply does with one key."""

    CHANGE = "change"  # the live value misses the target: write it
    KEEP = "keep"  # already right: nothing to write
    SKIP = "skip"  # cannot or need not be set here; the reason says why
    BLOCKED = "blocked"  # stops the whole apply before any write


@record
class PlanItem:
    """One profile target against the live kernel."""

    name: str
    action: Action
    target: str  # the target as text, e.g. '15' or '>= 4096'
    why: str
    risk: str
    current: SysctlValue | None = None
    current_text: str | None = None  # exactly as read: what a rollback writes back
    desired: SysctlValue | None = None  # the value to write (CHANGE) or kept (KEEP)
    reason: str | None = None  # why it is skipped or blocked
    blocked_status: ExitStatus | None = None
    spec: SysctlSpec | None = None  # None: not in tcptune's catalogue
    scope_note: str | None = None  # for a key outside the catalogue: where a write lands
    goal: Target | None = None  # the profile's target itself: typed, for JSON (op and value)

    @property
    def write_text(self) -> str:
        """Return the text to write for the desired value."""
        assert self.desired is not None, f"{self.name}: no value to write"
        return format_value(self.desired)


@record
class Plan:
    """Every target of a profile against this kernel, in profile order."""

    profile: str
    profile_path: str
    context: Context
    items: tuple[PlanItem, ...]

    def having(self, action: Action) -> tuple[PlanItem, ...]:
        """Return the items with ``action``."""
        return tuple(item for item in self.items if item.action is action)

    @property
    def changes(self) -> tuple[PlanItem, ...]:
        """Return the items an apply writes."""
        return self.having(Action.CHANGE)

    def error(self) -> TcptuneError | None:
        """Return the error that stops this plan before any write, or None."""
        blocked = self.having(Action.BLOCKED)
        if not blocked:
            return None
        shown = blocked[:MAX_REASONS]  # 20,000 unknown keys must not make a 900 KB line
        reasons = "; ".join(f"{item.name}: {item.reason}" for item in shown)
        if len(blocked) > len(shown):
            reasons += f"; and {len(blocked) - len(shown)} more key(s) (see the plan)"
        message = f"cannot apply {self.profile}: {reasons}; nothing was changed"
        if any(item.blocked_status is ExitStatus.BAD_INPUT for item in blocked):
            return BadInputError(message)
        return UnavailableError(message)


UNLISTED_NETNS = (
    "outside tcptune's catalogue, allowed by --allow-unlisted: a net.* key, so it changes "
    "this network namespace if the kernel keeps it per namespace, else the whole host"
)
UNLISTED_GLOBAL = (
    "outside tcptune's catalogue, allowed by --allow-unlisted: host-wide although every "
    "network namespace shows it, so the write changes the whole machine"
)
UNLISTED_HOST = (
    "outside tcptune's catalogue, allowed by --allow-unlisted: not a net.* key, so it is "
    "host-wide: the write changes the whole machine, every container included"
)


def _unlisted(base: PlanItem, allow_unlisted: bool, initial_netns: bool | None) -> PlanItem:
    """Return ``base`` blocked, or with its scope, for a key outside the catalogue."""
    if not allow_unlisted:
        return replace(
            base,
            reason="not in tcptune's catalogue (`tcptune explain` lists it), so its scope "
            "and range are unknown: tcptune does not write it; pass --allow-unlisted to "
            "write it anyway",
            blocked_status=ExitStatus.BAD_INPUT,
        )
    global_because = GLOBAL_BEHIND_NAMESPACE.get(base.name)
    if global_because is not None:
        if initial_netns is not True:
            return replace(
                base,
                reason="not in tcptune's catalogue, and host-wide although every network "
                f"namespace shows it: {global_because}; so it is refused inside a "
                "container's network namespace; apply it on the host",
                blocked_status=ExitStatus.BAD_INPUT,
            )
        return replace(base, scope_note=f"{UNLISTED_GLOBAL}: {global_because}")
    if base.name.startswith("net."):
        return replace(base, scope_note=UNLISTED_NETNS)
    if initial_netns is not True:
        return replace(
            base,
            reason="not in tcptune's catalogue and not a net.* key: host-wide, so it is "
            "refused inside a container's network namespace; apply it on the host",
            blocked_status=ExitStatus.BAD_INPUT,
        )
    return replace(base, scope_note=UNLISTED_HOST)


def _item(target: Target, snapshot: Snapshot, allow_unlisted: bool) -> PlanItem:
    base = PlanItem(
        target.name,
        Action.BLOCKED,
        target.describe(),
        target.why,
        target.risk,
        spec=KNOWN_SYSCTLS.get(target.name),
        goal=target,
    )
    if base.spec is None:
        base = _unlisted(base, allow_unlisted, snapshot.context.initial_netns)
        if base.reason is not None:
            return base
    reading = snapshot.reading(target.name)
    if reading is None:
        return replace(
            base, reason="not read by this inspection", blocked_status=ExitStatus.UNAVAILABLE
        )
    if reading.status is ReadStatus.NOT_IN_NAMESPACE:
        return replace(
            base,
            action=Action.SKIP,
            reason="host-wide key: only the initial network namespace has it, so it "
            "cannot be set from inside this container; apply it on the host",
        )
    if reading.status is ReadStatus.ABSENT:
        if target.optional:
            return replace(base, action=Action.SKIP, reason=f"{reading.reason} (optional)")
        return replace(base, reason=reading.reason, blocked_status=ExitStatus.UNAVAILABLE)
    if reading.status is not ReadStatus.OK:
        return replace(base, reason=reading.reason, blocked_status=ExitStatus.UNAVAILABLE)
    current = reading.value
    action = Action.KEEP if target.satisfied_by(current) else Action.CHANGE
    desired = target.desired(current)
    if action is Action.CHANGE and desired is not None and not writable_text(format_value(desired)):
        return replace(
            base,
            current=current,
            current_text=reading.raw,
            reason=f"the value {format_value(desired)!a} is not printable ASCII text, "
            "which is all /proc/sys takes: the kernel would reject it",
            blocked_status=ExitStatus.BAD_INPUT,
        )
    read_only = reading.read_only if action is Action.CHANGE else None
    if read_only is not None:
        return replace(
            base,
            current=current,
            current_text=reading.raw,
            reason=read_only,
            blocked_status=ExitStatus.UNAVAILABLE,
        )
    return replace(
        base,
        action=action,
        current=current,
        current_text=reading.raw,
        desired=desired,
    )


def writable_text(text: str) -> bool:
    """Return whether ``text`` can go to /proc/sys as one line: printable ASCII only.

    Sysctl handlers parse ASCII numbers and names (kernel/sysctl.c proc_get_long,
    net/ipv4/tcp_cong.c for names); a newline or control character would end or
    corrupt the value, and anything else cannot be encoded for them at all.
    """
    return text.isascii() and text.isprintable()


def _check_port_floor(items: list[PlanItem], snapshot: Snapshot) -> list[PlanItem]:
    """Block a port range whose low end would sit below ip_unprivileged_port_start.

    net/ipv4/sysctl_net_ipv4.c: ipv4_local_port_range() rejects such a range and
    ipv4_privileged_ports() rejects the opposite move, both with EINVAL.
    """
    by_name = {item.name: item for item in items}
    moving = [by_name[n] for n in (PORT_RANGE, UNPRIVILEGED_PORT_START) if n in by_name]
    if not any(item.action is Action.CHANGE for item in moving):
        return items

    def effective(name: str) -> SysctlValue | None:
        item = by_name.get(name)
        if item is not None and item.desired is not None:
            return item.desired
        return snapshot.auxiliary.get(name) if name == UNPRIVILEGED_PORT_START else None

    port_range, floor = effective(PORT_RANGE), effective(UNPRIVILEGED_PORT_START)
    if not (isinstance(port_range, tuple) and isinstance(floor, int)):
        return items
    if port_range[0] >= floor:
        return items
    reason = (
        f"the range {port_range[0]}-{port_range[1]} starts below "
        f"{UNPRIVILEGED_PORT_START} ({floor}); the kernel would reject it (EINVAL)"
    )
    blocked = {
        item.name: replace(
            item, action=Action.BLOCKED, reason=reason, blocked_status=ExitStatus.BAD_INPUT
        )
        for item in moving
        if item.action is Action.CHANGE
    }
    return [blocked.get(item.name, item) for item in items]


def build_plan(profile: Profile, snapshot: Snapshot, *, allow_unlisted: bool = False) -> Plan:
    """Return what applying ``profile`` would do to the kernel ``snapshot`` read. Pure.

    A key outside the catalogue is blocked unless ``allow_unlisted``; then a
    host-wide one (not net.*) is still blocked outside the initial namespace.
    """
    items = [_item(target, snapshot, allow_unlisted) for target in profile.targets.values()]
    checked = tuple(_check_port_floor(items, snapshot))
    return Plan(profile.name, profile.path, snapshot.context, checked)


def read_plan(
    profile: Profile,
    procfs: ProcFS,
    netns_name: str | None = None,
    *,
    allow_unlisted: bool = False,
) -> Plan:
    """Read the settings ``profile`` names from the kernel behind ``procfs``, and plan."""
    snapshot = inspect_settings(
        procfs,
        netns_name=netns_name,
        extra=profile.specs_outside_catalogue(),
        writable=tuple(profile.targets),
    )
    return build_plan(profile, snapshot, allow_unlisted=allow_unlisted)
