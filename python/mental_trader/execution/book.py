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
from mental_trader.models import (
    Fill,
    Instrument,
    OptionTrade,
    OrderStatus,
    Position,
    Side,
    Trade,
    TradeStatus,
)

if TYPE_CHECKING:
    from mental_trader.risk import RiskManager
    from mental_trader.storage.base import Store

__all__ = ["Ledger", "OpenPosition", "SymbolBook", "WriteSpool"]

log = logging.getLogger(__name__)

#: A store write to run (again): a coroutine factory, e.g. ``partial(store.apply_fill, f)``.
Write = Callable[[], Awaitable[object]]


def is_option(instrument: Instrument) -> bool:
    """An option contract: its round trips go to ``option_trades``, with attribution."""
    return instrument.instrument_type in ("CE", "PE")


@dataclass(slots=True)
class OpenPosition:
    """A position opened by one entry fill (a round trip whose id is the entry client id).

    ``exit_charges_est`` is the exit leg's charges at the entry price, so the marked P&L
    is net of both legs without pricing charges on every tick.
    """

    trade_id: str
    side: Side
    qty: int
    entry_price: float
    entry_charges: float
    exit_charges_est: float
    product: str
    last_price: float

    def unrealized(self) -> float:
        """Net P&L if closed at the last price: gross minus both legs' charges."""
        return self.net_pnl(self.last_price, self.exit_charges_est)

    def net_pnl(self, exit_price: float, exit_charges: float) -> float:
        """``side.sign * (exit - entry) * qty`` minus entry and exit charges."""
        gross = self.side.sign * (exit_price - self.entry_price) * self.qty
        return gross - self.entry_charges - exit_charges

    def option_trade(self, instrument: Instrument, fill: Fill, work: WorkingOrder) -> OptionTrade:
        """The OPEN option round trip to store for this position's entry fill.

        Raises:
            InvalidInputError: the instrument lacks its contract facts (expiry, strike).
        """
        if instrument.expiry is None or instrument.strike is None:
            raise InvalidInputError(f"{instrument.symbol}: option without expiry or strike")
        return OptionTrade(
            id=self.trade_id,
            underlying=instrument.underlying or "",
            symbol=instrument.symbol,
            expiry=instrument.expiry,
            strike=instrument.strike,
            option_type=instrument.instrument_type,
            side=self.side,
            lots=self.qty // max(instrument.lot_size, 1),
            lot_size=instrument.lot_size,
            entry_ts=fill.ts,
            entry_price=self.entry_price,
            underlying_signal_id=work.underlying_signal_id or work.intent.signal_id,
            underlying_entry_price=work.underlying_price,
            entry_charges=self.entry_charges,
        )

    def trade(self, symbol: str, fill: Fill, work: WorkingOrder) -> Trade:
        """The OPEN round trip to store for this position's entry fill."""
        return Trade(
            id=self.trade_id,
            symbol=symbol,
            side=self.side,
            qty=self.qty,
            entry_ts=fill.ts,
            entry_price=self.entry_price,
            strategy=work.strategy,
            signal_id=work.intent.signal_id,
            entry_charges=self.entry_charges,
        )


