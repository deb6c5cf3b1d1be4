"""Sysctl values: one parser, one formatter and one "meets the target" rule per unit.

Every layer that reads, compares or writes a sysctl value goes through here:
the inspector parses what /proc/sys prints, the profile validator parses what
a profile says, the advisor, the plan, verify, the sysctl.d boot-order check
and the applier's read-back all compare with :func:`same` or :func:`meets`.
Coding these decisions once is what makes audit and verify agree.

The units (model/sysctls.py ``Unit``):

- integers (seconds, counts, modes): one decimal integer, e.g. ``60``;
- a port range: two integers, ``32768 60999`` (a profile writes ``[low, high]``);
- a port list: ``8080,9000-9010``, compared as the set of ports it names,
  since the kernel prints its bitmap back merged and sorted
  (net/ipv4/sysctl_net_ipv4.c proc_do_large_bitmap);
- text: words such as ``bbr`` or ``reno cubic``, compared word by word in
  any order, since the kernel prints name lists such as
  tcp_allowed_congestion_control in its own registration order
  (net/ipv4/tcp_cong.c tcp_get_allowed_congestion_control).
"""

from __future__ import annotations

import re
from collections import Counter

from tcptune.model.ports import MAX_PORT, parse_port_list
from tcptune.model.sysctls import KNOWN_SYSCTLS, Scope, SysctlSpec, Unit

SysctlValue = int | tuple[int, int] | str
INTEGER_UNITS = frozenset({Unit.SECONDS, Unit.COUNT, Unit.MODE})
_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits: str.isdigit() also takes "²" and "٣"


def unit_of(name: str, value: SysctlValue | None = None) -> Unit:
    """Return the unit of sysctl ``name``: the catalogue's, else the one ``value`` implies.

    A key outside the catalogue (one a profile names) takes the type of the
    profile's value: a pair is a range, an integer an integer, text is text.
    """
    spec = KNOWN_SYSCTLS.get(name)
    if spec is not None:
        return spec.unit
    if isinstance(value, tuple):
        return Unit.PORT_RANGE
    if isinstance(value, int):
        return Unit.COUNT
    return Unit.TEXT


def spec_for(name: str, value: SysctlValue | None = None) -> SysctlSpec:
    """Return the catalogue's spec of ``name``, or one built from ``value`` for other keys."""
    spec = KNOWN_SYSCTLS.get(name)
    if spec is not None:
        return spec
    return SysctlSpec(name, unit_of(name, value), Scope.NETNS, "not in tcptune's catalogue")


def _integer(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"expected an integer, got {text!r}")
    return int(text)


def parse(unit: Unit, text: str) -> SysctlValue:
    """Return the value of sysctl text in ``unit``, raising ValueError if it is malformed.

    ``text`` is what /proc/sys prints or a sysctl.d line sets; surrounding
    blanks and the kernel's final newline do not count.
    """
    stripped = text.strip()
    if unit in INTEGER_UNITS:
        return _integer(stripped)
    if unit is Unit.PORT_RANGE:
        parts = stripped.split()
        if len(parts) != 2:
            raise ValueError(f"expected two integers, got {stripped!r}")
        low, high = _integer(parts[0]), _integer(parts[1])
        if not 0 < low <= high <= MAX_PORT:
            raise ValueError(f"not a port range: {stripped!r}")
        return (low, high)
    if unit is Unit.PORT_LIST:
        parse_port_list(stripped)  # raises ValueError naming the bad part
        return stripped
    return " ".join(stripped.split())


def format_value(value: SysctlValue) -> str:
    """Return a value as /proc/sys and sysctl.d take it: '15', '32768 60999', '8080,9000'."""
    if isinstance(value, tuple):
        return f"{value[0]} {value[1]}"
    return str(value)


def same(unit: Unit, a: SysctlValue, b: SysctlValue) -> bool:
    """Return whether ``a`` and ``b`` are the same setting of a sysctl in ``unit``."""
    if unit is Unit.PORT_LIST and isinstance(a, str) and isinstance(b, str):
        try:
            return parse_port_list(a) == parse_port_list(b)
        except ValueError:
            return a.split() == b.split()
    if unit is Unit.TEXT and isinstance(a, str) and isinstance(b, str):
        return Counter(a.split()) == Counter(b.split())
    return a == b


def same_text(unit: Unit, a: str, b: str) -> bool:
    """Return whether two sysctl texts set the same value; unparsable text compares by words."""
    try:
        return same(unit, parse(unit, a), parse(unit, b))
    except ValueError:
        return a.split() == b.split()


def meets(
    unit: Unit,
    current: SysctlValue | None,
    exact: SysctlValue | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> bool:
    """Return whether ``current`` meets a target: the ``exact`` value, or within the bounds.

    This is the one rule audit, plan, verify and the boot-order check apply.
    """
    if current is None:
        return False
    if exact is not None:
        return same(unit, current, exact)
    if isinstance(current, bool) or not isinstance(current, int):
        return False
    return (minimum is None or current >= minimum) and (maximum is None or current <= maximum)


def text_meets(
    unit: Unit,
    text: str,
    exact: SysctlValue | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> bool:
    """Return whether sysctl text (e.g. a boot-time file's value) meets the target."""
    try:
        value = parse(unit, text)
    except ValueError:
        return False
    return meets(unit, value, exact, minimum, maximum)
