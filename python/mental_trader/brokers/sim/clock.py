"""Clocks for the simulated market: accelerated simulated time, and a manual clock for tests.

Every clock reads int64 ns since the Unix epoch, UTC (:meth:`Clock.now_ns`) or an aware UTC
``datetime`` (:meth:`Clock.now`), and can ``await sleep_until(ts_ns)`` without ever
blocking the event loop.

* :class:`SimClock` starts at a chosen instant (by default a session's 09:15 IST open) and
  then runs ``speed`` times faster than a base clock: the process's monotonic clock, or any
  :class:`TimeSource` (e.g. a :class:`ManualClock` in tests, which makes speed scaling
  exactly testable). Simulated time never goes backwards, whatever the wall clock does.
* :class:`ManualClock` moves only when told (:meth:`ManualClock.advance`,
  :meth:`ManualClock.set_ns`); sleepers wake when it passes their deadline. With
  ``autojump=True`` a sleep jumps the clock straight to its deadline, so a feed on it runs
  as fast as its consumer takes it, deterministically.

At a large speed (1000, 10 000 or more) simulated time outruns what a consumer can process:
deadlines are then already past and sleeping is mostly skipped.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from mental_trader.calendar import TradingCalendar, ist_date
from mental_trader.errors import InvalidInputError

__all__ = [
    "Clock",
    "ManualClock",
    "MonotonicClock",
    "SimClock",
    "TimeSource",
    "session_open",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_S = 1_000_000_000


def _ns_to_dt(ts_ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ts_ns // 1000)


def _dt_to_ns(value: datetime, what: str) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} {value!r} is naive: give a time zone")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1000


def session_open(calendar: TradingCalendar, day: date | None = None) -> datetime:
    """The open (aware UTC) of ``day``'s session, or of the latest session on or before it.

    Args:
        calendar: the trading calendar.
        day: an IST calendar day; default today's IST date by the wall clock.

    Returns:
        The 09:15 IST (or configured) open of ``day`` if it is a session, else of the most
        recent session before it.
    """
    if day is None:
        day = ist_date(time.time_ns())
    (session,) = calendar.previous_sessions(day, 1)
    return calendar.session_bounds(session)[0]


class TimeSource(Protocol):
    """What a :class:`SimClock` runs on: a ns reading and a way to wait for one."""

    def now_ns(self) -> int:
        """Current reading in ns (any origin; only differences matter to a SimClock)."""
        ...

    async def sleep_until(self, ts_ns: int) -> None:
        """Return once :meth:`now_ns` has reached ``ts_ns``."""
        ...


class Clock(TimeSource, Protocol):
    """A clock of the market: ns since the Unix epoch, UTC."""

    def now(self) -> datetime:
        """Current time, aware UTC (microsecond resolution)."""
        ...


class MonotonicClock:
    """The process's monotonic clock as a :class:`TimeSource` (``time.monotonic_ns``)."""

    def now_ns(self) -> int:
        """``time.monotonic_ns()`` (arbitrary origin)."""
        return time.monotonic_ns()

    async def sleep_until(self, ts_ns: int) -> None:
        """``asyncio.sleep`` until the monotonic clock reaches ``ts_ns`` (yields at least once)."""
        delay_ns = ts_ns - time.monotonic_ns()
        if delay_ns <= 0:
            await asyncio.sleep(0)
            return
        while delay_ns > 0:
            # asyncio may wake a timer a hair early (clock resolution): loop until it is due
            await asyncio.sleep(delay_ns / _NS_PER_S)
            delay_ns = ts_ns - time.monotonic_ns()


