"""The store interface, and the business operations both backends share.

:class:`Store` holds every operation once, written in SQL both SQLite (3.35+) and PostgreSQL
accept (``$1`` placeholders, ``ON CONFLICT``, ``RETURNING``): candles, instruments, EMA
states, signals and events here, orders, fills, trades and P&L in
:class:`~mental_trader.storage.trading.TradingTables`. A backend supplies
(:class:`~mental_trader.storage.backend.Backend`) a connection for a transaction, the
conversion of times, dates and JSON to its column types, and the bulk candle paths, where
each has its own fast way (``executemany`` in one transaction for SQLite, binary ``COPY``
for PostgreSQL).

Idempotency is a property of the schema, not of the caller: candles are unique per
(symbol, timeframe, ts), signals and events per id, orders per client id, order events per
(client id, event id), fills per broker trade id. Re-sending any write is a no-op or a
same-value overwrite, so the write-behind queue may retry a batch whose outcome it does not
know.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from mental_trader.errors import InvalidInputError
from mental_trader.models import (
    EmaStateRow,
    Event,
    Instrument,
    Side,
    SignalRecord,
)
from mental_trader.storage.trading import TradingTables

__all__ = [
    "CANDLE_COLUMNS",
    "CandleRow",
    "Candles",
    "Store",
    "check_candles",
    "dt_to_ns",
    "empty_candles",
    "ns_to_dt",
    "open_store",
]

log = logging.getLogger(__name__)

#: Column name → dtype of a block of candles, as :func:`mental_trader.core.build_bars` returns.
CANDLE_COLUMNS: dict[str, type] = {
    "ts": np.int64,
    "open": np.float64,
    "high": np.float64,
    "low": np.float64,
    "close": np.float64,
    "volume": np.float64,
    "ticks": np.int64,
}

#: Candles of one symbol and timeframe as columns, ordered by ``ts`` (int64 ns UTC, bucket start).
Candles = dict[str, npt.NDArray[Any]]


def empty_candles() -> Candles:
    """A block of zero candles."""
    return {name: np.empty(0, dtype=dtype) for name, dtype in CANDLE_COLUMNS.items()}


def check_candles(bars: Mapping[str, npt.NDArray[Any]]) -> Candles:
    """Validate and normalise a candle block: every column present, one length, right dtype.

    Raises:
        InvalidInputError: a column is missing or lengths differ.
    """
    missing = [c for c in CANDLE_COLUMNS if c not in bars]
    if missing:
        raise InvalidInputError(f"candles lack column(s) {missing}")
    out: Candles = {}
    n = len(bars["ts"])
    for name, dtype in CANDLE_COLUMNS.items():
        col: npt.NDArray[Any] = np.ascontiguousarray(bars[name], dtype=dtype)
        if col.ndim != 1 or len(col) != n:
            raise InvalidInputError(f"candle column {name!r} has length {len(col)}, ts has {n}")
        out[name] = col
    return out


def ns_to_dt(ns: int) -> datetime:
    """int64 nanoseconds since the epoch (UTC) → aware UTC datetime (microsecond precision)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


def dt_to_ns(value: datetime) -> int:
    """Aware datetime → int nanoseconds since the epoch."""
    if value.tzinfo is None:
        raise InvalidInputError(f"naive datetime {value!r}: give a time zone")
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


@dataclass(frozen=True, slots=True)
class CandleRow:
    """One closed bar of the live path, as :meth:`Store.commit_bars` writes it."""

    symbol: str
    timeframe_s: int
    ts_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    ticks: int


