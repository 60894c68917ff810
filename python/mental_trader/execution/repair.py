"""Round trips replayed from the store's orders and fills, at start-up, before trading.

The executor writes a fill (``store.apply_fill``) before the round trip it changes, and a
round trip row only once its entry order is done (filled, or ended after a partial fill).
A process killed in between leaves fills that no round trip accounts for. :func:`replay`
walks each symbol's orders that have fills, oldest first, and brings the round trips up to
date from the fills (the fills are the truth; they carry their charges):

* an order with a round trip of its own id is an ENTRY; that round trip is now current;
* an order on the other side of the current round trip, while that round trip still has
  quantity not accounted for by earlier exits, is one of its EXITS; once the exits cover
  its quantity an OPEN round trip is closed (exit price = the exits' quantity-weighted
  average, exit charges = their sum, net P&L by the store as usual);
* any other order with fills is an entry whose round trip was never written: it is
  opened from that order's fills (unless the current round trip is still open, which the
  executor never allows: a problem).

The result has every open round trip with what its exits took so far (a partial exit
leaves the rest open) and the problems found; :func:`~.reconcile.reconcile` refuses to
trade on a problem, :meth:`~.book.Ledger.restore` alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from mental_trader.execution.orders import instrument_for
from mental_trader.models import (
    Fill,
    Instrument,
    OptionTrade,
    OrderRecord,
    Trade,
    TradeStatus,
)

if TYPE_CHECKING:
    from mental_trader.storage.base import Store

__all__ = ["Replay", "TripState", "replay"]

log = logging.getLogger(__name__)

_MANY = 1_000_000  # load every row (start-up, once)
#: The exit reason written on a round trip this module closes.
REPAIRED_EXIT = "exit filled (round trip completed at start-up)"


@dataclass(slots=True)
class TripState:
    """A round trip and what its exit orders' fills took from it so far."""

    trip: Trade | OptionTrade
    exited: int = 0
    exit_value: float = 0.0
    exit_charges: float = 0.0
    last_exit: datetime | None = None

    @property
    def remaining(self) -> int:
        """Quantity still open (the round trip's quantity less its exits)."""
        return self.trip.qty - self.exited

    def take(self, fills: list[Fill]) -> None:
        """Account an exit order's fills."""
        for f in fills:
            self.exited += f.qty
            self.exit_value += f.price * f.qty
            self.exit_charges += f.charges
            self.last_exit = f.ts if self.last_exit is None else max(self.last_exit, f.ts)


@dataclass(slots=True)
class Replay:
    """What :func:`replay` found and did.

    Attributes:
        open: the open round trips by id, with their exits so far.
        opened: ids of round trips opened here (their entry row was missing).
        closed: ids of round trips closed here (their exits covered them).
        problems: what cannot be explained (the service must not trade on it).
        symbols: the symbols of the problems.
    """

    open: dict[str, TripState] = field(default_factory=dict)
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)

    def net(self) -> dict[str, int]:
        """Signed open quantity per symbol."""
        out: dict[str, int] = {}
        for s in self.open.values():
            out[s.trip.symbol] = out.get(s.trip.symbol, 0) + s.trip.side.sign * s.remaining
        return out

    def _problem(self, symbol: str, message: str) -> None:
        self.problems.append(message)
        self.symbols.append(symbol)


async def replay(store: Store, *, instruments: Mapping[str, Instrument]) -> Replay:
    """Bring round trips up to date from the stored fills (see the module docstring).

    Args:
        store: the store.
        instruments: instrument facts (an option round trip needs expiry and strike).

    Returns:
        The open round trips with their exits so far, what was opened and closed, and
        the problems (nothing is written for a symbol with a problem).
    """
    out = Replay()
    loaded: list[Trade | OptionTrade] = [
        *await store.load_trades(limit=_MANY),
        *await store.load_option_trades(),
    ]
    trips = {t.id: t for t in loaded}
    fills: dict[str, list[Fill]] = {}
    for f in await store.load_fills():
        fills.setdefault(f.client_id, []).append(f)
    by_symbol: dict[str, list[OrderRecord]] = {}
    for o in await store.load_orders(limit=_MANY):
        if o.client_id in fills or o.client_id in trips:
            by_symbol.setdefault(o.symbol, []).append(o)
    for symbol, orders in by_symbol.items():
        # by creation; on a tie the earlier fills first (an exit fills after its entry)
        orders.sort(key=lambda o: (o.created_at, _first_fill(fills, o), o.client_id))
        await _symbol(store, symbol, orders, trips, fills, instruments, out)
    seen = {s.trip.id for s in out.open.values()}
    for t in trips.values():  # open round trips no stored order leads to (kept as they are)
        if t.status is TradeStatus.OPEN and t.id not in seen:
            out.open[t.id] = TripState(t)
    return out


