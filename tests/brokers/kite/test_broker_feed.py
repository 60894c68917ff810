"""KiteBroker and KiteFeed against the fake Kite server on loopback: instruments, history,
quotes, the live stream, and recovery from every WebSocket fault."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from mental_trader.brokers.base import TickFrame
from mental_trader.brokers.kite.broker import KiteBroker
from mental_trader.brokers.kite.feed import KiteFeed, candles_to_ticks
from mental_trader.brokers.kite.rest import KiteRest
from mental_trader.core import Engine, build_bars
from mental_trader.errors import FeedDisconnected, InvalidInputError
from mental_trader.storage.base import ns_to_dt
from mental_trader.testing.fake_kite import FakeKite

SYMBOLS = ["NSE:INFY", "NSE:RELIANCE", "NSE:NIFTY 50"]
Factory = Callable[..., AbstractAsyncContextManager[FakeKite]]


@asynccontextmanager
async def kite_broker(fake: FakeKite, **kwargs: Any) -> AsyncIterator[KiteBroker]:
    rest = KiteRest(
        fake.api_key, access_token=fake.access_token, base_url=fake.rest_url, clock=fake.now
    )
    async with KiteBroker(
        rest, api_key=fake.api_key, ws_url=fake.ws_url, now=fake.now, **kwargs
    ) as broker:
        yield broker


async def next_frames(feed: KiteFeed, n: int, timeout_s: float = 10.0) -> list[TickFrame]:
    out: list[TickFrame] = []
    it = aiter(feed)

    async def pull() -> None:
        while len(out) < n:
            out.append(await anext(it))

    await asyncio.wait_for(pull(), timeout_s)
    return out


async def test_instruments_history_and_quotes_match_the_market(fake_kite: FakeKite) -> None:
    async with kite_broker(fake_kite) as broker:
        listed = {i.symbol: i for i in await broker.instruments()}
        for symbol in SYMBOLS:
            assert listed[symbol].instrument_token == fake_kite.token_of(symbol)
        assert listed["NSE:NIFTY 50"].instrument_token == 256265
        assert any(i.instrument_type == "CE" for i in listed.values())

        end = fake_kite.now().replace(second=0, microsecond=0)
        start = end - timedelta(minutes=30)
        got = await broker.history("NSE:INFY", 60, start, end)
        want = await fake_kite.sim.history("NSE:INFY", 60, start, end)
        assert len(got["ts"]) >= 25
        np.testing.assert_array_equal(got["ts"], want["ts"])
        for col in ("open", "high", "low", "close", "volume"):
            np.testing.assert_allclose(got[col], want[col], rtol=0, atol=1e-9)

        quotes = await broker.quote(["NSE:INFY", "NSE:RELIANCE"])
        for q in quotes.values():
            assert q.bid < q.ask
            assert q.bid <= q.last_price + 1e-9 or q.ask >= q.last_price - 1e-9
            assert q.volume > 0
        ltp = await broker.ltp(["NSE:INFY"])
        assert ltp["NSE:INFY"] == pytest.approx(quotes["NSE:INFY"].last_price, rel=0.02)
    assert fake_kite.rate_limit_violations == []


async def test_freeze_quantities_from_settings_reach_the_option_contracts(
    fake_kite: FakeKite,
) -> None:
    async with kite_broker(fake_kite, freeze_qty={"NIFTY": 1800}) as broker:
        listed = await broker.instruments()
    options = [i for i in listed if i.instrument_type in ("CE", "PE")]
    assert options
    assert {i.freeze_qty for i in options if i.underlying == "NSE:NIFTY 50"} == {1800}
    assert next(i for i in listed if i.symbol == "NSE:INFY").freeze_qty is None


async def test_feed_yields_engine_frames_of_trades(fake_kite: FakeKite) -> None:
    async with kite_broker(fake_kite) as broker:
        feed = await broker.subscribe(SYMBOLS)
        async with feed:
            assert feed.symbols == tuple(SYMBOLS)
            frames = await next_frames(feed, 20)
    engine = Engine(volume_mode="cumulative")
    last_volume = {0: -1.0, 1: -1.0}
    seen = set()
    for frame in frames:
        assert frame.ts_ns.dtype == np.int64
        assert frame.symbol.dtype == np.int64
        assert not frame.price.flags.writeable
        assert (frame.ts_ns < frame.end_ns).all()
        engine.on_frame(frame.ts_ns, frame.price, frame.qty, frame.symbol)  # accepted as is
        for sid, qty in zip(frame.symbol.tolist(), frame.qty.tolist(), strict=True):
            seen.add(sid)
            if sid == 2:
                assert qty == 0.0  # the index has no volume
            else:
                assert qty > last_volume[sid], "a tradable's tick is a trade: volume grows"
                last_volume[sid] = qty
    assert seen == {0, 1, 2}
    assert 0 < feed.watermark_ns() <= int(max(f.ts_ns.max() for f in frames))


def test_candles_replay_as_ticks_rebuilds_the_bars() -> None:
    """The backfill's ticks give back the candles' bars, volume from the second bucket on."""
    base = 1_700_000_000 * 1_000_000_000 // 60_000_000_000 * 60_000_000_000
    candles = {
        "ts": np.array([base, base + 60_000_000_000, base + 180_000_000_000]),
        "open": np.array([100.0, 101.0, 99.0]),
        "high": np.array([102.0, 101.5, 100.0]),
        "low": np.array([99.5, 98.0, 98.5]),
        "close": np.array([101.0, 99.0, 99.5]),
        "volume": np.array([500.0, 700.0, 300.0]),
        "ticks": np.array([1, 1, 1]),
    }
    ts, price, qty = candles_to_ticks(candles, 60, 10_000.0, volume_from_ns=base + 60_000_000_000)
    assert len(ts) == 12
    assert (np.diff(ts) > 0).all()
    np.testing.assert_array_equal(qty[:4], 10_000.0)  # the partly seen bucket adds none
    assert qty[-1] == 11_000.0
    bars = build_bars(
        ts,
        price,
        np.diff(qty, prepend=10_000.0),
        timeframe_s=60,
        session_start=None,
        session_end=None,
    )
    np.testing.assert_array_equal(bars["ts"], candles["ts"])
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(bars[col], candles[col])
    np.testing.assert_array_equal(bars["volume"], [0.0, 700.0, 300.0])


async def _drop_and_measure(fake: FakeKite, feed: KiteFeed, fault: Callable[[], None]) -> float:
    it = aiter(feed)
    await asyncio.wait_for(anext(it), 10)
    connections = feed.ticker.connections
    fault()
    t0 = time.perf_counter()
    while feed.ticker.connections == connections or feed.ticker.state != "live":
        await asyncio.sleep(0.01)
        assert time.perf_counter() - t0 < 20, "no reconnect"
    elapsed = time.perf_counter() - t0
    await asyncio.wait_for(anext(it), 10)  # ticks flow again
    return elapsed


async def test_dropped_socket_reconnects_resubscribes_and_backfills(
    fake_kite_factory: Factory,
) -> None:
    async with fake_kite_factory(speed=120.0) as fake, kite_broker(fake) as broker:
        feed = await broker.subscribe(SYMBOLS)
        async with feed:
            await next_frames(feed, 3)

            def drop() -> None:
                fake.faults.ws_drop = True

            elapsed = await _drop_and_measure(fake, feed, drop)
            assert feed.backfills == 1  # the backfill step ran before frames flowed again
            assert set(feed.ticker.subscriptions) == {fake.token_of(s) for s in SYMBOLS}
            assert elapsed <= 3.0, f"reconnect + resubscribe + backfill took {elapsed:.2f} s"
    assert fake.rate_limit_violations == []


async def test_bars_missed_during_an_outage_are_rebuilt_from_candles(
    fake_kite_factory: Factory,
) -> None:
    """Three refused handshakes keep the socket down for several simulated minutes: the
    minutes missed entirely come back bar for bar as the exchange's candles."""
    async with fake_kite_factory(speed=120.0) as fake, kite_broker(fake) as broker:
        feed = await broker.subscribe(SYMBOLS)
        engine = Engine(volume_mode="cumulative")
        bars: dict[int, list[Any]] = {0: [], 1: [], 2: []}
        async with feed:
            it = aiter(feed)
            await asyncio.wait_for(anext(it), 10)
            down_at = fake.now_ns()
            fake.faults.ws_refuse_handshakes = 3
            fake.faults.ws_drop = True
            async with asyncio.timeout(20):
                while feed.backfills == 0:
                    frame = await anext(it)
                    for ev in (
                        engine.on_frame(frame.ts_ns, frame.price, frame.qty, frame.symbol) or ()
                    ):
                        if not ev.is_confirm:
                            bars[ev.symbol].append(ev.bar)
                up_at = fake.now_ns()
                frame = await anext(it)  # the backfill's frame, then live ones
                for ev in engine.on_frame(frame.ts_ns, frame.price, frame.qty, frame.symbol) or ():
                    if not ev.is_confirm:
                        bars[ev.symbol].append(ev.bar)
        assert feed.backfilled_ticks > 0
        minute = 60_000_000_000
        first_missed = down_at - down_at % minute + minute  # wholly inside the outage
        # up_at is read after the backfill: a minute boundary may have passed since its
        # candles were fetched (0.5 s at 120x), and the minute then forming is not a candle
        last_missed = up_at - up_at % minute - 2 * minute
        assert last_missed > first_missed, "the outage was too short to miss a whole minute"
        for sid, symbol in enumerate(SYMBOLS):
            want = await fake.sim.history(
                symbol, 60, ns_to_dt(first_missed), ns_to_dt(last_missed + minute)
            )
            got = {b.ts: b for b in bars[sid] if first_missed <= b.ts <= last_missed}
            assert sorted(got) == want["ts"].tolist(), symbol
            for i, ts in enumerate(want["ts"].tolist()):
                b = got[ts]
                assert (b.open, b.high, b.low, b.close) == (
                    want["open"][i],
                    want["high"][i],
                    want["low"][i],
                    want["close"][i],
                ), symbol
                if sid != 2:
                    assert b.volume == want["volume"][i], symbol


