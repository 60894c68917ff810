"""``Engine``: the fused live path against the batch functions, the reference and itself."""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mental_trader.core import (
    Bar,
    BarEvent,
    Engine,
    build_bars,
    crossovers,
    ema,
    resample_bars,
)
from mental_trader.errors import InvalidInputError

from ._data import Ticks, sessions, tick_streams, volume_modes
from ._reference import (
    RefBar,
    RefEngine,
    RefEvent,
    columns_to_bars,
    ist_ns,
)

EVENT_COLUMNS = {
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "ticks",
    "symbol",
    "ema_fast",
    "ema_slow",
    "cross",
    "end_ns",
    "confirm_trend",
}

EventRow = tuple[Any, ...]


def as_ref(bar: Bar) -> RefBar:
    return RefBar(bar.symbol, bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ticks)


def row(e: BarEvent) -> EventRow:
    return (
        e.is_confirm,
        e.symbol,
        e.timeframe_s,
        as_ref(e.bar),
        e.ema_fast,
        e.ema_slow,
        e.cross,
        e.end_ns,
        e.confirm_trend,
    )


def ref_row(e: RefEvent) -> EventRow:
    return (
        e.is_confirm,
        e.symbol,
        e.timeframe_s,
        e.bar,
        e.ema_fast,
        e.ema_slow,
        e.cross,
        e.end_ns,
        e.confirm_trend,
    )


def close_enough(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)


def assert_events_match(got: list[BarEvent], want: list[RefEvent]) -> None:
    """Same events in the same order; EMA values to 1e-12 relative, everything else exact."""
    g = [row(e) for e in got]
    w = [ref_row(e) for e in want]
    assert [x[:4] + x[6:] for x in g] == [x[:4] + x[6:] for x in w]
    for x, y in zip(g, w, strict=True):
        assert close_enough(x[4], y[4]), (x, y)
        assert close_enough(x[5], y[5]), (x, y)


def run(engine: Engine, ticks: list[tuple[int, int, float, float]]) -> list[BarEvent]:
    events: list[BarEvent] = []
    for sym, ts, price, qty in ticks:
        out = engine.on_tick(sym, ts, price, qty)
        assert out is None or len(out) > 0, "on_tick returns None, not [], when nothing closed"
        events += out or []
    return events


def batch_rows(cols: dict[str, Any]) -> list[EventRow]:
    """``on_ticks`` columns as ``(symbol, bar, ema_fast, ema_slow, cross)`` rows."""
    assert set(cols) == EVENT_COLUMNS
    assert cols["cross"].dtype == np.int8
    assert cols["ema_fast"].dtype == np.float64
    assert cols["ema_slow"].dtype == np.float64
    assert cols["confirm_trend"].dtype == np.int8
    bars = columns_to_bars(cols)
    out: list[EventRow] = []
    for i, bar in enumerate(bars):
        f, s = float(cols["ema_fast"][i]), float(cols["ema_slow"][i])
        out.append(
            (
                bar.symbol,
                bar,
                None if math.isnan(f) else f,
                None if math.isnan(s) else s,
                int(cols["cross"][i]),
                int(cols["end_ns"][i]),
                int(cols["confirm_trend"][i]),
            )
        )
    return out


def stream_rows(events: list[BarEvent], confirm: bool) -> list[EventRow]:
    return [
        (e.symbol, as_ref(e.bar), e.ema_fast, e.ema_slow, e.cross, e.end_ns, e.confirm_trend)
        for e in events
        if e.is_confirm == confirm
    ]


def bar_order(b: RefBar) -> tuple[int, int]:
    return (b.ts, b.symbol)


def event_order(r: EventRow) -> tuple[bool, int, int]:
    """Events closed by one timer call or flush: their order across symbols is free."""
    return (r[0], r[3].ts, r[1])