class SimClock:
    """Simulated time: starts at ``start`` and runs ``speed`` x its base clock.

    ``now = start + (base.now - base_at_creation) * speed``. Monotonic: it never jumps
    back, because the default base is the monotonic clock, not the wall clock.

    Args:
        start: the simulated instant at creation, aware (any zone). See
            :meth:`for_session` for the usual start, a session's open.
        speed: simulated seconds per real second, > 0 (1 = real time; 1000 runs a
            6h15m session in 22.5 s; 10 000 runs a whole day and night in under 9 s).
        base: what "real time" is; default :class:`MonotonicClock`. Tests pass a
            :class:`ManualClock`.

    Raises:
        InvalidInputError: naive ``start``, or ``speed`` not finite and > 0.
    """

    def __init__(
        self, start: datetime, speed: float = 1.0, *, base: TimeSource | None = None
    ) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise InvalidInputError(f"speed must be finite and > 0, got {speed!r}")
        self._start_ns = _dt_to_ns(start, "start")
        self._speed = float(speed)
        self._base = base or MonotonicClock()
        self._base_now = self._base.now_ns
        self._base0 = self._base_now()

    @classmethod
    def for_session(
        cls,
        calendar: TradingCalendar,
        day: date | None = None,
        *,
        speed: float = 1.0,
        base: TimeSource | None = None,
    ) -> SimClock:
        """A clock starting at a session's open (see :func:`session_open`).

        Args:
            calendar: the trading calendar.
            day: start at this day's session open, or the latest session's before it;
                default: today's IST date by the wall clock.
            speed: as in :class:`SimClock`.
            base: as in :class:`SimClock`.
        """
        return cls(session_open(calendar, day), speed, base=base)

    @property
    def speed(self) -> float:
        """Simulated seconds per base-clock second."""
        return self._speed

    @property
    def start_ns(self) -> int:
        """The simulated instant at creation (ns UTC)."""
        return self._start_ns

    def now_ns(self) -> int:
        """Simulated time, ns since the epoch, UTC."""
        elapsed = self._base_now() - self._base0
        if self._speed == 1.0:
            return self._start_ns + elapsed
        return self._start_ns + int(elapsed * self._speed)

    def now(self) -> datetime:
        """Simulated time, aware UTC."""
        return _ns_to_dt(self.now_ns())

    async def sleep_until(self, ts_ns: int) -> None:
        """Sleep (scaled by ``speed``) until simulated time reaches ``ts_ns``.

        Yields to the event loop at least once, even when ``ts_ns`` is already past.
        """
        now = self.now_ns()
        if now >= ts_ns:
            await asyncio.sleep(0)
            return
        while now < ts_ns:
            real_ns = max(1, math.ceil((ts_ns - now) / self._speed))
            await self._base.sleep_until(self._base_now() + real_ns)
            now = self.now_ns()

    def __repr__(self) -> str:
        return f"SimClock(now={self.now().isoformat()}, speed={self._speed:g})"


class ManualClock:
    """A clock that moves only when told; for tests.

    Args:
        start: the initial time, aware (default: the Unix epoch).
        autojump: when True, a :meth:`sleep_until` in the future moves the clock straight
            to its deadline (after yielding once), so whatever sleeps on it runs without
            real waiting.

    Raises:
        InvalidInputError: naive ``start``.
    """

    def __init__(self, start: datetime = _EPOCH, *, autojump: bool = False) -> None:
        self._now_ns = _dt_to_ns(start, "start")
        self.autojump = autojump
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now_ns(self) -> int:
        """The clock's time, ns since the epoch, UTC."""
        return self._now_ns

    def now(self) -> datetime:
        """The clock's time, aware UTC."""
        return _ns_to_dt(self._now_ns)

    @property
    def sleepers(self) -> int:
        """How many :meth:`sleep_until` calls are waiting for the clock to move."""
        return sum(1 for *_, fut in self._waiters if not fut.done())

    def advance(self, seconds: float) -> None:
        """Move the clock forward ``seconds`` (>= 0) and wake the sleepers now due.

        Raises:
            InvalidInputError: negative or non-finite ``seconds``.
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            raise InvalidInputError(f"seconds must be finite and >= 0, got {seconds!r}")
        self.set_ns(self._now_ns + round(seconds * _NS_PER_S))

    def set_ns(self, ts_ns: int) -> None:
        """Move the clock to ``ts_ns`` and wake the sleepers now due.

        Raises:
            InvalidInputError: ``ts_ns`` is before the clock's time (it never goes back).
        """
        if ts_ns < self._now_ns:
            raise InvalidInputError(f"a clock never goes back: {ts_ns} < {self._now_ns}")
        self._now_ns = ts_ns
        while self._waiters and self._waiters[0][0] <= ts_ns:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)

    async def sleep_until(self, ts_ns: int) -> None:
        """Return once the clock has reached ``ts_ns`` (yields at least once)."""
        if ts_ns <= self._now_ns:
            await asyncio.sleep(0)
            return
        if self.autojump:
            await asyncio.sleep(0)
            if ts_ns > self._now_ns:
                self.set_ns(ts_ns)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (ts_ns, next(self._seq), fut))
        await fut

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now().isoformat()}, autojump={self.autojump})"