async def test_silent_socket_is_declared_dead_and_rebuilt(fake_kite_factory: Factory) -> None:
    async with fake_kite_factory() as fake, kite_broker(fake, silence_s=0.6) as broker:
        feed = await broker.subscribe(SYMBOLS)
        async with feed:

            def silence() -> None:
                fake.faults.ws_silent = True
                asyncio.get_running_loop().call_later(0.9, setattr, fake.faults, "ws_silent", False)

            await _drop_and_measure(fake, feed, silence)
            assert "silent" in feed.ticker.last_disconnect or feed.ticker.connections >= 2
            assert feed.ticker.connections >= 2


async def test_refused_handshakes_are_retried_with_backoff(fake_kite_factory: Factory) -> None:
    async with fake_kite_factory() as fake, kite_broker(fake) as broker:
        feed = await broker.subscribe(SYMBOLS)
        async with feed:

            def refuse_then_drop() -> None:
                fake.faults.ws_refuse_handshakes = 2
                fake.faults.ws_drop = True

            await _drop_and_measure(fake, feed, refuse_then_drop)
            assert fake.faults.ws_refuse_handshakes == 0  # both refusals were used
            assert feed.ticker.state == "live"


async def test_expired_token_stops_reconnecting_and_reports_once(
    fake_kite_factory: Factory,
) -> None:
    failures: list[str] = []
    async with fake_kite_factory() as fake, kite_broker(fake) as broker:
        broker.on_auth_failure = failures.append
        feed = await broker.subscribe(SYMBOLS)
        async with feed:
            it = aiter(feed)
            await asyncio.wait_for(anext(it), 10)
            fake.faults.token_expired = True
            fake.faults.ws_drop = True

            async def drain() -> None:
                async with asyncio.timeout(10):
                    while True:
                        await anext(it)

            with pytest.raises(FeedDisconnected) as info:
                await drain()
            assert info.value.retryable is False
            assert feed.ticker.state == "token_expired"
            await asyncio.sleep(0.5)
    assert len(failures) == 1
    assert "log in" in failures[0]
    assert fake.access_token not in failures[0]


