"""The store interface, and the business operations both backends share.

:class:`Store` holds every operation once, written in SQL both SQLite (3.35+) and PostgreSQL
accept (``$1`` placeholders, ``ON CONFLICT``, ``RETURNING``). A backend supplies a
connection for a transaction, the conversion of times, dates and JSON to its column types,
and the bulk candle paths, where each has its own fast way (``executemany`` in one
transaction for SQLite, binary ``COPY`` for PostgreSQL).

Idempotency is a property of the schema, not of the caller: candles are unique per
(symbol, timeframe, ts), signals and events per id, orders per client id, order events per
(client id, event id), fills per broker trade id. Re-sending any write is a no-op or a
same-value overwrite, so the write-behind queue may retry a batch whose outcome it does not
know.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from mental_trader.errors import InvalidInputError, StorageError
from mental_trader.models import (
    DailyPnl,
    EmaStateRow,
    Event,
    Fill,
    Instrument,
    OptionTrade,
    OrderIntent,
    OrderRecord,
    OrderStatus,
    OrderUpdate,
    Position,
    Side,
    SignalRecord,
    Trade,
    TradeStatus,
    can_transition,
)

__all__ = [
    "CANDLE_COLUMNS",
    "IST",
    "CandleRow",
    "Candles",
    "Conn",
    "Store",
    "check_candles",
    "dt_to_ns",
    "empty_candles",
    "ns_to_dt",
    "open_store",
]

log = logging.getLogger(__name__)

IST = timezone(timedelta(hours=5, minutes=30), "IST")

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


class Conn(Protocol):
    """The slice of a database connection the shared operations use.

    SQL uses ``$1``-style placeholders; rows are indexed by position.
    """

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement."""

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement per parameter row."""

    async def fetch(self, sql: str, *args: Any) -> list[Sequence[Any]]:
        """Run a query and return every row."""

    async def fetchrow(self, sql: str, *args: Any) -> Sequence[Any] | None:
        """Run a query and return its first row, or None."""


_ORDER_COLS = (
    "client_id, symbol, side, qty, order_type, product, price, trigger_price, signal_id, "
    "status, broker_order_id, filled_qty, avg_price, message, created_at, updated_at"
)
_TRADE_COLS = (
    "id, symbol, side, qty, entry_ts, entry_price, strategy, signal_id, entry_charges, status, "
    "exit_ts, exit_price, exit_charges, exit_reason, gross_pnl, net_pnl"
)
_OPTION_TRADE_COLS = (
    "id, underlying, symbol, expiry, strike, option_type, side, lots, lot_size, entry_ts, "
    "entry_price, underlying_signal_id, underlying_entry_price, entry_charges, status, exit_ts, "
    "exit_price, underlying_exit_price, exit_charges, exit_reason, gross_pnl, net_pnl"
)
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
_FILL_COLS = "trade_id, client_id, symbol, side, qty, price, ts, charges"

UPSERT_CANDLE_SQL = (
    "INSERT INTO candles (symbol, timeframe_s, ts, open, high, low, close, volume, ticks) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
    "ON CONFLICT (symbol, timeframe_s, ts) DO UPDATE SET open = excluded.open, "
    "high = excluded.high, low = excluded.low, close = excluded.close, "
    "volume = excluded.volume, ticks = excluded.ticks"
)


_RoundTrip = TypeVar("_RoundTrip", Trade, OptionTrade)


def _pnl(side: Side, qty: int, entry: float, exit_: float) -> float:
    return side.sign * (exit_ - entry) * qty


class Store(abc.ABC):
    """Persistent state of the service. Open with :func:`open_store`; ``async with`` closes it.

    Every method is a coroutine that never blocks the event loop. Failures raise
    :class:`~mental_trader.errors.StorageError`; ``retryable`` tells an outage from a refusal.
    """

    #: ``"sqlite"`` or ``"postgresql"``.
    backend: str = ""

    # ----------------------------------------------------------------- backend primitives

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection(s). Does not migrate: call :meth:`migrate`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection(s). Safe to call twice."""

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        """A connection inside one transaction: committed on exit, rolled back on error."""

    def read(self) -> AbstractAsyncContextManager[Conn]:
        """A connection for reads (by default a transaction; backends may make it lighter)."""
        return self.transaction()

    @abc.abstractmethod
    def _ts(self, value: datetime) -> Any:
        """An aware datetime → the backend's time column value."""

    @abc.abstractmethod
    def _ts_ns(self, ns: int) -> Any:
        """int ns UTC → the backend's time column value."""

    @abc.abstractmethod
    def _dt(self, raw: Any) -> datetime:
        """The backend's time column value → aware UTC datetime."""

    @abc.abstractmethod
    def _dt_ns(self, raw: Any) -> int:
        """The backend's time column value → int ns UTC."""

    @abc.abstractmethod
    def _json(self, value: Mapping[str, Any]) -> Any:
        """A JSON object → the backend's JSON column value."""

    @abc.abstractmethod
    def _unjson(self, raw: Any) -> dict[str, Any]:
        """The backend's JSON column value → dict."""

    @abc.abstractmethod
    def _date(self, value: date | None) -> Any:
        """A date → the backend's date column value."""

    @abc.abstractmethod
    def _undate(self, raw: Any) -> date | None:
        """The backend's date column value → date."""

    @abc.abstractmethod
    async def schema_version(self) -> int:
        """The highest migration applied (0 for an empty database)."""

    @abc.abstractmethod
    async def migrate(self, target: int | None = None) -> list[int]:
        """Apply pending migrations up to ``target`` (all by default); return those applied.

        Serialised against concurrent migrators; running it twice is a no-op.
        """

    @abc.abstractmethod
    async def ping(self) -> None:
        """Round-trip to the database; raise ``StorageError(retryable=True)`` if it is down."""

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

    # ----------------------------------------------------------------- context manager

    async def __aenter__(self) -> Store:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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

    # ----------------------------------------------------------------- orders and fills

    async def record_order_intent(self, intent: OrderIntent, now: datetime) -> bool:
        """Durably record an order BEFORE it is sent; return False if the client id exists.

        A repeated call with the same client id changes nothing, so a caller that lost the
        answer may call again; the caller must then not send a second order.
        """
        created = self._ts(intent.created_at or now)
        async with self.transaction() as conn:
            row = await conn.fetchrow(
                f"INSERT INTO orders ({_ORDER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                "$10, NULL, 0, NULL, '', $11, $11) ON CONFLICT (client_id) DO NOTHING "
                "RETURNING client_id",
                intent.client_id,
                intent.symbol,
                intent.side.value,
                intent.qty,
                intent.order_type,
                intent.product,
                intent.price,
                intent.trigger_price,
                intent.signal_id,
                OrderStatus.INTENT.value,
                created,
            )
        return row is not None

    async def apply_order_update(self, update: OrderUpdate) -> bool:
        """Apply one order state transition at most once; return whether it changed the order.

        A repeated ``event_id`` or a transition the state machine forbids (anything out of a
        terminal state) is recorded nowhere and returns False.

        Raises:
            StorageError: the order is unknown.
        """
        async with self.transaction() as conn:
            row = await conn.fetchrow(
                "SELECT status FROM orders WHERE client_id = $1 FOR UPDATE"
                if self.backend == "postgresql"
                else "SELECT status FROM orders WHERE client_id = $1",
                update.client_id,
            )
            if row is None:
                raise StorageError(f"order update for unknown client id {update.client_id!r}")
            current = OrderStatus(row[0])
            if update.status != current and not can_transition(current, update.status):
                log.warning(
                    "order %s: ignoring transition %s -> %s",
                    update.client_id,
                    current,
                    update.status,
                )
                return False
            inserted = await conn.fetchrow(
                "INSERT INTO order_events (client_id, event_id, status, ts, broker_order_id, "
                "message) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (client_id, event_id) DO NOTHING RETURNING event_id",
                update.client_id,
                update.event_id,
                update.status.value,
                self._ts(update.ts),
                update.broker_order_id,
                update.message,
            )
            if inserted is None:
                return False
            await conn.execute(
                "UPDATE orders SET status = $2, "
                "broker_order_id = COALESCE($3, broker_order_id), message = $4, updated_at = $5 "
                "WHERE client_id = $1",
                update.client_id,
                update.status.value,
                update.broker_order_id,
                update.message,
                self._ts(update.ts),
            )
        return True

    async def get_order(self, client_id: str) -> OrderRecord | None:
        """One order by client id, or None."""
        async with self.read() as conn:
            row = await conn.fetchrow(
                f"SELECT {_ORDER_COLS} FROM orders WHERE client_id = $1", client_id
            )
        return None if row is None else self._order(row)

    async def load_orders(
        self, *, statuses: Iterable[OrderStatus] | None = None, limit: int = 1000
    ) -> list[OrderRecord]:
        """Orders, newest first, optionally only those in ``statuses``."""
        wanted = None if statuses is None else {s.value for s in statuses}
        async with self.read() as conn:
            rows = await conn.fetch(
                f"SELECT {_ORDER_COLS} FROM orders ORDER BY created_at DESC, client_id DESC"
            )
        out = [self._order(r) for r in rows if wanted is None or r[9] in wanted]
        return out[:limit]

    def _order(self, r: Sequence[Any]) -> OrderRecord:
        return OrderRecord(
            client_id=r[0],
            symbol=r[1],
            side=Side(r[2]),
            qty=int(r[3]),
            order_type=r[4],
            product=r[5],
            price=None if r[6] is None else float(r[6]),
            trigger_price=None if r[7] is None else float(r[7]),
            signal_id=r[8],
            status=OrderStatus(r[9]),
            broker_order_id=r[10],
            filled_qty=int(r[11]),
            avg_price=None if r[12] is None else float(r[12]),
            message=r[13],
            created_at=self._dt(r[14]),
            updated_at=self._dt(r[15]),
        )

    async def apply_fill(self, fill: Fill) -> bool:
        """Apply an execution once (keyed by broker trade id); return whether it was new.

        Updates the order's filled quantity and average price and moves it to
        PARTIALLY_FILLED or FILLED, in the same transaction as the fill row.

        Raises:
            StorageError: the order is unknown, or the fill would overfill it.
        """
        async with self.transaction() as conn:
            order = await conn.fetchrow(
                "SELECT qty, filled_qty, avg_price, status, side, symbol FROM orders "
                "WHERE client_id = $1" + (" FOR UPDATE" if self.backend == "postgresql" else ""),
                fill.client_id,
            )
            if order is None:
                raise StorageError(
                    f"fill {fill.trade_id!r} for unknown client id {fill.client_id!r}"
                )
            inserted = await conn.fetchrow(
                f"INSERT INTO fills ({_FILL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (trade_id) DO NOTHING RETURNING trade_id",
                fill.trade_id,
                fill.client_id,
                fill.symbol,
                fill.side.value,
                fill.qty,
                fill.price,
                self._ts(fill.ts),
                fill.charges,
            )
            if inserted is None:
                return False
            qty, filled, avg = int(order[0]), int(order[1]), order[2]
            if fill.side.value != order[4] or fill.symbol != order[5]:
                raise StorageError(
                    f"fill {fill.trade_id!r} ({fill.side} {fill.symbol}) does not match order "
                    f"{fill.client_id!r} ({order[4]} {order[5]})"
                )
            new_filled = filled + fill.qty
            if new_filled > qty:
                raise StorageError(
                    f"fill {fill.trade_id!r} overfills order {fill.client_id!r}: "
                    f"{new_filled} > {qty}"
                )
            new_avg = (
                fill.price
                if avg is None or filled == 0
                else (float(avg) * filled + fill.price * fill.qty) / new_filled
            )
            current = OrderStatus(order[3])
            status = OrderStatus.FILLED if new_filled == qty else OrderStatus.PARTIALLY_FILLED
            if status != current and not can_transition(current, status):
                status = current
            await conn.execute(
                "UPDATE orders SET filled_qty = $2, avg_price = $3, status = $4, updated_at = $5 "
                "WHERE client_id = $1",
                fill.client_id,
                new_filled,
                new_avg,
                status.value,
                self._ts(fill.ts),
            )
        return True

    async def load_fills(
        self, *, client_id: str | None = None, symbol: str | None = None
    ) -> list[Fill]:
        """Fills in time order, optionally of one order or one symbol."""
        async with self.read() as conn:
            rows = await conn.fetch(
                f"SELECT {_FILL_COLS} FROM fills WHERE ($1 = '' OR client_id = $1) "
                "AND ($2 = '' OR symbol = $2) ORDER BY ts, trade_id",
                client_id or "",
                symbol or "",
            )
        return [
            Fill(
                trade_id=r[0],
                client_id=r[1],
                symbol=r[2],
                side=Side(r[3]),
                qty=int(r[4]),
                price=float(r[5]),
                ts=self._dt(r[6]),
                charges=float(r[7]),
            )
            for r in rows
        ]

    async def positions(self) -> list[Position]:
        """Net position per symbol from every fill, with realized P&L (average-cost method)."""
        book: dict[str, list[float]] = {}  # symbol → [qty, avg, realized, charges]
        for f in await self.load_fills():
            pos = book.setdefault(f.symbol, [0.0, 0.0, 0.0, 0.0])
            qty, avg = pos[0], pos[1]
            signed = f.side.sign * f.qty
            pos[3] += f.charges
            if qty == 0 or (qty > 0) == (signed > 0):  # opening or adding
                pos[1] = (avg * abs(qty) + f.price * abs(signed)) / (abs(qty) + abs(signed))
                pos[0] = qty + signed
                continue
            closing = min(abs(qty), abs(signed))
            pos[2] += closing * (f.price - avg) * (1 if qty > 0 else -1)
            pos[0] = qty + signed
            if pos[0] == 0:
                pos[1] = 0.0
            elif (pos[0] > 0) != (qty > 0):  # flipped: the rest opens at this price
                pos[1] = f.price
        return [
            Position(
                symbol=s,
                qty=int(p[0]),
                avg_price=p[1] if p[0] else None,
                realized_pnl=p[2],
                charges=p[3],
            )
            for s, p in sorted(book.items())
        ]

    # ----------------------------------------------------------------- trades

    async def open_trade(self, trade: Trade) -> bool:
        """Record an open round trip; return False if its id exists (nothing changes)."""
        async with self.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO trades (id, symbol, side, qty, entry_ts, entry_price, strategy, "
                "signal_id, entry_charges, status, exit_charges, exit_reason) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, '') "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                trade.id,
                trade.symbol,
                trade.side.value,
                trade.qty,
                self._ts(trade.entry_ts),
                trade.entry_price,
                trade.strategy,
                trade.signal_id,
                trade.entry_charges,
                TradeStatus.OPEN.value,
            )
        return row is not None

    async def close_trade(
        self,
        trade_id: str,
        *,
        exit_ts: datetime,
        exit_price: float,
        exit_charges: float = 0.0,
        reason: str = "",
    ) -> Trade:
        """Close a round trip and compute its P&L; closing it again returns it unchanged.

        Raises:
            StorageError: no trade has this id.
        """
        return await self._close_round_trip(
            "trades",
            _TRADE_COLS,
            self._trade,
            trade_id,
            exit_ts=exit_ts,
            exit_price=exit_price,
            exit_charges=exit_charges,
            reason=reason,
        )

    async def _close_round_trip(
        self,
        table: str,
        cols: str,
        parse: Callable[[Sequence[Any]], _RoundTrip],
        trade_id: str,
        *,
        exit_ts: datetime,
        exit_price: float,
        exit_charges: float,
        reason: str,
        extra: Mapping[str, Any] | None = None,
    ) -> _RoundTrip:
        """Close a trade or option trade once: P&L net of both legs' charges, in one
        transaction; an already closed one comes back unchanged."""
        select = f"SELECT {cols} FROM {table} WHERE id = $1"
        sets = ["status", "exit_ts", "exit_price", "exit_charges", "exit_reason", "gross_pnl"]
        sets += ["net_pnl", *(extra or {})]
        update = ", ".join(f"{col} = ${i}" for i, col in enumerate(sets, start=2))
        async with self.transaction() as conn:
            row = await conn.fetchrow(select, trade_id)
            if row is None:
                what = table.removesuffix("s").replace("_", " ")
                raise StorageError(f"close of unknown {what} {trade_id!r}")
            trade = parse(row)
            if trade.status is TradeStatus.CLOSED:
                return trade
            gross = _pnl(trade.side, trade.qty, trade.entry_price, exit_price)
            net = gross - trade.entry_charges - exit_charges
            await conn.execute(
                f"UPDATE {table} SET {update} WHERE id = $1",
                trade_id,
                TradeStatus.CLOSED.value,
                self._ts(exit_ts),
                exit_price,
                exit_charges,
                reason,
                gross,
                net,
                *(extra or {}).values(),
            )
            row = await conn.fetchrow(select, trade_id)
        assert row is not None
        return parse(row)

    async def load_trades(
        self,
        *,
        status: TradeStatus | None = None,
        symbol: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[Trade]:
        """Round trips, newest entry first, filtered by status, symbol and entry time."""
        since_v = self._ts(since) if since is not None else self._ts_ns(-(2**62))
        async with self.read() as conn:
            rows = await conn.fetch(
                f"SELECT {_TRADE_COLS} FROM trades WHERE ($1 = '' OR status = $1) "
                "AND ($2 = '' OR symbol = $2) AND entry_ts >= $3 "
                "ORDER BY entry_ts DESC, id DESC LIMIT $4",
                status.value if status else "",
                symbol or "",
                since_v,
                limit,
            )
        return [self._trade(r) for r in rows]

    def _trade(self, r: Sequence[Any]) -> Trade:
        return Trade(
            id=r[0],
            symbol=r[1],
            side=Side(r[2]),
            qty=int(r[3]),
            entry_ts=self._dt(r[4]),
            entry_price=float(r[5]),
            strategy=r[6],
            signal_id=r[7],
            entry_charges=float(r[8]),
            status=TradeStatus(r[9]),
            exit_ts=None if r[10] is None else self._dt(r[10]),
            exit_price=None if r[11] is None else float(r[11]),
            exit_charges=float(r[12]),
            exit_reason=r[13],
            gross_pnl=None if r[14] is None else float(r[14]),
            net_pnl=None if r[15] is None else float(r[15]),
        )

    async def open_option_trade(self, trade: OptionTrade) -> bool:
        """Record an open option round trip; return False if its id exists."""
        async with self.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO option_trades (id, underlying, symbol, expiry, strike, option_type, "
                "side, lots, lot_size, entry_ts, entry_price, underlying_signal_id, "
                "underlying_entry_price, entry_charges, status, exit_charges, exit_reason) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0, '') "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                trade.id,
                trade.underlying,
                trade.symbol,
                self._date(trade.expiry),
                trade.strike,
                trade.option_type,
                trade.side.value,
                trade.lots,
                trade.lot_size,
                self._ts(trade.entry_ts),
                trade.entry_price,
                trade.underlying_signal_id,
                trade.underlying_entry_price,
                trade.entry_charges,
                TradeStatus.OPEN.value,
            )
        return row is not None

    async def close_option_trade(
        self,
        trade_id: str,
        *,
        exit_ts: datetime,
        exit_price: float,
        underlying_exit_price: float | None = None,
        exit_charges: float = 0.0,
        reason: str = "",
    ) -> OptionTrade:
        """Close an option round trip and compute its P&L; closing it again is a no-op.

        Raises:
            StorageError: no option trade has this id.
        """
        return await self._close_round_trip(
            "option_trades",
            _OPTION_TRADE_COLS,
            self._option_trade,
            trade_id,
            exit_ts=exit_ts,
            exit_price=exit_price,
            exit_charges=exit_charges,
            reason=reason,
            extra={"underlying_exit_price": underlying_exit_price},
        )

    async def closed_pnl(self) -> tuple[dict[str, tuple[float, int]], dict[str, tuple[float, int]]]:
        """Realized net P&L and count of closed round trips: ``trades`` by symbol, and
        ``option_trades`` by underlying (the P&L attribution per leg)."""
        closed = TradeStatus.CLOSED.value
        async with self.read() as conn:
            own = await conn.fetch(
                "SELECT symbol, SUM(net_pnl), COUNT(*) FROM trades WHERE status = $1 "
                "GROUP BY symbol",
                closed,
            )
            options = await conn.fetch(
                "SELECT underlying, SUM(net_pnl), COUNT(*) FROM option_trades "
                "WHERE status = $1 GROUP BY underlying",
                closed,
            )
        return (
            {str(r[0]): (float(r[1] or 0.0), int(r[2])) for r in own},
            {str(r[0]): (float(r[1] or 0.0), int(r[2])) for r in options},
        )

    async def load_option_trades(
        self, *, status: TradeStatus | None = None, underlying: str | None = None
    ) -> list[OptionTrade]:
        """Option round trips, newest entry first."""
        async with self.read() as conn:
            rows = await conn.fetch(
                f"SELECT {_OPTION_TRADE_COLS} FROM option_trades WHERE ($1 = '' OR status = $1) "
                "AND ($2 = '' OR underlying = $2) ORDER BY entry_ts DESC, id DESC",
                status.value if status else "",
                underlying or "",
            )
        return [self._option_trade(r) for r in rows]

    def _option_trade(self, r: Sequence[Any]) -> OptionTrade:
        expiry = self._undate(r[3])
        assert expiry is not None
        return OptionTrade(
            id=r[0],
            underlying=r[1],
            symbol=r[2],
            expiry=expiry,
            strike=float(r[4]),
            option_type=r[5],
            side=Side(r[6]),
            lots=int(r[7]),
            lot_size=int(r[8]),
            entry_ts=self._dt(r[9]),
            entry_price=float(r[10]),
            underlying_signal_id=r[11],
            underlying_entry_price=None if r[12] is None else float(r[12]),
            entry_charges=float(r[13]),
            status=TradeStatus(r[14]),
            exit_ts=None if r[15] is None else self._dt(r[15]),
            exit_price=None if r[16] is None else float(r[16]),
            underlying_exit_price=None if r[17] is None else float(r[17]),
            exit_charges=float(r[18]),
            exit_reason=r[19],
            gross_pnl=None if r[20] is None else float(r[20]),
            net_pnl=None if r[21] is None else float(r[21]),
        )

    async def daily_pnl(self, start: date, end: date) -> list[DailyPnl]:
        """Net P&L per IST day (by exit time) of trades and option trades closed in [start, end]."""
        lo = datetime(start.year, start.month, start.day, tzinfo=IST)
        hi = datetime(end.year, end.month, end.day, tzinfo=IST) + timedelta(days=1)
        rows: list[Sequence[Any]] = []
        async with self.read() as conn:
            for table in ("trades", "option_trades"):
                rows += await conn.fetch(
                    f"SELECT exit_ts, gross_pnl, entry_charges + exit_charges FROM {table} "
                    "WHERE status = $1 AND exit_ts >= $2 AND exit_ts < $3",
                    TradeStatus.CLOSED.value,
                    self._ts(lo),
                    self._ts(hi),
                )
        days: dict[date, list[float]] = {}
        for r in rows:
            day = self._dt(r[0]).astimezone(IST).date()
            acc = days.setdefault(day, [0.0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += float(r[1])
            acc[2] += float(r[2])
        return [
            DailyPnl(day=d, trades=int(a[0]), gross_pnl=a[1], charges=a[2], net_pnl=a[1] - a[2])
            for d, a in sorted(days.items())
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
