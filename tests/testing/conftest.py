"""Shared pieces of the fake Kite server's tests: a started fake and Kite-speaking clients."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime, time
from typing import Any

import httpx
import pytest

from mental_trader.calendar import IST
from mental_trader.testing.fake_kite import FakeKite

DAY = date(2026, 3, 2)  # a Monday session
START = datetime.combine(DAY, time(10, 0), tzinfo=IST)
#: generous limits for tests that are not about rate limits
LOOSE = {k: (1000, 1.0) for k in ("quote", "historical", "orders", "others")}


def make_fake(**overrides: Any) -> FakeKite:
    """A fake on the test day (not started)."""
    kwargs: dict[str, Any] = {
        "watchlist": ("NSE:INFY", "NSE:RELIANCE"),
        "start": START,
        "speed": 60.0,
        "rate_limits": LOOSE,
    }
    kwargs.update(overrides)
    return FakeKite(**kwargs)


@pytest.fixture
async def fake() -> AsyncIterator[FakeKite]:
    """A started fake with loose rate limits, sim speed 60, from 10:00 IST."""
    async with make_fake() as server:
        yield server


def headers(fake: FakeKite, token: str | None = None) -> dict[str, str]:
    """Kite's request headers."""
    return {
        "X-Kite-Version": "3",
        "Authorization": f"token {fake.api_key}:{token or fake.access_token}",
    }


@pytest.fixture
async def http(fake: FakeKite) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the fake's REST URL with valid Kite headers."""
    async with httpx.AsyncClient(base_url=fake.rest_url, headers=headers(fake)) as client:
        yield client


def ws_url(fake: FakeKite, token: str | None = None) -> str:
    """The fake's WebSocket URL with credentials."""
    return f"{fake.ws_url}?api_key={fake.api_key}&access_token={token or fake.access_token}"


def packets(frame: bytes) -> list[bytes]:
    """Split a binary frame into its packets (Kite's framing)."""
    (count,) = struct.unpack_from(">H", frame, 0)
    out, pos = [], 2
    for _ in range(count):
        (length,) = struct.unpack_from(">H", frame, pos)
        out.append(frame[pos + 2 : pos + 2 + length])
        pos += 2 + length
    assert pos == len(frame)
    return out


async def until(
    check: Callable[[], Awaitable[Any]], wait_s: float = 10.0, every: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy (fail after ``wait_s``)."""
    async with asyncio.timeout(wait_s):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(every)


def order_form(**fields: Any) -> dict[str, str]:
    """A MARKET buy of 1 INFY with protection, overridable."""
    form: dict[str, Any] = {
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "BUY",
        "order_type": "MARKET",
        "quantity": 1,
        "product": "MIS",
        "validity": "DAY",
        "market_protection": -1,
    }
    form.update(fields)
    return {k: str(v) for k, v in form.items() if v is not None}


def text_messages(raw: list[str | bytes]) -> list[dict[str, Any]]:
    """The JSON text messages among received WebSocket messages."""
    return [json.loads(m) for m in raw if isinstance(m, str)]
