"""The executor's books: what it holds per symbol, how fills change it, and its store mirror.

* :class:`Ledger` - the books of every symbol; applies fills exactly once (a filled entry
  opens a round trip, a filled exit closes it net of both legs' charges and tells the
  risk manager), marks open positions, and reloads open round trips at start-up.
* :class:`SymbolBook` - per symbol: the open position (if any), the working entry and the
  working exit (at most one of each).
* :class:`OpenPosition` - a filled entry: the round trip it opened and its marked P&L.
* :class:`WriteSpool` - store writes made AFTER the fact (order updates, fills, trades).
  One that fails with a retryable :class:`~mental_trader.errors.StorageError` is kept,
  in order with every later one, and retried by :meth:`WriteSpool.flush` (DESIGN section
  8: while the database is down, keep state in memory and spool the writes). A write the
  database refuses on its merits (not retryable) is logged and dropped.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from mental_trader.calendar import IST
from mental_trader.errors import InvalidInputError, StorageError
from mental_trader.execution.charges import ChargesTable, segment_for
from mental_trader.execution.orders import OrderRole, WorkingOrder, instrument_for, opposite
from mental_trader.execution.repair import replay
from mental_trader.models import (
    Fill,
    Instrument,
    OptionTrade,
    OrderStatus,
    Position,
    Side,
    Trade,
)

if TYPE_CHECKING:
    from mental_trader.risk import RiskManager
    from mental_trader.storage.base import Store

__all__ = ["Ledger", "OpenPosition", "OrderCharges", "SymbolBook", "WriteSpool"]

log = logging.getLogger(__name__)

#: A store write to run (again): a coroutine factory, e.g. ``partial(store.apply_fill, f)``.
Write = Callable[[], Awaitable[object]]


def is_option(instrument: Instrument) -> bool:
    """An option contract: its round trips go to ``option_trades``, with attribution."""
    return instrument.instrument_type in ("CE", "PE")


@dataclass(slots=True)
class OpenPosition:
    """A round trip in progress (its id is the entry's client id), built fill by fill.

    The entry may fill in several fills (Kite slices, partial fills): ``entered`` is their
    sum, ``entry_price`` their quantity-weighted average, ``entry_charges`` their sum. The
    exit may as well: ``exited``, ``exit_value`` (sum of price x qty) and ``exit_charges``
    are the exit fills' so far, across exit orders (a cancelled partial exit leaves the
    rest open). ``qty`` is what is held now (``entered - exited``). ``exit_charges_est`` is
    the exit leg's charges on ``qty`` at the entry price, so the marked P&L is net of both
    legs without pricing charges on every tick. ``recorded``: the round trip row is in
    the store (written once the entry order is done).
    """

    trade_id: str
    side: Side
    qty: int
    entry_price: float
    entry_charges: float
    exit_charges_est: float
    product: str
    last_price: float
    entered: int = 0
    entry_ts: datetime | None = None
    exited: int = 0
    exit_value: float = 0.0
    exit_charges: float = 0.0
    recorded: bool = False

    def __post_init__(self) -> None:
        self.entered = self.entered or self.qty + self.exited

    def realized_gross(self) -> float:
        """Gross P&L of the quantity exited so far."""
        return self.side.sign * (self.exit_value - self.entry_price * self.exited)

    def unrealized(self) -> float:
        """Net P&L if the rest closed at the last price: what the exits realized plus the
        open quantity marked, minus the entry charges, the exits' and the estimate's."""
        gross = self.realized_gross() + self.side.sign * (self.last_price - self.entry_price) * (
            self.qty
        )
        return gross - self.entry_charges - self.exit_charges - self.exit_charges_est

    def net_pnl(self) -> float:
        """The closed round trip's net P&L, computed as the store does: the whole entered
        quantity from the entry average to the exits' average, minus both legs' charges."""
        exit_price = self.exit_value / self.exited if self.exited else self.entry_price
        gross = self.side.sign * (exit_price - self.entry_price) * self.entered
        return gross - self.entry_charges - self.exit_charges

    def add_entry(self, fill: Fill) -> None:
        """One more fill of the entry order: quantity summed, price averaged, charges summed."""
        total = self.entered + fill.qty
        self.entry_price = (self.entry_price * self.entered + fill.price * fill.qty) / total
        self.entered, self.qty = total, self.qty + fill.qty
        self.entry_charges += fill.charges

    def add_exit(self, fill: Fill) -> None:
        """One fill of an exit order (the open quantity shrinks)."""
        self.exited += fill.qty
        self.qty -= fill.qty
        self.exit_value += fill.price * fill.qty
        self.exit_charges += fill.charges

    def option_trade(self, instrument: Instrument, work: WorkingOrder) -> OptionTrade:
        """The OPEN option round trip to store for this position's (finished) entry.

        Raises:
            InvalidInputError: the instrument lacks its contract facts (expiry, strike).
        """
        if instrument.expiry is None or instrument.strike is None:
            raise InvalidInputError(f"{instrument.symbol}: option without expiry or strike")
        assert self.entry_ts is not None
        return OptionTrade(
            id=self.trade_id,
            underlying=instrument.underlying or "",
            symbol=instrument.symbol,
            expiry=instrument.expiry,
            strike=instrument.strike,
            option_type=instrument.instrument_type,
            side=self.side,
            lots=self.entered // max(instrument.lot_size, 1),
            lot_size=instrument.lot_size,
            entry_ts=self.entry_ts,
            entry_price=self.entry_price,
            underlying_signal_id=work.underlying_signal_id or work.intent.signal_id,
            underlying_entry_price=work.underlying_price,
            entry_charges=self.entry_charges,
        )

    def trade(self, symbol: str, work: WorkingOrder) -> Trade:
        """The OPEN round trip to store for this position's (finished) entry."""
        assert self.entry_ts is not None
        return Trade(
            id=self.trade_id,
            symbol=symbol,
            side=self.side,
            qty=self.entered,
            entry_ts=self.entry_ts,
            entry_price=self.entry_price,
            strategy=work.strategy,
            signal_id=work.intent.signal_id,
            entry_charges=self.entry_charges,
        )