def check_against_batch_functions(events: list[BarEvent], ticks: Ticks, p: dict[str, Any]) -> None:
    """Primary bars == build_bars, confirm bars == resample_bars, EMAs == ema, crosses."""
    session = {k: p[k] for k in ("session_start", "session_end", "utc_offset_minutes") if k in p}
    tf, ctf = p["timeframe_s"], p["confirm_timeframe_s"]
    primary = [e for e in events if not e.is_confirm]
    confirm = [e for e in events if e.is_confirm]
    for e in events:
        assert e.symbol == e.bar.symbol
        assert e.timeframe_s == (ctf if e.is_confirm else tf)
        assert e.cross in (-1, 0, 1)

    bars = build_bars(
        ticks.ts,
        ticks.price,
        ticks.qty,
        symbol=ticks.symbol,
        timeframe_s=tf,
        volume_mode=p.get("volume_mode", "trade"),
        **session,
    )
    assert sorted((as_ref(e.bar) for e in primary), key=bar_order) == columns_to_bars(bars)
    coarse = resample_bars(bars, ctf, **session)
    assert sorted((as_ref(e.bar) for e in confirm), key=bar_order) == columns_to_bars(coarse)

    for evs in (primary, confirm):
        for sym in {e.symbol for e in evs}:
            mine = [e for e in evs if e.symbol == sym]
            ts = [e.bar.ts for e in mine]
            assert ts == sorted(set(ts)), "a symbol's bars close in time order, once each"
            closes = np.array([e.bar.close for e in mine])
            fast = ema(closes, p["fast"])
            slow = ema(closes, p["slow"])
            got_fast = np.array([math.nan if e.ema_fast is None else e.ema_fast for e in mine])
            got_slow = np.array([math.nan if e.ema_slow is None else e.ema_slow for e in mine])
            assert np.array_equal(got_fast, fast, equal_nan=True)
            assert np.array_equal(got_slow, slow, equal_nan=True)
            assert [e.cross for e in mine] == crossovers(fast, slow).tolist()


# ------------------------------------------------------------------------ hand cases


def test_properties() -> None:
    e = Engine(60, 300, 8, 21)
    assert (e.timeframe_s, e.confirm_timeframe_s, e.fast, e.slow) == (60, 300, 8, 21)
    assert e.dropped == {"out_of_session": 0, "late": 0}
    assert e.symbols == []
    d = Engine()
    assert (d.timeframe_s, d.confirm_timeframe_s, d.fast, d.slow) == (60, 300, 8, 21)


def test_on_tick_returns_none_when_nothing_closed() -> None:
    e = Engine()
    assert e.on_tick(1, ist_ns(9, 15, 1), 100.0, 1.0) is None
    assert e.on_tick(1, ist_ns(9, 15, 30), 101.0, 1.0) is None
    assert e.on_tick(2, ist_ns(9, 16, 30), 50.0, 1.0) is None  # another symbol
    assert e.on_tick(1, ist_ns(9, 30, 0, day=-1), 101.0, 1.0) is None  # late
    assert e.on_tick(1, ist_ns(8, 0), 101.0, 1.0) is None  # out of session
    assert e.dropped == {"out_of_session": 1, "late": 1}
    assert e.symbols == [1, 2]


def test_confirm_bar_closes_with_its_last_primary_bar() -> None:
    e = Engine(60, 300, 2, 3)
    prices = [10.0, 12.0, 9.0, 11.0, 10.5]
    outs = [e.on_tick(4, ist_ns(9, 15 + i, 10), p, 2.0) for i, p in enumerate(prices)]
    assert outs[0] is None
    for i in range(1, 5):  # each tick closes the previous minute, no confirm yet
        out = outs[i]
        assert out is not None
        assert [(x.is_confirm, x.bar.ts) for x in out] == [(False, ist_ns(9, 15 + i - 1))]

    out = e.on_tick(4, ist_ns(9, 20, 5), 11.5, 1.0)
    assert out is not None
    assert [(x.is_confirm, x.timeframe_s, x.symbol) for x in out] == [
        (False, 60, 4),
        (True, 300, 4),
    ]
    assert out[0].bar == Bar(4, ist_ns(9, 19), 10.5, 10.5, 10.5, 10.5, 2.0, 1)
    assert out[1].bar == Bar(4, ist_ns(9, 15), 10.0, 12.0, 9.0, 10.5, 10.0, 5)
    assert out[1].ema_fast is None  # first confirm bar: nothing is warm yet
    assert out[1].cross == 0


