"""The executor on the REAL SQLite store and the paper gateway, on a virtual clock.

Unless a test says otherwise the paper spread and slippage are 0, so fills happen at the
tick price and every P&L below is exact: gross minus the charges table's totals.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import date

import pytest

from mental_trader.execution.executor import Executor
from mental_trader.execution.orders import OrderIntent, SubmitResult
from mental_trader.models import Fill, OrderStatus, Side, TradeStatus
from mental_trader.risk import RiskManager, TradingState

from .conftest import Rig, RigFactory

REL, INFY, ICICI = "NSE:RELIANCE", "NSE:INFY", "NSE:ICICIBANK"
DAY = date(2026, 4, 6)


def fees(rig: Rig, side: Side, price: float, qty: int) -> float:
    return rig.charges.compute(DAY, "equity_intraday", side, price, qty).total


_SIGNALS = itertools.count(1)


async def open_position(rig: Rig, symbol: str, price: float, qty: int = 100) -> str:
    signal = f"sig-{next(_SIGNALS)}"
    result = await rig.executor.enter(symbol, Side.BUY, qty, price, "cross up", signal)
    assert result.ok, result.reason
    await rig.tick_and_pump(symbol, price)
    assert rig.executor.positions()[-1].symbol == symbol or any(
        p.symbol == symbol for p in rig.executor.positions()
    )
    assert result.client_id is not None
    return result.client_id


# -- the intent row comes first ----------------------------------------------------------


async def test_intent_row_is_stored_before_submission(make_rig: RigFactory) -> None:
    rig = await make_rig()
    result = await rig.executor.enter(REL, Side.BUY, 100, 2500.0, "cross up", "sig-1")
    assert result.ok
    assert rig.gateway.intent_status_at_submit == [OrderStatus.INTENT]
    order = await rig.store.get_order(result.client_id or "")
    assert order is not None
    assert (order.status, order.qty, order.order_type, order.product) == (
        OrderStatus.OPEN,
        100,
        "MARKET",
        "MIS",
    )
    assert order.broker_order_id == f"PAPER{result.client_id}"
    assert order.signal_id == "sig-1"


async def test_store_down_means_nothing_is_submitted(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.store.close()  # the database is gone
    result = await rig.executor.enter(REL, Side.BUY, 100, 2500.0, "cross up")
    assert not result.ok
    assert "intent not stored" in result.reason
    assert rig.gateway.submitted == []
    assert rig.gateway.working() == []
    assert rig.executor.is_flat
    assert (rig.risk.open_positions, rig.risk.trades_today) == (0, 0)
    assert any(kind == "alert" and "not sent" in msg for kind, msg in rig.notes)


async def test_store_locked_means_nothing_is_submitted_then_recovers(
    make_rig: RigFactory, db_locked: object
) -> None:
    rig = await make_rig()
    with db_locked():  # type: ignore[operator]
        result = await rig.executor.enter(REL, Side.BUY, 100, 2500.0, "cross up")
    assert not result.ok
    assert rig.gateway.submitted == []
    result = await rig.executor.enter(REL, Side.BUY, 100, 2500.0, "cross up")
    assert result.ok
    assert len(rig.gateway.submitted) == 1


# -- fills ---------------------------------------------------------------------------------


async def test_round_trip_net_pnl_is_gross_minus_both_legs_charges(make_rig: RigFactory) -> None:
    rig = await make_rig()
    entry_id = await open_position(rig, REL, 2500.0)
    trades = await rig.store.load_trades()
    assert [(t.id, t.status, t.entry_price) for t in trades] == [
        (entry_id, TradeStatus.OPEN, 2500.0)
    ]
    assert trades[0].entry_charges == fees(rig, Side.BUY, 2500.0, 100) == 40.45
    rig.tick(REL, 2505.0)  # a print between: the exit is not sent yet
    exit_result = await rig.executor.exit(REL, "target")
    assert exit_result.ok
    await rig.tick_and_pump(REL, 2510.0)  # the exit's next tick
    (trade,) = await rig.store.load_trades()
    assert trade.status is TradeStatus.CLOSED
    assert (trade.exit_price, trade.exit_reason, trade.gross_pnl) == (2510.0, "target", 1000.0)
    assert trade.exit_charges == fees(rig, Side.SELL, 2510.0, 100) == 95.74
    assert trade.net_pnl == pytest.approx(1000.0 - 40.45 - 95.74, abs=1e-9)
    assert trade.net_pnl == pytest.approx(863.81, abs=1e-9)
    assert rig.risk.realized_pnl == pytest.approx(863.81, abs=1e-9)
    assert rig.executor.is_flat
    assert rig.risk.open_positions == 0
    (position,) = await rig.store.positions()
    assert (position.qty, position.realized_pnl) == (0, 1000.0)
    assert position.charges == pytest.approx(136.19)
    orders = await rig.store.load_orders()
    assert {o.status for o in orders} == {OrderStatus.FILLED}
    assert sorted(o.side for o in orders) == [Side.BUY, Side.SELL]
    assert [k for k, _ in rig.notes] == ["trade", "trade"]


async def test_market_fills_pay_spread_and_slippage_never_better_than_touch(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(half_spread_bps=2, slippage_bps=1)
    await rig.executor.enter(REL, Side.BUY, 100, 2500.0, "cross up")
    await rig.tick_and_pump(REL, 2500.0)
    await rig.executor.exit(REL, "stop")
    await rig.tick_and_pump(REL, 2510.0)
    (trade,) = await rig.store.load_trades()
    # BUY 2500 x 1.0003 = 2500.75 (touch 2500.50); SELL 2510 x 0.9997 = 2509.247 -> 2509.20
    # (touch 2509.498)
    assert (trade.entry_price, trade.exit_price) == (2500.75, 2509.20)
    assert trade.entry_price >= 2500.0 * 1.0002
    assert trade.exit_price is not None
    assert trade.exit_price <= 2510.0 * 0.9998
    expected = (
        (2509.20 - 2500.75) * 100
        - fees(rig, Side.BUY, 2500.75, 100)
        - fees(rig, Side.SELL, 2509.20, 100)
    )
    assert trade.net_pnl == pytest.approx(expected, abs=1e-9)


async def test_limit_entry_fills_when_price_trades_through(make_rig: RigFactory) -> None:
    rig = await make_rig()
    result = await rig.executor.enter(REL, Side.BUY, 100, 2500.0, "pullback", limit_price=2499.97)
    order = await rig.store.get_order(result.client_id or "")
    assert order is not None
    assert (order.order_type, order.price) == ("LIMIT", 2499.95)  # a buy limit rounds down
    await rig.tick_and_pump(REL, 2500.0)
    await rig.tick_and_pump(REL, 2499.95)  # touches, does not trade through
    assert rig.executor.positions() == []
    await rig.tick_and_pump(REL, 2499.90)
    (position,) = rig.executor.positions()
    assert (position.qty, position.avg_price) == (100, 2499.95)


async def test_a_fill_is_applied_once(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await open_position(rig, REL, 2500.0)
    (fill,) = [e for e in rig.gateway.events if isinstance(e, Fill)]
    rig.gateway.replay(fill)  # the broker repeats itself
    await rig.executor.pump()
    assert len(await rig.store.load_fills()) == 1
    assert len(await rig.store.load_trades()) == 1
    assert [(p.symbol, p.qty) for p in rig.executor.positions()] == [(REL, 100)]

    # after a restart the in-memory memory is gone: the store's apply_fill says "seen"
    clock = rig.clock
    risk = RiskManager(rig.settings, clock)
    again = Executor(rig.store, rig.gateway, risk, rig.charges, clock)
    await again.restore()
    rig.gateway.replay(fill)
    await again.pump()
    assert len(await rig.store.load_fills()) == 1
    assert len(await rig.store.load_trades()) == 1
    assert [(p.symbol, p.qty) for p in again.positions()] == [(REL, 100)]


async def test_restore_resumes_positions_pnl_and_trade_count(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await open_position(rig, INFY, 1500.0)
    await rig.executor.exit(INFY, "target")
    await rig.tick_and_pump(INFY, 1490.0)
    await open_position(rig, REL, 2500.0)
    (closed,) = await rig.store.load_trades(status=TradeStatus.CLOSED)

    risk = RiskManager(rig.settings, rig.clock)
    again = Executor(rig.store, rig.gateway, risk, rig.charges, rig.clock)
    await again.restore()
    assert [(p.symbol, p.qty, p.avg_price) for p in again.positions()] == [(REL, 100, 2500.0)]
    assert (risk.trades_today, risk.open_positions) == (2, 1)
    assert risk.realized_pnl == pytest.approx(closed.net_pnl)
    # the restored position can be closed
    await again.exit(REL, "manual")
    again.on_tick(REL, rig.clock.ts_ns(), 2502.0)
    await again.pump()
    assert again.is_flat
    assert await rig.store.load_trades(status=TradeStatus.OPEN) == []


async def test_writes_after_a_fill_wait_out_a_store_outage(
    make_rig: RigFactory, db_locked: object
) -> None:
    rig = await make_rig()
    result = await rig.executor.enter(REL, Side.BUY, 100, 2500.0, "cross up")
    with db_locked():  # type: ignore[operator]
        await rig.tick_and_pump(REL, 2500.0)  # the fill happens while the store is locked
        assert [(p.symbol, p.qty) for p in rig.executor.positions()] == [(REL, 100)]
        assert await rig.store.load_trades() == []  # reads work, the writes waited
    assert any("deferred" in msg for _, msg in rig.notes)
    await rig.executor.pump()
    (trade,) = await rig.store.load_trades()
    assert (trade.id, trade.status) == (result.client_id, TradeStatus.OPEN)
    (order,) = await rig.store.load_orders()
    assert (order.status, order.filled_qty) == (OrderStatus.FILLED, 100)


# -- exits -----------------------------------------------------------------------------------


async def test_at_most_one_working_exit_per_symbol(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await open_position(rig, REL, 2500.0)
    first = await rig.executor.exit(REL, "stop")
    second = await rig.executor.exit(REL, "stop again")
    assert first.ok
    assert not second.ok
    assert second.reason == "an exit is already working"
    assert second.client_id == first.client_id
    exits = [i for _, i in rig.gateway.submitted if i.side is Side.SELL]
    assert [(i.order_type, i.qty) for i in exits] == [("MARKET", 100)]


async def test_exit_without_a_position_and_exit_of_an_unfilled_entry(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig()
    assert not (await rig.executor.exit(REL, "stop")).ok
    entry = await rig.executor.enter(REL, Side.BUY, 100, 2500.0, "cross up")
    result = await rig.executor.exit(REL, "changed my mind")
    assert result.ok
    assert result.reason == "no position yet: entry cancelled"
    await rig.executor.pump()
    assert rig.executor.is_flat
    assert rig.risk.open_positions == 0
    order = await rig.store.get_order(entry.client_id or "")
    assert order is not None
    assert order.status is OrderStatus.CANCELLED
    rig.tick(REL, 2500.0)
    await rig.executor.pump()
    assert rig.executor.positions() == []


async def test_a_short_round_trip(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await rig.executor.enter(REL, Side.SELL, 100, 2500.0, "cross down")
    await rig.tick_and_pump(REL, 2500.0)
    assert [(p.qty, p.avg_price) for p in rig.executor.positions()] == [(-100, 2500.0)]
    await rig.executor.exit(REL, "target")
    await rig.tick_and_pump(REL, 2490.0)
    (trade,) = await rig.store.load_trades()
    expected = 1000.0 - fees(rig, Side.SELL, 2500.0, 100) - fees(rig, Side.BUY, 2490.0, 100)
    assert (trade.side, trade.gross_pnl) == (Side.SELL, 1000.0)
    assert trade.net_pnl == pytest.approx(expected, abs=1e-9)


# -- risk through the executor -----------------------------------------------------------


async def test_daily_loss_limit_halts_flattens_and_blocks_entries(make_rig: RigFactory) -> None:
    rig = await make_rig(daily_loss_limit=500)
    await open_position(rig, REL, 2500.0)
    # mark = gross - entry charges 40.45 - exit charges estimated at 2500 (95.45)
    rig.tick(REL, 2497.0)  # -300 - 135.90 = -435.90: inside the limit
    assert rig.risk.state is TradingState.ACTIVE
    assert rig.risk.unrealized_pnl == pytest.approx(-300.0 - 40.45 - 95.45)
    rig.tick(REL, 2495.0)  # -500 - 135.90 = -635.90 <= -500
    assert rig.risk.state is TradingState.HALTED
    assert "daily loss limit" in rig.risk.state_reason
    await rig.executor.pump()  # the flatten: a MARKET exit, sent while HALTED
    (exit_order,) = [i for _, i in rig.gateway.submitted if i.side is Side.SELL]
    assert (exit_order.order_type, exit_order.qty) == ("MARKET", 100)
    await rig.tick_and_pump(REL, 2494.0)
    assert rig.executor.is_flat
    (trade,) = await rig.store.load_trades()
    assert trade.status is TradeStatus.CLOSED
    assert "daily loss limit" in trade.exit_reason
    expected = -600.0 - 40.45 - fees(rig, Side.SELL, 2494.0, 100)
    assert trade.net_pnl == pytest.approx(expected, abs=1e-9)
    assert rig.risk.realized_pnl == pytest.approx(expected, abs=1e-9)
    assert rig.risk.state is TradingState.HALTED
    refused = await rig.executor.enter(INFY, Side.BUY, 10, 1500.0, "cross up")
    assert not refused.ok
    assert refused.reason.startswith("halted: daily loss limit")
    assert any(kind == "alert" and "flatten" in msg for kind, msg in rig.notes)
    # the next session trades again
    rig.risk.reset_for_new_session(date(2026, 4, 7))
    assert (await rig.executor.enter(INFY, Side.BUY, 10, 1500.0, "cross up")).ok


async def test_kill_switch_cancels_entries_and_flattens(make_rig: RigFactory) -> None:
    rig = await make_rig()
    await open_position(rig, REL, 2500.0)
    await open_position(rig, INFY, 1500.0)
    pending = await rig.executor.enter(ICICI, Side.BUY, 10, 1200.0, "cross up")  # no tick yet
    await rig.executor.halt("operator kill switch")
    assert rig.risk.state is TradingState.HALTED
    cancelled = await rig.store.get_order(pending.client_id or "")
    assert cancelled is not None
    assert cancelled.status is OrderStatus.CANCELLED
    exits = sorted(i.symbol for _, i in rig.gateway.submitted if i.side is Side.SELL)
    assert exits == [INFY, REL]
    await rig.executor.pump()  # a second pass sends nothing twice
    assert len(rig.gateway.submitted) == 5
    rig.tick(REL, 2501.0)
    rig.tick(INFY, 1499.0)
    rig.tick(ICICI, 1200.0)
    await rig.executor.pump()
    assert rig.executor.is_flat
    assert all(t.status is TradeStatus.CLOSED for t in await rig.store.load_trades())
    assert {t.exit_reason for t in await rig.store.load_trades()} == {"operator kill switch"}
    assert not (await rig.executor.enter(REL, Side.BUY, 10, 2500.0, "cross up")).ok
    assert ("trade", "flat: operator kill switch") in rig.notes


async def test_a_flatten_backs_off_from_a_broker_refusing_every_order(
    make_rig: RigFactory,
) -> None:
    """An expired broker session refuses every order: a flatten re-sends the exit with a
    doubling wait capped at 60 s and alerts once, not every second; it completes once the
    broker accepts again."""
    rig = await make_rig()
    await open_position(rig, REL, 2500.0)
    accept = rig.gateway.submit
    refused_at: list[float] = []

    async def refuse(intent: OrderIntent) -> SubmitResult:
        refused_at.append(rig.clock.monotonic())
        return SubmitResult(False, OrderStatus.REJECTED, None, "TokenException: session expired")

    rig.gateway.submit = refuse  # type: ignore[method-assign]
    start = rig.clock.monotonic()
    await rig.executor.flatten("operator flatten")
    for _ in range(130):  # the run() task pumps about once a second
        rig.clock.advance(1.0)
        await rig.executor.pump()
    assert [t - start for t in refused_at] == [0, 1, 3, 7, 15, 31, 63, 123]
    exit_alerts = [m for k, m in rig.notes if k == "alert" and m.startswith("exit of")]
    assert len(exit_alerts) == 1
    assert "TokenException" in exit_alerts[0]
    assert "retries in 1 s" in exit_alerts[0]
    assert not rig.executor.is_flat
    rig.gateway.submit = accept  # type: ignore[method-assign]  # logged in again
    await rig.executor.pump()
    assert len(rig.gateway.submitted) == 1  # the entry: the next retry is due at 183 s
    rig.executor.retry_refused_exits()  # what a broker login does
    await rig.executor.pump()
    assert len(rig.gateway.submitted) == 2
    await rig.tick_and_pump(REL, 2499.0)
    assert rig.executor.is_flat
    (trade,) = await rig.store.load_trades()
    assert (trade.status, trade.exit_reason) == (TradeStatus.CLOSED, "operator flatten")
    assert ("trade", "flat: operator flatten") in rig.notes


async def test_max_open_positions_refuses_the_next_entry(make_rig: RigFactory) -> None:
    rig = await make_rig(max_open_positions=2)
    await open_position(rig, REL, 2500.0)
    assert (await rig.executor.enter(INFY, Side.BUY, 10, 1500.0, "x")).ok  # working counts
    refused = await rig.executor.enter(ICICI, Side.BUY, 10, 1200.0, "x")
    assert not refused.ok
    assert refused.reason == "max open positions reached (2)"
    again = await rig.executor.enter(REL, Side.BUY, 10, 2500.0, "x")
    assert again.reason == "already has a position or a working order"
    await rig.executor.exit(REL, "target")
    await rig.tick_and_pump(REL, 2500.0)
    assert (await rig.executor.enter(ICICI, Side.BUY, 10, 1200.0, "x")).ok


async def test_max_trades_per_day_refuses_the_next_entry(make_rig: RigFactory) -> None:
    rig = await make_rig(max_trades_per_day=2)
    for symbol in (REL, INFY):
        await open_position(rig, symbol, 1000.0)
        await rig.executor.exit(symbol, "target")
        await rig.tick_and_pump(symbol, 1000.0)
    refused = await rig.executor.enter(ICICI, Side.BUY, 10, 1200.0, "x")
    assert not refused.ok
    assert refused.reason == "max trades per day reached (2)"
    assert rig.risk.open_positions == 0


async def test_entry_quantity_is_cut_to_max_position_value(make_rig: RigFactory) -> None:
    rig = await make_rig(max_position_value=50_000)
    result = await rig.executor.enter(REL, Side.BUY, 100, 2500.0, "x")
    assert (result.ok, result.qty) == (True, 20)  # 50,000 / 2,500


async def test_submissions_are_spaced_by_the_throttle(make_rig: RigFactory) -> None:
    rig = await make_rig(max_orders_per_second=5)
    for symbol in (REL, INFY, ICICI):
        assert (await rig.executor.enter(symbol, Side.BUY, 10, 1000.0, "x")).ok
    times = [t for t, _ in rig.gateway.submitted]
    assert times == pytest.approx([0.0, 0.2, 0.4])


async def test_on_tick_ignores_symbols_without_orders_or_positions(make_rig: RigFactory) -> None:
    rig = await make_rig()
    rig.tick("NSE:TCS", 4000.0)
    assert rig.gateway.events == []
    assert rig.risk.unrealized_pnl == 0.0


async def test_a_rejected_entry_frees_its_slot(make_rig: RigFactory) -> None:
    rig = await make_rig(product="NRML")  # the paper gateway has no equity NRML segment
    result = await rig.executor.enter(REL, Side.BUY, 10, 2500.0, "x")
    assert not result.ok
    assert result.reason.startswith("rejected: no equity charges segment")
    order = await rig.store.get_order(result.client_id or "")
    assert order is not None
    assert order.status is OrderStatus.REJECTED
    assert rig.executor.is_flat
    assert rig.risk.open_positions == 0
    assert rig.risk.trades_today == 1  # the broker counts rejected orders too


async def test_an_ambiguous_submission_is_recorded_and_never_resent(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig()

    async def timeout(intent: object) -> None:
        rig.gateway.submitted.append((rig.clock.monotonic(), intent))  # type: ignore[arg-type]
        raise TimeoutError("no answer in 7 s")

    rig.gateway.submit = timeout  # type: ignore[assignment,method-assign]
    result = await rig.executor.enter(REL, Side.BUY, 10, 2500.0, "x")
    assert not result.ok
    assert "outcome unknown" in result.reason
    order = await rig.store.get_order(result.client_id or "")
    assert order is not None
    assert order.status is OrderStatus.UNKNOWN
    again = await rig.executor.enter(REL, Side.BUY, 10, 2500.0, "x")
    assert again.reason == "already has a position or a working order"
    assert len(rig.gateway.submitted) == 1
    assert rig.risk.open_positions == 1  # held until the tag lookup resolves it


async def test_run_task_applies_fills_and_flattens_on_its_own(make_rig: RigFactory) -> None:
    rig = await make_rig(daily_loss_limit=500)

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(500):  # the store works on its own thread: give it real time
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("condition not reached in 5 s")

    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(rig.executor.run())
        await rig.executor.enter(REL, Side.BUY, 100, 2500.0, "cross up")
        rig.tick(REL, 2500.0)
        await until(lambda: [p.qty for p in rig.executor.positions()] == [100])
        rig.tick(REL, 2490.0)  # breaches the limit: run() flattens
        await until(lambda: len(rig.gateway.submitted) == 2)
        assert rig.gateway.submitted[1][1].side is Side.SELL
        rig.tick(REL, 2490.0)
        await until(lambda: rig.executor.is_flat)
        task.cancel()
    assert rig.risk.state is TradingState.HALTED


async def test_a_replayed_signal_never_sends_a_second_order(make_rig: RigFactory) -> None:
    rig = await make_rig()
    first = await rig.executor.enter(REL, Side.BUY, 10, 2500.0, "cross up", "sig-replayed")
    assert first.ok, first.reason
    await rig.tick_and_pump(REL, 2500.0)
    await rig.executor.exit(REL, "done")
    await rig.tick_and_pump(REL, 2501.0)
    assert rig.executor.is_flat
    again = await rig.executor.enter(REL, Side.BUY, 10, 2500.0, "cross up", "sig-replayed")
    assert not again.ok
    entries = [o for o in await rig.store.load_orders() if o.signal_id == "sig-replayed"]
    assert len(entries) == 1
