"""The sim broker's live side: clocks, the tick-frame feed (live == history), quotes."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from mental_trader.brokers.base import Broker, TickFrame
from mental_trader.brokers.sim import NIFTY_50, SimBroker, SimMarket
from mental_trader.brokers.sim.clock import ManualClock, SimClock, session_open
from mental_trader.brokers.sim.feed import SimFeed
from mental_trader.calendar import IST, TradingCalendar, ist_date
from mental_trader.core import BarEvent, Engine
from mental_trader.errors import BrokerError, FeedError, InvalidInputError
from mental_trader.storage.base import ns_to_dt

DAY = date(2026, 11, 20)  # a Friday session
MONDAY = date(2026, 11, 23)
HOLIDAY = date(2026, 11, 24)  # an NSE holiday (Tuesday)
SYMBOLS = ["NSE:RELIANCE", "NSE:INFY", NIFTY_50, "NSE:TCS"]
FRAME_NS = 50_000_000


def at(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=IST)


def ns(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000


def merged_day(market: SimMarket, day: date, symbols: list[str]) -> dict[str, np.ndarray]:
    """The day's ticks of all symbols by time, computed independently of the feed."""
    parts = [market.day_ticks(s, day) for s in symbols]
    ts = np.concatenate([p.ts_ns for p in parts])
    ids = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    order = np.lexsort((ids, ts))  # stable: each symbol keeps its own order
    return {
        "ts_ns": ts[order],
        "price": np.concatenate([p.price for p in parts])[order],
        "qty": np.concatenate([p.cum_volume for p in parts])[order],
        "symbol": ids[order],
    }


async def collect(feed: SimFeed, until_ns: int) -> list[TickFrame]:
    """Frames whose window ends by ``until_ns``."""
    frames: list[TickFrame] = []
    async with feed:
        async for frame in feed:
            if frame.end_ns > until_ns:
                break
            frames.append(frame)
    return frames


def joined(frames: list[TickFrame]) -> dict[str, np.ndarray]:
    return {
        name: np.concatenate([getattr(f, name) for f in frames])
        for name in ("ts_ns", "price", "qty", "symbol")
    }


async def until_sleeping(clock: ManualClock) -> None:
    """Wait (in real time) until something sleeps on ``clock``."""
    for _ in range(5000):
        if clock.sleepers:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("nothing ever slept on the clock")


async def day_frames(market: SimMarket, day: date, **kwargs: int) -> list[TickFrame]:
    open_ns, close_ns = market.calendar.session_bounds_ns(day)
    # far ahead: the day's frames need no sleep (the next day's first frame jumps the clock)
    clock = ManualClock(ns_to_dt(close_ns + 10**12), autojump=True)
    resume = kwargs.pop("resume_from_ns", open_ns)
    feed = SimFeed(market, clock, SYMBOLS, resume_from_ns=resume, **kwargs)
    return await collect(feed, close_ns)


# ----------------------------------------------------------------------------- clocks


async def test_sim_clock_scales_a_manual_base() -> None:
    base = ManualClock()
    start = at(DAY, 9, 15)
    clock = SimClock(start, 60.0, base=base)
    assert clock.now() == start
    assert clock.now().tzinfo is not None
    base.advance(1.5)
    assert clock.now_ns() == ns(start) + 90 * 10**9
    assert clock.now() == start + timedelta(seconds=90)

    target = ns(start) + 210 * 10**9  # 120 simulated s from now = 2 base seconds
    sleeper = asyncio.create_task(clock.sleep_until(target))
    await asyncio.sleep(0)
    base.advance(1.9)
    await asyncio.sleep(0)
    assert not sleeper.done()
    base.advance(0.1)
    await asyncio.wait_for(sleeper, 1)
    assert clock.now_ns() >= target


async def test_sim_clock_on_real_time_sleeps_scaled() -> None:
    clock = SimClock(at(DAY, 9, 15), 1000.0)
    assert clock.speed == 1000.0
    t0 = time.monotonic()
    await clock.sleep_until(clock.now_ns() + 50 * 10**9)  # 50 simulated s = 50 real ms
    elapsed = time.monotonic() - t0
    assert 0.045 <= elapsed < 1.0
    await clock.sleep_until(0)  # the past: returns at once


