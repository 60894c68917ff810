"""Reconciliation repairs the kill point "fill stored, round trip not written" (fake Kite,
real SQLite store), and still refuses a real mismatch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from mental_trader.brokers.kite.rest import KiteRest
from mental_trader.execution.charges import ChargesTable
from mental_trader.execution.kite_state import fill_from_trade
from mental_trader.execution.reconcile import ReconcileError, reconcile
from mental_trader.models import OrderIntent, Side, TradeStatus
from mental_trader.storage import Store
from mental_trader.testing.fake_kite import FakeKite

from ._kite import WallClock, fake_kite, intent, rest_for
from .test_reconcile import _place, _until_status


@pytest.fixture
async def kite() -> AsyncIterator[tuple[FakeKite, KiteRest]]:
    async with fake_kite() as fake:
        rest = rest_for(fake)
        try:
            yield fake, rest
        finally:
            await rest.close()


async def _filled_then_killed(
    store: Store, fake: FakeKite, rest: KiteRest, order: OrderIntent
) -> None:
    """The dead process placed ``order``, saw it fill, stored the fill (the order is
    FILLED in the store), and died before writing the round trip."""
    assert await store.record_order_intent(order, datetime.now(UTC))
    order_id = await _place(rest, order)
    await _until_status(fake, order.client_id, "COMPLETE")
    for trade in await rest.order_trades(order_id):
        fill = fill_from_trade(trade, order.client_id, order.symbol, order.side, datetime.now(UTC))
        assert await store.apply_fill(fill)


async def test_entry_fill_stored_without_round_trip_is_opened(
    store: Store, kite: tuple[FakeKite, KiteRest], charges: ChargesTable
) -> None:
    fake, rest = kite
    entry = intent(qty=7)
    await _filled_then_killed(store, fake, rest, entry)
    assert await store.load_trades() == []
    report = await reconcile(store, rest, clock=WallClock(), charges=charges)
    assert report.opened == [entry.client_id]
    assert report.positions == {"NSE:INFY": 7}
    (trip,) = await store.load_trades()
    assert (trip.id, trip.qty, trip.status) == (entry.client_id, 7, TradeStatus.OPEN)
    assert trip.entry_price == fake.orders.trades[0].price
    again = await reconcile(store, rest, clock=WallClock(), charges=charges)
    assert (again.opened, again.positions) == ([], {"NSE:INFY": 7})  # idempotent


async def test_exit_fill_stored_without_close_is_closed(
    store: Store, kite: tuple[FakeKite, KiteRest], charges: ChargesTable
) -> None:
    fake, rest = kite
    entry = intent(qty=4)
    await _filled_then_killed(store, fake, rest, entry)
    await reconcile(store, rest, clock=WallClock(), charges=charges)
    exit_ = intent(side=Side.SELL, qty=4)
    await _filled_then_killed(store, fake, rest, exit_)
    report = await reconcile(store, rest, clock=WallClock(), charges=charges)
    assert report.closed == [entry.client_id]
    assert report.positions == {}
    (trip,) = await store.load_trades()
    assert trip.status is TradeStatus.CLOSED
    assert trip.exit_price == fake.orders.trades[1].price


async def test_stored_fills_that_kite_does_not_hold_still_refuse(
    store: Store, kite: tuple[FakeKite, KiteRest], charges: ChargesTable
) -> None:
    fake, rest = kite
    entry = intent(qty=5)
    await _filled_then_killed(store, fake, rest, entry)
    await reconcile(store, rest, clock=WallClock(), charges=charges)
    by_hand = intent(qty=2)  # a trade outside the store: Kite holds 7, the store 5
    await _place(rest, by_hand, tag="BYHAND")
    await _until_status(fake, "BYHAND", "COMPLETE")
    with pytest.raises(ReconcileError, match=r"NSE:INFY \(Kite 7, store 5\)") as caught:
        await reconcile(store, rest, clock=WallClock(), charges=charges)
    assert caught.value.symbols == ("NSE:INFY",)
