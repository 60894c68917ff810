"""The embedded SQLite backend: one file in the data directory, WAL mode, no server.

SQLite runs on aiosqlite's worker thread, so no call blocks the event loop. One connection
serves the whole process; an asyncio lock keeps one transaction at a time on it (SQLite has
one writer anyway). Times are stored as integer nanoseconds UTC, JSON as text, dates as
ISO text.

Durability: WAL with ``synchronous=FULL`` (the default) survives power loss;
``synchronous=NORMAL`` survives a killed process (SIGKILL) but may lose the last
transactions on power loss.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, date, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import aiosqlite
import numpy as np
import numpy.typing as npt

from mental_trader.errors import InvalidInputError, StorageError
from mental_trader.storage.backend import Conn
from mental_trader.storage.base import (
    CANDLE_COLUMNS,
    UPSERT_CANDLE_SQL,
    Candles,
    Store,
    check_candles,
    dt_to_ns,
    empty_candles,
    ns_to_dt,
)
from mental_trader.storage.migrations import MIGRATIONS, SCHEMA_VERSION_DDL, render

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

_RETRYABLE_MARKERS = ("locked", "busy", "disk i/o", "unable to open", "readonly", "full")


@functools.lru_cache(maxsize=512)
def _sql(statement: str) -> str:
    """``$1`` placeholders → SQLite's numbered ``?1``."""
    return re.sub(r"\$(\d+)", r"?\1", statement)


def _storage_error(exc: BaseException) -> StorageError:
    text = str(exc)
    retryable = isinstance(exc, sqlite3.OperationalError) and any(
        m in text.lower() for m in _RETRYABLE_MARKERS
    )
    return StorageError(f"sqlite: {type(exc).__name__}: {text}", retryable=retryable)


async def _rollback(db: aiosqlite.Connection) -> None:
    """Roll back whatever is open; shielded, so a cancellation cannot skip it."""
    try:
        await asyncio.shield(db.execute("ROLLBACK"))
    except (sqlite3.Error, asyncio.CancelledError):
        log.debug("rollback: nothing to roll back, or cancelled again", exc_info=True)


