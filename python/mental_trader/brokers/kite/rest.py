"""Kite Connect v3 REST client (async, httpx).

:class:`KiteRest` speaks the wire protocol of MARKET_FACTS §5: ``X-Kite-Version: 3`` and
``Authorization: token api_key:access_token`` on every call, query parameters for GET and
DELETE, form-encoded bodies for POST and PUT, the ``{"status", "data"}`` envelope, and
Kite's errors mapped to :mod:`mental_trader.brokers.kite.errors`.

Rate limits are kept client-side per scope (:class:`~.ratelimit.RateLimits`). Reads (GET)
are retried a bounded number of times with jittered exponential backoff on a 429, a
502/503/504 or a transport error. Writes (place / modify / cancel, session) are NEVER
retried: an outcome that may have happened raises
:class:`~mental_trader.brokers.kite.errors.KiteOrderUnknownError`, which the caller resolves
by reading the order book (:meth:`KiteRest.orders_by_tag`).

Secrets (access token, api secret, request token) never appear in a log line, a repr or an
exception message: they travel only in headers and form bodies, and error texts are
redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time as _time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import httpx
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_fixed,
    wait_random_exponential,
)

from mental_trader.brokers.kite import history as _history
from mental_trader.brokers.kite.errors import (
    KiteError,
    KiteOrderUnknownError,
    KiteProtocolError,
    KiteTokenError,
    KiteTransportError,
    error_from_response,
)
from mental_trader.brokers.kite.instruments import parse_instruments
from mental_trader.brokers.kite.orderform import (
    check_protection,
    check_variety,
    modify_form,
    place_form,
    validate_tag,
)
from mental_trader.brokers.kite.payloads import (
    KiteMargins,
    KiteOhlc,
    KiteOrder,
    KitePosition,
    KitePositions,
    KiteQuote,
    KiteSession,
    KiteTrade,
    PlaceResult,
)
from mental_trader.brokers.kite.ratelimit import RateLimiter, RateLimits, Scope
from mental_trader.brokers.kite.session import checksum
from mental_trader.errors import BrokerError, InvalidInputError
from mental_trader.options.manager import INDEX_OPTION_NAMES
from mental_trader.storage.base import Candles, dt_to_ns, empty_candles

if TYPE_CHECKING:
    from mental_trader.config import Settings
    from mental_trader.models import Instrument

__all__ = ["DEFAULT_REST_URL", "DEFAULT_TIMEOUT_S", "KiteRest", "validate_tag"]

log = logging.getLogger(__name__)

DEFAULT_REST_URL: Final = "https://api.kite.trade"
#: pykiteconnect's default HTTP timeout.
DEFAULT_TIMEOUT_S: Final = 7.0
#: Instruments per request: ``/quote`` 500, ``/quote/ltp`` and ``/quote/ohlc`` 1000.
QUOTE_BATCH: Final = 500
LTP_BATCH: Final = 1000

_SYMBOL = re.compile(r"[A-Z0-9_]+:\S.*")


def _ambiguous_transport(exc: httpx.TransportError) -> bool:
    # A connection that was never opened (or a pool slot never obtained) carried nothing.
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


class KiteRest:
    """Kite Connect v3 REST client; an async context manager (closed once, never reopened).

    Args:
        api_key: the app's API key.
        access_token: the session's token (set it later with :attr:`access_token` or
            :meth:`create_session`).
        base_url: REST root (``BROKER_REST_URL``; the fake server's URL in tests).
        timeout_s: per-request timeout, every phase (Kite's client default 7 s).
        limits: client-side rate limits.
        market_protection: default for MARKET and SL-M orders: ``-1`` lets Kite apply its
            automatic protection band (documented default here: Kite rejects 0/absent
            since 2026-04-01, and a fixed percentage is wrong for both tight index options
            and wide illiquid ones); ``(0, 100]`` is a custom percentage.
        read_retries: extra attempts of a GET after a retryable failure (0 disables).
        retry_backoff_s: the shortest wait before a retry; later waits grow exponentially
            with full jitter, capped at 16 times it.
        clock: the market's now (aware), to drop still-forming candles.
        session_open, session_close: IST session hours (daily candle stamp, last candle).
        transport: an httpx transport to use instead of the network (the lead's tooling);
            tests use the fake Kite server over loopback.

    Raises:
        InvalidInputError: a bad timeout, retry count or market protection.
    """

    def __init__(
        self,
        api_key: str,
        *,
        access_token: str | None = None,
        base_url: str = DEFAULT_REST_URL,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        limits: RateLimits | None = None,
        market_protection: float = -1,
        read_retries: int = 2,
        retry_backoff_s: float = 0.25,
        clock: Callable[[], datetime] = _history.utc_now,
        session_open: time = time(9, 15),
        session_close: time = time(15, 30),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not timeout_s > 0:
            raise InvalidInputError(f"timeout_s must be > 0, got {timeout_s}")
        if read_retries < 0 or not retry_backoff_s >= 0:
            raise InvalidInputError(
                f"read_retries and retry_backoff_s must be >= 0, got "
                f"{read_retries} and {retry_backoff_s}"
            )
        self._api_key = api_key
        self._access_token = access_token or None
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.limits = limits or RateLimits()
        self.market_protection = check_protection(market_protection)
        self.read_retries = read_retries
        self.retry_backoff_s = retry_backoff_s
        self._clock = clock
        self._session_open = session_open
        self._session_close = session_close
        self._limiters: Mapping[Scope, tuple[RateLimiter, ...]] = self.limits.build()
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            headers={"X-Kite-Version": "3"},
            transport=transport,
        )
        self._closed = False
        #: Called with each :class:`KiteTokenError` Kite answers a data or order call with
        #: (not a login's): the session is dead until the user logs in again.
        self.on_token_error: Callable[[KiteTokenError], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> KiteRest:
        """A client for ``settings`` (BROKER_REST_URL, BROKER_API_KEY, BROKER_ACCESS_TOKEN);
        ``kwargs`` go to the constructor.

        Raises:
            InvalidInputError: no BROKER_API_KEY.
        """
        if settings.broker_api_key is None:
            raise InvalidInputError("Kite needs BROKER_API_KEY")
        token = settings.broker_access_token
        kwargs.setdefault("access_token", token.get_secret_value() if token else None)
        return cls(
            settings.broker_api_key.get_secret_value(),
            base_url=settings.broker_rest_url,
            **kwargs,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"KiteRest({self.base_url!r}, {state}, logged_in={self.logged_in})"

    # ------------------------------------------------------------------ lifecycle

    @property
    def access_token(self) -> str | None:
        """The session token in use (None before login)."""
        return self._access_token

    @access_token.setter
    def access_token(self, value: str | None) -> None:
        self._access_token = value or None

    @property
    def logged_in(self) -> bool:
        """Whether an access token is set (not whether Kite still accepts it)."""
        return self._access_token is not None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def __aenter__(self) -> Self:
        if self._closed:
            raise BrokerError("KiteRest is closed; create a new client")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool; safe to call twice."""
        if not self._closed:
            self._closed = True
            await self._client.aclose()

    # ------------------------------------------------------------------ transport

    def _secrets(self, *extra: str | None) -> tuple[str | None, ...]:
        return (self._access_token, *extra)

    async def _send(
        self,
        method: str,
        path: str,
        scope: Scope,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        data: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> httpx.Response:
        """One request (no retry): wait for the rate limits, send, map transport errors."""
        if self._closed:
            raise BrokerError("KiteRest is closed")
        headers: dict[str, str] = {}
        if auth:
            if self._access_token is None:
                raise KiteTokenError("no access token: log in to Kite first")
            headers["Authorization"] = f"token {self._api_key}:{self._access_token}"
        started = _time.perf_counter()
        try:
            async with contextlib.AsyncExitStack() as slots:
                for limiter in self._limiters[scope]:
                    await slots.enter_async_context(limiter.slot())
                started = _time.perf_counter()
                response = await self._client.request(
                    method,
                    path,
                    params=list(params) if params is not None else None,
                    data=data,
                    headers=headers,
                )
        except httpx.TransportError as exc:
            kind = type(exc).__name__
            log.warning("kite %s %s failed: %s", method, path, kind)
            raise KiteTransportError(
                f"{method} {path}: {kind}", ambiguous=_ambiguous_transport(exc)
            ) from None
        log.debug(
            "kite %s %s -> %d in %.0f ms",
            method,
            path,
            response.status_code,
            (_time.perf_counter() - started) * 1000,
        )
        return response

    def _unwrap(self, response: httpx.Response, secrets: tuple[str | None, ...]) -> Any:
        """The ``data`` of a success envelope, or the mapped error."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if status >= 400:
                raise error_from_response(status, None, secrets)
            raise KiteProtocolError("response is not a JSON envelope", status=status)
        if status >= 400 or body.get("status") == "error":
            raise error_from_response(status, body, secrets)
        if body.get("status") != "success" or "data" not in body:
            raise KiteProtocolError("response lacks the success envelope", status=status)
        return body["data"]

    async def _read(
        self,
        path: str,
        scope: Scope,
        params: Sequence[tuple[str, str]] | None = None,
        *,
        raw: bool = False,
    ) -> Any:
        """GET with bounded retries; the envelope's data (or the 200 response if ``raw``)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(1 + self.read_retries),
            # A floor, so a 429 is not retried into the same window; then jittered backoff.
            wait=wait_fixed(self.retry_backoff_s)
            + wait_random_exponential(
                multiplier=2 * self.retry_backoff_s, max=16 * self.retry_backoff_s
            ),
            retry=retry_if_exception(lambda e: isinstance(e, KiteError) and e.retryable),
            reraise=True,
        )
        secrets = self._secrets()
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._send("GET", path, scope, params=params)
                    if raw and response.status_code == 200:
                        return response
                    return self._unwrap(response, secrets)
        except KiteTokenError as exc:
            self._token_refused(exc)
            raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _write(
        self,
        method: str,
        path: str,
        scope: Scope,
        *,
        data: Mapping[str, str] | None = None,
        params: Sequence[tuple[str, str]] | None = None,
    ) -> Any:
        """POST/PUT/DELETE once; an ambiguous failure becomes KiteOrderUnknownError."""
        secrets = self._secrets()
        try:
            response = await self._send(method, path, scope, data=data, params=params)
            return self._unwrap(response, secrets)
        except KiteError as exc:
            if isinstance(exc, KiteTokenError):
                self._token_refused(exc)
            if not exc.ambiguous:
                raise
            log.warning("kite %s %s outcome unknown: %s", method, path, exc)
            raise KiteOrderUnknownError(
                exc.message, status=exc.status, error_type=exc.error_type
            ) from exc

    def _token_refused(self, exc: KiteTokenError) -> None:
        """Tell :attr:`on_token_error` that Kite refused the session token (HTTP 403)."""
        if exc.status is None or self.on_token_error is None:
            return  # no token was sent: nothing was refused
        try:
            self.on_token_error(exc)
        except Exception:
            log.exception("kite: the token error handler failed")

    # ------------------------------------------------------------------ session

    async def create_session(self, request_token: str, api_secret: str) -> KiteSession:
        """Exchange a login's ``request_token`` for an access token (``POST /session/token``)
        and start using it.

        Raises:
            KiteTokenError: the request token is invalid, used or expired.
            KiteError: Kite failed (never retried: a request token is single-use).
        """
        secrets = self._secrets(request_token, api_secret)
        form = {
            "api_key": self._api_key,
            "request_token": request_token,
            "checksum": checksum(self._api_key, request_token, api_secret),
        }
        response = await self._send("POST", "/session/token", Scope.OTHER, data=form, auth=False)
        data = self._unwrap(response, (*secrets, form["checksum"]))
        token = data.get("access_token") if isinstance(data, dict) else None
        if not token:
            raise KiteProtocolError("session response has no access_token", status=200)
        login = data.get("login_time")
        self._access_token = str(token)
        log.info("kite session created for user %s", data.get("user_id", "?"))
        return KiteSession(
            access_token=SecretStr(str(token)),
            user_id=str(data.get("user_id", "")),
            login_time=_history.parse_kite_ts(str(login)) if login else None,
        )

    # ------------------------------------------------------------------ market data

    async def instruments(
        self,
        exchange: str | None = None,
        *,
        aliases: Mapping[str, str] = INDEX_OPTION_NAMES,
        freeze_qty: Mapping[str, int] | None = None,
    ) -> list[Instrument]:
        """The instrument master (``GET /instruments[/{exchange}]``, a CSV dump), parsed in a
        worker thread (see :func:`~.instruments.parse_instruments` for ``aliases`` and
        ``freeze_qty``).

        Raises:
            KiteError: Kite failed; KiteProtocolError: the body is not a dump.
        """
        path = f"/instruments/{exchange}" if exchange else "/instruments"
        response: httpx.Response = await self._read(path, Scope.OTHER, raw=True)
        return await asyncio.to_thread(
            parse_instruments, response.content, aliases=aliases, freeze_qty=freeze_qty
        )

    async def history(
        self,
        instrument_token: int,
        interval_s: int,
        start: datetime,
        end: datetime,
        *,
        continuous: bool = False,
        oi: bool = False,
    ) -> Candles:
        """Closed candles with ``start <= ts < end`` (columns as ``build_bars`` returns).

        The range is split by Kite's per-request day caps and fetched chunk by chunk (3/s
        limit); ``ts`` is the candle START in ns UTC (a daily candle at the session open);
        ``ticks`` is 1 per candle (Kite does not report it). A candle still forming at the
        clock's now is dropped (Kite returns it partially filled).

        Raises:
            InvalidInputError: naive datetimes, ``end`` after now, or an interval Kite does
                not serve (60, 180, 300, 600, 900, 1800, 3600, 86400 s).
            KiteError: Kite failed.
        """
        interval = _history.interval_name(interval_s)
        start_ns, end_ns = dt_to_ns(start), dt_to_ns(end)  # naive -> InvalidInputError
        now = self._clock()
        if end > now:
            raise InvalidInputError(
                f"history up to {end.isoformat()} is in the future (now {now.isoformat()})"
            )
        if start_ns >= end_ns:
            return empty_candles()
        rows: list[Any] = []
        path = f"/instruments/historical/{int(instrument_token)}/{interval}"
        for frm, to in _history.chunks(start, end, interval):
            params = [
                ("from", _history.format_ist(frm)),
                ("to", _history.format_ist(to)),
                ("continuous", "1" if continuous else "0"),
                ("oi", "1" if oi else "0"),
            ]
            data = await self._read(path, Scope.HISTORICAL, params)
            candles = data.get("candles") if isinstance(data, dict) else None
            if not isinstance(candles, list):
                raise KiteProtocolError("historical response has no candles", status=200)
            rows.extend(candles)
        return await asyncio.to_thread(
            _history.parse_candles,
            rows,
            interval_s=interval_s,
            start_ns=start_ns,
            end_ns=end_ns,
            now_ns=dt_to_ns(now),
            session_open=self._session_open,
            session_close=self._session_close,
        )

    async def _batched(self, path: str, symbols: Sequence[str], batch: int) -> dict[str, Any]:
        unique = list(dict.fromkeys(symbols))
        for symbol in unique:
            if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
                raise InvalidInputError(f"symbol must be 'EXCHANGE:TRADINGSYMBOL', got {symbol!r}")
        out: dict[str, Any] = {}
        for i in range(0, len(unique), batch):
            params = [("i", s) for s in unique[i : i + batch]]
            data = await self._read(path, Scope.QUOTE, params)
            if not isinstance(data, dict):
                raise KiteProtocolError(f"{path} data is not an object", status=200)
            out.update(data)
        return out

    async def quote(self, symbols: Sequence[str]) -> dict[str, KiteQuote]:
        """Full quotes (``GET /quote``, 500 symbols a request), keyed by symbol; a symbol
        Kite does not know is simply absent.

        Raises:
            InvalidInputError: a symbol not ``EXCHANGE:TRADINGSYMBOL``.
            KiteError: Kite failed.
        """
        data = await self._batched("/quote", symbols, QUOTE_BATCH)
        return {k: KiteQuote.from_json(v) for k, v in data.items()}

    async def ltp(self, symbols: Sequence[str]) -> dict[str, float]:
        """Last traded prices (``GET /quote/ltp``, 1000 a request); unknown symbols absent.

        Raises:
            InvalidInputError: a malformed symbol. KiteError: Kite failed.
        """
        data = await self._batched("/quote/ltp", symbols, LTP_BATCH)
        return {k: float(v["last_price"]) for k, v in data.items()}

    async def ohlc(self, symbols: Sequence[str]) -> dict[str, KiteOhlc]:
        """Last price and day OHLC (``GET /quote/ohlc``, 1000 a request); unknown absent.

        Raises:
            InvalidInputError: a malformed symbol. KiteError: Kite failed.
        """
        data = await self._batched("/quote/ohlc", symbols, LTP_BATCH)
        return {k: KiteOhlc.from_json(v) for k, v in data.items()}

    # ------------------------------------------------------------------ orders

    async def place_order(
        self,
        *,
        tag: str,
        exchange: str,
        tradingsymbol: str,
        transaction_type: str,
        order_type: str,
        quantity: int,
        product: str,
        variety: str = "regular",
        price: float | None = None,
        trigger_price: float | None = None,
        validity: str = "DAY",
        validity_ttl: int | None = None,
        disclosed_quantity: int | None = None,
        market_protection: float | None = None,
        freeze_qty: int | None = None,
    ) -> PlaceResult:
        """Place an order (``POST /orders/{variety}``), tagged with our client id.

        MARKET and SL-M orders carry ``market_protection`` (default: the client's).
        ``autoslice=true`` is sent when ``quantity`` exceeds ``freeze_qty`` (the exchange
        splits it; the result lists the slices). Never retried.

        Returns:
            The order id (the parent's when autosliced) and the slices.

        Raises:
            InvalidInputError: a bad tag (1-20 letters/digits), side, type, product,
                quantity, missing price/trigger, or market protection.
            KiteOrderUnknownError: the outcome is unknown (timeout, dropped connection,
                5xx, "Order request timed out"): look ``tag`` up with
                :meth:`orders_by_tag`; do not place again blindly.
            KiteError: refused (e.g. KiteInputError, KiteMarginError, KiteRateLimitError,
                KiteTokenError): no order was created.
        """
        check_variety(variety)
        form = place_form(
            tag=tag,
            exchange=exchange,
            tradingsymbol=tradingsymbol,
            transaction_type=transaction_type,
            order_type=order_type,
            quantity=quantity,
            product=product,
            price=price,
            trigger_price=trigger_price,
            validity=validity,
            validity_ttl=validity_ttl,
            disclosed_quantity=disclosed_quantity,
            market_protection=self._protection(market_protection),
            freeze_qty=freeze_qty,
        )
        data = await self._write("POST", f"/orders/{variety}", Scope.ORDERS, data=form)
        try:
            result = PlaceResult.from_json(data)
        except (KeyError, TypeError, AttributeError, ValueError):
            raise KiteOrderUnknownError("placement answer has no order_id", status=200) from None
        log.info("kite order %s placed (tag %s)", result.order_id, tag)
        return result

    def _protection(self, market_protection: float | None) -> float:
        return self.market_protection if market_protection is None else market_protection

    async def modify_order(
        self,
        order_id: str,
        *,
        variety: str = "regular",
        order_type: str | None = None,
        quantity: int | None = None,
        price: float | None = None,
        trigger_price: float | None = None,
        disclosed_quantity: int | None = None,
        validity: str | None = None,
        market_protection: float | None = None,
    ) -> str:
        """Modify an open order (``PUT /orders/{variety}/{order_id}``); only the given fields
        are sent. Give ``order_type`` when it is or becomes MARKET/SL-M (market protection
        is added then). Never retried; Kite allows 25 modifications per order.

        Returns:
            The order id.

        Raises:
            InvalidInputError: a bad field. KiteOrderUnknownError: outcome unknown (read
            the order's history). KiteError: refused, order unchanged.
        """
        check_variety(variety)
        form = modify_form(
            order_type=order_type,
            quantity=quantity,
            price=price,
            trigger_price=trigger_price,
            disclosed_quantity=disclosed_quantity,
            validity=validity,
            market_protection=self._protection(market_protection),
        )
        path = f"/orders/{variety}/{order_id}"
        data = await self._write("PUT", path, Scope.ORDERS, data=form)
        return str(data.get("order_id", order_id)) if isinstance(data, dict) else str(order_id)

    async def cancel_order(
        self, order_id: str, *, variety: str = "regular", parent_order_id: str | None = None
    ) -> str:
        """Cancel an open order (``DELETE /orders/{variety}/{order_id}``). Never retried.

        Raises:
            KiteOrderUnknownError: outcome unknown (read the order's history).
            KiteError: refused (e.g. already complete).
        """
        check_variety(variety)
        params = [("parent_order_id", parent_order_id)] if parent_order_id else None
        path = f"/orders/{variety}/{order_id}"
        data = await self._write("DELETE", path, Scope.ORDERS, params=params)
        return str(data.get("order_id", order_id)) if isinstance(data, dict) else str(order_id)

    async def orders(self) -> list[KiteOrder]:
        """Today's order book (``GET /orders``), every order of the account."""
        data = await self._read("/orders", Scope.OTHER)
        return [KiteOrder.from_json(o) for o in _list(data, "/orders")]

    async def orders_by_tag(self, tag: str) -> list[KiteOrder]:
        """The orders of today's book carrying ``tag`` (ours: the client id); more than one
        when Kite autosliced the order. The way to resolve :class:`KiteOrderUnknownError`."""
        validate_tag(tag)
        return [o for o in await self.orders() if o.tag == tag]

    async def order_history(self, order_id: str) -> list[KiteOrder]:
        """Every state of one order, oldest first (``GET /orders/{order_id}``)."""
        data = await self._read(f"/orders/{order_id}", Scope.OTHER)
        return [KiteOrder.from_json(o) for o in _list(data, "/orders/{id}")]

    async def trades(self) -> list[KiteTrade]:
        """Today's executions (``GET /trades``)."""
        data = await self._read("/trades", Scope.OTHER)
        return [KiteTrade.from_json(t) for t in _list(data, "/trades")]

    async def order_trades(self, order_id: str) -> list[KiteTrade]:
        """The executions of one order (``GET /orders/{order_id}/trades``)."""
        data = await self._read(f"/orders/{order_id}/trades", Scope.OTHER)
        return [KiteTrade.from_json(t) for t in _list(data, "/orders/{id}/trades")]

    async def positions(self) -> KitePositions:
        """Net and day positions (``GET /portfolio/positions``)."""
        data = await self._read("/portfolio/positions", Scope.OTHER)
        if not isinstance(data, dict):
            raise KiteProtocolError("positions data is not an object", status=200)
        return KitePositions(
            net=tuple(KitePosition.from_json(p) for p in data.get("net") or ()),
            day=tuple(KitePosition.from_json(p) for p in data.get("day") or ()),
        )

    async def margins(self, segment: str | None = None) -> dict[str, KiteMargins]:
        """Funds and margins by segment (``GET /user/margins[/{segment}]``), keyed
        ``"equity"`` / ``"commodity"``."""
        if segment is not None:
            if segment not in ("equity", "commodity"):
                raise InvalidInputError(f"segment must be equity or commodity, got {segment!r}")
            data = await self._read(f"/user/margins/{segment}", Scope.OTHER)
            return {segment: KiteMargins.from_json(data)}
        data = await self._read("/user/margins", Scope.OTHER)
        if not isinstance(data, dict):
            raise KiteProtocolError("margins data is not an object", status=200)
        return {k: KiteMargins.from_json(v) for k, v in data.items() if isinstance(v, dict)}


def _list(data: Any, what: str) -> list[Mapping[str, Any]]:
    if not isinstance(data, list):
        raise KiteProtocolError(f"{what} data is not a list", status=200)
    return data
