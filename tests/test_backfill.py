"""Backfill into a real SQLite file: exact rows, idempotent, resumable, validated; the CLI."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from mental_trader.backfill import BackfillReport, Shortfall, backfill
from mental_trader.brokers.base import Broker
from mental_trader.brokers.sim import SimBroker
from mental_trader.calendar import TradingCalendar, ist_date
from mental_trader.config import Settings
from mental_trader.errors import BrokerError
from mental_trader.models import Instrument
from mental_trader.storage.base import CANDLE_COLUMNS, Candles, Store, open_store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # Friday 17:30 IST, after the close
SESSIONS = [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)]
SYMBOLS = ["NSE:RELIANCE", "NSE:INFY"]


@pytest.fixture(scope="module")
def cal() -> TradingCalendar:
    return TradingCalendar()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{tmp_path / 'candles.db'}", synchronous="NORMAL") as db:
        await db.migrate()
        yield db


@pytest.fixture
def sim(cal: TradingCalendar) -> SimBroker:
    return SimBroker(SYMBOLS, seed=42, calendar=cal, now=lambda: NOW)


class WrappedBroker:
    """A SimBroker that fails after ``fail_after`` history calls and/or drops bars."""

    name = "wrapped"

    def __init__(
        self,
        inner: SimBroker,
        *,
        fail_after: int | None = None,
        fail_symbol: str | None = None,
        drop: tuple[str, date, slice] | None = None,
    ) -> None:
        self.inner = inner
        self.fail_after = fail_after
        self.fail_symbol = fail_symbol
        self.drop = drop
        self.calls = 0

    async def instruments(self) -> list[Instrument]:
        return await self.inner.instruments()

    async def history(
        self, symbol: str, timeframe_s: int, start: datetime, end: datetime
    ) -> Candles:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise BrokerError("connection reset by peer")
        if symbol == self.fail_symbol:
            raise BrokerError(f"unknown instrument {symbol}")
        self.calls += 1
        bars = await self.inner.history(symbol, timeframe_s, start, end)
        if self.drop is not None and self.drop[0] == symbol:
            day_open = self.inner.calendar.session_bounds_ns(self.drop[1])[0]
            if bars["ts"][0] == day_open:
                keep = np.ones(len(bars["ts"]), dtype=bool)
                keep[self.drop[2]] = False
                bars = {name: col[keep] for name, col in bars.items()}
        return bars

    async def close(self) -> None:
        await self.inner.close()


async def stored(store: Store, symbol: str, timeframe_s: int = 60) -> Candles:
    return await store.load_candles(symbol, timeframe_s)


async def run(
    store: Store,
    broker: Broker,
    cal: TradingCalendar,
    *,
    days: int = 3,
    timeframe_s: int = 60,
    now: datetime = NOW,
) -> BackfillReport:
    return await backfill(store, broker, cal, SYMBOLS, days, timeframe_s, progress=False, now=now)


async def test_rows_match_broker_history_exactly(
    store: Store, sim: SimBroker, cal: TradingCalendar
) -> None:
    report = await run(store, sim, cal)
    assert report.ok
    assert report.sessions == tuple(SESSIONS)
    assert report.rows_written == 2 * 3 * 375
    assert report.symbol_days_loaded == 6
    assert report.shortfalls == []
    assert report.failures == []
    start, _ = cal.session_bounds(SESSIONS[0])
    _, end = cal.session_bounds(SESSIONS[-1])
    for symbol in SYMBOLS:
        got = await stored(store, symbol)
        want = await sim.history(symbol, 60, start, end)
        for name in CANDLE_COLUMNS:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


async def test_rerun_is_idempotent_and_skips_complete_days(
    store: Store, sim: SimBroker, cal: TradingCalendar
) -> None:
    await run(store, sim, cal)
    before = {s: await stored(store, s) for s in SYMBOLS}
    again = await run(store, sim, cal)
    assert again.ok
    assert again.symbol_days_skipped == 6
    assert again.rows_written == 0
    for symbol in SYMBOLS:
        after = await stored(store, symbol)
        assert len(after["ts"]) == 3 * 375
        np.testing.assert_array_equal(after["close"], before[symbol]["close"])
    # a 5-minute backfill is a separate timeframe next to the 1-minute rows
    five = await run(store, sim, cal, timeframe_s=300)
    assert five.ok
    assert five.rows_written == 2 * 3 * 75
    assert len((await stored(store, "NSE:INFY", 300))["ts"]) == 3 * 75


async def test_interrupted_run_resumes_where_it_stopped(
    store: Store, sim: SimBroker, cal: TradingCalendar
) -> None:
    flaky = WrappedBroker(sim, fail_after=4)  # RELIANCE x3, INFY day 1, then failures
    first = await run(store, flaky, cal)
    assert not first.ok
    assert first.symbol_days_loaded == 4
    assert [(f.symbol, f.day, f.days_not_loaded) for f in first.failures] == [
        ("NSE:INFY", SESSIONS[1], 2)
    ]
    assert "connection reset" in first.failures[0].error
    assert "failed NSE:INFY" in first.summary()
    assert len((await stored(store, "NSE:INFY"))["ts"]) == 375

    second = await run(store, WrappedBroker(sim), cal)
    assert second.ok
    assert second.symbol_days_skipped == 4
    assert second.symbol_days_loaded == 2
    for symbol in SYMBOLS:
        assert len((await stored(store, symbol))["ts"]) == 3 * 375


async def test_a_failing_symbol_does_not_stop_the_others(
    store: Store, sim: SimBroker, cal: TradingCalendar
) -> None:
    report = await run(store, WrappedBroker(sim, fail_symbol="NSE:RELIANCE"), cal)
    assert [(f.symbol, f.day, f.days_not_loaded) for f in report.failures] == [
        ("NSE:RELIANCE", SESSIONS[0], 3)
    ]
    assert len((await stored(store, "NSE:RELIANCE"))["ts"]) == 0
    assert len((await stored(store, "NSE:INFY"))["ts"]) == 3 * 375


async def test_missing_bars_are_reported_as_shortfalls(
    store: Store, sim: SimBroker, cal: TradingCalendar
) -> None:
    gappy = WrappedBroker(sim, drop=("NSE:INFY", SESSIONS[1], slice(100, 105)))
    report = await run(store, gappy, cal)
    assert report.shortfalls == [Shortfall("NSE:INFY", SESSIONS[1], 375, 370, True)]
    assert not report.ok
    assert "shortfall NSE:INFY 2026-11-19: 370 of 375 bars" in report.summary()
    # the next run retries the incomplete day (and the good broker fills it)
    healed = await run(store, sim, cal)
    assert healed.ok
    assert healed.symbol_days_loaded == 1
    assert healed.symbol_days_skipped == 5


async def test_session_in_progress_counts_closed_bars_only(
    store: Store, cal: TradingCalendar
) -> None:
    now = datetime(2026, 11, 20, 5, 0, 30, tzinfo=UTC)  # 10:30:30 IST
    broker = SimBroker(SYMBOLS, seed=42, calendar=cal, now=lambda: now)
    report = await run(store, broker, cal, days=2, now=now)
    assert report.ok
    assert report.sessions == (SESSIONS[1], SESSIONS[2])
    assert len((await stored(store, "NSE:INFY"))["ts"]) == 375 + 75
    # before today's open, today is not one of the sessions
    early = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # 08:30 IST
    report = await run(store, broker, cal, days=2, now=early)
    assert report.sessions == (SESSIONS[0], SESSIONS[1])


# ----------------------------------------------------------------- the CLI, end to end


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment minus every Mental Trader setting, with DATA_DIR in tmp_path."""
    names = {name.upper() for name in Settings.env_names()}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(DATA_DIR=str(tmp_path / "data"), **extra)
    return env


def cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mental_trader", *args],
        cwd=tmp_path,  # no .env here
        env=cli_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_db_upgrade_then_backfill(tmp_path: Path, cal: TradingCalendar) -> None:
    upgrade = cli(tmp_path, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert "schema version:" in upgrade.stdout
    assert "applied migrations: 1" in upgrade.stdout
    db = tmp_path / "data" / "mental_trader.db"
    assert db.is_file()
    assert "up to date" in cli(tmp_path, "db", "upgrade").stdout

    done = cli(tmp_path, "backfill", "--days", "2", "--symbols", "RELIANCE", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "0 failure(s)" in done.stdout
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT symbol, timeframe_s, ts FROM candles ORDER BY ts").fetchall()
    assert {(r[0], r[1]) for r in rows} == {("NSE:RELIANCE", 60)}
    days = sorted({ist_date(r[2]) for r in rows})
    assert 1 <= len(days) <= 2
    assert all(cal.is_session(d) for d in days)
    # every session that closed before the run is complete
    closed = [d for d in days if cal.session_bounds(d)[1] <= datetime.now(UTC)]
    assert closed
    for day in closed:
        assert sum(1 for r in rows if ist_date(r[2]) == day) == 375


def test_cli_config_error_is_one_line_and_status_2(tmp_path: Path) -> None:
    result = cli(tmp_path, "db", "upgrade", EMA_SHORT="30")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "EMA_SHORT" in lines[0]
