"""The risk manager: sizing, every pre-trade rule, states, daily loss, kill switch, throttle."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import pytest

from mental_trader.config import Settings, load_settings
from mental_trader.models import Side
from mental_trader.risk import (
    RiskDecision,
    RiskManager,
    SubmitThrottle,
    SystemClock,
    TradingState,
)

from .execution._fakes import FakeClock

REL = "NSE:RELIANCE"


def settings(**overrides: Any) -> Settings:
    return load_settings(_env_file=None, **overrides)


def manager(**overrides: Any) -> tuple[RiskManager, FakeClock]:
    clock = FakeClock()
    return RiskManager(settings(**overrides), clock), clock


# -- sizing ---------------------------------------------------------------------------------


def test_size_from_risk_per_trade_and_stop_distance() -> None:
    # capital 100,000 x 0.5 % = 500 at risk
    risk, _ = manager(max_position_value=1_000_000)
    assert risk.stop_distance(2500.0) == 12.5  # STOP_LOSS_PCT 0.5 % of 2,500
    assert risk.size(2500.0) == 40  # 500 / 12.5
    assert risk.size(2500.0, 7.0) == 71  # floor(500 / 7 = 71.43)
    assert risk.size(2500.0, 600.0) == 0  # the stop alone risks more than the budget


def test_size_is_capped_by_max_position_value() -> None:
    risk, _ = manager()  # MAX_POSITION_VALUE 50,000
    assert risk.size(2500.0) == 20  # 40 by risk, 50,000 / 2,500 = 20 by value
    assert risk.size(3000.0, 1.0) == 16  # floor(16.67)


def test_size_rounds_down_to_the_lot() -> None:
    risk, _ = manager()
    # NIFTY option at 100, premium stop 5: 500 / 5 = 100 units -> one lot of 65
    assert risk.size(100.0, 5.0, lot_size=65) == 65
    assert risk.size(100.0, 20.0, lot_size=65) == 0  # 25 units: under a lot
    # by value: 50,000 / 100 = 500 -> 7 lots = 455 (risk allows 500 / 0.5 = 1000)
    assert risk.size(100.0, 0.5, lot_size=65) == 455


def test_size_rejects_nonsense() -> None:
    risk, _ = manager()
    assert risk.size(0.0) == 0
    assert risk.size(float("nan")) == 0
    assert risk.size(100.0, 0.0) == 0
    assert risk.size(100.0, -1.0) == 0


# -- pre-trade checks -------------------------------------------------------------------------


def test_check_entry_allows_and_cuts() -> None:
    risk, _ = manager()
    assert risk.check_entry(REL, Side.BUY, 10, 2500.0) == RiskDecision(True, "", 10)
    cut = risk.check_entry(REL, Side.SELL, 100, 2500.0)
    assert cut == RiskDecision(True, "quantity cut from 100 to 20", 20)
    lots = risk.check_entry("NFO:NIFTYCE", Side.BUY, 139, 100.0, lot_size=65)
    assert (lots.allowed, lots.qty) == (True, 130)


@pytest.mark.parametrize(
    ("qty", "price", "lot", "why"),
    [
        (0, 2500.0, 1, "bad order"),
        (10, 0.0, 1, "bad order"),
        (10, float("inf"), 1, "bad order"),
        (64, 100.0, 65, "under one lot"),
        (10, 60_000.0, 1, "max position value 50000"),  # one share is over the cap
    ],
)
def test_check_entry_refuses_bad_or_oversized_orders(
    qty: int, price: float, lot: int, why: str
) -> None:
    risk, _ = manager()
    decision = risk.check_entry(REL, Side.BUY, qty, price, lot_size=lot)
    assert (decision.allowed, decision.qty) == (False, 0)
    assert why in decision.reason


def test_max_open_positions() -> None:
    risk, _ = manager(max_open_positions=2)
    for symbol in ("NSE:A", "NSE:B"):
        assert risk.check_entry(symbol, Side.BUY, 1, 100.0).allowed
        risk.entry_reserved(symbol)
    assert risk.open_positions == 2
    refused = risk.check_entry("NSE:C", Side.BUY, 1, 100.0)
    assert refused == RiskDecision(False, "max open positions reached (2)", 0)
    risk.release("NSE:A")  # an entry that never filled frees its slot
    assert risk.check_entry("NSE:C", Side.BUY, 1, 100.0).allowed
    risk.entry_reserved("NSE:C")
    risk.position_closed("NSE:B", 120.0)  # so does a closed round trip
    assert risk.open_positions == 1
    assert risk.realized_pnl == 120.0


def test_one_position_per_symbol() -> None:
    risk, _ = manager()
    risk.entry_reserved(REL)
    decision = risk.check_entry(REL, Side.SELL, 1, 100.0)
    assert not decision.allowed
    assert "already has a position" in decision.reason


def test_max_trades_per_day() -> None:
    risk, _ = manager(max_trades_per_day=2)
    for _ in range(2):
        risk.entry_reserved(REL)
        risk.entry_submitted(REL)
        risk.position_closed(REL, 0.0)
    assert risk.trades_today == 2
    assert risk.check_entry(REL, Side.BUY, 1, 100.0) == RiskDecision(
        False, "max trades per day reached (2)", 0
    )
    risk.reset_for_new_session(date(2026, 4, 7))
    assert risk.check_entry(REL, Side.BUY, 1, 100.0).allowed


# -- states -----------------------------------------------------------------------------------


def test_reducing_allows_exits_only() -> None:
    risk, _ = manager()
    risk.reduce("square-off at 15:15")
    assert risk.state is TradingState.REDUCING
    assert not risk.entries_allowed
    decision = risk.check_entry(REL, Side.BUY, 1, 100.0)
    assert decision.reason == "reducing: square-off at 15:15; exits only"
    assert risk.check_exit(REL).allowed
    assert not risk.flatten_requested  # REDUCING does not flatten
    assert risk.resume()
    assert risk.state is TradingState.ACTIVE


def test_kill_switch_halts_and_requests_a_flatten() -> None:
    risk, _ = manager()
    risk.halt("operator")
    assert risk.state is TradingState.HALTED
    assert risk.flatten_requested
    assert risk.check_entry(REL, Side.BUY, 1, 100.0).reason == "halted: operator; exits only"
    assert risk.check_exit(REL) == RiskDecision(True, "", 0)  # exits always
    assert risk.take_flatten_request() == "operator"
    assert risk.take_flatten_request() is None
    risk.reduce("later")  # no way down from HALTED except the next session
    assert risk.state is TradingState.HALTED


def test_a_halt_without_flatten_blocks_entries_and_sends_nothing() -> None:
    risk, _ = manager()
    risk.halt("the broker refused our session", flatten=False)
    assert risk.state is TradingState.HALTED
    assert not risk.flatten_requested
    assert risk.take_flatten_request() is None
    assert not risk.check_entry(REL, Side.BUY, 1, 100.0).allowed


def test_daily_loss_limit_counts_realized_and_unrealized_net() -> None:
    risk, _ = manager(daily_loss_limit=2000)
    risk.entry_reserved(REL)
    risk.position_closed(REL, -1500.0)
    assert risk.state is TradingState.ACTIVE
    assert not risk.mark(-499.99)  # -1999.99
    assert risk.state is TradingState.ACTIVE
    assert risk.mark(-500.0)  # -2000.00: at the limit is a breach
    assert risk.state is TradingState.HALTED
    assert risk.state_reason == "daily loss limit: net P&L -2000.00 <= -2000"
    assert risk.take_flatten_request() == risk.state_reason
    assert not risk.mark(-800.0)  # already halted: reported once
    assert not risk.resume()  # a breached limit cannot be resumed by hand
    assert risk.state is TradingState.HALTED


def test_a_realized_loss_alone_can_halt() -> None:
    risk, _ = manager(daily_loss_limit=1000)
    risk.entry_reserved(REL)
    risk.position_closed(REL, -1000.01)
    assert risk.state is TradingState.HALTED
    assert risk.flatten_requested


def test_reset_for_new_session_returns_halted_to_active() -> None:
    risk, _ = manager(daily_loss_limit=1000)
    assert risk.day == date(2026, 4, 6)  # the clock's IST day
    risk.entry_reserved(REL)
    risk.entry_submitted(REL)
    risk.position_closed(REL, -1200.0)
    assert risk.state is TradingState.HALTED
    risk.entry_reserved("NSE:CARRIED")  # a position held overnight stays counted
    risk.reset_for_new_session(date(2026, 4, 7))
    assert (risk.state, risk.state_reason, risk.day) == (TradingState.ACTIVE, "", date(2026, 4, 7))
    assert (risk.trades_today, risk.realized_pnl, risk.open_positions) == (0, 0.0, 1)
    assert not risk.flatten_requested
    assert risk.check_entry(REL, Side.BUY, 1, 100.0).allowed


def test_restore_day() -> None:
    risk, _ = manager(daily_loss_limit=1000)
    risk.restore_day(-400.0, 5, {REL})
    assert (risk.realized_pnl, risk.trades_today, risk.open_positions) == (-400.0, 5, 1)
    assert risk.state is TradingState.ACTIVE
    risk.restore_day(-1000.0, 5, set())
    assert risk.state is TradingState.HALTED


# -- throttle ---------------------------------------------------------------------------------


async def test_throttle_spaces_submissions_at_the_rate() -> None:
    risk, clock = manager(max_orders_per_second=5)
    stamps = []
    for _ in range(4):
        await risk.acquire()
        stamps.append(clock.monotonic())
    assert stamps == pytest.approx([0.0, 0.2, 0.4, 0.6])
    clock.advance(5.0)  # idle: the next one goes at once
    await risk.acquire()
    assert clock.monotonic() == pytest.approx(5.6)
    assert len(clock.deadlines) == 3


async def test_throttle_queues_concurrent_callers_in_order() -> None:
    clock = FakeClock()
    throttle = SubmitThrottle(9, clock)
    await asyncio.gather(*(throttle.acquire() for _ in range(10)))
    # 10 callers at t=0: the first goes at once, then one every 1/9 s
    assert clock.deadlines == pytest.approx([i / 9 for i in range(1, 10)])
    slots = [0.0, *clock.deadlines]
    for start in slots:  # no one-second window holds more than 9
        assert sum(start <= s < start + 1.0 for s in slots) <= 9


def test_throttle_rejects_a_zero_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        SubmitThrottle(0, FakeClock())


async def test_system_clock() -> None:
    clock = SystemClock()
    assert clock.now().tzinfo is UTC
    before = clock.monotonic()
    await clock.sleep(0)
    assert clock.monotonic() >= before
    assert isinstance(clock.now(), datetime)
