"""The Kite WebSocket connection: subscriptions, frames, a silence watchdog and reconnects.

:class:`KiteTicker` keeps ONE connection to ``wss://ws.kite.trade`` alive and hands every
binary frame (ticks) and text message (order updates, errors) to callbacks. It does not
decode ticks itself: :class:`~mental_trader.brokers.kite.feed.KiteFeed` turns frames into
engine frames.

What it keeps:

* the URL carries ``api_key`` and ``access_token`` in its query string: it is never logged
  or put in an exception (the ``websockets`` library's own logger is kept at WARNING, so its
  handshake lines, which hold the request path, are not logged either);
* subscriptions are remembered with their modes and sent again after every reconnect, in
  batches (``subscribe`` then an explicit ``mode`` per mode, as Kite asks);
* silence (no frame at all, heartbeats included, for ``silence_s``) means a dead socket:
  Kite sends a 1-byte heartbeat about every second when idle, so a quiet market is never
  silent; the connection is dropped and rebuilt;
* reconnects back off exponentially with jitter, capped; a refused handshake with HTTP 403
  means the access token is dead (expired at 06:00 IST, or logged out): no more attempts,
  :attr:`KiteTicker.state` becomes ``"token_expired"`` and the ``on_auth_failure`` callback
  runs once — reconnecting with the same token would only be refused again;
* after a reconnect (not the first connection) ``on_reconnect`` runs before any frame of
  the new connection is handed on, so the feed can backfill the gap first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from mental_trader.errors import InvalidInputError

__all__ = ["KiteTicker", "Mode", "TickerState"]

log = logging.getLogger(__name__)
# The websockets library logs handshake request lines (with our query string) at DEBUG.
_wire_log = logging.getLogger("mental_trader.brokers.kite.wire")
_wire_log.setLevel(logging.WARNING)

Mode = Literal["ltp", "quote", "full"]
TickerState = Literal[
    "idle", "connecting", "live", "reconnecting", "token_expired", "failed", "closed"
]
_MODES: tuple[Mode, ...] = ("ltp", "quote", "full")
#: Tokens per subscribe / mode message (Kite takes up to 3,000 per connection).
SUBSCRIBE_BATCH = 500


def _ignore(_: bytes) -> None:
    pass


class KiteTicker:
    """One Kite WebSocket connection, kept alive (see the module docstring).

    Args:
        url: the WebSocket root (``BROKER_WS_URL``, e.g. ``wss://ws.kite.trade``).
        api_key: the app's API key.
        access_token: the session's token.
        on_frame: receives every binary frame (``bytes``), heartbeats included; called on
            the event loop, must be quick and must not raise (or set it with :meth:`bind`).
        on_order: receives the ``data`` of every ``{"type": "order"}`` text message.
        on_reconnect: awaited after each RE-connection, once subscriptions are sent and
            before frames of the new connection are handed on (backfill, order book).
        on_auth_failure: called once when Kite refuses the token (HTTP 403 handshake).
        silence_s: no frame for this long = dead socket (gokiteconnect uses 5 s).
        backoff_s: first reconnect delay; doubles each failed attempt.
        backoff_max_s: cap of the delay.
        connect_timeout_s: limit of one connection attempt (TCP + TLS + handshake).

    Raises:
        InvalidInputError: a URL that is not ``ws://`` / ``wss://``, or bad timings.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        access_token: str,
        *,
        on_frame: Callable[[bytes], None] | None = None,
        on_order: Callable[[Mapping[str, Any]], None] | None = None,
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
        on_auth_failure: Callable[[str], None] | None = None,
        silence_s: float = 5.0,
        backoff_s: float = 0.25,
        backoff_max_s: float = 30.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise InvalidInputError("BROKER_WS_URL must be a ws:// or wss:// URL")
        if not (silence_s > 0 and backoff_s > 0 and backoff_max_s >= backoff_s):
            raise InvalidInputError("ticker timings must be positive, with max >= first delay")
        self._url = f"{url}?{urlencode({'api_key': api_key, 'access_token': access_token})}"
        self._host = parts.netloc  # what may be shown
        self._on_frame: Callable[[bytes], None] = on_frame or _ignore
        self._on_order = on_order
        self._on_reconnect = on_reconnect
        self._on_auth_failure = on_auth_failure
        self.silence_s = silence_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.connect_timeout_s = connect_timeout_s
        self._modes: dict[int, Mode] = {}
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._live = asyncio.Event()
        self.state: TickerState = "idle"
        #: Connections made (the first one included).
        self.connections = 0
        #: Why the last connection ended (no secrets in it).
        self.last_disconnect = ""
        #: ``time.monotonic()`` of the last frame received.
        self.last_frame_mono = 0.0
        self._heard_mono = 0.0  # the last frame, or the connection's start
        self._silent = False

    def __repr__(self) -> str:
        return f"KiteTicker({self._host!r}, {self.state}, {len(self._modes)} token(s))"

    def bind(
        self,
        on_frame: Callable[[bytes], None],
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Set the frame handler (and the reconnect step): the feed that consumes them."""
        self._on_frame = on_frame
        self._on_reconnect = on_reconnect

    # -- subscriptions -------------------------------------------------------------------

    @property
    def subscriptions(self) -> dict[int, Mode]:
        """The tokens subscribed, with their modes (a copy)."""
        return dict(self._modes)

    async def subscribe(self, tokens: Iterable[int], mode: Mode = "full") -> None:
        """Subscribe ``tokens`` in ``mode`` (now if connected, and after every reconnect).

        Raises:
            InvalidInputError: an unknown mode or a token that is not a positive int.
        """
        if mode not in _MODES:
            raise InvalidInputError(f"unknown Kite mode {mode!r}; expected one of {_MODES}")
        new = []
        for token in tokens:
            if not isinstance(token, int) or isinstance(token, bool) or token <= 0:
                raise InvalidInputError(f"instrument token must be a positive int, got {token!r}")
            new.append(token)
        for token in new:
            self._modes[token] = mode
        ws = self._ws
        if ws is not None and new:
            with contextlib.suppress(ConnectionClosed):  # the reconnect sends them again
                await self._send_subscriptions(ws, {t: mode for t in new})

    async def unsubscribe(self, tokens: Iterable[int]) -> None:
        """Stop the ticks of ``tokens``."""
        gone = [t for t in tokens if self._modes.pop(t, None) is not None]
        ws = self._ws
        if ws is not None and gone:
            with contextlib.suppress(ConnectionClosed):
                for i in range(0, len(gone), SUBSCRIBE_BATCH):
                    batch = gone[i : i + SUBSCRIBE_BATCH]
                    await ws.send(json.dumps({"a": "unsubscribe", "v": batch}))

    @staticmethod
    async def _send_subscriptions(ws: ClientConnection, modes: Mapping[int, Mode]) -> None:
        by_mode: dict[Mode, list[int]] = {}
        for token, mode in modes.items():
            by_mode.setdefault(mode, []).append(token)
        for mode, tokens in by_mode.items():
            for i in range(0, len(tokens), SUBSCRIBE_BATCH):
                batch = tokens[i : i + SUBSCRIBE_BATCH]
                await ws.send(json.dumps({"a": "subscribe", "v": batch}))
                await ws.send(json.dumps({"a": "mode", "v": [mode, batch]}))

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="kite-ticker")

    async def wait_live(self, timeout_s: float) -> bool:
        """Wait until a connection is up with its subscriptions sent; False on timeout, or
        at once when the client gave up (token refused, failed) or was never started."""
        task = self._task
        if task is None:
            return False
        live = asyncio.ensure_future(self._live.wait())
        try:
            await asyncio.wait({live, task}, timeout=timeout_s, return_when="FIRST_COMPLETED")
        finally:
            live.cancel()
        return self._live.is_set()

    async def close(self) -> None:
        """Close the connection and stop reconnecting; safe to call twice."""
        task, self._task = self._task, None
        if self.state not in ("token_expired", "failed"):
            self.state = "closed"
        if self._ws is not None:
            self._ws.transport.abort()  # ends the read loop at once
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.transport.abort()

    async def drop(self) -> None:
        """Close the current connection (it is rebuilt, as after a network failure)."""
        ws = self._ws
        if ws is not None:
            await ws.close(code=1001, reason="dropped by client")

    # -- the connection loop -------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._connect_loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a broken set-up (a bad proxy): say so, stop
            # The type only: some websockets errors quote the URL, which holds the token.
            self.state = "failed"
            self.last_disconnect = f"the WebSocket client failed: {type(exc).__name__}"
            log.error("Kite WebSocket %s: %s", self._host, self.last_disconnect)
            self._live.clear()

    async def _connect_loop(self) -> None:
        attempt = 0
        while True:
            self.state = "connecting" if self.connections == 0 else "reconnecting"
            try:
                ws = await asyncio.wait_for(self._connect(), self.connect_timeout_s)
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status == 403:
                    self._token_refused()
                    return
                self.last_disconnect = f"handshake refused with HTTP {status}"
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                self.last_disconnect = f"connect failed: {type(exc).__name__}"
            else:
                attempt = 0
                await self._serve(ws)
                if self._task is None:  # closed meanwhile
                    return
            self._live.clear()
            delay = min(self.backoff_max_s, self.backoff_s * 2**attempt)
            delay *= random.uniform(0.5, 1.0)  # jitter: clients must not reconnect in step
            attempt = min(attempt + 1, 30)
            log.warning(
                "Kite WebSocket %s: %s; reconnecting in %.2f s",
                self._host,
                self.last_disconnect,
                delay,
            )
            await asyncio.sleep(delay)

    async def _connect(self) -> ClientConnection:
        return await connect(
            self._url,
            logger=_wire_log,
            open_timeout=None,  # the caller's wait_for bounds the attempt
            max_size=2**24,  # 3,000 full packets are ~560 kB
            compression=None,
        )

    async def _serve(self, ws: ClientConnection) -> None:
        reconnect = self.connections > 0
        self.connections += 1
        self._ws = ws
        self._heard_mono = time.monotonic()
        watchdog = asyncio.create_task(self._watchdog(ws), name="kite-ticker-watchdog")
        try:
            await self._send_subscriptions(ws, self._modes)
            if reconnect and self._on_reconnect is not None:
                await self._on_reconnect()
            self.state = "live"
            self._live.set()
            log.info("Kite WebSocket %s: live, %d token(s)", self._host, len(self._modes))
            await self._read(ws)
            if not self._silent:
                self.last_disconnect = "closed by the server"
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            if not self._silent:
                self.last_disconnect = f"closed (code {code})" if code else "connection lost"
        except OSError as exc:
            self.last_disconnect = f"socket error: {type(exc).__name__}"
        finally:
            watchdog.cancel()
            self._ws = None
            self._live.clear()
            ws.transport.abort()  # no closing handshake to wait for: the socket is done

    async def _read(self, ws: ClientConnection) -> None:
        on_frame = self._on_frame
        self._silent = False
        async for message in ws:
            self.last_frame_mono = self._heard_mono = time.monotonic()
            if isinstance(message, bytes):
                on_frame(message)
            else:
                self._on_text(message)

    async def _watchdog(self, ws: ClientConnection) -> None:
        """Abort the connection after ``silence_s`` without any frame (heartbeats count)."""
        while True:
            await asyncio.sleep(self.silence_s / 4)
            if time.monotonic() - self._heard_mono > self.silence_s:
                self._silent = True
                self.last_disconnect = f"silent for {self.silence_s:g} s"
                ws.transport.abort()
                return

    def _on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            log.warning("Kite WebSocket: a text message that is not JSON (%d chars)", len(text))
            return
        kind = message.get("type") if isinstance(message, dict) else None
        data = message.get("data") if isinstance(message, dict) else None
        if kind == "order" and isinstance(data, dict):
            if self._on_order is not None:
                try:
                    self._on_order(data)
                except Exception:
                    log.exception("Kite WebSocket: order update handler failed")
        elif kind == "error":
            log.warning("Kite WebSocket error message: %s", data)
        else:
            log.info("Kite WebSocket message (%s): %s", kind, data)

    def _token_refused(self) -> None:
        self.state = "token_expired"
        self.last_disconnect = "Kite refused the access token (HTTP 403): log in again"
        log.error("Kite WebSocket %s: %s", self._host, self.last_disconnect)
        if self._on_auth_failure is not None:
            try:
                self._on_auth_failure(self.last_disconnect)
            except Exception:
                log.exception("Kite WebSocket: auth failure handler failed")
