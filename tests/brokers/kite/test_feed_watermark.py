"""KiteFeed's watermark against frames that arrive in a burst (a plain WebSocket server on
loopback sends hand-built frames back to back, as after a short network stall)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from mental_trader.brokers.kite.feed import KiteFeed
from mental_trader.brokers.kite.ticker import KiteTicker
from mental_trader.calendar import IST
from mental_trader.core import Engine
from mental_trader.errors import FeedDisconnected
from mental_trader.storage.base import Candles, dt_to_ns, empty_candles

from ._frames import INFY, frame, full, quote

_DAY = date(2026, 3, 2)
_NS = 1_000_000_000


def _at(hh: int, mm: int, ss: int) -> int:
    """Unix seconds of ``hh:mm:ss`` IST on the test day."""
    return dt_to_ns(datetime.combine(_DAY, time(hh, mm, ss), tzinfo=IST)) // _NS


def _trade(price_paise: int, volume: int, ts_s: int) -> bytes:
    return frame(full(quote(INFY, price_paise, volume=volume), ts=ts_s, last_trade_ts=ts_s))


@asynccontextmanager
async def burst_server(frames: Sequence[bytes]) -> AsyncIterator[str]:
    """A WebSocket server that, once subscribed, sends ``frames`` back to back, then only
    heartbeats; yields its ws:// URL."""

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # the client aborts its socket on close
            for _ in range(2):  # subscribe, mode
                json.loads(await ws.recv())
            for data in frames:
                await ws.send(data)
            while True:
                await asyncio.sleep(0.2)
                await ws.send(b"\x00")

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1] if server.sockets else 0
        yield f"ws://127.0.0.1:{port}"


async def _no_history(symbol: str, tf: int, start: datetime, end: datetime) -> Candles:
    return empty_candles()


async def test_a_burst_of_frames_closes_no_bar_before_its_ticks_are_yielded() -> None:
    """Frames read in one go (a burst after a stall) move the watermark only as they are
    YIELDED: the service closes bars by the watermark after each frame, so a watermark
    taken from frames still queued would close the 10:00 bar before its last tick."""
    burst = [
        _trade(150_000, 100, _at(10, 0, 58)),
        _trade(150_500, 200, _at(10, 0, 59)),  # the 10:00 bar's close
        _trade(151_000, 300, _at(10, 1, 0)),
        _trade(151_500, 400, _at(10, 1, 4)),
    ]
    async with burst_server(burst) as url:
        ticker = KiteTicker(url, "key", "token")
        feed = KiteFeed(
            ticker,
            ["NSE:INFY"],
            [INFY],
            history=_no_history,
            now=lambda: datetime.now(UTC),
        )
        engine = Engine(volume_mode="cumulative")
        closes: list[float] = []
        async with await feed.open():
            await asyncio.sleep(0.3)  # the whole burst is read before the consumer runs
            it = aiter(feed)
            for _ in burst:
                f = await asyncio.wait_for(anext(it), 5.0)
                events = engine.on_frame(f.ts_ns, f.price, f.qty, f.symbol) or []
                events += engine.on_time(feed.watermark_ns()) or []
                closes += [ev.bar.close for ev in events if not ev.is_confirm]
    assert engine.dropped["late"] == 0
    assert closes == [1505.0]


async def _yielded(frames: Sequence[bytes], now: datetime) -> list[tuple[int, float, float]]:
    """(ts_ns, price, qty) of every tick the feed yields for ``frames``."""
    async with burst_server(frames) as url:
        feed = KiteFeed(
            KiteTicker(url, "key", "token"),
            ["NSE:INFY"],
            [INFY],
            history=_no_history,
            now=lambda: now,
        )
        out: list[tuple[int, float, float]] = []
        async with await feed.open():
            it = aiter(feed)
            with contextlib.suppress(TimeoutError):
                while True:
                    f = await asyncio.wait_for(anext(it), 1.0)
                    out += zip(f.ts_ns.tolist(), f.price.tolist(), f.qty.tolist(), strict=True)
    return out


async def test_a_new_day_starts_the_volume_baseline_again() -> None:
    """A socket kept open overnight: the next session's volume starts low, and its trades
    must still come through (not wait until the volume passes yesterday's total)."""
    next_day = _at(10, 0, 0) + 86_400
    ticks = await _yielded(
        [
            _trade(150_000, 900_000, _at(15, 29, 0)),
            _trade(150_100, 900_000, _at(15, 29, 30)),  # no trade since: not a tick
            _trade(151_000, 1_200, next_day),
            _trade(151_500, 1_500, next_day + 5),
        ],
        now=datetime.fromtimestamp(next_day + 10, UTC),
    )
    assert [(p, q) for _, p, q in ticks] == [
        (1500.0, 900_000.0),
        (1510.0, 1_200.0),
        (1515.0, 1_500.0),
    ]


async def test_a_tick_time_far_ahead_of_the_clock_is_held_back() -> None:
    """One stamp a day in the future must not make every later tick late."""
    now_s = _at(10, 0, 30)
    ticks = await _yielded(
        [_trade(150_000, 100, now_s + 86_400), _trade(150_500, 200, now_s)],
        now=datetime.fromtimestamp(now_s, UTC),
    )
    assert [t for t, _, _ in ticks] == [(now_s + 2) * _NS, now_s * _NS]


async def test_a_client_that_cannot_connect_at_all_fails_fast_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unexpected error in the connection loop (here a bad proxy setting) stops the
    client with state ``failed``; opening the feed reports it at once."""
    for name in ("ws_proxy", "wss_proxy", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "foo://127.0.0.1:9")
    ticker = KiteTicker("ws://127.0.0.1:9", "key", "token")
    feed = KiteFeed(
        ticker, ["NSE:INFY"], [INFY], history=_no_history, now=lambda: datetime.now(UTC)
    )
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(FeedDisconnected, match="failed"):
        await feed.open()
    assert loop.time() - t0 < 5.0
    assert ticker.state == "failed"
