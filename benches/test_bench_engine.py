"""``Engine``: the per-tick call from a Python loop, and the batch pipeline.

Per tick: ``on_tick = eng.on_tick; for t in ticks: on_tick(*t)`` over (symbol, ts_ns, price,
qty) tuples of 20 interleaved symbols, a new Engine per round, against the bare Python call
floor (the same loop calling ``"".format``, a C function that ignores its arguments; ``max``
is shown too, but its mixed int/float comparisons are far from free) and against two
pure-Python pipelines doing the same primary work (session-anchored 1-minute bars, two EMAs
and a cross check on each closed bar; ours also keeps 5-minute confirm bars and their EMAs):
"pure Python (fast path)", a careful one that handles a tick inside its symbol's open bar
with two comparisons, and "pure Python (naive)", what a typical user writes, which derives
the bar of every tick from its timestamp.

Batch: ``Engine(...).on_ticks(ts, price, qty, symbol, flush=True)`` on 50 interleaved
symbols against the same pipeline in polars and in pandas (1m bars, EMA 8/21 per symbol
with ``adjust=False``, crosses, 5m confirm bars with their EMAs and crosses).

Quick: ``pytest benches/test_bench_engine.py --benchmark-only`` (250,000 ticks per loop
round, 1,000,000 in batch); full: ``MT_BENCH_SCALE=full pytest benches --benchmark-only``.
Targets (issue 2): on_tick <= 40 ns/tick, <= 3x the bare call floor, >= 5x faster than
pure Python (reported against both pure-Python pipelines).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

import benchlib
from mental_trader.core import Engine

TIMEFRAME_S = 60
CONFIRM_S = 300
FAST = 8
SLOW = 21
Tick = tuple[int, int, float, float]
PURE_FAST = "pure Python (fast path)"
PURE_NAIVE = "pure Python (naive)"


# --------------------------------------------------------------------------- pure Python


class _SymbolState:
    """Open bar, EMA seeds/values and last fast-minus-slow of one symbol."""

    __slots__ = (
        "bucket",
        "close",
        "count",
        "diff",
        "end",
        "fast",
        "fast_sum",
        "high",
        "low",
        "open",
        "slow",
        "slow_sum",
        "ticks",
        "volume",
    )

    def __init__(self) -> None:
        self.bucket = self.end = -1  # open bucket [bucket, end); none yet
        self.open = self.high = self.low = self.close = self.volume = 0.0
        self.ticks = self.count = 0
        self.fast_sum = self.slow_sum = 0.0
        self.fast = self.slow = self.diff = float("nan")


class PurePythonPipeline:
    """A careful pure-Python pipeline: ticks -> session-anchored bars -> EMAs -> cross.

    The common tick (inside its symbol's open bucket) takes a fast path of two comparisons
    and the OHLCV update. ``on_tick`` returns None, or ``(symbol, bar_ts, open, high, low,
    close, volume, ticks, ema_fast, ema_slow, cross)`` for the bar a later tick closed.
    """

    def __init__(self, timeframe_s: int = TIMEFRAME_S, fast: int = FAST, slow: int = SLOW) -> None:
        self.tf_ns = timeframe_s * benchlib.NS
        self.start_ns = benchlib.SESSION_START_S * benchlib.NS
        self.end_ns = benchlib.SESSION_END_S * benchlib.NS
        self.n_fast, self.n_slow = fast, slow
        self.a_fast, self.a_slow = 2.0 / (fast + 1), 2.0 / (slow + 1)
        self.symbols: dict[int, _SymbolState] = {}
        self.dropped = 0

    def on_tick(self, symbol: int, ts: int, price: float, qty: float) -> tuple[Any, ...] | None:
        st = self.symbols.get(symbol)
        if st is not None and st.bucket <= ts < st.end:
            if price > st.high:
                st.high = price
            elif price < st.low:
                st.low = price
            st.close = price
            st.volume += qty
            st.ticks += 1
            return None
        return self._new_bucket(symbol, ts, price, qty, st)

    def _new_bucket(
        self, symbol: int, ts: int, price: float, qty: float, st: _SymbolState | None
    ) -> tuple[Any, ...] | None:
        midnight = ts - (ts + benchlib.UTC_OFFSET_NS) % benchlib.DAY_NS  # local midnight
        since_open = ts - midnight - self.start_ns
        if since_open < 0 or ts - midnight >= self.end_ns:
            self.dropped += 1  # out of session
            return None
        bucket = ts - since_open % self.tf_ns
        if st is None:
            st = self.symbols[symbol] = _SymbolState()
        elif bucket < st.bucket:
            self.dropped += 1  # late
            return None
        event = self._close(symbol, st) if st.bucket >= 0 else None
        st.bucket = bucket
        st.end = min(bucket + self.tf_ns, midnight + self.end_ns)
        st.open = st.high = st.low = st.close = price
        st.volume = qty
        st.ticks = 1
        return event

    def _close(self, symbol: int, st: _SymbolState) -> tuple[Any, ...]:
        x = st.close
        st.count += 1
        n = st.count
        if n < self.n_fast:
            st.fast_sum += x
        elif n == self.n_fast:
            st.fast = (st.fast_sum + x) / n
        else:
            st.fast += self.a_fast * (x - st.fast)
        if n < self.n_slow:
            st.slow_sum += x
        elif n == self.n_slow:
            st.slow = (st.slow_sum + x) / n
        else:
            st.slow += self.a_slow * (x - st.slow)
        diff = st.fast - st.slow  # NaN until both are ready, and NaN compares False
        prev = st.diff
        cross = 1 if diff > 0 and prev <= 0 else -1 if diff < 0 and prev >= 0 else 0
        st.diff = diff
        bar = (symbol, st.bucket, st.open, st.high, st.low, st.close, st.volume, st.ticks)
        return (*bar, st.fast, st.slow, cross)


class Ema:
    """An EMA seeded with the simple average of its first ``period`` inputs (None until then)."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.alpha = 2.0 / (period + 1)
        self.count = 0
        self.total = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        self.count += 1
        if self.count < self.period:
            self.total += x
            return None
        if self.value is None:  # the period-th input: seed with the simple average
            self.value = (self.total + x) / self.period
        else:
            self.value += self.alpha * (x - self.value)
        return self.value


class SymbolBars:
    """The open bar, the two EMAs and the last fast-minus-slow of one symbol."""

    def __init__(self, fast: int, slow: int) -> None:
        self.bucket = -1  # start of the open bar (UTC ns); none yet
        self.open = self.high = self.low = self.close = self.volume = 0.0
        self.ticks = 0
        self.ema_fast = Ema(fast)
        self.ema_slow = Ema(slow)
        self.last_diff: float | None = None


class NaivePythonPipeline:
    """What a typical user writes in plain Python: the same work as :class:`PurePythonPipeline`,
    but every tick derives its bar from its timestamp and compares it with the open one.

    ``on_tick`` returns None, or the same tuple as :meth:`PurePythonPipeline.on_tick` for the
    bar a later tick closed (with None for an EMA that is not seeded yet).
    """

    def __init__(self, timeframe_s: int = TIMEFRAME_S, fast: int = FAST, slow: int = SLOW) -> None:
        self.timeframe_ns = timeframe_s * benchlib.NS
        self.session_start_ns = benchlib.SESSION_START_S * benchlib.NS
        self.session_end_ns = benchlib.SESSION_END_S * benchlib.NS
        self.utc_offset_ns = benchlib.UTC_OFFSET_MIN * 60 * benchlib.NS
        self.fast = fast
        self.slow = slow
        self.symbols: dict[int, SymbolBars] = {}
        self.dropped = 0

    def on_tick(self, symbol: int, ts: int, price: float, qty: float) -> tuple[Any, ...] | None:
        # Local (IST) day and time of day of the tick.
        day, time_of_day = divmod(ts + self.utc_offset_ns, benchlib.DAY_NS)
        if time_of_day < self.session_start_ns or time_of_day >= self.session_end_ns:
            self.dropped += 1  # out of session
            return None
        # Bars are anchored at the session open; back to UTC for the bar's timestamp.
        bar_index = (time_of_day - self.session_start_ns) // self.timeframe_ns
        local_start = day * benchlib.DAY_NS + self.session_start_ns + bar_index * self.timeframe_ns
        bucket = local_start - self.utc_offset_ns

        bars = self.symbols.get(symbol)
        if bars is None:
            bars = SymbolBars(self.fast, self.slow)
            self.symbols[symbol] = bars

        if bucket == bars.bucket:  # same bar: update it
            bars.high = max(bars.high, price)
            bars.low = min(bars.low, price)
            bars.close = price
            bars.volume += qty
            bars.ticks += 1
            return None
        if bucket < bars.bucket:
            self.dropped += 1  # late
            return None

        event = self.close_bar(symbol, bars) if bars.ticks > 0 else None
        bars.bucket = bucket
        bars.open = bars.high = bars.low = bars.close = price
        bars.volume = qty
        bars.ticks = 1
        return event

    def close_bar(self, symbol: int, bars: SymbolBars) -> tuple[Any, ...]:
        fast = bars.ema_fast.update(bars.close)
        slow = bars.ema_slow.update(bars.close)
        cross = 0
        if fast is not None and slow is not None:
            diff = fast - slow
            prev = bars.last_diff
            if prev is not None:
                if diff > 0 and prev <= 0:
                    cross = 1
                elif diff < 0 and prev >= 0:
                    cross = -1
            bars.last_diff = diff
        bar = (symbol, bars.bucket, bars.open, bars.high, bars.low, bars.close, bars.volume)
        return (*bar, bars.ticks, fast, slow, cross)


def drive(on_tick: Callable[..., Any], ticks: list[Tick]) -> None:
    """The timed loop, identical for every contender."""
    for t in ticks:
        on_tick(*t)


# --------------------------------------------------------------------------- per tick


@pytest.fixture(scope="module")
def tick_tuples(ticks_20sym: benchlib.Ticks) -> list[Tick]:
    t = ticks_20sym
    return list(
        zip(t.symbol.tolist(), t.ts.tolist(), t.price.tolist(), t.qty.tolist(), strict=True)
    )


def new_engine() -> Engine:
    return Engine(timeframe_s=TIMEFRAME_S, confirm_timeframe_s=CONFIRM_S, fast=FAST, slow=SLOW)


# impl -> a fresh per-tick callable for one round (made in the untimed setup)
LOOP_CONTENDERS: dict[str, Callable[[], Callable[..., Any]]] = {
    "ours": lambda: new_engine().on_tick,
    # ``"".format`` takes the 4 arguments, ignores them and returns the empty string: the
    # cost of the loop plus one C call, and nothing else.
    "bare call floor": lambda: "".format,
    # For reference only: comparing a 61-bit int with floats makes ``max`` far from free.
    "max(*t)": lambda: max,
    PURE_FAST: lambda: PurePythonPipeline().on_tick,
    PURE_NAIVE: lambda: NaivePythonPipeline().on_tick,
}


@benchlib.interleaved(LOOP_CONTENDERS)
def test_on_tick(
    benchmark: Any, scale: benchlib.Scale, tick_tuples: list[Tick], impl: str, block: int
) -> None:
    make = LOOP_CONTENDERS[impl]

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (make(), tick_tuples), {}

    benchlib.bench(
        benchmark,
        group="on_tick/20sym",
        impl=impl,
        n=len(tick_tuples),
        block=block,
        fn=drive,
        setup=setup,
        rounds=scale.loop_rounds,
    )
    if impl == "ours" and block == 0:
        check_same_primary_work(tick_tuples)
    if impl == PURE_NAIVE and block == 0:
        check_naive_matches_fast_path(tick_tuples)


FRAME_TICKS = 20  # ticks per WebSocket frame for ``on_frame``

# impl -> (a fresh callable, whether it takes whole frames) for the per-frame comparison
FRAME_CONTENDERS: dict[str, Callable[[], tuple[Callable[..., Any], bool]]] = {
    "ours": lambda: (new_engine().on_frame, True),
    "on_tick loop": lambda: (new_engine().on_tick, False),
}


def as_frames(tick_tuples: list[Tick]) -> list[tuple[Any, ...]]:
    """The ticks cut into frames of ``FRAME_TICKS`` as (ts, price, qty, symbol) arrays."""
    sym, ts, px, qty = (np.array(c) for c in zip(*tick_tuples, strict=True))
    return [
        (
            ts[i : i + FRAME_TICKS],
            px[i : i + FRAME_TICKS],
            qty[i : i + FRAME_TICKS],
            sym[i : i + FRAME_TICKS],
        )
        for i in range(0, len(ts), FRAME_TICKS)
    ]


@benchlib.interleaved(FRAME_CONTENDERS)
def test_on_frame(
    benchmark: Any, scale: benchlib.Scale, tick_tuples: list[Tick], impl: str, block: int
) -> None:
    """``Engine.on_frame`` per 20-tick frame against the ``on_tick`` loop on the same ticks."""
    frames = as_frames(tick_tuples)
    make = FRAME_CONTENDERS[impl]

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        fn, takes_frames = make()
        return (fn, frames if takes_frames else tick_tuples), {}

    benchlib.bench(
        benchmark,
        group="on_frame/20sym",
        impl=impl,
        n=len(tick_tuples),
        block=block,
        fn=drive,
        setup=setup,
        rounds=scale.loop_rounds,
    )


def check_same_primary_work(tick_tuples: list[Tick]) -> None:
    """Not timed: the pure-Python pipeline does the same primary work (bars, EMAs, crosses)."""
    eng, ref = new_engine(), PurePythonPipeline()
    ours: list[tuple[Any, ...]] = []
    theirs: list[tuple[Any, ...]] = []
    for t in tick_tuples:
        events = eng.on_tick(*t)
        if events is not None:
            for e in events:
                if not e.is_confirm:
                    b = e.bar
                    ours.append((b.symbol, b.ts, b.close, b.ticks, e.ema_fast, e.ema_slow, e.cross))
        event = ref.on_tick(*t)
        if event is not None:
            fast, slow = (None if math.isnan(v) else v for v in event[8:10])
            theirs.append((*event[0:2], event[5], event[7], fast, slow, event[10]))
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs, strict=True):
        assert a[:4] == b[:4]
        assert a[6] == b[6]
        for x, y in zip(a[4:6], b[4:6], strict=True):
            assert (x is None and y is None) or math.isclose(x, y, rel_tol=1e-9)


