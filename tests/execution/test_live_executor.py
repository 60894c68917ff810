"""The executor trading through the Kite gateway and the fake Kite server (one round trip)."""

from __future__ import annotations

import asyncio
import contextlib

from mental_trader.config import load_settings
from mental_trader.execution.charges import ChargesTable
from mental_trader.execution.executor import Executor
from mental_trader.models import OrderStatus, Side, TradeStatus
from mental_trader.risk import RiskManager
from mental_trader.storage import Store

from ._kite import WallClock, live_rig
from .conftest import BASE_SETTINGS


async def test_entry_and_exit_through_kite(store: Store, charges: ChargesTable) -> None:
    async with live_rig() as rig:
        clock = WallClock()
        settings = load_settings(_env_file=None, **BASE_SETTINGS)
        executor = Executor(store, rig.gateway, RiskManager(settings, clock), charges, clock)
        task = asyncio.create_task(executor.run())
        try:
            entered = await executor.enter("NSE:INFY", Side.BUY, 4, 1500.0, "test", strategy="t")
            assert entered.ok, entered.reason
            await rig.wait_for(lambda: [p.qty for p in executor.positions()] == [4])
            exited = await executor.exit("NSE:INFY", "done")
            assert exited.ok, exited.reason
            await rig.wait_for(lambda: executor.is_flat)
            await executor.pump()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        [trade] = await store.load_trades()
        assert trade.status is TradeStatus.CLOSED
        assert trade.entry_charges > 0  # priced by the executor's table
        prices = [t.price for t in rig.fake.orders.trades]
        assert (trade.entry_price, trade.exit_price) == (prices[0], prices[1])
        for client_id in (entered.client_id, exited.client_id):
            row = await store.get_order(client_id or "")
            assert row is not None
            assert row.status is OrderStatus.FILLED
            assert len(rig.fake.orders_by_tag(client_id or "")) == 1
