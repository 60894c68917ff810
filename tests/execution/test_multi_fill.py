"""Orders that fill in several fills (Kite autoslices, partial fills), on the REAL store.

The broker here is a scripted gateway: it accepts every order and the test says which
fills and updates come back, exactly as :class:`~mental_trader.execution.live.KiteGateway`
emits them (one fill per Kite trade, trade id ``K<order_id>-<trade_id>``, charges 0 so the
executor prices them; FILLED is reported by the fills, CANCELLED by an update).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from mental_trader.config import load_settings
from mental_trader.execution.charges import ChargesTable
from mental_trader.execution.executor import Executor
from mental_trader.execution.orders import EventListener, SubmitResult
from mental_trader.models import Fill, OrderIntent, OrderStatus, OrderUpdate, Side, TradeStatus
from mental_trader.risk import RiskManager
from mental_trader.storage import Store, open_store
from tests.storage.conftest import BACKENDS, PG_URL, drop_schema, pg_schema, require_pg

from ._fakes import FakeClock
from .conftest import BASE_SETTINGS

__all__ = ["pg_schema"]  # the fixture, imported for use here

SYM = "NSE:INFY"
DAY = date(2026, 4, 6)


def fee(charges: ChargesTable, side: Side, price: float, qty: int) -> float:
    """The table's charges of ONE executed order."""
    return charges.compute(DAY, "equity_intraday", side, price, qty).total


class ScriptedGateway:
    """Accepts every order; the test delivers its fills and updates."""

    name = "scripted"

    def __init__(self) -> None:
        self.listener: EventListener | None = None
        self.submitted: list[OrderIntent] = []
        self.cancels: list[str] = []

    def set_listener(self, listener: EventListener) -> None:
        self.listener = listener

    async def submit(self, intent: OrderIntent) -> SubmitResult:
        self.submitted.append(intent)
        return SubmitResult(True, OrderStatus.OPEN, f"B{intent.client_id}")

    async def cancel(self, client_id: str) -> None:
        self.cancels.append(client_id)


@dataclass
class Desk:
    store: Store
    charges: ChargesTable
    clock: FakeClock = field(default_factory=FakeClock)
    gateway: ScriptedGateway = field(default_factory=ScriptedGateway)
    risk: RiskManager = field(init=False)
    executor: Executor = field(init=False)
    notes: list[tuple[str, str]] = field(default_factory=list)
    _n: int = 0

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """A new process on the same store: fresh risk manager and executor."""
        self.gateway = ScriptedGateway()
        self.risk = RiskManager(load_settings(_env_file=None, **BASE_SETTINGS), self.clock)
        self.executor = Executor(
            self.store,
            self.gateway,
            self.risk,
            self.charges,
            self.clock,
            lambda k, m: self.notes.append((k, m)),
        )

    async def fill(self, intent: OrderIntent, kite_order: str, qty: int, price: float) -> None:
        """One Kite trade of ``intent`` (a slice ``kite_order``), applied."""
        assert self.gateway.listener is not None
        self._n += 1
        self.clock.advance(1.0)
        self.gateway.listener(
            Fill(
                f"K{kite_order}-{self._n}",
                intent.client_id,
                intent.symbol,
                intent.side,
                qty,
                price,
                self.clock.now(),
            )
        )
        await self.executor.pump()

    async def ended(self, intent: OrderIntent, status: OrderStatus, message: str = "") -> None:
        assert self.gateway.listener is not None
        self.gateway.listener(
            OrderUpdate(intent.client_id, f"kite-{status}", status, self.clock.now(), None, message)
        )
        await self.executor.pump()


@pytest.fixture(params=BACKENDS)
async def both_store(
    request: pytest.FixtureRequest, tmp_path: Path, pg_schema: str
) -> AsyncIterator[Store]:
    """A migrated store on SQLite and on the machine's PostgreSQL (its own schema)."""
    if request.param == "sqlite":
        url, options = f"sqlite:///{tmp_path / 'm.db'}", {}
    else:
        await require_pg()
        url, options = PG_URL, {"schema": pg_schema}
    try:
        async with open_store(url, **options) as store:
            await store.migrate()
            yield store
    finally:
        if request.param != "sqlite":
            await drop_schema(pg_schema)


