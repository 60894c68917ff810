"""The Kite broker: :class:`~mental_trader.brokers.base.Broker` over Kite Connect v3.

:class:`KiteBroker` puts the pieces together: the REST client
(:class:`~mental_trader.brokers.kite.rest.KiteRest`) for the instrument master, candles,
quotes and option chains, and a :class:`~mental_trader.brokers.kite.feed.KiteFeed` over a
:class:`~mental_trader.brokers.kite.ticker.KiteTicker` for the live ticks. Orders are the
live gateway's (:mod:`mental_trader.execution.live`), which shares this broker's REST
client (:attr:`KiteBroker.rest`).

Symbols are Kite's ``EXCHANGE:TRADINGSYMBOL`` (``"NSE:INFY"``, ``"NSE:NIFTY 50"``,
``"NFO:NIFTY26MAR24000CE"``); the instrument master maps them to instrument tokens. It is
downloaded once per trading day, the day turning at :data:`MASTER_READY_IST` (Kite
regenerates it each morning and flushes F&O tokens at every expiry), for the exchanges in
``exchanges``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

import numpy as np

from mental_trader.brokers.base import Quote
from mental_trader.brokers.kite.feed import KiteFeed
from mental_trader.brokers.kite.payloads import KiteQuote
from mental_trader.brokers.kite.rest import KiteRest
from mental_trader.brokers.kite.ticker import KiteTicker
from mental_trader.calendar import ist_date
from mental_trader.errors import BrokerError, InvalidInputError
from mental_trader.models import Instrument
from mental_trader.options.chain import OptionChain, OptionSide
from mental_trader.storage.base import Candles, dt_to_ns

if TYPE_CHECKING:
    from mental_trader.config import Settings

__all__ = ["MASTER_READY_IST", "KiteBroker"]

log = logging.getLogger(__name__)


#: The IST time by which Kite has published the day's instrument dump (the morning
#: regeneration; F&O tokens change at every expiry). A dump fetched earlier is refetched.
MASTER_READY_IST = time(8, 30)
_MASTER_READY_NS = (MASTER_READY_IST.hour * 3600 + MASTER_READY_IST.minute * 60) * 1_000_000_000


def _utc_now() -> datetime:
    return datetime.now(UTC)


class KiteBroker:
    """Kite Connect v3 as a :class:`~mental_trader.brokers.base.Broker` (module docstring).

    Args:
        rest: the REST client, logged in (its access token set); the broker closes it.
        api_key: the app's API key (the WebSocket URL carries it).
        ws_url: the WebSocket root (``BROKER_WS_URL``).
        exchanges: the exchanges whose instruments are loaded (``NSE`` holds the indices;
            ``NFO`` the futures and options).
        now: the market clock (aware; the wall clock, or a test's simulated one).
        silence_s: the WebSocket watchdog (no frame for this long = a dead socket).
        lateness_s: how far the feed's watermark stays behind the newest exchange time.
        on_reconnect: awaited after each WebSocket reconnect and its backfill (the live
            gateway re-reads the order book there).
        on_auth_failure: called once when Kite refuses the access token on the WebSocket.
        on_order: receives each order update the WebSocket carries (the live gateway's).
        freeze_qty: NSE freeze quantities by options name (FREEZE_QTY): not in Kite's
            dump, they go onto the F&O instruments so larger orders are autosliced.

    The three callbacks are attributes too: the service sets them once the gateway exists,
    before it subscribes.
    """

    name = "kite"

    def __init__(
        self,
        rest: KiteRest,
        *,
        api_key: str,
        ws_url: str,
        exchanges: Sequence[str] = ("NSE", "NFO"),
        now: Callable[[], datetime] = _utc_now,
        silence_s: float = 5.0,
        lateness_s: float = 1.0,
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
        on_auth_failure: Callable[[str], None] | None = None,
        on_order: Callable[[Mapping[str, Any]], None] | None = None,
        freeze_qty: Mapping[str, int] | None = None,
    ) -> None:
        self.rest = rest
        self.freeze_qty = dict(freeze_qty or {})
        self._api_key = api_key
        self.ws_url = ws_url
        self.exchanges = tuple(exchanges)
        self._now = now
        self.silence_s = silence_s
        self.lateness_s = lateness_s
        self.on_reconnect = on_reconnect
        self.on_auth_failure = on_auth_failure
        self.on_order = on_order
        self._master: dict[str, Instrument] = {}
        self._master_day: date | None = None
        self._master_lock = asyncio.Lock()
        self._feeds: list[KiteFeed] = []
        self._closed = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        access_token: str | None = None,
        now: Callable[[], datetime] = _utc_now,
        silence_s: float = 5.0,
    ) -> KiteBroker:
        """A broker for ``settings`` (BROKER_REST_URL, BROKER_WS_URL, BROKER_API_KEY).

        Args:
            settings: the configuration.
            access_token: the session token (default: BROKER_ACCESS_TOKEN).
            now: the market clock.
            silence_s: the WebSocket watchdog.

        Raises:
            InvalidInputError: no API key.
        """
        if settings.broker_api_key is None:
            raise InvalidInputError("Kite needs BROKER_API_KEY")
        rest = KiteRest.from_settings(settings, clock=now)
        if access_token is not None:
            rest.access_token = access_token
        return cls(
            rest,
            api_key=settings.broker_api_key.get_secret_value(),
            ws_url=settings.broker_ws_url,
            now=now,
            silence_s=silence_s,
            freeze_qty=settings.freeze_qty,
        )

    def __repr__(self) -> str:
        return f"KiteBroker({self.rest!r})"

    async def __aenter__(self) -> KiteBroker:
        self._check_open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the feeds and the REST client; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for feed in self._feeds:
            await feed.aclose()
        await self.rest.close()

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerError("the Kite broker is closed")

    # -- instruments ---------------------------------------------------------------------

    async def instruments(self) -> list[Instrument]:
        """The instrument master of :attr:`exchanges` (downloaded once per IST day).

        Raises:
            BrokerError: Kite failed (the previous day's master is not used for trading).
        """
        return list((await self._instruments()).values())

    async def _instruments(self) -> dict[str, Instrument]:
        self._check_open()
        # Kite regenerates the dump each morning: before MASTER_READY_IST it is yesterday's.
        today = ist_date(dt_to_ns(self._now()) - _MASTER_READY_NS)
        async with self._master_lock:
            if self._master_day != today:
                master: dict[str, Instrument] = {}
                for exchange in self.exchanges:
                    listed = await self.rest.instruments(exchange, freeze_qty=self.freeze_qty)
                    for inst in listed:
                        master[inst.symbol] = inst
                self._master, self._master_day = master, today
                log.info("Kite instrument master: %d instrument(s)", len(master))
        return self._master

    async def _instrument(self, symbol: str) -> Instrument:
        inst = (await self._instruments()).get(symbol)
        if inst is None or inst.instrument_token is None:
            raise BrokerError(f"Kite does not list {symbol}")
        return inst

    # -- history and quotes --------------------------------------------------------------

    async def history(
        self, symbol: str, timeframe_s: int, start: datetime, end: datetime
    ) -> Candles:
        """Closed candles of ``symbol`` with ``start <= ts < end`` (see the Broker protocol).

        Raises:
            InvalidInputError: naive datetimes, ``end`` in the future, or a timeframe Kite
                has no interval for.
            BrokerError: Kite failed or does not list the symbol.
        """
        inst = await self._instrument(symbol)
        assert inst.instrument_token is not None
        return await self.rest.history(inst.instrument_token, timeframe_s, start, end)

    async def quote(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """The touch and last trade of each symbol (``GET /quote``, 1 request a second).

        Raises:
            InvalidInputError: a malformed symbol.
            BrokerError: Kite failed or does not know a symbol.
        """
        self._check_open()
        quotes = await self.rest.quote(list(symbols))
        missing = [s for s in symbols if s not in quotes]
        if missing:
            raise BrokerError(f"Kite returned no quote for {missing}")
        out: dict[str, Quote] = {}
        for symbol in symbols:
            q = quotes[symbol]
            bid, ask = _touch(q)
            traded = q.last_trade_time or q.timestamp
            out[symbol] = Quote(
                symbol=symbol,
                last_price=q.last_price,
                bid=bid,
                ask=ask,
                volume=float(q.volume),
                last_trade_ns=dt_to_ns(traded) if traded is not None else 0,
            )
        return out

    async def ltp(self, symbols: Sequence[str]) -> dict[str, float]:
        """The last traded price of each symbol (``GET /quote/ltp``).

        Raises:
            BrokerError: Kite failed or does not know a symbol.
        """
        self._check_open()
        prices = await self.rest.ltp(list(symbols))
        missing = [s for s in symbols if s not in prices]
        if missing:
            raise BrokerError(f"Kite returned no price for {missing}")
        return {s: prices[s] for s in symbols}

    async def option_chain(self, underlying: str, expiry: date) -> OptionChain:
        """The chain of ``underlying`` for ``expiry``: every listed strike, quoted at once.

        Raises:
            InvalidInputError: no options of ``underlying`` expire on ``expiry``.
            BrokerError: Kite failed.
        """
        master = await self._instruments()
        contracts = [
            i
            for i in master.values()
            if i.underlying == underlying
            and i.expiry == expiry
            and i.instrument_type in ("CE", "PE")
            and i.strike is not None
        ]
        if not contracts:
            raise InvalidInputError(f"no options of {underlying} expire on {expiry}")
        strikes = sorted({float(i.strike or 0.0) for i in contracts})
        quotes = await self.rest.quote([underlying, *(i.symbol for i in contracts)])
        if underlying not in quotes:
            raise BrokerError(f"Kite returned no quote for {underlying}")
        sides = {"CE": _SideBuilder(strikes), "PE": _SideBuilder(strikes)}
        for inst in contracts:
            sides[inst.instrument_type].add(inst, quotes.get(inst.symbol))
        first = contracts[0]
        return OptionChain(
            underlying=underlying,
            expiry=expiry,
            ts=self._now(),
            spot=quotes[underlying].last_price,
            strike=np.asarray(strikes, dtype=np.float64),
            ce=sides["CE"].build(),
            pe=sides["PE"].build(),
            lot_size=first.lot_size,
            tick_size=first.tick_size,
            freeze_qty=first.freeze_qty,
        )

    # -- the live stream -----------------------------------------------------------------

    async def subscribe(
        self, symbols: Sequence[str], *, resume_from_ns: int | None = None
    ) -> KiteFeed:
        """Connect the WebSocket and stream ``symbols`` in full mode (see :class:`KiteFeed`).

        ``resume_from_ns`` is ignored: a live feed cannot replay; the service's warm-up
        fetched the candles up to now.

        Raises:
            InvalidInputError: no symbols, or a duplicate.
            BrokerError: Kite does not list a symbol, or there is no access token.
            FeedDisconnected: the WebSocket did not connect (or refused the token).
        """
        self._check_open()
        if not symbols or len(set(symbols)) != len(symbols):
            raise InvalidInputError("subscribe needs distinct symbols, at least one")
        token = self.rest.access_token
        if token is None:
            raise BrokerError("Kite has no access token: log in first")
        tokens = []
        for symbol in symbols:
            inst = await self._instrument(symbol)
            assert inst.instrument_token is not None
            tokens.append(inst.instrument_token)
        ticker = KiteTicker(
            self.ws_url,
            self._api_key,
            token,
            on_order=self.on_order,
            on_auth_failure=self.on_auth_failure,
            silence_s=self.silence_s,
        )
        feed = KiteFeed(
            ticker,
            symbols,
            tokens,
            history=self.history,
            now=self._now,
            lateness_s=self.lateness_s,
            on_reconnect=self.on_reconnect,
        )
        self._feeds = [f for f in self._feeds if not f.closed]
        self._feeds.append(feed)
        return await feed.open()


def _touch(quote: KiteQuote) -> tuple[float, float]:
    """Best bid and ask of a quote (NaN for an empty side)."""
    bid = quote.bids[0] if quote.bids and quote.bids[0].quantity else None
    ask = quote.asks[0] if quote.asks and quote.asks[0].quantity else None
    return (bid.price if bid else math.nan), (ask.price if ask else math.nan)


class _SideBuilder:
    """Fills one side (CE or PE) of a chain, row by strike."""

    def __init__(self, strikes: Sequence[float]) -> None:
        n = len(strikes)
        self.row = {k: i for i, k in enumerate(strikes)}
        self.symbols = [""] * n
        self.bid, self.ask, self.last = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
        self.oi, self.volume = np.zeros(n), np.zeros(n)

    def add(self, inst: Instrument, quote: KiteQuote | None) -> None:
        i = self.row[float(inst.strike or 0.0)]
        self.symbols[i] = inst.symbol
        if quote is None:
            return
        self.bid[i], self.ask[i] = _touch(quote)
        if quote.volume or quote.last_price:
            self.last[i] = quote.last_price
        self.oi[i], self.volume[i] = quote.oi, quote.volume

    def build(self) -> OptionSide:
        return OptionSide(tuple(self.symbols), self.bid, self.ask, self.last, self.oi, self.volume)