def _closed_bars(on_tick: Callable[..., Any], tick_tuples: list[Tick]) -> list[tuple[Any, ...]]:
    """The events of a pure-Python pipeline, with None for an EMA not seeded yet."""
    events = []
    for t in tick_tuples:
        event = on_tick(*t)
        if event is not None:
            fast, slow = (None if v is None or math.isnan(v) else v for v in event[8:10])
            events.append((*event[:8], fast, slow, event[10]))
    return events


def check_naive_matches_fast_path(tick_tuples: list[Tick]) -> None:
    """Not timed: the naive pipeline closes the same bars, with the same EMAs and crosses."""
    fast_path, naive = PurePythonPipeline(), NaivePythonPipeline()
    expected = _closed_bars(fast_path.on_tick, tick_tuples)
    got = _closed_bars(naive.on_tick, tick_tuples)
    assert len(got) == len(expected) > 0
    assert naive.dropped == fast_path.dropped
    for a, b in zip(got, expected, strict=True):
        assert a[:8] == b[:8]
        assert a[10] == b[10]
        for x, y in zip(a[8:10], b[8:10], strict=True):
            assert (x is None and y is None) or math.isclose(x, y, rel_tol=1e-9)


# --------------------------------------------------------------------------- batch


def _pl_ema_cross(bars: pl.DataFrame) -> pl.DataFrame:
    fast = pl.col("close").ewm_mean(span=FAST, adjust=False).over("symbol")
    slow = pl.col("close").ewm_mean(span=SLOW, adjust=False).over("symbol")
    bars = bars.with_columns(fast.alias("ema_fast"), slow.alias("ema_slow"))
    diff = pl.col("ema_fast") - pl.col("ema_slow")
    prev = diff.shift(1).over("symbol")
    cross = (
        pl.when((diff > 0) & (prev <= 0))
        .then(1)
        .when((diff < 0) & (prev >= 0))
        .then(-1)
        .otherwise(0)
        .cast(pl.Int8)
    )
    return bars.with_columns(cross.alias("cross"))