def test_confirm_bar_closes_when_a_later_confirm_bucket_opens() -> None:
    e = Engine(60, 300, 2, 3)
    assert e.on_tick(1, ist_ns(9, 15, 10), 10.0, 1.0) is None
    out = e.on_tick(1, ist_ns(9, 17, 10), 11.0, 1.0)
    assert out is not None
    assert [x.is_confirm for x in out] == [False]
    out = e.on_tick(1, ist_ns(9, 21, 10), 12.0, 1.0)  # 09:17 closes; 09:15-09:20 is over
    assert out is not None
    assert [(x.is_confirm, x.bar.ts) for x in out] == [
        (False, ist_ns(9, 17)),
        (True, ist_ns(9, 15)),
    ]
    assert out[1].bar == Bar(1, ist_ns(9, 15), 10.0, 11.0, 10.0, 11.0, 2.0, 2)


def test_emas_and_cross_on_events() -> None:
    e = Engine(60, 300, 2, 3)
    closes = [5.0, 4.0, 3.0, 2.0, 1.0, 6.0, 9.0]
    events: list[BarEvent] = []
    for i, c in enumerate(closes):
        events += e.on_tick(0, ist_ns(9, 15 + i, 30), c, 1.0) or []
    events += e.on_tick(0, ist_ns(9, 15 + len(closes), 30), 9.0, 1.0) or []
    primary = [x for x in events if not x.is_confirm]
    assert [x.bar.close for x in primary] == closes
    fast = [x.ema_fast for x in primary]
    slow = [x.ema_slow for x in primary]
    assert fast[0] is None
    assert fast[1:] == pytest.approx([4.5, 3.5, 2.5, 1.5, 4.5, 7.5], rel=1e-12)
    assert slow[:2] == [None, None]
    assert slow[2:] == pytest.approx([4.0, 3.0, 2.0, 4.0, 6.5], rel=1e-12)
    assert [x.cross for x in primary] == [0, 0, 0, 0, 0, 1, 0]


def test_on_time_closes_primary_then_confirm() -> None:
    e = Engine(60, 300, 2, 3, grace_ms=1000)
    e.on_tick(1, ist_ns(9, 15, 10), 10.0, 1.0)
    e.on_tick(1, ist_ns(9, 16, 10), 11.0, 1.0)  # closes 09:15
    assert not e.on_time(ist_ns(9, 17, 1))  # 09:16 ends 09:17; + grace is not before now
    out = e.on_time(ist_ns(9, 17, 1) + 1)
    assert out is not None
    assert [(x.is_confirm, x.bar.ts) for x in out] == [(False, ist_ns(9, 16))]
    assert not e.on_time(ist_ns(9, 20, 1))  # the confirm bucket ends 09:20
    out = e.on_time(ist_ns(9, 20, 1) + 1)
    assert out is not None
    assert [(x.is_confirm, x.bar.ts) for x in out] == [(True, ist_ns(9, 15))]
    assert out[0].bar == Bar(1, ist_ns(9, 15), 10.0, 11.0, 10.0, 11.0, 2.0, 2)
    # a tick for the timer-closed bucket is late
    assert e.on_tick(1, ist_ns(9, 16, 50), 12.0, 1.0) is None
    assert e.dropped["late"] == 1
    assert e.flush() == []


def test_on_time_closes_last_primary_and_its_confirm_together() -> None:
    e = Engine(60, 300, 2, 3, grace_ms=0)
    e.on_tick(1, ist_ns(9, 19, 10), 10.0, 1.0)
    out = e.on_time(ist_ns(9, 20) + 1)
    assert out is not None
    assert [(x.is_confirm, x.bar.ts) for x in out] == [
        (False, ist_ns(9, 19)),
        (True, ist_ns(9, 15)),
    ]


