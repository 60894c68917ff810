"""Client-side rate limits of Kite Connect, so we never earn a 429 (or an RMS block).

Kite's limits (MARKET_FACTS §5): quote 1 request/s, historical 3/s, orders (place, modify
and cancel together) 10/s and 400/min per account, everything else 10/s. A
:class:`RateLimiter` is a sliding window: at most ``calls`` acquisitions in ANY interval of
``period_s``, which also keeps every fixed one-second window of the server under the limit.
The defaults leave headroom for the jitter between our send time and the server's receive
time: a longer window for the 1/s and 3/s scopes, fewer calls for the 10/s ones.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
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
    """At most ``calls`` acquisitions in any window of ``period_s`` seconds (FIFO fair).

    Args:
        calls: acquisitions allowed per window (>= 1).
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
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"RateLimiter({self.calls} per {self.period_s}s)"

    async def acquire(self) -> None:
        """Wait until one more call fits in the window, then count it."""
        async with self._lock:  # one waiter at a time keeps the order of arrival
            while True:
                now = self._clock()
                while self._stamps and now - self._stamps[0] >= self.period_s:
                    self._stamps.popleft()
                if len(self._stamps) < self.calls:
                    self._stamps.append(now)
                    return
                await asyncio.sleep(self.period_s - (now - self._stamps[0]))


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The limits a :class:`~mental_trader.brokers.kite.rest.KiteRest` keeps.

    Attributes:
        quote_per_s: ``/quote``, ``/quote/ltp``, ``/quote/ohlc`` (Kite: 1/s).
        historical_per_s: historical candles (Kite: 3/s).
        orders_per_s: place + modify + cancel together (Kite: 10/s).
        orders_per_min: place + modify + cancel together (Kite: 400/min).
        other_per_s: every other endpoint (Kite: 10/s).
        slack_s: added to the one-second window of the 1/s and 3/s scopes (jitter margin).
    """

    quote_per_s: int = 1
    historical_per_s: int = 3
    orders_per_s: int = 8
    orders_per_min: int = 360
    other_per_s: int = 8
    slack_s: float = 0.1

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
                    RateLimiter(self.orders_per_s, 1.0, clock=clock),
                    RateLimiter(self.orders_per_min, 60.0, clock=clock),
                ),
                Scope.OTHER: (RateLimiter(self.other_per_s, 1.0, clock=clock),),
            }
        )
