"""The fake's WebSocket: Kite's streaming protocol over the ``websockets`` server.

Handshake: ``ws://HOST:PORT/?api_key=...&access_token=...``; a bad key or token (or the
``token_expired`` fault) is refused with HTTP 403, a fourth connection per API key with
429 (Kite allows three), and the ``ws_refuse_handshakes`` fault refuses with its status.

Client -> server text: ``{"a": "subscribe", "v": [tokens]}`` (new tokens start in
``quote`` mode), ``{"a": "unsubscribe", "v": [tokens]}``, ``{"a": "mode", "v": [mode,
[tokens]]}`` (subscribes too). Unknown actions get ``{"type": "error", "data": ...}``.

Server -> client: binary frames of packets (:mod:`.wire`) for subscribed tokens only.
Every ``frame_real_s`` the server takes each subscribed token's snapshot on the sim
clock and sends it if the token traded since its last packet (and always right after a
subscribe or mode change: the first snapshot). A second without any frame sends the
1-byte heartbeat. Order updates go out as text ``{"type": "order", "data": {...}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from mental_trader.testing.fake_kite.market import Snapshot
from mental_trader.testing.fake_kite.wire import HEARTBEAT, Mode, encode_frame, pack_packet

if TYPE_CHECKING:
    from mental_trader.testing.fake_kite.server import FakeKite

__all__ = ["MAX_CONNECTIONS", "MAX_TOKENS", "WsHub"]

log = logging.getLogger(__name__)

#: WebSocket connections per API key (Kite: 3).
MAX_CONNECTIONS = 3
#: Instruments per connection (Kite: 3000).
MAX_TOKENS = 3000
_MODES = ("ltp", "quote", "full")
_HEARTBEAT_S = 1.0
_MAX_PACKETS = 0xFFFF


class _Client:
    """One connected socket's subscriptions and outbox."""

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn
        self.modes: dict[int, Mode] = {}
        self.dirty: set[int] = set()
        self.last_trade: dict[int, int] = {}
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.wake = asyncio.Event()