async def test_the_websocket_url_and_token_are_never_logged(
    fake_kite_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with fake_kite_factory() as fake, kite_broker(fake) as broker:
        feed = await broker.subscribe(SYMBOLS)
        async with feed:

            def drop() -> None:
                fake.faults.ws_drop = True

            await _drop_and_measure(fake, feed, drop)
            assert repr(feed.ticker).count(fake.access_token) == 0
    assert any("Kite WebSocket" in r.getMessage() for r in caplog.records)
    assert fake.access_token not in caplog.text
    assert "access_token=" not in caplog.text


async def test_option_chain_over_rest_matches_the_exchange(fake_kite: FakeKite) -> None:
    """The chain built from the instrument dump and one batch of quotes: every listed strike
    of the expiry, each side's contracts and touch as the exchange quotes them."""
    async with kite_broker(fake_kite) as broker:
        listed = await broker.instruments()
        expiries = sorted({i.expiry for i in listed if i.underlying == "NSE:NIFTY 50" and i.expiry})
        assert expiries
        chain = await broker.option_chain("NSE:NIFTY 50", expiries[0])
        want = await fake_kite.sim.option_chain("NSE:NIFTY 50", expiries[0])
        with pytest.raises(InvalidInputError):
            await broker.option_chain("NSE:NIFTY 50", expiries[0].replace(year=2030))
    np.testing.assert_array_equal(chain.strike, want.strike)
    assert chain.ce.symbols == want.ce.symbols
    assert chain.pe.symbols == want.pe.symbols
    assert chain.lot_size == want.lot_size
    quoted = ~np.isnan(chain.ce.bid) & ~np.isnan(chain.ce.ask)
    assert quoted.sum() >= len(chain.strike) // 2
    assert (chain.ce.bid[quoted] < chain.ce.ask[quoted]).all()
    assert chain.spot == pytest.approx(want.spot, rel=0.01)
