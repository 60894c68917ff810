"""KiteRest's order endpoints against the fake Kite server on loopback: place / modify /
cancel, the order book, trades, positions, refusals, ambiguous placements, rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from mental_trader.brokers.kite.errors import (
    KiteInputError,
    KiteOrderUnknownError,
    KiteRateLimitError,
    KiteTransportError,
)
from mental_trader.brokers.kite.payloads import KiteOrder
from mental_trader.brokers.kite.rest import KiteRest
from mental_trader.errors import InvalidInputError
from mental_trader.execution.orders import new_client_id
from mental_trader.testing.fake_kite import FakeKite


@pytest.fixture
async def kite(fake_kite: FakeKite) -> AsyncIterator[KiteRest]:
    async with KiteRest(
        fake_kite.api_key,
        access_token=fake_kite.access_token,
        base_url=fake_kite.rest_url,
        clock=fake_kite.now,
    ) as client:
        yield client


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:  # polling the REST order book is the behaviour under test
            if await check():
                return
            await asyncio.sleep(0.05)


async def _far_limit(kite: KiteRest, tag: str, qty: int = 1) -> str:
    """A BUY LIMIT far below the market (it rests OPEN)."""
    ltp = (await kite.ltp(["NSE:INFY"]))["NSE:INFY"]
    result = await kite.place_order(
        tag=tag, exchange="NSE", tradingsymbol="INFY", transaction_type="BUY",
        order_type="LIMIT", quantity=qty, product="MIS", price=round(ltp * 0.8, 1),
    )  # fmt: skip
    return result.order_id


async def test_limit_order_lifecycle(kite: KiteRest, fake_kite: FakeKite) -> None:
    tag = new_client_id()
    order_id = await _far_limit(kite, tag)
    book = await kite.orders_by_tag(tag)
    assert [o.order_id for o in book] == [order_id]
    order = book[0]
    assert isinstance(order, KiteOrder)
    assert order.symbol == "NSE:INFY"
    assert (order.transaction_type, order.order_type, order.product) == ("BUY", "LIMIT", "MIS")
    assert order.quantity == 1
    assert order.order_timestamp is not None
    assert order.order_timestamp.tzinfo is not None
    # A LIMIT order carries no market protection.
    assert fake_kite.orders_by_tag(tag)[0]["market_protection"] == 0

    await _until(lambda: _status_is(kite, order_id, "OPEN"))
    new_price = round(order.price - 1.0, 1)
    assert await kite.modify_order(order_id, price=new_price) == order_id
    await _until(lambda: _price_is(kite, order_id, new_price))
    assert await kite.cancel_order(order_id) == order_id
    await _until(lambda: _status_is(kite, order_id, "CANCELLED"))
    history = await kite.order_history(order_id)
    statuses = [h.status for h in history]
    assert statuses[-1] == "CANCELLED"
    assert "OPEN" in statuses
    assert await kite.order_trades(order_id) == []


async def _status_is(kite: KiteRest, order_id: str, status: str) -> bool:
    return (await kite.order_history(order_id))[-1].status == status


async def _price_is(kite: KiteRest, order_id: str, price: float) -> bool:
    return (await kite.order_history(order_id))[-1].price == price


async def test_market_order_fills_with_protection(kite: KiteRest, fake_kite: FakeKite) -> None:
    tag = new_client_id()
    result = await kite.place_order(
        tag=tag, exchange="NSE", tradingsymbol="INFY", transaction_type="BUY",
        order_type="MARKET", quantity=3, product="MIS",
    )  # fmt: skip
    assert result.children == ()
    assert fake_kite.orders_by_tag(tag)[0]["market_protection"] == -1  # the client default
    await _until(lambda: _status_is(kite, result.order_id, "COMPLETE"))
    trades = await kite.order_trades(result.order_id)
    assert sum(t.quantity for t in trades) == 3
    assert all(t.order_id == result.order_id for t in trades)
    assert all(t.fill_timestamp is not None and t.fill_timestamp.tzinfo for t in trades)
    assert {t.trade_id for t in trades} <= {t.trade_id for t in await kite.trades()}
    positions = await kite.positions()
    infy = [p for p in positions.net if p.symbol == "NSE:INFY" and p.product == "MIS"]
    assert [p.quantity for p in infy] == [3]
    assert infy[0].average_price == pytest.approx(trades[0].average_price)
    assert any(p.symbol == "NSE:INFY" for p in positions.day)


async def test_custom_market_protection(kite: KiteRest, fake_kite: FakeKite) -> None:
    tag = new_client_id()
    await kite.place_order(
        tag=tag, exchange="NSE", tradingsymbol="INFY", transaction_type="SELL",
        order_type="MARKET", quantity=1, product="MIS", market_protection=2.5,
    )  # fmt: skip
    assert fake_kite.orders_by_tag(tag)[0]["market_protection"] == 2.5


async def test_autoslice_above_freeze_quantity(kite: KiteRest, fake_kite: FakeKite) -> None:
    options = [
        i for i in await fake_kite.sim.instruments()
        if i.instrument_type == "CE" and i.freeze_qty and i.underlying == "NSE:NIFTY 50"
    ]  # fmt: skip
    opt = options[len(options) // 2]
    assert opt.freeze_qty is not None
    lots_per_slice = opt.freeze_qty // opt.lot_size
    qty = (lots_per_slice * 2 + 1) * opt.lot_size  # two full slices and a remainder
    tag = new_client_id()
    result = await kite.place_order(
        tag=tag, exchange="NFO", tradingsymbol=opt.tradingsymbol, transaction_type="BUY",
        order_type="MARKET", quantity=qty, product="NRML", freeze_qty=opt.freeze_qty,
    )  # fmt: skip
    assert len(result.children) == 2
    assert all(c.order_id and c.error_type is None for c in result.children)
    slices = await kite.orders_by_tag(tag)
    assert {o.order_id for o in slices} == {result.order_id, *(c.order_id for c in result.children)}
    assert sum(o.quantity for o in slices) == qty
    # Without freeze_qty the same order is refused (no autoslice flag): nothing is created.
    with pytest.raises(KiteInputError, match="freeze"):
        await kite.place_order(
            tag=new_client_id(), exchange="NFO", tradingsymbol=opt.tradingsymbol,
            transaction_type="BUY", order_type="MARKET", quantity=qty, product="NRML",
        )  # fmt: skip


async def test_refusals_are_not_ambiguous(kite: KiteRest, fake_kite: FakeKite) -> None:
    placed = len(fake_kite.placements)
    with pytest.raises(KiteInputError) as info:
        await kite.place_order(
            tag=new_client_id(), exchange="NSE", tradingsymbol="NOSUCHTHING",
            transaction_type="BUY", order_type="MARKET", quantity=1, product="MIS",
        )  # fmt: skip
    assert info.value.status == 400
    assert info.value.ambiguous is False
    assert len(fake_kite.placements) == placed


async def test_client_side_validation(kite: KiteRest, fake_kite: FakeKite) -> None:
    count = fake_kite.request_count
    base = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY",
            "product": "MIS", "quantity": 1}  # fmt: skip
    bad_calls = [
        {**base, "tag": "has-dash", "order_type": "MARKET"},
        {**base, "tag": "A" * 21, "order_type": "MARKET"},
        {**base, "tag": "", "order_type": "MARKET"},
        {**base, "tag": "ok1", "order_type": "LIMIT"},  # no price
        {**base, "tag": "ok1", "order_type": "SL-M"},  # no trigger
        {**base, "tag": "ok1", "order_type": "MARKET", "quantity": 0},
        {**base, "tag": "ok1", "order_type": "MARKET", "market_protection": 0},
        {**base, "tag": "ok1", "order_type": "STOP"},
        {**base, "tag": "ok1", "order_type": "MARKET", "transaction_type": "HOLD"},
    ]
    for kwargs in bad_calls:
        with pytest.raises(InvalidInputError):
            await kite.place_order(**kwargs)  # type: ignore[arg-type]
    assert fake_kite.request_count == count  # refused before anything was sent


async def test_rms_rejection_after_acceptance(kite: KiteRest, fake_kite: FakeKite) -> None:
    fake_kite.faults.rms_reject_next = 1
    tag = new_client_id()
    result = await kite.place_order(
        tag=tag, exchange="NSE", tradingsymbol="INFY", transaction_type="BUY",
        order_type="MARKET", quantity=1, product="MIS",
    )  # fmt: skip
    await _until(lambda: _status_is(kite, result.order_id, "REJECTED"))
    last = (await kite.order_history(result.order_id))[-1]
    assert last.status_message is not None
    assert "RMS" in last.status_message


async def test_placement_429_is_not_retried(kite: KiteRest, fake_kite: FakeKite) -> None:
    fake_kite.faults.rate_limit_next = 1
    tag = new_client_id()
    count = fake_kite.request_count
    with pytest.raises(KiteRateLimitError) as info:
        await kite.place_order(
            tag=tag, exchange="NSE", tradingsymbol="INFY", transaction_type="BUY",
            order_type="MARKET", quantity=1, product="MIS",
        )  # fmt: skip
    assert info.value.ambiguous is False  # refused before the OMS: no order
    assert fake_kite.request_count - count == 1
    assert fake_kite.orders_by_tag(tag) == []


async def test_delayed_placement_is_ambiguous_and_found_by_tag(fake_kite: FakeKite) -> None:
    fake_kite.faults.delay_next_orders = 1
    fake_kite.faults.order_delay_s = 5.0
    tag = new_client_id()
    async with KiteRest(
        fake_kite.api_key,
        access_token=fake_kite.access_token,
        base_url=fake_kite.rest_url,
        timeout_s=0.5,
    ) as kite:
        placed = len(fake_kite.placements)
        with pytest.raises(KiteOrderUnknownError) as info:
            await kite.place_order(
                tag=tag, exchange="NSE", tradingsymbol="INFY", transaction_type="BUY",
                order_type="MARKET", quantity=2, product="MIS",
            )  # fmt: skip
        assert info.value.ambiguous is True
        assert isinstance(info.value.__cause__, KiteTransportError)
        assert len(fake_kite.placements) - placed == 1  # sent once, never retried
        found = await kite.orders_by_tag(tag)
    assert len(found) == 1
    assert found[0].quantity == 2
    assert found[0].order_id == fake_kite.placements[-1]


async def test_order_burst_stays_under_the_limit(kite: KiteRest, fake_kite: FakeKite) -> None:
    ltp = (await kite.ltp(["NSE:INFY"]))["NSE:INFY"]
    price = round(ltp * 0.8, 1)

    async def place() -> str:
        result = await kite.place_order(
            tag=new_client_id(), exchange="NSE", tradingsymbol="INFY", transaction_type="BUY",
            order_type="LIMIT", quantity=1, product="MIS", price=price,
        )  # fmt: skip
        return result.order_id

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(place()) for _ in range(20)]
        for _ in range(12):
            tg.create_task(kite.orders())
    ids = [t.result() for t in tasks]
    async with asyncio.TaskGroup() as tg:
        for order_id in ids[:10]:
            tg.create_task(kite.cancel_order(order_id))
        for order_id in ids[10:]:
            tg.create_task(kite.modify_order(order_id, price=price - 1))
    assert fake_kite.rate_limit_violations == []
    assert len(fake_kite.requests_in_scope("orders")) == 40
    assert fake_kite.rates.max_in_window("orders") <= 8
