"""The store contract: one suite, run on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from mental_trader.core import Ema, build_bars
from mental_trader.errors import InvalidInputError, StorageError
from mental_trader.models import (
    EmaStateRow,
    Event,
    Fill,
    Instrument,
    OptionTrade,
    OrderIntent,
    OrderStatus,
    OrderUpdate,
    Side,
    SignalRecord,
    Trade,
    TradeStatus,
)
from mental_trader.storage import CandleRow, Store
from mental_trader.storage.base import dt_to_ns, ns_to_dt

T0 = datetime(2026, 11, 23, 3, 45, tzinfo=UTC)  # 09:15 IST
T0_NS = dt_to_ns(T0)
MIN_NS = 60_000_000_000


def candles(n: int, *, start_ns: int = T0_NS, seed: int = 1, tf_ns: int = MIN_NS) -> dict:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.5, n))
    return {
        "ts": start_ns + np.arange(n, dtype=np.int64) * tf_ns,
        "open": close + rng.normal(0, 0.1, n),
        "high": close + 1.0,
        "low": close - 1.0,
        "close": close,
        "volume": rng.integers(0, 10**9, n).astype(np.float64),
        "ticks": rng.integers(1, 500, n).astype(np.int64),
    }


def assert_candles_equal(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key in want:
        assert got[key].dtype == np.asarray(want[key]).dtype, key
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


# ----------------------------------------------------------------------------- migrations


async def test_migrations_apply_once_and_report_version(raw_store: Store) -> None:
    assert await raw_store.schema_version() == 0
    assert await raw_store.migrate() == [1, 2]
    assert await raw_store.schema_version() == 2
    assert await raw_store.migrate() == []
    assert await raw_store.schema_version() == 2


async def test_migration_keeps_existing_data(raw_store: Store) -> None:
    assert await raw_store.migrate(target=1) == [1]
    bars = candles(50)
    await raw_store.upsert_candles("NSE:RELIANCE", 60, bars)
    assert await raw_store.migrate() == [2]
    assert_candles_equal(await raw_store.load_candles("NSE:RELIANCE", 60), bars)


# ----------------------------------------------------------------------------- candles


async def test_candles_round_trip_exactly(store: Store) -> None:
    bars = candles(1000)
    bars["volume"][0] = 1e15  # big cumulative-derived volumes survive
    bars["close"][1] = 1e-9
    assert await store.upsert_candles("NSE:INFY", 60, bars) == 1000
    assert_candles_equal(await store.load_candles("NSE:INFY", 60), bars)


async def test_candle_upsert_is_idempotent_and_overwrites(store: Store) -> None:
    bars = candles(300)
    await store.upsert_candles("NSE:INFY", 60, bars)
    await store.upsert_candles("NSE:INFY", 60, bars)
    assert len((await store.load_candles("NSE:INFY", 60))["ts"]) == 300
    changed = {k: v.copy() for k, v in bars.items()}
    changed["close"][10:20] += 5.0
    changed["ticks"][10:20] += 1
    await store.upsert_candles("NSE:INFY", 60, {k: v[10:20] for k, v in changed.items()})
    assert_candles_equal(await store.load_candles("NSE:INFY", 60), changed)


async def test_candles_are_keyed_by_symbol_and_timeframe(store: Store) -> None:
    one = candles(20, seed=1)
    five = candles(4, seed=2, tf_ns=5 * MIN_NS)
    other = candles(20, seed=3)
    await store.upsert_candles("NSE:INFY", 60, one)
    await store.upsert_candles("NSE:INFY", 300, five)
    await store.upsert_candles("NSE:TCS", 60, other)
    assert_candles_equal(await store.load_candles("NSE:INFY", 60), one)
    assert_candles_equal(await store.load_candles("NSE:INFY", 300), five)
    assert_candles_equal(await store.load_candles("NSE:TCS", 60), other)
    assert len((await store.load_candles("NSE:NONE", 60))["ts"]) == 0


async def test_upsert_many_writes_every_symbol_once(store: Store) -> None:
    blocks = {f"NSE:S{i}": candles(40 + i, seed=i) for i in range(6)}
    blocks["NSE:EMPTY"] = {k: v[:0] for k, v in candles(1).items()}
    assert await store.upsert_candles_many(60, blocks) == sum(6 * [40]) + sum(range(6))
    assert await store.upsert_candles_many(60, blocks) == sum(6 * [40]) + sum(range(6))
    for symbol, bars in blocks.items():
        assert_candles_equal(await store.load_candles(symbol, 60), bars)


async def test_load_candles_range_is_half_open(store: Store) -> None:
    bars = candles(100)
    await store.upsert_candles("NSE:INFY", 60, bars)
    got = await store.load_candles(
        "NSE:INFY", 60, start_ns=T0_NS + 10 * MIN_NS, end_ns=T0_NS + 20 * MIN_NS
    )
    assert_candles_equal(got, {k: v[10:20] for k, v in bars.items()})
    tail = await store.load_candles("NSE:INFY", 60, start_ns=T0_NS + 95 * MIN_NS)
    np.testing.assert_array_equal(tail["ts"], bars["ts"][95:])


async def test_load_last_candles_is_the_warm_start(store: Store) -> None:
    blocks = {f"NSE:S{i}": candles(50 + 10 * i, seed=i) for i in range(5)}
    for symbol, bars in blocks.items():
        await store.upsert_candles(symbol, 60, bars)
    got = await store.load_last_candles([*blocks, "NSE:EMPTY"], 60, 60)
    assert set(got) == {*blocks, "NSE:EMPTY"}
    for symbol, bars in blocks.items():
        assert_candles_equal(got[symbol], {k: v[-60:] for k, v in bars.items()})
    assert len(got["NSE:EMPTY"]["ts"]) == 0
    assert got["NSE:EMPTY"]["ts"].dtype == np.int64


async def test_build_bars_output_is_stored_as_is(store: Store) -> None:
    ts = T0_NS + np.arange(0, 600, dtype=np.int64) * 1_000_000_000
    price = 100 + np.sin(np.arange(600) / 30.0)
    bars = build_bars(ts, price, np.ones(600))
    await store.upsert_candles("NSE:INFY", 60, bars)
    assert_candles_equal(await store.load_candles("NSE:INFY", 60), bars)


async def test_bad_candle_block_is_refused_before_writing(store: Store) -> None:
    bars = candles(10)
    del bars["ticks"]
    with pytest.raises(InvalidInputError, match="ticks"):
        await store.upsert_candles("NSE:INFY", 60, bars)
    short = candles(10)
    short["close"] = short["close"][:5]
    with pytest.raises(InvalidInputError, match="length"):
        await store.upsert_candles("NSE:INFY", 60, short)
    assert len((await store.load_candles("NSE:INFY", 60))["ts"]) == 0


# ----------------------------------------------------------------------------- bars + EMA state


def ema_state_after(values: list[float], symbol: str, ts: datetime) -> EmaStateRow:
    fast, slow = Ema(3), Ema(5)
    for v in values:
        fast.update(v)
        slow.update(v)
    return EmaStateRow(symbol, 60, ts, fast.to_state(), slow.to_state())


def row(symbol: str, i: int, close: float) -> CandleRow:
    return CandleRow(symbol, 60, T0_NS + i * MIN_NS, close, close + 1, close - 1, close, 10.0, 3)


async def test_commit_bars_stores_bars_and_ema_state_together(store: Store) -> None:
    closes = [100.0 + 0.37 * i for i in range(12)]
    bars = [row("NSE:INFY", i, c) for i, c in enumerate(closes)]
    state = ema_state_after(closes, "NSE:INFY", ns_to_dt(bars[-1].ts_ns))
    await store.commit_bars(bars, [state])
    stored = await store.load_candles("NSE:INFY", 60)
    np.testing.assert_array_equal(stored["close"], closes)
    loaded = (await store.load_ema_states(["NSE:INFY", "NSE:TCS"], 60))["NSE:INFY"]
    assert loaded == state
    # The restored EMA continues bit-identically.
    fast, restored = Ema(3), Ema.from_state(loaded.fast_state)
    for v in closes:
        fast.update(v)
    for x in (101.3, 99.9, 100.1):
        assert fast.update(x) == restored.update(x)
    assert await store.load_ema_states(["NSE:INFY"], 300) == {}


async def test_commit_bars_is_atomic(store: Store) -> None:
    good = [row("NSE:INFY", i, 100.0 + i) for i in range(3)]
    bad_state = EmaStateRow(None, 60, T0, {}, {})  # type: ignore[arg-type]
    with pytest.raises(StorageError) as info:
        await store.commit_bars(good, [bad_state])
    assert info.value.retryable is False
    assert len((await store.load_candles("NSE:INFY", 60))["ts"]) == 0
    assert await store.load_ema_states(["NSE:INFY"], 60) == {}


async def test_older_ema_state_never_overwrites_a_newer_one(store: Store) -> None:
    newer = ema_state_after([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "NSE:INFY", T0 + timedelta(minutes=5))
    older = ema_state_after([1.0, 2.0, 3.0, 4.0, 5.0], "NSE:INFY", T0 + timedelta(minutes=4))
    await store.commit_bars([], [newer])
    await store.commit_bars([], [older])  # a replayed write from the spool
    assert (await store.load_ema_states(["NSE:INFY"], 60))["NSE:INFY"] == newer


# ----------------------------------------------------------------------------- instruments


async def test_instruments_upsert_and_load(store: Store) -> None:
    rel = Instrument("NSE:RELIANCE", "NSE", "RELIANCE", 738561, "RELIANCE INDUSTRIES")
    opt = Instrument(
        "NFO:NIFTY26DEC24000CE",
        "NFO",
        "NIFTY26DEC24000CE",
        12345,
        "NIFTY",
        "NFO-OPT",
        "CE",
        0.05,
        75,
        date(2026, 12, 29),
        24000.0,
        "NSE:NIFTY 50",
        1800,
    )
    assert await store.upsert_instruments([rel, opt]) == 2
    assert await store.load_instruments() == [opt, rel]
    moved = Instrument("NSE:RELIANCE", "NSE", "RELIANCE", 738561, "RIL", lot_size=1)
    await store.upsert_instruments([moved])
    assert await store.load_instruments(["NSE:RELIANCE"]) == [moved]


# ----------------------------------------------------------------------------- signals, events


async def test_signals_insert_once_and_query(store: Store) -> None:
    sig = SignalRecord(
        "sig-1", T0, "NSE:INFY", 60, Side.BUY, 1510.5, "scalp", "ema cross", {"fast": 1.5}
    )
    later = SignalRecord(
        "sig-2", T0 + timedelta(minutes=3), "NSE:TCS", 60, Side.SELL, 3900.0, "scalp"
    )
    assert await store.insert_signal(sig) is True
    assert await store.insert_signal(sig) is False
    assert await store.insert_signal(later) is True
    assert await store.load_signals() == [later, sig]
    assert await store.load_signals(symbol="NSE:INFY") == [sig]
    assert await store.load_signals(since=T0 + timedelta(minutes=1)) == [later]
    assert await store.load_signals(limit=1) == [later]


async def test_events_are_an_append_only_log(store: Store) -> None:
    events = [
        Event(f"ev-{i}", T0 + timedelta(seconds=i), "fill" if i % 2 else "halt", f"m{i}")
        for i in range(4)
    ]
    for ev in events:
        assert await store.insert_event(ev) is True
    assert await store.insert_event(events[0]) is False
    assert await store.load_events() == events[::-1]
    assert await store.load_events(kind="fill") == [events[3], events[1]]


# ----------------------------------------------------------------------------- orders, fills


async def test_order_intent_is_recorded_once(store: Store) -> None:
    intent = OrderIntent("cid-1", "NSE:INFY", Side.BUY, 10, signal_id="sig-1")
    assert await store.record_order_intent(intent, T0) is True
    assert await store.record_order_intent(intent, T0 + timedelta(seconds=1)) is False
    order = await store.get_order("cid-1")
    assert order is not None
    assert (order.status, order.qty, order.filled_qty, order.created_at) == (
        OrderStatus.INTENT,
        10,
        0,
        T0,
    )
    assert await store.get_order("nope") is None


async def test_order_transitions_apply_once_and_never_leave_terminal_states(store: Store) -> None:
    await store.record_order_intent(OrderIntent("cid-1", "NSE:INFY", Side.SELL, 5), T0)
    t = T0 + timedelta(seconds=1)
    sub = OrderUpdate("cid-1", "e1", OrderStatus.SUBMITTED, t, broker_order_id="B-1")
    assert await store.apply_order_update(sub) is True
    assert await store.apply_order_update(sub) is False
    cancel = OrderUpdate("cid-1", "e2", OrderStatus.CANCELLED, t, message="user")
    assert await store.apply_order_update(cancel) is True
    reopen = OrderUpdate("cid-1", "e3", OrderStatus.OPEN, t)
    assert await store.apply_order_update(reopen) is False
    order = await store.get_order("cid-1")
    assert order is not None
    assert (order.status, order.broker_order_id, order.message) == (
        OrderStatus.CANCELLED,
        "B-1",
        "user",
    )
    assert [o.client_id for o in await store.load_orders(statuses=[OrderStatus.OPEN])] == []
    with pytest.raises(StorageError, match="unknown client id"):
        await store.apply_order_update(OrderUpdate("ghost", "e1", OrderStatus.OPEN, t))


async def test_fills_apply_once_and_drive_the_order(store: Store) -> None:
    await store.record_order_intent(OrderIntent("cid-1", "NSE:INFY", Side.BUY, 10), T0)
    t = T0 + timedelta(seconds=2)
    f1 = Fill("T1", "cid-1", "NSE:INFY", Side.BUY, 4, 100.0, t, charges=1.5)
    f2 = Fill("T2", "cid-1", "NSE:INFY", Side.BUY, 6, 101.0, t + timedelta(seconds=1))
    assert await store.apply_fill(f1) is True
    assert await store.apply_fill(f1) is False
    order = await store.get_order("cid-1")
    assert order is not None
    assert (order.status, order.filled_qty, order.avg_price) == (
        OrderStatus.PARTIALLY_FILLED,
        4,
        100.0,
    )
    assert await store.apply_fill(f2) is True
    order = await store.get_order("cid-1")
    assert order is not None
    assert order.status is OrderStatus.FILLED
    assert order.filled_qty == 10
    assert order.avg_price == pytest.approx(100.6)
    assert await store.load_fills(client_id="cid-1") == [f1, f2]


async def test_overfill_is_refused_and_leaves_nothing(store: Store) -> None:
    await store.record_order_intent(OrderIntent("cid-1", "NSE:INFY", Side.BUY, 3), T0)
    with pytest.raises(StorageError, match="overfills"):
        await store.apply_fill(Fill("T9", "cid-1", "NSE:INFY", Side.BUY, 4, 100.0, T0))
    assert await store.load_fills() == []
    order = await store.get_order("cid-1")
    assert order is not None
    assert order.filled_qty == 0


async def test_positions_follow_the_fills(store: Store) -> None:
    for cid, side, qty in (("a", Side.BUY, 10), ("b", Side.SELL, 4), ("c", Side.SELL, 10)):
        await store.record_order_intent(OrderIntent(cid, "NSE:INFY", side, qty), T0)
    await store.record_order_intent(OrderIntent("d", "NSE:TCS", Side.SELL, 2), T0)
    await store.apply_fill(Fill("1", "a", "NSE:INFY", Side.BUY, 10, 100.0, T0, charges=1.0))
    await store.apply_fill(Fill("2", "b", "NSE:INFY", Side.SELL, 4, 103.0, T0, charges=0.5))
    positions = {p.symbol: p for p in await store.positions()}
    assert positions["NSE:INFY"].qty == 6
    assert positions["NSE:INFY"].avg_price == 100.0
    assert positions["NSE:INFY"].realized_pnl == pytest.approx(12.0)
    assert positions["NSE:INFY"].charges == pytest.approx(1.5)
    # Selling 10 against a long 6 closes it and opens a short 4 at the fill price.
    await store.apply_fill(Fill("3", "c", "NSE:INFY", Side.SELL, 10, 98.0, T0))
    await store.apply_fill(Fill("4", "d", "NSE:TCS", Side.SELL, 2, 3900.0, T0))
    positions = {p.symbol: p for p in await store.positions()}
    assert (positions["NSE:INFY"].qty, positions["NSE:INFY"].avg_price) == (-4, 98.0)
    assert positions["NSE:INFY"].realized_pnl == pytest.approx(12.0 - 12.0)
    assert (positions["NSE:TCS"].qty, positions["NSE:TCS"].avg_price) == (-2, 3900.0)


# ----------------------------------------------------------------------------- trades


async def test_trades_open_close_with_net_pnl(store: Store) -> None:
    long = Trade("tr-1", "NSE:INFY", Side.BUY, 10, T0, 100.0, "scalp", "sig-1", entry_charges=2.0)
    short = Trade("tr-2", "NSE:TCS", Side.SELL, 5, T0, 3900.0, entry_charges=3.0)
    assert await store.open_trade(long) is True
    assert await store.open_trade(long) is False
    await store.open_trade(short)
    exit_ts = T0 + timedelta(minutes=7)
    closed = await store.close_trade(
        "tr-1", exit_ts=exit_ts, exit_price=103.5, exit_charges=2.5, reason="target"
    )
    assert closed.status is TradeStatus.CLOSED
    assert closed.gross_pnl == pytest.approx(35.0)
    assert closed.net_pnl == pytest.approx(30.5)
    assert (closed.exit_ts, closed.exit_reason) == (exit_ts, "target")
    again = await store.close_trade("tr-1", exit_ts=exit_ts, exit_price=1.0)
    assert again == closed
    short_closed = await store.close_trade("tr-2", exit_ts=exit_ts, exit_price=3910.0)
    assert short_closed.gross_pnl == pytest.approx(-50.0)
    assert short_closed.net_pnl == pytest.approx(-53.0)
    assert [t.id for t in await store.load_trades(status=TradeStatus.CLOSED)] == ["tr-2", "tr-1"]
    assert await store.load_trades(symbol="NSE:INFY") == [closed]
    with pytest.raises(StorageError, match="unknown trade"):
        await store.close_trade("ghost", exit_ts=exit_ts, exit_price=1.0)


async def test_option_trades_and_daily_pnl_by_ist_day(store: Store) -> None:
    opt = OptionTrade(
        "ot-1",
        "NSE:NIFTY 50",
        "NFO:NIFTY26DEC24000CE",
        date(2026, 12, 29),
        24000.0,
        "CE",
        Side.BUY,
        2,
        75,
        T0,
        120.0,
        underlying_signal_id="sig-7",
        underlying_entry_price=24010.0,
        entry_charges=40.0,
    )
    assert await store.open_option_trade(opt) is True
    assert await store.open_option_trade(opt) is False
    closed = await store.close_option_trade(
        "ot-1",
        exit_ts=T0 + timedelta(minutes=30),
        exit_price=131.0,
        underlying_exit_price=24060.0,
        exit_charges=45.0,
        reason="target",
    )
    assert closed.gross_pnl == pytest.approx(11.0 * 150)
    assert closed.net_pnl == pytest.approx(11.0 * 150 - 85.0)
    assert await store.load_option_trades(underlying="NSE:NIFTY 50") == [closed]
    # 19:00 UTC on the 23rd is 00:30 IST on the 24th: it counts for the 24th.
    await store.open_trade(Trade("tr-late", "NSE:INFY", Side.BUY, 1, T0, 100.0))
    late = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
    await store.close_trade("tr-late", exit_ts=late, exit_price=101.0, exit_charges=0.25)
    days = await store.daily_pnl(date(2026, 11, 23), date(2026, 11, 24))
    assert [d.day for d in days] == [date(2026, 11, 23), date(2026, 11, 24)]
    assert days[0].trades == 1
    assert days[0].net_pnl == pytest.approx(11.0 * 150 - 85.0)
    assert (days[1].trades, days[1].gross_pnl, days[1].charges) == (1, 1.0, 0.25)
    assert await store.daily_pnl(date(2026, 11, 25), date(2026, 11, 30)) == []


# ----------------------------------------------------------------------------- time handling


def test_naive_datetimes_never_reach_the_store() -> None:
    naive = datetime(2026, 11, 23, 9, 15)
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        SignalRecord("s", naive, "NSE:INFY", 60, Side.BUY, 1.0, "x")
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        Fill("t", "c", "NSE:INFY", Side.BUY, 1, 1.0, naive)
    with pytest.raises(InvalidInputError, match="naive"):
        dt_to_ns(naive)


def test_ns_datetime_round_trip() -> None:
    for ns in (0, T0_NS, T0_NS + 123_456_000, -MIN_NS):
        assert dt_to_ns(ns_to_dt(ns)) == ns
    assert ns_to_dt(T0_NS) == T0
    assert math.isclose(dt_to_ns(T0) / 1e9, T0.timestamp())
