"""The client-side sliding-window rate limiter."""

from __future__ import annotations

import asyncio
import time

import pytest

from mental_trader.brokers.kite.ratelimit import RateLimiter, RateLimits, Scope
from mental_trader.errors import InvalidInputError


def _max_in_window(stamps: list[float], window: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while stamps[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_never_more_than_calls_in_any_window() -> None:
    limiter = RateLimiter(3, 0.2)
    stamps: list[float] = []

    async def one() -> None:
        async with limiter.slot():
            stamps.append(time.monotonic())

    async with asyncio.TaskGroup() as tg:
        for _ in range(10):
            tg.create_task(one())
    stamps.sort()
    assert len(stamps) == 10
    # Measured after acquire, so the spacing can only grow under load: the property holds
    # on a slow machine too. A strictly shorter window than the limiter's is checked.
    assert _max_in_window(stamps, 0.2 - 1e-3) <= 3
    # And it did not serialise everything: the first 3 went out together.
    assert stamps[2] - stamps[0] < 0.2


async def test_fake_clock_waits_exactly() -> None:
    now = [100.0]
    limiter = RateLimiter(2, 1.0, clock=lambda: now[0])
    await limiter.acquire()
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)
    assert not waiter.done()  # both slots in flight: no clock time frees them
    now[0] = 200.0
    await asyncio.sleep(0.01)
    assert not waiter.done()
    limiter.release()  # answered at 200.0: the slot is free again at 201.0
    await asyncio.sleep(0.01)
    assert not waiter.done()
    now[0] = 201.0
    limiter.release()  # wakes the waiter, which now sees the first slot expired
    await asyncio.wait_for(waiter, 2)


def test_limits_validated_against_kite() -> None:
    with pytest.raises(InvalidInputError, match="orders_per_s"):
        RateLimits(orders_per_s=11)
    with pytest.raises(InvalidInputError, match="quote_per_s"):
        RateLimits(quote_per_s=2)
    with pytest.raises(InvalidInputError):
        RateLimiter(0, 1.0)
    built = RateLimits(orders_per_s=5).build()
    assert set(built) == set(Scope)
    assert [(lim.calls, lim.period_s) for lim in built[Scope.ORDERS]] == [(5, 1.05), (360, 60.05)]
    assert built[Scope.QUOTE][0].period_s > 1.0
