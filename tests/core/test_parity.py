"""Batch == streaming, exactly: build_bars vs a BarBuilder loop, ema() vs an Ema loop."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from mental_trader.core import Bar, BarBuilder, Ema, build_bars, ema

from ._data import sessions, tick_streams, volume_modes
from ._reference import RefBar, columns_to_bars, ref_ema


def as_ref(bar: Bar) -> RefBar:
    return RefBar(bar.symbol, bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ticks)


@given(st.sampled_from([1, 60, 300, 420, 3600]), sessions, volume_modes, st.data())
def test_build_bars_equals_builder_loop(
    timeframe_s: int, session: dict[str, Any], mode: str, data: st.DataObject
) -> None:
    ticks = data.draw(tick_streams(max_ticks=150, volume_mode=mode), label="ticks")
    kwargs = {"volume_mode": mode, **session}
    cols = build_bars(
        ticks.ts, ticks.price, ticks.qty, symbol=ticks.symbol, timeframe_s=timeframe_s, **kwargs
    )
    builder = BarBuilder(timeframe_s, **kwargs)
    streamed: list[Bar] = []
    for sym, ts, price, qty in ticks.rows():
        closed = builder.on_tick(sym, ts, price, qty)
        assert len(closed) <= 1
        assert all(b.symbol == sym for b in closed)
        streamed += closed
    streamed += builder.flush()
    got = sorted((as_ref(b) for b in streamed), key=lambda b: (b.ts, b.symbol))
    assert got == columns_to_bars(cols)


def test_build_bars_equals_builder_loop_on_a_synthetic_day(make_ticks: Any) -> None:
    t = make_ticks(50_000, seed=17, n_symbols=8, mean_gap_ms=450, jitter_ms=1_000)
    cols = build_bars(t.ts, t.price, t.qty, symbol=t.symbol)
    builder = BarBuilder()
    streamed: list[Bar] = []
    for sym, ts, price, qty in t.rows():
        streamed += builder.on_tick(sym, ts, price, qty)
    streamed += builder.flush()
    assert len(streamed) > 1_000
    got = sorted((as_ref(b) for b in streamed), key=lambda b: (b.ts, b.symbol))
    assert got == columns_to_bars(cols)
    assert builder.dropped["late"] > 0


finite = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)


@given(
    st.lists(finite, max_size=300).map(lambda v: np.array(v, dtype=np.float64)), st.integers(1, 60)
)
def test_ema_loop_equals_batch(x: NDArray[np.float64], period: int) -> None:
    e = Ema(period)
    streamed = [e.update(float(v)) for v in x]
    as_array = np.array([math.nan if v is None else v for v in streamed], dtype=np.float64)
    assert np.array_equal(as_array, ema(x, period), equal_nan=True)
    assert all((v is None) == (i < period - 1) for i, v in enumerate(streamed))


@given(
    st.lists(st.floats(1e-2, 1e5), min_size=1, max_size=300).map(
        lambda v: np.array(v, dtype=np.float64)
    ),
    st.integers(1, 60),
)
def test_ema_close_to_reference(x: NDArray[np.float64], period: int) -> None:
    np.testing.assert_allclose(
        ema(x, period),
        ref_ema(x.tolist(), period),
        rtol=1e-12,
        # x - ema cancels when the series jumps; allow for it on the scale of the inputs
        atol=1e-12 * float(np.max(x, initial=0.0)),
        equal_nan=True,
    )
