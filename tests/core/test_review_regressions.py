"""Regressions for defects found in review of the Rust core (each failed before its fix)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import talib

from mental_trader.core import BarBuilder, Engine, build_bars, crossovers, ema, resample_bars
from mental_trader.errors import InvalidInputError

from ._reference import ist_ns


def test_flat_price_never_crosses() -> None:
    """`(1-a)*ema + a*x` wobbled by an ulp on a flat price and made EMA 8/21 cross."""
    x = np.array([3862.32] + [3844.9] * 2000)
    fast, slow = ema(x, 8), ema(x, 21)
    assert not crossovers(fast, slow).any()
    np.testing.assert_allclose(fast, talib.EMA(x, timeperiod=8), rtol=1e-12)
    # Once settled, each EMA is a fixed point: it stops moving.
    assert np.unique(fast[-100:]).size == 1
    assert np.unique(slow[-100:]).size == 1


def test_flat_price_never_crosses_in_the_engine() -> None:
    ts = np.array([ist_ns(9, 15) + i * 60_000_000_000 for i in range(301)], dtype=np.int64)
    px = np.array([3862.32] + [3844.9] * 300)
    out = Engine(60, 300, 8, 21, session_start=None).on_ticks(ts, px, np.ones(301), flush=True)
    assert not out["primary"]["cross"].any()


def test_ticks_after_flush_in_the_same_confirm_bucket_are_late() -> None:
    """flush() closed the 09:15-09:20 confirm bar; a 09:16 primary bar must not reopen it."""
    e = Engine(60, 300, 2, 3)
    e.on_tick(1, ist_ns(9, 15), 100.0, 1.0)
    assert len(e.flush()) == 2
    for m in (16, 17, 18):
        assert e.on_tick(1, ist_ns(9, m), 101.0, 1.0) is None
    assert e.dropped["late"] == 3
    e.on_tick(1, ist_ns(9, 20), 102.0, 1.0)
    events = e.flush()
    assert [(ev.is_confirm, ev.bar.ts) for ev in events] == [
        (False, ist_ns(9, 20)),
        (True, ist_ns(9, 20)),
    ]


def test_batch_chunks_with_flush_continue() -> None:
    e = Engine(60, 300, 2, 3)
    ts1 = np.array([ist_ns(9, 15), ist_ns(9, 16)], dtype=np.int64)
    e.on_ticks(ts1, np.array([100.0, 101.0]), np.ones(2), flush=True)
    ts2 = np.array([ist_ns(9, 17), ist_ns(9, 21)], dtype=np.int64)
    out = e.on_ticks(ts2, np.array([102.0, 103.0]), np.ones(2), flush=True)
    assert out["primary"]["ts"].tolist() == [ist_ns(9, 21)]
    assert e.dropped["late"] == 1


@pytest.mark.parametrize(
    ("column", "value"),
    [("open", np.nan), ("high", np.nan), ("close", np.inf), ("low", -5.0), ("volume", -1.0)],
)
def test_resample_rejects_impossible_bars(column: str, value: float) -> None:
    ts = np.array([ist_ns(9, 15), ist_ns(9, 16)], dtype=np.int64)
    bars = build_bars(ts, np.array([10.0, 11.0]), np.ones(2))
    bars[column] = bars[column].copy()
    bars[column][0] = value
    with pytest.raises(InvalidInputError, match="bar at index 0"):
        resample_bars(bars, 300)


def test_resample_rejects_negative_ticks() -> None:
    ts = np.array([ist_ns(9, 15)], dtype=np.int64)
    bars = build_bars(ts, np.array([10.0]), np.ones(1))
    bars["ticks"] = np.array([-7], dtype=np.int64)
    with pytest.raises(InvalidInputError, match="ticks"):
        resample_bars(bars, 300)


@pytest.mark.parametrize(
    "call",
    [
        lambda: build_bars(*_one_tick(), timeframe_s=2**63),
        lambda: build_bars(*_one_tick(), utc_offset_minutes=-(2**63)),
        lambda: build_bars(*_one_tick(), utc_offset_minutes=-(2**64)),
        lambda: BarBuilder(grace_ms=2**63),
        lambda: BarBuilder(utc_offset_minutes=-(2**63)),
        lambda: Engine(fast=2**63),
        lambda: Engine(timeframe_s=-(2**63) - 1),
        lambda: Engine().on_tick(0, ist_ns(9, 15), 2**1024, 1.0),
        lambda: BarBuilder().on_tick(0, ist_ns(9, 15), 1.0, 2**1024),
    ],
)
def test_out_of_range_arguments_are_value_errors(call: Callable[[], object]) -> None:
    with pytest.raises(InvalidInputError):
        call()


def test_snapshot_with_trailing_bytes_is_rejected() -> None:
    e = Engine()
    e.on_tick(1, ist_ns(9, 15), 10.0, 1.0)
    with pytest.raises(InvalidInputError, match="trailing"):
        Engine.from_snapshot(e.snapshot() + b"\x00" * 100)


def _one_tick() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.array([ist_ns(9, 15)], dtype=np.int64), np.array([10.0]), np.array([1.0])
