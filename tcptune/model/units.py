"""Show values in the units people think in: 7200 s as "2 h", a range as "32768-60999"."""

from __future__ import annotations

from collections.abc import Mapping

from tcptune.model.sysctls import Unit
from tcptune.model.values import SysctlValue

_STEPS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def duration(seconds: int | float) -> str:
    """Return ``seconds`` in at most two units, e.g. 7875 -> '2 h 11 min', 75 -> '1 min 15 s'."""
    if seconds < 0:
        return f"-{duration(-seconds)}"
    whole = round(seconds)
    if whole == 0:
        return "0 s"
    parts: list[str] = []
    for name, size in _STEPS:
        amount, whole = divmod(whole, size)
        if amount:
            parts.append(f"{amount} {name}")
        if len(parts) == 2:
            break
    return " ".join(parts)


def show_value(value: SysctlValue, unit: Unit, modes: Mapping[int, str] | None = None) -> str:
    """Return a sysctl value in human units: seconds as a duration, ranges with a dash."""
    if modes and isinstance(value, int) and value in modes:
        return f"{value} ({modes[value]})"
    if unit is Unit.SECONDS and isinstance(value, int):
        return value_with_seconds(value)
    if unit is Unit.PORT_RANGE and isinstance(value, tuple):
        low, high = value
        return f"{low}-{high} ({high - low + 1} ports)"
    if unit is Unit.PORT_LIST:
        return str(value) if value else "(none)"
    if isinstance(value, int):
        return f"{value:,}".replace(",", "_") if value >= 100_000 else str(value)
    return str(value)


def value_with_seconds(seconds: int) -> str:
    """Return e.g. '2 h (7200 s)', or '60 s' when the duration is already in seconds."""
    shown = duration(seconds)
    return shown if shown == f"{seconds} s" else f"{shown} ({seconds} s)"