def polars_pipeline(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    primary = df.group_by_dynamic(
        "ts", every="1m", offset=benchlib.polars_offset(TIMEFRAME_S), group_by="symbol"
    ).agg(
        pl.col("price").first().alias("open"),
        pl.col("price").max().alias("high"),
        pl.col("price").min().alias("low"),
        pl.col("price").last().alias("close"),
        pl.col("qty").sum().alias("volume"),
        pl.len().alias("ticks"),
    )
    confirm = primary.group_by_dynamic(
        "ts", every="5m", offset=benchlib.polars_offset(CONFIRM_S), group_by="symbol"
    ).agg(
        pl.col("open").first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").last(),
        pl.col("volume").sum(),
        pl.col("ticks").sum(),
    )
    return _pl_ema_cross(primary), _pl_ema_cross(confirm)


def _pd_ema_cross(bars: pd.DataFrame) -> pd.DataFrame:
    # Rows are sorted by (symbol, ts), so per-symbol results line up positionally.
    by_symbol = bars.groupby(level="symbol", sort=True)["close"]
    bars["ema_fast"] = by_symbol.ewm(span=FAST, adjust=False).mean().to_numpy()
    bars["ema_slow"] = by_symbol.ewm(span=SLOW, adjust=False).mean().to_numpy()
    diff = bars["ema_fast"] - bars["ema_slow"]
    prev = diff.groupby(level="symbol").shift(1)
    up = (diff > 0) & (prev <= 0)
    down = (diff < 0) & (prev >= 0)
    bars["cross"] = np.where(up, 1, np.where(down, -1, 0)).astype(np.int8)
    return bars


def pandas_pipeline(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    symbol = df["symbol"].rename("symbol")
    minute = df["ts"].dt.floor("1min").rename("ts")
    primary = df.groupby([symbol, minute], sort=True).agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("qty", "sum"),
        ticks=("price", "size"),
    )
    keys = [
        primary.index.get_level_values("symbol"),
        primary.index.get_level_values("ts").floor("5min"),
    ]
    confirm = primary.groupby(keys, sort=True).agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        ticks=("ticks", "sum"),
    )
    return _pd_ema_cross(primary), _pd_ema_cross(confirm)