@pytest.fixture
def desk(both_store: Store, charges: ChargesTable) -> Desk:
    return Desk(both_store, charges)


async def _enter(desk: Desk, qty: int, side: Side = Side.BUY, **kw: Any) -> OrderIntent:
    result = await desk.executor.enter(SYM, side, qty, 1500.0, "cross", **kw)
    assert result.ok, result.reason
    return desk.gateway.submitted[-1]


async def _exit(desk: Desk) -> OrderIntent:
    before = len(desk.gateway.submitted)
    result = await desk.executor.exit(SYM, "target")
    assert result.ok, result.reason
    assert len(desk.gateway.submitted) == before + 1
    return desk.gateway.submitted[-1]


async def _three_slice_entry(desk: Desk) -> OrderIntent:
    entry = await _enter(desk, 300)
    await desk.fill(entry, "1", 100, 1500.0)
    await desk.fill(entry, "2", 100, 1501.0)
    await desk.fill(entry, "3", 100, 1502.5)
    return entry


async def test_three_slices_make_one_round_trip(desk: Desk) -> None:
    entry = await _enter(desk, 300)
    await desk.fill(entry, "1", 100, 1500.0)
    assert desk.executor.entry_working(SYM)  # still tracked: 100 of 300
    assert desk.executor.positions()[0].qty == 100
    row = await desk.store.get_order(entry.client_id)
    assert row is not None
    assert (row.status, row.filled_qty) == (OrderStatus.PARTIALLY_FILLED, 100)
    assert await desk.store.load_trades() == []  # the row waits for the whole entry
    await desk.fill(entry, "2", 100, 1501.0)
    await desk.fill(entry, "3", 100, 1502.5)
    assert not desk.executor.entry_working(SYM)
    (pos,) = desk.executor.positions()
    assert pos.qty == 300
    assert pos.avg_price == pytest.approx((1500.0 + 1501.0 + 1502.5) / 3)
    (trip,) = await desk.store.load_trades()
    assert (trip.id, trip.qty, trip.status) == (entry.client_id, 300, TradeStatus.OPEN)
    assert trip.entry_price == pytest.approx(1501.1666666666667)
    three = sum(fee(desk.charges, Side.BUY, p, 100) for p in (1500.0, 1501.0, 1502.5))
    assert trip.entry_charges == pytest.approx(three, abs=1e-6)
    assert three > fee(desk.charges, Side.BUY, 1501.1666666666667, 300)  # 3 brokerages
    row = await desk.store.get_order(entry.client_id)
    assert row is not None
    assert (row.status, row.filled_qty) == (OrderStatus.FILLED, 300)
    assert desk.risk.open_positions == 1


async def test_trades_of_one_kite_order_pay_one_brokerage(desk: Desk) -> None:
    entry = await _enter(desk, 300)
    for price in (1500.0, 1500.0, 1500.0):  # one Kite order, three trades
        await desk.fill(entry, "7", 100, price)
    (trip,) = await desk.store.load_trades()
    assert trip.entry_charges == pytest.approx(fee(desk.charges, Side.BUY, 1500.0, 300))
    fills = await desk.store.load_fills(client_id=entry.client_id)
    assert sum(f.charges for f in fills) == pytest.approx(trip.entry_charges)


