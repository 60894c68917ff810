"""The fake Kite server: REST (uvicorn + Starlette) and WebSocket (websockets) on loopback.

    async with FakeKite(watchlist=["NSE:INFY"], session_day=date(2026, 3, 2), speed=60) as fk:
        fk.rest_url, fk.ws_url, fk.api_key, fk.access_token   # ready to use
        fk.faults.ws_silent = True                            # flip a fault

REST and WebSocket listen on two ephemeral ports of 127.0.0.1 by default. The market is
the sim market (:class:`~mental_trader.brokers.sim.SimBroker`) on a
:class:`~mental_trader.brokers.sim.clock.SimClock` starting at the session's open (or at
``start``) and running ``speed`` times real time. An access token is issued at start, so
tests can skip the login; :meth:`FakeKite.issue_request_token` hands out what Kite's login
redirect would, for tests of the login itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Generator, Sequence
from datetime import date, datetime
from typing import Any

import uvicorn
from websockets.asyncio.server import Server, serve

from mental_trader.brokers.sim import SimBroker
from mental_trader.brokers.sim.clock import Clock, SimClock
from mental_trader.calendar import TradingCalendar, ist_date
from mental_trader.errors import InvalidInputError
from mental_trader.storage.base import ns_to_dt
from mental_trader.testing.fake_kite.envelope import KiteError, ist_text, sha256_hex
from mental_trader.testing.fake_kite.faults import Faults, RateLimits, RateViolation
from mental_trader.testing.fake_kite.instruments import KiteInstrument, TokenRegistry
from mental_trader.testing.fake_kite.market import MarketView
from mental_trader.testing.fake_kite.orders import USER_ID, OrderBook
from mental_trader.testing.fake_kite.rest import build_app
from mental_trader.testing.fake_kite.ws import WsHub

__all__ = ["DEFAULT_WATCHLIST", "FakeKite"]

DEFAULT_WATCHLIST = ("NSE:RELIANCE", "NSE:INFY", "NSE:ICICIBANK")
_MATCH_EVERY_S = 0.02
_REQUEST_TOKEN_TTL_S = 300.0
_MIN_FRAME_REAL_S = 0.05
# The websockets library logs request lines (with the access token) at DEBUG: keep it quiet.
_WIRE_LOG = logging.getLogger("mental_trader.testing.fake_kite.wire")
_WIRE_LOG.setLevel(logging.WARNING)


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the fake is embedded in tests and the CLI."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InvalidInputError(
            f"the fake Kite server listens on loopback only (127.0.0.0/8, ::1), not {host!r}"
        )


class FakeKite:
    """A local fake of Kite Connect v3 fed by the sim market (see the module docstring).

    An async context manager; it cannot be reopened after it closed.

    Args:
        host: loopback address to bind (anything else is refused).
        port: REST port (0: ephemeral).
        ws_port: WebSocket port (0: ephemeral).
        api_key: the app's API key.
        api_secret: the app's API secret (checksums).
        watchlist: the NSE symbols listed besides the NIFTY 50 index and the options.
        seed: the sim market's seed.
        session_day: the clock starts at this day's session open (or the last session
            before it); default today's.
        start: start the clock here instead (aware); overrides ``session_day``.
        speed: simulated seconds per real second.
        clock: a ready clock (e.g. a ManualClock); overrides ``session_day``/``start``/``speed``.
        calendar: the trading calendar (default XBOM).
        tick_interval_ms: simulated ms between two streaming passes (Kite: ~1 s); a pass
            happens at least every 50 ms of real time whatever the speed.
        spread_ticks: equity quotes' ask minus bid in ticks.
        cash: the account's opening cash (``/user/margins``).
        rate_limits: per-scope ``(requests, window_s)`` overriding Kite's.

    Raises:
        InvalidInputError: a non-loopback host, or a bad sim configuration.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ws_port: int = 0,
        api_key: str = "fake_api_key",
        api_secret: str = "fake_api_secret",
        watchlist: Sequence[str] = DEFAULT_WATCHLIST,
        seed: int = 42,
        session_day: date | None = None,
        start: datetime | None = None,
        speed: float = 1.0,
        clock: Clock | None = None,
        calendar: TradingCalendar | None = None,
        tick_interval_ms: int = 1000,
        spread_ticks: int = 2,
        cash: float = 1_000_000.0,
        rate_limits: dict[str, tuple[int, float]] | None = None,
    ) -> None:
        _check_loopback(host)
        self.host, self._port, self._ws_port = host, port, ws_port
        self.api_key, self._api_secret = api_key, api_secret
        self.calendar = calendar or TradingCalendar()
        if clock is None:
            clock = (
                SimClock(start, speed)
                if start is not None
                else SimClock.for_session(self.calendar, session_day, speed=speed)
            )
        self.clock: Clock = clock
        #: The sim broker behind the fake (same market, same clock).
        self.sim = SimBroker(
            watchlist, seed=seed, calendar=self.calendar, clock=clock, spread_ticks=spread_ticks
        )
        self.market = MarketView(self.sim.options, spread_ticks=spread_ticks)
        self.registry = TokenRegistry()
        #: The fault switches (see :class:`Faults`).
        self.faults = Faults()
        #: Rate-limit bookkeeping: ``rates.served`` / ``rates.violations``.
        self.rates = RateLimits()
        if rate_limits:
            self.rates.limits.update(rate_limits)
        speed_now = float(getattr(clock, "speed", speed))
        self.hub = WsHub(self, max(_MIN_FRAME_REAL_S, tick_interval_ms / 1000.0 / speed_now))
        self.orders = OrderBook(
            self.registry,
            self.market,
            self.now_ns,
            api_secret,
            self.hub.publish_order,
            self.is_open,
            cash=cash,
        )
        #: Order ids answered by ``POST /orders/{variety}``, in order.
        self.placements: list[str] = []
        #: REST requests received (all routes but ``/_fake/``).
        self.request_count = 0
        self._tokens: set[str] = set()
        self._request_tokens: dict[str, float] = {}
        self.access_token = self._new_access_token()
        self._state = "new"
        self._closing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._uv: _QuietServer | None = None
        self._ws: Server | None = None
        self.rest_url = ""
        self.ws_url = ""

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> FakeKite:
        if self._state != "new":
            raise InvalidInputError(f"a fake Kite server cannot be reopened ({self._state})")
        self._state = "open"
        try:
            await self.listing()
            sock = socket.socket(
                socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM
            )
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._port))
            config = uvicorn.Config(
                build_app(self),
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=2,
            )
            self._uv = _QuietServer(config)
            self._tasks.append(asyncio.create_task(self._uv.serve(sockets=[sock])))
            while not self._uv.started:
                if self._tasks[0].done():
                    self._tasks[0].result()
                    raise InvalidInputError("the fake Kite REST server did not start")
                await asyncio.sleep(0.005)
            rest_port = sock.getsockname()[1]
            self._ws = await serve(
                self.hub.handler,
                self.host,
                self._ws_port,
                process_request=self.hub.process_request,
                ping_interval=None,  # Kite's liveness signal is its heartbeat frame
                compression=None,
                logger=_WIRE_LOG,
            )
            ws_port = self._ws.sockets[0].getsockname()[1]
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.rest_url = f"http://{host}:{rest_port}"
            self.ws_url = f"ws://{host}:{ws_port}/"
            self._tasks.append(asyncio.create_task(self._matcher()))
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop both servers and the matcher; safe to call twice."""
        if self._state == "closed":
            return
        self._state = "closed"
        self._closing.set()
        if self._ws is not None:
            self.hub.drop_all()
            self._ws.close()
            await self._ws.wait_closed()
        if self._uv is not None:
            self._uv.should_exit = True
        for task in self._tasks[1:]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.sim.close()

    async def sleep_unless_closing(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the server is closing."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closing.wait()

    async def _matcher(self) -> None:
        while True:
            if self.faults.ws_drop:
                self.drop_ws()
            self.orders.match()
            await asyncio.sleep(_MATCH_EVERY_S)

    # ----------------------------------------------------------------- market

    def now_ns(self) -> int:
        """The sim clock's time, ns UTC."""
        return self.clock.now_ns()

    def now(self) -> datetime:
        """The sim clock's time, aware UTC."""
        return ns_to_dt(self.now_ns())

    def is_open(self, ts_ns: int) -> bool:
        """Whether the exchange is in session at ``ts_ns``."""
        day = ist_date(ts_ns)
        if not self.calendar.is_session(day):
            return False
        open_ns, close_ns = self.calendar.session_bounds_ns(day)
        return open_ns <= ts_ns < close_ns

    async def listing(self) -> list[KiteInstrument]:
        """Today's instrument dump (the watchlist, NIFTY 50, the listed options)."""
        instruments = await self.sim.instruments()
        return self.registry.add_all(instruments)

    def token_of(self, symbol: str) -> int:
        """The instrument token of an exchange-qualified symbol (``NSE:INFY`` -> 408065).

        Raises:
            InvalidInputError: the symbol is not listed (yet).
        """
        row = self.registry.by_symbol(symbol)
        if row is None:
            raise InvalidInputError(f"{symbol} is not in the fake's instrument master")
        return row.instrument_token

    # ----------------------------------------------------------------- sessions

    def _new_access_token(self) -> str:
        token = secrets.token_hex(16)
        self._tokens.add(token)
        return token

    def issue_request_token(self) -> str:
        """A fresh request token, as Kite's login redirect hands it (single use, 5 min)."""
        token = secrets.token_hex(16)
        self._request_tokens[token] = time.monotonic() + _REQUEST_TOKEN_TTL_S
        return token

    def checksum(self, request_token: str) -> str:
        """``sha256(api_key + request_token + api_secret)``, what a client must send."""
        return sha256_hex(self.api_key, request_token, self._api_secret)

    def order_checksum(self, order_id: str, order_timestamp: str) -> str:
        """``sha256(order_id + order_timestamp + api_secret)`` of an order update."""
        return sha256_hex(order_id, order_timestamp, self._api_secret)

    def token_ok(self, api_key: str, access_token: str) -> bool:
        """Whether a key + access token may use the API now."""
        return (
            api_key == self.api_key
            and access_token in self._tokens
            and not self.faults.token_expired
        )

    def check_auth(self, version: str | None, authorization: str | None) -> None:
        """Kite's header checks.

        Raises:
            KiteError: 403 TokenException on a missing/wrong version or credentials.
        """
        if version != "3":
            raise KiteError(403, "TokenException", "Invalid or missing `X-Kite-Version` header.")
        scheme, _, creds = (authorization or "").partition(" ")
        api_key, _, token = creds.partition(":")
        if scheme != "token" or not self.token_ok(api_key, token):
            raise KiteError(403, "TokenException", "Incorrect `api_key` or `access_token`.")

    def login(self, api_key: str, request_token: str, checksum: str) -> dict[str, Any]:
        """``POST /session/token``: exchange a request token for an access token.

        A login clears the ``token_expired`` fault and invalidates every older token.

        Raises:
            KiteError: 403 TokenException for a wrong key, an unknown/used/expired request
                token or a wrong checksum (400 InputException for missing fields).
        """
        if not api_key or not request_token or not checksum:
            raise KiteError(
                400, "InputException", "Missing `api_key`, `request_token` or `checksum`."
            )
        if api_key != self.api_key:
            raise KiteError(403, "TokenException", "Invalid `api_key`.")
        expires = self._request_tokens.pop(request_token, None)
        if expires is None or expires < time.monotonic():
            raise KiteError(403, "TokenException", "Token is invalid or has expired.")
        if checksum != self.checksum(request_token):
            raise KiteError(403, "TokenException", "Invalid `checksum`.")
        if self.faults.token_expired:
            self._tokens.clear()
            self.faults.token_expired = False
        self.access_token = self._new_access_token()
        return {
            **self.profile(),
            "api_key": self.api_key,
            "access_token": self.access_token,
            "public_token": secrets.token_hex(8),
            "enctoken": secrets.token_hex(8),
            "refresh_token": "",
            "silo": "",
            "login_time": ist_text(self.now_ns()),
            "meta": {"demat_consent": "physical"},
        }

    def logout(self, access_token: str) -> None:
        """``DELETE /session/token``: invalidate ``access_token``."""
        self._tokens.discard(access_token)

    def profile(self) -> dict[str, Any]:
        """The fake user's profile."""
        return {
            "user_id": USER_ID,
            "user_type": "individual",
            "email": "fake@example.invalid",
            "user_name": "Fake Kite User",
            "user_shortname": "Fake",
            "broker": "ZERODHA",
            "exchanges": ["NSE", "NFO", "BSE"],
            "products": ["CNC", "NRML", "MIS"],
            "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
            "avatar_url": None,
        }

    # ----------------------------------------------------------------- faults / inspection

    def drop_ws(self) -> int:
        """Abort every open WebSocket's TCP connection now; how many were dropped."""
        self.faults.ws_drop = False
        return self.hub.drop_all()

    def orders_by_tag(self, tag: str) -> list[dict[str, Any]]:
        """The orders placed with ``tag`` (Kite payloads, current state)."""
        return [o.payload() for o in self.orders.by_tag(tag)]

    @property
    def rate_limit_violations(self) -> list[RateViolation]:
        """Requests refused because a rate limit was exceeded (faults excluded)."""
        return list(self.rates.violations)

    def requests_in_scope(self, scope: str) -> list[float]:
        """``time.monotonic()`` of every served request of ``scope`` (quote, historical,
        orders, others)."""
        return list(self.rates.served.get(scope, []))