def test_clock_arguments(cal: TradingCalendar) -> None:
    with pytest.raises(InvalidInputError):
        SimClock(datetime(2026, 11, 20, 9, 15), 1.0)  # naive
    for speed in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(InvalidInputError):
            SimClock(at(DAY, 9, 15), speed)
    manual = ManualClock(at(DAY, 9, 15))
    with pytest.raises(InvalidInputError):
        manual.set_ns(manual.now_ns() - 1)
    with pytest.raises(InvalidInputError):
        manual.advance(-1.0)
    # the default start: the latest session's open at or before a day
    assert session_open(cal, DAY) == at(DAY, 9, 15)
    assert session_open(cal, HOLIDAY) == at(MONDAY, 9, 15)
    assert SimClock.for_session(cal, date(2026, 11, 22)).start_ns == ns(at(DAY, 9, 15))
    assert session_open(cal).tzinfo is not None


async def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(at(DAY, 9, 15))
    sleeper = asyncio.create_task(clock.sleep_until(clock.now_ns() + 10**9))
    await asyncio.sleep(0.01)
    assert not sleeper.done()
    assert clock.sleepers == 1
    clock.advance(1.0)
    await asyncio.wait_for(sleeper, 1)
    assert clock.sleepers == 0


# ----------------------------------------------------------------------------- feed


async def test_frames_partition_the_merged_day(market: SimMarket) -> None:
    open_ns, close_ns = market.calendar.session_bounds_ns(DAY)
    frames = await day_frames(market, DAY)
    expected = merged_day(market, DAY, SYMBOLS)
    got = joined(frames)
    for name, column in expected.items():
        np.testing.assert_array_equal(got[name], column, err_msg=name)
    ends = np.array([f.end_ns for f in frames])
    assert np.all(np.diff(ends) > 0)
    for frame in frames[:500] + frames[-500:]:
        assert len(frame.ts_ns) > 0
        assert frame.ts_ns.dtype == np.int64
        assert frame.symbol.dtype == np.int64
        assert frame.price.dtype == np.float64
        assert frame.qty.dtype == np.float64
        assert frame.ts_ns.flags.c_contiguous
        assert not frame.price.flags.writeable
        assert frame.end_ns - FRAME_NS <= frame.ts_ns[0]
        assert frame.ts_ns[-1] < frame.end_ns
        assert (frame.end_ns - open_ns) % FRAME_NS == 0 or frame.end_ns == close_ns
    # the index ticks too, with no volume
    nifty = got["symbol"] == SYMBOLS.index(NIFTY_50)
    assert nifty.sum() > 1000
    assert np.all(got["qty"][nifty] == 0)
    # quantities are the cumulative day volume
    infy = got["symbol"] == SYMBOLS.index("NSE:INFY")
    assert np.all(np.diff(got["qty"][infy]) > 0)


async def test_frames_are_deterministic(cal: TradingCalendar) -> None:
    a = joined(await day_frames(SimMarket(7, cal), DAY, frame_ms=1000))
    b = joined(await day_frames(SimMarket(7, cal), DAY, frame_ms=1000))
    c = joined(await day_frames(SimMarket(8, cal), DAY, frame_ms=1000))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert len(a["ts_ns"]) != len(c["ts_ns"]) or not np.array_equal(a["price"], c["price"])


async def test_engine_fed_frames_builds_the_history_bars(market: SimMarket) -> None:
    """The key property: live == history, bar for bar, with timer closes on the way."""
    open_ns, close_ns = market.calendar.session_bounds_ns(DAY)
    broker = SimBroker(SYMBOLS, market=market, now=lambda: at(DAY, 18, 0))
    engine = Engine(60, 300, volume_mode="cumulative", **market.session_kwargs)
    clock = ManualClock(at(DAY, 18, 0), autojump=True)
    feed = SimFeed(market, clock, SYMBOLS, resume_from_ns=open_ns)
    events: list[BarEvent] = []
    async with feed:
        async for frame in feed:
            if frame.end_ns > close_ns:
                break
            out = engine.on_frame(frame.ts_ns, frame.price, frame.qty, frame.symbol)
            events.extend(out or ())
            events.extend(engine.on_time(feed.watermark_ns()) or ())
    events.extend(engine.flush())
    assert engine.dropped == {"out_of_session": 0, "late": 0}
    for i, symbol in enumerate(SYMBOLS):
        bars = [e.bar for e in events if e.symbol == i and not e.is_confirm]
        history = await broker.history(symbol, 60, ns_to_dt(open_ns), ns_to_dt(close_ns))
        assert len(bars) == len(history["ts"]) == 375
        for name in ("ts", "open", "high", "low", "close", "volume", "ticks"):
            np.testing.assert_array_equal([getattr(b, name) for b in bars], history[name], name)


