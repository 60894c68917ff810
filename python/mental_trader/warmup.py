"""Warm-up: the engine and the strategy brought to where the stored bars end.

:func:`warm_up` loads the last bars per symbol from the store (fetching history through the
broker for whatever is missing), runs them through the engine, restores the EMA states
stored with the last bars (so a restart continues with the same EMA values as an
uninterrupted run), and shows the strategy every event of them. History never trades:
what the strategy returns for it is discarded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from datetime import datetime

from mental_trader.backfill import backfill
from mental_trader.brokers.base import Broker
from mental_trader.calendar import TradingCalendar, ist_date
from mental_trader.core import BarEvent, Engine
from mental_trader.storage import Store
from mental_trader.storage.base import Candles, ns_to_dt
from mental_trader.strategy import Strategy

__all__ = ["warm_up"]

log = logging.getLogger(__name__)


async def warm_up(
    engine: Engine,
    strategy: Strategy,
    *,
    store: Store,
    broker: Broker,
    calendar: TradingCalendar,
    symbols: Sequence[str],
    warmup_bars: int,
    now: datetime,
    remember: Callable[[str, BarEvent], None],
) -> int | None:
    """Warm ``engine`` (symbol ids = positions in ``symbols``) and ``strategy`` up.

    Args:
        engine: a fresh engine.
        strategy: the strategy; it sees every warm-up event (its signals are discarded).
        store: the store (bars, EMA states; history is backfilled into it).
        broker: where missing history comes from.
        calendar: the trading calendar.
        symbols: the engine's symbols, in id order.
        warmup_bars: WARMUP_BARS (raised to what the confirm slow EMA needs).
        now: the market's now (history is fetched up to it).
        remember: called with every warm-up event (the service's last-bar view).

    Returns:
        Where the stream should resume (ns UTC): the end of the EARLIEST symbol's stored
        bars, or None when nothing is stored.
    """
    tf = engine.timeframe_s
    # Enough primary bars for the confirm timeframe's slow EMA too (21 x 5 = 105 for
    # scalp), else the trend filter has no trend and nothing trades for hours.
    ratio = engine.confirm_timeframe_s // tf
    n = max(warmup_bars, (engine.slow + 1) * ratio)
    stored = await store.load_last_candles(symbols, tf, n)
    if any(len(c["ts"]) < n for c in stored.values()):
        per_day = max(1, calendar.session_seconds // tf)
        days = min(60, math.ceil(n / per_day) + 1)
        report = await backfill(store, broker, calendar, symbols, days, tf, progress=False, now=now)
        log.info("warm-up history: %s", report.summary())
        stored = await store.load_last_candles(symbols, tf, n)
    primary = await store.load_ema_states(symbols, tf)
    confirm = await store.load_ema_states(symbols, engine.confirm_timeframe_s)
    # The stream resumes where the EARLIEST symbol's stored bars end: symbols closed their
    # bars at different ticks, so a stop may have stored one symbol's last bar and not
    # another's. Ticks the others already have are late for them and dropped.
    resume: int | None = None
    for sid, symbol in enumerate(symbols):
        bars = stored[symbol]
        day_volume = await _day_volume(store, calendar, symbol, tf, bars)
        events = engine.warm_up(sid, bars, day_volume=day_volume)
        if len(bars["ts"]):
            last = int(bars["ts"][-1])
            end = last + tf * 1_000_000_000
            resume = end if resume is None else min(resume, end)
            state = primary.get(symbol)
            if state is not None and state.bar_ts == ns_to_dt(last):
                engine.restore_emas(
                    sid, confirm=False, fast=state.fast_state, slow=state.slow_state
                )
            last_confirm = [e for e in events if e.is_confirm]
            cstate = confirm.get(symbol)
            if (
                cstate is not None
                and last_confirm
                and cstate.bar_ts == ns_to_dt(last_confirm[-1].bar.ts)
            ):
                engine.restore_emas(
                    sid, confirm=True, fast=cstate.fast_state, slow=cstate.slow_state
                )
        for ev in events:  # the strategy may learn from history; history trades nothing
            strategy.on_bar_close(ev, symbol, None)
            remember(symbol, ev)
    log.info("warmed up %d symbol(s) from %d stored bar(s) each at most", len(symbols), n)
    return resume


async def _day_volume(
    store: Store, calendar: TradingCalendar, symbol: str, tf: int, bars: Candles
) -> float | None:
    """The volume of the last stored bar's day so far, if the store has that whole day.

    With it the engine continues the feed's cumulative day volume exactly; without it the
    first tick after the restart only sets the baseline.
    """
    if not len(bars["ts"]):
        return None
    last = int(bars["ts"][-1])
    open_ns, _ = calendar.session_bounds_ns(ist_date(last))
    if int(bars["ts"][0]) <= open_ns:  # the warm-up bars already hold the whole day
        return float(bars["volume"][bars["ts"] >= open_ns].sum())
    day_bars = await store.load_candles(symbol, tf, start_ns=open_ns, end_ns=last + 1)
    if not len(day_bars["ts"]) or int(day_bars["ts"][0]) != open_ns:
        return None  # the day's first bars are missing: the sum would be wrong
    return float(day_bars["volume"].sum())