def test_flush_closes_everything() -> None:
    e = Engine(60, 300, 2, 3)
    e.on_tick(1, ist_ns(9, 15, 10), 10.0, 1.0)
    e.on_tick(2, ist_ns(9, 16, 10), 20.0, 1.0)
    out = e.flush()
    assert sorted((x.is_confirm, x.symbol, x.bar.ts) for x in out) == [
        (False, 1, ist_ns(9, 15)),
        (False, 2, ist_ns(9, 16)),
        (True, 1, ist_ns(9, 15)),
        (True, 2, ist_ns(9, 15)),
    ]
    for sym in (1, 2):  # per symbol: primary before its confirm
        kinds = [x.is_confirm for x in out if x.symbol == sym]
        assert kinds == [False, True]
    assert e.flush() == []


def test_bad_tick_raises_and_changes_nothing() -> None:
    e = Engine(60, 300, 2, 3)
    e.on_tick(1, ist_ns(9, 15, 10), 10.0, 1.0)
    for price, qty in [(math.nan, 1.0), (0.0, 1.0), (-1.0, 1.0), (math.inf, 1.0), (10.0, -1.0)]:
        with pytest.raises(InvalidInputError):
            e.on_tick(1, ist_ns(9, 16, 10), price, qty)
    assert e.dropped == {"out_of_session": 0, "late": 0}
    assert e.symbols == [1]
    out = e.flush()
    assert [x.bar for x in out if not x.is_confirm] == [
        Bar(1, ist_ns(9, 15), 10.0, 10.0, 10.0, 10.0, 1.0, 1)
    ]


# ------------------------------------------------------------------- against batch


@pytest.mark.parametrize("mode", ["trade", "cumulative"])
@pytest.mark.parametrize(
    "params",
    [
        {"timeframe_s": 60, "confirm_timeframe_s": 300, "fast": 8, "slow": 21},
        {"timeframe_s": 300, "confirm_timeframe_s": 900, "fast": 8, "slow": 21},
        {"timeframe_s": 60, "confirm_timeframe_s": 3600, "fast": 3, "slow": 5},
    ],
)
def test_synthetic_day_against_batch_functions(
    make_ticks: Any, params: dict[str, Any], mode: str
) -> None:
    t: Ticks = make_ticks(
        20_000, seed=13, n_symbols=4, mean_gap_ms=1_300, jitter_ms=800, cumulative=mode != "trade"
    )
    p = {**params, "volume_mode": mode}
    engine = Engine(**p)
    events = run(engine, t.rows()) + engine.flush()
    assert sum(not e.is_confirm for e in events) > 100
    check_against_batch_functions(events, t, p)


def _engine_kwargs(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "timeframe_s": d["timeframes"][0],
        "confirm_timeframe_s": d["timeframes"][1],
        "fast": d["periods"][0],
        "slow": d["periods"][1],
        "volume_mode": d["volume_mode"],
        "grace_ms": d["grace_ms"],
        **d["session"],
    }


engine_params: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "timeframes": st.sampled_from(
            [(60, 300), (60, 180), (120, 240), (300, 900), (60, 1800), (420, 840), (3600, 7200)]
        ),
        "periods": st.sampled_from([(1, 2), (2, 3), (3, 5)]),
        "session": sessions,
        "volume_mode": volume_modes,
        "grace_ms": st.sampled_from([0, 1000, 20_000]),
    }
).map(_engine_kwargs)


@given(engine_params, st.data())
def test_streaming_against_batch_functions(p: dict[str, Any], data: st.DataObject) -> None:
    ticks = data.draw(tick_streams(max_ticks=150, volume_mode=p["volume_mode"]), label="ticks")
    engine = Engine(**p)
    events = run(engine, ticks.rows()) + engine.flush()
    check_against_batch_functions(events, ticks, p)


