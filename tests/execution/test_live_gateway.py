"""The Kite gateway against the fake Kite server on loopback (REST + WebSocket, no mocks)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mental_trader.errors import BrokerError
from mental_trader.execution.kite_state import NOT_PLACED, Slice, fold, kite_status
from mental_trader.execution.live import KiteGateway
from mental_trader.models import Fill, OrderStatus, OrderUpdate, Side

from ._kite import WallClock, fake_kite, intent, live_rig, rest_for


def _book_ids(fake: object, tag: str) -> list[str]:
    return [o["order_id"] for o in fake.orders_by_tag(tag)]  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- pure parts


def test_kite_statuses_map_to_ours() -> None:
    assert kite_status("COMPLETE") is OrderStatus.FILLED
    assert kite_status("REJECTED") is OrderStatus.REJECTED
    assert kite_status("CANCELLED") is OrderStatus.CANCELLED
    assert kite_status("CANCELLED AMO") is OrderStatus.CANCELLED
    for live in ("OPEN", "TRIGGER PENDING", "UPDATE"):
        assert kite_status(live) is OrderStatus.OPEN
    for transient in ("PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING",
                      "MODIFY PENDING", "CANCEL PENDING", "AMO REQ RECEIVED"):  # fmt: skip
        assert kite_status(transient) is OrderStatus.SUBMITTED


def test_fold_of_slices() -> None:
    def piece(status: str, qty: int, filled: int, message: str = "") -> Slice:
        return Slice("1", status=status, quantity=qty, filled=filled, message=message)

    assert fold(10, [piece("COMPLETE", 10, 10)]) == (OrderStatus.FILLED, "")
    assert fold(20, [piece("COMPLETE", 10, 10), piece("OPEN", 10, 0)])[0] is OrderStatus.OPEN
    assert fold(20, [piece("COMPLETE", 10, 10), piece("OPEN PENDING", 10, 0)])[0] is (
        OrderStatus.SUBMITTED
    )
    status, message = fold(20, [piece("COMPLETE", 10, 10), piece("CANCELLED", 10, 0)])
    assert status is OrderStatus.CANCELLED
    assert "filled 10 of 20" in message
    assert fold(10, [piece("REJECTED", 10, 0, "RMS: margin")]) == (
        OrderStatus.REJECTED,
        "RMS: margin",
    )
    # filled by fills applied, not by the slices' word: the fills are not all in yet
    assert fold(10, [piece("COMPLETE", 10, 10)], filled=4)[0] is OrderStatus.CANCELLED


# ----------------------------------------------------------------------------- orders


async def test_market_order_fills_once_per_trade_and_stays_within_rate_limits() -> None:
    async with live_rig() as rig:
        order = intent(qty=7)
        result = await rig.gateway.submit(order)
        assert result.accepted
        assert result.status is OrderStatus.SUBMITTED
        assert result.broker_order_id == _book_ids(rig.fake, order.client_id)[0]
        await rig.wait_for(lambda: rig.gateway.working() == [])
        trades = [t for t in rig.fake.orders.trades if t.order.tag == order.client_id]
        fills = rig.fills(order.client_id)
        assert [f.trade_id for f in fills] == [f"K{t.order.order_id}-{t.trade_id}" for t in trades]
        assert sum(f.qty for f in fills) == 7
        assert fills[0].price == trades[0].price
        assert fills[0].side is Side.BUY
        assert fills[0].charges == 0.0  # the executor prices live fills
        assert rig.statuses(order.client_id) == [OrderStatus.OPEN]
        await asyncio.sleep(1.2)  # two more polls: nothing is reported twice
        assert len(rig.fills(order.client_id)) == len(trades)
        assert rig.fake.rate_limit_violations == []


async def test_autosliced_order_reports_each_slice_trade() -> None:
    async with fake_kite() as fake:
        listing = await fake.listing()
        option = next(
            k.instrument
            for k in listing
            if k.instrument.instrument_type == "CE" and k.instrument.freeze_qty
        )
        assert option.freeze_qty is not None
        whole = option.freeze_qty - option.freeze_qty % option.lot_size  # whole lots
        qty = whole * 2 + option.lot_size  # three slices
        rest = rest_for(fake)
        events: list[object] = []
        gateway = KiteGateway(
            rest, instruments={option.symbol: option}, clock=WallClock(), poll_interval_s=0.3
        )
        gateway.set_listener(events.append)
        task = asyncio.create_task(gateway.run())
        try:
            order = intent(option.symbol, qty=qty)
            assert (await gateway.submit(order)).accepted
            async with asyncio.timeout(20):
                while gateway.working():  # noqa: ASYNC110 - polls another party's state
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await rest.close()
        slices = fake.orders_by_tag(order.client_id)
        assert len(slices) == 3
        fills = [e for e in events if isinstance(e, Fill)]
        assert sorted(f.qty for f in fills) == sorted(s["quantity"] for s in slices)
        assert len({f.trade_id for f in fills}) == 3


async def test_rms_rejection_after_acceptance_is_reported() -> None:
    async with live_rig() as rig:
        rig.fake.faults.rms_reject_next = 1
        order = intent()
        result = await rig.gateway.submit(order)
        assert result.accepted  # the OMS took it; the RMS says no afterwards
        await rig.wait_for(lambda: OrderStatus.REJECTED in rig.statuses(order.client_id))
        rejected = rig.updates(order.client_id)[-1]
        assert "RMS" in rejected.message
        assert rig.fills(order.client_id) == []
        assert rig.gateway.working() == []


async def test_clear_rejection_returns_rejected_without_raising() -> None:
    async with live_rig(ws=False) as rig:
        order = intent("NSE:NOSUCH")
        result = await rig.gateway.submit(order)
        assert not result.accepted
        assert result.status is OrderStatus.REJECTED
        assert "instrument" in result.message
        assert rig.gateway.working() == []


async def test_delayed_response_is_resolved_by_tag_without_a_second_order() -> None:
    async with live_rig() as rig:  # client timeout 1 s, the fake answers after 10 s
        rig.fake.faults.delay_next_orders = 1
        order = intent()
        result = await rig.gateway.submit(order)
        assert result.accepted
        ids = _book_ids(rig.fake, order.client_id)
        assert len(ids) == 1
        assert result.broker_order_id == ids[0]
        await rig.wait_for(lambda: rig.fills(order.client_id) != [])
        assert len(rig.fake.orders_by_tag(order.client_id)) == 1
        assert len(rig.fake.placements) == 1


async def test_a_tag_that_never_appears_is_rejected_after_the_deadline() -> None:
    dropped: list[str] = []

    class DropPlacements(httpx.AsyncBaseTransport):
        """The network loses every placement (the request never reaches Kite)."""

        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path.startswith("/orders/"):
                dropped.append(request.url.path)
                raise httpx.ReadTimeout("lost", request=request)
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    async with live_rig(
        ws=False,
        rest_options={"transport": DropPlacements()},
        lookup_attempts=2,
        lookup_interval_s=0.1,
        unresolved_deadline_s=1.0,
    ) as rig:
        order = intent()
        with pytest.raises(BrokerError, match="outcome unknown"):
            await rig.gateway.submit(order)
        assert rig.gateway.unresolved() == [order.client_id]
        await rig.wait_for(lambda: rig.statuses(order.client_id) == [OrderStatus.REJECTED])
        assert rig.updates(order.client_id)[0].message == NOT_PLACED
        assert rig.gateway.working() == []
        assert dropped == ["/orders/regular"]  # sent once, never again
        assert rig.fake.orders_by_tag(order.client_id) == []


async def test_lost_updates_are_applied_by_polling() -> None:
    async with live_rig() as rig:
        rig.fake.faults.lose_order_updates = True
        order = intent()
        assert (await rig.gateway.submit(order)).accepted
        await rig.wait_for(lambda: rig.fills(order.client_id) != [])
        assert rig.fake.hub is not None
        fills = rig.fills(order.client_id)
        assert len(fills) == 1
        assert fills[0].qty == order.qty


async def test_websocket_and_poll_seeing_the_same_fill_apply_it_once() -> None:
    async with live_rig(poll_interval_s=0.05) as rig:  # polls race the socket
        orders = [intent(qty=q) for q in (1, 2, 3)]
        for o in orders:
            assert (await rig.gateway.submit(o)).accepted
        await rig.wait_for(lambda: rig.gateway.working() == [])
        await rig.gateway.poll()  # and once more by hand
        for o in orders:
            assert len(rig.fills(o.client_id)) == 1
            assert rig.statuses(o.client_id).count(OrderStatus.OPEN) <= 1
        ids = [e.trade_id for e in rig.events if isinstance(e, Fill)]
        assert len(ids) == len(set(ids)) == 3


async def test_cancel_of_an_open_limit_order() -> None:
    async with live_rig() as rig:
        last = next(iter((await rig.rest.ltp(["NSE:INFY"])).values()))
        order = intent(price=round(last * 0.8, 1))  # far below: it rests
        assert (await rig.gateway.submit(order)).accepted
        await rig.wait_for(lambda: OrderStatus.OPEN in rig.statuses(order.client_id))
        await rig.gateway.cancel(order.client_id)
        await rig.wait_for(lambda: OrderStatus.CANCELLED in rig.statuses(order.client_id))
        assert rig.fake.orders_by_tag(order.client_id)[0]["status"] == "CANCELLED"
        assert rig.fills(order.client_id) == []
        assert rig.gateway.working() == []
        await rig.gateway.cancel(order.client_id)  # finished: a no-op


async def test_forged_and_foreign_updates_are_ignored() -> None:
    async with live_rig(ws=False) as rig:
        last = next(iter((await rig.rest.ltp(["NSE:INFY"])).values()))
        order = intent(price=round(last * 0.8, 1))
        assert (await rig.gateway.submit(order)).accepted
        [payload] = rig.fake.orders_by_tag(order.client_id)
        forged = {**payload, "status": "COMPLETE", "filled_quantity": order.qty}
        rig.gateway.on_order_message({**forged, "checksum": "0" * 64})
        rig.gateway.on_order_message({**forged, "tag": "OTHERAPP", "checksum": "0" * 64})
        await rig.gateway.drain()
        assert rig.events == []
        good = rig.fake.order_checksum(payload["order_id"], payload["order_timestamp"])
        rig.gateway.on_order_message({**payload, "status": "OPEN", "checksum": good})
        await rig.gateway.drain()
        assert [e.status for e in rig.events if isinstance(e, OrderUpdate)] == [OrderStatus.OPEN]
        await rig.gateway.cancel(order.client_id)
