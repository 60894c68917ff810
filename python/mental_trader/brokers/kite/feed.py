"""The Kite live feed: WebSocket frames → engine :class:`~mental_trader.brokers.base.TickFrame`.

:class:`KiteFeed` implements :class:`~mental_trader.brokers.base.Feed` over a
:class:`~mental_trader.brokers.kite.ticker.KiteTicker` subscribed in ``full`` mode. Each
binary frame is decoded in the Rust core into columns (:func:`decode_ticks`) and becomes
one TickFrame with a few array operations, no Python object per tick.

Which packets are ticks: Kite sends a packet whenever any field of the mode changes (depth,
buy/sell quantities), not only on trades. For the engine a tick is a TRADE, so a tradable
instrument's packet counts only when its cumulative day volume grew (its first packet
always counts: the snapshot of the last trade); an index has no volume, and each of its
packets is a new value. A packet stamped on a later IST day starts that symbol's volume
baseline again (a socket kept open overnight). Tick time is the exchange timestamp, else
the market clock's now, and never more than 2 s ahead of now: one wrong stamp must not make
every later tick late.

Watermark (every tick before it has been yielded): the newest exchange time YIELDED, moved
on by the wall time between that tick's arrival and the LAST FRAME RECEIVED (heartbeats
count) — or the arrival of the oldest frame not yet yielded, if one waits — minus
``lateness_s``. So it advances with heartbeats while the socket lives, and stops while the
socket is dead: no bar is closed by the clock over an outage whose ticks the backfill is
about to bring, nor by frames read in a burst (after a stall) before their consumer got
the earlier ones.

Backfill after a reconnect: the 1-minute candles from the bucket of each symbol's last
tick to now are fetched (REST, within the historical rate limit) and replayed to the engine
as ticks — open, the extreme on the side away from the close, the other extreme, close —
before any frame of the new connection. Bars of buckets missed entirely are then rebuilt
with the candles' OHLC and volume; the bar that was forming at the drop gets its full range
and close (its open stays the first tick seen). The volume traded in that bar after the
drop is attributed to the next live bar (the cumulative feed carries it), as a real feed's
gap would be. Candle volumes need not add up to the feed's own count, so live packets are
still judged by the feed's volume, and each carries at least the volume the backfill
replayed (the engine would read a drop as a new day).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

import numpy as np
import numpy.typing as npt

from mental_trader.brokers.base import TickFrame
from mental_trader.brokers.kite.decode import decode_ticks
from mental_trader.brokers.kite.ticker import KiteTicker
from mental_trader.calendar import UTC_OFFSET_MINUTES
from mental_trader.errors import FeedDisconnected, InvalidInputError
from mental_trader.storage.base import Candles, dt_to_ns, ns_to_dt

__all__ = ["BACKFILL_TIMEFRAME_S", "KiteFeed", "candles_to_ticks"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_DAY_S = 86_400
_IST_OFFSET_S = UTC_OFFSET_MINUTES * 60
_FUTURE_SLACK_NS = 2 * _NS  # how far a tick's time may lead the market clock
_INDEX_SEGMENT = 9
#: Candles the backfill replays (Kite's finest interval).
BACKFILL_TIMEFRAME_S = 60
#: History reader: ``(symbol, timeframe_s, start, end) -> Candles`` (the broker's).
History = Callable[[str, int, datetime, datetime], Awaitable[Candles]]


def candles_to_ticks(
    candles: Candles, timeframe_s: int, start_volume: float, *, volume_from_ns: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Ticks that rebuild ``candles`` in the engine: (ts_ns, price, cumulative volume).

    Four ticks per candle inside its bucket — open at the start, then the extreme away from
    the close, the other extreme, and the close at the last millisecond. The cumulative
    volume starts at ``start_volume`` and adds the volume of each candle starting at or
    after ``volume_from_ns`` (the first bucket, partly seen already, adds none).
    """
    n = len(candles["ts"])
    ts = np.empty(4 * n, dtype=np.int64)
    price = np.empty(4 * n, dtype=np.float64)
    qty = np.empty(4 * n, dtype=np.float64)
    cum = float(start_volume)
    last_ms = timeframe_s * 1000 - 1
    for i in range(n):
        t0 = int(candles["ts"][i])
        o, h, lo, c = (float(candles[k][i]) for k in ("open", "high", "low", "close"))
        first, second = (lo, h) if c >= o else (h, lo)
        if t0 >= volume_from_ns:
            cum += float(candles["volume"][i])
        j = 4 * i
        ts[j : j + 4] = (t0, t0 + 1_000_000, t0 + 2_000_000, t0 + last_ms * 1_000_000)
        price[j : j + 4] = (o, first, second, c)
        qty[j : j + 4] = cum
    return ts, price, qty


