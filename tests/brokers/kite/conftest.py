"""Fixtures for the Kite broker's tests: a started fake Kite server on loopback.

* ``fake_kite_day``: the session day the fakes trade (a fixed past session, so runs repeat).
* ``fake_kite_start``: the clock's start, 10:00 IST that day (so the day has history).
* ``fake_kite``: a started :class:`~mental_trader.testing.fake_kite.FakeKite` with Kite's
  real rate limits, NSE:INFY / NSE:RELIANCE / NSE:ICICIBANK, seed 42, sim speed 60.
* ``fake_kite_factory``: ``async with fake_kite_factory(speed=600, ...) as fake`` for other
  settings (same defaults; keyword arguments of FakeKite override them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date, datetime, time
from typing import Any

import pytest

from mental_trader.calendar import IST
from mental_trader.testing.fake_kite import FakeKite

FAKE_KITE_DAY = date(2026, 3, 2)  # a Monday session


@pytest.fixture
def fake_kite_day() -> date:
    """The session day of the fake market."""
    return FAKE_KITE_DAY


@pytest.fixture
def fake_kite_start(fake_kite_day: date) -> datetime:
    """Where the fake's clock starts: 10:00 IST on the session day."""
    return datetime.combine(fake_kite_day, time(10, 0), tzinfo=IST)


@pytest.fixture
def fake_kite_factory(
    fake_kite_start: datetime,
) -> Callable[..., AbstractAsyncContextManager[FakeKite]]:
    """A factory of started fakes: ``async with fake_kite_factory(**overrides) as fake``."""

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[FakeKite]:
        kwargs: dict[str, Any] = {
            "watchlist": ("NSE:INFY", "NSE:RELIANCE", "NSE:ICICIBANK"),
            "seed": 42,
            "start": fake_kite_start,
            "speed": 60.0,
        }
        kwargs.update(overrides)
        async with FakeKite(**kwargs) as fake:
            yield fake

    return make


@pytest.fixture
async def fake_kite(
    fake_kite_factory: Callable[..., AbstractAsyncContextManager[FakeKite]],
) -> AsyncIterator[FakeKite]:
    """A started fake Kite server (Kite's real rate limits, sim speed 60)."""
    async with fake_kite_factory() as fake:
        yield fake
