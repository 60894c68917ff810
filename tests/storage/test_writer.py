"""Write-behind: ordered, idempotent, bounded; an outage spools and loses nothing.

The outage is real on both backends: for SQLite another connection holds the database's
exclusive lock; for PostgreSQL the store talks through a loopback TCP proxy that the test
cuts (every connection dropped, connects refused) and restores.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mental_trader.core import Ema
from mental_trader.models import EmaStateRow, Event
from mental_trader.storage import CandleRow, Store, StoreWriter, open_store
from mental_trader.storage.base import ns_to_dt

from ._proxy import TcpProxy
from .conftest import BACKENDS, PG_URL, drop_schema, require_pg

T0_NS = 1_795_372_200_000_000_000 + (9 * 60 + 15) * 60_000_000_000  # 2026-11-23 09:15 IST
MIN_NS = 60_000_000_000


def bar(i: int, symbol: str = "NSE:INFY") -> CandleRow:
    close = 100.0 + 0.05 * i
    return CandleRow(symbol, 60, T0_NS + i * MIN_NS, close, close + 1, close - 1, close, 1.0, 1)


def state(i: int, ema: Ema, symbol: str = "NSE:INFY") -> EmaStateRow:
    return EmaStateRow(symbol, 60, ns_to_dt(T0_NS + i * MIN_NS), ema.to_state(), ema.to_state())


async def wait_for(predicate: Callable[[], bool], limit_s: float = 20.0) -> None:
    """Poll until ``predicate()`` holds (no fixed sleeps: the machine is noisy)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@dataclass
class OutageRig:
    """A store the writer uses, a direct store to check results, and the outage switch."""

    store: Store
    check: Store
    down: Callable[[], Awaitable[None]]
    up: Callable[[], Awaitable[None]]


@pytest.fixture(params=BACKENDS)
async def rig(
    request: pytest.FixtureRequest, tmp_path: Path, pg_schema: str
) -> AsyncIterator[OutageRig]:
    if request.param == "sqlite":
        path = tmp_path / "w.db"
        locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

        async def down() -> None:
            locker.execute("BEGIN EXCLUSIVE")

        async def up() -> None:
            locker.execute("COMMIT")

        async with (
            open_store(f"sqlite:///{path}", busy_timeout_ms=20) as store,
            open_store(f"sqlite:///{path}") as check,
        ):
            await check.migrate()
            yield OutageRig(store, check, down, up)
        locker.close()
        return
    await require_pg()
    proxy = TcpProxy("127.0.0.1", int(PG_URL.rsplit(":", 1)[1].split("/")[0]))
    await proxy.start()
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
    try:
        async with (
            open_store(url, schema=pg_schema, command_timeout=5.0) as store,
            open_store(PG_URL, schema=pg_schema) as check,
        ):
            await check.migrate()
            yield OutageRig(store, check, proxy.stop, proxy.start)
    finally:
        await proxy.stop()
        await drop_schema(pg_schema)


async def test_writes_commit_in_order_with_their_ema_state(rig: OutageRig) -> None:
    ema = Ema(3)
    async with StoreWriter(rig.store) as writer:
        for i in range(200):
            ema.update(bar(i).close)
            writer.commit_bars([bar(i)], [state(i, ema)])
        assert await writer.flush(30)
        assert writer.health().acked == 200
    stored = await rig.check.load_candles("NSE:INFY", 60)
    np.testing.assert_array_equal(stored["ts"], [bar(i).ts_ns for i in range(200)])
    loaded = await rig.check.load_ema_states(["NSE:INFY"], 60)
    assert loaded["NSE:INFY"].fast_state == ema.to_state()