async def test_resume_continues_the_same_stream(market: SimMarket) -> None:
    full = await day_frames(market, DAY)
    k = len(full) // 3
    at_boundary = await day_frames(market, DAY, resume_from_ns=full[k - 1].end_ns)
    assert len(at_boundary) == len(full) - k
    for a, b in zip(at_boundary, full[k:], strict=True):
        assert a.end_ns == b.end_ns
        np.testing.assert_array_equal(a.ts_ns, b.ts_ns)
        np.testing.assert_array_equal(a.qty, b.qty)
    # resuming inside a frame gives that frame's remaining ticks, then the same frames
    frame = next(f for f in full[k:] if len(f.ts_ns) >= 3 and f.ts_ns[0] < f.ts_ns[-1])
    cut = int(frame.ts_ns[-1])
    inside = await day_frames(market, DAY, resume_from_ns=cut)
    everything = joined(full)
    keep = everything["ts_ns"] >= cut
    resumed = joined(inside)
    for name in everything:
        np.testing.assert_array_equal(resumed[name], everything[name][keep], err_msg=name)
    assert inside[0].end_ns == frame.end_ns


async def test_rollover_skips_weekend_and_holiday(market: SimMarket, cal: TradingCalendar) -> None:
    assert not cal.is_session(HOLIDAY)
    clock = ManualClock(at(MONDAY, 15, 29, 50), autojump=True)
    feed = SimFeed(market, clock, SYMBOLS)
    wednesday = date(2026, 11, 25)
    frames: list[TickFrame] = []
    async with feed:
        async for frame in feed:
            assert clock.now_ns() >= frame.end_ns  # yielded only once its window has passed
            frames.append(frame)
            if ist_date(frame.end_ns) == wednesday and frame.end_ns >= ns(at(wednesday, 9, 16)):
                break
    days = [ist_date(int(f.ts_ns[0])) for f in frames]
    assert set(days) == {MONDAY, wednesday}
    first_wed = days.index(wednesday)
    assert frames[first_wed].ts_ns[0] >= ns(at(wednesday, 9, 15))
    assert frames[first_wed - 1].ts_ns[-1] < ns(at(MONDAY, 15, 30))
    assert frames[0].ts_ns[0] >= ns(at(MONDAY, 15, 29, 50))  # starts at the clock's time
    # the cumulative volume restarts on the new day
    reliance = [f.qty[f.symbol == 0] for f in frames[first_wed:]]
    assert (
        np.concatenate(reliance)[0]
        < np.concatenate([f.qty[f.symbol == 0] for f in frames[:first_wed]])[-1]
    )


async def test_feed_sleeps_on_the_clock_and_closes_from_another_task(market: SimMarket) -> None:
    clock = ManualClock(at(DAY, 9, 15))
    feed = SimFeed(market, clock, SYMBOLS)
    got: list[TickFrame] = []

    async def consume() -> None:
        async for frame in feed:
            got.append(frame)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(consume())
        await until_sleeping(clock)
        assert got == []
        assert feed.watermark_ns() == ns(at(DAY, 9, 15))
        clock.advance(60.0)  # one minute of frames
        await until_sleeping(clock)
        assert got
        assert all(f.end_ns <= clock.now_ns() for f in got)
        assert feed.watermark_ns() <= clock.now_ns()
        await feed.aclose()  # wakes the sleeping consumer, which stops
    n = len(got)
    assert feed.closed
    assert feed.frames == n
    with pytest.raises(FeedError):
        feed.__aiter__()