def _first_fill(fills: Mapping[str, list[Fill]], order: OrderRecord) -> datetime:
    done = fills.get(order.client_id)
    return min(f.ts for f in done) if done else order.created_at


async def _symbol(
    store: Store,
    symbol: str,
    orders: list[OrderRecord],
    trips: dict[str, Trade | OptionTrade],
    fills: Mapping[str, list[Fill]],
    instruments: Mapping[str, Instrument],
    out: Replay,
) -> None:
    cur: TripState | None = None
    to_open: list[Trade | OptionTrade] = []
    for order in orders:
        cid, done = order.client_id, fills.get(order.client_id, [])
        known = trips.get(cid)
        if known is not None:  # an entry with its round trip
            if cur is not None and cur.trip.status is TradeStatus.OPEN and cur.remaining > 0:
                out._problem(symbol, f"{symbol}: round trips {cur.trip.id} and {cid} both open")
            cur = TripState(known)
            continue
        if not done:
            continue
        if cur is not None and order.side != cur.trip.side and cur.remaining > 0:
            cur.take(done)
            if cur.remaining < 0 and cur.trip.status is TradeStatus.OPEN:
                out._problem(
                    symbol,
                    f"exits of {symbol} filled {cur.exited} of round trip {cur.trip.id}'s "
                    f"{cur.trip.qty}",
                )
            continue
        if cur is not None and cur.trip.status is TradeStatus.OPEN and cur.remaining > 0:
            out._problem(
                symbol, f"order {cid} filled in {symbol} while round trip {cur.trip.id} is open"
            )
            continue
        trip = _entry(order, done, instrument_for(instruments, symbol))
        if trip is None:
            out._problem(symbol, f"option entry {cid} filled but {symbol} lacks expiry/strike")
            continue
        to_open.append(trip)
        cur = TripState(trip)
    if symbol in out.symbols:
        return  # nothing is written on top of a problem
    for trip in to_open:
        if isinstance(trip, OptionTrade):
            await store.open_option_trade(trip)
        else:
            await store.open_trade(trip)
        log.warning("replay: round trip %s opened from its stored fills", trip.id)
        trips[trip.id] = trip
        out.opened.append(trip.id)
    if cur is None or cur.trip.status is not TradeStatus.OPEN:
        return
    if cur.remaining == 0 and cur.exited > 0:
        cur.trip = trips[cur.trip.id] = await _close(store, cur)
        out.closed.append(cur.trip.id)
        log.warning("replay: round trip %s closed from its stored exit fills", cur.trip.id)
    elif cur.remaining > 0:
        out.open[cur.trip.id] = cur


def _entry(order: OrderRecord, fills: list[Fill], inst: Instrument) -> Trade | OptionTrade | None:
    """The OPEN round trip an entry order's fills make (None: an option without facts)."""
    qty = sum(f.qty for f in fills)
    price = sum(f.price * f.qty for f in fills) / qty
    cost = sum(f.charges for f in fills)
    first = min(f.ts for f in fills)
    if inst.instrument_type not in ("CE", "PE"):
        return Trade(
            id=order.client_id,
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            entry_ts=first,
            entry_price=price,
            signal_id=order.signal_id,
            entry_charges=cost,
        )
    if inst.expiry is None or inst.strike is None:
        return None
    return OptionTrade(
        id=order.client_id,
        underlying=inst.underlying or "",
        symbol=order.symbol,
        expiry=inst.expiry,
        strike=inst.strike,
        option_type=inst.instrument_type,
        side=order.side,
        lots=qty // max(inst.lot_size, 1),
        lot_size=max(inst.lot_size, 1),
        entry_ts=first,
        entry_price=price,
        underlying_signal_id=order.signal_id,
        entry_charges=cost,
    )


async def _close(store: Store, state: TripState) -> Trade | OptionTrade:
    trip, last = state.trip, state.last_exit
    assert last is not None  # exited > 0
    price = state.exit_value / state.exited
    if isinstance(trip, OptionTrade):
        return await store.close_option_trade(
            trip.id,
            exit_ts=last,
            exit_price=price,
            exit_charges=state.exit_charges,
            reason=REPAIRED_EXIT,
        )
    return await store.close_trade(
        trip.id,
        exit_ts=last,
        exit_price=price,
        exit_charges=state.exit_charges,
        reason=REPAIRED_EXIT,
    )
