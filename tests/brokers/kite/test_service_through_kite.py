"""End to end through the fake Kite server: BROKER=kite, EXECUTION=live.

The service runs as ``serve`` builds it (``runtime.open_service``): instruments and warm-up
history over Kite's REST API, ticks over the binary WebSocket, orders through the live
gateway (tag = client id) into the fake exchange, fills from its trades. A simulated
session runs at high speed; then the store and the broker must agree: every order once,
nothing orphaned, the round trips' quantities equal to the broker's trades.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, time
from pathlib import Path

import pytest

from mental_trader.brokers.kite.rest import KiteRest
from mental_trader.calendar import IST
from mental_trader.config import Settings
from mental_trader.execution.reconcile import ReconcileError
from mental_trader.models import OrderStatus
from mental_trader.runtime import open_service
from mental_trader.testing.fake_kite import FakeKite

from ._settings import kite_settings

Factory = Callable[..., AbstractAsyncContextManager[FakeKite]]
WATCHLIST = ("NSE:INFY", "NSE:RELIANCE", "NSE:ICICIBANK")


def live_settings(fake: FakeKite, data_dir: Path) -> Settings:
    """EXECUTION=live on ``fake`` with its session token, trading the WATCHLIST."""
    return kite_settings(
        fake,
        data_dir,
        execution="live",
        broker_access_token=fake.access_token,
        watchlist=",".join(WATCHLIST),
    )


async def test_a_session_trades_through_the_fake_kite_server(
    fake_kite_factory: Factory, tmp_path: Path
) -> None:
    start = datetime.combine(datetime(2026, 3, 2).date(), time(11, 0), tzinfo=IST)
    async with fake_kite_factory(start=start, speed=600.0, watchlist=WATCHLIST) as fake:
        settings = live_settings(fake, tmp_path)
        async with open_service(settings, market_now=fake.now) as service:
            await service.start()
            async with asyncio.timeout(120):
                while fake.now().astimezone(IST).time() < time(15, 20):
                    assert not service.last_error, service.last_error
                    await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # the square-off's fills arrive
            assert not service.last_error, service.last_error
            health = service.health()
            assert health["broker_session"].startswith("logged_in")
            status = service.status()
            store = service.store
            orders = await store.load_orders()
            trades = await store.load_trades()
            bars = {s: await store.load_candles(s, 60) for s in WATCHLIST}
            await service.stop()

        # bars from the Kite stream, for every symbol, through the session
        for symbol, candles in bars.items():
            assert len(candles["ts"]) > 200, symbol
            assert status["symbols"][symbol]["bars"]["primary"]["ema_fast"] is not None

        # signals became orders at the broker: each client id at most once (autoslices aside)
        assert orders, "no order in a whole session"
        at_fake = [o.payload() for o in fake.orders.orders.values()]
        tags = Counter(o["tag"] for o in at_fake)
        ours = {o.client_id for o in orders}
        for order in orders:
            at_broker = fake.orders_by_tag(order.client_id)
            if order.status is OrderStatus.REJECTED and not at_broker:
                continue  # refused before it reached the exchange
            assert len(at_broker) == 1, (order.client_id, at_broker)
        assert set(tags) <= ours, "an order at the broker the store does not know"

        # round trips: closed by the square-off, quantities as the broker filled them
        assert len(trades) >= 2, trades
        filled = {o["tag"]: int(o["filled_quantity"]) for o in at_fake if o["status"] == "COMPLETE"}
        for trade in trades:
            assert trade.exit_ts is not None, f"{trade.symbol} still open after square-off"
            assert filled[trade.id] == trade.qty
            assert trade.entry_charges > 0
            assert trade.exit_charges > 0
        assert fake.rate_limit_violations == []


async def test_live_trading_is_refused_when_kite_and_the_store_disagree(
    fake_kite_factory: Factory, tmp_path: Path
) -> None:
    """A position at the broker that the store does not know (a manual trade): start-up
    reconciliation fails, and the service places no order at all."""
    async with fake_kite_factory(watchlist=WATCHLIST) as fake:
        settings = live_settings(fake, tmp_path)
        async with KiteRest(
            fake.api_key, access_token=fake.access_token, base_url=fake.rest_url, clock=fake.now
        ) as rest:
            await rest.place_order(
                tag="manual1",
                exchange="NSE",
                tradingsymbol="INFY",
                transaction_type="BUY",
                order_type="MARKET",
                quantity=5,
                product="MIS",
            )
            for _ in range(200):  # the fake fills on its next tick
                if (await rest.positions()).net:
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the manual order never filled")
        placed = len(fake.placements)
        async with open_service(settings, market_now=fake.now) as service:
            await service.start()
            task = service._task
            assert task is not None
            with pytest.raises(ReconcileError) as info:
                await asyncio.wait_for(task, 30)
            assert "NSE:INFY" in info.value.symbols
            assert "NSE:INFY" in service.last_error
            assert service.health()["status"] == "down"
        assert len(fake.placements) == placed  # nothing of ours reached the broker


async def test_a_flatten_refused_by_a_dead_session_goes_out_right_after_the_login(
    fake_kite_factory: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The token dies with a position open: the operator's flatten is refused by Kite and
    alerted once per symbol (its retries back off: see the executor's tests); the login sends
    it at once, long before the next retry is due."""
    start = datetime.combine(datetime(2026, 3, 2).date(), time(10, 0), tzinfo=IST)
    async with fake_kite_factory(start=start, speed=300.0, watchlist=WATCHLIST) as fake:
        settings = live_settings(fake, tmp_path)
        async with open_service(settings, market_now=fake.now) as service:
            await service.start()
            async with asyncio.timeout(60):
                while not (service.executor and service.executor.positions()):
                    assert not service.last_error, service.last_error
                    await asyncio.sleep(0.05)
            executor = service.executor
            held = {p.symbol for p in executor.positions()}
            fake.faults.token_expired = True
            await service.flatten("operator flatten")
            await asyncio.sleep(7.5)  # flatten retries at about 0, 1, 3 and 7 s; next at 15
            refusals = [
                r.getMessage()
                for r in caplog.records
                if r.name == "mental_trader.execution.executor" and "exit of" in r.getMessage()
            ]
            for symbol in held:
                mine = [m for m in refusals if f"exit of {symbol} " in m]
                assert len(mine) >= 2, mine  # refused, and retried
                assert "TokenException" in mine[0] or "token" in mine[0].lower(), mine[0]
                assert sum("refused" not in m for m in mine) == 1  # one alert, then log lines
            assert {p.symbol for p in executor.positions()} >= held
            await service.broker_login(fake.issue_request_token())
            for _ in range(80):  # 4 s; the next backoff retry is due at about 15 s
                if not held & {p.symbol for p in executor.positions()}:
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail(f"still open 4 s after the login: {executor.positions()}")
            trades = await service.store.load_trades()
            await service.stop()
    closed = [t for t in trades if t.symbol in held and t.exit_reason == "operator flatten"]
    assert {t.symbol for t in closed} == held
