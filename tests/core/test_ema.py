"""``ema`` and ``Ema``: TA-Lib equality, warm-up, buffers, streaming == batch, exact state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import talib
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from mental_trader.core import Ema, ema
from mental_trader.errors import InvalidInputError

from ._reference import ref_ema

PERIODS = [1, 2, 8, 21, 200]


def random_walk(n: int, seed: int) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n))))


def stream(e: Ema, values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Feed ``values`` one by one; None (warming up) becomes NaN."""
    out = [e.update(float(v)) for v in values]
    return np.array([math.nan if v is None else v for v in out], dtype=np.float64)


def state_equal(a: dict[str, int | float], b: dict[str, int | float]) -> bool:
    """Dict equality where NaN equals NaN (``value`` is NaN until ready)."""
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if x != y or type(x) is not type(y):
            return False
    return True


# ------------------------------------------------------------------------------- batch


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_talib(period: int, seed: int) -> None:
    x = random_walk(2_000, seed)
    got = ema(x, period)
    want = talib.EMA(x, timeperiod=period)
    assert got.dtype == np.float64
    assert got.shape == x.shape
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0.0, equal_nan=True)


@pytest.mark.parametrize("period", PERIODS)
def test_matches_talib_on_short_inputs(period: int) -> None:
    for n in {1, period - 1, period, period + 1, 2 * period + 3}:
        if n < 1:
            continue
        x = random_walk(n, n)
        np.testing.assert_allclose(
            ema(x, period), talib.EMA(x, timeperiod=period), rtol=1e-9, atol=0.0, equal_nan=True
        )


@pytest.mark.parametrize("period", PERIODS)
def test_warm_up_and_sma_seed(period: int) -> None:
    x = random_walk(3 * period + 5, 7)
    out = ema(x, period)
    assert np.isnan(out[: period - 1]).all()
    assert np.isfinite(out[period - 1 :]).all()
    assert out[period - 1] == pytest.approx(np.mean(x[:period]), rel=1e-12)
    alpha = 2.0 / (period + 1)
    expected_next = out[period - 1] + alpha * (x[period] - out[period - 1])
    assert out[period] == pytest.approx(expected_next, rel=1e-12)


def test_hand_computed_values() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    # period 3: alpha = 0.5; seed = (1+2+3)/3 = 2; 2 + 0.5*(4-2) = 3; 3 + 0.5*(10-3) = 6.5
    np.testing.assert_array_equal(ema(x, 3), [math.nan, math.nan, 2.0, 3.0, 6.5])
    # period 1 is the identity here (alpha = 1, all values exact)
    np.testing.assert_array_equal(ema(x, 1), x)


@pytest.mark.parametrize("period", PERIODS)
def test_shorter_than_period_is_all_nan(period: int) -> None:
    n = max(period - 1, 0)
    out = ema(random_walk(n, 3), period)
    assert out.shape == (n,)
    assert np.isnan(out).all()


@pytest.mark.parametrize("period", [1, 5])
def test_empty_input(period: int) -> None:
    out = ema(np.array([], dtype=np.float64), period)
    assert out.dtype == np.float64
    assert out.shape == (0,)


@pytest.mark.parametrize("period", PERIODS)
def test_out_buffer_is_filled_and_returned(period: int) -> None:
    x = random_walk(500, 11)
    buf = np.full(500, 7.0)
    res = ema(x, period, out=buf)
    assert res is buf
    np.testing.assert_array_equal(buf, ema(x, period))  # NaN warm-up slots overwritten too
    assert np.isnan(buf[: period - 1]).all()


def test_out_buffer_can_be_reused() -> None:
    buf = np.empty(300)
    first = ema(random_walk(300, 1), 8, out=buf).copy()
    second = ema(random_walk(300, 2), 8, out=buf)
    assert second is buf
    np.testing.assert_array_equal(buf, ema(random_walk(300, 2), 8))
    assert not np.array_equal(first, buf)


def test_input_not_mutated_and_readonly_accepted() -> None:
    x = random_walk(100, 5)
    keep = x.copy()
    x.flags.writeable = False
    out = ema(x, 8)
    np.testing.assert_array_equal(x, keep)
    assert out is not x


