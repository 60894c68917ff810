"""The fake exchange's view of the sim market: a symbol's full quote at any instant.

A :class:`Snapshot` is what Kite's ``/quote`` and a full-mode tick carry: last trade, the
day's OHLC so far (``close`` = the previous session's close), cumulative volume, VWAP,
the touch and five levels of depth. It is read from the sim market's ticks
(:meth:`SimOptions.day_ticks`, which covers underlyings, the index and options), so the
fake's quotes, ticks, candles and fills all come from one price path.

The touch: for an equity ``bid``/``ask`` straddle the last price by ``spread_ticks`` ticks
exactly as :meth:`SimBroker.quote` does; for an option they are the sim chain's quotes at
that instant. Depth quantities are deterministic per (symbol, tick).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from mental_trader.brokers.sim.market import ANCHOR, stable_seed
from mental_trader.brokers.sim.options import SimOptions
from mental_trader.calendar import ist_date
from mental_trader.errors import InvalidInputError
from mental_trader.options.chain import OptionChain
from mental_trader.storage.base import ns_to_dt

__all__ = ["DepthLevel", "MarketView", "Snapshot"]

_TICKS_PER_UNIT = 20  # 1 / 0.05
_LOOKBACK_SESSIONS = 10
_CACHE = 256


@dataclass(frozen=True, slots=True)
class DepthLevel:
    """One level of market depth."""

    price: float
    quantity: int
    orders: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A symbol's quote at an instant (prices in rupees, times ns UTC)."""

    symbol: str
    last_price: float
    last_quantity: int
    last_trade_ns: int
    timestamp_ns: int
    volume: int
    average_price: float
    open: float
    high: float
    low: float
    close: float
    bid: float  # 0.0: no bid
    ask: float  # 0.0: no offer
    buy: tuple[DepthLevel, ...]
    sell: tuple[DepthLevel, ...]
    oi: int
    is_index: bool

    @property
    def buy_quantity(self) -> int:
        """Total pending buy quantity (Kite's ``buy_quantity``)."""
        return sum(level.quantity for level in self.buy) * 20

    @property
    def sell_quantity(self) -> int:
        """Total pending sell quantity (Kite's ``sell_quantity``)."""
        return sum(level.quantity for level in self.sell) * 20

    @property
    def net_change(self) -> float:
        """Last price minus the previous close (0 without a close)."""
        return round(self.last_price - self.close, 2) if self.close else 0.0


@dataclass(frozen=True, slots=True)
class _Day:
    ts_ns: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    qty: npt.NDArray[np.float64]
    cum_volume: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    vwap: npt.NDArray[np.float64]


