"""The store's bulk paths: candle upserts (rows/s) and the warm start (time per call).

Candles are ``benchlib.make_bars_1m`` one-minute bars of 200 symbols (about 1,000 bars
each in the quick pass, 5,000 in the full one: 1,000,000 rows), split per symbol.

* ``upsert/empty/<backend>``: every candle into an empty ``candles`` table;
* ``upsert/same/<backend>``: the same candles again over the stored ones (a backfill
  re-run);
* ``upsert/changed/<backend>``: the candles with other values over the stored ones.

"ours" is one ``upsert_candles_many`` call, "ours (per symbol)" 200 ``upsert_candles``
calls. The PostgreSQL reference is what a user of asyncpg would write: for the empty table
``copy_records_to_table`` straight into ``candles``, otherwise ``copy_records_to_table``
into a temporary table and ``INSERT … SELECT … ON CONFLICT DO UPDATE``; it runs twice:
with its records (tuples with aware datetimes) built outside the timing, and "(+ records)"
building them from the same numpy columns ours takes, inside the timing.

``warm_start/<backend>``: ``load_last_candles(200 symbols, 300 bars)`` plus
``load_ema_states`` from a table holding every candle, against one asyncpg ``fetch`` of the
same rows turned into numpy columns.

Each case runs in a throwaway schema of the PostgreSQL server named by ``MT_BENCH_PG_URL``
(default ``postgresql://postgres@127.0.0.1:5432/test``); unreachable, the module is skipped
(it fails under ``CI=true``). Targets: bulk load >= 300,000 rows/s, warm start < 1 s.

Quick: ``pytest benches/test_bench_store.py --benchmark-only``; full:
``MT_BENCH_SCALE=full pytest benches/test_bench_store.py --benchmark-only``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

import benchlib
from mental_trader.core import Ema
from mental_trader.models import EmaStateRow
from mental_trader.storage.base import Store

PG_URL = os.environ.get("MT_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
TIMEFRAME_S = 60
N_SYMBOLS = 200
BARS_PER_SYMBOL = {"quick": 1_000, "full": 5_000}[benchlib.SCALE.name]
WARMUP_BARS = 300
#: Backends benchmarked; a backend needs an entry in STORES (and may add REFERENCES).
BACKENDS = ["postgresql", "sqlite"]
COLUMNS = ("symbol", "timeframe_s", "ts", "open", "high", "low", "close", "volume", "ticks")

Blocks = dict[str, dict[str, Any]]


# --------------------------------------------------------------------------- data


def make_blocks(seed: int) -> Blocks:
    """symbol → candle columns, ~BARS_PER_SYMBOL one-minute bars each."""
    bars = benchlib.make_bars_1m(N_SYMBOLS * BARS_PER_SYMBOL, N_SYMBOLS, seed=seed)
    order = np.argsort(bars["symbol"], kind="stable")
    bounds = np.searchsorted(bars["symbol"][order], np.arange(N_SYMBOLS + 1))
    cols = ("ts", "open", "high", "low", "close", "volume", "ticks")
    return {
        f"NSE:SYM{s:03d}": {c: bars[c][order[bounds[s] : bounds[s + 1]]] for c in cols}
        for s in range(N_SYMBOLS)
    }


def changed(blocks: Blocks) -> Blocks:
    """The same candles with other prices (every row differs)."""
    return {
        s: {**b, "close": b["close"] + 0.05, "high": b["high"] + 0.05} for s, b in blocks.items()
    }


def records(blocks: Blocks) -> list[tuple[Any, ...]]:
    """The rows as asyncpg records: (symbol, timeframe_s, aware datetime, ...)."""
    out: list[tuple[Any, ...]] = []
    for sym, b in blocks.items():
        ts = [t.replace(tzinfo=UTC) for t in (b["ts"] // 1000).astype("datetime64[us]").tolist()]
        cols = [b[c].tolist() for c in ("open", "high", "low", "close", "volume", "ticks")]
        out += [(sym, TIMEFRAME_S, *row) for row in zip(ts, *cols, strict=True)]
    return out


def n_rows(blocks: Blocks) -> int:
    return sum(len(b["ts"]) for b in blocks.values())


@pytest.fixture(scope="module")
def blocks_a() -> Blocks:
    return make_blocks(seed=11)


@pytest.fixture(scope="module")
def blocks_b(blocks_a: Blocks) -> Blocks:
    return changed(blocks_a)


# --------------------------------------------------------------------------- stores


@dataclass
class Bench:
    """A connected store of one backend in a throwaway database, on a private event loop."""

    backend: str
    loop: asyncio.AbstractEventLoop
    store: Store
    cleanup: Callable[[], Awaitable[None]]
    cache: dict[str, Any] = field(default_factory=dict)

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)


async def _pg_store() -> tuple[Store, Callable[[], Awaitable[None]]]:
    import asyncpg

    from mental_trader.storage.postgres import PostgresStore

    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
        await conn.close()
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL bench server unreachable under CI: {exc}")
        pytest.skip(f"PostgreSQL bench server unreachable: {exc}")
    schema = f"mt_bench_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(PG_URL, schema=schema, command_timeout=600)
    await store.connect()
    await store.migrate()

    async def cleanup() -> None:
        await store.close()
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    return store, cleanup


async def _sqlite_store() -> tuple[Store, Callable[[], Awaitable[None]]]:
    import tempfile
    from pathlib import Path

    from mental_trader.storage.sqlite import SqliteStore

    tmp = tempfile.TemporaryDirectory(prefix="mt_bench_")
    store = SqliteStore(Path(tmp.name) / "bench.db")  # the default: WAL, synchronous=FULL
    await store.connect()
    await store.migrate()

    async def cleanup() -> None:
        await store.close()
        tmp.cleanup()

    return store, cleanup


STORES: dict[str, Callable[[], Awaitable[tuple[Store, Callable[[], Awaitable[None]]]]]] = {
    "postgresql": _pg_store,
    "sqlite": _sqlite_store,
}


@pytest.fixture(scope="module", params=BACKENDS)
def bench_store(request: pytest.FixtureRequest) -> Iterator[Bench]:
    """A store in an empty, migrated database (shared by the cases of one backend)."""
    loop = asyncio.new_event_loop()
    try:
        store, cleanup = loop.run_until_complete(STORES[request.param]())
        bench = Bench(request.param, loop, store, cleanup)
        yield bench
        loop.run_until_complete(cleanup())
    finally:
        loop.close()


async def _truncate(store: Store, *, settle: bool = True) -> None:
    async with store.transaction() as conn:
        await conn.execute(
            "DELETE FROM candles" if store.backend == "sqlite" else "TRUNCATE candles"
        )
    if settle:
        await _settle(store)


async def _reload(store: Store, blocks: Blocks) -> None:
    await _truncate(store, settle=False)
    await _upsert_many(store, blocks)
    await _settle(store)


async def _settle(store: Store) -> None:
    """Flush what earlier rounds wrote, so a round does not pay for its predecessor's I/O
    (without it, small commits wait behind the write-back of the last big round)."""
    if store.backend == "postgresql":
        async with _raw_pool(store).acquire() as conn:
            try:
                await conn.execute("CHECKPOINT")
            except Exception:  # not a superuser: the rounds just share the I/O noise
                return


async def _upsert_many(store: Store, blocks: Blocks) -> int:
    many = getattr(store, "upsert_candles_many", None)
    if many is not None:
        return int(await many(TIMEFRAME_S, blocks))
    return await _upsert_each(store, blocks)


async def _upsert_each(store: Store, blocks: Blocks) -> int:
    total = 0
    for sym, bars in blocks.items():
        total += await store.upsert_candles(sym, TIMEFRAME_S, bars)
    return total


# --------------------------------------------------------------------------- PostgreSQL reference


def _raw_pool(store: Store) -> Any:
    return store._pool  # type: ignore[attr-defined]


async def _pg_copy_records(store: Store, rows: list[tuple[Any, ...]]) -> None:
    async with _raw_pool(store).acquire() as conn, conn.transaction():
        await conn.copy_records_to_table("candles", records=rows, columns=COLUMNS)


async def _pg_copy_records_upsert(store: Store, rows: list[tuple[Any, ...]]) -> None:
    values = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[3:])
    async with _raw_pool(store).acquire() as conn, conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE bench_stage (LIKE candles INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        await conn.copy_records_to_table("bench_stage", records=rows, columns=COLUMNS)
        await conn.execute(
            f"INSERT INTO candles SELECT * FROM bench_stage ON CONFLICT (symbol, timeframe_s, ts) "
            f"DO UPDATE SET {values}"
        )


async def _pg_fetch_last(store: Store, symbols: list[str], n: int) -> dict[str, dict[str, Any]]:
    sql = (
        "SELECT s.symbol, c.ts, c.open, c.high, c.low, c.close, c.volume, c.ticks "
        "FROM unnest($1::text[]) AS s (symbol) CROSS JOIN LATERAL (SELECT * FROM candles "
        "WHERE symbol = s.symbol AND timeframe_s = $2 ORDER BY ts DESC LIMIT $3) c "
        "ORDER BY s.symbol, c.ts"
    )
    async with _raw_pool(store).acquire() as conn:
        rows = await conn.fetch(sql, symbols, TIMEFRAME_S, n)
    out: dict[str, dict[str, Any]] = {}
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    by_symbol: dict[str, list[Any]] = {}
    for r in rows:
        by_symbol.setdefault(r[0], []).append(r)
    for sym, rs in by_symbol.items():
        out[sym] = {
            "ts": np.array([(r[1] - epoch) // _US * 1000 for r in rs], dtype=np.int64),
            **{
                c: np.array([r[i] for r in rs], dtype=np.float64)
                for i, c in enumerate(("open", "high", "low", "close", "volume"), start=2)
            },
            "ticks": np.array([r[7] for r in rs], dtype=np.int64),
        }
    return out


_US = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- upserts

OURS = "ours"
OURS_EACH = "ours (per symbol)"
PG_REF = "asyncpg copy_records_to_table"
PG_REF_BUILD = "asyncpg copy_records_to_table (+ records)"
UPSERT_IMPLS = [OURS, OURS_EACH, PG_REF, PG_REF_BUILD]


def _records_for(bench: Bench, name: str, blocks: Blocks) -> list[tuple[Any, ...]]:
    if name not in bench.cache:
        bench.cache[name] = records(blocks)
    return bench.cache[name]  # type: ignore[no-any-return]


@benchlib.interleaved(UPSERT_IMPLS)
def test_upsert_empty(
    benchmark: Any, bench_store: Bench, blocks_a: Blocks, impl: str, block: int
) -> None:
    """Every candle into an empty table."""
    b, n = bench_store, n_rows(blocks_a)
    timed: dict[str, Callable[..., Any]] = {
        OURS: lambda: b.run(_upsert_many(b.store, blocks_a)),
        OURS_EACH: lambda: b.run(_upsert_each(b.store, blocks_a)),
    }
    if b.backend == "postgresql":
        rows = _records_for(b, "a", blocks_a)
        timed[PG_REF] = lambda: b.run(_pg_copy_records(b.store, rows))
        timed[PG_REF_BUILD] = lambda: b.run(_pg_copy_records(b.store, records(blocks_a)))
    if impl not in timed:
        pytest.skip(f"no {impl} on {b.backend}")

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        b.run(_truncate(b.store))
        return (), {}

    benchlib.bench(
        benchmark,
        group=f"upsert/empty/{b.backend}",
        impl=impl,
        n=n,
        block=block,
        fn=timed[impl],
        setup=setup,
    )
    if impl == OURS and block == 0:
        sym = next(iter(blocks_a))
        got = b.run(b.store.load_candles(sym, TIMEFRAME_S))
        np.testing.assert_array_equal(got["close"], blocks_a[sym]["close"])


@pytest.mark.parametrize("values", ["same", "changed"])
@benchlib.interleaved(UPSERT_IMPLS)
def test_upsert_over_stored(
    benchmark: Any,
    bench_store: Bench,
    blocks_a: Blocks,
    blocks_b: Blocks,
    values: str,
    impl: str,
    block: int,
) -> None:
    """The candles again over the stored ones: same values, or every row changed."""
    b, n = bench_store, n_rows(blocks_a)
    new = blocks_a if values == "same" else blocks_b
    timed: dict[str, Callable[..., Any]] = {
        OURS: lambda: b.run(_upsert_many(b.store, new)),
        OURS_EACH: lambda: b.run(_upsert_each(b.store, new)),
    }
    if b.backend == "postgresql":
        rows = _records_for(b, "a" if values == "same" else "b", new)
        timed[PG_REF] = lambda: b.run(_pg_copy_records_upsert(b.store, rows))
        timed[PG_REF_BUILD] = lambda: b.run(_pg_copy_records_upsert(b.store, records(new)))
    if impl not in timed:
        pytest.skip(f"no {impl} on {b.backend}")

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        b.run(_reload(b.store, blocks_a))  # also drops the dead rows of the last round
        return (), {}

    benchlib.bench(
        benchmark,
        group=f"upsert/{values}/{b.backend}",
        impl=impl,
        n=n,
        block=block,
        fn=timed[impl],
        setup=setup,
        rounds=1 if values == "changed" else None,
    )
    if impl == OURS and block == 0:
        sym = next(iter(new))
        got = b.run(b.store.load_candles(sym, TIMEFRAME_S))
        np.testing.assert_array_equal(got["close"], new[sym]["close"])


# --------------------------------------------------------------------------- warm start

WARM_IMPLS = [OURS, "asyncpg fetch + numpy"]


async def _warm_start(store: Store, symbols: list[str]) -> tuple[Any, Any]:
    bars = await store.load_last_candles(symbols, TIMEFRAME_S, WARMUP_BARS)
    states = await store.load_ema_states(symbols, TIMEFRAME_S)
    return bars, states


async def _prepare_warm(store: Store, blocks: Blocks) -> None:
    await _reload(store, blocks)
    rows = []
    for sym, bars in blocks.items():
        fast, slow = Ema(8), Ema(21)
        for x in bars["close"][-50:]:
            fast.update(float(x))
            slow.update(float(x))
        ts = datetime.fromtimestamp(int(bars["ts"][-1]) // 10**9, UTC)
        rows.append(EmaStateRow(sym, TIMEFRAME_S, ts, fast.to_state(), slow.to_state()))
    await store.commit_bars([], rows)


@benchlib.interleaved(WARM_IMPLS)
def test_warm_start(
    benchmark: Any, bench_store: Bench, blocks_a: Blocks, impl: str, block: int
) -> None:
    """Last WARMUP_BARS bars and the EMA states of 200 symbols: time per call."""
    b = bench_store
    if b.cache.get("warm") is not True:
        b.run(_prepare_warm(b.store, blocks_a))
        b.cache["warm"] = True
    symbols = list(blocks_a)
    timed: dict[str, Callable[..., Any]] = {OURS: lambda: b.run(_warm_start(b.store, symbols))}
    if b.backend == "postgresql":
        ref = WARM_IMPLS[1]
        timed[ref] = lambda: b.run(_pg_fetch_last(b.store, symbols, WARMUP_BARS))
    if impl not in timed:
        pytest.skip(f"no {impl} on {b.backend}")
    result = benchlib.bench(
        benchmark, group=f"warm_start/{b.backend}", impl=impl, n=1, block=block, fn=timed[impl]
    )
    if block == 0:
        bars = result[0] if impl == OURS else result
        sym = symbols[7]
        np.testing.assert_array_equal(bars[sym]["ts"], blocks_a[sym]["ts"][-WARMUP_BARS:])
        np.testing.assert_array_equal(bars[sym]["close"], blocks_a[sym]["close"][-WARMUP_BARS:])
        if impl == OURS:
            assert len(result[1]) == N_SYMBOLS
