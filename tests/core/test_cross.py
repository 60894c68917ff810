"""``crossovers``: hand-computed flags, NaN handling, touching, and the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from mental_trader.core import crossovers

from ._reference import ref_crossovers

nan = math.nan


def arr(values: list[float]) -> NDArray[np.float64]:
    return np.array(values, dtype=np.float64)


@pytest.mark.parametrize(
    ("fast", "slow", "expected"),
    [
        # touch at i=1 (not a cross), above at i=2 (+1), touch at i=3, below at i=4 (-1)
        ([1, 2, 3, 2, 1], [2, 2, 2, 2, 2], [0, 0, 1, 0, -1]),
        # straight cross up and down, no touching
        ([1, 3, 1, 3], [2, 2, 2, 2], [0, 1, -1, 1]),
        # staying above / below never re-fires
        ([3, 4, 5, 1, 0], [2, 2, 2, 2, 2], [0, 0, 0, -1, 0]),
        # equal throughout: never a cross
        ([2, 2, 2], [2, 2, 2], [0, 0, 0]),
        # leaving a touch upwards is a crossover even when coming from above (TradingView)
        ([3, 2, 3], [2, 2, 2], [0, 0, 1]),
        # and leaving it downwards a crossunder even when coming from below
        ([1, 2, 1], [2, 2, 2], [0, 0, -1]),
        # both lines move
        ([1.0, 1.5, 2.5, 2.0], [2.0, 1.5, 2.0, 2.2], [0, 0, 1, -1]),
    ],
)
def test_hand_computed(fast: list[float], slow: list[float], expected: list[int]) -> None:
    out = crossovers(arr(fast), arr(slow))
    assert out.dtype == np.int8
    assert out.tolist() == expected
    assert ref_crossovers(fast, slow) == expected


@pytest.mark.parametrize(
    ("fast", "slow", "expected"),
    [
        ([nan, 1, 3], [2, 2, 2], [0, 0, 1]),  # previous NaN -> 0, then a real cross
        ([1, nan, 3], [2, 2, 2], [0, 0, 0]),  # NaN at i and at i-1 both give 0
        ([1, 3, nan, 1], [2, 2, 2, 2], [0, 1, 0, 0]),
        ([1, 3], [nan, 2], [0, 0]),
        ([1, 3], [2, nan], [0, 0]),
        ([nan, nan, nan], [nan, nan, nan], [0, 0, 0]),
    ],
)
def test_nan_gives_zero(fast: list[float], slow: list[float], expected: list[int]) -> None:
    assert crossovers(arr(fast), arr(slow)).tolist() == expected
    assert ref_crossovers(fast, slow) == expected


def test_first_flag_is_zero() -> None:
    assert crossovers(arr([5.0]), arr([1.0])).tolist() == [0]
    assert crossovers(arr([5.0, 6.0]), arr([1.0, 1.0])).tolist() == [0, 0]


def test_empty() -> None:
    out = crossovers(arr([]), arr([]))
    assert out.dtype == np.int8
    assert out.shape == (0,)


def test_infinities_compare_like_numbers() -> None:
    fast = arr([1.0, math.inf, -math.inf])
    slow = arr([2.0, 2.0, 2.0])
    assert crossovers(fast, slow).tolist() == [0, 1, -1]


def test_inputs_not_mutated() -> None:
    fast, slow = arr([1, 3, 1]), arr([2, 2, 2])
    f0, s0 = fast.copy(), slow.copy()
    crossovers(fast, slow)
    np.testing.assert_array_equal(fast, f0)
    np.testing.assert_array_equal(slow, s0)


# Small value sets make ties (touching) and NaN common.
_values = st.one_of(
    st.sampled_from([1.0, 2.0, 3.0, nan]),
    st.floats(-10.0, 10.0, allow_nan=False),
)


@given(st.lists(st.tuples(_values, _values), max_size=80))
def test_matches_reference(pairs: list[tuple[float, float]]) -> None:
    fast = arr([p[0] for p in pairs])
    slow = arr([p[1] for p in pairs])
    out = crossovers(fast, slow)
    assert out.dtype == np.int8
    assert out.tolist() == ref_crossovers(fast.tolist(), slow.tolist())