@given(engine_params, st.data())
def test_streaming_matches_reference_engine(p: dict[str, Any], data: st.DataObject) -> None:
    """Per call: the same events (incl. when confirm bars close), with timer closes between."""
    ticks = data.draw(tick_streams(max_ticks=150, volume_mode=p["volume_mode"]), label="ticks")
    lag = st.one_of(st.integers(-2_000, 600_000), st.integers(0, 4_000_000))
    lags = data.draw(st.lists(lag, min_size=150, max_size=150), label="timer lags")
    engine = Engine(**p)
    ref = RefEngine(**p)
    for i, (sym, ts, price, qty) in enumerate(ticks.rows()):
        want = ref.on_tick(sym, ts, price, qty)
        got = engine.on_tick(sym, ts, price, qty)
        assert (got is None) == (not want)
        assert_events_match(got or [], want)
        if i % 4 == 3:
            now = ts + lags[i] * 1_000_000
            want = ref.on_time(now)
            timed = engine.on_time(now) or []
            assert_events_match(
                sorted(timed, key=lambda e: event_order(row(e))),
                sorted(want, key=lambda e: event_order(ref_row(e))),
            )
        assert engine.dropped == ref.dropped
    assert_events_match(
        sorted(engine.flush(), key=lambda e: event_order(row(e))),
        sorted(ref.flush(), key=lambda e: event_order(ref_row(e))),
    )


def test_tick_in_a_bucket_the_clock_closed_is_late() -> None:
    """A timer closed 09:15-09:20; ticks stamped 09:17 and 09:18 (no bars yet) arrive after.

    The clock already closed their buckets (and their confirm bucket), so they are late; a
    valid tick never raises, and no closed confirm bar is emitted twice.
    """
    e = Engine(60, 300, 2, 3, grace_ms=0)
    e.on_tick(0, ist_ns(9, 15, 10), 10.0, 1.0)
    out = e.on_time(ist_ns(9, 21))
    assert out is not None
    assert [(x.is_confirm, x.bar.ts) for x in out] == [
        (False, ist_ns(9, 15)),
        (True, ist_ns(9, 15)),
    ]
    assert e.on_tick(0, ist_ns(9, 17, 10), 11.0, 1.0) is None
    assert e.on_tick(0, ist_ns(9, 18, 10), 12.0, 1.0) is None
    assert e.on_tick(7, ist_ns(9, 19, 30), 12.0, 1.0) is None  # the clock is shared
    assert e.dropped == {"out_of_session": 0, "late": 3}
    assert e.on_tick(0, ist_ns(9, 21, 10), 13.0, 1.0) is None  # 09:21 is still open
    events = e.flush()
    assert sorted((x.is_confirm, x.bar.ts) for x in events) == [
        (False, ist_ns(9, 21)),
        (True, ist_ns(9, 20)),
    ]
    assert events[0].bar == Bar(0, ist_ns(9, 21), 13.0, 13.0, 13.0, 13.0, 1.0, 1)


# ---------------------------------------------------------------- batch twin, snapshot


@given(engine_params, st.data())
def test_on_ticks_equals_streaming(p: dict[str, Any], data: st.DataObject) -> None:
    ticks = data.draw(tick_streams(max_ticks=150, volume_mode=p["volume_mode"]), label="ticks")
    live = Engine(**p)
    events = run(live, ticks.rows()) + live.flush()

    batch = Engine(**p).on_ticks(ticks.ts, ticks.price, ticks.qty, ticks.symbol, flush=True)
    assert set(batch) == {"primary", "confirm"}
    assert batch_rows(batch["primary"]) == stream_rows(events, False)
    assert batch_rows(batch["confirm"]) == stream_rows(events, True)

    # in two batches, then an explicit flush: still the same events
    k = data.draw(st.integers(0, len(ticks)), label="split")
    two = Engine(**p)
    first = two.on_ticks(ticks.ts[:k], ticks.price[:k], ticks.qty[:k], ticks.symbol[:k])
    second = two.on_ticks(ticks.ts[k:], ticks.price[k:], ticks.qty[k:], ticks.symbol[k:])
    tail = two.flush()
    assert two.dropped == live.dropped
    for kind, confirm in (("primary", False), ("confirm", True)):
        got = batch_rows(first[kind]) + batch_rows(second[kind]) + stream_rows(tail, confirm)
        assert got == stream_rows(events, confirm)


