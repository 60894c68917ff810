"""The order model shared by paper and live execution: ids, rounding, gateway, state machine.

* :func:`new_client_id` makes the client id written in the intent row BEFORE submission
  and sent as the broker's order ``tag``. Kite tags are alphanumeric and at most 20
  characters, so the id is ``"MT"`` + 18 hex digits (72 random bits): unique without
  coordination, across restarts, and usable as the tag as is.
* :func:`round_to_tick` and :func:`round_to_lot` are THE place prices and sizes are
  rounded; every other module calls them.
* :class:`OrderGateway` is what the executor needs from a broker: submit, cancel, and a
  listener for order updates and fills. :class:`TickSink` marks a gateway that needs the
  market's ticks (the paper gateway).
* :class:`WorkingOrder` is the in-memory order; its :meth:`~WorkingOrder.advance` is the
  one state machine (:func:`mental_trader.models.can_transition`), the same rules the
  store applies, so a late or repeated update never moves an order backwards.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from mental_trader.errors import InvalidInputError
from mental_trader.models import (
    TERMINAL_ORDER_STATUSES,
    Fill,
    Instrument,
    OrderIntent,
    OrderStatus,
    OrderUpdate,
    Side,
    can_transition,
)

__all__ = [
    "CLIENT_ID_LENGTH",
    "EventListener",
    "GatewayEvent",
    "OrderGateway",
    "OrderRole",
    "SubmitResult",
    "TickSink",
    "WorkingOrder",
    "instrument_for",
    "new_client_id",
    "opposite",
    "round_to_lot",
    "round_to_tick",
]

#: Length of a client id (the Kite order tag limit).
CLIENT_ID_LENGTH = 20
_EPS = 1e-9  # price / tick ratios this close to a whole number are on the grid


def new_client_id() -> str:
    """A fresh client id: ``"MT"`` + 18 lowercase hex digits (20 alphanumeric characters)."""
    return "MT" + secrets.token_hex((CLIENT_ID_LENGTH - 2) // 2)


def client_id_for(signal_id: str) -> str:
    """The client id of the entry a signal asks for: ``"MT"`` + 18 hex digits of its hash.

    Deterministic, so a signal replayed after a restart maps to the same client id and the
    store's unique key refuses the second intent: one signal can never send two orders.
    """
    digest = hashlib.sha256(signal_id.encode()).hexdigest()
    return "MT" + digest[: CLIENT_ID_LENGTH - 2]


def opposite(side: Side) -> Side:
    """The other side (the side that closes a position opened with ``side``)."""
    return Side.SELL if side is Side.BUY else Side.BUY


def round_to_tick(price: float, tick: float, side: Side | None = None) -> float:
    """Round a price to the tick grid, against the party who pays it.

    Args:
        price: the price, > 0.
        tick: the instrument's tick size, > 0 (e.g. 0.05, 0.01).
        side: ``BUY`` rounds UP (a buyer pays at least this), ``SELL`` rounds DOWN (a
            seller gets at most this), None rounds to the nearest tick. So a fill price
            rounded with the fill's own side is never better for us than the unrounded
            one; a LIMIT price rounded with the OPPOSITE side never crosses the limit the
            strategy asked for.

    Returns:
        A multiple of ``tick``, with no binary noise beyond the tick's decimals.

    Raises:
        InvalidInputError: a non-finite or non-positive price or tick.
    """
    if not (math.isfinite(price) and math.isfinite(tick) and price > 0 and tick > 0):
        raise InvalidInputError(f"cannot round price {price} to tick {tick}")
    steps = price / tick
    if side is Side.BUY:
        n = math.ceil(steps - _EPS)
    elif side is Side.SELL:
        n = math.floor(steps + _EPS)
    else:
        n = round(steps)
    exponent = Decimal(str(tick)).normalize().as_tuple().exponent
    places = max(0, -exponent) if isinstance(exponent, int) else 0
    return round(n * tick, places)


def round_to_lot(qty: float, lot: int) -> int:
    """Round a quantity DOWN to a whole number of lots (0 if less than one lot).

    Raises:
        InvalidInputError: a lot size below 1 or a non-finite quantity.
    """
    if lot < 1 or not math.isfinite(qty):
        raise InvalidInputError(f"cannot round quantity {qty} to lot size {lot}")
    if qty <= 0:
        return 0
    return math.floor(qty / lot + _EPS) * lot


def instrument_for(instruments: Mapping[str, Instrument], symbol: str) -> Instrument:
    """The instrument of ``symbol``, or an NSE equity default (tick 0.05, lot 1).

    The default fits the sim market; for real trading pass the instrument master (tick
    and lot sizes change: equity below Rs 250 trades in 0.01 ticks, F&O lots are revised).
    """
    found = instruments.get(symbol)
    if found is not None:
        return found
    exchange, _, name = symbol.partition(":")
    return Instrument(symbol=symbol, exchange=exchange or "NSE", tradingsymbol=name or symbol)


#: What a gateway reports after submission: order state changes and executions.
GatewayEvent = OrderUpdate | Fill
#: Receives gateway events. Called on the event loop; must be cheap and must not block.
EventListener = Callable[[GatewayEvent], None]


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """A gateway's answer to a submission.

    Attributes:
        accepted: whether the broker took the order.
        status: the order's state now (OPEN or SUBMITTED if accepted, else REJECTED).
        broker_order_id: the broker's id, if it gave one.
        message: the broker's words (the rejection reason).
    """

    accepted: bool
    status: OrderStatus
    broker_order_id: str | None = None
    message: str = ""


class OrderGateway(Protocol):
    """Where orders go: the paper fill model or a live broker.

    Fills and state changes after submission arrive through the listener given to
    :meth:`set_listener`. A submission whose outcome is unknown (timeout, 5xx) raises
    :class:`~mental_trader.errors.BrokerError` or :class:`TimeoutError`: the caller
    resolves it by looking the tag (client id) up, never by re-sending.
    """

    @property
    def name(self) -> str:
        """Short identifier, e.g. ``"paper"``."""
        ...

    def set_listener(self, listener: EventListener) -> None:
        """Deliver every later order update and fill to ``listener``."""
        ...

    async def submit(self, intent: OrderIntent) -> SubmitResult:
        """Send an order whose intent is already stored; ``intent.client_id`` is the tag."""
        ...

    async def cancel(self, client_id: str) -> None:
        """Ask to cancel a working order; the outcome arrives as an update (or a fill)."""
        ...


@runtime_checkable
class TickSink(Protocol):
    """A gateway that needs market ticks to work its orders (the paper fill model)."""

    def on_tick(self, symbol: str, ts_ns: int, price: float) -> None:
        """One trade print of ``symbol`` at ``ts_ns`` (int ns UTC)."""
        ...


class OrderRole(StrEnum):
    """Why the executor sent an order."""

    ENTRY = "ENTRY"
    EXIT = "EXIT"


@dataclass(slots=True)
class WorkingOrder:
    """An order the executor sent and still tracks (mutable; owned by the executor).

    Attributes:
        intent: what was sent.
        role: ENTRY opens a round trip, EXIT closes ``trade_id``.
        status: current state; change it only through :meth:`advance`.
        reason: why (the signal's or the exit's reason).
        trade_id: the round trip an EXIT closes (the entry's client id).
        strategy: the strategy that asked for an ENTRY.
        cancel_requested: a cancel was sent (not sent twice).
        underlying_price: for an option order, the underlying's price when it was decided
            (stored on the option round trip for P&L attribution).
        underlying_signal_id: for an option entry, the underlying signal it came from.
    """

    intent: OrderIntent
    role: OrderRole
    status: OrderStatus = OrderStatus.INTENT
    reason: str = ""
    trade_id: str | None = None
    strategy: str = ""
    broker_order_id: str | None = None
    cancel_requested: bool = False
    underlying_price: float | None = None
    underlying_signal_id: str | None = None

    @property
    def client_id(self) -> str:
        """The order's client id (its intent row key and broker tag)."""
        return self.intent.client_id

    @property
    def is_terminal(self) -> bool:
        """FILLED, CANCELLED or REJECTED: nothing more will happen to it."""
        return self.status in TERMINAL_ORDER_STATUSES

    def advance(self, new: OrderStatus) -> bool:
        """Move to ``new`` if the state machine allows it; return whether it moved.

        Staying in the same state is not a move (a repeated update changes nothing).
        """
        if new == self.status or not can_transition(self.status, new):
            return False
        self.status = new
        return True
