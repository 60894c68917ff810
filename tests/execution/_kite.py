"""A live-trading rig on loopback: the fake Kite server, the real REST and WebSocket clients,
and the Kite gateway with a recording listener. No part of Kite is mocked."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from mental_trader.brokers.kite.rest import KiteRest
from mental_trader.brokers.kite.ticker import KiteTicker
from mental_trader.calendar import IST
from mental_trader.execution.live import KiteGateway
from mental_trader.execution.orders import GatewayEvent, new_client_id
from mental_trader.models import Fill, OrderIntent, OrderStatus, OrderUpdate, Side
from mental_trader.risk import SystemClock
from mental_trader.testing.fake_kite import FakeKite

DAY = date(2026, 3, 2)  # a Monday session
START = datetime.combine(DAY, time(10, 0), tzinfo=IST)


class WallClock(SystemClock):
    """The real clock (the gateway only stamps updates with it)."""


def fake_kite(**overrides: Any) -> FakeKite:
    """A fake on the test day at sim speed 60, with Kite's real rate limits."""
    kwargs: dict[str, Any] = {
        "watchlist": ("NSE:INFY", "NSE:RELIANCE"),
        "seed": 42,
        "start": START,
        "speed": 60.0,
    }
    kwargs.update(overrides)
    return FakeKite(**kwargs)


def rest_for(fake: FakeKite, **kwargs: Any) -> KiteRest:
    """A REST client on the fake (timeout 1 s unless given)."""
    kwargs.setdefault("timeout_s", 1.0)
    return KiteRest(fake.api_key, access_token=fake.access_token, base_url=fake.rest_url, **kwargs)


def intent(
    symbol: str = "NSE:INFY",
    side: Side = Side.BUY,
    qty: int = 10,
    *,
    price: float | None = None,
    client_id: str | None = None,
) -> OrderIntent:
    """A MARKET (or LIMIT at ``price``) MIS order with a fresh client id."""
    return OrderIntent(
        client_id=client_id or new_client_id(),
        symbol=symbol,
        side=side,
        qty=qty,
        order_type="MARKET" if price is None else "LIMIT",
        price=price,
    )


@dataclass
class LiveRig:
    """The fake, the clients and the gateway; ``events`` is everything the gateway said."""

    fake: FakeKite
    rest: KiteRest
    gateway: KiteGateway
    ticker: KiteTicker | None
    events: list[GatewayEvent] = field(default_factory=list)

    def fills(self, client_id: str) -> list[Fill]:
        return [e for e in self.events if isinstance(e, Fill) and e.client_id == client_id]

    def updates(self, client_id: str) -> list[OrderUpdate]:
        return [e for e in self.events if isinstance(e, OrderUpdate) and e.client_id == client_id]

    def statuses(self, client_id: str) -> list[OrderStatus]:
        return [u.status for u in self.updates(client_id)]

    async def wait_for(self, done: Callable[[], bool], timeout_s: float = 20.0) -> None:
        """Wait until ``done()`` (a generous bound: the machine is noisy)."""
        async with asyncio.timeout(timeout_s):
            while not done():  # noqa: ASYNC110 - polls another party's state
                await asyncio.sleep(0.02)


@asynccontextmanager
async def live_rig(
    *,
    ws: bool = True,
    run: bool = True,
    fake_options: dict[str, Any] | None = None,
    rest_options: dict[str, Any] | None = None,
    **gateway_options: Any,
) -> AsyncIterator[LiveRig]:
    """A started rig: the gateway's :meth:`run` as a task and (``ws``) a ticker feeding it."""
    async with fake_kite(**(fake_options or {})) as fake:
        rest = rest_for(fake, **(rest_options or {}))
        gateway_options.setdefault("api_secret", "fake_api_secret")
        gateway_options.setdefault("poll_interval_s", 0.5)
        gateway = KiteGateway(rest, instruments={}, clock=WallClock(), **gateway_options)
        ticker = None
        if ws:
            ticker = KiteTicker(
                fake.ws_url,
                fake.api_key,
                fake.access_token,
                on_order=gateway.on_order_message,
                on_reconnect=gateway.on_reconnect,
            )
        rig = LiveRig(fake, rest, gateway, ticker)
        gateway.set_listener(rig.events.append)
        task = asyncio.create_task(gateway.run()) if run else None
        try:
            if ticker is not None:
                ticker.start()
                assert await ticker.wait_live(10.0)
            yield rig
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if ticker is not None:
                await ticker.close()
            await rest.close()