def test_on_ticks_without_symbol_is_symbol_zero(make_ticks: Any) -> None:
    t: Ticks = make_ticks(3_000, seed=4)
    a = Engine(60, 300, 3, 5).on_ticks(t.ts, t.price, t.qty, flush=True)
    b = Engine(60, 300, 3, 5).on_ticks(t.ts, t.price, t.qty, np.zeros_like(t.symbol), flush=True)
    for kind in ("primary", "confirm"):
        assert batch_rows(a[kind]) == batch_rows(b[kind])
        assert len(a[kind]["ts"]) > 0
        assert set(a[kind]["symbol"].tolist()) == {0}


def test_on_ticks_validates_before_applying(make_ticks: Any) -> None:
    t: Ticks = make_ticks(400, seed=6, n_symbols=2)
    bad_price = t.price.copy()
    bad_price[-1] = math.nan
    engine = Engine(60, 300, 3, 5)
    with pytest.raises(InvalidInputError):
        engine.on_ticks(t.ts, bad_price, t.qty, t.symbol)
    assert engine.symbols == []
    assert engine.dropped == {"out_of_session": 0, "late": 0}
    got = engine.on_ticks(t.ts, t.price, t.qty, t.symbol, flush=True)
    want = Engine(60, 300, 3, 5).on_ticks(t.ts, t.price, t.qty, t.symbol, flush=True)
    for kind in ("primary", "confirm"):
        assert batch_rows(got[kind]) == batch_rows(want[kind])


def run_with_clock(
    engine: Engine, rows: list[tuple[int, int, float, float]], lags: dict[int, int], first: int
) -> list[BarEvent]:
    """Feed ``rows`` (numbered from ``first``); after tick i in ``lags``, on_time(ts + lag)."""
    events: list[BarEvent] = []
    for i, (sym, ts, price, qty) in enumerate(rows, start=first):
        events += engine.on_tick(sym, ts, price, qty) or []
        if i in lags:
            events += engine.on_time(ts + lags[i] * 1_000_000) or []
    return events


@given(engine_params, st.data())
def test_snapshot_restore_continues_exactly(p: dict[str, Any], data: st.DataObject) -> None:
    ticks = data.draw(tick_streams(max_ticks=150, volume_mode=p["volume_mode"]), label="ticks")
    rows = ticks.rows()
    k = data.draw(st.integers(0, len(rows)), label="split")
    lags = data.draw(
        st.dictionaries(st.integers(0, max(len(rows) - 1, 0)), st.integers(-2_000, 400_000)),
        label="timer calls",
    )

    whole = Engine(**p)
    head = run_with_clock(whole, rows[:k], lags, 0)
    want_tail = run_with_clock(whole, rows[k:], lags, k) + whole.flush()

    first = Engine(**p)
    assert [row(e) for e in run_with_clock(first, rows[:k], lags, 0)] == [row(e) for e in head]
    blob = first.snapshot()
    assert isinstance(blob, bytes)
    restored = Engine.from_snapshot(blob)
    assert (restored.timeframe_s, restored.confirm_timeframe_s) == (
        p["timeframe_s"],
        p["confirm_timeframe_s"],
    )
    assert (restored.fast, restored.slow) == (p["fast"], p["slow"])
    assert restored.dropped == first.dropped
    assert restored.symbols == first.symbols
    tail = run_with_clock(restored, rows[k:], lags, k) + restored.flush()
    assert [row(e) for e in tail] == [row(e) for e in want_tail]
    assert restored.dropped == whole.dropped
    assert restored.symbols == whole.symbols
    # taking a snapshot does not disturb the original
    orig_tail = run_with_clock(first, rows[k:], lags, k) + first.flush()
    assert [row(e) for e in orig_tail] == [row(e) for e in want_tail]