@dataclass(slots=True)
class SymbolBook:
    """Everything the executor holds in one symbol; dropped when empty."""

    instrument: Instrument
    position: OpenPosition | None = None
    entry: WorkingOrder | None = None
    exit: WorkingOrder | None = None

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
        """Open positions (signed qty; ``charges`` = entry charges), by symbol."""
        return [
            Position(s, p.side.sign * p.qty, p.entry_price, 0.0, p.entry_charges)
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

    async def apply_fill(self, fill: Fill, work: WorkingOrder | None) -> bool:
        """Apply an execution once; return True if it filled ``work`` (now FILLED).

        A repeat (seen in this run, or ``store.apply_fill`` says so) is ignored. One fill
        fills the whole order: partial fills are not modelled.
        """
        if fill.trade_id in self._seen_fills:
            return False
        if fill.charges == 0.0:  # a live broker's fill: price it from the table
            fill = replace(fill, charges=self.charges_for(fill, fill.side))
        new = await self.spool.write(partial(self.store.apply_fill, fill)) is not False
        self._seen_fills.add(fill.trade_id)
        if not new:
            log.info("fill %s already applied: ignored", fill.trade_id)
            return False
        if work is None:
            log.warning("fill %s for untracked order %s", fill.trade_id, fill.client_id)
            return False
        work.status = OrderStatus.FILLED
        book = self.books[fill.symbol]
        if work.role is OrderRole.ENTRY:
            await self._opened(book, work, fill)
        else:
            await self._closed(book, work, fill)
        return True

    async def _opened(self, book: SymbolBook, work: WorkingOrder, fill: Fill) -> None:
        product = work.intent.product
        book.entry = None
        book.position = pos = OpenPosition(
            trade_id=work.client_id,
            side=fill.side,
            qty=fill.qty,
            entry_price=fill.price,
            entry_charges=fill.charges,
            exit_charges_est=self.charges_for(fill, opposite(fill.side), product),
            product=product,
            last_price=fill.price,
        )
        opened: Write
        if is_option(book.instrument):
            trip = pos.option_trade(book.instrument, fill, work)
            opened = partial(self.store.open_option_trade, trip)
        else:
            opened = partial(self.store.open_trade, pos.trade(fill.symbol, fill, work))
        await self.spool.write(opened)
        self.mark()
        self._notify("trade", f"entered {fill.side} {fill.qty} {fill.symbol} @ {fill.price:g}")

    async def _closed(self, book: SymbolBook, work: WorkingOrder, fill: Fill) -> None:
        pos, book.position, book.exit = book.position, None, None
        self.drop_if_empty(fill.symbol)
        if pos is None:
            log.error("exit fill %s without a position in %s", fill.trade_id, fill.symbol)
            return
        net = pos.net_pnl(fill.price, fill.charges)
        close: Write
        if is_option(book.instrument):
            close = partial(
                self.store.close_option_trade,
                pos.trade_id,
                exit_ts=fill.ts,
                exit_price=fill.price,
                exit_charges=fill.charges,
                reason=work.reason,
                underlying_exit_price=work.underlying_price,
            )
        else:
            close = partial(
                self.store.close_trade,
                pos.trade_id,
                exit_ts=fill.ts,
                exit_price=fill.price,
                exit_charges=fill.charges,
                reason=work.reason,
            )
        await self.spool.write(close)
        self.mark()  # without this position first, so its P&L is not counted twice
        self.risk.position_closed(fill.symbol, net)
        self._notify("trade", f"closed {fill.symbol} @ {fill.price:g} ({work.reason}): {net:.2f}")

    async def restore(self) -> None:
        """Reload open round trips, and today's realized P&L and entries into the risk manager."""
        open_trips: list[Trade | OptionTrade] = [
            *await self.store.load_trades(status=TradeStatus.OPEN),
            *await self.store.load_option_trades(status=TradeStatus.OPEN),
        ]
        for t in open_trips:
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
            qty = t.qty if isinstance(t, Trade) else t.lots * t.lot_size
            entry = Fill(t.id, t.id, t.symbol, t.side, qty, t.entry_price, t.entry_ts)
            est = self.charges_for(entry, opposite(t.side), product)
            book = self.books.setdefault(t.symbol, SymbolBook(self.instrument(t.symbol)))
            book.position = OpenPosition(
                t.id, t.side, qty, t.entry_price, t.entry_charges, est, product, t.entry_price
            )
        day = self.risk.day
        realized = sum(d.net_pnl for d in await self.store.daily_pnl(day, day))
        since = datetime(day.year, day.month, day.day, tzinfo=IST)
        entered = len(await self.store.load_trades(since=since)) + sum(
            o.entry_ts >= since for o in await self.store.load_option_trades()
        )
        self.risk.restore_day(realized, entered, set(self.books))
        self.mark()
