"""PostgreSQL backend of :class:`~mental_trader.storage.base.Store`, on an asyncpg pool.

The business operations are inherited from :class:`Store`; this module adds the pool, the
translation of driver errors into :class:`~mental_trader.errors.StorageError`, migrations
serialised by an advisory lock, and the bulk candle paths, which never build a Python object
per row:

* writes stream a binary ``COPY`` built with numpy (one big-endian structured array per piece
  of rows), straight into ``candles`` when the block overlaps no stored candle, else into a
  temporary staging table followed by one ``INSERT … SELECT … ON CONFLICT DO UPDATE``;
* reads run ``COPY (SELECT …) TO STDOUT (FORMAT binary)`` and view the answer as a numpy
  structured array (``timestamptz`` is int64 microseconds since 2000-01-01 on the wire).

The wire formats (the ``COPY`` layouts, JSON with non-finite floats, SQL literals) are in
:mod:`mental_trader.storage.pgwire`.

Times are stored as ``timestamptz`` with microsecond resolution: nanosecond candle times are
floored to the microsecond, so two candles of one block less than 1 µs apart are one row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, cast
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

from mental_trader.errors import InvalidInputError, StorageError
from mental_trader.storage.base import (
    Candles,
    Store,
    check_candles,
    dt_to_ns,
    empty_candles,
)
from mental_trader.storage.migrations import MIGRATIONS, SCHEMA_VERSION_DDL, render
from mental_trader.storage.pgwire import (
    COPY_HEADER,
    COPY_TRAILER,
    MAX_US,
    MIN_US,
    READ_ROW,
    READ_ROW_I,
    STAGE_ROW,
    UNIX_EPOCH,
    candle_columns,
    ceil_us,
    direct_row,
    fill_rows,
    json_dumps,
    json_loads,
    parse_copy,
    quote_ident,
    text_literal,
    ts_literal,
    unique_last,
)

__all__ = ["PostgresStore"]

log = logging.getLogger(__name__)

DIALECT: Final = "postgresql"


#: First key of ``pg_advisory_xact_lock(key, hashtext(schema))`` held while migrating.
MIGRATION_LOCK_KEY: Final = 0x4D54  # "MT"

#: Rows per COPY + INSERT statement pair (bounds the duration of one statement).
BATCH_ROWS: Final = 1_000_000
#: Rows per piece of a COPY stream (bounds the memory of one numpy buffer, ~6 MB).
PIECE_ROWS: Final = 65_536

_STAGE = "pg_temp.mt_candle_stage"
_STAGE_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE.split('.')[1]} (sym INTEGER NOT NULL, "
    "ts TIMESTAMPTZ NOT NULL, open DOUBLE PRECISION NOT NULL, high DOUBLE PRECISION NOT NULL, "
    "low DOUBLE PRECISION NOT NULL, close DOUBLE PRECISION NOT NULL, "
    "volume DOUBLE PRECISION NOT NULL, ticks BIGINT NOT NULL) ON COMMIT DELETE ROWS"
)
_MERGE_SQL = (
    "INSERT INTO candles (symbol, timeframe_s, ts, open, high, low, close, volume, ticks) "
    "SELECT ($1::text[])[t.sym], $2, t.ts, t.open, t.high, t.low, t.close, t.volume, t.ticks "
    f"FROM {_STAGE} t "
    "ON CONFLICT (symbol, timeframe_s, ts) DO UPDATE SET open = excluded.open, "
    "high = excluded.high, low = excluded.low, close = excluded.close, "
    "volume = excluded.volume, ticks = excluded.ticks "
    "WHERE (candles.open, candles.high, candles.low, candles.close, candles.volume, "
    "candles.ticks) IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, "
    "excluded.close, excluded.volume, excluded.ticks)"
)
_OVERLAP_SQL = (
    "SELECT EXISTS (SELECT 1 FROM unnest($1::text[], $3::timestamptz[], $4::timestamptz[]) "
    "AS r (symbol, lo, hi) WHERE EXISTS (SELECT 1 FROM candles c WHERE c.symbol = r.symbol "
    "AND c.timeframe_s = $2 AND c.ts BETWEEN r.lo AND r.hi))"
)


# SQLSTATEs of an outage or a transient refusal (retrying may succeed): connection
# exceptions, insufficient resources, operator intervention, system errors, serialization
# failure, deadlock, lock not available, query cancelled (statement timeout).
_RETRYABLE_CLASSES: Final = ("08", "53", "57P", "58")
_RETRYABLE_STATES: Final = frozenset({"40001", "40P01", "55P03", "57014"})
_OUTAGE_TYPES: Final = (
    OSError,  # includes ConnectionError and TimeoutError (= asyncio.TimeoutError)
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)
_DRIVER_TYPES: Final = (
    *_OUTAGE_TYPES,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


def _secrets_of(url: str) -> list[str]:
    """Password spellings a URL carries, to scrub from messages."""
    secrets: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            secrets += [parts.password, unquote(parts.password)]
        for value in parse_qs(parts.query).get("password", []):
            secrets += [value, unquote(value)]
    except ValueError:
        pass
    return sorted({s for s in secrets if s}, key=len, reverse=True)


def _redact(url: str) -> str:
    """The URL without credentials or query, for repr and messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"
    except ValueError:
        return "postgresql://?"


