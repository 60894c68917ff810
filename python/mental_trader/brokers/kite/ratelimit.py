"""Client-side rate limits of Kite Connect, so we never earn a 429 (or an RMS block).

Kite's limits (MARKET_FACTS §5): quote 1 request/s, historical 3/s, orders (place, modify
and cancel together) 10/s and 400/min per account, everything else 10/s. A
:class:`RateLimiter` is a sliding window counted from each request's ANSWER (see its
docstring), so the jitter between our send time and the server's receive time cannot push
more than the limit into one of the server's windows. The order and general scopes keep
further headroom by default (8 of 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from mental_trader.errors import InvalidInputError

__all__ = ["RateLimiter", "RateLimits", "Scope"]


class Scope(StrEnum):
    """Which of Kite's rate limits a request counts against."""

    QUOTE = "quote"
    HISTORICAL = "historical"
    ORDERS = "orders"
    OTHER = "other"


class RateLimiter:
    """At most ``calls`` requests in any window of ``period_s`` seconds, as the SERVER sees
    them, whatever the network jitter.

    A request holds its slot from the moment it is sent until ``period_s`` after its
    response arrived (in flight, it holds it indefinitely). The server received request
    ``i`` at some time in ``[sent_i, answered_i]``; the next request to reuse the slot is
    sent no earlier than ``answered_i + period_s``, so it arrives at least ``period_s``
    after request ``i`` did: ``calls + 1`` requests can never land in one window. The price
    is throughput: ``calls`` per ``period_s`` plus one round trip.

    Use it as ``async with limiter.slot(): <send and read the response>``. Waiters are
    served first come, first served.

    Args:
        calls: requests allowed per window (>= 1).
        period_s: window length in seconds (> 0).
        clock: monotonic clock in seconds (tests may inject one).

    Raises:
        InvalidInputError: ``calls < 1`` or ``period_s <= 0``.
    """

    def __init__(
        self, calls: int, period_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if calls < 1 or not period_s > 0:
            raise InvalidInputError(f"rate limit needs calls >= 1 and period_s > 0, got "
                                    f"{calls} per {period_s}")  # fmt: skip
        self.calls = calls
        self.period_s = period_s
        self._clock = clock
        self._done: deque[float] = deque()  # answer times, in order (monotonic clock)
        self._in_flight = 0
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"RateLimiter({self.calls} per {self.period_s}s, {self._in_flight} in flight)"

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot around a request (released with the answer time on exit)."""
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    async def acquire(self) -> None:
        """Wait for a free slot and take it; pair with :meth:`release`."""
        async with self._lock:  # one waiter at a time keeps the order of arrival
            while True:
                now = self._clock()
                while self._done and now - self._done[0] >= self.period_s:
                    self._done.popleft()
                if self._in_flight + len(self._done) < self.calls:
                    self._in_flight += 1
                    return
                changed = self._changed
                if not self._done:  # every slot in flight: wait for an answer
                    await changed.wait()
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.period_s - (now - self._done[0])):
                        await changed.wait()

    def release(self) -> None:
        """Give back a slot taken by :meth:`acquire`, stamped with the answer time now."""
        self._in_flight -= 1
        self._done.append(self._clock())
        self._changed.set()
        self._changed = asyncio.Event()


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The limits a :class:`~mental_trader.brokers.kite.rest.KiteRest` keeps.

    Attributes:
        quote_per_s: ``/quote``, ``/quote/ltp``, ``/quote/ohlc`` (Kite: 1/s).
        historical_per_s: historical candles (Kite: 3/s).
        orders_per_s: place + modify + cancel together (Kite: 10/s).
        orders_per_min: place + modify + cancel together (Kite: 400/min).
        other_per_s: every other endpoint (Kite: 10/s).
        slack_s: added to every window (a margin for the server's clock granularity).
    """

    quote_per_s: int = 1
    historical_per_s: int = 3
    orders_per_s: int = 8
    orders_per_min: int = 360
    other_per_s: int = 8
    slack_s: float = 0.05

    def __post_init__(self) -> None:
        for name, value, cap in (
            ("quote_per_s", self.quote_per_s, 1),
            ("historical_per_s", self.historical_per_s, 3),
            ("orders_per_s", self.orders_per_s, 10),
            ("orders_per_min", self.orders_per_min, 400),
            ("other_per_s", self.other_per_s, 10),
        ):
            if not 1 <= value <= cap:
                raise InvalidInputError(f"{name} must be in 1..{cap} (Kite's limit), got {value}")
        if not 0 <= self.slack_s <= 1:
            raise InvalidInputError(f"slack_s must be in 0..1, got {self.slack_s}")

    def build(
        self, clock: Callable[[], float] = time.monotonic
    ) -> Mapping[Scope, tuple[RateLimiter, ...]]:
        """Fresh limiters per scope (a request acquires every limiter of its scope)."""
        window = 1.0 + self.slack_s
        return MappingProxyType(
            {
                Scope.QUOTE: (RateLimiter(self.quote_per_s, window, clock=clock),),
                Scope.HISTORICAL: (RateLimiter(self.historical_per_s, window, clock=clock),),
                Scope.ORDERS: (
                    RateLimiter(self.orders_per_s, window, clock=clock),
                    RateLimiter(self.orders_per_min, 60.0 + self.slack_s, clock=clock),
                ),
                Scope.OTHER: (RateLimiter(self.other_per_s, window, clock=clock),),
            }
        )