class OrderCharges:
    """Charges of fills priced per EXECUTED order: Kite fills ``K<order_id>-<trade_id>``
    of one Kite order (one autoslice child, or one order filled in several trades) are one
    executed order, charged once on their sum (a flat or capped brokerage once, not per
    trade); different Kite orders (slices) are charged as orders of their own. Each fill
    is charged the increase of its executed order's total, so the fills of an order sum
    to exactly what the table charges for it."""

    __slots__ = ("_done",)

    def __init__(self) -> None:
        self._done: dict[str, tuple[int, float, float]] = {}  # key -> qty, value, charged

    def price(self, fill: Fill, cost: Callable[[Fill], float]) -> Fill:
        """``fill`` with its charges (``cost(f)`` prices a whole executed order ``f``)."""
        head, sep, _ = fill.trade_id.rpartition("-")
        key = f"{fill.client_id}|{head if sep else fill.trade_id}"
        qty, value, charged = self._done.get(key, (0, 0.0, 0.0))
        qty, value = qty + fill.qty, value + fill.price * fill.qty
        total = cost(replace(fill, qty=qty, price=value / qty))
        self._done[key] = (qty, value, total)
        return replace(fill, charges=round(total - charged, 6))

    def forget(self, client_id: str) -> None:
        """Drop a finished order's state."""
        for key in [k for k in self._done if k.partition("|")[0] == client_id]:
            del self._done[key]


@dataclass(slots=True)
class SymbolBook:
    """Everything the executor holds in one symbol; dropped when empty."""

    instrument: Instrument
    position: OpenPosition | None = None
    entry: WorkingOrder | None = None
    exit: WorkingOrder | None = None
    #: an exit asked for while a partly filled entry was being cancelled: (reason,
    #: underlying price), sent once the entry is done
    pending_exit: tuple[str, float | None] | None = None
    #: exits refused in a row with nothing filled, and when (clock.monotonic()) a flatten
    #: may send the next one
    exit_refusals: int = 0
    exit_retry_at: float = 0.0

    @property
    def is_empty(self) -> bool:
        """No position and no working order."""
        return self.position is None and self.entry is None and self.exit is None

    @property
    def has_working(self) -> bool:
        """An entry or an exit is working."""
        return self.entry is not None or self.exit is not None