@given(
    st.lists(st.floats(1e-3, 1e6), max_size=120).map(lambda v: np.array(v, dtype=np.float64)),
    st.integers(1, 40),
)
def test_batch_matches_reference(x: NDArray[np.float64], period: int) -> None:
    np.testing.assert_allclose(
        ema(x, period),
        ref_ema(x.tolist(), period),
        rtol=1e-12,
        # x - ema cancels when the series jumps; allow for it on the scale of the inputs
        atol=1e-12 * float(np.max(x, initial=0.0)),
        equal_nan=True,
    )


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("period", PERIODS)
def test_streaming_equals_batch_exactly(period: int) -> None:
    x = random_walk(1_500, 21)
    e = Ema(period)
    out = stream(e, x)
    assert np.array_equal(out, ema(x, period), equal_nan=True)
    assert e.count == len(x)
    assert e.is_ready
    assert e.value == out[-1]


def test_update_returns_none_until_ready() -> None:
    e = Ema(4)
    assert e.period == 4
    assert e.count == 0
    assert e.value is None
    assert not e.is_ready
    for i, x in enumerate([1.0, 2.0, 3.0]):
        assert e.update(x) is None
        assert e.value is None
        assert not e.is_ready
        assert e.count == i + 1
    assert e.update(6.0) == 3.0  # (1+2+3+6)/4
    assert e.is_ready
    assert e.value == 3.0
    assert e.update(8.0) == 5.0  # 3 + 0.4*(8-3)
    assert e.count == 5


def test_period_one_is_ready_at_once() -> None:
    e = Ema(1)
    assert e.update(42.5) == 42.5
    assert e.is_ready


def test_reset_forgets_everything() -> None:
    x = random_walk(50, 4)
    e = Ema(5)
    stream(e, x[:17])
    e.reset()
    assert e.count == 0
    assert e.value is None
    assert not e.is_ready
    assert e == Ema(5)
    assert np.array_equal(stream(e, x), ema(x, 5), equal_nan=True)


def test_equality_by_state() -> None:
    a, b = Ema(3), Ema(3)
    assert a == b
    a.update(1.0)
    assert a != b
    b.update(1.0)
    assert a == b
    assert Ema(3) != Ema(4)


@pytest.mark.parametrize("period", [1, 2, 8, 21])
def test_state_round_trip_at_every_split(period: int) -> None:
    x = random_walk(60, period)
    batch = ema(x, period)
    for k in range(len(x) + 1):
        e = Ema(period)
        stream(e, x[:k])
        state = e.to_state()
        assert set(state) == {"period", "count", "seed_sum", "value"}
        assert state["period"] == period
        assert state["count"] == k
        assert (k >= period) == (not math.isnan(state["value"]))
        restored = Ema.from_state(state)
        assert restored == e
        assert restored.count == k
        assert restored.is_ready == e.is_ready
        assert restored.value == e.value
        rest = stream(restored, x[k:])
        assert np.array_equal(rest, batch[k:], equal_nan=True), f"split at {k}"


@pytest.mark.parametrize("consumed", [3, 20])
def test_state_survives_json(consumed: int) -> None:
    e = Ema(8)
    x = random_walk(30, 8)
    stream(e, x[:consumed])
    again = Ema.from_state(json.loads(json.dumps(e.to_state())))
    assert again == e
    assert np.array_equal(stream(again, x[consumed:]), ema(x, 8)[consumed:], equal_nan=True)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("consumed", [0, 3, 5, 9])
def test_non_finite_update_raises_and_keeps_state(bad: float, consumed: int) -> None:
    x = random_walk(20, 9)
    e = Ema(5)
    stream(e, x[:consumed])
    before = e.to_state()
    with pytest.raises(InvalidInputError):
        e.update(bad)
    assert state_equal(e.to_state(), before)
    assert e.count == consumed
    assert np.array_equal(stream(e, x[consumed:]), ema(x, 5)[consumed:], equal_nan=True)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_batch_raises(bad: float) -> None:
    x = random_walk(30, 2)
    x[17] = bad
    with pytest.raises(InvalidInputError):
        ema(x, 8)


@given(
    st.lists(st.floats(-1e9, 1e9), max_size=150).map(lambda v: np.array(v, dtype=np.float64)),
    st.integers(1, 50),
    st.data(),
)
def test_streaming_equals_batch_property(
    x: NDArray[np.float64], period: int, data: st.DataObject
) -> None:
    batch = ema(x, period)
    k = data.draw(st.integers(0, len(x)), label="split")
    e = Ema(period)
    head = stream(e, x[:k])
    tail = stream(Ema.from_state(e.to_state()), x[k:])
    assert np.array_equal(np.concatenate([head, tail]), batch, equal_nan=True)