async def test_exit_in_several_fills_closes_once_net_of_every_charge(desk: Desk) -> None:
    entry = await _three_slice_entry(desk)
    out = await _exit(desk)
    assert out.qty == 300
    await desk.fill(out, "4", 200, 1510.0)
    (pos,) = desk.executor.positions()
    assert pos.qty == 100
    assert desk.executor.exit_working(SYM)
    (trip,) = await desk.store.load_trades()
    assert trip.status is TradeStatus.OPEN
    await desk.fill(out, "5", 100, 1513.0)
    assert desk.executor.is_flat
    (trip,) = await desk.store.load_trades()
    assert trip.status is TradeStatus.CLOSED
    assert trip.exit_price == pytest.approx((200 * 1510.0 + 100 * 1513.0) / 300)
    exit_fees = fee(desk.charges, Side.SELL, 1510.0, 200) + fee(
        desk.charges, Side.SELL, 1513.0, 100
    )
    assert trip.exit_charges == pytest.approx(exit_fees, abs=1e-6)
    gross = 200 * 1510.0 + 100 * 1513.0 - (100 * 1500.0 + 100 * 1501.0 + 100 * 1502.5)
    assert trip.gross_pnl == pytest.approx(gross)
    assert trip.net_pnl == pytest.approx(gross - trip.entry_charges - exit_fees, abs=1e-6)
    assert desk.risk.realized_pnl == pytest.approx(trip.net_pnl, abs=1e-6)
    assert desk.risk.open_positions == 0
    assert trip.id == entry.client_id


async def test_partial_entry_then_cancelled_keeps_the_filled_part(desk: Desk) -> None:
    entry = await _enter(desk, 300)
    await desk.fill(entry, "1", 100, 1500.0)
    await desk.ended(entry, OrderStatus.CANCELLED, "filled 100 of 300; rest not executed")
    assert not desk.executor.entry_working(SYM)
    (pos,) = desk.executor.positions()
    assert pos.qty == 100
    (trip,) = await desk.store.load_trades()
    assert (trip.qty, trip.entry_price) == (100, 1500.0)
    assert trip.entry_charges == pytest.approx(fee(desk.charges, Side.BUY, 1500.0, 100))
    row = await desk.store.get_order(entry.client_id)
    assert row is not None
    assert (row.status, row.filled_qty) == (OrderStatus.CANCELLED, 100)
    assert desk.risk.open_positions == 1  # still held: not released
    out = await _exit(desk)
    assert out.qty == 100  # sized to what was filled
    await desk.fill(out, "9", 100, 1490.0)
    assert desk.executor.is_flat
    (trip,) = await desk.store.load_trades()
    assert trip.gross_pnl == pytest.approx(-1000.0)


async def test_exit_asked_during_a_partial_entry_follows_the_cancel(desk: Desk) -> None:
    entry = await _enter(desk, 300)
    await desk.fill(entry, "1", 100, 1500.0)
    result = await desk.executor.exit(SYM, "stop")
    assert result.ok
    assert desk.gateway.cancels == [entry.client_id]
    assert len(desk.gateway.submitted) == 1  # no exit while the entry may still fill
    await desk.fill(entry, "2", 50, 1500.0)  # a fill racing the cancel
    await desk.ended(entry, OrderStatus.CANCELLED)
    out = desk.gateway.submitted[-1]
    assert (out.side, out.qty) == (Side.SELL, 150)


async def test_partial_exit_cancelled_then_the_rest(desk: Desk) -> None:
    await _three_slice_entry(desk)
    first = await _exit(desk)
    await desk.fill(first, "4", 100, 1510.0)
    await desk.ended(first, OrderStatus.CANCELLED, "market protection")
    assert not desk.executor.exit_working(SYM)
    (pos,) = desk.executor.positions()
    assert pos.qty == 200
    assert any("200 still open" in m for k, m in desk.notes if k == "alert")
    (trip,) = await desk.store.load_trades()
    assert (trip.status, trip.qty) == (TradeStatus.OPEN, 300)
    assert desk.risk.realized_pnl == 0.0  # realized only when the round trip closes...
    assert desk.risk.unrealized_pnl == pytest.approx(  # ...but the mark counts it
        desk.executor.ledger.books[SYM].position.unrealized()  # type: ignore[union-attr]
    )
    second = await _exit(desk)
    assert second.qty == 200
    await desk.fill(second, "5", 200, 1495.0)
    assert desk.executor.is_flat
    (trip,) = await desk.store.load_trades()
    assert trip.status is TradeStatus.CLOSED
    assert trip.exit_price == pytest.approx((100 * 1510.0 + 200 * 1495.0) / 300)
    fees_out = fee(desk.charges, Side.SELL, 1510.0, 100) + fee(desk.charges, Side.SELL, 1495.0, 200)
    assert trip.exit_charges == pytest.approx(fees_out, abs=1e-6)
    assert desk.risk.realized_pnl == pytest.approx(trip.net_pnl, abs=1e-6)


