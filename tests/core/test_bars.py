"""``build_bars``, ``BarBuilder`` and ``Bar``: hand-built cases and the pure-Python reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mental_trader.core import Bar, BarBuilder, build_bars

from ._data import Ticks, sessions, tick_streams, volume_modes
from ._reference import (
    COLUMNS,
    NS,
    RefBar,
    RefBarBuilder,
    columns_to_bars,
    ist_ns,
    local_ns,
    ref_build_bars,
)

Row = tuple[int, float, float, float, float, float, int]  # ts, o, h, l, c, volume, ticks
SymRow = tuple[int, int, float, float, float, float, float, int]  # symbol first
Tick = tuple[int, float, float]  # ts, price, qty


def bars_of(ticks: list[Tick], **kwargs: Any) -> list[Row]:
    """``build_bars`` on single-symbol ticks, checked against the reference, as rows."""
    ts = np.array([t[0] for t in ticks], dtype=np.int64)
    price = np.array([t[1] for t in ticks], dtype=np.float64)
    qty = np.array([t[2] for t in ticks], dtype=np.float64)
    cols = build_bars(ts, price, qty, **kwargs)
    assert set(cols) == set(COLUMNS)
    got = [b.row()[1:] for b in columns_to_bars(cols)]
    ref = [b.row()[1:] for b in ref_build_bars(ts.tolist(), price.tolist(), qty.tolist(), **kwargs)]
    assert got == ref, "build_bars disagrees with the reference"
    return got


def sym_bars_of(ticks: list[tuple[int, int, float, float]], **kwargs: Any) -> list[SymRow]:
    sym = np.array([t[0] for t in ticks], dtype=np.int64)
    ts = np.array([t[1] for t in ticks], dtype=np.int64)
    price = np.array([t[2] for t in ticks], dtype=np.float64)
    qty = np.array([t[3] for t in ticks], dtype=np.float64)
    cols = build_bars(ts, price, qty, symbol=sym, **kwargs)
    assert set(cols) == {*COLUMNS, "symbol"}
    got = [b.row() for b in columns_to_bars(cols)]
    ref = ref_build_bars(ts.tolist(), price.tolist(), qty.tolist(), sym.tolist(), **kwargs)
    assert got == [b.row() for b in ref], "build_bars disagrees with the reference"
    return got


def as_ref(bar: Bar) -> RefBar:
    return RefBar(bar.symbol, bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ticks)


def brow(bar: Bar) -> Row:
    return as_ref(bar).row()[1:]


# ------------------------------------------------------------------------- anchoring


def test_one_minute_bars() -> None:
    ticks = [
        (ist_ns(9, 15, 0), 100.0, 1.0),
        (ist_ns(9, 15, 30), 101.0, 2.0),
        (ist_ns(9, 15, 59, 999_999_999), 99.0, 3.0),
        (ist_ns(9, 16, 0), 102.0, 1.0),
        (ist_ns(9, 17, 10), 103.0, 5.0),
    ]
    assert bars_of(ticks) == [
        (ist_ns(9, 15), 100.0, 101.0, 99.0, 99.0, 6.0, 3),
        (ist_ns(9, 16), 102.0, 102.0, 102.0, 102.0, 1.0, 1),
        (ist_ns(9, 17), 103.0, 103.0, 103.0, 103.0, 5.0, 1),
    ]


def test_hourly_bars_run_0915_to_1530() -> None:
    ticks = [
        (ist_ns(9, 15), 100.0, 1.0),
        (ist_ns(10, 14, 59, 999_999_999), 105.0, 1.0),
        (ist_ns(10, 15), 106.0, 2.0),
        (ist_ns(13, 0), 90.0, 1.0),
        (ist_ns(15, 14, 59), 95.0, 1.0),
        (ist_ns(15, 15), 96.0, 1.0),
        (ist_ns(15, 29, 59, 999_999_999), 97.0, 3.0),
    ]
    assert bars_of(ticks, timeframe_s=3600) == [
        (ist_ns(9, 15), 100.0, 105.0, 100.0, 105.0, 2.0, 2),
        (ist_ns(10, 15), 106.0, 106.0, 106.0, 106.0, 2.0, 1),
        (ist_ns(12, 15), 90.0, 90.0, 90.0, 90.0, 1.0, 1),
        (ist_ns(14, 15), 95.0, 95.0, 95.0, 95.0, 1.0, 1),
        (ist_ns(15, 15), 96.0, 97.0, 96.0, 97.0, 4.0, 2),
    ]


@pytest.mark.parametrize(
    ("timeframe_s", "tick", "bucket"),
    [
        (180, (9, 17, 59), (9, 15)),
        (180, (9, 18, 0), (9, 18)),
        (300, (9, 19, 59), (9, 15)),
        (300, (9, 20, 0), (9, 20)),
        (300, (15, 29, 59), (15, 25)),
        (900, (9, 29, 59), (9, 15)),
        (900, (9, 30, 0), (9, 30)),
        (900, (15, 20, 0), (15, 15)),
        (1800, (15, 20, 0), (15, 15)),
        (420, (15, 29, 0), (15, 26)),  # 7m does not divide the session: 15:26-15:30
        (86400, (15, 29, 0), (9, 15)),  # one bar per session
        (1, (12, 0, 7), (12, 0, 7)),
    ],
)
def test_buckets_are_anchored_at_the_session_open(
    timeframe_s: int, tick: tuple[int, ...], bucket: tuple[int, ...]
) -> None:
    got = bars_of([(ist_ns(*tick), 50.0, 1.0)], timeframe_s=timeframe_s)
    assert [r[0] for r in got] == [ist_ns(*bucket)]


def test_session_edges() -> None:
    ticks = [
        (ist_ns(9, 14, 59, 999_999_999), 1.0, 1.0),  # dropped
        (ist_ns(9, 15, 0), 2.0, 1.0),  # kept: the open is inclusive
        (ist_ns(15, 29, 59, 999_999_999), 3.0, 1.0),  # kept
        (ist_ns(15, 30, 0), 4.0, 1.0),  # dropped: the close is exclusive
        (ist_ns(8, 0), 5.0, 1.0),
        (ist_ns(20, 0), 6.0, 1.0),
        (ist_ns(0, 0), 7.0, 1.0),
    ]
    assert bars_of(ticks) == [
        (ist_ns(9, 15), 2.0, 2.0, 2.0, 2.0, 1.0, 1),
        (ist_ns(15, 29), 3.0, 3.0, 3.0, 3.0, 1.0, 1),
    ]
    builder = BarBuilder()
    for ts, price, qty in ticks:
        builder.on_tick(0, ts, price, qty)
    assert builder.dropped == {"out_of_session": 5, "late": 0}


def test_out_of_session_tick_closes_nothing() -> None:
    b = BarBuilder()
    assert b.on_tick(0, ist_ns(15, 29, 10), 10.0, 1.0) == []
    assert b.on_tick(0, ist_ns(15, 30, 0), 11.0, 1.0) == []
    assert b.on_tick(0, ist_ns(16, 0, 0), 12.0, 1.0) == []
    cur = b.current(0)
    assert cur is not None
    assert brow(cur) == (ist_ns(15, 29), 10.0, 10.0, 10.0, 10.0, 1.0, 1)
    closed = b.on_tick(0, ist_ns(9, 15, 1, day=1), 13.0, 1.0)
    assert [brow(x) for x in closed] == [(ist_ns(15, 29), 10.0, 10.0, 10.0, 10.0, 1.0, 1)]
    assert b.dropped == {"out_of_session": 2, "late": 0}


# --------------------------------------------------------------------- late, disorder


def test_late_tick_is_dropped_and_counted() -> None:
    ticks = [
        (ist_ns(9, 15, 10), 100.0, 1.0),
        (ist_ns(9, 16, 5), 101.0, 1.0),
        (ist_ns(9, 15, 59, 999_999_999), 500.0, 7.0),  # late: its bar is closed
        (ist_ns(9, 16, 30), 102.0, 1.0),
    ]
    expected = [
        (ist_ns(9, 15), 100.0, 100.0, 100.0, 100.0, 1.0, 1),
        (ist_ns(9, 16), 101.0, 102.0, 101.0, 102.0, 2.0, 2),
    ]
    assert bars_of(ticks) == expected

    b = BarBuilder()
    out = [b.on_tick(0, *t) for t in ticks]
    assert [[brow(x) for x in o] for o in out] == [[], [expected[0]], [], []]
    assert b.dropped == {"out_of_session": 0, "late": 1}
    assert [brow(x) for x in b.flush()] == [expected[1]]


def test_out_of_order_within_the_open_bucket() -> None:
    ticks = [
        (ist_ns(9, 15, 30), 100.0, 1.0),  # first by arrival -> open
        (ist_ns(9, 15, 10), 95.0, 1.0),  # earlier stamp, later arrival: low
        (ist_ns(9, 15, 50), 105.0, 1.0),  # high
        (ist_ns(9, 15, 5), 101.0, 1.0),  # last by arrival -> close, though earliest stamp
    ]
    assert bars_of(ticks) == [(ist_ns(9, 15), 100.0, 105.0, 95.0, 101.0, 4.0, 4)]
    b = BarBuilder()
    for t in ticks:
        assert b.on_tick(0, *t) == []
    assert b.dropped == {"out_of_session": 0, "late": 0}


# ----------------------------------------------------------------------------- volume


def test_cumulative_volume_two_days_reset_and_dropped_ticks() -> None:
    ticks = [
        (ist_ns(9, 14, 0), 99.0, 500.0),  # out of session: must not move the baseline
        (ist_ns(9, 15, 10), 100.0, 100.0),  # +100 (day starts at 0)
        (ist_ns(9, 15, 40), 101.0, 150.0),  # +50
        (ist_ns(9, 16, 10), 102.0, 180.0),  # +30
        (ist_ns(9, 15, 55), 103.0, 1000.0),  # late: must not move the baseline
        (ist_ns(9, 16, 20), 104.0, 30.0),  # decrease = reset: +30
        (ist_ns(9, 17, 0), 105.0, 50.0),  # +20
        (ist_ns(9, 15, 5, day=1), 106.0, 80.0),  # new local day: +80 (not 80 - 50)
        (ist_ns(9, 15, 30, day=1), 107.0, 110.0),  # +30
    ]
    assert bars_of(ticks, volume_mode="cumulative") == [
        (ist_ns(9, 15), 100.0, 101.0, 100.0, 101.0, 150.0, 2),
        (ist_ns(9, 16), 102.0, 104.0, 102.0, 104.0, 60.0, 2),
        (ist_ns(9, 17), 105.0, 105.0, 105.0, 105.0, 20.0, 1),
        (ist_ns(9, 15, day=1), 106.0, 107.0, 106.0, 107.0, 110.0, 2),
    ]
    # the same ticks in trade mode: plain sums
    assert [r[5] for r in bars_of(ticks)] == [250.0, 210.0, 50.0, 190.0]


def test_cumulative_day_is_the_local_day() -> None:
    # With no session filter, 05:29:59 and 05:30:00 IST straddle UTC midnight but are one IST
    # day (no reset); 23:59:30 and 00:00:10 IST are two IST days (reset).
    ticks = [
        (ist_ns(5, 29, 59), 10.0, 100.0),
        (ist_ns(5, 30, 0), 10.0, 130.0),
        (ist_ns(23, 59, 30), 10.0, 500.0),
        (ist_ns(0, 0, 10, day=1), 10.0, 600.0),
    ]
    got = bars_of(ticks, session_start=None, session_end=None, volume_mode="cumulative")
    assert [(r[0], r[5]) for r in got] == [
        (ist_ns(5, 29), 100.0),
        (ist_ns(5, 30), 30.0),
        (ist_ns(23, 59), 370.0),
        (ist_ns(0, 0, day=1), 600.0),
    ]


def test_cumulative_volume_per_symbol() -> None:
    ticks = [
        (1, ist_ns(9, 15, 1), 10.0, 100.0),
        (2, ist_ns(9, 15, 2), 20.0, 7.0),
        (1, ist_ns(9, 16, 1), 10.0, 160.0),
        (2, ist_ns(9, 16, 2), 20.0, 9.0),
    ]
    got = sym_bars_of(ticks, volume_mode="cumulative")
    assert [(r[0], r[1], r[6]) for r in got] == [
        (1, ist_ns(9, 15), 100.0),
        (2, ist_ns(9, 15), 7.0),
        (1, ist_ns(9, 16), 60.0),
        (2, ist_ns(9, 16), 2.0),
    ]


# ------------------------------------------------------------------ session variants


def test_no_session_anchors_at_local_midnight() -> None:
    ticks = [
        (ist_ns(3, 0), 1.0, 1.0),
        (ist_ns(9, 20), 2.0, 1.0),
        (ist_ns(23, 59, 59), 3.0, 1.0),
        (ist_ns(0, 0, day=1), 4.0, 1.0),
    ]
    got = bars_of(ticks, timeframe_s=3600, session_start=None)
    assert [r[0] for r in got] == [
        ist_ns(3, 0),
        ist_ns(9, 0),  # not 09:15: no session anchoring
        ist_ns(23, 0),
        ist_ns(0, 0, day=1),
    ]
    b = BarBuilder(3600, session_start=None)
    for t in ticks:
        b.on_tick(0, *t)
    assert b.dropped == {"out_of_session": 0, "late": 0}


def test_no_session_buckets_restart_each_local_midnight() -> None:
    # 7-minute buckets from local midnight: 09:15 -> 09:13, 23:58 -> 23:55 (truncated at
    # midnight), and the next day starts again at 00:00 (not 00:02).
    ticks = [
        (ist_ns(9, 15), 1.0, 1.0),
        (ist_ns(23, 58), 2.0, 1.0),
        (ist_ns(0, 1, day=1), 3.0, 1.0),
    ]
    got = bars_of(ticks, timeframe_s=420, session_start=None, session_end=None)
    assert [r[0] for r in got] == [ist_ns(9, 13), ist_ns(23, 55), ist_ns(0, 0, day=1)]


def test_other_utc_offset_and_session() -> None:
    def est(h: int, m: int, s: int = 0) -> int:
        return local_ns(h, m, s, offset_min=-300)

    kwargs: dict[str, Any] = {
        "timeframe_s": 3600,
        "session_start": "09:30",
        "session_end": "16:00",
        "utc_offset_minutes": -300,
    }
    ticks = [
        (est(9, 29, 59), 1.0, 1.0),  # dropped
        (est(9, 30), 2.0, 1.0),
        (est(10, 29, 59), 3.0, 1.0),
        (est(15, 59, 59), 4.0, 1.0),
        (est(16, 0), 5.0, 1.0),  # dropped
    ]
    assert bars_of(ticks, **kwargs) == [
        (est(9, 30), 2.0, 3.0, 2.0, 3.0, 2.0, 2),
        (est(15, 30), 4.0, 4.0, 4.0, 4.0, 1.0, 1),
    ]
    assert est(9, 30) == ist_ns(20, 0)  # the same instant seen from IST


def test_utc_offset_zero() -> None:
    def utc(h: int, m: int) -> int:
        return local_ns(h, m, offset_min=0)

    ticks = [(utc(3, 45), 1.0, 1.0), (utc(9, 15), 2.0, 1.0), (utc(15, 29), 3.0, 1.0)]
    got = bars_of(ticks, timeframe_s=3600, utc_offset_minutes=0)
    assert [r[0] for r in got] == [utc(9, 15), utc(15, 15)]


# ------------------------------------------------------------------------ multi-symbol


def test_rows_ordered_by_ts_then_symbol() -> None:
    ticks = [
        (2, ist_ns(9, 15, 10), 20.0, 1.0),
        (1, ist_ns(9, 15, 20), 10.0, 1.0),
        (2, ist_ns(9, 16, 5), 21.0, 1.0),
        (1, ist_ns(9, 15, 40), 11.0, 1.0),
        (3, ist_ns(9, 15, 59), 30.0, 1.0),
        (1, ist_ns(9, 16, 50), 12.0, 1.0),
    ]
    got = sym_bars_of(ticks)
    assert [(r[0], r[1], r[7]) for r in got] == [
        (1, ist_ns(9, 15), 2),
        (2, ist_ns(9, 15), 1),
        (3, ist_ns(9, 15), 1),
        (1, ist_ns(9, 16), 1),
        (2, ist_ns(9, 16), 1),
    ]


def test_late_is_per_symbol() -> None:
    # symbol 2 at 09:16 does not make symbol 1's 09:15 tick late
    ticks = [
        (1, ist_ns(9, 15, 10), 10.0, 1.0),
        (2, ist_ns(9, 16, 10), 20.0, 1.0),
        (1, ist_ns(9, 15, 20), 11.0, 1.0),
    ]
    got = sym_bars_of(ticks)
    assert [(r[0], r[1], r[7]) for r in got] == [(1, ist_ns(9, 15), 2), (2, ist_ns(9, 16), 1)]


def test_columns_dtypes_and_no_symbol_key() -> None:
    ts = np.array([ist_ns(9, 15, 1), ist_ns(9, 16, 1)], dtype=np.int64)
    price = np.array([10.0, 11.0])
    qty = np.array([1.0, 2.0])
    cols = build_bars(ts, price, qty)
    assert set(cols) == set(COLUMNS)
    assert "symbol" not in cols
    for k in ("ts", "ticks"):
        assert cols[k].dtype == np.int64
    for k in ("open", "high", "low", "close", "volume"):
        assert cols[k].dtype == np.float64
    assert all(len(v) == 2 for v in cols.values())
    with_sym = build_bars(ts, price, qty, symbol=np.zeros(2, dtype=np.int64))
    assert with_sym["symbol"].dtype == np.int64
    assert with_sym["symbol"].tolist() == [0, 0]
    for k in COLUMNS:
        np.testing.assert_array_equal(with_sym[k], cols[k])


def test_empty_input() -> None:
    empty_i = np.array([], dtype=np.int64)
    empty_f = np.array([], dtype=np.float64)
    cols = build_bars(empty_i, empty_f, empty_f, symbol=empty_i)
    assert set(cols) == {*COLUMNS, "symbol"}
    assert all(len(v) == 0 for v in cols.values())


def test_all_ticks_dropped_gives_no_rows() -> None:
    ts = np.array([ist_ns(8, 0), ist_ns(16, 0)], dtype=np.int64)
    cols = build_bars(ts, np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    assert all(len(v) == 0 for v in cols.values())


def test_inputs_not_mutated(make_ticks: Any) -> None:
    t: Ticks = make_ticks(500, seed=3, n_symbols=3, jitter_ms=2_000)
    copies = [a.copy() for a in (t.ts, t.price, t.qty, t.symbol)]
    build_bars(t.ts, t.price, t.qty, symbol=t.symbol)
    for a, c in zip((t.ts, t.price, t.qty, t.symbol), copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_synthetic_day_matches_reference(make_ticks: Any) -> None:
    t: Ticks = make_ticks(20_000, seed=5, n_symbols=4, mean_gap_ms=1_300, jitter_ms=1_500)
    for mode in ("trade", "cumulative"):
        qty = t.qty if mode == "trade" else np.ascontiguousarray(np.cumsum(t.qty))
        for tf in (60, 300, 3600):
            cols = build_bars(t.ts, t.price, qty, symbol=t.symbol, timeframe_s=tf, volume_mode=mode)
            ref = ref_build_bars(
                t.ts.tolist(),
                t.price.tolist(),
                qty.tolist(),
                t.symbol.tolist(),
                timeframe_s=tf,
                volume_mode=mode,
            )
            assert columns_to_bars(cols) == ref


# ------------------------------------------------------------------------------- Bar


def test_bar_value_type() -> None:
    bar = Bar(3, ist_ns(9, 15), 10.0, 12.0, 9.5, 11.0, 42.0, 7)
    assert (bar.symbol, bar.ts, bar.open, bar.high, bar.low, bar.close) == (
        3,
        ist_ns(9, 15),
        10.0,
        12.0,
        9.5,
        11.0,
    )
    assert (bar.volume, bar.ticks) == (42.0, 7)
    same = Bar(3, ist_ns(9, 15), 10.0, 12.0, 9.5, 11.0, 42.0, 7)
    other = Bar(3, ist_ns(9, 15), 10.0, 12.0, 9.5, 11.0, 42.0, 8)
    assert bar == same
    assert hash(bar) == hash(same)
    assert bar != other
    assert len({bar, same, other}) == 2
    assert bar.to_dict() == {
        "symbol": 3,
        "ts": ist_ns(9, 15),
        "open": 10.0,
        "high": 12.0,
        "low": 9.5,
        "close": 11.0,
        "volume": 42.0,
        "ticks": 7,
    }
    with pytest.raises(AttributeError):
        bar.close = 1.0  # type: ignore[misc]


# ------------------------------------------------------------------------ BarBuilder


def test_builder_on_tick_returns_the_closed_bar() -> None:
    b = BarBuilder(60)
    assert b.timeframe_s == 60
    assert b.on_tick(7, ist_ns(9, 15, 1), 10.0, 2.0) == []
    assert b.on_tick(7, ist_ns(9, 15, 9), 11.0, 3.0) == []
    closed = b.on_tick(7, ist_ns(9, 16, 0), 12.0, 1.0)
    assert closed == [Bar(7, ist_ns(9, 15), 10.0, 11.0, 10.0, 11.0, 5.0, 2)]
    assert b.current(7) == Bar(7, ist_ns(9, 16), 12.0, 12.0, 12.0, 12.0, 1.0, 1)
    assert b.current(8) is None


def test_builder_current_does_not_close() -> None:
    b = BarBuilder(60)
    b.on_tick(1, ist_ns(9, 15, 1), 10.0, 1.0)
    first = b.current(1)
    assert first == b.current(1)
    b.on_tick(1, ist_ns(9, 15, 2), 9.0, 1.0)
    assert b.current(1) == Bar(1, ist_ns(9, 15), 10.0, 10.0, 9.0, 9.0, 2.0, 2)
    assert b.flush() == [Bar(1, ist_ns(9, 15), 10.0, 10.0, 9.0, 9.0, 2.0, 2)]


def test_builder_on_time_respects_grace() -> None:
    b = BarBuilder(60, grace_ms=1000)
    b.on_tick(1, ist_ns(9, 15, 10), 10.0, 1.0)
    end = ist_ns(9, 16)
    assert b.on_time(end) == []
    assert b.on_time(end + 1_000_000_000) == []  # end + grace is not strictly before now
    closed = b.on_time(end + 1_000_000_001)
    assert closed == [Bar(1, ist_ns(9, 15), 10.0, 10.0, 10.0, 10.0, 1.0, 1)]
    assert b.current(1) is None
    assert b.on_time(end + 10 * NS) == []
    # a tick for the timer-closed bucket is late
    assert b.on_tick(1, ist_ns(9, 15, 59), 11.0, 1.0) == []
    assert b.dropped == {"out_of_session": 0, "late": 1}
    # the next bucket opens normally and closes nothing (its predecessor is already closed)
    assert b.on_tick(1, ist_ns(9, 16, 2), 12.0, 1.0) == []
    assert b.flush() == [Bar(1, ist_ns(9, 16), 12.0, 12.0, 12.0, 12.0, 1.0, 1)]


def test_builder_tick_in_a_bucket_the_clock_closed_is_late() -> None:
    b = BarBuilder(60, grace_ms=1000)
    b.on_tick(1, ist_ns(9, 19, 53), 10.0, 1.0)
    assert [x.ts for x in b.on_time(ist_ns(9, 22, 50))] == [ist_ns(9, 19)]
    # 09:20 and 09:21 had no bar, but the clock passed their end + grace: late
    assert b.on_tick(1, ist_ns(9, 20, 0, 800_000_000), 11.0, 1.0) == []
    assert b.on_tick(2, ist_ns(9, 21, 40), 11.0, 1.0) == []  # the clock is shared
    assert b.dropped == {"out_of_session": 0, "late": 2}
    # 09:22 ends 09:23: still open for ticks
    assert b.on_tick(1, ist_ns(9, 22, 10), 12.0, 1.0) == []
    b.on_time(ist_ns(9, 16))  # the clock never goes back
    assert b.on_tick(3, ist_ns(9, 21, 40), 11.0, 1.0) == []
    assert b.dropped == {"out_of_session": 0, "late": 3}
    assert b.flush() == [Bar(1, ist_ns(9, 22), 12.0, 12.0, 12.0, 12.0, 1.0, 1)]


def test_builder_clock_boundary_is_strict() -> None:
    b = BarBuilder(60, grace_ms=1000)
    b.on_time(ist_ns(9, 21, 1))  # 09:20 ends 09:21; + grace == now: not closed
    assert b.on_tick(1, ist_ns(9, 20, 10), 11.0, 1.0) == []
    assert b.current(1) is not None
    assert b.dropped["late"] == 0
    b.on_time(ist_ns(9, 21, 1) + 1)
    assert b.on_tick(2, ist_ns(9, 20, 10), 11.0, 1.0) == []
    assert b.current(2) is None
    assert b.dropped["late"] == 1


def test_builder_on_time_grace_zero_and_many_symbols() -> None:
    b = BarBuilder(60, grace_ms=0)
    b.on_tick(2, ist_ns(9, 15, 10), 20.0, 1.0)
    b.on_tick(1, ist_ns(9, 16, 10), 10.0, 1.0)
    b.on_tick(3, ist_ns(9, 15, 30), 30.0, 1.0)
    assert b.on_time(ist_ns(9, 16)) == []
    closed = b.on_time(ist_ns(9, 16) + 1)
    assert [(x.symbol, x.ts) for x in closed] == [(2, ist_ns(9, 15)), (3, ist_ns(9, 15))]
    assert b.current(1) is not None
    assert [(x.symbol, x.ts) for x in b.on_time(ist_ns(9, 30))] == [(1, ist_ns(9, 16))]


def test_builder_on_time_uses_the_truncated_last_bucket() -> None:
    b = BarBuilder(3600, grace_ms=1000)
    b.on_tick(1, ist_ns(15, 20), 10.0, 1.0)
    assert b.on_time(ist_ns(15, 30, 1)) == []
    closed = b.on_time(ist_ns(15, 30, 1) + 1)  # 15:15 bar ends at 15:30, not 16:15
    assert closed == [Bar(1, ist_ns(15, 15), 10.0, 10.0, 10.0, 10.0, 1.0, 1)]


def test_builder_flush_orders_and_closes_everything() -> None:
    b = BarBuilder(60)
    b.on_tick(5, ist_ns(9, 16, 1), 50.0, 1.0)
    b.on_tick(4, ist_ns(9, 15, 1), 40.0, 1.0)
    b.on_tick(3, ist_ns(9, 16, 1), 30.0, 1.0)
    assert [(x.symbol, x.ts) for x in b.flush()] == [
        (4, ist_ns(9, 15)),
        (3, ist_ns(9, 16)),
        (5, ist_ns(9, 16)),
    ]
    assert b.flush() == []
    assert b.current(3) is None
    # a closed bar is never changed: its bucket is late now
    assert b.on_tick(3, ist_ns(9, 16, 30), 31.0, 1.0) == []
    assert b.dropped["late"] == 1
    assert b.flush() == []


def test_builder_dropped_keys() -> None:
    assert BarBuilder().dropped == {"out_of_session": 0, "late": 0}


# ------------------------------------------------------------------------- properties


timeframes = st.sampled_from([1, 60, 180, 300, 420, 3600, 86400])


@given(timeframes, sessions, volume_modes, st.data())
def test_build_bars_matches_reference(
    timeframe_s: int, session: dict[str, Any], mode: str, data: st.DataObject
) -> None:
    ticks = data.draw(tick_streams(volume_mode=mode), label="ticks")
    kwargs = {"timeframe_s": timeframe_s, "volume_mode": mode, **session}
    cols = build_bars(ticks.ts, ticks.price, ticks.qty, symbol=ticks.symbol, **kwargs)
    ref = ref_build_bars(
        ticks.ts.tolist(), ticks.price.tolist(), ticks.qty.tolist(), ticks.symbol.tolist(), **kwargs
    )
    assert columns_to_bars(cols) == ref


@given(tick_streams(max_symbols=1), st.sampled_from([60, 300]))
def test_build_bars_without_symbol(ticks: Ticks, timeframe_s: int) -> None:
    cols = build_bars(ticks.ts, ticks.price, ticks.qty, timeframe_s=timeframe_s)
    assert "symbol" not in cols
    ref = ref_build_bars(
        ticks.ts.tolist(), ticks.price.tolist(), ticks.qty.tolist(), timeframe_s=timeframe_s
    )
    assert columns_to_bars(cols) == ref


@given(
    tick_streams(max_ticks=60),
    st.sampled_from([60, 300, 420, 1800, 3600]),
    sessions,
    st.sampled_from([0, 1000, 30_000]),
    st.lists(
        st.one_of(st.integers(-5_000, 400_000), st.integers(0, 4_000_000)),
        min_size=60,
        max_size=60,
    ),
)
def test_builder_matches_reference_step_by_step(
    ticks: Ticks,
    timeframe_s: int,
    session: dict[str, Any],
    grace_ms: int,
    clock_lag_ms: list[int],
) -> None:
    """Per call: the same closed bars, open bar and counters, with timer closes in between."""
    b = BarBuilder(timeframe_s, grace_ms=grace_ms, **session)
    r = RefBarBuilder(timeframe_s, grace_ms=grace_ms, **session)
    for i, (sym, ts, price, qty) in enumerate(ticks.rows()):
        assert [as_ref(x) for x in b.on_tick(sym, ts, price, qty)] == r.on_tick(sym, ts, price, qty)
        if i % 3 == 2:
            now = ts + clock_lag_ms[i] * 1_000_000
            assert [as_ref(x) for x in b.on_time(now)] == r.on_time(now)
        cur = b.current(sym)
        assert (None if cur is None else as_ref(cur)) == r.current(sym)
        assert b.dropped == r.dropped
    assert [as_ref(x) for x in b.flush()] == r.flush()
