"""PostgreSQL-only behaviour of :class:`PostgresStore` (the shared contract is in
``test_contract.py``): the binary COPY paths, migrations under concurrency, error
translation, secrets in messages, and recovery from a killed server connection.

Each test works in its own schema on the machine's server (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np
import pytest

from mental_trader.core import Ema
from mental_trader.errors import StorageError
from mental_trader.models import EmaStateRow, Fill, Side
from mental_trader.storage import postgres
from mental_trader.storage.base import CANDLE_COLUMNS, open_store
from mental_trader.storage.postgres import PostgresStore

from .conftest import PG_URL, drop_schema, require_pg

pytestmark = pytest.mark.db

T0_NS = 1_795_405_500_000_000_000  # 2026-11-23 03:45 UTC (09:15 IST)
MIN_NS = 60_000_000_000
I64 = np.iinfo(np.int64)
SECRET = "Pa55-w0rd_s3cret"


def candles(n: int, *, start_ns: int = T0_NS, seed: int = 1, step_ns: int = MIN_NS) -> dict:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.5, n))
    return {
        "ts": start_ns + np.arange(n, dtype=np.int64) * step_ns,
        "open": close + rng.normal(0, 0.1, n),
        "high": close + 1.0,
        "low": close - 1.0,
        "close": close,
        "volume": rng.integers(0, 10**12, n).astype(np.float64),
        "ticks": rng.integers(1, 500, n).astype(np.int64),
    }


def assert_same(got: dict, want: dict) -> None:
    assert list(got) == list(CANDLE_COLUMNS)
    for name, dtype in CANDLE_COLUMNS.items():
        assert got[name].dtype == dtype, name
        np.testing.assert_array_equal(got[name], np.asarray(want[name], dtype=dtype), name)
        if got[name].dtype.kind == "f":  # -0.0 == 0.0 above: compare the sign bits too
            np.testing.assert_array_equal(np.signbit(got[name]), np.signbit(want[name]), name)


async def count_rows(store: PostgresStore, table: str = "candles") -> int:
    async with store.transaction() as conn:
        row = await conn.fetchrow(f"SELECT count(*) FROM {table}")
    assert row is not None
    return int(row[0])


@pytest.fixture
async def pg(pg_schema: str) -> AsyncIterator[PostgresStore]:
    """A connected, migrated store in a fresh schema (dropped afterwards)."""
    await require_pg()
    store = PostgresStore(PG_URL, schema=pg_schema, max_size=4)
    try:
        await store.connect()
        await store.migrate()
        yield store
    finally:
        await store.close()
        await drop_schema(pg_schema)


# ----------------------------------------------------------------------------- binary COPY


async def test_copy_round_trips_extreme_values_exactly(pg: PostgresStore) -> None:
    f64 = np.finfo(np.float64)
    specials = [f64.max, -f64.max, f64.tiny, 5e-324, -0.0, 0.0, math.inf, -math.inf, math.nan]
    n = len(specials)
    bars = candles(n)
    # Far past and far future within int64 ns (and timestamptz), on whole microseconds.
    bars["ts"] = np.sort(
        np.array(
            [-(-I64.min // 1000) * 1000, -(10**18), -1000, 0, 1000, T0_NS, 10**18, 4 * 10**18,
             I64.max // 1000 * 1000],
            dtype=np.int64,
        )
    )  # fmt: skip
    for name in ("open", "high", "low", "close"):
        bars[name] = np.array(specials, dtype=np.float64)
    bars["volume"] = np.array([1e300, 2.0**53 + 2, 9.99e15, 0, 1, 2, 3, 4, 5], dtype=np.float64)
    bars["ticks"] = np.array([I64.max, I64.min, 0, -1, 1, 2, 3, 4, 5], dtype=np.int64)
    assert await pg.upsert_candles("NSE:X", 60, bars) == n
    assert_same(await pg.load_candles("NSE:X", 60), bars)
    last = await pg.load_last_candles(["NSE:X"], 60, 4)
    assert_same(last["NSE:X"], {k: v[-4:] for k, v in bars.items()})


async def test_nanoseconds_floor_to_microseconds_and_last_repeat_wins(pg: PostgresStore) -> None:
    bars = candles(4)
    bars["ts"] = np.array([T0_NS + 1999, T0_NS + 1000, T0_NS - 1, T0_NS + 5000], dtype=np.int64)
    assert await pg.upsert_candles("NSE:X", 60, bars) == 4
    got = await pg.load_candles("NSE:X", 60)
    np.testing.assert_array_equal(got["ts"], [T0_NS - 1000, T0_NS + 1000, T0_NS + 5000])
    np.testing.assert_array_equal(got["close"], bars["close"][[2, 1, 3]])  # 2nd of the pair
    # Bounds in ns select on the stored µs value: start <= ts < end.
    got = await pg.load_candles("NSE:X", 60, start_ns=T0_NS + 1, end_ns=T0_NS + 5000)
    np.testing.assert_array_equal(got["ts"], [T0_NS + 1000])
    got = await pg.load_candles("NSE:X", 60, start_ns=T0_NS - 1000, end_ns=T0_NS + 5001)
    np.testing.assert_array_equal(got["ts"], [T0_NS - 1000, T0_NS + 1000, T0_NS + 5000])


async def test_reupsert_overwrites_without_duplicating(pg: PostgresStore) -> None:
    bars = candles(500)
    await pg.upsert_candles("NSE:A", 60, bars)
    await pg.upsert_candles("NSE:A", 60, bars)  # same values: a no-op
    assert await count_rows(pg) == 500
    changed = {k: v.copy() for k, v in bars.items()}
    changed["close"][::2] += 1.0
    changed["ticks"][1::3] += 7
    await pg.upsert_candles("NSE:A", 60, changed)
    assert await count_rows(pg) == 500
    assert_same(await pg.load_candles("NSE:A", 60), changed)
    # A block that half overlaps: 250 overwritten, 250 new.
    more = candles(500, start_ns=T0_NS + 250 * MIN_NS, seed=2)
    await pg.upsert_candles("NSE:A", 60, more)
    assert await count_rows(pg) == 750
    got = await pg.load_candles("NSE:A", 60)
    assert_same({k: v[:250] for k, v in got.items()}, {k: v[:250] for k, v in changed.items()})
    assert_same({k: v[250:] for k, v in got.items()}, more)


async def test_racing_writer_falls_back_to_merge(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If rows appear between the overlap check and the direct COPY, the upsert still wins."""
    bars = candles(300)
    await pg.upsert_candles("NSE:A", 60, bars)
    never = (
        "SELECT $1::text[] IS NULL AND $2::int IS NULL AND $3::timestamptz[] IS NULL "
        "AND $4::timestamptz[] IS NULL"
    )
    monkeypatch.setattr(postgres, "_OVERLAP_SQL", never)
    changed = {k: v.copy() for k, v in bars.items()}
    changed["open"] += 0.5
    assert await pg.upsert_candles("NSE:A", 60, changed) == 300
    assert await count_rows(pg) == 300
    assert_same(await pg.load_candles("NSE:A", 60), changed)