def _discard(raw: Any) -> None:
    """Close a pool connection at once; the pool opens a fresh one when next needed."""
    with contextlib.suppress(asyncpg.InterfaceError, OSError):  # already closed and detached
        raw.terminate()


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.exceptions.DataError | asyncpg.exceptions.ClientConfigurationError):
        return False  # a bad argument or DSN, caught before the server saw it
    if isinstance(exc, (*_OUTAGE_TYPES, asyncpg.exceptions.InternalClientError)):
        return True  # InternalClientError: e.g. a protocol state broken by a lost server
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return state in _RETRYABLE_STATES or state.startswith(_RETRYABLE_CLASSES)
    return isinstance(exc, asyncpg.InterfaceError)


# ----------------------------------------------------------------- the store


class _Raced(Exception):
    """Candles appeared between the overlap check and the direct COPY (another writer)."""


class _Connection(asyncpg.Connection):  # type: ignore[misc]
    """A pool connection released without the reset query (a round trip per transaction).

    The store sets no session state beyond what every connection gets at connect time
    (``SET LOCAL`` only, no cursors, advisory session locks or LISTEN); an open transaction
    is still rolled back on release.
    """

    def get_reset_query(self) -> str:
        """Nothing to reset."""
        return ""


class _Conn:
    """:class:`~mental_trader.storage.base.Conn` over an asyncpg connection in a transaction.

    Driver errors leave as :class:`StorageError`.
    """

    __slots__ = ("_raw", "_store")

    def __init__(self, raw: Any, store: PostgresStore) -> None:
        self._raw = raw
        self._store = store

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement."""
        try:
            await self._raw.execute(sql, *args)
        except _DRIVER_TYPES as exc:
            raise self._store._error(exc, "execute") from None

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement per parameter row."""
        try:
            await self._raw.executemany(sql, rows)
        except _DRIVER_TYPES as exc:
            raise self._store._error(exc, "executemany") from None

    async def fetch(self, sql: str, *args: Any) -> list[Sequence[Any]]:
        """Run a query and return every row (asyncpg records index by position)."""
        try:
            return cast("list[Sequence[Any]]", await self._raw.fetch(sql, *args))
        except _DRIVER_TYPES as exc:
            raise self._store._error(exc, "fetch") from None

    async def fetchrow(self, sql: str, *args: Any) -> Sequence[Any] | None:
        """Run a query and return its first row, or None."""
        try:
            return cast("Sequence[Any] | None", await self._raw.fetchrow(sql, *args))
        except _DRIVER_TYPES as exc:
            raise self._store._error(exc, "fetchrow") from None


