"""The sim broker's live tick stream: the market's ticks in frames, on a simulated clock.

A :class:`SimFeed` replays :meth:`SimMarket.day_ticks` of every subscribed symbol as one
time-ordered stream, cut into frames of ``frame_ms`` of simulated time
(:class:`~mental_trader.brokers.base.TickFrame`), each frame yielded once the clock has
passed its end, so at speed 1 the stream is real time.

Exactly the ticks of history
----------------------------
Per session day the symbols' tick arrays are concatenated and merged with ONE stable
``argsort`` by time (ties keep the subscription order of the symbols, and each symbol's
own ticks keep their order). Each symbol therefore reaches the consumer exactly as
``day_ticks`` lists it, with its cumulative day volume as the quantity, so an
:class:`~mental_trader.core.Engine` fed these frames (``volume_mode="cumulative"``, the
session of :attr:`SimMarket.session_kwargs`) builds the bars
:meth:`SimBroker.history` returns: live == history, bar for bar. The stream is a pure
function of (seed, calendar, symbols, start): run it twice, get the same frames.

Frames
------
Frame windows are anchored at the session open: ``[open + k * frame_ms, open + (k+1) *
frame_ms)``, the last one cut at the close. Windows without ticks are skipped (a frame is
never empty), so a consumer gets nothing while the market is quiet or closed; it drives
timer closes from :meth:`SimFeed.watermark_ns`. After the session's last frame the feed
moves to the next session (weekends and holidays of the calendar are skipped) and sleeps
until its first frame: at speed 1 that is the real night; at speed 10 000 a whole day and
night pass in under 9 seconds.

Start and resume
----------------
The stream starts at the clock's time when the feed is made (a feed never replays the
past), or at ``resume_from_ns``: ticks before it are skipped, and the frames from there
on are exactly those of a feed that never stopped (resuming inside a window gives that
window's remaining ticks). A restarted service passes the ``end_ns`` of the last frame it
processed and continues the same deterministic stream.

Speed
-----
When the clock is ahead of the stream (a large speed, or a slow consumer) the feed does
not sleep and yields frames as fast as the consumer takes them; it still lets other tasks
run every couple of milliseconds. Each day's ticks are generated and merged in a worker
thread. Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import AsyncGeneratorType, TracebackType
from typing import Self, TypeVar

import numpy as np
import numpy.typing as npt

from mental_trader.brokers.base import TickFrame
from mental_trader.brokers.sim.clock import Clock
from mental_trader.brokers.sim.market import TickSource
from mental_trader.calendar import ist_date
from mental_trader.errors import FeedError, InvalidInputError

__all__ = ["SimFeed"]

_NS_PER_MS = 1_000_000
_YIELD_EVERY_NS = 2_000_000  # let other tasks run at least every 2 ms of real time
_MAX_GAP_DAYS = 366  # a calendar without a session for a year is broken
_A = TypeVar("_A", npt.NDArray[np.int64], npt.NDArray[np.float64])


@dataclass(frozen=True, slots=True)
class _Day:
    """One session's merged ticks from some start on, cut into frames."""

    open_ns: int
    close_ns: int
    ts_ns: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    qty: npt.NDArray[np.float64]
    symbol: npt.NDArray[np.int64]
    bounds: list[int]  # frame i is [bounds[i], bounds[i+1])
    start_ns: list[int]  # frame window starts (not before the stream's start)
    end_ns: list[int]  # frame window ends


def _frozen(array: _A) -> _A:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


