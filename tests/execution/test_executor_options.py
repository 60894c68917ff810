"""Option contracts through the same executor: round trips go to ``option_trades`` with
the underlying signal and prices (P&L attribution), priced with the options charges."""

from __future__ import annotations

from datetime import date

import pytest

from mental_trader.execution.executor import Executor
from mental_trader.models import Instrument, Side, TradeStatus
from mental_trader.risk import RiskManager

from .conftest import Rig, RigFactory

CALL = "NFO:NIFTY26D0124000CE"
NIFTY = "NSE:NIFTY 50"
DAY = date(2026, 4, 6)  # the rig's clock day
INSTRUMENTS = {
    CALL: Instrument(
        symbol=CALL,
        exchange="NFO",
        tradingsymbol="NIFTY26D0124000CE",
        segment="NFO-OPT",
        instrument_type="CE",
        tick_size=0.05,
        lot_size=65,
        expiry=date(2026, 12, 1),
        strike=24_000.0,
        underlying=NIFTY,
        freeze_qty=1800,
    )
}
SIGNAL = f"scalp-{NIFTY}-1775451300000000000-entry-BUY/{CALL}"


def option_executor(rig: Rig, risk: RiskManager | None = None) -> Executor:
    rig.gateway.instruments = INSTRUMENTS  # the paper fills price the options segment too
    return Executor(
        rig.store,
        rig.gateway,
        risk or rig.risk,
        rig.charges,
        rig.clock,
        instruments=INSTRUMENTS,
    )


def fees(rig: Rig, side: Side, price: float, qty: int) -> float:
    return rig.charges.compute(DAY, "options", side, price, qty).total


async def test_an_option_round_trip_is_stored_with_its_attribution(make_rig: RigFactory) -> None:
    rig = await make_rig()
    executor = option_executor(rig)
    result = await executor.enter(
        CALL,
        Side.BUY,
        130,
        150.0,
        "ema_cross",
        SIGNAL,
        strategy="options",
        underlying_price=24_010.0,
    )
    assert result.ok, result.reason
    rig.clock.advance(1.0)
    executor.on_tick(CALL, rig.clock.ts_ns(), 150.0)
    await executor.pump()
    (trip,) = await rig.store.load_option_trades()
    assert (trip.status, trip.underlying, trip.symbol, trip.option_type) == (
        TradeStatus.OPEN,
        NIFTY,
        CALL,
        "CE",
    )
    assert (trip.lots, trip.lot_size, trip.strike, trip.expiry) == (
        2,
        65,
        24_000.0,
        date(2026, 12, 1),
    )
    assert (trip.underlying_signal_id, trip.underlying_entry_price) == (SIGNAL, 24_010.0)
    assert trip.entry_charges == pytest.approx(fees(rig, Side.BUY, 150.0, 130))
    assert await rig.store.load_trades() == []  # not counted twice

    exit_result = await executor.exit(CALL, "premium_target", underlying_price=24_090.0)
    assert exit_result.ok, exit_result.reason
    rig.clock.advance(1.0)
    executor.on_tick(CALL, rig.clock.ts_ns(), 180.0)
    await executor.pump()
    (closed,) = await rig.store.load_option_trades()
    assert closed.status is TradeStatus.CLOSED
    assert (closed.exit_price, closed.exit_reason, closed.underlying_exit_price) == (
        180.0,
        "premium_target",
        24_090.0,
    )
    assert closed.gross_pnl == pytest.approx(30.0 * 130)
    exit_fees = fees(rig, Side.SELL, 180.0, 130)
    assert closed.exit_charges == pytest.approx(exit_fees)
    assert closed.net_pnl == pytest.approx(3900.0 - closed.entry_charges - exit_fees)
    assert rig.risk.realized_pnl == pytest.approx(closed.net_pnl)
    assert executor.is_flat


async def test_an_open_option_position_survives_a_restart(make_rig: RigFactory) -> None:
    rig = await make_rig()
    executor = option_executor(rig)
    await executor.enter(CALL, Side.BUY, 65, 120.0, "ema_cross", SIGNAL, underlying_price=24_000.0)
    rig.clock.advance(1.0)
    executor.on_tick(CALL, rig.clock.ts_ns(), 120.0)
    await executor.pump()

    again = option_executor(rig, RiskManager(rig.settings, rig.clock))
    await again.restore()
    assert [(p.symbol, p.qty, p.avg_price) for p in again.positions()] == [(CALL, 65, 120.0)]
    await again.exit(CALL, "square_off")
    again.on_tick(CALL, rig.clock.ts_ns(), 110.0)
    await again.pump()
    (closed,) = await rig.store.load_option_trades()
    assert closed.status is TradeStatus.CLOSED
    assert closed.gross_pnl == pytest.approx(-10.0 * 65)


async def test_an_order_above_the_freeze_quantity_pays_charges_per_slice(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(max_position_value=1_000_000.0)
    executor = option_executor(rig)
    # 30 lots = 1,950 units, above NIFTY's freeze quantity of 1,800: the exchange takes it as
    # 27 lots (1,755) and 3 lots (195), two executed orders, two flat brokerages.
    result = await executor.enter(CALL, Side.BUY, 1950, 150.0, "ema_cross", SIGNAL)
    assert result.ok, result.reason
    assert result.qty == 1950
    rig.clock.advance(1.0)
    executor.on_tick(CALL, rig.clock.ts_ns(), 150.0)
    await executor.pump()
    (trip,) = await rig.store.load_option_trades()
    assert trip.lots == 30
    sliced = fees(rig, Side.BUY, 150.0, 1755) + fees(rig, Side.BUY, 150.0, 195)
    assert trip.entry_charges == pytest.approx(sliced)
    assert trip.entry_charges > fees(rig, Side.BUY, 150.0, 1950)  # one brokerage more
