"""The paper gateway: the DESIGN fill model against the live tick stream, with charges.

Fill model (DESIGN section 6), per order, one fill for the whole quantity:

* MARKET: fills at the NEXT tick of its symbol after submission (arrival order), at that
  tick's price moved against us by the half-spread plus the slippage (``bps`` of the
  price: a BUY pays ``p * (1 + (half_spread + slippage) / 10_000)``, a SELL gets
  ``p * (1 - ...)``), rounded to the tick AGAINST us. The touch is the tick price plus
  (BUY) or minus (SELL) the half-spread, so a fill is never better than the touch.
* LIMIT: on the next tick after submission a MARKETABLE limit (its market fill price,
  as above, is within the limit) fills like a market order at that price, so it never
  pays more than one. Otherwise the order rests and fills at the first tick that trades
  THROUGH the limit (BUY: price < limit; SELL: price > limit; touching is not enough),
  at the limit.
* Charges come from the :class:`~mental_trader.execution.charges.ChargesTable` for the
  IST date of the tick, the instrument's segment and the order's product. An order the
  table cannot price (today before its first regime, an equity NRML order) is rejected
  at submission.
* Each fill's trade id is ``"P" + client id + "-1"``: unique, because client ids are.

Orders are worked from :meth:`PaperGateway.on_tick`, which the executor calls only for
symbols it has orders or positions in; a symbol without working orders costs one dict
lookup. Events (cancels, fills) go to the listener synchronously, as a broker's WebSocket
would deliver them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mental_trader.calendar import IST, ist_date
from mental_trader.errors import InvalidInputError
from mental_trader.execution.charges import ChargesTable, segment_for
from mental_trader.execution.orders import (
    EventListener,
    GatewayEvent,
    SubmitResult,
    instrument_for,
    round_to_tick,
)
from mental_trader.models import Fill, Instrument, OrderIntent, OrderStatus, OrderUpdate, Side
from mental_trader.storage.base import ns_to_dt

if TYPE_CHECKING:
    from mental_trader.config import Settings
    from mental_trader.risk import Clock

__all__ = ["PaperGateway"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _PaperOrder:
    intent: OrderIntent
    instrument: Instrument
    segment: str
    resting: bool = False  # a LIMIT that was not marketable on its first tick


class PaperGateway:
    """Simulated order execution on the live tick stream (see the module docstring).

    Args:
        charges: the charges table fills are priced with.
        clock: stamps acceptance and cancellation updates.
        half_spread_bps: half the bid/ask spread, basis points of the price.
        slippage_bps: extra adverse move on market fills, basis points of the price.
        instruments: tick size, lot size and type by symbol (default: NSE equity, tick
            0.05, lot 1).
    """

    name = "paper"

    def __init__(
        self,
        charges: ChargesTable,
        clock: Clock,
        *,
        half_spread_bps: float = 2.0,
        slippage_bps: float = 1.0,
        instruments: Mapping[str, Instrument] | None = None,
    ) -> None:
        if half_spread_bps < 0 or slippage_bps < 0:
            raise InvalidInputError("half-spread and slippage must be >= 0 bps")
        self.charges = charges
        self.clock = clock
        self.half_spread = half_spread_bps / 10_000
        self.adverse = (half_spread_bps + slippage_bps) / 10_000
        self.instruments: Mapping[str, Instrument] = instruments if instruments is not None else {}
        self._listener: EventListener | None = None
        self._working: dict[str, dict[str, _PaperOrder]] = {}  # symbol -> client id -> order

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        charges: ChargesTable,
        clock: Clock,
        instruments: Mapping[str, Instrument] | None = None,
    ) -> PaperGateway:
        """The paper gateway with PAPER_HALF_SPREAD_BPS and PAPER_SLIPPAGE_BPS."""
        return cls(
            charges,
            clock,
            half_spread_bps=settings.paper_half_spread_bps,
            slippage_bps=settings.paper_slippage_bps,
            instruments=instruments,
        )

    def set_listener(self, listener: EventListener) -> None:
        """Deliver later updates and fills to ``listener``."""
        self._listener = listener

    def working(self, symbol: str | None = None) -> list[OrderIntent]:
        """The orders not yet filled or cancelled (of one symbol, or all)."""
        books = [self._working.get(symbol, {})] if symbol else list(self._working.values())
        return [order.intent for book in books for order in book.values()]

    async def submit(self, intent: OrderIntent) -> SubmitResult:
        """Accept a MARKET or LIMIT order; it fills on a later tick."""
        problem = ""
        if intent.order_type not in ("MARKET", "LIMIT"):
            problem = f"paper trading supports MARKET and LIMIT, not {intent.order_type}"
        elif intent.order_type == "LIMIT" and not (intent.price and intent.price > 0):
            problem = "a LIMIT order needs a price > 0"
        instrument = instrument_for(self.instruments, intent.symbol)
        try:
            segment = segment_for(intent.product, instrument.instrument_type)
            self.charges.effective_from(self.clock.now().astimezone(IST).date())
        except InvalidInputError as exc:
            problem = problem or str(exc)
        if problem:
            log.warning("paper: rejected %s: %s", intent.client_id, problem)
            return SubmitResult(False, OrderStatus.REJECTED, None, problem)
        book = self._working.setdefault(intent.symbol, {})
        book[intent.client_id] = _PaperOrder(intent, instrument, segment)
        return SubmitResult(True, OrderStatus.OPEN, f"PAPER{intent.client_id}")

    async def cancel(self, client_id: str) -> None:
        """Cancel a working order (a no-op for one already filled or unknown)."""
        for symbol, book in self._working.items():
            if client_id in book:
                del book[client_id]
                if not book:
                    del self._working[symbol]
                self._emit(
                    OrderUpdate(
                        client_id=client_id,
                        event_id="paper-cancel",
                        status=OrderStatus.CANCELLED,
                        ts=self.clock.now(),
                        message="cancelled",
                    )
                )
                return

    def market_price(self, side: Side, price: float, tick: float) -> float:
        """The fill price of a market order on a print at ``price`` (never past the touch),
        at least one tick (a far out-of-the-money option trades at the minimum price)."""
        return max(round_to_tick(price * (1 + side.sign * self.adverse), tick, side), tick)

    def on_tick(self, symbol: str, ts_ns: int, price: float) -> None:
        """Work the symbol's orders against one trade print at ``price``."""
        book = self._working.get(symbol)
        if not book:
            return
        for client_id, order in list(book.items()):
            fill_price = self._fill_price(order, price)
            if fill_price is None:
                continue
            del book[client_id]
            self._emit(self._fill(order, ts_ns, fill_price))
        if not book:
            del self._working[symbol]

    def _fill_price(self, order: _PaperOrder, price: float) -> float | None:
        intent = order.intent
        market = self.market_price(intent.side, price, order.instrument.tick_size)
        if intent.order_type == "MARKET":
            return market
        limit = intent.price
        assert limit is not None
        sign = intent.side.sign  # +1: a BUY limit is a ceiling; -1: a SELL limit a floor
        if not order.resting and sign * (limit - market) >= 0:
            return market  # marketable on arrival: takes the touch (plus slippage)
        order.resting = True
        return limit if sign * (limit - price) > 0 else None  # traded through: at the limit

    def _fill(self, order: _PaperOrder, ts_ns: int, price: float) -> Fill:
        intent = order.intent
        try:
            charges = self.charges.order_total(
                ist_date(ts_ns), order.segment, intent.side, price, intent.qty, order.instrument
            )
        except InvalidInputError:  # a tick dated before the table (submission was checked)
            log.exception("paper: no charges for fill of %s; left at 0", intent.client_id)
            charges = 0.0
        return Fill(
            trade_id=f"P{intent.client_id}-1",
            client_id=intent.client_id,
            symbol=intent.symbol,
            side=intent.side,
            qty=intent.qty,
            price=price,
            ts=ns_to_dt(ts_ns),
            charges=charges,
        )

    def _emit(self, event: GatewayEvent) -> None:
        if self._listener is None:
            log.warning("paper: no listener for %s", event)
            return
        self._listener(event)