class SimFeed:
    """A live tick stream of the simulated market (see the module docstring).

    An async iterator of :class:`~mental_trader.brokers.base.TickFrame` (iterate it once)
    and an async context manager; :meth:`aclose` ends it, also from another task.

    Args:
        market: where the ticks come from: the simulated market, or its options
            (:class:`~mental_trader.brokers.sim.options.SimOptions`) to stream option
            contracts too.
        clock: simulated time (a :class:`~mental_trader.brokers.sim.clock.SimClock`, or a
            :class:`~mental_trader.brokers.sim.clock.ManualClock` in tests).
        symbols: exchange-qualified symbols; frame symbol id ``i`` is ``symbols[i]``.
        frame_ms: frame length in simulated milliseconds, >= 1.
        resume_from_ns: start here (ns UTC) instead of at the clock's time.

    Raises:
        InvalidInputError: no symbols, a duplicate, or ``frame_ms < 1``.
    """

    def __init__(
        self,
        market: TickSource,
        clock: Clock,
        symbols: Sequence[str],
        *,
        frame_ms: int = 50,
        resume_from_ns: int | None = None,
    ) -> None:
        self._symbols = tuple(symbols)
        if not self._symbols:
            raise InvalidInputError("subscribe to at least one symbol")
        if len(set(self._symbols)) != len(self._symbols):
            raise InvalidInputError(f"duplicate symbols in {list(self._symbols)}")
        if frame_ms < 1:
            raise InvalidInputError(f"frame_ms must be >= 1, got {frame_ms}")
        self._market = market
        self._clock = clock
        self._frame_ns = frame_ms * _NS_PER_MS
        self._start_ns = clock.now_ns() if resume_from_ns is None else int(resume_from_ns)
        self._pending_ns = self._start_ns  # every tick before it has been yielded
        self._gen: AsyncGenerator[TickFrame, None] | None = None
        self._sleeper: asyncio.Future[None] | None = None
        self._closed = False
        self._ticks = 0
        self._frames = 0

    # ----------------------------------------------------------------- public surface

    @property
    def symbols(self) -> tuple[str, ...]:
        """The subscribed symbols; symbol id ``i`` is ``symbols[i]``."""
        return self._symbols

    @property
    def start_ns(self) -> int:
        """Where the stream starts (ns UTC): ticks before it are never yielded."""
        return self._start_ns

    @property
    def frame_ms(self) -> int:
        """Frame length in simulated milliseconds."""
        return self._frame_ns // _NS_PER_MS

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @property
    def ticks(self) -> int:
        """Ticks yielded so far."""
        return self._ticks

    @property
    def frames(self) -> int:
        """Frames yielded so far."""
        return self._frames

    def watermark_ns(self) -> int:
        """Every tick before this time (ns UTC) has been yielded; never after the clock.

        Drive timer closes from it (``engine.on_time(feed.watermark_ns())``): when the
        consumer lags the clock, the clock's time would close bars whose ticks are still
        to come, and they would then be dropped as late.
        """
        return min(self._clock.now_ns(), self._pending_ns)

    def __aiter__(self) -> AsyncIterator[TickFrame]:
        """The frames, in time order.

        Raises:
            FeedError: the feed is closed or already being iterated.
        """
        if self._closed:
            raise FeedError("the sim feed is closed", retryable=False)
        if self._gen is not None:
            raise FeedError("a sim feed is iterated once", retryable=False)
        self._gen = self._run()
        return self._gen

    async def aclose(self) -> None:
        """End the stream: a waiting or later ``anext`` stops iteration. Safe to call twice."""
        self._closed = True
        if self._sleeper is not None:
            self._sleeper.cancel()
        gen = self._gen
        # a generator suspended inside anext (sleeping, loading a day) stops by itself
        if isinstance(gen, AsyncGeneratorType) and not gen.ag_running:
            await gen.aclose()

    async def __aenter__(self) -> Self:
        """Return the feed.

        Raises:
            FeedError: the feed is closed.
        """
        if self._closed:
            raise FeedError("the sim feed is closed", retryable=False)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """:meth:`aclose` the feed."""
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SimFeed({len(self._symbols)} symbols, frame_ms={self.frame_ms}, {state})"

    # ----------------------------------------------------------------- the stream

    async def _run(self) -> AsyncGenerator[TickFrame, None]:
        clock_now = self._clock.now_ns
        monotonic_ns = time.monotonic_ns
        after_ns = self._start_ns
        last_yield = monotonic_ns()
        while not self._closed:
            day = await asyncio.to_thread(self._load, after_ns)
            if self._closed:
                return
            ts, price, qty, symbol = day.ts_ns, day.price, day.qty, day.symbol
            bounds, starts, ends = day.bounds, day.start_ns, day.end_ns
            for i, end_ns in enumerate(ends):
                self._pending_ns = starts[i]
                if end_ns > clock_now():
                    if not await self._sleep_until(end_ns):
                        return
                    last_yield = monotonic_ns()
                elif monotonic_ns() - last_yield > _YIELD_EVERY_NS:
                    await asyncio.sleep(0)
                    last_yield = monotonic_ns()
                    if self._closed:
                        return
                a, b = bounds[i], bounds[i + 1]
                self._pending_ns = end_ns
                self._ticks += b - a
                self._frames += 1
                yield TickFrame(ts[a:b], price[a:b], qty[a:b], symbol[a:b], end_ns)
            # no tick between this session's close and the next session's open
            self._pending_ns = after_ns = max(day.close_ns, after_ns)

    async def _sleep_until(self, ts_ns: int) -> bool:
        """Sleep on the clock until ``ts_ns``; False when :meth:`aclose` woke us."""
        sleeper = asyncio.ensure_future(self._clock.sleep_until(ts_ns))
        self._sleeper = sleeper
        try:
            await sleeper
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and sleeper.cancelled() and (task is None or not task.cancelling()):
                return False
            raise
        finally:
            self._sleeper = None
        return not self._closed

    def _load(self, after_ns: int) -> _Day:
        """The first session closing after ``after_ns``: its ticks at or after ``after_ns``.

        Runs in a worker thread (tick generation costs about 1 ms per symbol and day).
        """
        calendar = self._market.calendar
        day = ist_date(after_ns)
        for _ in range(_MAX_GAP_DAYS):
            open_ns, close_ns = calendar.session_bounds_ns(day)
            if close_ns > after_ns and calendar.is_session(day):
                break
            day += timedelta(days=1)
        else:
            raise FeedError(f"no session within {_MAX_GAP_DAYS} days after {day}")
        parts = [self._market.day_ticks(sym, day) for sym in self._symbols]
        ts = np.concatenate([p.ts_ns for p in parts])
        order = np.argsort(ts, kind="stable")  # stable: each symbol keeps its own order
        ts = ts[order]
        first = int(np.searchsorted(ts, after_ns, side="left")) if after_ns > open_ns else 0
        order, ts = order[first:], ts[first:]
        price = np.concatenate([p.price for p in parts])[order]
        qty = np.concatenate([p.cum_volume for p in parts])[order]
        ids = np.repeat(np.arange(len(parts), dtype=np.int64), [len(p) for p in parts])[order]

        window = (ts - open_ns) // self._frame_ns
        cut = np.flatnonzero(window[1:] != window[:-1]) + 1
        heads = np.concatenate(([0], cut)).astype(np.int64) if len(ts) else cut
        window_start = open_ns + window[heads] * self._frame_ns
        window_end = np.minimum(window_start + self._frame_ns, close_ns)
        return _Day(
            open_ns=open_ns,
            close_ns=close_ns,
            ts_ns=_frozen(ts),
            price=_frozen(price),
            qty=_frozen(qty),
            symbol=_frozen(ids),
            bounds=[*heads.tolist(), len(ts)],
            start_ns=np.maximum(window_start, after_ns).tolist(),
            end_ns=window_end.tolist(),
        )