class WsHub:
    """The fake's WebSocket side: handshake checks, streaming, order updates, faults."""

    def __init__(self, fake: FakeKite, frame_real_s: float) -> None:
        self.fake = fake
        self.frame_real_s = frame_real_s
        self.clients: set[_Client] = set()
        #: Handshakes seen (accepted or not) and the ones refused, by HTTP status.
        self.handshakes = 0
        self.refused: dict[int, int] = {}
        #: Order updates sent (per socket) and lost to the ``lose_order_updates`` fault.
        self.updates_sent = 0
        self.updates_lost = 0

    # ----------------------------------------------------------------- handshake

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """Refuse a handshake (faults, bad token, too many sockets) or let it through."""
        self.handshakes += 1
        faults = self.fake.faults
        if faults.take("ws_refuse_handshakes"):
            return self._refuse(conn, faults.ws_refuse_status, "handshake refused (fault)")
        query = parse_qs(urlsplit(request.path).query)
        api_key = (query.get("api_key") or [""])[0]
        token = (query.get("access_token") or [""])[0]
        if not self.fake.token_ok(api_key, token):
            return self._refuse(conn, 403, "Invalid `api_key` or `access_token`.")
        if len(self.clients) >= MAX_CONNECTIONS:
            return self._refuse(conn, 429, "Too many connections.")
        return None

    def _refuse(self, conn: ServerConnection, status: int, text: str) -> Response:
        self.refused[status] = self.refused.get(status, 0) + 1
        return conn.respond(status, text)

    # ----------------------------------------------------------------- a connection

    async def handler(self, conn: ServerConnection) -> None:
        """Serve one socket until it closes."""
        client = _Client(conn)
        self.clients.add(client)
        try:
            async with asyncio.TaskGroup() as tg:
                ticker = tg.create_task(self._ticker(client))
                texter = tg.create_task(self._texter(client))
                try:
                    await self._reader(client)
                finally:
                    ticker.cancel()
                    texter.cancel()
        except* (ConnectionClosed, OSError):
            pass  # the client went away (or we dropped it): nothing to clean but the set
        finally:
            self.clients.discard(client)

    async def _reader(self, client: _Client) -> None:
        async for message in client.conn:
            if isinstance(message, bytes):
                continue
            error = self._command(client, message)
            if error is not None:
                client.outbox.put_nowait(json.dumps({"type": "error", "data": error}))

    def _command(self, client: _Client, text: str) -> str | None:
        """Apply one client message; an error text for the client, or None."""
        try:
            msg = json.loads(text)
            action, value = msg["a"], msg["v"]
            if action == "mode":
                mode, tokens = value[0], [int(t) for t in value[1]]
                if mode not in _MODES:
                    return f"invalid mode {mode!r}"
            elif action in ("subscribe", "unsubscribe"):
                mode, tokens = "quote", [int(t) for t in value]
            else:
                return f"invalid action {action!r}"
        except (ValueError, KeyError, IndexError, TypeError):
            return "invalid message"
        known = [t for t in tokens if self.fake.registry.by_token(t) is not None]
        if action == "unsubscribe":
            for token in known:
                client.modes.pop(token, None)
                client.last_trade.pop(token, None)
            return None
        if len(client.modes.keys() | set(known)) > MAX_TOKENS:
            return f"too many instruments: at most {MAX_TOKENS} per connection"
        for token in known:
            if action == "mode" or token not in client.modes:
                client.modes[token] = mode
                client.dirty.add(token)
        client.wake.set()
        return None

    async def _ticker(self, client: _Client) -> None:
        last_sent = next_pass = time.monotonic()
        while True:
            # wake for a pass, a subscription change, or a heartbeat that falls due
            due = min(next_pass, last_sent + _HEARTBEAT_S) - time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(due, 0.0)):
                    await client.wake.wait()
            if self.fake.faults.ws_silent:
                client.wake.clear()  # nothing at all goes out; look again a pass later
                last_sent = time.monotonic()
                next_pass = last_sent + self.frame_real_s
                continue
            if not client.wake.is_set() and time.monotonic() < next_pass:
                if time.monotonic() - last_sent >= _HEARTBEAT_S:
                    await client.conn.send(HEARTBEAT)
                    last_sent = time.monotonic()
                continue
            client.wake.clear()
            next_pass = time.monotonic() + self.frame_real_s
            now_ns = self.fake.now_ns()
            dirty, client.dirty = client.dirty, set()
            modes = dict(client.modes)
            snaps = await asyncio.to_thread(self._snapshots, modes, now_ns)
            if self.fake.faults.ws_silent:
                client.dirty |= dirty
                continue
            packets: list[bytes] = []
            for token, snap in snaps:
                if token not in client.modes:
                    continue  # unsubscribed meanwhile
                if token in dirty or client.last_trade.get(token) != snap.last_trade_ns:
                    client.last_trade[token] = snap.last_trade_ns
                    packets.append(pack_packet(client.modes[token], token, snap))
            for i in range(0, len(packets), _MAX_PACKETS):
                await client.conn.send(encode_frame(packets[i : i + _MAX_PACKETS]))
                last_sent = time.monotonic()
            if not packets and time.monotonic() - last_sent >= _HEARTBEAT_S:
                await client.conn.send(HEARTBEAT)
                last_sent = time.monotonic()

    def _snapshots(self, modes: dict[int, Mode], now_ns: int) -> list[tuple[int, Snapshot]]:
        """Each subscribed token's snapshot now (runs in a worker thread)."""
        out: list[tuple[int, Snapshot]] = []
        for token in modes:
            inst = self.fake.registry.by_token(token)
            snap = None if inst is None else self.fake.market.snapshot(inst.symbol, now_ns)
            if snap is not None:
                out.append((token, snap))
        return out

    async def _texter(self, client: _Client) -> None:
        while True:
            text = await client.outbox.get()
            if not self.fake.faults.ws_silent:
                await client.conn.send(text)

    # ----------------------------------------------------------------- the server's side

    def publish_order(self, payload: dict[str, Any]) -> None:
        """Queue an order update for every socket (unless a fault loses it)."""
        if self.fake.faults.lose_order_updates or self.fake.faults.ws_silent:
            self.updates_lost += 1
            return
        text = json.dumps({"type": "order", "data": payload})
        for client in list(self.clients):
            client.outbox.put_nowait(text)
            self.updates_sent += 1

    def drop_all(self) -> int:
        """Abort every socket's TCP connection (RST, no close frame); how many."""
        dropped = 0
        for client in list(self.clients):
            transport = client.conn.transport
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            dropped += 1
        return dropped