class PostgresStore(Store):
    """The store on PostgreSQL (asyncpg pool; ``DATABASE_URL=postgresql://…``).

    Args:
        url: ``postgresql://user:password@host:port/database``. Never logged nor put in a
            message.
        schema: create this schema if missing and work only in it (``search_path``); tests
            use a throwaway schema per run.
        min_size: connections the pool keeps open.
        max_size: most connections the pool opens.
        command_timeout: seconds a statement, a pool wait or a connection attempt may take;
            a timeout raises a retryable :class:`StorageError`.
    """

    backend = DIALECT

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float = 30.0,
    ) -> None:
        if schema is not None and not schema:
            raise InvalidInputError("schema must be a non-empty name or None")
        self._url = url
        self._secrets = _secrets_of(url)
        self._schema = schema
        self._min_size = min_size
        self._max_size = max_size
        self._timeout = command_timeout
        self._pool: Any = None
        self._closed = False
        self._pool_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({_redact(self._url)!r}, schema={self._schema!r})"

    @property
    def schema(self) -> str | None:
        """The schema this store works in (None: the server's default search_path)."""
        return self._schema

    # ----------------------------------------------------------------- errors

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text.replace(self._url, _redact(self._url))

    def _error(self, exc: BaseException, what: str) -> StorageError:
        """The :class:`StorageError` a driver or OS error stands for (message scrubbed)."""
        if isinstance(exc, StorageError):
            return exc
        retryable = _is_retryable(exc)
        detail = str(exc) or "no detail"
        state = getattr(exc, "sqlstate", None)
        if isinstance(state, str) and state:
            detail = f"{detail} [SQLSTATE {state}]"
        kind = "unavailable" if retryable else "refused"
        message = f"PostgreSQL {kind} ({what}): {type(exc).__name__}: {detail}"
        return StorageError(self._scrub(message), retryable=retryable)

    # ----------------------------------------------------------------- pool

    async def connect(self) -> None:
        """Open the pool (and create the schema). Does not migrate: call :meth:`migrate`.

        Raises:
            StorageError: the server is unreachable (retryable) or refused the login.
        """
        self._closed = False
        await self._get_pool()

    async def _init_connection(self, con: Any) -> None:
        await con.set_type_codec(
            "jsonb", schema="pg_catalog", encoder=json_dumps, decoder=json_loads, format="text"
        )
        await con.execute(_STAGE_DDL)

    async def _get_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        if self._closed:
            raise StorageError("the PostgreSQL store is closed", retryable=False)
        async with self._pool_lock:
            if self._pool is not None:
                return self._pool
            settings = {
                "application_name": "mental_trader",
                "standard_conforming_strings": "on",  # the literal quoting relies on it
                "jit": "off",  # JIT compiles for 100+ ms: a loss on these short queries
                # asyncpg prepares every statement; a generic plan made while a table was
                # empty (a seq scan) would stay cached as the table grows, and nothing
                # replans it without ANALYZE. Plan each execution for its values and sizes.
                "plan_cache_mode": "force_custom_plan",
            }
            if self._schema is not None:
                settings["search_path"] = quote_ident(self._schema)
            try:
                pool = await asyncpg.create_pool(
                    self._url,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    command_timeout=self._timeout,
                    timeout=self._timeout,
                    server_settings=settings,
                    init=self._init_connection,
                    connection_class=_Connection,
                )
            except _DRIVER_TYPES as exc:
                raise self._error(exc, "connect") from None
            except ValueError as exc:  # a malformed DSN
                raise StorageError(self._scrub(f"invalid PostgreSQL URL: {exc}")) from None
            if self._schema is not None:
                try:
                    async with pool.acquire(timeout=self._timeout) as con:
                        await con.execute(
                            f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self._schema)}"
                        )
                except asyncpg.UniqueViolationError:
                    pass  # created concurrently by another store
                except _DRIVER_TYPES as exc:
                    await pool.close()
                    raise self._error(exc, "create schema") from None
            self._pool = pool
            return pool

    async def close(self) -> None:
        """Close the pool (waits for connections in use). Safe to call twice."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._timeout)
            except (TimeoutError, *_DRIVER_TYPES):
                pool.terminate()

    @contextlib.asynccontextmanager
    async def _raw_transaction(self) -> AsyncIterator[Any]:
        """A raw asyncpg connection in a transaction; driver errors become StorageError."""
        pool = await self._get_pool()
        try:
            raw = await pool.acquire(timeout=self._timeout)
        except _DRIVER_TYPES as exc:
            raise self._error(exc, "acquire") from None
        try:
            tx = raw.transaction()
            try:
                await tx.start()
            except _DRIVER_TYPES as exc:
                _discard(raw)
                raise self._error(exc, "begin") from None
            try:
                yield raw
            except BaseException as exc:
                error = self._error(exc, "transaction") if isinstance(exc, _DRIVER_TYPES) else exc
                outage = isinstance(error, StorageError) and error.retryable
                if outage or isinstance(exc, asyncio.CancelledError):
                    _discard(raw)  # never reuse a connection after an outage or mid-query
                else:
                    try:
                        await tx.rollback()
                    except (Exception, asyncio.CancelledError):
                        _discard(raw)  # the connection is gone: the server rolled back
                if error is exc:
                    raise
                raise error from None
            try:
                await tx.commit()
            except _DRIVER_TYPES as exc:
                _discard(raw)
                raise self._error(exc, "commit") from None
        finally:
            try:
                await pool.release(raw)
            except Exception as exc:
                # The pool drops a broken connection; the transaction's outcome stands.
                log.debug("release of a PostgreSQL connection failed: %s", type(exc).__name__)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Conn]:
        """A pool connection inside one transaction: committed on exit, rolled back on error.

        Raises:
            StorageError: retryable for an outage (connection refused or lost, timeout,
                server shutting down), not retryable for a refusal (constraint, bad value).
        """
        async with self._raw_transaction() as raw:
            yield _Conn(raw, self)

    # ----------------------------------------------------------------- conversions

    def _ts(self, value: datetime) -> Any:
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInputError(f"naive datetime {value!r}: give a time zone")
        return value

    def _ts_ns(self, ns: int) -> Any:
        us = min(max(ns // 1000, MIN_US), MAX_US)
        return UNIX_EPOCH + timedelta(microseconds=us)

    def _dt(self, raw: Any) -> datetime:
        value = cast("datetime", raw)
        if value.tzinfo is None:  # never from a timestamptz column; be safe
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def _dt_ns(self, raw: Any) -> int:
        return dt_to_ns(self._dt(raw))

    def _json(self, value: Mapping[str, Any]) -> Any:
        return dict(value)  # the pool's jsonb codec encodes it

    def _unjson(self, raw: Any) -> dict[str, Any]:
        if isinstance(raw, bytes):
            raw = raw.decode()
        value = json_loads(raw) if isinstance(raw, str) else raw
        if not isinstance(value, dict):
            raise StorageError(f"stored JSON is a {type(value).__name__}, not an object")
        return value

    def _date(self, value: date | None) -> Any:
        return value

    def _undate(self, raw: Any) -> date | None:
        if raw is None or (isinstance(raw, date) and not isinstance(raw, datetime)):
            return raw
        if isinstance(raw, datetime):
            return raw.date()
        return date.fromisoformat(str(raw))

    # ----------------------------------------------------------------- schema

    async def schema_version(self) -> int:
        """The highest migration applied (0 for an empty schema)."""
        async with self.transaction() as conn:
            row = await conn.fetchrow("SELECT to_regclass('schema_version') IS NOT NULL")
            if row is None or not row[0]:
                return 0
            row = await conn.fetchrow("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return 0 if row is None else int(row[0])

    async def migrate(self, target: int | None = None) -> list[int]:
        """Apply pending migrations up to ``target`` (all by default); return those applied.

        Each version runs in its own transaction with its ``schema_version`` row, holding a
        transaction-scoped advisory lock (keyed by the schema) and re-reading the version
        under it, so concurrent migrators apply each version once.

        Raises:
            InvalidInputError: ``target`` is not a known version.
            StorageError: a statement failed (its migration is rolled back entirely).
        """
        last = len(MIGRATIONS)
        goal = last if target is None else target
        if not 0 <= goal <= last:
            raise InvalidInputError(f"migration target {target} is not in 0..{last}")
        applied: list[int] = []
        while True:
            async with self.transaction() as conn:
                await conn.execute(
                    f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY}, "
                    "hashtext(COALESCE(current_schema(), '')))"
                )
                await conn.execute(render(SCHEMA_VERSION_DDL, DIALECT))
                row = await conn.fetchrow("SELECT COALESCE(MAX(version), 0) FROM schema_version")
                current = 0 if row is None else int(row[0])
                if current >= goal:
                    if current > last:
                        log.warning("database schema version %d is newer than ours", current)
                    return applied
                migration = MIGRATIONS[current]
                for statement in migration.statements:
                    await conn.execute(render(statement, DIALECT))
                await conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, now())",
                    migration.version,
                    migration.name,
                )
            applied.append(migration.version)
            log.info("applied migration %d (%s)", migration.version, migration.name)

    async def ping(self) -> None:
        """``SELECT 1``; raise ``StorageError(retryable=True)`` if the server is down."""
        async with self.transaction() as conn:
            await conn.fetchrow("SELECT 1")

    # ----------------------------------------------------------------- candles: writes

    async def upsert_candles(
        self, symbol: str, timeframe_s: int, bars: Mapping[str, npt.NDArray[Any]]
    ) -> int:
        """Insert or overwrite a block of candles in one transaction; return the row count.

        Streams a binary COPY (see the module docstring). Rows whose time repeats within the
        block (at µs resolution) collapse to the last one, as a loop of upserts would.
        """
        return await self.upsert_candles_many(timeframe_s, {symbol: bars})

    async def upsert_candles_many(
        self, timeframe_s: int, blocks: Mapping[str, Mapping[str, npt.NDArray[Any]]]
    ) -> int:
        """:meth:`upsert_candles` of many symbols of one timeframe, in ONE transaction.

        Args:
            timeframe_s: the timeframe of every block.
            blocks: symbol → candle columns (:data:`~mental_trader.storage.base.CANDLE_COLUMNS`).

        Returns:
            The number of rows given (before collapsing repeated times).

        Raises:
            InvalidInputError: a block lacks a column or its columns differ in length.
            StorageError: the database refused the rows or is unreachable.
        """
        checked = {sym: check_candles(bars) for sym, bars in blocks.items()}
        total = sum(len(c["ts"]) for c in checked.values())
        work = [(sym, unique_last(c)) for sym, c in checked.items() if len(c["ts"])]
        if not work:
            return total
        for sym, _ in work:
            text_literal(sym)  # rejects NUL early, with a clear message
        timeframe_s = int(timeframe_s)
        symbols = [sym for sym, _ in work]
        los = [self._ts_ns(int(c["ts"][0])) for _, c in work]
        his = [self._ts_ns(int(c["ts"][-1])) for _, c in work]
        index = {sym: i for i, sym in enumerate(symbols, start=1)}
        try:
            async with self._raw_transaction() as raw:
                if not await raw.fetchval(_OVERLAP_SQL, symbols, timeframe_s, los, his):
                    try:
                        for batch in _batches(work):
                            await raw.copy_to_table(
                                "candles",
                                source=_direct_stream(batch, timeframe_s),
                                format="binary",
                            )
                    except asyncpg.UniqueViolationError:
                        raise _Raced from None
                else:
                    await self._merge(raw, work, index, symbols, timeframe_s)
            return total
        except _Raced:
            log.debug("candles appeared concurrently; merging instead")
        async with self._raw_transaction() as raw:
            await self._merge(raw, work, index, symbols, timeframe_s)
        return total

    @staticmethod
    async def _merge(
        raw: Any, work: _Work, index: Mapping[str, int], symbols: list[str], timeframe_s: int
    ) -> None:
        """Stage the rows with a binary COPY and upsert them from there, batch by batch."""
        for batch in _batches(work):
            await raw.copy_to_table(
                _STAGE.split(".")[1],
                schema_name="pg_temp",
                source=_stage_stream(batch, index),
                format="binary",
            )
            await raw.execute(_MERGE_SQL, symbols, timeframe_s)
            await raw.execute(f"TRUNCATE {_STAGE}")

    # ----------------------------------------------------------------- candles: reads

    async def _copy_out(self, raw: Any, query: str) -> bytes:
        chunks: list[bytes] = []

        async def sink(data: bytes) -> None:
            chunks.append(data)

        await raw.copy_from_query(query, output=sink, format="binary")
        return b"".join(chunks)

    async def load_candles(
        self,
        symbol: str,
        timeframe_s: int,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> Candles:
        """Candles with ``start_ns <= ts < end_ns`` (open ends when None), ordered by ts."""
        where = [f"symbol = {text_literal(symbol)}", f"timeframe_s = {int(timeframe_s)}"]
        if start_ns is not None:
            where.append(f"ts >= {ts_literal(ceil_us(start_ns))}")
        if end_ns is not None:
            where.append(f"ts < {ts_literal(ceil_us(end_ns))}")
        query = (
            "SELECT ts, open, high, low, close, volume, ticks FROM candles "
            f"WHERE {' AND '.join(where)} ORDER BY ts"
        )
        async with self._raw_transaction() as raw:
            data = await self._copy_out(raw, query)
        return candle_columns(parse_copy(data, READ_ROW))

    async def load_last_candles(
        self, symbols: Sequence[str], timeframe_s: int, n: int
    ) -> dict[str, Candles]:
        """The last ``n`` candles of each symbol (ascending), in one round trip.

        Symbols without candles map to an empty block.
        """
        unique = list(dict.fromkeys(symbols))
        out = {sym: empty_candles() for sym in unique}
        if not unique or n <= 0:
            return out
        array = "ARRAY[" + ", ".join(text_literal(s) for s in unique) + "]::text[]"
        query = (
            "SELECT s.i, c.ts, c.open, c.high, c.low, c.close, c.volume, c.ticks "
            f"FROM unnest({array}) WITH ORDINALITY AS s (symbol, i) CROSS JOIN LATERAL "
            "(SELECT ts, open, high, low, close, volume, ticks FROM candles "
            f"WHERE symbol = s.symbol AND timeframe_s = {int(timeframe_s)} "
            f"ORDER BY ts DESC LIMIT {int(n)}) c ORDER BY s.i, c.ts"
        )
        async with self._raw_transaction() as raw:
            # Without statistics (fresh table, no autovacuum) the planner estimates a few
            # rows per symbol and reads them all through a bitmap scan + sort; walking the
            # primary key backwards reads only n rows per symbol.
            await raw.execute("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off")
            data = await self._copy_out(raw, query)
        rows = parse_copy(data, READ_ROW_I)
        if not len(rows):
            return out
        cols = candle_columns(rows)
        which = rows["i"].astype(np.int64)
        bounds = np.searchsorted(which, np.arange(1, len(unique) + 2), side="left")
        for k, sym in enumerate(unique):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            if hi > lo:
                out[sym] = {name: col[lo:hi].copy() for name, col in cols.items()}
        return out


# ----------------------------------------------------------------- COPY streams

_Work = list[tuple[str, Candles]]
_Piece = tuple[str, Candles, int, int]  # symbol, columns, start row, stop row


def _batches(work: _Work) -> Iterable[list[_Piece]]:
    """Pieces of at most :data:`PIECE_ROWS` rows, grouped in batches of ≤ :data:`BATCH_ROWS`."""
    batch: list[_Piece] = []
    rows = 0
    for sym, cols in work:
        n = len(cols["ts"])
        for start in range(0, n, PIECE_ROWS):
            stop = min(start + PIECE_ROWS, n)
            if rows + stop - start > BATCH_ROWS and batch:
                yield batch
                batch, rows = [], 0
            batch.append((sym, cols, start, stop))
            rows += stop - start
    if batch:
        yield batch


async def _direct_stream(batch: list[_Piece], timeframe_s: int) -> AsyncIterator[Any]:
    """Binary COPY of ``candles`` rows: one numpy buffer per piece."""
    yield COPY_HEADER
    for sym, cols, start, stop in batch:
        encoded = sym.encode()
        buf = np.empty(stop - start, dtype=direct_row(encoded))
        fill_rows(buf, cols, start, stop)
        buf["symbol"] = encoded
        buf["timeframe_s"] = timeframe_s
        yield buf.view(np.uint8)
    yield COPY_TRAILER


async def _stage_stream(batch: list[_Piece], index: Mapping[str, int]) -> AsyncIterator[Any]:
    """Binary COPY of staging rows (symbol number, ts, values): one numpy buffer per piece."""
    yield COPY_HEADER
    for sym, cols, start, stop in batch:
        buf = np.empty(stop - start, dtype=STAGE_ROW)
        fill_rows(buf, cols, start, stop)
        buf["sym"] = index[sym]
        yield buf.view(np.uint8)
    yield COPY_TRAILER