@pytest.fixture(scope="module")
def polars_ticks(ticks_50sym: benchlib.Ticks) -> pl.DataFrame:
    t = ticks_50sym
    return pl.DataFrame(
        {
            "ts": pl.Series("ts", t.ts).cast(pl.Datetime("ns")),
            "symbol": t.symbol,
            "price": t.price,
            "qty": t.qty,
        }
    )


@pytest.fixture(scope="module")
def pandas_ticks(ticks_50sym: benchlib.Ticks) -> pd.DataFrame:
    t = ticks_50sym
    return pd.DataFrame(
        {"ts": t.ts.view("datetime64[ns]"), "symbol": t.symbol, "price": t.price, "qty": t.qty}
    )


def ours_pipeline(t: benchlib.Ticks) -> dict[str, Any]:
    return new_engine().on_ticks(t.ts, t.price, t.qty, t.symbol, flush=True)


# impl -> (fixture holding its input, the timed call)
BATCH_CONTENDERS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "ours": ("ticks_50sym", ours_pipeline),
    "polars": ("polars_ticks", polars_pipeline),
    "pandas": ("pandas_ticks", pandas_pipeline),
}


@benchlib.interleaved(BATCH_CONTENDERS)
def test_pipeline(
    benchmark: Any,
    request: pytest.FixtureRequest,
    scale: benchlib.Scale,
    impl: str,
    block: int,
) -> None:
    fixture, fn = BATCH_CONTENDERS[impl]
    arg = request.getfixturevalue(fixture)
    out = benchlib.bench(
        benchmark,
        group="pipeline/50sym",
        impl=impl,
        n=scale.ticks_n,
        block=block,
        fn=fn,
        args=(arg,),
    )
    if impl == "ours" and block == 0:
        primary, _ = polars_pipeline(request.getfixturevalue("polars_ticks"))
        assert len(out["primary"]["ts"]) == primary.height
        assert len(out["confirm"]["ts"]) > 0
