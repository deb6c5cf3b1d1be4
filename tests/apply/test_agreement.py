"""Audit, plan, verify and the applier's read-back agree on every (live, target) pair.

Each side is fed the same constructed snapshot: the advisor's profile-mismatch,
the plan's CHANGE/KEEP, verify's drift and its boot-file check, and the
applier's read-back comparison must all give the one answer model/values.py does.
"""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from tcptune.advise import Evidence, advise
from tcptune.apply.plan import Action, build_plan
from tcptune.apply.verify import VerifyReport, boot_value_meets
from tcptune.model.ports import format_port_list, merge_spans
from tcptune.model.snapshot import ReadStatus, SysctlReading
from tcptune.model.values import SysctlValue, format_value, same_text, spec_for, unit_of
from tcptune.profiles.model import Target
from tests.snapshots import profile, snapshot

FIN = "net.ipv4.tcp_fin_timeout"
RANGE = "net.ipv4.ip_local_port_range"
RESERVED = "net.ipv4.ip_local_reserved_ports"
CONGESTION = "net.ipv4.tcp_congestion_control"  # outside the catalogue: text

small = st.integers(min_value=1, max_value=120)
pairs = st.tuples(st.integers(1024, 1100), st.integers(1024, 1100)).map(sorted).map(tuple)
spans = st.tuples(st.integers(0, 60), st.integers(0, 60)).map(sorted).map(tuple)
words = st.lists(st.sampled_from(["reno", "cubic", "bbr", "htcp"]), min_size=1, max_size=3)


def rewritten(items: list[tuple[int, int]], rng: random.Random) -> str:
    """Return the same set of ports written differently: shuffled, with single ports split off."""
    parts = []
    for low, high in items:
        if high > low and rng.random() < 0.5:
            parts += [str(low), f"{low + 1}-{high}" if high > low + 1 else str(high)]
        else:
            parts.append(f"{low}-{high}" if high > low else str(low))
    rng.shuffle(parts)
    return ",".join(parts)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, SysctlValue, Target]:
    """Return a key, its live value (as the kernel prints it) and a profile target."""
    kind = draw(st.sampled_from(["integer", "bounds", "range", "ports", "text"]))
    rng = draw(st.randoms())
    if kind == "integer":
        return FIN, draw(small), make(FIN, draw(small))
    if kind == "bounds":
        low, high = draw(small | st.none()), draw(small | st.none())
        if low is None and high is None:
            low = draw(small)
        return FIN, draw(small), make(FIN, None, low, high)
    if kind == "range":
        live = draw(pairs)
        return RANGE, live, make(RANGE, draw(st.just(live) | pairs))
    if kind == "ports":
        items = draw(st.lists(spans, max_size=4))
        live = format_port_list(merge_spans(items))  # the kernel prints its bitmap merged
        other = draw(st.lists(spans, max_size=4))
        wanted = draw(st.sampled_from([rewritten(items, rng), rewritten(other, rng)]))
        return RESERVED, live, make(RESERVED, wanted)
    live_words = draw(words)
    shuffled = rng.sample(live_words, len(live_words))
    wanted_words = draw(st.sampled_from([shuffled, draw(words)]))
    return CONGESTION, " ".join(live_words), make(CONGESTION, " ".join(wanted_words))


def make(
    name: str, value: SysctlValue | None, low: int | None = None, high: int | None = None
) -> Target:
    return Target(name, value, low, high, "why", "risk", False, (), "t")


@given(cases())
def test_audit_plan_verify_and_read_back_agree(case: tuple[str, SysctlValue, Target]) -> None:
    name, live, target = case
    reading = SysctlReading(spec_for(name, target.value), ReadStatus.OK, live, format_value(live))
    if name == CONGESTION:
        taken = snapshot(profile_sysctls={name: reading})
    else:
        taken = snapshot()
        taken = snapshot({**taken.sysctls, name: reading})
    wanted = profile(target)

    meets = target.satisfied_by(live)
    findings = advise(Evidence(taken, wanted))
    audit_ok = not [f for f in findings if f.id == "profile-mismatch" and f.subject == name]
    [item] = build_plan(wanted, taken, allow_unlisted=True).items
    assert item.action in (Action.KEEP, Action.CHANGE)
    verify_ok = not VerifyReport(build_plan(wanted, taken, allow_unlisted=True), {}, {}, ()).drifted
    boot_ok = boot_value_meets(target, format_value(live))  # the same text in a boot file
    assert audit_ok == (item.action is Action.KEEP) == verify_ok == boot_ok == meets
    if item.action is Action.KEEP:  # writing the kept value would read back as the live one
        assert same_text(unit_of(name), item.write_text, format_value(live))
