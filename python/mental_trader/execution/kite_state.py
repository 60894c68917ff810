"""The state of one of our orders at Kite, from its slices: status mapping, folding, fills.

Shared by the live gateway (:mod:`~mental_trader.execution.live`) and start-up
reconciliation (:mod:`~mental_trader.execution.reconcile`), so both report the same
states under the same event ids and the same fills under the same trade ids (each is
applied once, whichever path saw it first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from mental_trader.brokers.kite.payloads import KiteOrder, KiteTrade
from mental_trader.models import TERMINAL_ORDER_STATUSES, Fill, OrderStatus, Side

__all__ = [
    "NOT_PLACED",
    "Slice",
    "fill_from_trade",
    "fold",
    "is_our_tag",
    "kite_status",
    "update_event_id",
]

#: The message of an order that never reached the broker's order book.
NOT_PLACED = "not placed (not in the order book)"
_OUR_TAG = re.compile(r"MT[0-9a-f]{18}")
_LIVE_KITE = frozenset({"OPEN", "TRIGGER PENDING", "UPDATE"})


def is_our_tag(tag: str | None) -> bool:
    """Whether ``tag`` has the shape of our client ids (``"MT"`` + 18 hex digits)."""
    return tag is not None and _OUR_TAG.fullmatch(tag) is not None


def kite_status(status: str) -> OrderStatus:
    """Our state for one of Kite's order statuses.

    ``COMPLETE`` → FILLED, ``REJECTED``, ``CANCELLED`` (also ``CANCELLED AMO``), ``OPEN`` /
    ``TRIGGER PENDING`` / ``UPDATE`` (a modify or a partial fill of a live order) → OPEN;
    every transient status (``PUT ORDER REQ RECEIVED``, ``VALIDATION PENDING``, ``OPEN
    PENDING``, ``MODIFY ...``, ``CANCEL PENDING``, ``AMO REQ RECEIVED``) → SUBMITTED.
    """
    if status == "COMPLETE":
        return OrderStatus.FILLED
    if status.startswith("REJECTED"):
        return OrderStatus.REJECTED
    if status.startswith("CANCELLED"):
        return OrderStatus.CANCELLED
    if status in _LIVE_KITE:
        return OrderStatus.OPEN
    return OrderStatus.SUBMITTED


def update_event_id(status: OrderStatus) -> str:
    """The event id of our order's move to ``status`` (one per state: idempotent)."""
    return f"kite-{status.value.lower()}"


@dataclass(slots=True)
class Slice:
    """One Kite order carrying our tag (the whole order, or one autoslice).

    ``applied_qty`` counts the quantity of the trades already turned into fills.
    """

    order_id: str
    variety: str = "regular"
    status: str = "PUT ORDER REQ RECEIVED"
    quantity: int = 0
    filled: int = 0
    message: str = ""
    applied_qty: int = 0

    @property
    def ours(self) -> OrderStatus:
        """The slice's state in our terms."""
        return kite_status(self.status)

    @property
    def is_terminal(self) -> bool:
        """COMPLETE, REJECTED or CANCELLED."""
        return self.ours in TERMINAL_ORDER_STATUSES

    def merge(self, order: KiteOrder) -> bool:
        """Take a newer view of this order; return whether anything changed.

        A terminal slice never goes back to a live state (a poll older than an update), and
        the filled quantity never shrinks.
        """
        if self.is_terminal and kite_status(order.status) not in TERMINAL_ORDER_STATUSES:
            return False
        before = (self.status, self.filled, self.quantity)
        self.status = order.status or self.status
        self.variety = order.variety or self.variety
        self.quantity = order.quantity or self.quantity
        self.filled = max(self.filled, order.filled_quantity)
        if order.status_message:
            self.message = order.status_message
        return (self.status, self.filled, self.quantity) != before


def fold(
    qty: int, slices: Iterable[Slice], *, filled: int | None = None
) -> tuple[OrderStatus, str]:
    """Our order's state from its slices at Kite.

    Args:
        qty: the quantity we ordered.
        slices: the Kite orders carrying our tag (a refused autoslice as REJECTED, qty 0).
        filled: the filled quantity to judge by (default: the slices' own).

    Returns:
        ``(status, message)``: OPEN while any slice is live, SUBMITTED while any is still
        in a transient state; once all are terminal FILLED (fills cover ``qty``), CANCELLED
        (part filled, or nothing filled and a slice cancelled) or REJECTED (nothing
        filled and nothing cancelled); the broker's message for the last two.
    """
    parts = list(slices)
    if not parts:
        return OrderStatus.SUBMITTED, ""
    states = [s.ours for s in parts]
    if OrderStatus.OPEN in states:
        return OrderStatus.OPEN, ""
    if OrderStatus.SUBMITTED in states:
        return OrderStatus.SUBMITTED, ""
    done = sum(s.filled for s in parts) if filled is None else filled
    message = "; ".join(dict.fromkeys(s.message for s in parts if s.message))
    if done >= qty:
        return OrderStatus.FILLED, ""
    if done > 0:
        return (
            OrderStatus.CANCELLED,
            f"filled {done} of {qty}; rest not executed. {message}".strip(),
        )
    if OrderStatus.CANCELLED in states:
        return OrderStatus.CANCELLED, message or "cancelled"
    return OrderStatus.REJECTED, message or "rejected"


def fill_from_trade(
    trade: KiteTrade, client_id: str, symbol: str, side: Side, fallback_ts: datetime
) -> Fill:
    """One of our fills for one Kite trade (charges 0: the executor prices it).

    The trade id is ``"K<order_id>-<trade_id>"`` (unique across days); the time is the
    trade's fill (or exchange) timestamp, else ``fallback_ts``.
    """
    ts = trade.fill_timestamp or trade.exchange_timestamp or fallback_ts
    return Fill(
        trade_id=f"K{trade.order_id}-{trade.trade_id}",
        client_id=client_id,
        symbol=symbol,
        side=side,
        qty=trade.quantity,
        price=trade.average_price,
        ts=ts,
    )
