"""Frozen value types that cross the edges of the system: store rows, orders, fills, trades.

Times are timezone-aware ``datetime`` objects (UTC when we create them); a naive datetime is
rejected where a row is built, so one can never reach the database. Candles are not here:
they travel as numpy columns (see :mod:`mental_trader.storage.base`), because there are many.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from mental_trader.errors import InvalidInputError

__all__ = [
    "TERMINAL_ORDER_STATUSES",
    "DailyPnl",
    "EmaStateRow",
    "Event",
    "Fill",
    "Instrument",
    "OptionTrade",
    "OrderIntent",
    "OrderRecord",
    "OrderStatus",
    "OrderUpdate",
    "Position",
    "Side",
    "SignalRecord",
    "Trade",
    "TradeStatus",
    "can_transition",
    "require_aware",
]


def require_aware(value: datetime, what: str) -> datetime:
    """Return ``value`` if it carries a time zone, else raise :class:`InvalidInputError`."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} must be a timezone-aware datetime, got naive {value!r}")
    return value


class Side(StrEnum):
    """Direction of an order, fill or position."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL."""
        return 1 if self is Side.BUY else -1


class OrderStatus(StrEnum):
    """States of the one order state machine shared by paper and live execution.

    ``INTENT`` is written durably before the order is sent; ``UNKNOWN`` marks an ambiguous
    submission (timeout, 5xx) until the broker's order book says what happened.
    """

    INTENT = "INTENT"
    SUBMITTED = "SUBMITTED"
    UNKNOWN = "UNKNOWN"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


TERMINAL_ORDER_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED}
)

_S = OrderStatus
_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.INTENT: frozenset({_S.SUBMITTED, _S.UNKNOWN, _S.OPEN, _S.PARTIALLY_FILLED, _S.FILLED,
                          _S.CANCELLED, _S.REJECTED}),
    _S.SUBMITTED: frozenset({_S.UNKNOWN, _S.OPEN, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED,
                             _S.REJECTED}),
    _S.UNKNOWN: frozenset({_S.SUBMITTED, _S.OPEN, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED,
                           _S.REJECTED}),
    _S.OPEN: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.REJECTED}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED}),
}  # fmt: skip


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    """Whether the order state machine allows ``current`` → ``new``.

    Terminal states (FILLED, CANCELLED, REJECTED) allow nothing: a late or repeated broker
    update can never reopen a finished order.
    """
    return new in _TRANSITIONS.get(current, frozenset())


class TradeStatus(StrEnum):
    """A round trip is OPEN until its exit is recorded."""

    OPEN = "OPEN"
    CLOSED = "CLOSED"


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable instrument (or index) from the broker's instrument master.

    ``symbol`` is exchange-qualified (``"NSE:RELIANCE"``) and is the key used everywhere.
    """

    symbol: str
    exchange: str
    tradingsymbol: str
    instrument_token: int | None = None
    name: str = ""
    segment: str = ""
    instrument_type: str = "EQ"
    tick_size: float = 0.05
    lot_size: int = 1
    expiry: date | None = None
    strike: float | None = None
    underlying: str | None = None
    freeze_qty: int | None = None


@dataclass(frozen=True, slots=True)
class EmaStateRow:
    """The EMA pair of one symbol and timeframe after the bar at ``bar_ts`` was consumed.

    ``fast_state`` / ``slow_state`` are :meth:`mental_trader.core.Ema.to_state` dicts, which
    restore the EMAs bit-identically.
    """

    symbol: str
    timeframe_s: int
    bar_ts: datetime
    fast_state: dict[str, Any]
    slow_state: dict[str, Any]

    def __post_init__(self) -> None:
        require_aware(self.bar_ts, "EmaStateRow.bar_ts")


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """A signal a strategy emitted. ``id`` is unique; re-inserting it is a no-op."""

    id: str
    ts: datetime
    symbol: str
    timeframe_s: int
    side: Side
    price: float
    strategy: str
    reason: str = ""
    payload: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_aware(self.ts, "SignalRecord.ts")


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order we mean to send, written durably BEFORE it is sent.

    ``client_id`` is unique, and is sent to the broker as the order tag so an ambiguous
    submission can be resolved by looking it up.
    """

    client_id: str
    symbol: str
    side: Side
    qty: int
    order_type: str = "MARKET"
    product: str = "MIS"
    price: float | None = None
    trigger_price: float | None = None
    signal_id: str | None = None
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise InvalidInputError(f"order quantity must be > 0, got {self.qty}")
        if self.created_at is not None:
            require_aware(self.created_at, "OrderIntent.created_at")


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One state transition of an order, identified by ``event_id`` (applied at most once)."""

    client_id: str
    event_id: str
    status: OrderStatus
    ts: datetime
    broker_order_id: str | None = None
    message: str = ""

    def __post_init__(self) -> None:
        require_aware(self.ts, "OrderUpdate.ts")


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order as stored: its intent plus its current state and fill totals."""

    client_id: str
    symbol: str
    side: Side
    qty: int
    order_type: str
    product: str
    price: float | None
    trigger_price: float | None
    signal_id: str | None
    status: OrderStatus
    broker_order_id: str | None
    filled_qty: int
    avg_price: float | None
    message: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Fill:
    """An execution reported by the broker (or the paper fill model), keyed by ``trade_id``."""

    trade_id: str
    client_id: str
    symbol: str
    side: Side
    qty: int
    price: float
    ts: datetime
    charges: float = 0.0

    def __post_init__(self) -> None:
        require_aware(self.ts, "Fill.ts")
        if self.qty <= 0:
            raise InvalidInputError(f"fill quantity must be > 0, got {self.qty}")