_INSTRUMENT_COLS = (
    "symbol, exchange, tradingsymbol, instrument_token, name, segment, instrument_type, "
    "tick_size, lot_size, expiry, strike, underlying, freeze_qty"
)
_UPSERT_INSTRUMENT_SQL = (
    f"INSERT INTO instruments ({_INSTRUMENT_COLS}) VALUES "
    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
    "ON CONFLICT (symbol) DO UPDATE SET exchange = excluded.exchange, "
    "tradingsymbol = excluded.tradingsymbol, instrument_token = excluded.instrument_token, "
    "name = excluded.name, segment = excluded.segment, "
    "instrument_type = excluded.instrument_type, tick_size = excluded.tick_size, "
    "lot_size = excluded.lot_size, expiry = excluded.expiry, strike = excluded.strike, "
    "underlying = excluded.underlying, freeze_qty = excluded.freeze_qty"
)
#: Instrument types of derivative contracts (Kite's instrument dump: FUT, CE, PE).
DERIVATIVE_TYPES = ("FUT", "CE", "PE")
_DERIVATIVE_TYPES_SQL = "(" + ", ".join(f"'{t}'" for t in DERIVATIVE_TYPES) + ")"
_SIGNAL_COLS = "id, ts, symbol, timeframe_s, side, price, strategy, reason, payload"

UPSERT_CANDLE_SQL = (
    "INSERT INTO candles (symbol, timeframe_s, ts, open, high, low, close, volume, ticks) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
    "ON CONFLICT (symbol, timeframe_s, ts) DO UPDATE SET open = excluded.open, "
    "high = excluded.high, low = excluded.low, close = excluded.close, "
    "volume = excluded.volume, ticks = excluded.ticks"
)