@pytest.mark.parametrize(("piece", "batch"), [(7, 21), (7, 20), (64, 64), (1, 3)])
async def test_chunk_boundaries(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch, piece: int, batch: int
) -> None:
    monkeypatch.setattr(postgres, "PIECE_ROWS", piece)
    monkeypatch.setattr(postgres, "BATCH_ROWS", batch)
    sizes = {"NSE:A": 0, "NSE:B": 1, "NSE:C": piece, "NSE:D": batch, "NSE:E": batch + 1}
    sizes["NSE:F"] = 3 * batch - 1
    blocks = {sym: candles(n, seed=k) for k, (sym, n) in enumerate(sizes.items())}
    assert await pg.upsert_candles_many(60, blocks) == sum(sizes.values())  # direct COPY
    assert await count_rows(pg) == sum(sizes.values())
    for sym, bars in blocks.items():
        assert_same(await pg.load_candles(sym, 60), bars)
    changed = {sym: {**b, "close": b["close"] * 2} for sym, b in blocks.items()}
    assert await pg.upsert_candles_many(60, changed) == sum(sizes.values())  # staged merge
    assert await count_rows(pg) == sum(sizes.values())
    for sym, bars in changed.items():
        assert_same(await pg.load_candles(sym, 60), bars)


async def test_symbols_are_quoted_safely(pg: PostgresStore) -> None:
    odd = ["", "it's", 'a"b', "x'); DROP TABLE candles; --", "\\N", "ÄÖ€"]
    for k, sym in enumerate(odd):
        await pg.upsert_candles(sym, 60, candles(3, seed=k))
    last = await pg.load_last_candles([*odd, "none"], 60, 2)
    for k, sym in enumerate(odd):
        assert_same(await pg.load_candles(sym, 60), candles(3, seed=k))
        assert_same(last[sym], {c: v[-2:] for c, v in candles(3, seed=k).items()})
    assert len(last["none"]["ts"]) == 0
    assert await count_rows(pg) == 3 * len(odd)