class KiteFeed:
    """A :class:`~mental_trader.brokers.base.Feed` of Kite ticks (see the module docstring).

    Args:
        ticker: the connection (not started: the feed starts it).
        symbols: the subscribed symbols; ids 0..N-1 in this order.
        tokens: their instrument tokens, same order.
        history: the broker's candle reader, for the backfill after a reconnect.
        now: the market clock (aware datetime).
        lateness_s: how far behind the newest exchange time the watermark stays.
        connect_timeout_s: how long :meth:`open` waits for the first connection.
        on_reconnect: awaited after the backfill of each reconnect (e.g. re-read the
            order book).
    """

    def __init__(
        self,
        ticker: KiteTicker,
        symbols: Sequence[str],
        tokens: Sequence[int],
        *,
        history: History,
        now: Callable[[], datetime],
        lateness_s: float = 1.0,
        connect_timeout_s: float = 15.0,
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if len(symbols) != len(tokens) or not symbols:
            raise InvalidInputError("a Kite feed needs one token per symbol, at least one")
        if len(set(tokens)) != len(tokens):
            raise InvalidInputError("a Kite feed needs distinct instrument tokens")
        self._symbols = tuple(symbols)
        self._tokens = [int(t) for t in tokens]
        order = np.argsort(np.asarray(self._tokens, dtype=np.int64), kind="stable")
        self._sorted_tokens = np.asarray(self._tokens, dtype=np.int64)[order]
        self._sorted_ids = order.astype(np.int64)
        self._is_index = (np.asarray(self._tokens, dtype=np.int64) & 0xFF) == _INDEX_SEGMENT
        n = len(self._tokens)
        self._last_volume = np.full(n, -1.0)  # -1: no tick yet, the first always counts
        self._last_ts = np.zeros(n, dtype=np.int64)  # 0: no tick yet
        self._volume_floor = np.zeros(n)  # the volume a backfill replayed up to
        self._day_end = np.zeros(n, dtype=np.int64)  # next IST midnight after the last tick
        self._ticker = ticker
        self._history = history
        self._now = now
        self.lateness_ns = int(lateness_s * _NS)
        self.connect_timeout_s = connect_timeout_s
        self._after_reconnect = on_reconnect
        # Frames not yet yielded, each with its arrival (monotonic ns).
        self._frames: deque[tuple[TickFrame, int]] = deque()
        self._ready = asyncio.Event()
        self._max_ts = 0
        self._max_mono_ns = 0
        self._closed = False
        self._stream: AsyncIterator[TickFrame] | None = None
        #: Frames the decoder refused (broken framing), and packets of unknown tokens.
        self.bad_frames = 0
        self.unknown_packets = 0
        #: Backfills done after reconnects, and the ticks they replayed.
        self.backfills = 0
        self.backfilled_ticks = 0
        ticker.bind(self._on_frame, self._on_reconnect)

    @property
    def symbols(self) -> tuple[str, ...]:
        """The subscribed symbols; a frame's symbol id ``i`` is ``symbols[i]``."""
        return self._symbols

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @property
    def ticker(self) -> KiteTicker:
        """The connection (its state, reconnect count, last disconnect reason)."""
        return self._ticker

    async def open(self) -> Self:
        """Subscribe in full mode, connect, and wait for the first connection.

        Raises:
            FeedDisconnected: no connection within ``connect_timeout_s``, or the token was
                refused.
        """
        await self._ticker.subscribe(self._tokens, "full")
        self._ticker.start()
        if not await self._ticker.wait_live(self.connect_timeout_s):
            reason = self._ticker.last_disconnect or "no connection"
            await self._ticker.close()
            raise FeedDisconnected(f"Kite WebSocket not connected: {reason}")
        return self

    # -- Feed protocol -------------------------------------------------------------------

    def watermark_ns(self) -> int:
        """Every tick before this time (ns UTC) has been yielded (see the module docstring)."""
        if self._max_ts == 0:
            return 0
        heard = int(self._ticker.last_frame_mono * _NS)
        if self._frames:  # time runs on only up to the first frame the consumer has not had
            heard = min(heard, self._frames[0][1])
        return self._max_ts + max(0, heard - self._max_mono_ns) - self.lateness_ns

    def __aiter__(self) -> AsyncIterator[TickFrame]:
        """The one stream of frames (every call returns the same iterator)."""
        if self._stream is None:
            self._stream = self._iterate()
        return self._stream

    async def _iterate(self) -> AsyncIterator[TickFrame]:
        frames, ready = self._frames, self._ready
        while True:
            while frames:
                frame, arrived = frames.popleft()
                if frame.end_ns - 1 > self._max_ts:  # the watermark counts yielded ticks only
                    self._max_ts, self._max_mono_ns = frame.end_ns - 1, arrived
                yield frame
            if self._closed:
                return
            if self._ticker.state in ("token_expired", "failed"):
                raise FeedDisconnected(self._ticker.last_disconnect, retryable=False)
            ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), 1.0)

    async def aclose(self) -> None:
        """Close the connection and end the stream; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._ready.set()
            await self._ticker.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- frames --------------------------------------------------------------------------

    def _on_frame(self, data: bytes) -> None:
        if len(data) < 2:  # heartbeat: the ticker noted the time
            return
        try:
            cols = decode_ticks(data)
        except InvalidInputError as exc:
            self.bad_frames += 1
            log.warning("Kite feed: dropped a broken frame (%d bytes): %s", len(data), exc)
            return
        token = cols.token
        if not len(token):
            return
        pos = np.searchsorted(self._sorted_tokens, token).clip(0, len(self._sorted_tokens) - 1)
        known = self._sorted_tokens[pos] == token
        ids = self._sorted_ids[pos]
        # Tick time: the exchange's, else now; never ahead of now by more than the slack, so
        # one wrong stamp (or a fast host clock) cannot make every later tick late.
        now_ns = dt_to_ns(self._now())
        stamp = cols.exchange_ts_ns
        ts = np.minimum(np.where(stamp > 0, stamp, now_ns), now_ns + _FUTURE_SLACK_NS)
        new_day = ts >= self._day_end[ids]
        if new_day.any():  # the day's cumulative volume starts again from 0
            self._new_day(ids[new_day & known], ts[new_day & known])
        volume = cols.volume
        trade = self._is_index[ids] | (volume > self._last_volume[ids])
        keep = known & trade
        if not keep.all():
            self.unknown_packets += int((~known).sum())
            if not keep.any():
                return
            ids, volume, ts, price = ids[keep], volume[keep], ts[keep], cols.last_price[keep]
        else:
            price = cols.last_price
        np.maximum.at(self._last_volume, ids, volume)
        np.maximum.at(self._last_ts, ids, ts)
        # Never below what a backfill replayed: the engine reads a drop as a new day.
        self._push(ts, price, np.maximum(volume, self._volume_floor[ids]), ids)

    def _new_day(self, ids: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]) -> None:
        """Forget the volume baselines of ``ids``: their ticks ``ts`` begin a new IST day."""
        self._last_volume[ids] = -1.0
        self._volume_floor[ids] = 0.0
        local_s = ts // _NS + _IST_OFFSET_S
        self._day_end[ids] = (local_s - local_s % _DAY_S + _DAY_S - _IST_OFFSET_S) * _NS

    def _push(
        self,
        ts: npt.NDArray[np.int64],
        price: npt.NDArray[np.float64],
        qty: npt.NDArray[np.float64],
        ids: npt.NDArray[np.int64],
    ) -> None:
        ts, ids = np.ascontiguousarray(ts), np.ascontiguousarray(ids)
        price, qty = np.ascontiguousarray(price), np.ascontiguousarray(qty)
        for a in (ts, price, qty, ids):
            a.flags.writeable = False
        self._frames.append(
            (TickFrame(ts, price, qty, ids, int(ts.max()) + 1), time.monotonic_ns())
        )
        self._ready.set()

    # -- reconnect -----------------------------------------------------------------------

    async def _on_reconnect(self) -> None:
        try:
            await self._backfill()
        except Exception as exc:  # the live stream matters more than the gap
            log.error("Kite feed: backfill after the reconnect failed: %s", exc)
        if self._after_reconnect is not None:
            try:
                await self._after_reconnect()
            except Exception:
                log.exception("Kite feed: the after-reconnect step failed")

    async def _backfill(self) -> None:
        """Replay the candles missed since each symbol's last tick (module docstring)."""
        now = self._now()
        tf_ns = BACKFILL_TIMEFRAME_S * _NS
        parts: list[tuple[npt.NDArray[np.int64], ...]] = []
        prices: list[npt.NDArray[np.float64]] = []
        qtys: list[npt.NDArray[np.float64]] = []
        total = 0
        for sid, symbol in enumerate(self._symbols):
            last = int(self._last_ts[sid])
            if last == 0:
                continue  # no tick since the warm-up: nothing of ours was cut
            bucket = last - last % tf_ns  # minute buckets: 09:15 IST is a whole minute
            candles = await self._history(symbol, BACKFILL_TIMEFRAME_S, ns_to_dt(bucket), now)
            if not len(candles["ts"]):
                continue
            start_volume = max(0.0, float(self._last_volume[sid]), self._volume_floor[sid])
            ts, price, qty = candles_to_ticks(
                candles, BACKFILL_TIMEFRAME_S, start_volume, volume_from_ns=bucket + tf_ns
            )
            if not self._is_index[sid]:
                # Candle volumes need not add up to the feed's own count: live packets are
                # still judged by the feed's volume, and carry at least the replayed one.
                self._volume_floor[sid] = qty[-1]
            self._last_ts[sid] = max(last, int(ts[-1]))
            parts.append((ts, np.full(len(ts), sid, dtype=np.int64)))
            prices.append(price)
            qtys.append(qty)
            total += len(ts)
        self.backfills += 1
        if not total:
            return
        ts_all = np.concatenate([p[0] for p in parts])
        ids_all = np.concatenate([p[1] for p in parts])
        price_all, qty_all = np.concatenate(prices), np.concatenate(qtys)
        order = np.argsort(ts_all, kind="stable")
        self.backfilled_ticks += total
        self._push(ts_all[order], price_all[order], qty_all[order], ids_all[order])
        log.info("Kite feed: backfilled %d tick(s) from candles after a reconnect", total)
