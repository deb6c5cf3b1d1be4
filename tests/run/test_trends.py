"""Trends over a window: a steady leak is rising on every refresh, a one-off is not."""

from __future__ import annotations

import math

import pytest

from tcptune.run.trends import MIN_RISE, Window, slope


def test_slope_is_the_least_squares_line() -> None:
    assert slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert slope([(0, 5), (1, 5), (2, 5)]) == 0
    assert slope([(0, 1)]) is None and slope([(3, 1), (3, 2)]) is None


def test_a_steady_leak_is_rising_on_every_refresh_once_the_window_holds_it() -> None:
    # The case: +1 CLOSE_WAIT every 3 s, refreshed every second. Comparing with
    # the previous refresh marks it on one screen in three; the window marks every one.
    window = Window(30.0)
    verdicts = []
    for second in range(120):
        window.add(float(second), {"close_wait": second // 3})
        verdicts.append(window.trend("close_wait").rising)
    assert not any(verdicts[:6]) and all(verdicts[7:])  # once 2 sockets lie on a line
    assert window.trend("close_wait").per_second == pytest.approx(1 / 3, rel=0.05)
    assert window.span == 30.0 and len(window.trend("close_wait").values) == 31


@pytest.mark.parametrize("step", [1, -5])
def test_a_single_step_is_never_rising(step: int) -> None:
    window = Window(30.0)
    for second in range(90):
        window.add(float(second), {"close_wait": 10 + (step if second >= 40 else 0)})
        assert not window.trend("close_wait").rising, second


def test_a_falling_count_is_not_rising_and_counters_grow_per_second() -> None:
    window = Window(10.0)
    for second in range(20):
        window.add(float(second), {"c": 100 - second, "drops": 7 * second})
    assert window.trend("c").rise == pytest.approx(-10.0) and not window.trend("c").rising
    assert window.increase("drops") == pytest.approx(7.0)
    assert window.increase("missing") is None
    assert window.trend("missing").values == (0,) * 11  # a name not seen counts as 0


def test_the_window_says_when_it_was_first_filled() -> None:
    window = Window(2.0)
    for tenth in range(20):
        window.add(tenth / 10, {})
        assert not window.filled
    window.add(2.0, {})
    assert window.filled
    assert MIN_RISE >= 2  # one new socket is noise


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf])
def test_a_window_must_be_positive_and_finite(seconds: float) -> None:
    with pytest.raises(ValueError, match="positive finite"):
        Window(seconds)
