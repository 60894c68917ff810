"""A plain, slow, pure-Python reference of the market-data rules of ``mental_trader._core``.

Written from the contract (DESIGN.md section 3, ``_core.pyi``), not from the Rust code, so the
tests can compare the extension against an independent reading of the rules:

* time: ``local = ts + offset``; ``tod = local mod day``; with a session a tick is in session iff
  ``start <= tod < end`` and its bucket starts at ``start + floor((tod - start) / tf) * tf``; the
  last bucket of a session is truncated at ``end``. Without a session (``session_start=None``)
  buckets are anchored at local midnight, truncated at the next midnight, and nothing is dropped.
* bars: no empty bars; open/close by arrival; a tick whose bucket is older than the symbol's
  open or last closed bucket (or is that bucket after it was closed) is late and dropped;
  in the streaming classes a tick is also late when its bucket ended more than the grace
  before the latest ``on_time`` clock (the clock closed that bucket, even with no bar; the
  clock is shared by all symbols and never goes back); dropped ticks change nothing.
* volume: ``trade`` sums quantities; ``cumulative`` sums increments ``c - prev`` where ``prev``
  restarts at 0 each local day and a decrease (``c < prev``) is a reset (increment ``c``).
* resampling, EMA (SMA seed then recursion), crossovers and the fused engine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np
from numpy.typing import NDArray

NS = 1_000_000_000
MINUTE_NS = 60 * NS
DAY_NS = 86_400 * NS
IST_OFFSET_MIN = 330

# 2026-11-23 (a Monday), in days since the Unix epoch (no host TZ involved).
BASE_DAY = (date(2026, 11, 23) - date(1970, 1, 1)).days

COLUMNS = ("ts", "open", "high", "low", "close", "volume", "ticks")


def local_ns(
    h: int, m: int, s: int = 0, ns: int = 0, *, day: int = 0, offset_min: int = IST_OFFSET_MIN
) -> int:
    """UTC ns of local wall time ``h:m:s.ns`` on ``BASE_DAY + day`` in a zone at ``offset_min``."""
    local = (BASE_DAY + day) * DAY_NS + ((h * 60 + m) * 60 + s) * NS + ns
    return local - offset_min * MINUTE_NS


def ist_ns(h: int, m: int, s: int = 0, ns: int = 0, *, day: int = 0) -> int:
    """UTC ns of IST wall time ``h:m:s.ns`` on 2026-11-23 + ``day`` days."""
    return local_ns(h, m, s, ns, day=day, offset_min=IST_OFFSET_MIN)


def parse_hhmm(text: str) -> int:
    """``"HH:MM"`` -> minutes after midnight (strict, for the reference only)."""
    hh, mm = text.split(":")
    return int(hh) * 60 + int(mm)


@dataclass(frozen=True)
class Clock:
    """Session anchoring of one timeframe."""

    timeframe_s: int
    session_start: str | None = "09:15"
    session_end: str | None = "15:30"
    utc_offset_minutes: int = IST_OFFSET_MIN

    @property
    def tf_ns(self) -> int:
        return self.timeframe_s * NS

    @property
    def offset_ns(self) -> int:
        return self.utc_offset_minutes * MINUTE_NS

    def local_day(self, ts: int) -> int:
        return (ts + self.offset_ns) // DAY_NS

    def bucket(self, ts: int) -> tuple[int, int] | None:
        """``(start, end)`` in UTC ns of the bucket holding ``ts``, or None out of session."""
        local = ts + self.offset_ns
        day = local // DAY_NS
        tod = local - day * DAY_NS
        if self.session_start is None:
            lo, hi = 0, DAY_NS
        else:
            assert self.session_end is not None
            lo = parse_hhmm(self.session_start) * MINUTE_NS
            hi = parse_hhmm(self.session_end) * MINUTE_NS
            if not lo <= tod < hi:
                return None
        start = lo + (tod - lo) // self.tf_ns * self.tf_ns
        end = min(start + self.tf_ns, hi)
        base = day * DAY_NS - self.offset_ns
        return base + start, base + end


@dataclass(frozen=True)
class RefBar:
    symbol: int
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    ticks: int

    def row(self) -> tuple[int, int, float, float, float, float, float, int]:
        return (
            self.symbol,
            self.ts,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.ticks,
        )


@dataclass
class _OpenBar:
    symbol: int
    ts: int
    end: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    ticks: int

    def freeze(self) -> RefBar:
        return RefBar(
            self.symbol,
            self.ts,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.ticks,
        )


def _order(bars: Iterable[RefBar]) -> list[RefBar]:
    return sorted(bars, key=lambda b: (b.ts, b.symbol))


@dataclass
class RefBarBuilder:
    """Streaming tick -> bar state machine, many symbols (the reference ``BarBuilder``)."""

    timeframe_s: int = 60
    session_start: str | None = "09:15"
    session_end: str | None = "15:30"
    utc_offset_minutes: int = IST_OFFSET_MIN
    volume_mode: str = "trade"
    grace_ms: int = 1000
    dropped: dict[str, int] = field(default_factory=lambda: {"out_of_session": 0, "late": 0})
    _open: dict[int, _OpenBar] = field(default_factory=dict)
    _last_bucket: dict[int, int] = field(default_factory=dict)
    _cum: dict[int, tuple[int, float]] = field(default_factory=dict)
    _clock: int | None = None  # the latest on_time(now), the largest seen

    @property
    def clock(self) -> Clock:
        return Clock(
            self.timeframe_s, self.session_start, self.session_end, self.utc_offset_minutes
        )

    def current(self, symbol: int) -> RefBar | None:
        bar = self._open.get(symbol)
        return None if bar is None else bar.freeze()

    def open_start(self, symbol: int) -> int | None:
        bar = self._open.get(symbol)
        return None if bar is None else bar.ts

    def on_tick(self, symbol: int, ts: int, price: float, qty: float) -> list[RefBar]:
        clock = self.clock
        bucket = clock.bucket(ts)
        if bucket is None:
            self.dropped["out_of_session"] += 1
            return []
        start, end = bucket
        last = self._last_bucket.get(symbol)
        cur = self._open.get(symbol)
        if last is not None and (start < last or (start == last and cur is None)):
            self.dropped["late"] += 1
            return []
        if self._clock is not None and end + self.grace_ms * 1_000_000 < self._clock:
            self.dropped["late"] += 1  # the clock already closed this bucket
            return []

        if self.volume_mode == "cumulative":
            day = clock.local_day(ts)
            prev_day, prev = self._cum.get(symbol, (day, 0.0))
            if prev_day != day:
                prev = 0.0
            inc = qty if qty < prev else qty - prev
            self._cum[symbol] = (day, qty)
        else:
            inc = qty

        closed: list[RefBar] = []
        if cur is not None and start == cur.ts:
            cur.high = max(cur.high, price)
            cur.low = min(cur.low, price)
            cur.close = price
            cur.volume += inc
            cur.ticks += 1
            return closed
        if cur is not None:
            closed.append(cur.freeze())
        self._open[symbol] = _OpenBar(symbol, start, end, price, price, price, price, inc, 1)
        self._last_bucket[symbol] = start
        return closed

    def on_time(self, now_ns: int) -> list[RefBar]:
        grace = self.grace_ms * 1_000_000
        self._clock = now_ns if self._clock is None else max(self._clock, now_ns)
        done = [s for s, b in self._open.items() if b.end + grace < now_ns]
        return _order(self._open.pop(s).freeze() for s in done)

    def flush(self) -> list[RefBar]:
        bars = _order(b.freeze() for b in self._open.values())
        self._open.clear()
        return bars


def ref_build_bars(
    ts: Sequence[int],
    price: Sequence[float],
    qty: Sequence[float],
    symbol: Sequence[int] | None = None,
    *,
    timeframe_s: int = 60,
    session_start: str | None = "09:15",
    session_end: str | None = "15:30",
    utc_offset_minutes: int = IST_OFFSET_MIN,
    volume_mode: str = "trade",
) -> list[RefBar]:
    """The reference ``build_bars``: bars ordered by ``(ts, symbol)``."""
    builder = RefBarBuilder(
        timeframe_s,
        session_start,
        session_end,
        utc_offset_minutes,
        volume_mode,
    )
    bars: list[RefBar] = []
    for i in range(len(ts)):
        sym = 0 if symbol is None else int(symbol[i])
        bars += builder.on_tick(sym, int(ts[i]), float(price[i]), float(qty[i]))
    bars += builder.flush()
    return _order(bars)


def ref_resample(
    bars: Sequence[RefBar],
    timeframe_s: int,
    *,
    session_start: str | None = "09:15",
    session_end: str | None = "15:30",
    utc_offset_minutes: int = IST_OFFSET_MIN,
) -> list[RefBar]:
    """Coarser bars from finer ones (each symbol's rows in ascending ``ts``)."""
    clock = Clock(timeframe_s, session_start, session_end, utc_offset_minutes)
    out: list[RefBar] = []
    acc: dict[int, _OpenBar] = {}
    for bar in bars:
        bucket = clock.bucket(bar.ts)
        if bucket is None:
            raise ValueError(f"bar outside the session: {bar}")
        start, end = bucket
        cur = acc.get(bar.symbol)
        if cur is not None and cur.ts == start:
            cur.high = max(cur.high, bar.high)
            cur.low = min(cur.low, bar.low)
            cur.close = bar.close
            cur.volume += bar.volume
            cur.ticks += bar.ticks
            continue
        if cur is not None:
            out.append(cur.freeze())
        acc[bar.symbol] = _OpenBar(
            bar.symbol, start, end, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ticks
        )
    out += [b.freeze() for b in acc.values()]
    return _order(out)


def ref_ema(values: Iterable[float], period: int) -> list[float]:
    """EMA with an SMA seed; NaN during the first ``period - 1`` values."""
    alpha = 2.0 / (period + 1)
    out: list[float] = []
    seed = 0.0
    value = math.nan
    for i, x in enumerate(values):
        if i < period:
            seed += x
            if i == period - 1:
                value = seed / period
        else:
            value = value + alpha * (x - value)
        out.append(value if i >= period - 1 else math.nan)
    return out


def cross_flag(prev_fast: float, prev_slow: float, fast: float, slow: float) -> int:
    """TradingView crossover / crossunder of one step; NaN anywhere gives 0."""
    if any(math.isnan(v) for v in (prev_fast, prev_slow, fast, slow)):
        return 0
    if fast > slow and prev_fast <= prev_slow:
        return 1
    if fast < slow and prev_fast >= prev_slow:
        return -1
    return 0


def ref_crossovers(fast: Sequence[float], slow: Sequence[float]) -> list[int]:
    out = [0] * len(fast)
    for i in range(1, len(fast)):
        out[i] = cross_flag(fast[i - 1], slow[i - 1], fast[i], slow[i])
    return out


def bars_to_columns(
    bars: Sequence[RefBar], *, with_symbol: bool = True
) -> dict[str, NDArray[np.int64] | NDArray[np.float64]]:
    """Reference bars as the column dict of ``build_bars``."""
    cols: dict[str, NDArray[np.int64] | NDArray[np.float64]] = {
        "ts": np.array([b.ts for b in bars], dtype=np.int64),
        "open": np.array([b.open for b in bars], dtype=np.float64),
        "high": np.array([b.high for b in bars], dtype=np.float64),
        "low": np.array([b.low for b in bars], dtype=np.float64),
        "close": np.array([b.close for b in bars], dtype=np.float64),
        "volume": np.array([b.volume for b in bars], dtype=np.float64),
        "ticks": np.array([b.ticks for b in bars], dtype=np.int64),
    }
    if with_symbol:
        cols["symbol"] = np.array([b.symbol for b in bars], dtype=np.int64)
    return cols


def columns_to_bars(cols: Mapping[str, NDArray[np.generic]]) -> list[RefBar]:
    """The column dict of ``build_bars`` as reference bars (symbol 0 when absent)."""
    n = len(cols["ts"])
    sym = cols.get("symbol")
    return [
        RefBar(
            0 if sym is None else int(sym[i]),
            int(cols["ts"][i]),
            float(cols["open"][i]),
            float(cols["high"][i]),
            float(cols["low"][i]),
            float(cols["close"][i]),
            float(cols["volume"][i]),
            int(cols["ticks"][i]),
        )
        for i in range(n)
    ]


# --------------------------------------------------------------------------------- engine


class ClosedConfirmBucketError(AssertionError):
    """A primary bar closed into a confirm bucket that was already closed.

    Cannot happen under the rules (the tick of such a bar is late); the reference checks it.
    """


@dataclass(frozen=True)
class RefEvent:
    is_confirm: bool
    symbol: int
    timeframe_s: int
    bar: RefBar
    ema_fast: float | None
    ema_slow: float | None
    cross: int
    end_ns: int
    #: Sign of fast - slow of the last confirm bar closed by ``end_ns`` (0: none or equal).
    confirm_trend: int


@dataclass
class _RefEma:
    period: int
    count: int = 0
    seed: float = 0.0
    value: float = math.nan

    def update(self, x: float) -> float | None:
        if self.count < self.period:
            self.seed += x
            if self.count == self.period - 1:
                self.value = self.seed / self.period
        else:
            self.value = self.value + 2.0 / (self.period + 1) * (x - self.value)
        self.count += 1
        return self.value if self.count >= self.period else None


@dataclass
class _Track:
    """EMAs and crossover state of one symbol on one timeframe."""

    fast: _RefEma
    slow: _RefEma
    prev: tuple[float, float] = (math.nan, math.nan)

    def feed(self, close: float) -> tuple[float | None, float | None, int]:
        f = self.fast.update(close)
        s = self.slow.update(close)
        ff = math.nan if f is None else f
        ss = math.nan if s is None else s
        flag = cross_flag(self.prev[0], self.prev[1], ff, ss)
        self.prev = (ff, ss)
        return f, s, flag


class RefEngine:
    """The reference of :class:`Engine`: bars, confirm bars, EMAs, crosses and their timing."""

    def __init__(
        self,
        timeframe_s: int = 60,
        confirm_timeframe_s: int = 300,
        fast: int = 8,
        slow: int = 21,
        *,
        session_start: str | None = "09:15",
        session_end: str | None = "15:30",
        utc_offset_minutes: int = IST_OFFSET_MIN,
        volume_mode: str = "trade",
        grace_ms: int = 1000,
    ) -> None:
        self.timeframe_s = timeframe_s
        self.confirm_timeframe_s = confirm_timeframe_s
        self.fast = fast
        self.slow = slow
        self.grace_ns = grace_ms * 1_000_000
        self.primary = RefBarBuilder(
            timeframe_s,
            session_start,
            session_end,
            utc_offset_minutes,
            volume_mode,
            grace_ms,
        )
        self.confirm_clock = Clock(
            confirm_timeframe_s, session_start, session_end, utc_offset_minutes
        )
        self._confirm: dict[int, _OpenBar] = {}
        self._confirm_closed: dict[int, int] = {}
        self._trend: dict[int, int] = {}
        self._tracks: dict[tuple[int, bool], _Track] = {}

    @property
    def dropped(self) -> dict[str, int]:
        return dict(self.primary.dropped)

    def _event(self, bar: RefBar, is_confirm: bool) -> RefEvent:
        track = self._tracks.setdefault(
            (bar.symbol, is_confirm), _Track(_RefEma(self.fast), _RefEma(self.slow))
        )
        f, s, flag = track.feed(bar.close)
        tf = self.confirm_timeframe_s if is_confirm else self.timeframe_s
        bucket = (self.confirm_clock if is_confirm else self.primary.clock).bucket(bar.ts)
        assert bucket is not None
        trend = 0 if f is None or s is None else (f > s) - (f < s)
        if is_confirm:
            self._trend[bar.symbol] = trend
        return RefEvent(is_confirm, bar.symbol, tf, bar, f, s, flag, bucket[1], trend)

    def _close_confirm(self, symbol: int) -> list[RefEvent]:
        cur = self._confirm.pop(symbol, None)
        if cur is None:
            return []
        self._confirm_closed[symbol] = cur.ts
        return [self._event(cur.freeze(), True)]

    def _primary_closed(self, bar: RefBar) -> list[RefEvent]:
        events = [self._event(bar, False)]
        bucket = self.confirm_clock.bucket(bar.ts)
        assert bucket is not None
        start, end = bucket
        if start <= self._confirm_closed.get(bar.symbol, start - 1):
            raise ClosedConfirmBucketError(bar)
        cur = self._confirm.get(bar.symbol)
        if cur is not None and cur.ts != start:
            events += self._close_confirm(bar.symbol)
            cur = None
        if cur is None:
            self._confirm[bar.symbol] = _OpenBar(
                bar.symbol,
                start,
                end,
                bar.open,
                bar.high,
                bar.low,
                bar.close,
                bar.volume,
                bar.ticks,
            )
        else:
            cur.high = max(cur.high, bar.high)
            cur.low = min(cur.low, bar.low)
            cur.close = bar.close
            cur.volume += bar.volume
            cur.ticks += bar.ticks
        primary_end = self.primary.clock.bucket(bar.ts)
        assert primary_end is not None
        if primary_end[1] >= end:  # the last primary bar of the confirm bucket
            events += self._close_confirm(bar.symbol)
        # the primary event carries the trend of the confirm bars closed with it
        events[0] = replace(events[0], confirm_trend=self._trend.get(bar.symbol, 0))
        return events

    def on_tick(self, symbol: int, ts: int, price: float, qty: float) -> list[RefEvent]:
        events: list[RefEvent] = []
        for bar in self.primary.on_tick(symbol, ts, price, qty):
            events += self._primary_closed(bar)
        start = self.primary.open_start(symbol)
        cur = self._confirm.get(symbol)
        if start is not None and cur is not None:
            bucket = self.confirm_clock.bucket(start)
            assert bucket is not None
            if bucket[0] > cur.ts:  # a later primary bucket opened in a later confirm bucket
                events += self._close_confirm(symbol)
        return events

    def on_time(self, now_ns: int) -> list[RefEvent]:
        events: list[RefEvent] = []
        for bar in self.primary.on_time(now_ns):
            events += self._primary_closed(bar)
        late = [s for s, b in self._confirm.items() if b.end + self.grace_ns < now_ns]
        for s in sorted(late, key=lambda s: (self._confirm[s].ts, s)):
            events += self._close_confirm(s)
        return events

    def flush(self) -> list[RefEvent]:
        events: list[RefEvent] = []
        for bar in self.primary.flush():
            events += self._primary_closed(bar)
        for s in sorted(self._confirm, key=lambda s: (self._confirm[s].ts, s)):
            events += self._close_confirm(s)
        return events
