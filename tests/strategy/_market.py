"""A synthetic market run through the real Rust engine, plus independent expectations.

:func:`make_market` builds a smooth multi-day price path (a sum of sine waves sampled every
few seconds through the NSE session), runs it tick by tick through
:class:`mental_trader.core.Engine`, and keeps the events of every engine call. The
expectations are computed separately from the tick arrays with the batch functions
(``build_bars``, ``resample_bars``, ``ema``, ``crossovers``), never from the events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import time

import numpy as np
from numpy.typing import NDArray

from mental_trader.core import BarEvent, Engine, build_bars, crossovers, ema, resample_bars
from mental_trader.models import Side
from mental_trader.strategy import PositionView, Signal, Strategy

NS = 1_000_000_000
IST_OFFSET_S = 330 * 60
SESSION_OPEN_S = 9 * 3600 + 15 * 60
SESSION_S = 6 * 3600 + 15 * 60
# 09:15 IST on Monday 2026-11-23, in ns since the epoch (no host time zone involved)
DAY0_OPEN_NS = ((20_415 * 86_400) + SESSION_OPEN_S - IST_OFFSET_S) * NS

Columns = dict[str, NDArray[np.int64] | NDArray[np.float64]]


def tod_s(ts_ns: int) -> int:
    """Seconds since IST midnight."""
    return (ts_ns // NS + IST_OFFSET_S) % 86_400


def hhmm_s(value: time) -> int:
    return value.hour * 3600 + value.minute * 60


@dataclass
class Market:
    """Engine events and the independently computed bar columns of one synthetic run."""

    timeframe_s: int
    confirm_timeframe_s: int
    calls: list[list[BarEvent]]
    primary: Columns
    confirm: Columns
    fast: NDArray[np.float64] = field(init=False)
    slow: NDArray[np.float64] = field(init=False)
    cross: NDArray[np.int8] = field(init=False)
    confirm_trend: NDArray[np.int8] = field(init=False)
    fast_n: int = 8
    slow_n: int = 21

    def __post_init__(self) -> None:
        close = np.ascontiguousarray(self.primary["close"], dtype=np.float64)
        self.fast = ema(close, self.fast_n)
        self.slow = ema(close, self.slow_n)
        self.cross = crossovers(self.fast, self.slow)
        c_close = np.ascontiguousarray(self.confirm["close"], dtype=np.float64)
        c_fast, c_slow = ema(c_close, self.fast_n), ema(c_close, self.slow_n)
        with np.errstate(invalid="ignore"):
            trend = np.sign(c_fast - c_slow)
        self.confirm_trend = np.nan_to_num(trend, nan=0.0).astype(np.int8)

    def __len__(self) -> int:
        return len(self.primary["ts"])

    def ts(self, i: int) -> int:
        return int(self.primary["ts"][i])

    def end_ns(self, i: int) -> int:
        return self.ts(i) + self.timeframe_s * NS

    def bar(self, i: int) -> tuple[float, float, float, float]:
        p = self.primary
        return (float(p["open"][i]), float(p["high"][i]), float(p["low"][i]), float(p["close"][i]))

    def confirm_sign_for(self, i: int) -> int:
        """Trend of the last confirm bar closed by the end of primary bar ``i`` (0: none)."""
        c_end = self.confirm["ts"] + self.confirm_timeframe_s * NS
        j = int(np.searchsorted(c_end, self.end_ns(i), side="right")) - 1
        return int(self.confirm_trend[j]) if j >= 0 else 0

    def primary_events(self) -> list[BarEvent]:
        return [e for call in self.calls for e in call if not e.is_confirm]


def make_market(
    timeframe_s: int = 60,
    confirm_timeframe_s: int = 300,
    *,
    days: int = 2,
    step_s: int = 2,
    fast: int = 8,
    slow: int = 21,
) -> Market:
    """Run a sine-wave price path through the real engine; see the module docstring."""
    scale = timeframe_s / 60.0  # wave periods grow with the bar length
    ts_list: list[int] = []
    prices: list[float] = []
    for day in range(days):
        open_ns = DAY0_OPEN_NS + day * 86_400 * NS
        for s in range(0, SESSION_S, step_s):
            t = (day * SESSION_S + s) / scale
            level = 1000.0 * (
                1.0
                + 0.01 * math.sin(2 * math.pi * t / 14_400)
                + 0.004 * math.sin(2 * math.pi * t / 1_500 + 0.7)
                + 0.002 * math.sin(2 * math.pi * t / 600 + 1.9)
            )
            ts_list.append(open_ns + s * NS)
            prices.append(round(level, 2))
    ts = np.array(ts_list, dtype=np.int64)
    price = np.array(prices, dtype=np.float64)
    qty = np.ones(len(ts), dtype=np.float64)

    engine = Engine(timeframe_s, confirm_timeframe_s, fast, slow)
    calls: list[list[BarEvent]] = []
    for t_ns, p in zip(ts_list, prices, strict=True):
        events = engine.on_tick(0, t_ns, p, 1.0)
        if events:
            calls.append(events)
    last = engine.flush()
    if last:
        calls.append(last)

    primary = build_bars(ts, price, qty, timeframe_s=timeframe_s)
    confirm = resample_bars(primary, confirm_timeframe_s)
    market = Market(timeframe_s, confirm_timeframe_s, calls, primary, confirm, fast, slow)
    assert [e.bar.ts for e in market.primary_events()] == primary["ts"].tolist()
    return market


def expected_entries(
    m: Market, *, square_off: time = time(15, 15), allow_short: bool = True
) -> list[tuple[int, Side]]:
    """Primary bar indices (and sides) of the crosses a flat strategy must enter on."""
    out: list[tuple[int, Side]] = []
    for i in np.flatnonzero(m.cross).tolist():
        sign = int(m.cross[i])
        if tod_s(m.end_ns(i)) >= hhmm_s(square_off):
            continue
        if sign < 0 and not allow_short:
            continue
        if m.confirm_sign_for(i) == sign:
            out.append((i, Side.BUY if sign > 0 else Side.SELL))
    return out


@dataclass(frozen=True)
class Trade:
    """One round trip: entry bar index and side, exit bar index, reason and price."""

    entry_i: int
    side: Side
    entry_price: float
    exit_i: int | None
    reason: str | None
    exit_price: float | None


def reference_exit(
    m: Market,
    i: int,
    side: Side,
    entry: float,
    *,
    stop_pct: float,
    target_pct: float,
    trail_pct: float | None = None,
    square_off: time = time(15, 15),
) -> tuple[int, str, float] | None:
    """The first bar after ``i`` that exits a position entered at the close of bar ``i``."""
    sign = side.sign
    stop = entry * (1 - sign * stop_pct / 100)
    target = entry * (1 + sign * target_pct / 100)
    best = entry
    for k in range(i + 1, len(m)):
        o, h, low, c = m.bar(k)
        level, reason = stop, "stop"
        if trail_pct is not None:
            trail = best * (1 - sign * trail_pct / 100)
            if sign * (trail - stop) > 0:
                level, reason = trail, "trailing_stop"
        if (low <= level) if sign > 0 else (h >= level):
            return k, reason, (min(level, o) if sign > 0 else max(level, o))
        if (h >= target) if sign > 0 else (low <= target):
            return k, "target", target
        if tod_s(m.end_ns(k)) >= hhmm_s(square_off):
            return k, "square_off", c
        if int(m.cross[k]) == -sign:
            return k, "opposite_cross", c
        best = max(best, h) if sign > 0 else min(best, low)
    return None


def reference_trades(
    m: Market,
    *,
    stop_pct: float,
    target_pct: float,
    trail_pct: float | None = None,
    square_off: time = time(15, 15),
    allow_short: bool = True,
) -> list[Trade]:
    """The round trips a strategy must make when every signal fills at its price."""
    trades: list[Trade] = []
    free_from = 0  # first bar index at which a new entry is possible
    for i, side in expected_entries(m, square_off=square_off, allow_short=allow_short):
        if i < free_from:
            continue
        entry = m.bar(i)[3]
        ex = reference_exit(
            m,
            i,
            side,
            entry,
            stop_pct=stop_pct,
            target_pct=target_pct,
            trail_pct=trail_pct,
            square_off=square_off,
        )
        if ex is None:
            trades.append(Trade(i, side, entry, None, None, None))
            break
        trades.append(Trade(i, side, entry, ex[0], ex[1], ex[2]))
        free_from = ex[0]
    return trades


@dataclass
class Run:
    """What a minimal service loop saw while driving a strategy over a market."""

    signals: list[Signal]
    trades: list[Trade]


def drive(
    strategy: Strategy, m: Market, symbol: str = "NSE:INFY", *, skip_quiet: bool = False
) -> Run:
    """Feed every engine call to ``strategy`` like the service does; fill at signal prices.

    The position view is advanced with each primary bar that closes while it is open
    (not with the bar it was entered on). ``skip_quiet`` leaves out the calls the service
    leaves out for a strategy that :attr:`~Strategy.skips_quiet_bars`.
    """
    index = {ts: i for i, ts in enumerate(m.primary["ts"].tolist())}
    signals: list[Signal] = []
    trades: list[Trade] = []
    position: PositionView | None = None
    entry_i = -1
    for call in m.calls:
        for event in call:
            before = position
            quiet = event.is_confirm or (not event.cross and position is None)
            if skip_quiet and quiet:
                continue
            out = strategy.on_bar_close(event, symbol, position)
            for signal in out:
                signals.append(signal)
                if signal.kind == "exit":
                    assert position is not None
                    trades.append(
                        Trade(
                            entry_i,
                            position.side,
                            position.entry_price,
                            index[signal.bar_ts_ns],
                            signal.reason,
                            signal.price,
                        )
                    )
                    position = None
                else:
                    assert position is None, "entry while a position is open"
                    position = strategy.position_from_fill(signal.side, 1, signal.price)
                    entry_i = index[signal.bar_ts_ns]
            if not event.is_confirm and position is not None and position is before:
                position = position.advanced(event.bar)
    if position is not None:
        trades.append(Trade(entry_i, position.side, position.entry_price, None, None, None))
    return Run(signals, trades)
