"""The Misra-Gries summary: fixed size, counts within the error bound, mergeable."""

from __future__ import annotations

from array import array
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from tcptune.model.heavyhitters import HeavyHitters, TopCounts, add_column

streams = st.lists(st.integers(min_value=0, max_value=60), max_size=600)
capacities = st.integers(min_value=1, max_value=12)


def _check(summary: TopCounts[int], truth: Counter[int], capacity: int) -> None:
    total = sum(truth.values())
    assert summary.total == total
    assert len(summary) <= capacity
    kept = sum(summary.values())
    # Misra-Gries: every estimate is a lower bound at most `error` below the truth,
    # and error <= (total - kept) / (capacity + 1).
    assert summary.error * (capacity + 1) <= total - kept
    for key, true in truth.items():
        estimate = summary.get(key, 0)
        assert estimate <= true <= estimate + summary.error
        if true * (capacity + 1) > total:
            assert key in summary  # a true heavy hitter is never lost
    assert all(key in truth for key in summary)


@settings(max_examples=300, deadline=None)
@given(streams, capacities)
def test_one_at_a_time_stays_within_the_bound(stream: list[int], capacity: int) -> None:
    summary: HeavyHitters[int] = HeavyHitters(capacity)
    for key in stream:
        summary.add(key)
        assert len(summary.counts) <= 2 * capacity  # memory never grows with the stream
    _check(summary.freeze(lambda key: key), Counter(stream), capacity)


@settings(max_examples=300, deadline=None)
@given(st.lists(streams, max_size=6), capacities)
def test_batches_and_merges_stay_within_the_bound(batches: list[list[int]], capacity: int) -> None:
    merged: HeavyHitters[int] = HeavyHitters(capacity)
    for batch in batches:
        part: HeavyHitters[int] = HeavyHitters(capacity)
        part.add_all(iter(batch), len(batch))
        merged.merge(part)
    truth = Counter(key for batch in batches for key in batch)
    _check(merged.freeze(lambda key: key), truth, capacity)


def test_few_keys_are_counted_exactly() -> None:
    summary: HeavyHitters[str] = HeavyHitters(4)
    summary.add_all(["a", "b", "a", "c", "a"], 5)
    top = summary.freeze(str.upper)
    assert top == {"A": 3, "B": 1, "C": 1}
    assert top.exact and top.total == 5
    assert top.busiest() == ("A", 3)
    assert top.most(1) == [("A", 3)]


def test_all_distinct_keys_leave_nothing_heavy() -> None:
    # The server-side TIME_WAIT case: every remote endpoint is new.
    summary: HeavyHitters[int] = HeavyHitters(8)
    summary.add_all(range(10_000), 10_000)
    top = summary.freeze(lambda key: key)
    assert len(top) <= 8 and top.total == 10_000
    assert top.heavy() == []
    assert top.error <= 10_000 // 9


def test_capacity_must_be_positive() -> None:
    import pytest

    with pytest.raises(ValueError, match="capacity"):
        HeavyHitters(0)


@given(st.lists(st.integers(min_value=0, max_value=3), max_size=400), st.booleans())
def test_a_column_counts_as_its_values_one_by_one(values: list[int], uniform: bool) -> None:
    if uniform:
        values = [values[0]] * len(values) if values else []
    column = memoryview(array("H", values).tobytes()).cast("H")
    by_column, by_value = HeavyHitters[int](2), HeavyHitters[int](2)
    add_column(by_column, column, len(values))
    by_value.add_all(values, len(values))
    assert (by_column.counts, by_column.total, by_column.error) == (
        by_value.counts,
        by_value.total,
        by_value.error,
    )
