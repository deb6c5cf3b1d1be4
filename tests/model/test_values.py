"""The value model: one parser, one formatter, one "meets the target" rule per unit."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcptune.model.ports import format_port_list, merge_spans, parse_port_list
from tcptune.model.sysctls import Unit
from tcptune.model.values import (
    SysctlValue,
    format_value,
    meets,
    parse,
    same,
    same_text,
    spec_for,
    text_meets,
    unit_of,
)

ports = st.integers(min_value=0, max_value=65535)
spans = st.tuples(ports, ports).map(lambda pair: (min(pair), max(pair)))
span_lists = st.lists(spans, max_size=6)
ranges = st.tuples(st.integers(1, 65535), st.integers(1, 65535)).map(
    lambda pair: (min(pair), max(pair))
)
words = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8)
texts = st.lists(words, min_size=1, max_size=4).map(" ".join)


def port_list_text(items: list[tuple[int, int]]) -> str:
    """Return a port list as a person might write it: unsorted, unmerged."""
    return ",".join(f"{low}" if low == high else f"{low}-{high}" for low, high in items)


@given(st.integers(min_value=-(2**63), max_value=2**63))
def test_integers_parse_what_they_format(number: int) -> None:
    for unit in (Unit.SECONDS, Unit.COUNT, Unit.MODE):
        assert parse(unit, format_value(number) + "\n") == number


@given(ranges)
def test_ranges_parse_what_they_format(pair: tuple[int, int]) -> None:
    assert parse(Unit.PORT_RANGE, format_value(pair)) == pair
    assert parse(Unit.PORT_RANGE, f"{pair[0]}\t{pair[1]}\n") == pair  # as /proc/sys prints it


@given(span_lists)
def test_port_lists_parse_what_they_format(items: list[tuple[int, int]]) -> None:
    text = port_list_text(items)
    assert parse(Unit.PORT_LIST, format_value(text)) == text
    canonical = format_port_list(merge_spans(items))
    assert parse_port_list(text) == parse_port_list(canonical) == merge_spans(items)
    assert same(Unit.PORT_LIST, text, canonical)  # the kernel prints the canonical form


@given(texts)
def test_text_parses_what_it_formats(text: str) -> None:
    assert parse(Unit.TEXT, format_value(text)) == text
    assert parse(Unit.TEXT, f"  {text}\n") == text


@given(texts, st.randoms())
def test_text_words_compare_in_any_order(text: str, rng: random.Random) -> None:
    shuffled = text.split()
    rng.shuffle(shuffled)
    assert same(Unit.TEXT, text, " ".join(shuffled))
    assert not same(Unit.TEXT, text, text + " extra")


@given(st.integers(), st.integers() | st.none(), st.integers() | st.none())
def test_bounds_are_inclusive(current: int, low: int | None, high: int | None) -> None:
    expected = (low is None or current >= low) and (high is None or current <= high)
    assert meets(Unit.COUNT, current, None, low, high) is expected
    assert text_meets(Unit.COUNT, str(current), None, low, high) is expected


@pytest.mark.parametrize(
    ("unit", "text"),
    [
        (Unit.COUNT, "12a"),
        (Unit.COUNT, "²"),  # isdigit() is true for it; the kernel takes ASCII digits only
        (Unit.COUNT, ""),
        (Unit.PORT_RANGE, "1"),
        (Unit.PORT_RANGE, "60999 32768"),
        (Unit.PORT_RANGE, "0 10"),
        (Unit.PORT_LIST, "٨٠"),
        (Unit.PORT_LIST, "8080, 9000"),
        (Unit.PORT_LIST, "70000"),
    ],
)
def test_malformed_text_is_refused(unit: Unit, text: str) -> None:
    with pytest.raises(ValueError):
        parse(unit, text)
    assert not text_meets(unit, text, 1)


def test_the_reserved_ports_repro_meets_its_target() -> None:
    # The live kernel prints "8080,9000-9010"; the profile wrote "9000-9010,8080".
    assert meets(Unit.PORT_LIST, "8080,9000-9010", "9000-9010,8080")
    assert same_text(Unit.PORT_LIST, "8080,9000-9010\n", "9000-9010,8080")
    assert not meets(Unit.PORT_LIST, "8080,9000-9009", "9000-9010,8080")
    assert meets(Unit.PORT_LIST, "", "")


def test_units_outside_the_catalogue_follow_the_profile_value() -> None:
    assert unit_of("net.ipv4.tcp_fin_timeout") is Unit.SECONDS
    assert unit_of("net.ipv4.tcp_congestion_control", "bbr") is Unit.TEXT
    assert unit_of("net.ipv4.tcp_congestion_control") is Unit.TEXT
    assert unit_of("net.ipv4.tcp_notsent_lowat", 16384) is Unit.COUNT
    assert unit_of("net.ipv4.ip_local_port_range_x", (1, 2)) is Unit.PORT_RANGE
    assert spec_for("net.ipv4.tcp_congestion_control", "bbr").summary == (
        "not in tcptune's catalogue"
    )


@pytest.mark.parametrize(
    ("unit", "current", "target", "expected"),
    [
        (Unit.COUNT, 5, 5, True),
        (Unit.COUNT, "5", 5, False),  # text is never an integer: parse first
        (Unit.TEXT, "bbr", "bbr", True),
        (Unit.TEXT, "reno bbr", "bbr reno", True),
        (Unit.TEXT, "cubic", "bbr", False),
        (Unit.PORT_RANGE, (1024, 65535), (1024, 65535), True),
        (Unit.PORT_RANGE, (1024, 65535), (1025, 65535), False),
    ],
)
def test_exact_targets(
    unit: Unit, current: SysctlValue, target: SysctlValue, expected: bool
) -> None:
    assert meets(unit, current, target) is expected