class Store(TradingTables):
    """Persistent state of the service. Open with :func:`open_store`; ``async with`` closes it.

    Every method is a coroutine that never blocks the event loop. Failures raise
    :class:`~mental_trader.errors.StorageError`; ``retryable`` tells an outage from a refusal.
    """

    # ----------------------------------------------------------------- candles (bulk paths)

    @abc.abstractmethod
    async def upsert_candles(
        self, symbol: str, timeframe_s: int, bars: Mapping[str, npt.NDArray[Any]]
    ) -> int:
        """Insert or overwrite a block of candles in one transaction; return the row count.

        ``bars`` has the columns of :data:`CANDLE_COLUMNS` (``build_bars`` output works).
        Re-upserting the same block is a no-op in effect.
        """

    @abc.abstractmethod
    async def upsert_candles_many(
        self, timeframe_s: int, blocks: Mapping[str, Mapping[str, npt.NDArray[Any]]]
    ) -> int:
        """:meth:`upsert_candles` for many symbols of one timeframe in ONE transaction.

        ``blocks`` maps symbol → candle columns. Returns the number of rows given.
        """

    @abc.abstractmethod
    async def load_candles(
        self,
        symbol: str,
        timeframe_s: int,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> Candles:
        """Candles with ``start_ns <= ts < end_ns`` (open ends when None), ordered by ts."""

    @abc.abstractmethod
    async def load_last_candles(
        self, symbols: Sequence[str], timeframe_s: int, n: int
    ) -> dict[str, Candles]:
        """The last ``n`` candles of each symbol (fewer if the store has fewer), ordered by ts.

        This is the warm start; symbols without candles map to an empty block.
        """

    # ----------------------------------------------------------------- instruments

    def _instrument_params(self, rows: Sequence[Instrument]) -> list[tuple[Any, ...]]:
        return [
            (
                r.symbol,
                r.exchange,
                r.tradingsymbol,
                r.instrument_token,
                r.name,
                r.segment,
                r.instrument_type,
                r.tick_size,
                r.lot_size,
                self._date(r.expiry),
                r.strike,
                r.underlying,
                r.freeze_qty,
            )
            for r in rows
        ]

    async def upsert_instruments(self, rows: Sequence[Instrument]) -> int:
        """Insert or update instruments by symbol; return the row count."""
        params = self._instrument_params(rows)
        async with self.transaction() as conn:
            await conn.executemany(_UPSERT_INSTRUMENT_SQL, params)
        return len(params)

    async def replace_derivatives(
        self, underlyings: Sequence[str], rows: Sequence[Instrument]
    ) -> int:
        """Swap the derivative contracts (FUT, CE, PE) of ``underlyings`` for ``rows`` in ONE
        transaction: a reader sees the old set or the new one, never a mix or none, and a
        failure keeps the old set. Validating ``rows`` is the caller's job
        (:func:`mental_trader.options.master.refresh_instrument_master`). Returns the rows
        written.
        """
        params = self._instrument_params(rows)
        async with self.transaction() as conn:
            for underlying in dict.fromkeys(underlyings):
                await conn.execute(
                    "DELETE FROM instruments WHERE underlying = $1 "
                    f"AND instrument_type IN {_DERIVATIVE_TYPES_SQL}",
                    underlying,
                )
            await conn.executemany(_UPSERT_INSTRUMENT_SQL, params)
        return len(params)

    async def count_derivatives(self) -> dict[str, int]:
        """Derivative contracts stored per underlying."""
        async with self.read() as conn:
            rows = await conn.fetch(
                "SELECT underlying, COUNT(*) FROM instruments "
                f"WHERE underlying IS NOT NULL AND instrument_type IN {_DERIVATIVE_TYPES_SQL} "
                "GROUP BY underlying"
            )
        return {str(r[0]): int(r[1]) for r in rows}

    async def load_instruments(self, symbols: Sequence[str] | None = None) -> list[Instrument]:
        """Instruments by symbol (all when ``symbols`` is None), ordered by symbol."""
        async with self.read() as conn:
            rows = await conn.fetch(f"SELECT {_INSTRUMENT_COLS} FROM instruments ORDER BY symbol")
        wanted = None if symbols is None else set(symbols)
        return [
            Instrument(
                symbol=r[0],
                exchange=r[1],
                tradingsymbol=r[2],
                instrument_token=r[3],
                name=r[4],
                segment=r[5],
                instrument_type=r[6],
                tick_size=float(r[7]),
                lot_size=int(r[8]),
                expiry=self._undate(r[9]),
                strike=None if r[10] is None else float(r[10]),
                underlying=r[11],
                freeze_qty=r[12],
            )
            for r in rows
            if wanted is None or r[0] in wanted
        ]

    # ----------------------------------------------------------------- live bars + EMA state

    async def commit_bars(
        self, bars: Sequence[CandleRow], ema_states: Sequence[EmaStateRow] = ()
    ) -> None:
        """Write closed bars and the EMA states that consumed them in ONE transaction.

        After a crash either both a bar and its EMA state are stored or neither is, so a
        restart never resumes an EMA from a state that does not match the stored candles.
        """
        candle_params = [
            (
                b.symbol,
                b.timeframe_s,
                self._ts_ns(b.ts_ns),
                b.open,
                b.high,
                b.low,
                b.close,
                b.volume,
                b.ticks,
            )
            for b in bars
        ]
        ema_params = [
            (
                s.symbol,
                s.timeframe_s,
                self._ts(s.bar_ts),
                self._json(s.fast_state),
                self._json(s.slow_state),
            )
            for s in ema_states
        ]
        async with self.transaction() as conn:
            if candle_params:
                await conn.executemany(UPSERT_CANDLE_SQL, candle_params)
            if ema_params:
                await conn.executemany(
                    "INSERT INTO ema_state (symbol, timeframe_s, bar_ts, fast_state, slow_state) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (symbol, timeframe_s) DO UPDATE SET "
                    "bar_ts = excluded.bar_ts, fast_state = excluded.fast_state, "
                    "slow_state = excluded.slow_state WHERE excluded.bar_ts >= ema_state.bar_ts",
                    ema_params,
                )

    async def load_ema_states(
        self, symbols: Sequence[str], timeframe_s: int
    ) -> dict[str, EmaStateRow]:
        """The stored EMA state per symbol for one timeframe (symbols without one are absent)."""
        wanted = set(symbols)
        async with self.read() as conn:
            rows = await conn.fetch(
                "SELECT symbol, timeframe_s, bar_ts, fast_state, slow_state FROM ema_state "
                "WHERE timeframe_s = $1",
                timeframe_s,
            )
        return {
            r[0]: EmaStateRow(
                symbol=r[0],
                timeframe_s=int(r[1]),
                bar_ts=self._dt(r[2]),
                fast_state=self._unjson(r[3]),
                slow_state=self._unjson(r[4]),
            )
            for r in rows
            if r[0] in wanted
        }

    # ----------------------------------------------------------------- signals and events

    async def insert_signal(self, signal: SignalRecord) -> bool:
        """Store a signal; return False if its id was already stored (nothing changes)."""
        async with self.transaction() as conn:
            row = await conn.fetchrow(
                f"INSERT INTO signals ({_SIGNAL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                signal.id,
                self._ts(signal.ts),
                signal.symbol,
                signal.timeframe_s,
                signal.side.value,
                signal.price,
                signal.strategy,
                signal.reason,
                self._json(signal.payload),
            )
        return row is not None

    async def load_signals(
        self, *, symbol: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[SignalRecord]:
        """The newest signals first, optionally for one symbol and from ``since``."""
        since_v = self._ts(since) if since is not None else self._ts_ns(-(2**62))
        async with self.read() as conn:
            rows = await conn.fetch(
                f"SELECT {_SIGNAL_COLS} FROM signals WHERE ts >= $1 AND ($2 = '' OR symbol = $2) "
                "ORDER BY ts DESC, id DESC LIMIT $3",
                since_v,
                symbol or "",
                limit,
            )
        return [
            SignalRecord(
                id=r[0],
                ts=self._dt(r[1]),
                symbol=r[2],
                timeframe_s=int(r[3]),
                side=Side(r[4]),
                price=float(r[5]),
                strategy=r[6],
                reason=r[7],
                payload=self._unjson(r[8]),
            )
            for r in rows
        ]

    async def insert_event(self, event: Event) -> bool:
        """Append to the audit log; return False if the id was already stored."""
        async with self.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO events (id, ts, kind, level, message, payload) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING id",
                event.id,
                self._ts(event.ts),
                event.kind,
                event.level,
                event.message,
                self._json(event.payload),
            )
        return row is not None

    async def load_events(self, *, kind: str | None = None, limit: int = 100) -> list[Event]:
        """The newest audit-log entries first, optionally of one kind."""
        async with self.read() as conn:
            rows = await conn.fetch(
                "SELECT id, ts, kind, level, message, payload FROM events "
                "WHERE ($1 = '' OR kind = $1) ORDER BY ts DESC, id DESC LIMIT $2",
                kind or "",
                limit,
            )
        return [
            Event(
                id=r[0],
                ts=self._dt(r[1]),
                kind=r[2],
                level=r[3],
                message=r[4],
                payload=self._unjson(r[5]),
            )
            for r in rows
        ]


def open_store(url: str, **options: Any) -> Store:
    """The store a DATABASE_URL names (not yet connected: ``async with`` it, or ``connect()``).

    ``sqlite:///relative/path``, ``sqlite:////absolute/path`` → :class:`SqliteStore`;
    ``postgresql://…`` or ``postgres://…`` → :class:`PostgresStore`. ``options`` go to the
    backend (e.g. ``schema=`` for PostgreSQL, ``synchronous=`` for SQLite).

    Raises:
        InvalidInputError: the URL's scheme is neither.
    """
    if url.startswith("sqlite://"):
        from mental_trader.storage.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite://").removeprefix("/") or ":memory:", **options)
    if url.startswith(("postgresql://", "postgres://")):
        from mental_trader.storage.postgres import PostgresStore

        store: Store = PostgresStore(url, **options)
        return store
    scheme = url.split(":", 1)[0]
    raise InvalidInputError(f"unsupported database URL scheme {scheme!r}: use sqlite or postgresql")