async def test_load_last_candles_matches_load_candles(pg: PostgresStore) -> None:
    n = 30
    sizes = {"S0": 0, "S1": 1, "S29": n - 1, "S30": n, "S31": n + 1, "S500": 500}
    for k, (sym, size) in enumerate(sizes.items()):
        if size:
            await pg.upsert_candles(sym, 60, candles(size, seed=k))
    await pg.upsert_candles("S500", 300, candles(10, seed=99))  # another timeframe: ignored
    symbols = ["S31", "S0", "S500", "S1", "S30", "S29", "S31", "missing"]
    last = await pg.load_last_candles(symbols, 60, n)
    assert set(last) == set(symbols)
    for sym in symbols:
        full = await pg.load_candles(sym, 60)
        assert_same(last[sym], {k: v[-n:] for k, v in full.items()})
    assert all(len(b["ts"]) == 0 for b in (await pg.load_last_candles(symbols, 60, 0)).values())
    assert await pg.load_last_candles([], 60, 5) == {}


async def test_sessions_plan_per_execution_in_their_schema(pg: PostgresStore) -> None:
    """A generic plan cached while a table was empty (a seq scan) must never stick: the
    server here runs without autovacuum, so nothing would replan it as the table grows."""
    async with pg.transaction() as conn:
        row = await conn.fetchrow(
            "SELECT current_setting('plan_cache_mode'), current_setting('jit'), "
            "current_setting('standard_conforming_strings'), current_schema()"
        )
    assert row is not None
    assert tuple(row) == ("force_custom_plan", "off", "on", pg.schema)


# ----------------------------------------------------------------------------- migrations


async def test_migrate_twice_is_a_noop(pg_schema: str) -> None:
    await require_pg()
    try:
        async with PostgresStore(PG_URL, schema=pg_schema) as store:
            assert isinstance(store, PostgresStore)
            assert await store.schema_version() == 0
            assert await store.migrate(target=1) == [1]
            assert await store.migrate() == [2]
            assert await store.migrate() == []
            assert await count_rows(store, "schema_version") == 2
    finally:
        await drop_schema(pg_schema)


async def test_concurrent_migrations_apply_each_version_once(pg_schema: str) -> None:
    await require_pg()
    stores = [PostgresStore(PG_URL, schema=pg_schema) for _ in range(3)]
    try:
        await asyncio.gather(*(s.connect() for s in stores))
        results = await asyncio.gather(*(s.migrate() for s in stores))
        assert sorted(v for r in results for v in r) == [1, 2]
        assert [await s.schema_version() for s in stores] == [2, 2, 2]
        assert await count_rows(stores[0], "schema_version") == 2
    finally:
        for s in stores:
            await s.close()
        await drop_schema(pg_schema)


# ----------------------------------------------------------------------------- errors


def _port_without_server() -> str:
    return PG_URL.replace("@127.0.0.1:5432", f"{':' + SECRET}@127.0.0.1:1")


async def test_password_never_appears_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = _port_without_server()
    assert SECRET in url
    store = PostgresStore(url, command_timeout=5)
    assert SECRET not in repr(store)
    for call in (store.connect, store.ping, store.migrate):
        with pytest.raises(StorageError) as info:
            await call()
        err = info.value
        assert err.retryable
        for text in (str(err), repr(err), str(err.__cause__), str(err.__context__)):
            assert SECRET not in text
    store2 = open_store(url.replace("postgresql://", "postgres://"), command_timeout=5)
    with pytest.raises(StorageError) as info:
        await store2.load_candles("NSE:A", 60)
    assert info.value.retryable
    assert SECRET not in str(info.value)
    await store.close()
    await store2.close()
    assert SECRET not in caplog.text


