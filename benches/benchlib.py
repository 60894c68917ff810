"""Sizes and fixed-seed synthetic market data for the benchmarks in ``benches/``.

Not a test module: ``conftest.py`` puts this directory on ``sys.path`` so the bench modules
can ``import benchlib`` (pytest's importlib mode does not). See ``conftest.py`` for how to
run the quick and the full pass.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pytest
from numpy.typing import NDArray

NS = 1_000_000_000
DAY_NS = 86_400 * NS
UTC_OFFSET_MIN = 330  # IST
UTC_OFFSET_NS = UTC_OFFSET_MIN * 60 * NS
SESSION_START_S = 9 * 3600 + 15 * 60  # 09:15 local
SESSION_END_S = 15 * 3600 + 30 * 60  # 15:30 local
SESSION_LEN_NS = (SESSION_END_S - SESSION_START_S) * NS
FIRST_DAY = 19_723  # 2024-01-01 (a Monday) in days since the Unix epoch
TICK_SIZE = 0.05


@dataclass(frozen=True)
class Scale:
    """Sizes and repetitions of one pass.

    Each contender runs in ``blocks`` blocks of ``rounds`` timed rounds; the blocks of a
    group's contenders alternate (A B C A B C ...), so a slow phase of the shared host hits
    them alike, and the report pools every round into one median per contender.
    """

    name: str
    ema_n: int  # values for ema
    ticks_n: int  # ticks for build_bars and the batch pipeline
    loop_ticks_n: int  # ticks per round of the per-tick Python loop
    resample_bars_n: int  # 1-minute bars for resampling
    blocks: int  # alternating blocks per contender
    rounds: int  # timed rounds per block
    loop_rounds: int  # timed rounds per block of the per-tick loop (short rounds)
    warmup_rounds: int  # untimed rounds before the first block


SCALES = {
    "quick": Scale(
        "quick",
        ema_n=1_000_000,
        ticks_n=1_000_000,
        loop_ticks_n=250_000,
        resample_bars_n=1_000_000,
        blocks=3,
        rounds=3,
        loop_rounds=7,
        warmup_rounds=1,
    ),
    "full": Scale(
        "full",
        ema_n=10_000_000,
        ticks_n=10_000_000,
        loop_ticks_n=2_000_000,
        resample_bars_n=10_000_000,
        blocks=3,
        rounds=2,
        loop_rounds=3,
        warmup_rounds=1,
    ),
}


def scale_from_env() -> Scale:
    """The :class:`Scale` named by env ``MT_BENCH_SCALE`` (default ``quick``)."""
    name = os.environ.get("MT_BENCH_SCALE", "quick").strip().lower() or "quick"
    if name not in SCALES:
        raise ValueError(f"MT_BENCH_SCALE must be one of {sorted(SCALES)}, not {name!r}")
    return SCALES[name]


SCALE = scale_from_env()


def interleaved(impls: Iterable[str]) -> pytest.MarkDecorator:
    """Parametrize a benchmark by ``impl`` and ``block`` so the blocks alternate."""
    names = list(impls)
    cases = [
        pytest.param(impl, block, id=f"{impl}-{block}")
        for block in range(SCALE.blocks)
        for impl in names
    ]
    return pytest.mark.parametrize(("impl", "block"), cases)


def bench(
    benchmark: Any,
    *,
    group: str,
    impl: str,
    n: int,
    block: int,
    fn: Callable[..., Any],
    args: tuple[Any, ...] = (),
    setup: Callable[[], tuple[tuple[Any, ...], dict[str, Any]]] | None = None,
    rounds: int | None = None,
) -> Any:
    """Time ``fn(*args)`` (or ``fn`` on what ``setup`` returns, untimed, per round) with
    ``benchmark.pedantic`` and tag it for the ratio report; returns the last result."""
    benchmark.group = group
    benchmark.extra_info.update(impl=impl, n=n, block=block)
    warmup = SCALE.warmup_rounds if block == 0 else 0
    rounds = SCALE.rounds if rounds is None else rounds
    if setup is not None:
        return benchmark.pedantic(fn, setup=setup, rounds=rounds, warmup_rounds=warmup)
    return benchmark.pedantic(fn, args=args, rounds=rounds, warmup_rounds=warmup, iterations=1)


#: Extra report lines (measurements that are not times per element, such as latency
#: percentiles): (what, measured, target, verdict). conftest prints them after the table.
REPORT: list[tuple[str, str, str, str]] = []


class Ticks(NamedTuple):
    """Ticks in arrival order (sorted timestamps), all inside the NSE session."""

    ts: NDArray[np.int64]
    price: NDArray[np.float64]
    qty: NDArray[np.float64]
    symbol: NDArray[np.int64]
    n_symbols: int


def trading_days(n_days: int) -> NDArray[np.int64]:
    """UTC ns of the local (IST) midnight of ``n_days`` weekdays from 2024-01-01."""
    days = np.arange(FIRST_DAY, FIRST_DAY + n_days * 2, dtype=np.int64)
    weekdays = days[(days + 3) % 7 < 5][:n_days]  # 1970-01-01 was a Thursday
    return weekdays * DAY_NS - UTC_OFFSET_NS


def days_for(n: int, ticks_per_day: int) -> int:
    """Number of sessions that spreads ``n`` ticks at ``ticks_per_day`` (at least 1), so
    the quick and the full pass see the same tick density and bar-close rate."""
    return max(1, n // ticks_per_day)


def make_ticks(n: int, n_symbols: int, n_days: int, seed: int) -> Ticks:
    """Synthetic NSE ticks.

    Uniform arrival times in the 09:15-15:30 IST session of ``n_days`` weekdays (sorted),
    symbols interleaved at random, per-symbol random-walk prices on the 0.05 grid (> 0),
    integer quantities.
    """
    rng = np.random.default_rng(seed)
    midnights = trading_days(n_days)
    # Sorted offsets on the concatenated session axis map monotonically to real time.
    offsets = np.sort(rng.integers(0, n_days * SESSION_LEN_NS, n, dtype=np.int64))
    day, in_session = np.divmod(offsets, SESSION_LEN_NS)
    ts = midnights[day] + SESSION_START_S * NS + in_session
    symbol = rng.integers(0, n_symbols, n, dtype=np.int64)
    steps = rng.integers(-1, 2, n, dtype=np.int64)
    # Per-symbol cumulative sum of the steps: one random walk per symbol.
    order = np.argsort(symbol, kind="stable")
    sorted_symbol = symbol[order]
    sorted_steps = steps[order]
    cs = np.cumsum(sorted_steps)
    first = np.searchsorted(sorted_symbol, np.arange(n_symbols))[sorted_symbol]
    walk = np.empty(n, dtype=np.int64)
    walk[order] = cs - (cs[first] - sorted_steps[first])
    if n_symbols == 1:
        base = np.array([400_000], dtype=np.int64)  # 20,000.00, an index future
    else:
        base = rng.integers(10_000, 100_000, n_symbols, dtype=np.int64)  # 500.00-5,000.00
    price = np.round(np.maximum(base[symbol] + walk, 1) * TICK_SIZE, 2)
    qty = rng.integers(1, 200, n).astype(np.float64)
    return Ticks(ts, price, qty, symbol, n_symbols)


def make_bars_1m(
    n: int, n_symbols: int, seed: int, keep: float = 0.97
) -> dict[str, NDArray[np.int64] | NDArray[np.float64]]:
    """About ``n`` one-minute bars of ``n_symbols`` symbols over whole sessions.

    Columns of ``build_bars``; rows ordered by ts then symbol; ``1 - keep`` of the bars
    are missing (buckets without ticks).
    """
    rng = np.random.default_rng(seed)
    per_day = (SESSION_END_S - SESSION_START_S) // 60
    n_days = -(-n // (n_symbols * per_day))
    minutes = np.arange(per_day, dtype=np.int64) * 60 * NS + SESSION_START_S * NS
    bucket = (trading_days(n_days)[:, None] + minutes[None, :]).ravel()
    shape = (bucket.size, n_symbols)
    base = rng.integers(10_000, 100_000, n_symbols)
    close = np.maximum(base[None, :] + np.cumsum(rng.integers(-4, 5, shape), axis=0), 20)
    open_ = np.maximum(close + rng.integers(-2, 3, shape), 1)
    high = np.maximum(open_, close) + rng.integers(0, 3, shape)
    low = np.maximum(np.minimum(open_, close) - rng.integers(0, 3, shape), 1)
    ts = np.repeat(bucket, n_symbols)
    symbol = np.tile(np.arange(n_symbols, dtype=np.int64), bucket.size)
    mask = rng.random(ts.size) < keep
    ticks = rng.integers(1, 60, ts.size, dtype=np.int64)[mask]

    def px(a: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.round(a.ravel()[mask] * TICK_SIZE, 2)

    return {
        "ts": ts[mask],
        "open": px(open_),
        "high": px(high),
        "low": px(low),
        "close": px(close),
        "volume": (ticks * rng.integers(1, 200, ticks.size)).astype(np.float64),
        "ticks": ticks,
        "symbol": symbol[mask],
    }


def polars_offset(timeframe_s: int) -> str:
    """``offset`` for polars ``group_by_dynamic`` / pandas ``resample`` anchoring buckets
    at 09:15 IST (their windows start at epoch multiples of the timeframe + offset)."""
    anchor_s = (SESSION_START_S - UTC_OFFSET_MIN * 60) % 86_400
    return f"{anchor_s % timeframe_s}s"
