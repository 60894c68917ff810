"""The broker interface: what the service needs from a broker, whichever it is.

So far: the instrument master and historical candles (backfill, warm-up), the live tick
stream (:meth:`Broker.subscribe`, yielding :class:`TickFrame` batches) and quotes
(:meth:`Broker.quote`, :meth:`Broker.ltp`). Later issues add orders (place / modify /
cancel / status, tagged with our client id), positions and the option chain; paper orders
are the executor's paper gateway, not the broker's. Implementations are also async context
managers that refuse to be used after :meth:`Broker.close`.

Conventions every implementation keeps:

* symbols are exchange-qualified (``"NSE:RELIANCE"``, ``"NSE:NIFTY 50"``);
* datetimes are timezone-aware; candle timestamps are int64 ns UTC, the bucket START,
  with buckets anchored at the session open (09:15 IST) like the Rust core's bars;
* a feed numbers its symbols 0..N-1 in subscription order (:attr:`Feed.symbols`), the
  ids the Rust :class:`~mental_trader.core.Engine` keys its state by;
* tick quantities are the day's CUMULATIVE volume, as Kite sends them (run the Engine
  with ``volume_mode="cumulative"``); an index has volume 0;
* a broker's own failure (network, refusal, rate limit) raises
  :class:`~mental_trader.errors.BrokerError`; a malformed request (naive datetime, a
  range in the future) raises :class:`~mental_trader.errors.InvalidInputError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import NamedTuple, Protocol, Self

import numpy as np
import numpy.typing as npt

from mental_trader.models import Instrument
from mental_trader.storage.base import Candles

__all__ = ["Broker", "Feed", "Quote", "TickFrame"]


class TickFrame(NamedTuple):
    """The ticks of one feed frame: a short window of time, all subscribed symbols.

    The first four fields are exactly the arguments of
    :meth:`mental_trader.core.Engine.on_frame` (``engine.on_frame(frame.ts_ns,
    frame.price, frame.qty, frame.symbol)``): equal-length, 1-D, C-contiguous, read-only
    arrays, ordered by arrival (= ``ts_ns`` for the sim). A frame is never empty.

    Attributes:
        ts_ns: int64 exchange timestamps, ns UTC.
        price: float64 last traded prices.
        qty: float64 CUMULATIVE day volume after the tick (0 for an index).
        symbol: int64 symbol ids, indices into :attr:`Feed.symbols`.
        end_ns: the frame's window end (ns UTC): every tick of the frame has
            ``ts_ns < end_ns``.
    """

    ts_ns: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    qty: npt.NDArray[np.float64]
    symbol: npt.NDArray[np.int64]
    end_ns: int


@dataclass(frozen=True, slots=True)
class Quote:
    """A symbol's touch and last trade.

    Attributes:
        symbol: exchange-qualified symbol.
        last_price: last traded price.
        bid: best bid, on the tick grid, ``bid < ask``.
        ask: best ask, on the tick grid.
        volume: the day's cumulative traded volume (0 for an index).
        last_trade_ns: time of the last trade, ns UTC.
    """

    symbol: str
    last_price: float
    bid: float
    ask: float
    volume: float
    last_trade_ns: int


class Feed(Protocol):
    """A live tick stream: an async iterator of :class:`TickFrame` in time order.

    Iterate it once (``async for frame in feed``); it is an async context manager and
    :meth:`aclose` ends the stream (iteration then stops). Frames carry symbol ids;
    :attr:`symbols` maps them back.
    """

    @property
    def symbols(self) -> tuple[str, ...]:
        """The subscribed symbols; a frame's symbol id ``i`` is ``symbols[i]``."""
        ...

    def __aiter__(self) -> AsyncIterator[TickFrame]:
        """The frames (a feed can be iterated once)."""
        ...

    def watermark_ns(self) -> int:
        """Every tick before this time (ns UTC) has been yielded.

        Drive timer closes from it (``engine.on_time(feed.watermark_ns())``), not from a
        clock: a consumer that lags the clock would otherwise close bars whose ticks are
        still to come, and those ticks would be dropped as late.
        """
        ...

    async def aclose(self) -> None:
        """End the stream; safe to call twice."""
        ...

    async def __aenter__(self) -> Self:
        """Return the feed."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """:meth:`aclose` the feed."""
        ...


class Broker(Protocol):
    """A broker: instruments, history, the tick stream and quotes (see the module docstring)."""

    @property
    def name(self) -> str:
        """Short identifier, e.g. ``"sim"`` or ``"kite"``."""
        ...

    async def instruments(self) -> list[Instrument]:
        """The instruments this broker trades or quotes (for the sim: the watchlist).

        Raises:
            BrokerError: the broker failed.
        """
        ...

    async def history(
        self, symbol: str, timeframe_s: int, start: datetime, end: datetime
    ) -> Candles:
        """Closed candles of ``symbol`` with ``start <= ts < end``, ordered by ts.

        Args:
            symbol: exchange-qualified symbol.
            timeframe_s: bar length in seconds (60 for 1-minute bars).
            start: aware datetime, inclusive.
            end: aware datetime, exclusive; not in the future.

        Returns:
            Columns as :func:`mental_trader.core.build_bars` returns them (``ts`` int64 ns
            UTC; ``open``, ``high``, ``low``, ``close``, ``volume`` float64; ``ticks``
            int64). Only bars already closed are returned, never a forming one. A bucket
            without trades has no bar.

        Raises:
            InvalidInputError: naive datetimes, or ``end`` in the future.
            BrokerError: the broker failed or does not know the symbol.
        """
        ...

    async def subscribe(self, symbols: Sequence[str], *, resume_from_ns: int | None = None) -> Feed:
        """Start a live tick stream of ``symbols`` (ids 0..N-1 in this order).

        Args:
            symbols: exchange-qualified symbols, no duplicates; an index ticks with
                volume 0.
            resume_from_ns: where the caller's stored bars end (ns UTC): a feed that can
                replay (the sim) starts there; a live broker ignores it.

        Returns:
            The feed, not yet iterated: ``async with await broker.subscribe(s) as feed:
            async for frame in feed: ...``.

        Raises:
            InvalidInputError: no symbols, a duplicate or malformed symbol.
            BrokerError: the broker is closed or refused the subscription.
        """
        ...

    async def quote(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """The current :class:`Quote` of each symbol (keyed by symbol).

        Raises:
            InvalidInputError: a malformed symbol.
            BrokerError: the broker failed or does not know a symbol.
        """
        ...

    async def ltp(self, symbols: Sequence[str]) -> dict[str, float]:
        """The last traded price of each symbol (keyed by symbol).

        Raises:
            InvalidInputError: a malformed symbol.
            BrokerError: the broker failed or does not know a symbol.
        """
        ...

    async def close(self) -> None:
        """Release connections; safe to call twice."""
        ...