async def test_outage_spools_then_flushes_with_zero_loss(rig: OutageRig) -> None:
    async with StoreWriter(rig.store, retry_initial_s=0.01, retry_max_s=0.1) as writer:
        writer.commit_bars([bar(0)])
        assert await writer.flush(30)
        await rig.down()
        for i in range(1, 301):
            writer.commit_bars([bar(i)])
        writer.insert_event(Event("ev-outage", ns_to_dt(T0_NS), "test", "during the outage"))
        await wait_for(lambda: writer.health().state == "outage")
        health = writer.health()
        assert health.pending >= 1
        assert health.last_error
        await rig.up()
        assert await writer.flush(30)
        health = writer.health()
        assert (health.state, health.pending, health.dropped, health.failed) == ("ok", 0, 0, 0)
    stored = await rig.check.load_candles("NSE:INFY", 60)
    np.testing.assert_array_equal(stored["ts"], [bar(i).ts_ns for i in range(301)])
    assert [e.id for e in await rig.check.load_events()] == ["ev-outage"]


async def test_full_spool_drops_the_oldest_and_says_so(
    rig: OutageRig, caplog: pytest.LogCaptureFixture
) -> None:
    async with StoreWriter(
        rig.store, max_spool=10, retry_initial_s=0.01, retry_max_s=0.05
    ) as writer:
        await rig.down()
        writer.commit_bars([bar(0)])
        await wait_for(lambda: writer.health().state == "outage")
        for i in range(1, 25):
            writer.commit_bars([bar(i)])
        health = writer.health()
        assert health.dropped == 15
        assert health.pending == 10
        await rig.up()
        assert await writer.flush(30)
    stored = await rig.check.load_candles("NSE:INFY", 60)
    np.testing.assert_array_equal(stored["ts"], [bar(i).ts_ns for i in range(15, 25)])
    assert "spool full" in caplog.text
    assert "backfill" in caplog.text


async def test_a_refused_write_is_counted_and_skipped(
    rig: OutageRig, caplog: pytest.LogCaptureFixture
) -> None:
    bad = EmaStateRow(None, 60, ns_to_dt(T0_NS), {}, {})  # type: ignore[arg-type]
    async with StoreWriter(rig.store) as writer:
        writer.commit_bars([bar(0)])
        assert await writer.flush(30)
        writer.insert_event(Event("ev-1", ns_to_dt(T0_NS), "test", "x"))
        writer.commit_bars([bar(1)], [bad])
        writer.insert_event(Event("ev-2", ns_to_dt(T0_NS), "test", "y"))
        assert await writer.flush(30)
        health = writer.health()
        assert (health.failed, health.acked, health.state) == (1, 3, "ok")
    stored = await rig.check.load_candles("NSE:INFY", 60)
    np.testing.assert_array_equal(stored["ts"], [bar(0).ts_ns])
    assert {e.id for e in await rig.check.load_events()} == {"ev-1", "ev-2"}
    assert "refused" in caplog.text


async def test_connections_cut_again_and_again_lose_nothing(pg_schema: str) -> None:
    """The server "restarts" (every connection cut) five times during writes: zero rows lost."""
    await require_pg()
    proxy = TcpProxy("127.0.0.1", int(PG_URL.rsplit(":", 1)[1].split("/")[0]))
    await proxy.start()
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
    try:
        async with open_store(url, schema=pg_schema, command_timeout=5.0) as store:
            await store.migrate()
            async with StoreWriter(store, retry_initial_s=0.01, retry_max_s=0.05) as writer:
                outages = 0
                for i in range(2000):
                    cut = i % 400 == 200
                    if cut:
                        await asyncio.sleep(0.005)  # the writer may be mid-transaction
                        await proxy.stop()
                    writer.commit_bars([bar(i)])
                    if cut:
                        await wait_for(lambda: writer.health().state == "outage")
                        outages += 1
                        await proxy.start()
                    if i % 50 == 0:
                        await asyncio.sleep(0)
                assert await writer.flush(60)
                health = writer.health()
                assert (health.state, health.dropped, health.failed) == ("ok", 0, 0)
            assert outages == 5
            stored = await store.load_candles("NSE:INFY", 60)
        np.testing.assert_array_equal(stored["ts"], [bar(i).ts_ns for i in range(2000)])
    finally:
        await proxy.stop()
        await drop_schema(pg_schema)
