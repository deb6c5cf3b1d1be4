"""CLOSE_WAIT age buckets: each age counted once, under the first upper bound above it."""

from __future__ import annotations

from array import array
from bisect import bisect_left

from hypothesis import given
from hypothesis import strategies as st

from tcptune.model.closewait import AGE_BUCKETS, bucket_counts_ms


def by_sorting(ages: list[int]) -> tuple[int, ...]:
    """The definition: bucket i holds the ages at least bound i-1 and below bound i."""
    ordered = sorted(ages)
    ends = [bisect_left(ordered, limit * 1000) for _label, limit in AGE_BUCKETS[:-1]]
    ends.append(len(ordered))
    return tuple(end - start for start, end in zip([0, *ends[:-1]], ends, strict=True))


def test_a_bound_belongs_to_the_next_bucket() -> None:
    # 59.999 s is under a minute; exactly 60 s is not (the 1m bucket is [0, 60 s)).
    ages = array("I", [0, 59_999, 60_000, 599_999, 600_000, 3_600_000, 86_400_000, 2**32 - 1])
    assert bucket_counts_ms(ages) == (2, 2, 1, 1, 2)


def test_no_ages_no_counts() -> None:
    assert bucket_counts_ms(array("I")) == (0,) * len(AGE_BUCKETS)


@given(st.lists(st.integers(min_value=0, max_value=2**32 - 1), max_size=300))
def test_same_counts_as_sorting(ages: list[int]) -> None:
    assert bucket_counts_ms(array("I", ages)) == by_sorting(ages)
    assert sum(bucket_counts_ms(ages)) == len(ages)
