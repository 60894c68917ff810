"""Execution fixtures: the real SQLite store, the packaged charges table, a rig factory."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mental_trader.config import Settings, load_settings
from mental_trader.execution.charges import ChargesTable
from mental_trader.execution.executor import Executor
from mental_trader.risk import RiskManager
from mental_trader.storage import Store, open_store

from ._fakes import FakeClock, RecordingPaper

BASE_SETTINGS: dict[str, Any] = {
    "capital": 1_000_000,
    "max_position_value": 1_000_000,
    "daily_loss_limit": 5_000,
    "max_open_positions": 3,
    "max_trades_per_day": 20,
    "max_orders_per_second": 5,
}


@pytest.fixture(scope="session")
def charges() -> ChargesTable:
    """The packaged Zerodha table."""
    return ChargesTable.load()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "t.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store; writes give up after 50 ms on a lock (see ``db_locked``)."""
    s = open_store(f"sqlite:///{db_path}", busy_timeout_ms=50)
    await s.connect()
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def db_locked(db_path: Path) -> Callable[[], Any]:
    """A context manager: another process-like connection holds the write lock (an outage
    the store reports as a retryable StorageError)."""

    @contextmanager
    def locked() -> Iterator[None]:
        other = sqlite3.connect(db_path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            yield
            other.execute("ROLLBACK")
        finally:
            other.close()

    return locked


@dataclass
class Rig:
    """One executor over the real store and the paper gateway, on a virtual clock."""

    store: Store
    clock: FakeClock
    charges: ChargesTable
    settings: Settings
    risk: RiskManager
    gateway: RecordingPaper
    executor: Executor
    notes: list[tuple[str, str]] = field(default_factory=list)

    def tick(self, symbol: str, price: float, dt: float = 1.0) -> None:
        self.clock.advance(dt)
        self.executor.on_tick(symbol, self.clock.ts_ns(), price)

    async def tick_and_pump(self, symbol: str, price: float) -> None:
        self.tick(symbol, price)
        await self.executor.pump()


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
def make_rig(store: Store, charges: ChargesTable) -> RigFactory:
    """``await make_rig(half_spread_bps=0, slippage_bps=0, **settings)``."""

    async def build(
        half_spread_bps: float = 0.0, slippage_bps: float = 0.0, **overrides: Any
    ) -> Rig:
        settings = load_settings(_env_file=None, **{**BASE_SETTINGS, **overrides})
        clock = FakeClock()
        risk = RiskManager(settings, clock)
        gateway = RecordingPaper(
            charges,
            clock,
            half_spread_bps=half_spread_bps,
            slippage_bps=slippage_bps,
            store=store,
        )
        notes: list[tuple[str, str]] = []
        executor = Executor(store, gateway, risk, charges, clock, lambda k, m: notes.append((k, m)))
        return Rig(store, clock, charges, settings, risk, gateway, executor, notes)

    return build