async def test_refusals_are_not_retryable_and_base_errors_pass_through(pg: PostgresStore) -> None:
    with pytest.raises(StorageError) as info:
        async with pg.transaction() as conn:
            await conn.execute("INSERT INTO schema_version VALUES (1, 'dup', now())")
    assert not info.value.retryable
    assert "23505" in str(info.value)  # unique_violation
    with pytest.raises(StorageError) as info:
        await pg.apply_fill(
            Fill("f1", "no-such-order", "NSE:A", Side.BUY, 1, 1.0, datetime.now(UTC))
        )
    assert str(info.value) == "fill 'f1' for unknown client id 'no-such-order'"
    assert not info.value.retryable
    with pytest.raises(StorageError) as info:  # a bad argument, caught by the driver
        async with pg.transaction() as conn:
            await conn.execute("SELECT $1::int", "not an int")
    assert not info.value.retryable


async def test_killed_connection_is_retryable_and_next_call_reconnects(pg_schema: str) -> None:
    await require_pg()
    store = PostgresStore(PG_URL, schema=pg_schema, min_size=1, max_size=1)
    admin = await asyncpg.connect(PG_URL)
    try:
        await store.connect()
        await store.migrate()
        await store.upsert_candles("NSE:A", 60, candles(10))
        pids: list[int] = []

        async def killed_mid_transaction() -> None:
            async with store.transaction() as conn:
                row = await conn.fetchrow("SELECT pg_backend_pid()")
                assert row is not None
                pids.append(int(row[0]))
                await admin.execute("SELECT pg_terminate_backend($1)", pids[0])
                await conn.fetchrow("SELECT count(*) FROM candles")

        with pytest.raises(StorageError) as info:
            await killed_mid_transaction()
        assert info.value.retryable
        # The next call gets a fresh connection and works.
        assert_same(await store.load_candles("NSE:A", 60), candles(10))
        async with store.transaction() as conn:
            row = await conn.fetchrow("SELECT pg_backend_pid()")
        assert row is not None
        assert int(row[0]) != pids[0]
        # Idle pool connections killed between calls: the next calls work too.
        await admin.execute("SELECT pg_terminate_backend($1)", int(row[0]))
        await asyncio.sleep(0.2)
        await store.ping()
        assert await store.upsert_candles("NSE:A", 60, candles(20)) == 20
        assert_same(await store.load_candles("NSE:A", 60), candles(20))
    finally:
        await admin.close()
        await store.close()
        await drop_schema(pg_schema)


async def test_closed_store_refuses_and_close_is_idempotent(pg: PostgresStore) -> None:
    await pg.close()
    await pg.close()
    with pytest.raises(StorageError) as info:
        await pg.ping()
    assert not info.value.retryable
    await pg.connect()  # reopening works
    await pg.ping()


# ----------------------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    "value",
    [
        {"a": math.nan, "b": [math.inf, -math.inf, -0.0, 0.0], "c": {"d": 1e-300}},
        {"n": 2**70, "s": "x", "t": True, "z": None, "f": 0.1 + 0.2},
    ],
)
async def test_json_keeps_non_finite_floats_and_exact_numbers(
    pg: PostgresStore, value: dict[str, Any]
) -> None:
    ema = Ema(8)
    for x in (1.5, 2.25, 3.0):
        ema.update(x)
    bar_ts = datetime(2026, 11, 23, 3, 45, tzinfo=UTC)
    row = EmaStateRow("NSE:A", 60, bar_ts, ema.to_state(), value)
    await pg.commit_bars([], [row])
    got = (await pg.load_ema_states(["NSE:A"], 60))["NSE:A"]
    assert Ema.from_state(got.fast_state) == ema  # NaN value before ready survives
    # jsonb reorders keys; sorted dumps tell NaN, -0.0 and int from float apart.
    assert json.dumps(got.slow_state, sort_keys=True) == json.dumps(value, sort_keys=True)
    async with pg.transaction() as conn:  # stored as valid jsonb
        stored = await conn.fetchrow("SELECT jsonb_typeof(slow_state) FROM ema_state")
    assert stored is not None
    assert stored[0] == "object"
