"""``resample_bars``: hand cases, the reference, and build_bars run at the coarse timeframe."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mental_trader.core import build_bars, resample_bars

from ._data import Ticks, sessions, tick_streams, volume_modes
from ._reference import COLUMNS, columns_to_bars, ist_ns, ref_resample


def one_minute(ticks: list[tuple[int, float, float]], **kwargs: Any) -> dict[str, Any]:
    ts = np.array([t[0] for t in ticks], dtype=np.int64)
    price = np.array([t[1] for t in ticks], dtype=np.float64)
    qty = np.array([t[2] for t in ticks], dtype=np.float64)
    return build_bars(ts, price, qty, **kwargs)


def rows(cols: dict[str, Any]) -> list[tuple[int, float, float, float, float, float, int]]:
    return [b.row()[1:] for b in columns_to_bars(cols)]


def test_one_minute_to_five_minutes() -> None:
    bars = one_minute(
        [
            (ist_ns(9, 15, 10), 100.0, 1.0),
            (ist_ns(9, 16, 20), 103.0, 2.0),
            (ist_ns(9, 18, 30), 98.0, 3.0),
            (ist_ns(9, 19, 59), 101.0, 1.0),
            (ist_ns(9, 20, 0), 102.0, 4.0),
            (ist_ns(9, 26, 0), 99.0, 1.0),
        ]
    )
    assert len(bars["ts"]) == 6
    out = resample_bars(bars, 300)
    assert set(out) == set(COLUMNS)
    assert rows(out) == [
        (ist_ns(9, 15), 100.0, 103.0, 98.0, 101.0, 7.0, 4),
        (ist_ns(9, 20), 102.0, 102.0, 102.0, 102.0, 4.0, 1),
        (ist_ns(9, 25), 99.0, 99.0, 99.0, 99.0, 1.0, 1),
    ]
    assert out["ts"].dtype == np.int64
    assert out["ticks"].dtype == np.int64
    assert out["volume"].dtype == np.float64


def test_one_minute_to_hourly_last_bar_is_1515_to_1530() -> None:
    bars = one_minute(
        [
            (ist_ns(14, 15, 0), 5.0, 1.0),
            (ist_ns(15, 14, 0), 1.0, 1.0),
            (ist_ns(15, 15, 0), 2.0, 2.0),
            (ist_ns(15, 29, 0), 3.0, 3.0),
        ]
    )
    assert rows(resample_bars(bars, 3600)) == [
        (ist_ns(14, 15), 5.0, 5.0, 1.0, 1.0, 2.0, 2),
        (ist_ns(15, 15), 2.0, 3.0, 2.0, 3.0, 5.0, 2),
    ]


def test_same_timeframe_is_identity() -> None:
    bars = one_minute([(ist_ns(9, 15, s), 10.0 + s, 1.0) for s in range(0, 600, 7)])
    out = resample_bars(bars, 60)
    for k in COLUMNS:
        np.testing.assert_array_equal(out[k], bars[k])


def test_symbol_column_kept_and_rows_ordered() -> None:
    ts = np.array(
        [ist_ns(9, 15, 1), ist_ns(9, 15, 2), ist_ns(9, 20, 1), ist_ns(9, 19, 1)], dtype=np.int64
    )
    price = np.array([10.0, 20.0, 11.0, 21.0])
    qty = np.array([1.0, 1.0, 1.0, 1.0])
    sym = np.array([2, 1, 2, 1], dtype=np.int64)
    bars = build_bars(ts, price, qty, symbol=sym)
    out = resample_bars(bars, 300)
    assert set(out) == {*COLUMNS, "symbol"}
    assert list(zip(out["symbol"].tolist(), out["ts"].tolist(), strict=True)) == [
        (1, ist_ns(9, 15)),
        (2, ist_ns(9, 15)),
        (2, ist_ns(9, 20)),
    ]
    assert out["close"].tolist() == [21.0, 10.0, 11.0]
    assert out["ticks"].tolist() == [2, 1, 1]


def test_empty_bars() -> None:
    cols: dict[str, Any] = {
        k: np.array([], dtype=np.int64 if k in ("ts", "ticks") else np.float64) for k in COLUMNS
    }
    out = resample_bars(cols, 300)
    assert all(len(v) == 0 for v in out.values())


def test_no_session_anchors_at_midnight() -> None:
    bars = one_minute(
        [(ist_ns(9, 14, 0), 1.0, 1.0), (ist_ns(9, 16, 0), 2.0, 1.0)],
        session_start=None,
        session_end=None,
    )
    out = resample_bars(bars, 3600, session_start=None, session_end=None)
    assert rows(out) == [(ist_ns(9, 0), 1.0, 2.0, 1.0, 2.0, 2.0, 2)]


def test_inputs_not_mutated() -> None:
    bars = one_minute([(ist_ns(9, 15, s), 10.0 + s, 1.0) for s in range(0, 900, 11)])
    copies = {k: v.copy() for k, v in bars.items()}
    resample_bars(bars, 300)
    for k, v in bars.items():
        np.testing.assert_array_equal(v, copies[k])


@pytest.mark.parametrize("target", [300, 900, 3600])
def test_synthetic_day_equals_direct_build(make_ticks: Any, target: int) -> None:
    t: Ticks = make_ticks(30_000, seed=9, n_symbols=5, mean_gap_ms=700)
    fine = build_bars(t.ts, t.price, t.qty, symbol=t.symbol, timeframe_s=60)
    coarse = build_bars(t.ts, t.price, t.qty, symbol=t.symbol, timeframe_s=target)
    out = resample_bars(fine, target)
    for k in (*COLUMNS, "symbol"):
        np.testing.assert_array_equal(out[k], coarse[k], err_msg=k)


@given(
    st.sampled_from([(60, 300), (60, 3600), (60, 900), (300, 900), (1, 60), (60, 86400)]),
    sessions,
    volume_modes,
    st.data(),
)
def test_resample_equals_reference_and_direct_build(
    timeframes: tuple[int, int], session: dict[str, Any], mode: str, data: st.DataObject
) -> None:
    fine_tf, coarse_tf = timeframes
    # Arrival in time order, so a tick late at the fine timeframe is late at the coarse one too.
    ticks = data.draw(tick_streams(disorder=False, volume_mode=mode), label="ticks")
    args = (ticks.ts, ticks.price, ticks.qty)
    kwargs = {"symbol": ticks.symbol, "volume_mode": mode, **session}
    fine = build_bars(*args, timeframe_s=fine_tf, **kwargs)
    coarse = build_bars(*args, timeframe_s=coarse_tf, **kwargs)
    out = resample_bars(fine, coarse_tf, **session)
    assert columns_to_bars(out) == ref_resample(columns_to_bars(fine), coarse_tf, **session)
    for k in (*COLUMNS, "symbol"):
        np.testing.assert_array_equal(out[k], coarse[k], err_msg=k)
