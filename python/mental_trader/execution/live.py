"""The live order gateway for Zerodha Kite Connect: place, cancel, order updates and fills.

:class:`KiteGateway` implements :class:`~mental_trader.execution.orders.OrderGateway` over
:class:`~mental_trader.brokers.kite.rest.KiteRest`. The rules it keeps (MARKET_FACTS §6):

* **The tag is the idempotency key.** Every order carries ``tag = intent.client_id``. A
  placement whose outcome is unknown (timeout, dropped connection, 5xx, "Order request
  timed out. Please check the order book") is NEVER sent again: the tag is looked up in the
  order book a few times; found, the submission is accepted with the broker's id; not found
  yet, :meth:`submit` raises :class:`~mental_trader.errors.BrokerError` (the executor marks
  the order UNKNOWN) and :meth:`run` keeps looking. An order that never shows up within
  ``unresolved_deadline_s`` is reported REJECTED "not placed (not in the order book)"; if it
  appears after all, it is cancelled and logged as an error.
* **One order may be several at Kite.** Above the freeze quantity Kite autoslices: every
  slice is an order with our tag. The slices' states are folded into one state of ours
  (:func:`~mental_trader.execution.kite_state.fold`): live while any slice lives, FILLED
  when the fills cover the quantity, else CANCELLED (something filled) or REJECTED.
* **Updates come from the WebSocket, polling is the fallback.** The WebSocket client hands
  each order message to :meth:`on_order_message` (cheap, never blocks: it queues the payload
  for :meth:`run`), and calls :meth:`resync` after a reconnect. :meth:`run` applies the
  queue and, while orders are working, reads the order book every ``poll_interval_s`` (Kite
  does not replay updates sent while the socket was down).
* **Fills come from trades, once.** Kite's order updates carry ``filled_quantity`` but no
  trade ids, so when an order's filled quantity grows its trades are fetched and each trade
  id not seen yet becomes one :class:`~mental_trader.models.Fill` (trade id
  ``"K<order_id>-<trade_id>"``: Kite order ids start with the date, so the key is unique
  across days). Charges are left at 0: the executor prices live fills from its table.
* **Idempotent updates.** A state of ours is reported once per order (event id
  ``"kite-<status>"``, which the store dedupes as well), whether the WebSocket or a poll saw
  it first, and never backwards (:func:`~mental_trader.models.can_transition`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mental_trader.brokers.kite.errors import KiteError, KiteOrderUnknownError
from mental_trader.brokers.kite.payloads import KiteOrder
from mental_trader.errors import BrokerError, InvalidInputError
from mental_trader.execution.kite_state import (
    NOT_PLACED,
    Slice,
    fill_from_trade,
    fold,
    kite_status,
    update_event_id,
)
from mental_trader.execution.orders import EventListener, GatewayEvent, SubmitResult, instrument_for
from mental_trader.models import (
    TERMINAL_ORDER_STATUSES,
    Instrument,
    OrderIntent,
    OrderStatus,
    OrderUpdate,
    can_transition,
)

if TYPE_CHECKING:
    from mental_trader.brokers.kite.rest import KiteRest
    from mental_trader.risk import Clock

__all__ = ["KiteGateway"]

log = logging.getLogger(__name__)

_GIVEN_UP_WATCH_S = 600.0  # how long a tag declared not placed is still watched for


@dataclass(slots=True)
class _Tracked:
    """An order this gateway works: its intent, its slices at Kite, what was reported."""

    intent: OrderIntent
    status: OrderStatus = OrderStatus.INTENT
    slices: dict[str, Slice] = field(default_factory=dict)
    trades: set[str] = field(default_factory=set)
    unresolved_since: float | None = None  # loop time the tag went missing
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def applied(self) -> int:
        return sum(s.applied_qty for s in self.slices.values())


class KiteGateway:
    """Orders through Kite Connect (see the module docstring).

    Args:
        rest: the Kite REST client (its rate limiters pace every call made here).
        instruments: exchange, tradingsymbol and freeze quantity by symbol (``"NSE:INFY"``);
            a symbol missing here is split on ``:`` (exchange, tradingsymbol).
        clock: stamps order updates.
        variety: Kite order variety (``"regular"``).
        validity: order validity (``"DAY"``).
        market_protection: for MARKET/SL-M orders; None uses the REST client's default.
        api_secret: verifies order-update checksums; None skips the check.
        poll_interval_s: order book polling period while orders are working.
        lookup_attempts: order-book lookups of a tag after an ambiguous placement, before
            :meth:`submit` gives up and raises.
        lookup_interval_s: pause between those lookups.
        unresolved_deadline_s: how long :meth:`run` keeps looking for a tag that was not in
            the order book before reporting it REJECTED (not placed).

    Raises:
        InvalidInputError: a non-positive interval or attempt count.
    """

    name = "kite"

    def __init__(
        self,
        rest: KiteRest,
        *,
        instruments: Mapping[str, Instrument],
        clock: Clock,
        variety: str = "regular",
        validity: str = "DAY",
        market_protection: float | None = None,
        api_secret: str | None = None,
        poll_interval_s: float = 2.0,
        lookup_attempts: int = 3,
        lookup_interval_s: float = 0.5,
        unresolved_deadline_s: float = 60.0,
    ) -> None:
        if not (poll_interval_s > 0 and lookup_interval_s >= 0 and unresolved_deadline_s > 0):
            raise InvalidInputError("poll/lookup intervals and the deadline must be positive")
        if lookup_attempts < 1:
            raise InvalidInputError(f"lookup_attempts must be >= 1, got {lookup_attempts}")
        self.rest = rest
        self.instruments = instruments
        self.clock = clock
        self.variety, self.validity = variety, validity
        self.market_protection = market_protection
        self.poll_interval_s = poll_interval_s
        self.lookup_attempts = lookup_attempts
        self.lookup_interval_s = lookup_interval_s
        self.unresolved_deadline_s = unresolved_deadline_s
        self._secret = api_secret or None
        self._listener: EventListener | None = None
        self._orders: dict[str, _Tracked] = {}  # client id (tag) -> order being worked
        self._given_up: dict[str, float] = {}  # tag declared not placed -> loop time
        self._inbox: deque[KiteOrder] = deque()
        self._wake = asyncio.Event()
        self._resync = False

    # ------------------------------------------------------------------ reading

    def set_listener(self, listener: EventListener) -> None:
        """Deliver later order updates and fills to ``listener``."""
        self._listener = listener

    def working(self) -> list[str]:
        """Client ids of the orders being worked (sent, or their outcome still unknown)."""
        return list(self._orders)

    def unresolved(self) -> list[str]:
        """Client ids whose placement outcome is unknown and not yet in the order book."""
        return [cid for cid, t in self._orders.items() if t.unresolved_since is not None]

    # ------------------------------------------------------------------ submit / cancel

    async def submit(self, intent: OrderIntent) -> SubmitResult:
        """Place an order tagged with its client id (the intent row is already stored).

        Returns:
            accepted with SUBMITTED (or OPEN) and Kite's order id; or REJECTED with Kite's
            message for a clear refusal (bad input, margin, holdings, rate limit, session).

        Raises:
            BrokerError: the outcome is unknown and the tag was not in the order book yet
                (the order is kept and looked up by :meth:`run`; never re-sent).
        """
        cid = intent.client_id
        if cid in self._orders:  # sent already: never a second placement with one tag
            raise BrokerError(f"order {cid} was already submitted")
        tracked = self._orders[cid] = _Tracked(intent)
        inst = instrument_for(self.instruments, intent.symbol)
        try:
            placed = await self.rest.place_order(
                tag=cid,
                exchange=inst.exchange,
                tradingsymbol=inst.tradingsymbol,
                transaction_type=intent.side.value,
                order_type=intent.order_type,
                quantity=intent.qty,
                product=intent.product,
                variety=self.variety,
                price=intent.price if intent.order_type in ("LIMIT", "SL") else None,
                trigger_price=intent.trigger_price,
                validity=self.validity,
                market_protection=self.market_protection,
                freeze_qty=inst.freeze_qty,
            )
        except KiteOrderUnknownError as exc:
            return await self._resolve(tracked, exc)
        except (KiteError, InvalidInputError) as exc:  # refused before or by Kite: not placed
            self._orders.pop(cid, None)
            message = exc.message if isinstance(exc, KiteError) else str(exc)
            log.warning("kite: order %s %s rejected: %s", cid, intent.symbol, message)
            return SubmitResult(False, OrderStatus.REJECTED, None, message)
        except asyncio.CancelledError:
            tracked.unresolved_since = asyncio.get_running_loop().time()
            raise
        except BrokerError as exc:  # e.g. the client is closed: nothing was sent
            self._orders.pop(cid, None)
            return SubmitResult(False, OrderStatus.REJECTED, None, str(exc))
        for slice_id in (placed.order_id, *(c.order_id for c in placed.children if c.order_id)):
            tracked.slices.setdefault(slice_id, Slice(slice_id, self.variety))
        for n, child in enumerate(c for c in placed.children if not c.order_id):
            refused = f"{child.error_type or 'error'}: {child.message or 'slice refused'}"
            tracked.slices[f"refused-{n}"] = Slice(
                f"refused-{n}", status="REJECTED", message=refused
            )
        if tracked.status is OrderStatus.INTENT:
            tracked.status = OrderStatus.SUBMITTED
        self._wake.set()  # a WS update may have been queued before the ids were known
        return SubmitResult(True, OrderStatus.SUBMITTED, placed.order_id)

    async def _resolve(self, tracked: _Tracked, exc: KiteOrderUnknownError) -> SubmitResult:
        """An ambiguous placement: find the tag in the order book, never re-send."""
        cid = tracked.intent.client_id
        log.warning("kite: placement of %s ambiguous (%s): looking the tag up", cid, exc)
        for attempt in range(self.lookup_attempts):
            if attempt:
                await asyncio.sleep(self.lookup_interval_s)
            try:
                found = await self.rest.orders_by_tag(cid)
            except KiteError as read_error:
                log.warning("kite: order book lookup of %s failed: %s", cid, read_error)
                continue
            if found:
                await self._sync(tracked, found)
                log.info("kite: ambiguous placement %s found as %s", cid, found[0].order_id)
                status = (
                    OrderStatus.OPEN
                    if tracked.status is OrderStatus.OPEN
                    else OrderStatus.SUBMITTED
                )
                return SubmitResult(
                    True, status, found[0].order_id, "found by tag after: " + exc.message
                )
        tracked.unresolved_since = asyncio.get_running_loop().time()
        self._wake.set()
        raise BrokerError(f"order {cid}: placement outcome unknown, not in the order book yet")

    async def cancel(self, client_id: str) -> None:
        """Cancel a working order (every live slice); the outcome arrives as an update.

        A client id not worked here (finished, or unknown) is a no-op. Without a broker
        order id yet, the tag is looked up first.

        Raises:
            BrokerError: the tag is not in the order book, or Kite refused or lost a cancel
                (the caller may try again; the order's real state arrives by update/poll).
        """
        tracked = self._orders.get(client_id)
        if tracked is None:
            log.info("kite: cancel of %s: not a working order here", client_id)
            return
        if not tracked.slices:
            found = await self.rest.orders_by_tag(client_id)
            if not found:
                raise BrokerError(f"cannot cancel {client_id}: not in the order book (yet)")
            await self._sync(tracked, found)
        problems: list[str] = []
        for piece in list(tracked.slices.values()):
            if piece.is_terminal:
                continue
            try:
                await self.rest.cancel_order(piece.order_id, variety=piece.variety)
            except KiteError as exc:
                problems.append(f"{piece.order_id}: {exc.message}")
        self.resync()  # learn the outcome now even if the socket is down
        if problems:
            raise BrokerError(f"cancel of {client_id} failed: {'; '.join(problems)}")

    # ------------------------------------------------------------------ updates

    def on_order_message(self, data: Mapping[str, Any]) -> None:
        """One WebSocket order update (``{"type": "order", "data": data}``); non-blocking.

        Orders whose tag is not one of ours are ignored (other platforms' orders). With an
        api secret, a payload whose ``checksum`` is not ``sha256(order_id + order_timestamp
        + api_secret)`` is dropped with a warning.
        """
        tag = data.get("tag")
        if not isinstance(tag, str) or (tag not in self._orders and tag not in self._given_up):
            log.debug("kite: order update for another tag (%r) ignored", tag)
            return
        if self._secret is not None:
            text = f"{data.get('order_id', '')}{data.get('order_timestamp') or ''}{self._secret}"
            expected = hashlib.sha256(text.encode()).hexdigest()
            if not hmac.compare_digest(expected, str(data.get("checksum", ""))):
                log.warning("kite: order update for %s with a bad checksum dropped", tag)
                return
        try:
            order = KiteOrder.from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("kite: unreadable order update for %s: %s", tag, exc)
            return
        self._inbox.append(order)
        self._wake.set()

    def resync(self) -> None:
        """Re-read the order book at once (call after a WebSocket reconnect); non-blocking."""
        self._resync = True
        self._wake.set()

    async def on_reconnect(self) -> None:
        """The WebSocket client's reconnect hook: :meth:`resync` (updates were lost)."""
        self.resync()

    async def run(self) -> None:
        """Apply queued updates; poll the order book while orders are working (a task)."""
        loop = asyncio.get_running_loop()
        next_poll = loop.time() + self.poll_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_poll - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            await self.drain()
            if self._resync or loop.time() >= next_poll:
                self._resync = False
                next_poll = loop.time() + self.poll_interval_s
                if self._orders or self._given_up:
                    try:
                        await self.poll()
                    except KiteError as exc:
                        log.warning("kite: order book poll failed: %s", exc)

    async def drain(self) -> None:
        """Apply every queued WebSocket update now."""
        while self._inbox:
            order = self._inbox.popleft()
            tracked = self._orders.get(order.tag or "")
            try:
                if tracked is not None:
                    await self._sync(tracked, [order])
                elif order.tag in self._given_up:
                    await self._late(order.tag, [order])
            except KiteError as exc:  # a trades read failed: the next poll retries
                log.warning("kite: applying update of %s failed: %s", order.order_id, exc)

    async def poll(self) -> None:
        """One pass over the order book: apply what the WebSocket missed, resolve tags.

        Raises:
            KiteError: the order book could not be read.
        """
        book = await self.rest.orders()
        by_tag: dict[str, list[KiteOrder]] = {}
        for order in book:
            if order.tag in self._orders or order.tag in self._given_up:
                by_tag.setdefault(order.tag, []).append(order)
        now = asyncio.get_running_loop().time()
        for cid, tracked in list(self._orders.items()):
            found = by_tag.get(cid)
            if found:
                tracked.unresolved_since = None
                try:
                    await self._sync(tracked, found)
                except KiteError as exc:
                    log.warning("kite: applying %s failed: %s", cid, exc)
            elif (
                tracked.unresolved_since is not None
                and now - tracked.unresolved_since >= self.unresolved_deadline_s
            ):
                self._orders.pop(cid, None)
                self._given_up[cid] = now
                log.warning("kite: order %s never reached the order book: rejected", cid)
                self._report(tracked, OrderStatus.REJECTED, NOT_PLACED)
        for tag, since in list(self._given_up.items()):
            if tag in by_tag:
                await self._late(tag, by_tag[tag])
            elif now - since > _GIVEN_UP_WATCH_S:
                del self._given_up[tag]

    async def _late(self, tag: str, orders: Sequence[KiteOrder]) -> None:
        """A tag declared not placed showed up after all: cancel what still lives."""
        for order in orders:
            if kite_status(order.status) in TERMINAL_ORDER_STATUSES:
                if order.filled_quantity:
                    log.error(
                        "kite: order %s (%s) declared not placed has FILLED", tag, order.order_id
                    )
                continue
            log.error(
                "kite: order %s declared not placed appeared as %s: cancelling", tag, order.order_id
            )
            try:
                await self.rest.cancel_order(order.order_id, variety=order.variety or self.variety)
            except KiteError as exc:
                log.error("kite: cancel of late order %s failed: %s", order.order_id, exc)

    async def _sync(self, tracked: _Tracked, orders: Sequence[KiteOrder]) -> None:
        """Fold newer views of the order's slices in; report new states and fills."""
        async with tracked.lock:
            changed = False
            for order in orders:
                piece = tracked.slices.get(order.order_id)
                if piece is None:
                    piece = tracked.slices[order.order_id] = Slice(order.order_id)
                    changed = True
                changed = piece.merge(order) or changed
            tracked.unresolved_since = None
            status, message = fold(tracked.intent.qty, tracked.slices.values())
            if status in (OrderStatus.SUBMITTED, OrderStatus.OPEN):
                self._report(tracked, status, message, orders[0].order_id if orders else None)
            if any(s.filled > s.applied_qty for s in tracked.slices.values()):
                await self._fetch_fills(tracked)
            if status in TERMINAL_ORDER_STATUSES and tracked.applied >= sum(
                s.filled for s in tracked.slices.values()
            ):
                status, message = fold(
                    tracked.intent.qty, tracked.slices.values(), filled=tracked.applied
                )
                if status is not OrderStatus.FILLED:  # FILLED is reported by the fills
                    self._report(tracked, status, message)
                tracked.status = status
                self._orders.pop(tracked.intent.client_id, None)
            elif changed:
                log.debug("kite: %s now %s", tracked.intent.client_id, status)

    async def _fetch_fills(self, tracked: _Tracked) -> None:
        intent = tracked.intent
        for piece in tracked.slices.values():
            if piece.filled <= piece.applied_qty:
                continue
            for trade in await self.rest.order_trades(piece.order_id):
                key = f"{trade.order_id}-{trade.trade_id}"
                if key in tracked.trades or trade.quantity <= 0:
                    continue
                tracked.trades.add(key)
                piece.applied_qty += trade.quantity
                fill = fill_from_trade(
                    trade, intent.client_id, intent.symbol, intent.side, self.clock.now()
                )
                self._emit(fill)

    def _report(
        self,
        tracked: _Tracked,
        status: OrderStatus,
        message: str = "",
        broker_order_id: str | None = None,
    ) -> None:
        """Report our order's move to ``status`` once, and only forwards."""
        if status == tracked.status or not can_transition(tracked.status, status):
            return
        tracked.status = status
        if broker_order_id is None and tracked.slices:
            broker_order_id = next(iter(tracked.slices))
        self._emit(
            OrderUpdate(
                client_id=tracked.intent.client_id,
                event_id=update_event_id(status),
                status=status,
                ts=self.clock.now(),
                broker_order_id=broker_order_id,
                message=message,
            )
        )

    def _emit(self, event: GatewayEvent) -> None:
        if self._listener is None:
            log.warning("kite: no listener for %s", event)
            return
        self._listener(event)
