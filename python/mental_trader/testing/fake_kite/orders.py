"""The fake exchange's order book: validation like Kite, order states, matching, trades.

An accepted placement walks Kite's states: ``PUT ORDER REQ RECEIVED`` -> ``VALIDATION
PENDING`` -> ``OPEN PENDING`` at once (the order history lists each), then on the
matcher's next pass ``OPEN`` (or ``TRIGGER PENDING`` for SL / SL-M) and, when the market
allows, ``COMPLETE``; ``CANCELLED`` after a cancel, ``REJECTED`` after an RMS rejection
(the ``rms_reject_next`` fault). Fills are whole, at the touch of the sim market:

* MARKET: the first tick after the order's time, at the ask (buy) / bid (sell);
* LIMIT: when the touch crosses the limit; at the touch if it crossed on arrival, else at
  the limit price (a resting order trades at its price);
* SL / SL-M: triggered when the last price crosses the trigger, then as LIMIT / MARKET.

Every state change the exchange reports (OPEN, TRIGGER PENDING, UPDATE after a modify,
COMPLETE, CANCELLED, REJECTED) is handed to ``on_update`` as Kite's order payload, with
``checksum = sha256(order_id + order_timestamp + api_secret)``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from mental_trader.calendar import ist_date
from mental_trader.testing.fake_kite.envelope import KiteError, ist_text, sha256_hex
from mental_trader.testing.fake_kite.instruments import KiteInstrument, TokenRegistry
from mental_trader.testing.fake_kite.market import MarketView, Snapshot

__all__ = ["FakeOrder", "FakeTrade", "OrderBook"]

_TAG = re.compile(r"^[A-Za-z0-9]{1,20}$")
_ORDER_TYPES = ("MARKET", "LIMIT", "SL", "SL-M")
_PRODUCTS = ("CNC", "NRML", "MIS", "MTF")
_VALIDITIES = ("DAY", "IOC", "TTL")
_MAX_MODIFICATIONS = 25
_MAX_SLICES = 10
_LIVE = ("OPEN", "TRIGGER PENDING")
_TICK = 0.05
USER_ID = "FK0001"


def _bad(message: str) -> KiteError:
    return KiteError(400, "InputException", message)


@dataclass
class FakeOrder:
    """One order of the fake exchange (mutable: the book updates it)."""

    order_id: str
    variety: str
    inst: KiteInstrument
    transaction_type: str
    order_type: str
    product: str
    quantity: int
    price: float
    trigger_price: float
    disclosed_quantity: int
    validity: str
    validity_ttl: int | None
    market_protection: float
    tag: str | None
    order_ns: int
    guid: str
    status: str = "PUT ORDER REQ RECEIVED"
    status_message: str | None = None
    exchange_order_id: str | None = None
    exchange_ns: int | None = None
    update_ns: int | None = None
    filled_quantity: int = 0
    cancelled_quantity: int = 0
    average_price: float = 0.0
    modified: bool = False
    modifications: int = 0
    rms_reject: str | None = None
    marketable_checked: bool = False
    triggered: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pending_quantity(self) -> int:
        """Quantity neither filled nor cancelled (0 once the order is terminal)."""
        if self.status in ("COMPLETE", "CANCELLED", "REJECTED"):
            return 0
        return self.quantity - self.filled_quantity

    def payload(self) -> dict[str, Any]:
        """The order as ``GET /orders`` shows it."""
        inst = self.inst.instrument
        return {
            "placed_by": USER_ID,
            "order_id": self.order_id,
            "exchange_order_id": self.exchange_order_id,
            "parent_order_id": None,
            "status": self.status,
            "status_message": self.status_message,
            "status_message_raw": self.status_message,
            "order_timestamp": ist_text(self.order_ns),
            "exchange_update_timestamp": ist_text(self.update_ns),
            "exchange_timestamp": ist_text(self.exchange_ns),
            "variety": self.variety,
            "modified": self.modified,
            "exchange": inst.exchange,
            "tradingsymbol": inst.tradingsymbol,
            "instrument_token": self.inst.instrument_token,
            "order_type": self.order_type,
            "transaction_type": self.transaction_type,
            "validity": self.validity,
            "validity_ttl": self.validity_ttl,
            "product": self.product,
            "quantity": self.quantity,
            "disclosed_quantity": self.disclosed_quantity,
            "price": self.price,
            "trigger_price": self.trigger_price,
            "average_price": self.average_price,
            "filled_quantity": self.filled_quantity,
            "pending_quantity": self.pending_quantity,
            "cancelled_quantity": self.cancelled_quantity,
            "market_protection": self.market_protection,
            "meta": {},
            "tag": self.tag,
            "tags": [self.tag] if self.tag else [],
            "guid": self.guid,
        }


@dataclass(frozen=True, slots=True)
class FakeTrade:
    """One fill."""

    trade_id: str
    order: FakeOrder
    price: float
    quantity: int
    fill_ns: int

    def payload(self) -> dict[str, Any]:
        """The trade as ``GET /trades`` shows it."""
        inst = self.order.inst.instrument
        stamp = ist_text(self.fill_ns)
        return {
            "trade_id": self.trade_id,
            "order_id": self.order.order_id,
            "exchange": inst.exchange,
            "tradingsymbol": inst.tradingsymbol,
            "instrument_token": self.order.inst.instrument_token,
            "product": self.order.product,
            "average_price": self.price,
            "quantity": self.quantity,
            "exchange_order_id": self.order.exchange_order_id,
            "transaction_type": self.order.transaction_type,
            "fill_timestamp": stamp,
            "order_timestamp": (ist_text(self.order.order_ns) or "")[11:],
            "exchange_timestamp": stamp,
        }


def _number(form: Mapping[str, str], name: str, default: float = 0.0) -> float:
    text = form.get(name)
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        raise _bad(f"Invalid `{name}`.") from None


def _integer(form: Mapping[str, str], name: str, default: int = 0) -> int:
    value = _number(form, name, float(default))
    if not value.is_integer():
        raise _bad(f"Invalid `{name}`.")
    return int(value)


def _on_tick(price: float) -> bool:
    return abs(price / _TICK - round(price / _TICK)) < 1e-6


class OrderBook:
    """Orders, trades and positions of the fake account.

    Args:
        registry: the instrument master (orders name ``exchange`` + ``tradingsymbol``).
        market: quotes for matching.
        now_ns: the sim clock (order and fill times).
        api_secret: for the order-update checksum.
        on_update: called with each order update payload (the WebSocket hub).
        is_open: whether the exchange is in session at a time (ns UTC).
        cash: the account's opening cash (margins).
    """

    def __init__(
        self,
        registry: TokenRegistry,
        market: MarketView,
        now_ns: Callable[[], int],
        api_secret: str,
        on_update: Callable[[dict[str, Any]], None],
        is_open: Callable[[int], bool],
        cash: float = 1_000_000.0,
    ) -> None:
        self.registry = registry
        self.market = market
        self.now_ns = now_ns
        self._secret = api_secret
        self._on_update = on_update
        self._is_open = is_open
        self.cash = cash
        self.orders: dict[str, FakeOrder] = {}
        self.trades: list[FakeTrade] = []
        self._seq = 0
        self._trade_seq = 0

    # ----------------------------------------------------------------- placement

    def _next_id(self, day: date) -> str:
        self._seq += 1
        return f"{day:%y%m%d}{self._seq:09d}"

    def place(
        self, variety: str, form: Mapping[str, str], *, rms_reject: str | None = None
    ) -> dict[str, Any]:
        """Validate and accept an order; return Kite's response ``data``.

        ``rms_reject``: a status message: the order is accepted, then REJECTED by the RMS on
        the matcher's next pass with that message.

        Raises:
            KiteError: InputException for anything Kite refuses up front.
        """
        if variety != "regular":
            raise _bad(f"Order variety `{variety}` is not supported by the fake Kite server.")
        inst = self.registry.by_key(form.get("exchange", ""), form.get("tradingsymbol", ""))
        if inst is None:
            raise _bad("Invalid `tradingsymbol` or `exchange`: instrument not found.")
        if inst.is_index:
            raise _bad("Indices are not tradable.")
        side = form.get("transaction_type", "")
        order_type = form.get("order_type", "")
        product = form.get("product", "")
        validity = form.get("validity", "DAY") or "DAY"
        if side not in ("BUY", "SELL"):
            raise _bad("Invalid `transaction_type`.")
        if order_type not in _ORDER_TYPES:
            raise _bad("Invalid `order_type`.")
        if product not in _PRODUCTS:
            raise _bad("Invalid `product`.")
        if validity not in _VALIDITIES:
            raise _bad("Invalid `validity`.")
        quantity = _integer(form, "quantity")
        lot = max(inst.instrument.lot_size, 1)
        if quantity <= 0:
            raise _bad("Invalid `quantity`.")
        if quantity % lot:
            raise _bad(f"Quantity should be a multiple of the lot size {lot}.")
        price = _number(form, "price")
        trigger = _number(form, "trigger_price")
        if order_type in ("LIMIT", "SL") and (price <= 0 or not _on_tick(price)):
            raise _bad("Invalid `price`: give a positive price on the tick size.")
        if order_type in ("SL", "SL-M") and (trigger <= 0 or not _on_tick(trigger)):
            raise _bad("Invalid `trigger_price`.")
        protection = _number(form, "market_protection")
        if order_type in ("MARKET", "SL-M") and protection == 0:
            raise _bad("Market orders without market protection are not allowed via API")
        if protection != -1 and not 0 <= protection <= 100:
            raise _bad("Invalid `market_protection`.")
        tag = form.get("tag") or None
        if tag is not None and not _TAG.match(tag):
            raise _bad("Invalid `tag`: at most 20 alphanumeric characters.")
        ttl = _integer(form, "validity_ttl") if validity == "TTL" else None
        now = self.now_ns()
        if not self._is_open(now):
            raise _bad("Markets are closed right now. Use GTT for placing long standing orders.")
        freeze = inst.instrument.freeze_qty
        autoslice = form.get("autoslice", "").lower() in ("true", "1")
        sizes = [quantity]
        if freeze is not None and quantity > freeze:
            if not autoslice:
                raise _bad(
                    f"Quantity exceeds the freeze limit of {freeze}. Split the order or "
                    "use autoslice."
                )
            whole = freeze - freeze % lot
            sizes = [whole] * (quantity // whole) + ([quantity % whole] if quantity % whole else [])
            if len(sizes) > _MAX_SLICES:
                raise _bad(f"Autoslice supports at most {_MAX_SLICES} slices.")
        made: list[FakeOrder] = []
        for size in sizes:
            order = FakeOrder(
                order_id=self._next_id(ist_date(now)),
                variety=variety,
                inst=inst,
                transaction_type=side,
                order_type=order_type,
                product=product,
                quantity=size,
                price=price if order_type in ("LIMIT", "SL") else 0.0,
                trigger_price=trigger if order_type in ("SL", "SL-M") else 0.0,
                disclosed_quantity=_integer(form, "disclosed_quantity"),
                validity=validity,
                validity_ttl=ttl,
                market_protection=protection,
                tag=tag,
                order_ns=now,
                guid=uuid.uuid4().hex,
                rms_reject=rms_reject,
            )
            self._record(order)
            order.status = "VALIDATION PENDING"
            self._record(order)
            if rms_reject is None:
                order.status = "OPEN PENDING"
                self._record(order)
            self.orders[order.order_id] = order
            made.append(order)
        if len(made) == 1 and not autoslice:
            return {"order_id": made[0].order_id}
        return {
            "order_id": made[0].order_id,
            "children": [{"order_id": o.order_id} for o in made[1:]],
        }

    def _record(self, order: FakeOrder) -> None:
        order.history.append(order.payload())

    def _publish(self, order: FakeOrder, status: str | None = None) -> None:
        payload = order.payload()
        if status is not None:
            payload["status"] = status
        payload["checksum"] = sha256_hex(
            order.order_id, payload["order_timestamp"] or "", self._secret
        )
        payload["user_id"] = USER_ID
        payload["unfilled_quantity"] = order.pending_quantity
        payload["app_id"] = 0
        self._on_update(payload)

    def get(self, order_id: str) -> FakeOrder:
        """The order ``order_id``.

        Raises:
            KiteError: 404-like InputException when unknown (Kite answers 400).
        """
        order = self.orders.get(order_id)
        if order is None:
            raise _bad(f"Couldn't find order {order_id}.")
        return order

    # ----------------------------------------------------------------- modify / cancel

    def modify(self, variety: str, order_id: str, form: Mapping[str, str]) -> dict[str, Any]:
        """Modify an open order (price, quantity, trigger, type, validity)."""
        order = self.get(order_id)
        if order.variety != variety:
            raise _bad("Invalid `variety` for this order.")
        if order.status not in _LIVE:
            raise _bad(f"Order cannot be modified as it is {order.status.lower()}.")
        if order.modifications >= _MAX_MODIFICATIONS:
            raise _bad("Maximum allowed order modifications exceeded.")
        order_type = form.get("order_type") or order.order_type
        if order_type not in _ORDER_TYPES:
            raise _bad("Invalid `order_type`.")
        quantity = _integer(form, "quantity", order.quantity)
        lot = max(order.inst.instrument.lot_size, 1)
        if quantity <= 0 or quantity % lot:
            raise _bad("Invalid `quantity`.")
        price = _number(form, "price", order.price)
        trigger = _number(form, "trigger_price", order.trigger_price)
        if order_type in ("LIMIT", "SL") and (price <= 0 or not _on_tick(price)):
            raise _bad("Invalid `price`.")
        protection = _number(form, "market_protection", order.market_protection)
        if order_type in ("MARKET", "SL-M") and protection == 0:
            raise _bad("Market orders without market protection are not allowed via API")
        prior = order.status
        order.order_type, order.quantity, order.market_protection = order_type, quantity, protection
        order.price = price if order_type in ("LIMIT", "SL") else 0.0
        order.trigger_price = trigger if order_type in ("SL", "SL-M") else 0.0
        order.validity = form.get("validity") or order.validity
        order.modified = True
        order.modifications += 1
        order.marketable_checked = False
        for status in ("MODIFY VALIDATION PENDING", "MODIFY PENDING", prior):
            order.status = status
            self._record(order)
        order.update_ns = self.now_ns()
        self._publish(order, "UPDATE")
        return {"order_id": order.order_id}

    def cancel(self, variety: str, order_id: str) -> dict[str, Any]:
        """Cancel an open order."""
        order = self.get(order_id)
        if order.variety != variety:
            raise _bad("Invalid `variety` for this order.")
        if order.status not in (*_LIVE, "OPEN PENDING"):
            raise _bad(f"Order cannot be cancelled as it is {order.status.lower()}.")
        order.status = "CANCEL PENDING"
        self._record(order)
        order.cancelled_quantity = order.quantity - order.filled_quantity
        order.status = "CANCELLED"
        order.status_message = None
        order.update_ns = self.now_ns()
        self._record(order)
        self._publish(order)
        return {"order_id": order.order_id}

    # ----------------------------------------------------------------- matching

    def match(self) -> None:
        """One pass of the exchange: open accepted orders, reject RMS-failed ones, fill."""
        now = self.now_ns()
        for order in list(self.orders.values()):
            if order.status == "VALIDATION PENDING" and order.rms_reject is not None:
                order.status = "REJECTED"
                order.status_message = order.rms_reject
                order.update_ns = now
                self._record(order)
                self._publish(order)
            elif order.status == "OPEN PENDING":
                order.status = "TRIGGER PENDING" if order.order_type in ("SL", "SL-M") else "OPEN"
                order.exchange_order_id = f"11{order.order_id[-13:].zfill(13)}"
                order.exchange_ns = order.update_ns = now
                self._record(order)
                self._publish(order)
            if order.status in _LIVE:
                snap = self.market.snapshot(order.inst.symbol, now)
                if snap is not None and snap.last_trade_ns > order.order_ns:
                    self._try_fill(order, snap, now)

    def _try_fill(self, order: FakeOrder, snap: Snapshot, now: int) -> None:
        buy = order.transaction_type == "BUY"
        if order.status == "TRIGGER PENDING":
            hit = (
                snap.last_price >= order.trigger_price
                if buy
                else snap.last_price <= order.trigger_price
            )
            if not hit:
                return
            order.triggered = True
            order.status = "OPEN"
            order.update_ns = now
            self._record(order)
            self._publish(order)
        touch = snap.ask if buy else snap.bid
        if touch <= 0:
            return
        market = order.order_type in ("MARKET", "SL-M")
        if market:
            price = touch
        else:
            crossed = touch <= order.price if buy else touch >= order.price
            first = not order.marketable_checked
            order.marketable_checked = True
            if not crossed:
                return
            price = touch if first else order.price
        self._fill(order, price, now)

    def _fill(self, order: FakeOrder, price: float, now: int) -> None:
        self._trade_seq += 1
        qty = order.quantity - order.filled_quantity
        self.trades.append(FakeTrade(f"{10_000_000 + self._trade_seq}", order, price, qty, now))
        order.filled_quantity = order.quantity
        order.average_price = price
        order.status = "COMPLETE"
        order.update_ns = now
        self._record(order)
        self._publish(order)

    def by_tag(self, tag: str) -> list[FakeOrder]:
        """The orders carrying ``tag``, in placement order."""
        return [o for o in self.orders.values() if o.tag == tag]