def test_snapshot_restores_timer_state() -> None:
    p: dict[str, Any] = {"timeframe_s": 60, "confirm_timeframe_s": 300, "fast": 2, "slow": 3}
    e = Engine(**p, grace_ms=5_000)
    e.on_tick(1, ist_ns(9, 15, 10), 10.0, 1.0)
    e.on_time(ist_ns(9, 16, 6))  # timer-closes 09:15
    r = Engine.from_snapshot(e.snapshot())
    assert r.on_tick(1, ist_ns(9, 15, 50), 11.0, 1.0) is None  # late after restore too
    assert r.dropped == {"out_of_session": 0, "late": 1}
    assert not r.on_time(ist_ns(9, 20, 5))
    out = r.on_time(ist_ns(9, 20, 5) + 1)  # grace survived the snapshot
    assert out is not None
    assert [(x.is_confirm, x.bar.ts) for x in out] == [(True, ist_ns(9, 15))]
    # so did the clock: a new symbol's tick in a bucket the clock closed is late
    again = Engine.from_snapshot(r.snapshot())
    assert again.on_tick(2, ist_ns(9, 19, 0), 11.0, 1.0) is None
    assert again.dropped == {"out_of_session": 0, "late": 2}


def test_symbols_in_order_of_first_appearance() -> None:
    e = Engine()
    for sym in (5, 3, 5, 9, 3):
        e.on_tick(sym, ist_ns(9, 15, 1), 10.0, 1.0)
    assert e.symbols == [5, 3, 9]
    assert Engine.from_snapshot(e.snapshot()).symbols == [5, 3, 9]


def test_dropped_counters(make_ticks: Any) -> None:
    e = Engine()
    e.on_tick(0, ist_ns(9, 0), 10.0, 1.0)
    e.on_tick(0, ist_ns(15, 30), 10.0, 1.0)
    e.on_tick(0, ist_ns(9, 20), 10.0, 1.0)
    e.on_tick(0, ist_ns(9, 19, 59), 10.0, 1.0)
    e.on_tick(1, ist_ns(9, 19, 59), 10.0, 1.0)  # another symbol: not late
    assert e.dropped == {"out_of_session": 2, "late": 1}
    t: Ticks = make_ticks(2_000, seed=2, n_symbols=3, jitter_ms=3_000)
    e2 = Engine()
    e2.on_ticks(t.ts, t.price, t.qty, t.symbol)
    ref = RefEngine()
    for sym, ts, price, qty in t.rows():
        ref.on_tick(sym, ts, price, qty)
    assert e2.dropped == ref.dropped
    assert e2.dropped["late"] > 0


def test_engine_with_no_ticks() -> None:
    e = Engine()
    assert e.flush() == []
    assert not e.on_time(ist_ns(15, 0))
    empty_i = np.array([], dtype=np.int64)
    empty_f = np.array([], dtype=np.float64)
    out = e.on_ticks(empty_i, empty_f, empty_f, empty_i, flush=True)
    for kind in ("primary", "confirm"):
        assert set(out[kind]) == EVENT_COLUMNS
        assert all(len(v) == 0 for v in out[kind].values())


def test_concurrent_use_raises_runtime_error(make_ticks: Any) -> None:
    """on_ticks releases the GIL; meanwhile the engine refuses other calls instead of racing."""
    t: Ticks = make_ticks(1_000_000, seed=8, n_symbols=4, mean_gap_ms=20)
    engine = Engine(60, 300, 3, 5)
    result: dict[str, Any] = {}

    def batch() -> None:
        result["out"] = engine.on_ticks(t.ts, t.price, t.qty, t.symbol)

    worker = threading.Thread(target=batch)
    worker.start()
    while worker.is_alive():
        # refused with RuntimeError while the batch holds the engine; another symbol, so it is
        # harmless if it runs before or after
        with contextlib.suppress(RuntimeError):
            engine.on_tick(99, int(t.ts[0]), 10.0, 1.0)
    worker.join()
    alone = Engine(60, 300, 3, 5).on_ticks(t.ts, t.price, t.qty, t.symbol)
    for kind in ("primary", "confirm"):
        assert batch_rows(result["out"][kind]) == batch_rows(alone[kind])