async def test_feed_at_full_speed_lets_other_tasks_run(market: SimMarket) -> None:
    beats: list[float] = []

    async def heartbeat() -> None:
        while True:
            beats.append(time.monotonic())
            await asyncio.sleep(0)

    open_ns, close_ns = market.calendar.session_bounds_ns(DAY)
    clock = ManualClock(at(DAY, 18, 0), autojump=True)
    feed = SimFeed(market, clock, SYMBOLS, resume_from_ns=open_ns)
    received: list[float] = []
    beat = asyncio.create_task(heartbeat())
    async with feed:
        async for frame in feed:  # never sleeps: the clock is far ahead
            if frame.end_ns > close_ns:
                break
            received.append(time.monotonic())
            float(np.sum(frame.price))  # a consumer doing a little work per frame
    beat.cancel()
    assert len(received) > 5000
    first, last = received[0], received[-1]
    during = [t for t in beats if first < t < last]
    assert len(during) >= (last - first) / 0.010  # other tasks ran every few ms


def test_feed_arguments(market: SimMarket) -> None:
    clock = ManualClock()
    with pytest.raises(InvalidInputError):
        SimFeed(market, clock, [])
    with pytest.raises(InvalidInputError):
        SimFeed(market, clock, ["NSE:INFY", "NSE:INFY"])
    with pytest.raises(InvalidInputError):
        SimFeed(market, clock, ["NSE:INFY"], frame_ms=0)


# ----------------------------------------------------------------------------- broker


async def test_quotes_on_the_tick_grid(market: SimMarket) -> None:
    now = at(DAY, 11, 0)
    clock = ManualClock(now)
    broker: Broker = SimBroker(SYMBOLS, market=market, clock=clock)
    quotes = await broker.quote(SYMBOLS)
    assert list(quotes) == SYMBOLS
    for symbol, q in quotes.items():
        ticks = market.day_ticks(symbol, DAY)
        i = int(np.searchsorted(ticks.ts_ns, ns(now))) - 1
        assert q.last_price == ticks.price[i]
        assert q.last_trade_ns == ticks.ts_ns[i]
        assert q.volume == ticks.cum_volume[i]
        assert q.bid < q.last_price < q.ask
        assert round(q.ask - q.bid, 9) == 0.1
        for price in (q.bid, q.ask):
            assert price == round(price * 20) / 20
    assert await broker.ltp(["NSE:INFY"]) == {"NSE:INFY": quotes["NSE:INFY"].last_price}

    odd = SimBroker(SYMBOLS, market=market, clock=clock, spread_ticks=1)
    q = (await odd.quote(["NSE:TCS"]))["NSE:TCS"]
    assert q.bid == q.last_price < q.ask == (round(q.last_price * 20) + 1) / 20

    # before the open: the previous session's last trade (Saturday -> Friday's close)
    weekend = SimBroker(SYMBOLS, market=market, clock=ManualClock(at(DAY + timedelta(1), 10, 0)))
    q = (await weekend.quote(["NSE:INFY"]))["NSE:INFY"]
    assert q.last_price == market.day_ticks("NSE:INFY", DAY).price[-1]
    await broker.close()


async def test_broker_subscribe_and_quotes_follow_the_stream(market: SimMarket) -> None:
    clock = ManualClock(at(DAY, 12, 0))
    broker = SimBroker(SYMBOLS, market=market, clock=clock)
    open_ns = market.calendar.session_bounds_ns(DAY)[0]
    feed = await broker.subscribe(SYMBOLS, resume_from_ns=open_ns, frame_ms=100)
    assert feed.symbols == tuple(SYMBOLS)
    assert feed.frame_ms == 100
    # nothing streamed yet: quotes do not run ahead of the stream
    q = (await broker.ltp(["NSE:INFY"]))["NSE:INFY"]
    assert q == market.day_ticks("NSE:INFY", date(2026, 11, 19)).price[-1]
    async with feed:
        async for frame in feed:
            if frame.end_ns >= ns(at(DAY, 10, 0)):
                break
        quote = (await broker.quote(["NSE:INFY"]))["NSE:INFY"]
        assert ns(at(DAY, 9, 59)) < quote.last_trade_ns < ns(at(DAY, 10, 0))
    # the feed closed: quotes are at the clock's time again
    assert (await broker.quote(["NSE:INFY"]))["NSE:INFY"].last_trade_ns > ns(at(DAY, 11, 59))
    await broker.close()
    with pytest.raises(BrokerError):
        await broker.subscribe(SYMBOLS)
    with pytest.raises(InvalidInputError):
        SimBroker(SYMBOLS, market=market, clock=clock, now=lambda: datetime.now(UTC))
