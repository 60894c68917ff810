"""Start-up reconciliation against the fake Kite server and the real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from mental_trader.brokers.kite.rest import KiteRest
from mental_trader.execution.charges import ChargesTable
from mental_trader.execution.kite_state import NOT_PLACED
from mental_trader.execution.reconcile import ReconcileError, reconcile
from mental_trader.models import OrderIntent, OrderStatus, OrderUpdate, Side, TradeStatus
from mental_trader.storage import Store
from mental_trader.testing.fake_kite import FakeKite

from ._kite import WallClock, fake_kite, intent, rest_for


@pytest.fixture
async def kite() -> AsyncIterator[tuple[FakeKite, KiteRest]]:
    async with fake_kite() as fake:
        rest = rest_for(fake)
        try:
            yield fake, rest
        finally:
            await rest.close()


async def _stored(store: Store, order: OrderIntent, status: OrderStatus | None = None) -> None:
    """An intent row, moved to ``status`` as the dead process had left it."""
    assert await store.record_order_intent(order, datetime.now(UTC))
    if status is not None:
        await store.apply_order_update(
            OrderUpdate(order.client_id, "before-crash", status, datetime.now(UTC))
        )


async def _place(rest: KiteRest, order: OrderIntent, tag: str | None = None) -> str:
    """Place ``order`` at the fake as the dead process did (or, untagged, by hand)."""
    exchange, _, name = order.symbol.partition(":")
    placed = await rest.place_order(
        tag=tag or order.client_id,
        exchange=exchange,
        tradingsymbol=name,
        transaction_type=order.side.value,
        order_type=order.order_type,
        quantity=order.qty,
        product=order.product,
        price=order.price,
    )
    return placed.order_id


async def _until_status(fake: FakeKite, tag: str, status: str) -> None:
    async with asyncio.timeout(20):
        while [o["status"] for o in fake.orders_by_tag(tag)] != [status]:  # noqa: ASYNC110 - polls another party's state
            await asyncio.sleep(0.02)


async def test_intent_never_sent_is_marked_not_placed(
    store: Store, kite: tuple[FakeKite, KiteRest]
) -> None:
    fake, rest = kite
    never = intent()
    lost = intent("NSE:RELIANCE")
    await _stored(store, never)
    await _stored(store, lost, OrderStatus.UNKNOWN)  # an ambiguous send that never arrived
    report = await reconcile(store, rest, clock=WallClock())
    assert sorted(report.not_placed) == sorted([never.client_id, lost.client_id])
    for o in (never, lost):
        row = await store.get_order(o.client_id)
        assert row is not None
        assert row.status is OrderStatus.REJECTED
        assert row.message == NOT_PLACED
    assert fake.placements == []  # nothing was sent by reconciliation
    again = await reconcile(store, rest, clock=WallClock())
    assert again.checked == 0


async def test_entry_and_exit_filled_while_down(
    store: Store, kite: tuple[FakeKite, KiteRest], charges: ChargesTable
) -> None:
    fake, rest = kite
    entry = intent(qty=5)
    await _stored(store, entry, OrderStatus.UNKNOWN)
    order_id = await _place(rest, entry)
    await _until_status(fake, entry.client_id, "COMPLETE")

    report = await reconcile(store, rest, clock=WallClock(), charges=charges)
    assert report.opened == [entry.client_id]
    assert report.fills == 1
    assert report.positions == {"NSE:INFY": 5}
    row = await store.get_order(entry.client_id)
    assert row is not None
    assert (row.status, row.filled_qty, row.broker_order_id) == (OrderStatus.FILLED, 5, order_id)
    [fill] = await store.load_fills(client_id=entry.client_id)
    trade = fake.orders.trades[0]
    assert fill.trade_id == f"K{order_id}-{trade.trade_id}"
    assert fill.price == trade.price
    assert fill.charges > 0
    [trip] = await store.load_trades(status=TradeStatus.OPEN)
    assert (trip.id, trip.qty, trip.side, trip.entry_price) == (
        entry.client_id,
        5,
        Side.BUY,
        trade.price,
    )

    exit_ = intent(side=Side.SELL, qty=5)
    await _stored(store, exit_, OrderStatus.SUBMITTED)
    await _place(rest, exit_)
    await _until_status(fake, exit_.client_id, "COMPLETE")
    report = await reconcile(store, rest, clock=WallClock(), charges=charges)
    assert report.closed == [entry.client_id]
    assert report.positions == {}
    [closed] = await store.load_trades()
    assert closed.status is TradeStatus.CLOSED
    assert closed.exit_price == fake.orders.trades[1].price
    assert (await reconcile(store, rest, clock=WallClock())).fills == 0  # idempotent


async def test_order_live_at_start_up_is_cancelled(
    store: Store, kite: tuple[FakeKite, KiteRest]
) -> None:
    fake, rest = kite
    last = (await rest.ltp(["NSE:INFY"]))["NSE:INFY"]
    resting = intent(price=round(last * 0.8, 1))
    await _stored(store, resting, OrderStatus.OPEN)
    await _place(rest, resting)
    await _until_status(fake, resting.client_id, "OPEN")
    report = await reconcile(store, rest, clock=WallClock(), settle_poll_s=0.05)
    assert report.cancelled == [resting.client_id]
    row = await store.get_order(resting.client_id)
    assert row is not None
    assert row.status is OrderStatus.CANCELLED
    assert fake.orders_by_tag(resting.client_id)[0]["status"] == "CANCELLED"


async def test_position_mismatch_refuses_with_the_symbols(
    store: Store, kite: tuple[FakeKite, KiteRest]
) -> None:
    fake, rest = kite
    manual = intent("NSE:RELIANCE", qty=3)
    await _place(rest, manual, tag="BYHAND")  # a trade the store knows nothing of
    await _until_status(fake, "BYHAND", "COMPLETE")
    with pytest.raises(ReconcileError, match="NSE:RELIANCE") as caught:
        await reconcile(store, rest, clock=WallClock())
    assert caught.value.symbols == ("NSE:RELIANCE",)


async def test_our_order_unknown_to_the_store_refuses(
    store: Store, kite: tuple[FakeKite, KiteRest]
) -> None:
    fake, rest = kite
    stray = intent()
    await _place(rest, stray)
    await _until_status(fake, stray.client_id, "COMPLETE")
    with pytest.raises(ReconcileError, match="unknown to the store"):
        await reconcile(store, rest, clock=WallClock())


async def test_unreadable_broker_refuses(store: Store, kite: tuple[FakeKite, KiteRest]) -> None:
    fake, rest = kite
    await _stored(store, intent())
    fake.faults.token_expired = True
    with pytest.raises(ReconcileError, match="order book"):
        await reconcile(store, rest, clock=WallClock())
    row = (await store.load_orders())[0]
    assert row.status is OrderStatus.INTENT  # nothing guessed