@dataclass(frozen=True, slots=True)
class Trade:
    """A round trip in one instrument: entry, and once closed, exit and P&L.

    P&L is ``side.sign * (exit_price - entry_price) * qty``; ``net_pnl`` subtracts the charges
    of both legs.
    """

    id: str
    symbol: str
    side: Side
    qty: int
    entry_ts: datetime
    entry_price: float
    strategy: str = ""
    signal_id: str | None = None
    entry_charges: float = 0.0
    status: TradeStatus = TradeStatus.OPEN
    exit_ts: datetime | None = None
    exit_price: float | None = None
    exit_charges: float = 0.0
    exit_reason: str = ""
    gross_pnl: float | None = None
    net_pnl: float | None = None

    def __post_init__(self) -> None:
        require_aware(self.entry_ts, "Trade.entry_ts")
        if self.exit_ts is not None:
            require_aware(self.exit_ts, "Trade.exit_ts")


@dataclass(frozen=True, slots=True)
class OptionTrade:
    """A round trip in an option contract, with the underlying signal it came from."""

    id: str
    underlying: str
    symbol: str
    expiry: date
    strike: float
    option_type: str
    side: Side
    lots: int
    lot_size: int
    entry_ts: datetime
    entry_price: float
    underlying_signal_id: str | None = None
    underlying_entry_price: float | None = None
    entry_charges: float = 0.0
    status: TradeStatus = TradeStatus.OPEN
    exit_ts: datetime | None = None
    exit_price: float | None = None
    underlying_exit_price: float | None = None
    exit_charges: float = 0.0
    exit_reason: str = ""
    gross_pnl: float | None = None
    net_pnl: float | None = None

    def __post_init__(self) -> None:
        require_aware(self.entry_ts, "OptionTrade.entry_ts")
        if self.option_type not in ("CE", "PE"):
            raise InvalidInputError(f"option_type must be CE or PE, got {self.option_type!r}")
        if self.exit_ts is not None:
            require_aware(self.exit_ts, "OptionTrade.exit_ts")

    @property
    def qty(self) -> int:
        """Contracts traded: lots times lot size."""
        return self.lots * self.lot_size


@dataclass(frozen=True, slots=True)
class Event:
    """An audit-log entry. ``id`` is unique; re-inserting it is a no-op."""

    id: str
    ts: datetime
    kind: str
    message: str
    level: str = "INFO"
    payload: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_aware(self.ts, "Event.ts")


@dataclass(frozen=True, slots=True)
class Position:
    """Net position in one instrument, from the fills applied so far.

    ``qty`` is signed (+long, -short); ``avg_price`` is the average price of the open
    quantity (None when flat); ``realized_pnl`` is gross of charges.
    """

    symbol: str
    qty: int
    avg_price: float | None
    realized_pnl: float
    charges: float


@dataclass(frozen=True, slots=True)
class DailyPnl:
    """P&L of the trades and option trades closed on one IST trading day."""

    day: date
    trades: int
    gross_pnl: float
    charges: float
    net_pnl: float
