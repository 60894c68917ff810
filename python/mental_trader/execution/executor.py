"""The executor: turns entries and exits into orders, fills into positions and round trips.

Rules it keeps (DESIGN section 6):

* an order's intent row is written (awaited) BEFORE submission, with a fresh client id
  that is also the broker tag; if that write fails nothing is sent (the entry or exit is
  refused, logged and notified);
* every place and cancel passes the risk manager's throttle; entries pass its checks,
  exits never need to;
* at most one working exit per symbol, always a MARKET order for the whole position;
* a flatten retries a refused exit with a backoff (1 s doubling to 60 s), alerting on the
  first refusal only: a broker that refuses every order (an expired session) gets neither
  an order nor an alert every second;
* a fill is applied once: the store's ``apply_fill`` returns False on a repeat, and the
  executor then ignores it. A filled entry opens a :class:`~mental_trader.models.Trade`
  (id = the entry's client id); a filled exit closes it with P&L net of both legs'
  charges, and the net P&L goes to the risk manager;
* positions live in memory (the truth for trading) and are mirrored to the store; writes
  after the fact ride out an outage in a :class:`~mental_trader.execution.book.WriteSpool`.

Driving it: give each tick to :meth:`Executor.on_tick` (cheap: one dict lookup for a
symbol without orders or positions), run :meth:`Executor.run` as a task (it applies the
gateway's fills and updates and carries out flatten requests), and call
:meth:`Executor.enter` / :meth:`Executor.exit` from strategy signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from mental_trader.errors import BrokerError
from mental_trader.execution.book import Ledger, SymbolBook
from mental_trader.execution.charges import ChargesTable
from mental_trader.execution.orders import (
    GatewayEvent,
    OrderGateway,
    OrderRole,
    TickSink,
    WorkingOrder,
    client_id_for,
    new_client_id,
    opposite,
    round_to_tick,
)
from mental_trader.models import (
    Fill,
    Instrument,
    OrderIntent,
    OrderStatus,
    OrderUpdate,
    Position,
    Side,
)

if TYPE_CHECKING:
    from mental_trader.risk import Clock, RiskManager
    from mental_trader.storage.base import Store

__all__ = ["Executor", "Notify", "OrderResult"]

log = logging.getLogger(__name__)

#: ``notify(kind, message)``: kind is ``"trade"`` or ``"alert"``. Must not block.
Notify = Callable[[str, str], object]
_RETRY_S = 1.0  # run() pumps at least this often: retries stuck flattens and writes
_EXIT_BACKOFF_MAX_S = 60.0  # the longest wait before a flatten re-sends a refused exit
_LIVE = (OrderStatus.INTENT, OrderStatus.SUBMITTED, OrderStatus.UNKNOWN, OrderStatus.OPEN)


@dataclass(frozen=True, slots=True)
class OrderResult:
    """What :meth:`Executor.enter` / :meth:`Executor.exit` did.

    Attributes:
        ok: an order was sent (or, for an exit of an unfilled entry, a cancel).
        reason: why not, or what happened instead.
        client_id: the order's client id, when one was made.
        qty: the order's quantity.
    """

    ok: bool
    reason: str = ""
    client_id: str | None = None
    qty: int = 0


class Executor:
    """Order execution over one gateway (paper or live). See the module docstring.

    Args:
        store: the store (intent rows, updates, fills, trades).
        gateway: where orders go; its listener is set to this executor.
        risk: the risk manager (checks, throttle, P&L); PRODUCT comes from its settings.
        charges: prices fills that arrive without charges (a live broker's).
        clock: stamps intents and updates.
        notify: optional ``notify(kind, message)`` for trades and alerts.
        instruments: tick size, lot size and type by symbol (default NSE equity).
    """

    def __init__(
        self,
        store: Store,
        gateway: OrderGateway,
        risk: RiskManager,
        charges: ChargesTable,
        clock: Clock,
        notify: Notify | None = None,
        *,
        instruments: MutableMapping[str, Instrument] | None = None,
    ) -> None:
        self.store, self.gateway, self.risk = store, gateway, risk
        self.charges, self.clock, self.notify = charges, clock, notify
        self.product: str = risk.settings.product
        self.ledger = Ledger(
            store,
            risk,
            charges,
            # the caller's map itself (shared with the gateway), not a copy
            instruments=instruments if instruments is not None else {},
            product=self.product,
            notify=self._notify,
        )
        self._books = self.ledger.books  # symbol -> what is held and working there
        self._orders: dict[str, WorkingOrder] = {}  # sent and not finished
        self._events: deque[GatewayEvent] = deque()
        self._wake = asyncio.Event()
        self._pump_lock = asyncio.Lock()
        self._flatten_reason: str | None = None
        self._tick_sink = gateway.on_tick if isinstance(gateway, TickSink) else None
        gateway.set_listener(self._on_event)

    # -- reading --------------------------------------------------------------------

    @property
    def is_flat(self) -> bool:
        """No position and no working order."""
        return not self._books

    def positions(self) -> list[Position]:
        """Open positions (signed qty; ``charges`` = entry charges), by symbol."""
        return self.ledger.positions()

    def holds(self, symbol: str) -> bool:
        """Whether ``symbol`` has a position or a working order."""
        return symbol in self._books

    def entry_working(self, symbol: str) -> bool:
        """Whether an entry order of ``symbol`` is working (sent, or its outcome unknown)."""
        book = self._books.get(symbol)
        return book is not None and book.entry is not None

    def exit_working(self, symbol: str) -> bool:
        """Whether an exit order of ``symbol`` is working (sent, or its outcome unknown)."""
        book = self._books.get(symbol)
        return book is not None and book.exit is not None

    # -- the tick path ------------------------------------------------------------------

    def on_tick(self, symbol: str, ts_ns: int, price: float) -> None:
        """One trade print. Works paper orders and marks positions; else one dict lookup."""
        book = self._books.get(symbol)
        if book is None:
            return
        if self._tick_sink is not None and book.has_working:
            self._tick_sink(symbol, ts_ns, price)
        if book.position is not None:
            book.position.last_price = price
            if self.ledger.mark():  # the daily loss limit just HALTED: flatten soon
                self._wake.set()

    def on_ticks(
        self,
        names: Sequence[str],
        symbols: Sequence[int],
        ts_ns: Sequence[int] | npt.NDArray[np.int64],
        prices: Sequence[float],
    ) -> None:
        """The ticks of one feed frame (``names[symbols[i]]`` is tick i's symbol).

        Like :meth:`on_tick` per tick, but positions are marked (the daily-loss check)
        once per frame: marking sums every open position, too much to do per tick.
        """
        books = self._books
        if not books:
            return
        sink, moved = self._tick_sink, False
        for i, sid in enumerate(symbols):
            symbol = names[sid]
            book = books.get(symbol)
            if book is None:
                continue
            if sink is not None and book.has_working:
                sink(symbol, int(ts_ns[i]), prices[i])
            if book.position is not None:
                book.position.last_price = prices[i]
                moved = True
        if moved and self.ledger.mark():  # the daily loss limit just HALTED: flatten soon
            self._wake.set()

    # -- entries and exits --------------------------------------------------------------

    async def enter(
        self,
        symbol: str,
        side: Side,
        qty: int,
        price_hint: float,
        reason: str,
        signal_id: str | None = None,
        *,
        strategy: str = "",
        limit_price: float | None = None,
        underlying_price: float | None = None,
        underlying_signal_id: str | None = None,
    ) -> OrderResult:
        """Open a position: risk checks, intent row, throttle, then submission.

        Args:
            symbol: exchange-qualified symbol.
            side: BUY (long) or SELL (short).
            qty: wanted quantity (e.g. :meth:`RiskManager.size`); risk may cut it.
            price_hint: the expected price (the signal bar's close) for the checks.
            reason: why (logged and notified).
            signal_id: the signal's id, stored on the order and the trade.
            strategy: the strategy's name, stored on the trade.
            limit_price: a LIMIT order at this price (rounded to the tick so as never to
                cross it); None for a MARKET order.
            underlying_price: for an option, the underlying's price now (P&L attribution
                on the option round trip).
            underlying_signal_id: for an option, the underlying signal it came from (the
                round trip's attribution; ``signal_id`` is then the option signal's id).
        """
        if symbol in self._books:
            return self._refused(symbol, "already has a position or a working order")
        instrument = self.ledger.instrument(symbol)
        decision = self.risk.check_entry(
            symbol, side, qty, price_hint, lot_size=instrument.lot_size
        )
        if not decision.allowed:
            return self._refused(symbol, decision.reason)
        price = None
        if limit_price is not None:
            price = round_to_tick(limit_price, instrument.tick_size, opposite(side))
        intent = OrderIntent(
            client_id=new_client_id() if signal_id is None else client_id_for(signal_id),
            symbol=symbol,
            side=side,
            qty=decision.qty,
            order_type="MARKET" if price is None else "LIMIT",
            product=self.product,
            price=price,
            signal_id=signal_id,
            created_at=self.clock.now(),
        )
        work = WorkingOrder(
            intent,
            OrderRole.ENTRY,
            reason=reason,
            strategy=strategy,
            underlying_price=underlying_price,
            underlying_signal_id=underlying_signal_id,
        )
        # the symbol's book is reserved before any await: no second entry can slip in
        book = self._books[symbol] = SymbolBook(instrument, entry=work)
        self.risk.entry_reserved(symbol)
        if not await self._write_intent(work):
            self._entry_gone(book, work)
            return OrderResult(False, "order intent not stored: store unavailable")
        await self.risk.acquire()
        if not self.risk.entries_allowed or work.cancel_requested:
            why = "cancelled" if work.cancel_requested else self.risk.state_reason
            await self._update(work, OrderStatus.CANCELLED, "not sent", f"not sent: {why}")
            self._entry_gone(book, work)
            return OrderResult(False, f"not sent: {why}", work.client_id)
        self.risk.entry_submitted(symbol)
        log.info("entry %s %s %d %s: %s", intent.client_id, side, intent.qty, symbol, reason)
        return await self._submit(work)

    async def exit(
        self, symbol: str, reason: str, *, underlying_price: float | None = None
    ) -> OrderResult:
        """Close the position in ``symbol`` with a MARKET order for all of it.

        Allowed in every trading state. With an exit already working nothing new is sent;
        with only an entry working, the entry is cancelled instead. ``underlying_price``:
        for an option, the underlying's price now (P&L attribution).
        """
        book = self._books.get(symbol)
        if book is not None and book.exit is not None:
            return OrderResult(False, "an exit is already working", book.exit.client_id)
        if book is not None and book.entry is not None:
            entry = book.entry
            await self._cancel(entry)
            if book.position is None:
                return OrderResult(True, "no position yet: entry cancelled", entry.client_id)
            # partly filled: more fills may come until the cancel lands, so the exit is
            # sized and sent once the entry is done (_entry_finished)
            book.pending_exit = (reason, underlying_price)
            return OrderResult(
                True, "entry partly filled: cancelled, the exit follows", entry.client_id
            )
        if book is None or book.position is None:
            return OrderResult(False, f"no position in {symbol}")
        pos = book.position
        intent = OrderIntent(
            client_id=new_client_id(),
            symbol=symbol,
            side=opposite(pos.side),
            qty=pos.qty,
            product=pos.product,
            created_at=self.clock.now(),
        )
        work = WorkingOrder(
            intent,
            OrderRole.EXIT,
            reason=reason,
            trade_id=pos.trade_id,
            underlying_price=underlying_price,
        )
        book.exit = work
        if not await self._write_intent(work):
            book.exit = None
            return OrderResult(False, "order intent not stored: store unavailable")
        await self.risk.acquire()
        log.info("exit %s %s %d %s: %s", intent.client_id, intent.side, pos.qty, symbol, reason)
        return await self._submit(work)

    async def flatten(self, reason: str) -> None:
        """Cancel working entries and exit every position (retried until flat)."""
        self._flatten_reason = reason
        await self.pump()

    def retry_refused_exits(self) -> None:
        """Let a flatten re-send refused exits now, not after their backoff (call it when
        the cause of the refusals is gone, e.g. after a broker login)."""
        for book in self._books.values():
            book.exit_retry_at = 0.0
        self._wake.set()

    async def halt(self, reason: str) -> None:
        """Kill switch: the risk manager HALTS (no entries until next session), then flatten."""
        self.risk.halt(reason)
        await self.pump()

    # -- the event side -----------------------------------------------------------------

    def _on_event(self, event: GatewayEvent) -> None:
        self._events.append(event)
        self._wake.set()

    async def run(self) -> None:
        """Apply gateway events and flatten requests until cancelled (run it as a task)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_RETRY_S):
                    await self._wake.wait()
            self._wake.clear()
            await self.pump()

    async def pump(self) -> None:
        """Apply every queued event, retry deferred writes, and work a pending flatten."""
        async with self._pump_lock:
            await self.ledger.spool.flush()
            await self._apply_events()
            requested = self.risk.take_flatten_request()
            if requested is not None:
                self._flatten_reason = requested
                self._alert(f"flatten: {requested}")
            reason = self._flatten_reason
            if reason is None:
                return
            now = self.clock.monotonic()
            for symbol, book in list(self._books.items()):
                if book.entry is not None:
                    await self._cancel(book.entry)
                elif book.position is not None and book.exit is None and now >= book.exit_retry_at:
                    await self.exit(symbol, reason)
            await self._apply_events()  # what the step itself caused (paper cancels)
            if not self._books:
                log.info("flat (%s)", reason)
                self._notify("trade", f"flat: {reason}")
                self._flatten_reason = None

    async def _apply_events(self) -> None:
        while self._events:
            event = self._events.popleft()
            try:
                if isinstance(event, Fill):
                    await self._on_fill(event)
                else:
                    await self._on_update(event)
            except Exception:  # one bad event must not stop the others
                log.exception("executor: failed to apply %r", event)

    async def _on_update(self, update: OrderUpdate) -> None:
        work = self._orders.get(update.client_id)
        if work is None:  # not ours (another session's order): record it, nothing else
            await self.ledger.spool.write(partial(self.store.apply_order_update, update))
            return
        if not work.advance(update.status):
            return
        work.broker_order_id = update.broker_order_id or work.broker_order_id
        await self.ledger.spool.write(partial(self.store.apply_order_update, update))
        if update.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
            await self._order_dead(work, update.message)

    async def _on_fill(self, fill: Fill) -> None:
        work = self._orders.get(fill.client_id)
        if await self.ledger.apply_fill(fill, work) and work is not None:
            self._orders.pop(work.client_id, None)
            if work.role is OrderRole.ENTRY:
                await self._entry_finished(work.intent.symbol)

    async def _entry_finished(self, symbol: str) -> None:
        """An entry is done with a position: send the exit asked for meanwhile, if any."""
        book = self._books.get(symbol)
        if book is None or book.pending_exit is None or book.position is None:
            return
        reason, underlying_price = book.pending_exit
        book.pending_exit = None
        await self.exit(symbol, reason, underlying_price=underlying_price)

    # -- helpers ----------------------------------------------------------------------

    async def _submit(self, work: WorkingOrder) -> OrderResult:
        cid, qty = work.client_id, work.intent.qty
        self._orders[cid] = work
        try:
            result = await self.gateway.submit(work.intent)
        except (BrokerError, TimeoutError, OSError) as exc:
            # The order may exist at the broker: never re-send; the tag lookup resolves it.
            await self._update(work, OrderStatus.UNKNOWN, "submit", f"outcome unknown: {exc}")
            self._alert(f"order {cid} {work.intent.symbol}: submission outcome unknown: {exc}")
            return OrderResult(False, f"submission outcome unknown: {exc}", cid, qty)
        if result.accepted:
            work.broker_order_id = result.broker_order_id
            await self._update(
                work, result.status, "submit", result.message, result.broker_order_id
            )
            return OrderResult(True, "", cid, qty)
        await self._update(work, OrderStatus.REJECTED, "submit", result.message)
        await self._order_dead(work, result.message)
        return OrderResult(False, f"rejected: {result.message}", cid, qty)

    async def _update(
        self,
        work: WorkingOrder,
        status: OrderStatus,
        event_id: str,
        message: str,
        broker_order_id: str | None = None,
    ) -> None:
        if work.advance(status):
            update = OrderUpdate(
                work.client_id, event_id, status, self.clock.now(), broker_order_id, message
            )
            await self.ledger.spool.write(partial(self.store.apply_order_update, update))

    async def _cancel(self, work: WorkingOrder) -> None:
        if work.cancel_requested:
            return
        work.cancel_requested = True
        if work.client_id not in self._orders:  # not sent yet: enter() will not send it
            return
        await self.risk.acquire()
        try:
            await self.gateway.cancel(work.client_id)
        except (BrokerError, TimeoutError, OSError) as exc:
            work.cancel_requested = False  # try again on the next flatten step
            log.error("cancel of %s failed: %s", work.client_id, exc)

    async def _order_dead(self, work: WorkingOrder, message: str) -> None:
        """An order ended cancelled or rejected: unfilled, or after a partial fill (the
        filled part of an entry stays open as a position; a partial exit leaves the rest)."""
        self._orders.pop(work.client_id, None)
        filled = self.ledger.filled(work.client_id)
        self.ledger.forget(work.client_id)
        book = self._books.get(work.intent.symbol)
        if book is None:
            return
        if work.role is OrderRole.ENTRY and book.entry is work:
            if await self.ledger.entry_done(book, work):
                self._alert(
                    f"entry {work.client_id} of {work.intent.symbol} {work.status} after "
                    f"filling {filled} of {work.intent.qty}: {message}; the filled part is open"
                )
                await self._entry_finished(work.intent.symbol)
            else:
                book.pending_exit = None
                self._entry_gone(book, work)
        elif book.exit is work:
            book.exit = None
            held = book.position.qty if book.position is not None else 0
            text = (
                f"exit of {work.intent.symbol} {work.status} after filling {filled} of "
                f"{work.intent.qty}: {message}; {held} still open"
            )
            if filled:
                book.exit_refusals, book.exit_retry_at = 0, 0.0
            else:  # refused outright: a flatten waits before sending it again
                book.exit_refusals += 1
                wait = min(_EXIT_BACKOFF_MAX_S, _RETRY_S * 2.0 ** (book.exit_refusals - 1))
                book.exit_retry_at = self.clock.monotonic() + wait
                text += f"; a flatten retries in {wait:g} s"
            if book.exit_refusals <= 1:
                self._alert(text)
            else:  # the same refusal again: alerted already
                log.warning("%s (refused %d times in a row)", text, book.exit_refusals)
            self._wake.set()

    def _entry_gone(self, book: SymbolBook, work: WorkingOrder) -> None:
        book.entry = None
        self.risk.release(work.intent.symbol)
        self.ledger.drop_if_empty(work.intent.symbol)

    async def _write_intent(self, work: WorkingOrder) -> bool:
        try:
            if await self.store.record_order_intent(work.intent, self.clock.now()):
                return True
            problem = f"client id {work.client_id} already stored"
        except Exception as exc:  # not durable, whatever the cause: do not send
            problem = f"{type(exc).__name__}: {exc}"
        log.error("order for %s NOT sent: intent not stored (%s)", work.intent.symbol, problem)
        self._alert(f"order for {work.intent.symbol} not sent: intent not stored ({problem})")
        return False

    def _refused(self, symbol: str, reason: str) -> OrderResult:
        log.info("entry in %s refused: %s", symbol, reason)
        return OrderResult(False, reason)

    def _alert(self, message: str) -> None:
        log.warning("%s", message)
        self._notify("alert", message)

    def _notify(self, kind: str, message: str) -> None:
        if self.notify is None:
            return
        try:
            self.notify(kind, message)
        except Exception:
            log.exception("notify failed")

    # -- start-up -----------------------------------------------------------------------

    async def restore(self) -> None:
        """Reload open round trips and today's P&L and trade count (before trading).

        Orders left working by a previous run are logged; reconciling them with the
        broker is the live gateway's start-up step (DESIGN section 6).
        """
        await self.ledger.restore()
        stale = await self.store.load_orders(statuses=_LIVE)
        if stale:
            ids = ", ".join(o.client_id for o in stale)
            log.warning("%d order(s) left working by a previous run: %s", len(stale), ids)