class MarketView:
    """Snapshots of the sim market (thread-safe; caches per symbol and day).

    Args:
        options: the sim market's options (its ``day_ticks`` serves every symbol).
        spread_ticks: an equity's quoted ask minus bid, in ticks of 0.05.
    """

    def __init__(self, options: SimOptions, *, spread_ticks: int = 2) -> None:
        self.options = options
        self.calendar = options.calendar
        self.spread_ticks = spread_ticks
        self._lock = threading.Lock()
        self._days: OrderedDict[tuple[str, date], _Day] = OrderedDict()
        self._chains: OrderedDict[tuple[str, date, int], OptionChain] = OrderedDict()

    def _day(self, symbol: str, day: date) -> _Day:
        key = (symbol, day)
        with self._lock:
            found = self._days.get(key)
        if found is not None:
            return found
        ticks = self.options.day_ticks(symbol, day)
        price = np.asarray(ticks.price)
        cum = np.asarray(ticks.cum_volume)
        inc = np.diff(cum, prepend=0.0)
        value = np.cumsum(inc * price)
        with np.errstate(invalid="ignore", divide="ignore"):
            vwap = np.where(cum > 0, value / np.where(cum > 0, cum, 1.0), price)
        made = _Day(
            ts_ns=np.asarray(ticks.ts_ns),
            price=price,
            qty=np.asarray(ticks.qty),
            cum_volume=cum,
            high=np.maximum.accumulate(price) if len(price) else price,
            low=np.minimum.accumulate(price) if len(price) else price,
            vwap=vwap,
        )
        with self._lock:
            self._days[key] = made
            while len(self._days) > _CACHE:
                self._days.popitem(last=False)
        return made

    def _previous_close(self, symbol: str, day: date) -> float:
        for session in reversed(self.calendar.previous_sessions(day, _LOOKBACK_SESSIONS + 1)[:-1]):
            if session < ANCHOR:
                break
            try:
                d = self._day(symbol, session)
            except InvalidInputError:
                return 0.0  # an option not listed then
            if len(d.price):
                return float(d.price[-1])
        return 0.0

    def snapshot(self, symbol: str, at_ns: int) -> Snapshot | None:
        """The quote of ``symbol`` at ``at_ns``: its last trade before it (within ten
        sessions), else None."""
        today = ist_date(at_ns)
        if today < ANCHOR:
            return None
        for session in reversed(self.calendar.previous_sessions(today, _LOOKBACK_SESSIONS)):
            if session < ANCHOR:
                break
            try:
                d = self._day(symbol, session)
            except InvalidInputError:
                continue  # an option not listed that session
            i = int(np.searchsorted(d.ts_ns, at_ns, side="left"))
            if i > 0:
                return self._build(symbol, session, d, i - 1, at_ns)
        return None

    def _build(self, symbol: str, session: date, d: _Day, i: int, at_ns: int) -> Snapshot:
        last = float(d.price[i])
        is_index = " " in symbol.partition(":")[2]
        last_ns = int(d.ts_ns[i])
        bid, ask, oi = self._touch(symbol, session, last, last_ns)
        buy, sell = _depth(symbol, last_ns, bid, ask, is_index)
        return Snapshot(
            symbol=symbol,
            last_price=last,
            last_quantity=int(d.qty[i]),
            last_trade_ns=last_ns,
            timestamp_ns=max(at_ns, last_ns),
            volume=int(d.cum_volume[i]),
            average_price=0.0 if is_index else round(float(d.vwap[i]), 2),
            open=float(d.price[0]),
            high=float(d.high[i]),
            low=float(d.low[i]),
            close=self._previous_close(symbol, session),
            bid=bid,
            ask=ask,
            buy=buy,
            sell=sell,
            oi=oi,
            is_index=is_index,
        )

    def _touch(
        self, symbol: str, session: date, last: float, last_ns: int
    ) -> tuple[float, float, int]:
        """(bid, ask, oi) at the tick of ``last_ns``."""
        if " " in symbol.partition(":")[2]:
            return 0.0, 0.0, 0
        if not symbol.startswith("NFO:"):
            bid_ticks = max(round(last * _TICKS_PER_UNIT) - self.spread_ticks // 2, 1)
            return (
                bid_ticks / _TICKS_PER_UNIT,
                (bid_ticks + self.spread_ticks) / _TICKS_PER_UNIT,
                0,
            )
        contract = self.options.contract(symbol, session)
        key = (contract.underlying.symbol, contract.expiry, last_ns)
        with self._lock:
            chain = self._chains.get(key)
        if chain is None:
            chain = self.options.chain(key[0], key[1], ns_to_dt(last_ns))
            with self._lock:
                self._chains[key] = chain
                while len(self._chains) > _CACHE:
                    self._chains.popitem(last=False)
        side = chain.ce if contract.option_type == "CE" else chain.pe
        row = side.symbols.index(symbol)
        bid, ask = float(side.bid[row]), float(side.ask[row])
        return (0.0 if np.isnan(bid) else bid), (0.0 if np.isnan(ask) else ask), int(side.oi[row])


def _depth(
    symbol: str, last_ns: int, bid: float, ask: float, is_index: bool
) -> tuple[tuple[DepthLevel, ...], tuple[DepthLevel, ...]]:
    """Five deterministic levels a side (empty for an index; none below one tick)."""
    if is_index:
        return (), ()
    seed = stable_seed("depth", symbol, last_ns)
    buy: list[DepthLevel] = []
    sell: list[DepthLevel] = []
    for k in range(5):
        qb = 1 + (seed >> (12 * k)) % 997
        qs = 1 + (seed >> (12 * k + 60)) % 997
        if bid > 0:
            price = round(bid - k / _TICKS_PER_UNIT, 2)
            if price > 0:
                buy.append(DepthLevel(price, qb, 1 + qb % 9))
        if ask > 0:
            sell.append(DepthLevel(round(ask + k / _TICKS_PER_UNIT, 2), qs, 1 + qs % 9))
    return tuple(buy), tuple(sell)
