"""The paper fill model: next-tick market fills with spread and slippage, limits on cross."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mental_trader.calendar import ist_date
from mental_trader.execution.charges import ChargesTable
from mental_trader.execution.orders import GatewayEvent, new_client_id
from mental_trader.execution.paper import PaperGateway
from mental_trader.models import Fill, Instrument, OrderIntent, OrderStatus, OrderUpdate, Side

from ._fakes import FakeClock

SYM = "NSE:RELIANCE"


def intent(side: Side = Side.BUY, qty: int = 10, symbol: str = SYM, **kw: Any) -> OrderIntent:
    return OrderIntent(client_id=new_client_id(), symbol=symbol, side=side, qty=qty, **kw)


def gateway(
    charges: ChargesTable, clock: FakeClock, **kw: Any
) -> tuple[PaperGateway, list[GatewayEvent]]:
    paper = PaperGateway(charges, clock, **kw)
    events: list[GatewayEvent] = []
    paper.set_listener(events.append)
    return paper, events


def fills(events: list[GatewayEvent]) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


async def test_market_order_fills_at_the_next_tick_with_spread_and_slippage(
    charges: ChargesTable,
) -> None:
    clock = FakeClock()
    paper, events = gateway(charges, clock, half_spread_bps=2, slippage_bps=1)
    paper.on_tick(SYM, clock.ts_ns(), 1234.0)  # before submission: not "next"
    buy, sell = intent(Side.BUY), intent(Side.SELL)
    result = await paper.submit(buy)
    assert (result.accepted, result.status) == (True, OrderStatus.OPEN)
    assert result.broker_order_id == f"PAPER{buy.client_id}"
    await paper.submit(sell)
    assert events == []
    paper.on_tick("NSE:INFY", clock.ts_ns(), 1500.0)  # another symbol's tick
    assert events == []
    clock.advance(1)
    paper.on_tick(SYM, clock.ts_ns(), 1234.5)
    got = {f.side: f for f in fills(events)}
    # BUY: 1234.5 x 1.0003 = 1234.87035 -> up to the tick 1234.90 (touch 1234.7469)
    # SELL: 1234.5 x 0.9997 = 1234.12965 -> down to 1234.10 (touch 1234.2531)
    assert got[Side.BUY].price == 1234.90
    assert got[Side.SELL].price == 1234.10
    buy_fill = got[Side.BUY]
    assert (buy_fill.client_id, buy_fill.qty, buy_fill.trade_id) == (
        buy.client_id, 10, f"P{buy.client_id}-1",
    )  # fmt: skip
    assert buy_fill.ts == clock.now()
    expected = charges.compute(date(2026, 4, 6), "equity_intraday", Side.BUY, 1234.90, 10)
    assert buy_fill.charges == expected.total
    assert paper.working() == []
    paper.on_tick(SYM, clock.ts_ns(), 1234.5)  # filled orders never fill again
    assert len(fills(events)) == 2


@given(
    ticks=st.integers(min_value=20, max_value=2_000_000),
    half_spread=st.floats(min_value=0, max_value=50),
    slippage=st.floats(min_value=0, max_value=50),
    side=st.sampled_from(Side),
)
def test_market_fills_are_never_better_than_the_touch(
    charges: ChargesTable, ticks: int, half_spread: float, slippage: float, side: Side
) -> None:
    paper = PaperGateway(charges, FakeClock(), half_spread_bps=half_spread, slippage_bps=slippage)
    price = round(ticks * 0.05, 2)
    fill = paper.market_price(side, price, 0.05)
    touch = price * (1 + side.sign * half_spread / 10_000)
    assert side.sign * (fill - touch) >= -1e-9
    assert abs(fill / 0.05 - round(fill / 0.05)) < 1e-6


async def test_limit_orders_fill_only_when_price_trades_through(charges: ChargesTable) -> None:
    clock = FakeClock()
    paper, events = gateway(charges, clock, half_spread_bps=2, slippage_bps=1)
    buy = intent(Side.BUY, order_type="LIMIT", price=99.5)
    sell = intent(Side.SELL, order_type="LIMIT", price=100.5)
    await paper.submit(buy)
    await paper.submit(sell)
    for price in (100.0, 99.5, 100.5):  # touching a limit is not trading through it
        paper.on_tick(SYM, clock.ts_ns(), price)
    assert fills(events) == []
    paper.on_tick(SYM, clock.ts_ns(), 99.45)
    assert [(f.side, f.price) for f in fills(events)] == [(Side.BUY, 99.5)]  # at the limit
    paper.on_tick(SYM, clock.ts_ns(), 100.55)
    assert [(f.side, f.price) for f in fills(events)][1] == (Side.SELL, 100.5)


async def test_a_marketable_limit_pays_no_more_than_a_market_order(
    charges: ChargesTable,
) -> None:
    clock = FakeClock()
    paper, events = gateway(charges, clock, half_spread_bps=2, slippage_bps=1)
    await paper.submit(intent(Side.BUY, order_type="LIMIT", price=105.0))
    paper.on_tick(SYM, clock.ts_ns(), 100.0)
    assert fills(events)[0].price == 100.05  # 100 x 1.0003 = 100.03 -> 100.05, not 105


async def test_fill_price_uses_the_instrument_tick(charges: ChargesTable) -> None:
    clock = FakeClock()
    cheap = Instrument("NSE:IDEA", "NSE", "IDEA", tick_size=0.01)
    paper, events = gateway(
        charges, clock, half_spread_bps=2, slippage_bps=1, instruments={"NSE:IDEA": cheap}
    )
    await paper.submit(intent(Side.BUY, symbol="NSE:IDEA"))
    paper.on_tick("NSE:IDEA", clock.ts_ns(), 10.0)
    assert fills(events)[0].price == 10.01  # 10.003 -> 10.01 on the 0.01 grid


async def test_cancel(charges: ChargesTable) -> None:
    clock = FakeClock()
    paper, events = gateway(charges, clock)
    order = intent()
    await paper.submit(order)
    assert paper.working(SYM) == [order]
    await paper.cancel(order.client_id)
    assert paper.working() == []
    assert len(events) == 1
    update = events[0]
    assert isinstance(update, OrderUpdate)
    assert (update.client_id, update.status) == (order.client_id, OrderStatus.CANCELLED)
    await paper.cancel(order.client_id)  # unknown now: nothing happens
    paper.on_tick(SYM, clock.ts_ns(), 100.0)
    assert len(events) == 1


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"order_type": "SL", "price": 100.0, "trigger_price": 99.0}, "MARKET and LIMIT"),
        ({"order_type": "LIMIT"}, "needs a price"),
        ({"product": "NRML"}, "NRML"),
    ],
)
async def test_rejections(charges: ChargesTable, kw: dict[str, Any], why: str) -> None:
    paper, _events = gateway(charges, FakeClock())
    result = await paper.submit(intent(**kw))
    assert (result.accepted, result.status) == (False, OrderStatus.REJECTED)
    assert why in result.message
    assert paper.working() == []


async def test_a_day_the_charges_table_cannot_price_is_rejected(charges: ChargesTable) -> None:
    paper, _ = gateway(charges, FakeClock(datetime(2024, 9, 30, 4, 0, tzinfo=UTC)))
    result = await paper.submit(intent())
    assert not result.accepted
    assert "starts 2024-10-01" in result.message


async def test_trade_date_of_charges_is_the_ist_date_of_the_tick(charges: ChargesTable) -> None:
    # 2026-03-31 18:45 UTC is 2026-04-01 00:15 IST: the 0.15 % options STT applies
    clock = FakeClock(datetime(2026, 3, 31, 18, 45, tzinfo=UTC))
    option = Instrument("NFO:NIFTYCE", "NFO", "NIFTYCE", instrument_type="CE", lot_size=65)
    paper, events = gateway(
        charges, clock, half_spread_bps=0, slippage_bps=0, instruments={"NFO:NIFTYCE": option}
    )
    await paper.submit(intent(Side.SELL, qty=65, symbol="NFO:NIFTYCE", product="NRML"))
    paper.on_tick("NFO:NIFTYCE", clock.ts_ns(), 110.0)
    assert ist_date(clock.ts_ns()) == date(2026, 4, 1)
    assert fills(events)[0].charges == 37.34  # the 0.1 % regime would give 33.76


async def test_a_resting_limit_fills_at_its_limit_not_at_the_lower_print(
    charges: ChargesTable,
) -> None:
    clock = FakeClock()
    paper, events = gateway(charges, clock, half_spread_bps=2, slippage_bps=1)
    buy = intent(Side.BUY, order_type="LIMIT", price=99.5)
    sell = intent(Side.SELL, order_type="LIMIT", price=95.0)  # marketable: floor under 100
    await paper.submit(buy)
    await paper.submit(sell)
    paper.on_tick(SYM, clock.ts_ns(), 100.0)  # the buy rests; the sell takes the bid
    assert [(f.side, f.price) for f in fills(events)] == [(Side.SELL, 99.95)]  # 99.97 down
    paper.on_tick(SYM, clock.ts_ns(), 99.0)  # a gap down through the resting bid
    assert [(f.side, f.price) for f in fills(events)][1] == (Side.BUY, 99.5)
