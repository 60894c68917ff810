"""Typed views of Kite's JSON payloads (orders, trades, positions, quotes, margins, session).

Each ``from_json`` is lenient about fields Kite may omit or send as null (numbers default to
0, strings to ""), strict about the ones we key on (ids), and keeps the payload in ``raw``
for anything not lifted into a field. Kite's IST ``yyyy-mm-dd hh:mm:ss`` strings become
aware datetimes (IST).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from mental_trader.brokers.kite.history import parse_kite_ts

__all__ = [
    "AutosliceChild",
    "DepthLevel",
    "KiteMargins",
    "KiteOhlc",
    "KiteOrder",
    "KitePosition",
    "KitePositions",
    "KiteQuote",
    "KiteSession",
    "KiteTrade",
    "PlaceResult",
]


def _f(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    return float(value) if value not in (None, "") else 0.0


def _i(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    return int(float(value)) if value not in (None, "") else 0


def _s(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return "" if value is None else str(value)


def _opt_s(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return None if value in (None, "") else str(value)


def _ts(data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if value in (None, ""):
        return None
    try:
        return parse_kite_ts(str(value))
    except ValueError:
        return None  # e.g. Kite's "0001-01-01 00:00:00"-like placeholders


@dataclass(frozen=True, slots=True)
class KiteOrder:
    """One order (``GET /orders``) or one state of it (``GET /orders/{id}``).

    ``status`` is Kite's string (``OPEN``, ``COMPLETE``, ``REJECTED``, ``CANCELLED``,
    ``TRIGGER PENDING``, transient ``... PENDING`` states, ``UPDATE``). ``tag`` is the tag
    we sent (our client id), None for orders placed elsewhere.
    """

    order_id: str
    status: str
    tag: str | None
    exchange: str
    tradingsymbol: str
    transaction_type: str
    order_type: str
    product: str
    variety: str
    validity: str
    quantity: int
    filled_quantity: int
    pending_quantity: int
    cancelled_quantity: int
    price: float
    trigger_price: float
    average_price: float
    order_timestamp: datetime | None
    exchange_timestamp: datetime | None
    exchange_order_id: str | None = None
    parent_order_id: str | None = None
    status_message: str | None = None
    instrument_token: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def symbol(self) -> str:
        """Exchange-qualified symbol (``"NSE:INFY"``)."""
        return f"{self.exchange}:{self.tradingsymbol}"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KiteOrder:
        """Build from Kite's order object."""
        return cls(
            order_id=str(data["order_id"]),
            status=_s(data, "status"),
            tag=_opt_s(data, "tag"),
            exchange=_s(data, "exchange"),
            tradingsymbol=_s(data, "tradingsymbol"),
            transaction_type=_s(data, "transaction_type"),
            order_type=_s(data, "order_type"),
            product=_s(data, "product"),
            variety=_s(data, "variety"),
            validity=_s(data, "validity"),
            quantity=_i(data, "quantity"),
            filled_quantity=_i(data, "filled_quantity"),
            pending_quantity=_i(data, "pending_quantity"),
            cancelled_quantity=_i(data, "cancelled_quantity"),
            price=_f(data, "price"),
            trigger_price=_f(data, "trigger_price"),
            average_price=_f(data, "average_price"),
            order_timestamp=_ts(data, "order_timestamp"),
            exchange_timestamp=_ts(data, "exchange_timestamp"),
            exchange_order_id=_opt_s(data, "exchange_order_id"),
            parent_order_id=_opt_s(data, "parent_order_id"),
            status_message=_opt_s(data, "status_message"),
            instrument_token=_i(data, "instrument_token"),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class KiteTrade:
    """One execution (``GET /trades``, ``GET /orders/{id}/trades``); ``trade_id`` is unique."""

    trade_id: str
    order_id: str
    exchange: str
    tradingsymbol: str
    transaction_type: str
    product: str
    quantity: int
    average_price: float
    fill_timestamp: datetime | None
    exchange_timestamp: datetime | None
    exchange_order_id: str | None = None
    instrument_token: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def symbol(self) -> str:
        """Exchange-qualified symbol."""
        return f"{self.exchange}:{self.tradingsymbol}"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KiteTrade:
        """Build from Kite's trade object."""
        return cls(
            trade_id=str(data["trade_id"]),
            order_id=str(data["order_id"]),
            exchange=_s(data, "exchange"),
            tradingsymbol=_s(data, "tradingsymbol"),
            transaction_type=_s(data, "transaction_type"),
            product=_s(data, "product"),
            quantity=_i(data, "quantity"),
            average_price=_f(data, "average_price"),
            fill_timestamp=_ts(data, "fill_timestamp"),
            exchange_timestamp=_ts(data, "exchange_timestamp"),
            exchange_order_id=_opt_s(data, "exchange_order_id"),
            instrument_token=_i(data, "instrument_token"),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class KitePosition:
    """A position row of ``GET /portfolio/positions``; ``quantity`` is signed (+long)."""

    exchange: str
    tradingsymbol: str
    product: str
    quantity: int
    average_price: float
    last_price: float
    pnl: float
    realised: float
    unrealised: float
    m2m: float
    buy_quantity: int
    sell_quantity: int
    buy_price: float
    sell_price: float
    overnight_quantity: int = 0
    multiplier: float = 1.0
    instrument_token: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def symbol(self) -> str:
        """Exchange-qualified symbol."""
        return f"{self.exchange}:{self.tradingsymbol}"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KitePosition:
        """Build from Kite's position object."""
        return cls(
            exchange=_s(data, "exchange"),
            tradingsymbol=_s(data, "tradingsymbol"),
            product=_s(data, "product"),
            quantity=_i(data, "quantity"),
            average_price=_f(data, "average_price"),
            last_price=_f(data, "last_price"),
            pnl=_f(data, "pnl"),
            realised=_f(data, "realised"),
            unrealised=_f(data, "unrealised"),
            m2m=_f(data, "m2m"),
            buy_quantity=_i(data, "buy_quantity"),
            sell_quantity=_i(data, "sell_quantity"),
            buy_price=_f(data, "buy_price"),
            sell_price=_f(data, "sell_price"),
            overnight_quantity=_i(data, "overnight_quantity"),
            multiplier=_f(data, "multiplier") or 1.0,
            instrument_token=_i(data, "instrument_token"),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class KitePositions:
    """``net``: the positions carried (incl. overnight); ``day``: today's activity only."""

    net: tuple[KitePosition, ...]
    day: tuple[KitePosition, ...]


@dataclass(frozen=True, slots=True)
class DepthLevel:
    """One level of market depth."""

    price: float
    quantity: int
    orders: int


@dataclass(frozen=True, slots=True)
class KiteOhlc:
    """``GET /quote/ohlc``: last price and the day's OHLC (``close`` = previous close)."""

    instrument_token: int
    last_price: float
    open: float
    high: float
    low: float
    close: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KiteOhlc:
        """Build from Kite's ohlc quote object."""
        ohlc = data.get("ohlc") or {}
        return cls(
            instrument_token=_i(data, "instrument_token"),
            last_price=_f(data, "last_price"),
            open=_f(ohlc, "open"),
            high=_f(ohlc, "high"),
            low=_f(ohlc, "low"),
            close=_f(ohlc, "close"),
        )


@dataclass(frozen=True, slots=True)
class KiteQuote:
    """``GET /quote``: the full quote of one instrument (depth best first)."""

    instrument_token: int
    last_price: float
    last_quantity: int
    average_price: float
    volume: int
    buy_quantity: int
    sell_quantity: int
    open: float
    high: float
    low: float
    close: float
    net_change: float
    oi: float
    timestamp: datetime | None
    last_trade_time: datetime | None
    lower_circuit_limit: float
    upper_circuit_limit: float
    bids: tuple[DepthLevel, ...]
    asks: tuple[DepthLevel, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KiteQuote:
        """Build from Kite's quote object."""
        ohlc = data.get("ohlc") or {}
        depth = data.get("depth") or {}

        def levels(side: str) -> tuple[DepthLevel, ...]:
            return tuple(
                DepthLevel(_f(level, "price"), _i(level, "quantity"), _i(level, "orders"))
                for level in depth.get(side) or ()
            )

        return cls(
            instrument_token=_i(data, "instrument_token"),
            last_price=_f(data, "last_price"),
            last_quantity=_i(data, "last_quantity"),
            average_price=_f(data, "average_price"),
            volume=_i(data, "volume"),
            buy_quantity=_i(data, "buy_quantity"),
            sell_quantity=_i(data, "sell_quantity"),
            open=_f(ohlc, "open"),
            high=_f(ohlc, "high"),
            low=_f(ohlc, "low"),
            close=_f(ohlc, "close"),
            net_change=_f(data, "net_change"),
            oi=_f(data, "oi"),
            timestamp=_ts(data, "timestamp"),
            last_trade_time=_ts(data, "last_trade_time"),
            lower_circuit_limit=_f(data, "lower_circuit_limit"),
            upper_circuit_limit=_f(data, "upper_circuit_limit"),
            bids=levels("buy"),
            asks=levels("sell"),
        )


@dataclass(frozen=True, slots=True)
class KiteMargins:
    """One segment of ``GET /user/margins`` (``equity`` or ``commodity``)."""

    enabled: bool
    net: float
    available: Mapping[str, float]
    utilised: Mapping[str, float]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KiteMargins:
        """Build from Kite's segment margins object (non-numeric entries skipped)."""

        def numbers(block: Any) -> dict[str, float]:
            out: dict[str, float] = {}
            for key, value in (block or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    out[str(key)] = float(value)
            return out

        return cls(
            enabled=bool(data.get("enabled", True)),
            net=_f(data, "net"),
            available=numbers(data.get("available")),
            utilised=numbers(data.get("utilised")),
        )


@dataclass(frozen=True, slots=True)
class AutosliceChild:
    """One slice of an autosliced order: its ``order_id``, or the error that refused it."""

    order_id: str | None
    error_type: str | None = None
    message: str | None = None
    code: int | None = None


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """The answer to a placement: the order id (the parent when autosliced) and the slices
    (empty unless Kite autosliced it)."""

    order_id: str
    children: tuple[AutosliceChild, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlaceResult:
        """Build from the ``data`` of ``POST /orders/{variety}``."""
        children = []
        for child in data.get("children") or ():
            error = child.get("error")
            if error:
                code = error.get("code")
                children.append(
                    AutosliceChild(
                        order_id=_opt_s(child, "order_id"),
                        error_type=_opt_s(error, "error_type"),
                        message=_opt_s(error, "message"),
                        code=int(code) if isinstance(code, int | float) else None,
                    )
                )
            else:
                children.append(AutosliceChild(order_id=_opt_s(child, "order_id")))
        return cls(order_id=str(data["order_id"]), children=tuple(children))


@dataclass(frozen=True, slots=True)
class KiteSession:
    """The result of ``POST /session/token``. The token is a :class:`~pydantic.SecretStr`
    (its repr is masked); read it with ``get_secret_value()``."""

    access_token: SecretStr
    user_id: str
    login_time: datetime | None
