"""The column helpers the CLOSE_WAIT path runs in C: picks, sort order, owner inodes."""

from __future__ import annotations

import random
from array import array

import pytest

from tcptune.inspect.owners import Holders
from tcptune.model.heavyhitters import TopCounts
from tcptune.model.holding import SORT_RUN, sort_order, take
from tcptune.model.snapshot import Endpoint, InodePorts, Listener, SocketDetails


def test_take_picks_in_the_order_given_and_keeps_the_type_code() -> None:
    column = array("H", [10, 11, 12, 13])
    picked = take(column, array("I", [3, 0, 0, 2]))
    assert picked == array("H", [13, 10, 10, 12])
    assert take(column, []) == array("H") and take(column, [1]) == array("H", [11])


@pytest.mark.parametrize("size", [0, 1, 2, 3, 1000, 4097])
def test_sort_order_is_a_stable_argsort(size: int) -> None:
    rng = random.Random(size)
    column = array("Q", (rng.choice([0, 7, 2**40, rng.randrange(2**64)]) for _ in range(size)))
    expected = sorted(range(size), key=column.__getitem__)  # Python's sort is stable
    assert list(sort_order(column)) == expected


@pytest.mark.parametrize("size", [SORT_RUN + 1, 3 * SORT_RUN, 10_000])
def test_sort_order_in_runs_is_the_same_stable_argsort(size: int) -> None:
    # 32-bit values, as socket inodes are: sorted in runs and merged, ties included.
    rng = random.Random(size)
    column = array("Q", (rng.choice([0, 5, rng.randrange(2**32)]) for _ in range(size)))
    assert list(sort_order(column)) == sorted(range(size), key=column.__getitem__)


def details(inodes: list[int], listeners: list[tuple[int, int]]) -> SocketDetails:
    column = InodePorts(array("Q", inodes), array("H", [80] * len(inodes)))
    return SocketDetails(
        established_keepalive=0,
        fin_wait2_orphaned=0,
        fin_wait2_held=0,
        close_wait_inodes=column,
        close_wait_by_local=TopCounts(),
        listeners=tuple(
            Listener(Endpoint("0.0.0.0", port), 0, 128, inode, 0) for port, inode in listeners
        ),
        time_wait_by_remote=TopCounts(),
    )


def test_owner_inodes_are_the_sorted_column_with_shared_listeners_inserted() -> None:
    found = details([5, 9, 20], [(80, 7), (80, 30), (80, 9), (443, 3), (22, 1)])
    # port 80 has three listeners (shared: wanted; 9 is also CLOSE_WAIT, kept once); 443, 22: one
    assert found.owner_inodes() == array("Q", [5, 7, 9, 20, 30])
    assert details([], []).owner_inodes() == array("Q")
    alone = details([5, 9, 20], [(80, 7), (443, 3)])  # no shared listener: the column itself
    assert alone.owner_inodes() is alone.close_wait_inodes.inodes  # type: ignore[attr-defined]
    assert found.close_wait_inodes.inodes == array("Q", [5, 9, 20])  # type: ignore[attr-defined]


def test_holders_copy_a_sorted_column_and_sort_anything_else() -> None:
    column = array("Q", [5, 7, 9])
    assert Holders(column).inodes() is column  # used as it is, never written to
    for other in ([9, 5, 7, 5, 0], array("Q", [0, 5, 7, 9]), array("Q", [5, 9, 7]), (9, 7, 5)):
        assert Holders(other).inodes() == column