class _SqliteConn:
    """base.Conn over an aiosqlite connection (inside a transaction)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, *args: Any) -> None:
        await self._db.execute(_sql(sql), args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._db.executemany(_sql(sql), rows)

    async def fetch(self, sql: str, *args: Any) -> list[Sequence[Any]]:
        async with self._db.execute(_sql(sql), args) as cur:
            return list(await cur.fetchall())

    async def fetchrow(self, sql: str, *args: Any) -> Sequence[Any] | None:
        async with self._db.execute(_sql(sql), args) as cur:
            row = await cur.fetchone()
            # Drain: an INSERT ... RETURNING only completes once its rows are read.
            await cur.fetchall()
            return row


class SqliteStore(Store):
    """The store in one SQLite file.

    Args:
        path: the database file (created with its directory if missing), or ``":memory:"``.
        synchronous: ``"FULL"`` (durable across power loss) or ``"NORMAL"``.
        busy_timeout_ms: how long a write waits for a lock held by another process before
            it fails with a retryable :class:`StorageError`.
    """

    backend = "sqlite"

    def __init__(
        self, path: str | Path, *, synchronous: str = "FULL", busy_timeout_ms: int = 5000
    ) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL"):
            raise InvalidInputError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
        self.path = str(path)
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        if self._db is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
            for pragma in (
                "PRAGMA journal_mode=WAL",
                f"PRAGMA synchronous={self._synchronous}",
                "PRAGMA foreign_keys=ON",
                f"PRAGMA busy_timeout={self._busy_timeout_ms}",
            ):
                await db.execute(pragma)
        except (sqlite3.Error, OSError) as exc:
            raise _storage_error(exc) from exc
        self._db = db

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        # IMMEDIATE takes the write lock up front: no deadlock-prone upgrade later.
        return self._transaction("BEGIN IMMEDIATE")

    def read(self) -> AbstractAsyncContextManager[Conn]:
        # A deferred transaction reads a consistent snapshot without the write lock, so
        # reads keep working while another process holds it.
        return self._transaction("BEGIN")

    @asynccontextmanager
    async def _transaction(self, begin: str) -> AsyncIterator[Conn]:
        if self._db is None:
            raise StorageError("sqlite store is not connected")
        db = self._db
        async with self._lock:
            try:
                await db.execute(begin)
            except sqlite3.Error as exc:
                raise _storage_error(exc) from exc
            except BaseException:
                # Cancelled while BEGIN ran on aiosqlite's thread: it may have begun anyway,
                # and a transaction left open would fail every later one.
                await _rollback(db)
                raise
            try:
                yield _SqliteConn(db)
                await db.execute("COMMIT")
            except BaseException as exc:
                await _rollback(db)
                if isinstance(exc, sqlite3.Error):
                    raise _storage_error(exc) from exc
                raise

    # ----------------------------------------------------------------- conversions

    def _ts(self, value: datetime) -> Any:
        return dt_to_ns(value)

    def _ts_ns(self, ns: int) -> Any:
        return int(ns)

    def _dt(self, raw: Any) -> datetime:
        return ns_to_dt(int(raw))

    def _dt_ns(self, raw: Any) -> int:
        return int(raw)

    def _json(self, value: Mapping[str, Any]) -> Any:
        return json.dumps(value, separators=(",", ":"), allow_nan=True)

    def _unjson(self, raw: Any) -> dict[str, Any]:
        value = json.loads(raw)
        assert isinstance(value, dict)
        return value

    def _date(self, value: date | None) -> Any:
        return None if value is None else value.isoformat()

    def _undate(self, raw: Any) -> date | None:
        return None if raw is None else date.fromisoformat(raw)

    # ----------------------------------------------------------------- schema

    async def schema_version(self) -> int:
        async with self.transaction() as conn:
            await conn.execute(render(SCHEMA_VERSION_DDL, "sqlite"))
            row = await conn.fetchrow("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(row[0]) if row else 0

    async def migrate(self, target: int | None = None) -> list[int]:
        applied: list[int] = []
        for migration in MIGRATIONS:
            if target is not None and migration.version > target:
                break
            async with self.transaction() as conn:
                await conn.execute(render(SCHEMA_VERSION_DDL, "sqlite"))
                row = await conn.fetchrow(
                    "SELECT 1 FROM schema_version WHERE version = $1", migration.version
                )
                if row is not None:
                    continue
                for statement in migration.statements:
                    await conn.execute(render(statement, "sqlite"))
                await conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    dt_to_ns(datetime.now(UTC)),
                )
            log.info("sqlite %s: applied migration %d (%s)", self.path, migration.version,
                     migration.name)  # fmt: skip
            applied.append(migration.version)
        return applied

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.fetchrow("SELECT 1")

    async def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``"ok"`` when the file is sound."""
        async with self.read() as conn:
            rows = await conn.fetch("PRAGMA integrity_check")
        return "; ".join(str(r[0]) for r in rows)

    # ----------------------------------------------------------------- candles

    async def upsert_candles(
        self, symbol: str, timeframe_s: int, bars: Mapping[str, npt.NDArray[Any]]
    ) -> int:
        return await self.upsert_candles_many(timeframe_s, {symbol: bars})

    async def upsert_candles_many(
        self, timeframe_s: int, blocks: Mapping[str, Mapping[str, npt.NDArray[Any]]]
    ) -> int:
        checked = [(symbol, check_candles(bars)) for symbol, bars in blocks.items()]
        total = sum(len(cols["ts"]) for _, cols in checked)
        if total == 0:
            return 0

        def rows() -> Iterator[tuple[Any, ...]]:
            # Runs on aiosqlite's thread: tolist() gives Python scalars sqlite3 binds fast.
            for symbol, cols in checked:
                yield from zip(
                    repeat(symbol),
                    repeat(int(timeframe_s)),
                    cols["ts"].tolist(),
                    cols["open"].tolist(),
                    cols["high"].tolist(),
                    cols["low"].tolist(),
                    cols["close"].tolist(),
                    cols["volume"].tolist(),
                    cols["ticks"].tolist(),
                    strict=False,  # repeat() is endless; equal lengths are checked above
                )

        async with self.transaction() as conn:
            await conn.executemany(UPSERT_CANDLE_SQL, rows())
        return total

    @staticmethod
    def _columns(rows: Sequence[Sequence[Any]]) -> Candles:
        if not rows:
            return empty_candles()
        transposed = list(zip(*rows, strict=True))
        return {
            name: np.array(transposed[i], dtype=dtype)
            for i, (name, dtype) in enumerate(CANDLE_COLUMNS.items())
        }

    async def load_candles(
        self,
        symbol: str,
        timeframe_s: int,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> Candles:
        async with self.read() as conn:
            rows = await conn.fetch(
                "SELECT ts, open, high, low, close, volume, ticks FROM candles "
                "WHERE symbol = $1 AND timeframe_s = $2 AND ts >= $3 AND ts < $4 ORDER BY ts",
                symbol,
                int(timeframe_s),
                -(2**63) if start_ns is None else int(start_ns),
                2**63 - 1 if end_ns is None else int(end_ns),
            )
        return self._columns(rows)

    async def load_last_candles(
        self, symbols: Sequence[str], timeframe_s: int, n: int
    ) -> dict[str, Candles]:
        out: dict[str, Candles] = {}
        async with self.read() as conn:
            for symbol in symbols:
                rows = await conn.fetch(
                    "SELECT ts, open, high, low, close, volume, ticks FROM candles "
                    "WHERE symbol = $1 AND timeframe_s = $2 ORDER BY ts DESC LIMIT $3",
                    symbol,
                    int(timeframe_s),
                    int(n),
                )
                rows.reverse()
                out[symbol] = self._columns(rows)
        return out
