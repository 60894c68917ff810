"""The simulated broker: the :class:`~mental_trader.brokers.base.Broker` over a SimMarket.

Instruments are the watchlist (exchange-qualified, tick size 0.05, lot size 1) plus the
NIFTY 50 index. History is the bars of the market's ticks (see
:mod:`mental_trader.brokers.sim.market`), so it matches what the live sim stream will
build, bar for bar. Like a real broker it never shows the future: a request ending after
"now" is refused, and a bar still forming at "now" is left out.

The simulated exchange lists every well-formed symbol: ``history`` works for a symbol
outside the watchlist too (a new symbol gets a profile derived from its name).

Live side: :meth:`SimBroker.subscribe` returns a :class:`~mental_trader.brokers.sim.feed.SimFeed`
on the broker's simulated clock (see :mod:`mental_trader.brokers.sim.clock`), and
:meth:`SimBroker.quote` / :meth:`SimBroker.ltp` read the market's last trade. Quotes and
history see the market as of the broker's "now"; while feeds are open, never later than
what they have streamed (:meth:`SimFeed.watermark_ns`), so a consumer running behind an
accelerated clock is never quoted a price it has not been sent yet. Orders are not the
broker's: paper trading is the executor's paper gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from mental_trader.brokers.base import Quote
from mental_trader.brokers.sim.clock import Clock, SimClock
from mental_trader.brokers.sim.feed import SimFeed
from mental_trader.brokers.sim.market import (
    ANCHOR,
    TICK_SIZE,
    SimMarket,
    is_index_symbol,
    stable_seed,
)
from mental_trader.brokers.sim.options import SimOptions
from mental_trader.calendar import TradingCalendar, ist_date
from mental_trader.errors import BrokerError, InvalidInputError
from mental_trader.models import Instrument
from mental_trader.options.chain import OptionChain
from mental_trader.storage.base import CANDLE_COLUMNS, Candles, dt_to_ns, empty_candles, ns_to_dt

if TYPE_CHECKING:
    from mental_trader.config import Settings

__all__ = ["NIFTY_50", "SimBroker"]

#: The index every sim market lists (the options layer's default underlying).
NIFTY_50 = "NSE:NIFTY 50"
_MAX_TIMEFRAME_S = 86_400
_TICKS_PER_UNIT = 20  # 1 / TICK_SIZE
_QUOTE_LOOKBACK_SESSIONS = 10


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} {value!r} is naive: give a time zone")


def _instrument(symbol: str) -> Instrument:
    exchange, _, name = symbol.partition(":")
    index = is_index_symbol(symbol)
    return Instrument(
        symbol=symbol,
        exchange=exchange,
        tradingsymbol=name,
        instrument_token=stable_seed("token", symbol) & 0x7FFF_FFFF,
        name=name,
        segment="INDICES" if index else exchange,
        instrument_type="INDEX" if index else "EQ",
        tick_size=TICK_SIZE,
        lot_size=1,
    )


class SimBroker:
    """Broker over the deterministic simulated market.

    An async context manager: ``async with SimBroker(...) as broker``. After
    :meth:`close` every call raises :class:`BrokerError`.

    Args:
        watchlist: exchange-qualified symbols (``"NSE:RELIANCE"``).
        seed: the market's seed.
        calendar: sessions and hours (default: XBOM with no overrides).
        now: what "now" is for history and quotes (aware datetimes); default
            ``clock.now`` when a clock is given, else the wall clock.
        market: an existing market to share (e.g. with the live sim stream); its seed and
            calendar then win over ``seed`` and ``calendar``.
        clock: the simulated clock the feeds run on (e.g.
            ``SimClock.for_session(calendar, speed=settings.sim_speed)``); default a
            real-time :class:`SimClock` starting at ``now()``.
        spread_ticks: quoted ask minus bid in ticks of 0.05, >= 1.
        frame_ms: default feed frame length, simulated ms.

    Raises:
        InvalidInputError: a malformed symbol, both ``now`` and ``clock``, or
            ``spread_ticks < 1``.
    """

    name = "sim"

    def __init__(
        self,
        watchlist: Sequence[str],
        *,
        seed: int = 42,
        calendar: TradingCalendar | None = None,
        now: Callable[[], datetime] | None = None,
        market: SimMarket | None = None,
        clock: Clock | None = None,
        spread_ticks: int = 2,
        frame_ms: int = 50,
    ) -> None:
        for symbol in watchlist:
            _check_symbol(symbol)
        if now is not None and clock is not None:
            raise InvalidInputError("give the sim broker a clock or a now function, not both")
        if spread_ticks < 1:
            raise InvalidInputError(f"spread_ticks must be >= 1, got {spread_ticks}")
        self.watchlist = tuple(dict.fromkeys(watchlist))
        self.market = market or SimMarket(seed, calendar or TradingCalendar())
        #: The market's options; also the tick source of feeds (underlyings and options).
        self.options = SimOptions(self.market)
        self.calendar = self.market.calendar
        self._now = now or (clock.now if clock is not None else _wall_clock)
        self.clock: Clock = clock or SimClock(self._now(), 1.0)
        self.spread_ticks = spread_ticks
        self.frame_ms = frame_ms
        self._feeds: list[SimFeed] = []
        self._closed = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        calendar: TradingCalendar | None = None,
        now: Callable[[], datetime] | None = None,
        clock: Clock | None = None,
    ) -> SimBroker:
        """The sim broker the settings describe (watchlist, seed, calendar overrides).

        The clock is the caller's: the live service passes
        ``SimClock.for_session(calendar, speed=settings.sim_speed)``; without one (e.g.
        backfill) history runs on the wall clock.
        """
        calendar = calendar or TradingCalendar(
            extra_holidays=settings.extra_holidays,
            extra_sessions=settings.extra_sessions,
            session_start=settings.session_start,
            session_end=settings.session_end,
        )
        return cls(
            settings.watchlist, seed=settings.sim_seed, calendar=calendar, now=now, clock=clock
        )

    async def __aenter__(self) -> SimBroker:
        self._check_open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the broker and its feeds; safe to call twice."""
        self._closed = True
        feeds, self._feeds = self._feeds, []
        for feed in feeds:
            await feed.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerError("the sim broker is closed")

    async def instruments(self) -> list[Instrument]:
        """The watchlist and the NIFTY 50 index, in that order, then the option contracts
        listed on the current session (the next one outside sessions), like a broker's daily
        instrument dump."""
        self._check_open()
        symbols = dict.fromkeys((*self.watchlist, NIFTY_50))
        now = self._now()
        _require_aware(now, "now")
        day = ist_date(dt_to_ns(now))
        for _ in range(15):  # the listing day: today if a session, else the next session
            if self.calendar.is_session(day):
                break
            day += timedelta(days=1)
        options = await asyncio.to_thread(self.options.instruments, day)
        return [_instrument(symbol) for symbol in symbols] + options

    async def option_chain(self, underlying: str, expiry: date) -> OptionChain:
        """The option chain of ``underlying`` for ``expiry``, as of the market's now.

        Raises:
            InvalidInputError: no options on that underlying, or the expiry is not listed.
            BrokerError: the broker is closed.
        """
        self._check_open()
        now = self._now()
        _require_aware(now, "now")
        at = ns_to_dt(self._market_now_ns(now))
        return await asyncio.to_thread(self.options.chain, underlying, expiry, at)

    async def history(
        self, symbol: str, timeframe_s: int, start: datetime, end: datetime
    ) -> Candles:
        """Closed bars of ``symbol`` with ``start <= ts < end`` (see :class:`Broker`).

        The ticks are generated in a worker thread, so a long range does not stall the
        event loop.

        Raises:
            InvalidInputError: naive datetimes, ``end`` after now, a malformed symbol, a
                timeframe outside 1..86400 s, a day before the market's anchor.
            BrokerError: the broker is closed.
        """
        self._check_open()
        _check_symbol(symbol)
        _require_aware(start, "start")
        _require_aware(end, "end")
        now = self._now()
        _require_aware(now, "now")
        now_ns = self._market_now_ns(now)
        if end > now:
            raise InvalidInputError(
                f"history of {symbol} up to {end.isoformat()} is in the future "
                f"(now is {now.isoformat()})"
            )
        if not 1 <= timeframe_s <= _MAX_TIMEFRAME_S:
            raise InvalidInputError(f"timeframe_s must be in 1..86400, got {timeframe_s}")
        start_ns, end_ns = dt_to_ns(start), dt_to_ns(end)
        if start_ns >= end_ns:
            return empty_candles()
        days = self.calendar.sessions(ist_date(start_ns), ist_date(end_ns - 1))
        return await asyncio.to_thread(
            self._history, symbol, timeframe_s, days, start_ns, end_ns, now_ns
        )

    def _history(
        self,
        symbol: str,
        timeframe_s: int,
        days: list[date],
        start_ns: int,
        end_ns: int,
        now_ns: int,
    ) -> Candles:
        blocks: list[Candles] = []
        tf_ns = timeframe_s * 1_000_000_000
        for day in days:
            bars = self.market.bars(symbol, day, timeframe_s)
            ts = bars["ts"]
            closes_at = np.minimum(ts + tf_ns, self.calendar.session_bounds_ns(day)[1])
            keep = (ts >= start_ns) & (ts < end_ns) & (closes_at <= now_ns)
            blocks.append({name: col[keep] for name, col in bars.items()})
        if not blocks:
            return empty_candles()
        return {name: np.concatenate([b[name] for b in blocks]) for name in CANDLE_COLUMNS}

    # ----------------------------------------------------------------- live side

    async def subscribe(
        self,
        symbols: Sequence[str],
        *,
        resume_from_ns: int | None = None,
        frame_ms: int | None = None,
    ) -> SimFeed:
        """A live tick stream of ``symbols`` on the broker's clock (ids 0..N-1 in order).

        Args:
            symbols: exchange-qualified symbols, no duplicates (``"NSE:NIFTY 50"`` ticks
                with volume 0).
            resume_from_ns: start here (ns UTC) instead of at the clock's time: a
                restarted service passes the ``end_ns`` of the last frame it processed.
            frame_ms: frame length in simulated ms (default the broker's ``frame_ms``).

        Returns:
            The feed, not yet iterated (see :class:`SimFeed`).

        Raises:
            InvalidInputError: no symbols, a duplicate or malformed symbol, ``frame_ms < 1``.
            BrokerError: the broker is closed.
        """
        self._check_open()
        for symbol in symbols:
            _check_symbol(symbol)
        feed = SimFeed(
            self.options,
            self.clock,
            symbols,
            frame_ms=self.frame_ms if frame_ms is None else frame_ms,
            resume_from_ns=resume_from_ns,
        )
        self._feeds = [f for f in self._feeds if not f.closed]
        self._feeds.append(feed)
        return feed

    async def quote(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """Last trade and touch of each symbol, as of the market's now.

        ``bid`` and ``ask`` straddle the last price by ``spread_ticks`` ticks of 0.05
        (``bid = last - spread_ticks // 2`` ticks, ``ask = bid + spread_ticks`` ticks), so
        they are on the tick grid and ``bid < ask``. Before a session's first trade the
        last trade is the previous session's.

        Raises:
            InvalidInputError: a malformed symbol, a time before the market's anchor.
            BrokerError: the broker is closed.
        """
        self._check_open()
        for symbol in symbols:
            _check_symbol(symbol)
        now = self._now()
        _require_aware(now, "now")
        at_ns = self._market_now_ns(now)
        return await asyncio.to_thread(self._quotes, tuple(dict.fromkeys(symbols)), at_ns)

    async def ltp(self, symbols: Sequence[str]) -> dict[str, float]:
        """Last traded price of each symbol, as of the market's now (see :meth:`quote`).

        Raises:
            InvalidInputError: a malformed symbol, a time before the market's anchor.
            BrokerError: the broker is closed.
        """
        quotes = await self.quote(symbols)
        return {symbol: q.last_price for symbol, q in quotes.items()}

    def _market_now_ns(self, now: datetime) -> int:
        """``now``, but never after what an open feed has streamed."""
        now_ns = dt_to_ns(now)
        for feed in self._feeds:
            if not feed.closed:
                now_ns = min(now_ns, feed.watermark_ns())
        return now_ns

    def _quotes(self, symbols: tuple[str, ...], at_ns: int) -> dict[str, Quote]:
        return {symbol: self._quote(symbol, at_ns) for symbol in symbols}

    def _quote(self, symbol: str, at_ns: int) -> Quote:
        """The quote from the last tick of ``symbol`` before ``at_ns``."""
        day = ist_date(at_ns)
        if day < ANCHOR:
            raise InvalidInputError(f"the simulated market starts on {ANCHOR}")
        days = self.calendar.previous_sessions(day, _QUOTE_LOOKBACK_SESSIONS)
        for session in reversed(days):
            if session < ANCHOR:
                break
            try:
                ticks = self.options.day_ticks(symbol, session)
            except InvalidInputError:
                continue  # an option not listed that session
            i = int(np.searchsorted(ticks.ts_ns, at_ns, side="left"))
            if i > 0:
                last = float(ticks.price[i - 1])
                bid_ticks = max(round(last * _TICKS_PER_UNIT) - self.spread_ticks // 2, 1)
                return Quote(
                    symbol=symbol,
                    last_price=last,
                    bid=bid_ticks / _TICKS_PER_UNIT,
                    ask=(bid_ticks + self.spread_ticks) / _TICKS_PER_UNIT,
                    volume=float(ticks.cum_volume[i - 1]),
                    last_trade_ns=int(ticks.ts_ns[i - 1]),
                )
        raise BrokerError(f"no trade of {symbol} in the {len(days)} sessions before {day}")


def _check_symbol(symbol: str) -> None:
    exchange, sep, name = symbol.partition(":")
    if not sep or not exchange or not name or name != name.strip():
        raise InvalidInputError(f"malformed symbol {symbol!r}: use EXCHANGE:NAME, e.g. NSE:INFY")