class WriteSpool:
    """Ordered store writes with retry across an outage (see the module docstring).

    Args:
        alert: told once per outage that writes are being deferred.
    """

    def __init__(self, alert: Callable[[str], None]) -> None:
        self._pending: deque[Write] = deque()
        self._alert = alert

    def __len__(self) -> int:
        return len(self._pending)

    async def write(self, op: Write) -> object:
        """Run ``op`` now (its result), or queue it behind earlier deferred writes (None)."""
        if not self._pending:
            try:
                return await op()
            except StorageError as exc:
                if not exc.retryable:
                    log.error("store refused a write: %s", exc)
                    return None
                self._alert(f"store unavailable, writes deferred: {exc}")
        self._pending.append(op)
        return None

    async def flush(self) -> None:
        """Retry deferred writes in order; stop at the first that still meets the outage."""
        while self._pending:
            try:
                await self._pending[0]()
            except StorageError as exc:
                if exc.retryable:
                    return
                log.error("store refused a deferred write: %s", exc)
            self._pending.popleft()


class Ledger:
    """The books of every symbol, mirrored to the store (see the module docstring).

    Args:
        store: where fills and round trips are written (through a :class:`WriteSpool`).
        risk: told about marks and closed round trips.
        charges: prices fills that arrive without charges, and the estimated exit leg.
        instruments: tick size, lot size and type by symbol.
        product: the default product (PRODUCT).
        notify: ``notify(kind, message)`` for trades and alerts.
    """

    def __init__(
        self,
        store: Store,
        risk: RiskManager,
        charges: ChargesTable,
        *,
        instruments: MutableMapping[str, Instrument],
        product: str,
        notify: Callable[[str, str], None],
    ) -> None:
        self.store, self.risk, self.charges = store, risk, charges
        self.instruments, self.product, self._notify = instruments, product, notify
        self.books: dict[str, SymbolBook] = {}
        self.spool = WriteSpool(self._alert)
        self._seen_fills: set[str] = set()
        self._filled: dict[str, int] = {}  # client id -> filled qty, while tracked
        self.order_charges = OrderCharges()

    def _alert(self, message: str) -> None:
        log.warning("%s", message)
        self._notify("alert", message)

    def instrument(self, symbol: str) -> Instrument:
        """The instrument of ``symbol`` (a default NSE equity if unknown)."""
        return instrument_for(self.instruments, symbol)

    def drop_if_empty(self, symbol: str) -> None:
        """Forget ``symbol``'s book once nothing is held or working in it."""
        book = self.books.get(symbol)
        if book is not None and book.is_empty:
            del self.books[symbol]

    def positions(self) -> list[Position]:
        """Open positions (signed qty; realized = a partial exit's gross; ``charges`` =
        entry charges plus a partial exit's), by symbol."""
        return [
            Position(
                s,
                p.side.sign * p.qty,
                p.entry_price,
                p.realized_gross(),
                p.entry_charges + p.exit_charges,
            )
            for s, b in sorted(self.books.items())
            if (p := b.position) is not None
        ]

    def mark(self) -> bool:
        """Give the risk manager the open positions' net P&L; True if that just HALTED."""
        return self.risk.mark(
            sum(b.position.unrealized() for b in self.books.values() if b.position)
        )

    def charges_for(self, fill: Fill, side: Side, product: str | None = None) -> float:
        """The table's charges for ``fill``'s price, qty and IST date on ``side`` (0 if none)."""
        try:
            instrument = self.instrument(fill.symbol)
            segment = segment_for(product or self.product, instrument.instrument_type)
            day = fill.ts.astimezone(IST).date()
            return self.charges.order_total(day, segment, side, fill.price, fill.qty, instrument)
        except InvalidInputError as exc:
            log.error("no charges for %s %s: %s", side, fill.symbol, exc)
            return 0.0

    def _priced(self, fill: Fill, work: WorkingOrder | None) -> Fill:
        product = work.intent.product if work is not None else None
        return self.order_charges.price(fill, lambda f: self.charges_for(f, f.side, product))

    async def apply_fill(self, fill: Fill, work: WorkingOrder | None) -> bool:
        """Apply an execution once; return True if it finished ``work`` (stop tracking it).

        A repeat (seen in this run, or ``store.apply_fill`` says so) is ignored. An order
        may fill in several fills: an entry's fills grow its round trip until the order's
        quantity is reached (then the round trip row is written); an exit's fills shrink
        the position, and the round trip closes when all of it is out. A fill without
        charges (a live broker's) is priced per executed order (:class:`OrderCharges`).
        """
        if fill.trade_id in self._seen_fills:
            return False
        if fill.charges == 0.0:  # a live broker's fill: price it from the table
            fill = self._priced(fill, work)
        new = await self.spool.write(partial(self.store.apply_fill, fill)) is not False
        self._seen_fills.add(fill.trade_id)
        if not new:
            log.info("fill %s already applied: ignored", fill.trade_id)
            return False
        if work is None:
            log.warning("fill %s for untracked order %s", fill.trade_id, fill.client_id)
            return False
        filled = self._filled[work.client_id] = self._filled.get(work.client_id, 0) + fill.qty
        done = filled >= work.intent.qty
        work.advance(OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED)
        book = self.books[fill.symbol]
        if work.role is OrderRole.ENTRY:
            await self._entry_fill(book, work, fill, done)
        else:
            done = await self._exit_fill(book, work, fill, done)
        if done:
            self.forget(work.client_id)
        return done

    def filled(self, client_id: str) -> int:
        """Quantity filled so far of a tracked order."""
        return self._filled.get(client_id, 0)

    def forget(self, client_id: str) -> None:
        """Drop what is kept about a finished order."""
        self._filled.pop(client_id, None)
        self.order_charges.forget(client_id)

    async def _entry_fill(
        self, book: SymbolBook, work: WorkingOrder, fill: Fill, done: bool
    ) -> None:
        pos = book.position
        if pos is None:
            book.position = pos = OpenPosition(
                trade_id=work.client_id,
                side=fill.side,
                qty=fill.qty,
                entry_price=fill.price,
                entry_charges=fill.charges,
                exit_charges_est=0.0,
                product=work.intent.product,
                last_price=fill.price,
                entry_ts=fill.ts,
            )
        else:
            pos.add_entry(fill)
        pos.exit_charges_est = self._exit_estimate(pos, fill)
        if done:
            await self.entry_done(book, work)
        self.mark()
        part = "" if done else f" ({pos.entered} of {work.intent.qty})"
        self._notify(
            "trade", f"entered {fill.side} {fill.qty} {fill.symbol} @ {fill.price:g}{part}"
        )

    def _exit_estimate(self, pos: OpenPosition, fill: Fill) -> float:
        if pos.qty <= 0:
            return 0.0
        at_entry = replace(fill, qty=pos.qty, price=pos.entry_price)
        return self.charges_for(at_entry, opposite(pos.side), pos.product)

    async def entry_done(self, book: SymbolBook, work: WorkingOrder) -> bool:
        """The entry order is done (filled, or ended after a partial fill): it stops
        working and its round trip row is written. Return whether a position was opened."""
        if book.entry is work:
            book.entry = None
        self.forget(work.client_id)
        pos = book.position
        if pos is None or pos.recorded or pos.trade_id != work.client_id:
            return pos is not None
        pos.recorded = True
        opened: Write
        if is_option(book.instrument):
            opened = partial(self.store.open_option_trade, pos.option_trade(book.instrument, work))
        else:
            opened = partial(self.store.open_trade, pos.trade(work.intent.symbol, work))
        await self.spool.write(opened)
        return True

    async def _exit_fill(
        self, book: SymbolBook, work: WorkingOrder, fill: Fill, done: bool
    ) -> bool:
        pos = book.position
        if pos is None:
            log.error("exit fill %s without a position in %s", fill.trade_id, fill.symbol)
            book.exit = None if done else book.exit
            self.drop_if_empty(fill.symbol)
            return done
        pos.add_exit(fill)
        pos.exit_charges_est = self._exit_estimate(pos, fill)
        if pos.qty > 0:
            if done:  # the order is out but part of the position is not (cannot happen
                book.exit = None  # while exits are sized to the position): keep it open
                self._alert(f"exit of {fill.symbol} done; {pos.qty} still open")
            self.mark()
            return done
        if pos.qty < 0:
            log.error("exit fills of %s overshoot the position by %d", fill.symbol, -pos.qty)
        book.position, book.exit = None, None
        self.drop_if_empty(fill.symbol)
        exit_price = pos.exit_value / pos.exited
        close: Write
        if is_option(book.instrument):
            close = partial(
                self.store.close_option_trade,
                pos.trade_id,
                exit_ts=fill.ts,
                exit_price=exit_price,
                exit_charges=pos.exit_charges,
                reason=work.reason,
                underlying_exit_price=work.underlying_price,
            )
        else:
            close = partial(
                self.store.close_trade,
                pos.trade_id,
                exit_ts=fill.ts,
                exit_price=exit_price,
                exit_charges=pos.exit_charges,
                reason=work.reason,
            )
        await self.spool.write(close)
        net = pos.net_pnl()
        self.mark()  # without this position first, so its P&L is not counted twice
        self.risk.position_closed(fill.symbol, net)
        self._notify("trade", f"closed {fill.symbol} @ {exit_price:g} ({work.reason}): {net:.2f}")
        return True

    async def restore(self) -> None:
        """Reload open round trips, and today's realized P&L and entries into the risk manager.

        The round trips are first brought up to date from the stored fills
        (:func:`~.repair.replay`): an entry whose row a killed process never wrote is opened,
        fully exited round trips are closed, a partial exit leaves the rest open.
        """
        state = await replay(self.store, instruments=self.instruments)
        for problem in state.problems:
            self._alert(f"restore: {problem}")
        for st in state.open.values():
            t = st.trip
            if isinstance(t, OptionTrade) and t.symbol not in self.instruments:
                # An expired contract is gone from the day's master: its round trip still
                # carries the facts the ledger needs to close it as an option.
                self.instruments[t.symbol] = Instrument(
                    symbol=t.symbol,
                    exchange=t.symbol.partition(":")[0],
                    tradingsymbol=t.symbol.partition(":")[2],
                    segment="NFO-OPT",
                    instrument_type=t.option_type,
                    lot_size=t.lot_size,
                    expiry=t.expiry,
                    strike=t.strike,
                    underlying=t.underlying,
                )
            order = await self.store.get_order(t.id)
            product = order.product if order else self.product
            book = self.books.setdefault(t.symbol, SymbolBook(self.instrument(t.symbol)))
            book.position = pos = OpenPosition(
                t.id,
                t.side,
                st.remaining,
                t.entry_price,
                t.entry_charges,
                0.0,
                product,
                t.entry_price,
                entered=t.qty,
                entry_ts=t.entry_ts,
                exited=st.exited,
                exit_value=st.exit_value,
                exit_charges=st.exit_charges,
                recorded=True,
            )
            entry = Fill(t.id, t.id, t.symbol, t.side, t.qty, t.entry_price, t.entry_ts)
            pos.exit_charges_est = self._exit_estimate(pos, entry)
        day = self.risk.day
        realized = sum(d.net_pnl for d in await self.store.daily_pnl(day, day))
        since = datetime(day.year, day.month, day.day, tzinfo=IST)
        entered = len(await self.store.load_trades(since=since)) + sum(
            o.entry_ts >= since for o in await self.store.load_option_trades()
        )
        self.risk.restore_day(realized, entered, set(self.books))
        self.mark()
