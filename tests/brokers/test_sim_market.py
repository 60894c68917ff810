"""The simulated market and broker: deterministic, realistic ticks; history = their bars."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from mental_trader.brokers.base import Broker
from mental_trader.brokers.sim import NIFTY_50, SimBroker, SimMarket
from mental_trader.calendar import TradingCalendar
from mental_trader.config import load_settings
from mental_trader.core import build_bars, resample_bars
from mental_trader.errors import BrokerError, InvalidInputError
from mental_trader.storage.base import CANDLE_COLUMNS, Candles

DAY = date(2026, 11, 20)  # a Friday session
NEXT = date(2026, 11, 23)  # the next session (Monday)
SYMBOLS = ["NSE:RELIANCE", "NSE:INFY", "NSE:ICICIBANK", NIFTY_50, "NSE:TCS"]
LATER = datetime(2026, 12, 1, tzinfo=UTC)  # "now", after every day used here


def same_bars(a: Candles, b: Candles) -> None:
    for name in CANDLE_COLUMNS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_same_seed_same_day_different_seed_different(cal: TradingCalendar) -> None:
    a = SimMarket(7, cal).day_ticks("NSE:INFY", DAY)
    b = SimMarket(7, cal).day_ticks("NSE:INFY", DAY)
    c = SimMarket(8, cal).day_ticks("NSE:INFY", DAY)
    for name in ("ts_ns", "price", "qty", "cum_volume"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert len(a) != len(c) or not np.array_equal(a.price, c.price)
    # a later day generated first does not change an earlier one (no hidden sequence state)
    fresh = SimMarket(7, cal)
    fresh.day_ticks("NSE:INFY", NEXT)
    np.testing.assert_array_equal(fresh.day_ticks("NSE:INFY", DAY).price, a.price)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_ticks_are_realistic(market: SimMarket, cal: TradingCalendar, symbol: str) -> None:
    ticks = market.day_ticks(symbol, DAY)
    open_ns, close_ns = cal.session_bounds_ns(DAY)
    assert 11_250 < len(ticks) < 60_000  # at least one tick per 2 s slot
    assert ticks.ts_ns.dtype == np.int64
    assert ticks.ts_ns[0] >= open_ns
    assert ticks.ts_ns[-1] < close_ns
    assert np.all(np.diff(ticks.ts_ns) >= 0)
    # at least one tick in every minute
    minutes = np.unique((ticks.ts_ns - open_ns) // 60_000_000_000)
    assert len(minutes) == 375
    # prices positive, on the 0.05 grid
    assert np.all(ticks.price > 0)
    np.testing.assert_allclose(ticks.price * 20, np.round(ticks.price * 20), rtol=0, atol=1e-6)
    assert not ticks.price.flags.writeable


def test_volume_is_cumulative_per_day(market: SimMarket) -> None:
    first = market.day_ticks("NSE:RELIANCE", DAY)
    second = market.day_ticks("NSE:RELIANCE", NEXT)
    for ticks in (first, second):
        increments = np.diff(ticks.cum_volume, prepend=0.0)
        assert np.all(increments >= 1)  # monotone, from 0 at the start of the day
        assert np.all(ticks.qty >= 1)
        assert np.all(ticks.qty <= increments)  # the feed shows one trade of several
        assert 1e5 < ticks.cum_volume[-1] < 1e8
    assert second.cum_volume[0] < first.cum_volume[-1]  # reset at the new day


def test_index_has_no_volume(market: SimMarket) -> None:
    ticks = market.day_ticks(NIFTY_50, DAY)
    assert not ticks.cum_volume.any()
    assert not ticks.qty.any()
    assert 5_000 < ticks.price[0] < 100_000


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_next_open_continues_from_previous_close(market: SimMarket, symbol: str) -> None:
    close = market.day_ticks(symbol, DAY).price[-1]
    opened = market.day_ticks(symbol, NEXT).price[0]
    assert abs(math.log(opened / close)) < 0.08  # a small overnight (weekend) gap


def test_no_ticks_on_holidays_and_weekends(market: SimMarket) -> None:
    assert len(market.day_ticks("NSE:INFY", date(2026, 11, 24))) == 0  # holiday
    assert len(market.day_ticks("NSE:INFY", date(2026, 11, 21))) == 0  # Saturday
    with pytest.raises(InvalidInputError, match="starts on"):
        market.day_ticks("NSE:INFY", date(1999, 12, 31))


def test_extra_session_gets_ticks(cal: TradingCalendar) -> None:
    budget = date(2026, 2, 1)
    local = SimMarket(42, TradingCalendar(extra_sessions=[budget]))
    assert len(local.day_ticks("NSE:INFY", budget)) > 1000
    # prices of other days do not depend on the calendar
    np.testing.assert_array_equal(
        local.day_ticks("NSE:INFY", DAY).price, SimMarket(42, cal).day_ticks("NSE:INFY", DAY).price
    )


@pytest.fixture
def broker(cal: TradingCalendar) -> SimBroker:
    return SimBroker(["NSE:RELIANCE", "NSE:INFY"], seed=42, calendar=cal, now=lambda: LATER)


def session(cal: TradingCalendar, day: date) -> tuple[datetime, datetime]:
    return cal.session_bounds(day)


async def test_history_is_build_bars_of_the_days_ticks(
    broker: SimBroker, cal: TradingCalendar
) -> None:
    ticks = broker.market.day_ticks("NSE:RELIANCE", DAY)
    expected = build_bars(
        ticks.ts_ns,
        ticks.price,
        ticks.cum_volume,
        timeframe_s=60,
        session_start="09:15",
        session_end="15:30",
        utc_offset_minutes=330,
        volume_mode="cumulative",
    )
    got = await broker.history("NSE:RELIANCE", 60, *session(cal, DAY))
    same_bars(got, expected)
    assert len(got["ts"]) == 375
    assert got["open"][0] == ticks.price[0]
    assert got["close"][-1] == ticks.price[-1]
    assert got["volume"].sum() == ticks.cum_volume[-1]


@pytest.mark.parametrize("timeframe_s", [300, 900, 3600])
async def test_coarser_history_is_the_resample_of_1m(
    broker: SimBroker, cal: TradingCalendar, timeframe_s: int
) -> None:
    start, _ = session(cal, DAY)
    end = session(cal, NEXT)[1]
    fine = await broker.history("NSE:INFY", 60, start, end)
    coarse = await broker.history("NSE:INFY", timeframe_s, start, end)
    same_bars(coarse, resample_bars(fine, timeframe_s))
    assert len(coarse["ts"]) == 2 * cal.expected_bars(DAY, timeframe_s)


async def test_history_spans_days_and_respects_start_end(
    broker: SimBroker, cal: TradingCalendar
) -> None:
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # 14:30 IST
    end = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 09:30 IST next session
    got = await broker.history("NSE:INFY", 60, start, end)
    assert len(got["ts"]) == 60 + 15
    assert got["ts"][0] == int(start.timestamp()) * 10**9
    assert np.all(np.diff(got["ts"]) > 0)
    empty = await broker.history("NSE:INFY", 60, end, start)
    assert len(empty["ts"]) == 0


async def test_no_bars_in_the_future_of_now(cal: TradingCalendar) -> None:
    now = datetime(2026, 11, 20, 5, 0, 30, tzinfo=UTC)  # 10:30:30 IST
    broker = SimBroker(["NSE:INFY"], seed=42, calendar=cal, now=lambda: now)
    open_dt, close_dt = session(cal, DAY)
    with pytest.raises(InvalidInputError, match="future"):
        await broker.history("NSE:INFY", 60, open_dt, close_dt)
    got = await broker.history("NSE:INFY", 60, open_dt, now)
    assert len(got["ts"]) == 75  # 09:15 ... 10:29; the 10:30 bar is still forming
    assert got["ts"][-1] + 60 * 10**9 <= int(now.timestamp()) * 10**9
    hourly = await broker.history("NSE:INFY", 3600, open_dt, now)
    assert len(hourly["ts"]) == 1  # 09:15-10:15 closed, 10:15-11:15 forming


async def test_bad_requests_are_refused(broker: SimBroker, cal: TradingCalendar) -> None:
    start, end = session(cal, DAY)
    with pytest.raises(InvalidInputError, match="naive"):
        await broker.history("NSE:INFY", 60, start.replace(tzinfo=None), end)
    with pytest.raises(InvalidInputError, match="symbol"):
        await broker.history("INFY", 60, start, end)
    with pytest.raises(InvalidInputError, match="timeframe"):
        await broker.history("NSE:INFY", 0, start, end)


async def test_instruments_and_lifecycle(cal: TradingCalendar) -> None:
    async with SimBroker(["NSE:RELIANCE", "NSE:INFY"], calendar=cal) as sim:
        broker: Broker = sim
        assert broker.name == "sim"
        rows = await broker.instruments()
        found = {i.symbol: i for i in rows if i.exchange != "NFO"}
        assert list(found) == ["NSE:RELIANCE", "NSE:INFY", NIFTY_50]
        assert found[NIFTY_50].instrument_type == "INDEX"
        assert found["NSE:RELIANCE"].instrument_type == "EQ"
        assert found["NSE:RELIANCE"].tradingsymbol == "RELIANCE"
        assert all(i.tick_size == 0.05 and i.lot_size == 1 for i in found.values())
        assert len({i.instrument_token for i in found.values()}) == 3
        # Then the listed option contracts, as in a broker's daily dump.
        options = rows[3:]
        assert options
        assert {i.instrument_type for i in options} == {"CE", "PE"}
        assert all(i.exchange == "NFO" and i.underlying is not None for i in options)
        assert len({i.symbol for i in rows}) == len(rows)
    with pytest.raises(BrokerError, match="closed"):
        await sim.instruments()
    await sim.close()  # twice is fine


def test_a_day_is_cheap(market: SimMarket) -> None:
    start = datetime.now(UTC)
    for offset in range(20):
        market.day_ticks("NSE:ZOMATO", DAY - timedelta(days=offset))
    assert datetime.now(UTC) - start < timedelta(seconds=1)


def test_from_settings_uses_watchlist_seed_and_calendar_overrides() -> None:
    settings = load_settings(
        _env_file=None, watchlist="TCS,INFY", sim_seed=7, extra_sessions="2026-02-01"
    )
    broker = SimBroker.from_settings(settings)
    assert broker.watchlist == ("NSE:TCS", "NSE:INFY")
    assert broker.market.seed == 7
    assert broker.calendar.is_session(date(2026, 2, 1))