async def test_restart_mid_entry_restores_the_filled_part(desk: Desk) -> None:
    entry = await _enter(desk, 300)
    await desk.fill(entry, "1", 100, 1500.0)
    await desk.fill(entry, "2", 100, 1504.0)
    before = desk.executor.positions()
    charges_before = desk.executor.ledger.books[SYM].position.entry_charges  # type: ignore[union-attr]
    desk.restart()  # killed: no round trip row yet
    await desk.executor.restore()
    assert desk.executor.positions() == before
    (trip,) = await desk.store.load_trades()
    assert (trip.id, trip.qty, trip.entry_price) == (entry.client_id, 200, 1502.0)
    assert trip.entry_charges == pytest.approx(charges_before)
    assert desk.risk.open_positions == 1
    out = await _exit(desk)
    assert out.qty == 200


async def test_restart_mid_exit_restores_the_rest(desk: Desk) -> None:
    await _three_slice_entry(desk)
    out = await _exit(desk)
    await desk.fill(out, "4", 100, 1510.0)
    pos = desk.executor.ledger.books[SYM].position
    assert pos is not None
    desk.executor.on_tick(SYM, desk.clock.ts_ns(), 1508.0)
    mark_before = pos.unrealized()
    assert mark_before == pytest.approx(desk.risk.unrealized_pnl)
    desk.restart()
    await desk.executor.restore()
    (restored,) = desk.executor.positions()
    assert restored.qty == 200
    after = desk.executor.ledger.books[SYM].position
    assert after is not None
    desk.executor.on_tick(SYM, desk.clock.ts_ns(), 1508.0)
    assert after.unrealized() == pytest.approx(mark_before, abs=1e-6)
    second = await _exit(desk)
    assert second.qty == 200
    await desk.fill(second, "5", 200, 1510.0)
    (trip,) = await desk.store.load_trades()
    assert trip.status is TradeStatus.CLOSED
    assert trip.exit_price == pytest.approx(1510.0)


async def test_restart_after_fill_stored_but_round_trip_not_written(desk: Desk) -> None:
    """The kill point: the entry is FILLED in the store, no round trip row; then the exit
    likewise. Restore writes what the dead process did not."""
    entry = await _enter(desk, 100)
    fill = Fill("Kx-1", entry.client_id, SYM, Side.BUY, 100, 1500.0, desk.clock.now(), 12.5)
    assert await desk.store.apply_fill(fill)  # as the dead process did, and no more
    desk.restart()
    await desk.executor.restore()
    (trip,) = await desk.store.load_trades()
    assert (trip.id, trip.qty, trip.entry_charges) == (entry.client_id, 100, 12.5)
    assert desk.notes == []  # nothing to alert: repaired
    assert desk.executor.positions()[0].qty == 100
    out = await _exit(desk)
    later = desk.clock.now() + timedelta(seconds=5)
    assert await desk.store.apply_fill(
        Fill("Ky-1", out.client_id, SYM, Side.SELL, 100, 1510.0, later, 20.0)
    )
    desk.restart()
    await desk.executor.restore()
    assert desk.executor.is_flat
    (trip,) = await desk.store.load_trades()
    assert trip.status is TradeStatus.CLOSED
    assert trip.net_pnl == pytest.approx(1000.0 - 12.5 - 20.0)
    assert desk.risk.realized_pnl == pytest.approx(1000.0 - 12.5 - 20.0)
