"""Engine warm-up from history and EMA restore: a restarted engine continues exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mental_trader.core import BarEvent, Engine
from mental_trader.errors import InvalidInputError

from ._data import synthetic_ticks

KW: dict[str, Any] = {"timeframe_s": 60, "confirm_timeframe_s": 300, "fast": 3, "slow": 5}


def run(engine: Engine, rows: list[tuple[int, int, float, float]]) -> list[list[BarEvent]]:
    """Events of each tick (an empty list when none)."""
    return [engine.on_tick(*r) or [] for r in rows]


def key(e: BarEvent) -> tuple[bool, int]:
    return (e.is_confirm, e.bar.ts)


def columns(events: list[BarEvent]) -> dict[str, np.ndarray]:
    bars = [e.bar for e in events if not e.is_confirm]
    return {
        "ts": np.array([b.ts for b in bars], dtype=np.int64),
        "open": np.array([b.open for b in bars]),
        "high": np.array([b.high for b in bars]),
        "low": np.array([b.low for b in bars]),
        "close": np.array([b.close for b in bars]),
        "volume": np.array([b.volume for b in bars]),
        "ticks": np.array([b.ticks for b in bars], dtype=np.int64),
    }


def split_at_bar_close(per_tick: list[list[BarEvent]], after: int) -> int:
    """Index of the first tick at or after ``after`` that closed a primary bar."""
    return next(
        i for i in range(after, len(per_tick)) if any(not e.is_confirm for e in per_tick[i])
    )


@pytest.fixture(scope="module")
def ticks() -> list[tuple[int, int, float, float]]:
    return [r for r in synthetic_ticks(6_000, seed=7, mean_gap_ms=900.0).rows() if r[0] == 0]


def test_warm_up_replays_history_like_live(ticks: list[tuple[int, int, float, float]]) -> None:
    live = Engine(**KW)
    per_tick = run(live, ticks)
    k = split_at_bar_close(per_tick, len(ticks) // 2)
    history = [e for evs in per_tick[: k + 1] for e in evs]

    warm = Engine(**KW)
    warmed = warm.warm_up(0, columns(history))
    # Tick k opened a new bucket: a confirm bar it closed by that alone is not history yet.
    pending = [e for e in per_tick[k] if e not in warmed]
    assert sorted(warmed + pending, key=key) == sorted(history, key=key)
    assert warm.ema_states(0, confirm=False) == live_states_at(ticks, k, confirm=False)
    # From tick k (the first of the open bucket) on, the warmed engine emits what live did.
    after = run(warm, ticks[k:])
    assert after[0] == pending
    assert after[1:] == per_tick[k + 1 :]
    assert warm.flush() == live.flush()


def live_states_at(
    ticks: list[tuple[int, int, float, float]], k: int, *, confirm: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    engine = Engine(**KW)
    run(engine, ticks[: k + 1])
    return engine.ema_states(0, confirm=confirm)


def test_restored_emas_continue_bit_identically(ticks: list[tuple[int, int, float, float]]) -> None:
    live = Engine(**KW)
    per_tick = run(live, ticks)
    k = split_at_bar_close(per_tick, len(ticks) // 2)
    history = [e for evs in per_tick[: k + 1] for e in evs]
    primary_states = live_states_at(ticks, k, confirm=False)
    confirm_states = live_states_at(ticks, k, confirm=True)

    # A restart that only has the last 12 bars: the EMAs start from other seeds...
    recent = columns(history)
    recent = {name: col[-12:] for name, col in recent.items()}
    restarted = Engine(**KW)
    restarted.warm_up(0, recent)
    assert restarted.ema_states(0, confirm=False) != primary_states
    # ...until the stored states are restored.
    fast, slow = primary_states
    restarted.restore_emas(0, confirm=False, fast=fast, slow=slow)
    fast, slow = confirm_states
    restarted.restore_emas(0, confirm=True, fast=fast, slow=slow)
    assert restarted.ema_states(0, confirm=False) == primary_states
    after = run(restarted, ticks[k:])
    assert after[1:] == per_tick[k + 1 :]


def test_ticks_of_warmed_buckets_are_late() -> None:
    engine = Engine(**KW)
    t0 = 1_795_372_200_000_000_000 + (9 * 60 + 15) * 60_000_000_000  # 09:15 IST
    bars = {
        "ts": np.array([t0, t0 + 60_000_000_000], dtype=np.int64),
        "open": np.array([10.0, 11.0]),
        "high": np.array([11.0, 12.0]),
        "low": np.array([9.0, 10.0]),
        "close": np.array([10.5, 11.5]),
        "volume": np.array([5.0, 6.0]),
        "ticks": np.array([3, 4], dtype=np.int64),
    }
    events = engine.warm_up(4, bars)
    assert [(e.bar.symbol, e.bar.ts) for e in events] == [(4, t0), (4, t0 + 60_000_000_000)]
    assert engine.on_tick(4, t0 + 90_000_000_000, 11.0, 1.0) is None
    assert engine.dropped["late"] == 1
    assert engine.on_tick(4, t0 + 120_000_000_000, 12.0, 1.0) is None  # opens 09:17
    closed = engine.on_tick(4, t0 + 180_000_000_000, 12.5, 1.0)
    assert closed is not None
    assert [(e.bar.ts, e.bar.close) for e in closed if not e.is_confirm] == [
        (t0 + 120_000_000_000, 12.0)
    ]


def test_cumulative_volume_after_warm_up_starts_from_the_next_tick() -> None:
    engine = Engine(**KW, volume_mode="cumulative")
    t0 = 1_795_372_200_000_000_000 + (9 * 60 + 15) * 60_000_000_000
    bars = {
        "ts": np.array([t0], dtype=np.int64),
        "open": np.array([10.0]),
        "high": np.array([10.0]),
        "low": np.array([10.0]),
        "close": np.array([10.0]),
        "volume": np.array([1000.0]),
        "ticks": np.array([1], dtype=np.int64),
    }
    engine.warm_up(0, bars)
    minute = 60_000_000_000
    # The day's cumulative volume is 50,000 by now: only increments from here on count.
    assert engine.on_tick(0, t0 + 2 * minute, 10.0, 50_000.0) is None
    assert engine.on_tick(0, t0 + 2 * minute + 1, 10.0, 50_300.0) is None
    closed = engine.on_tick(0, t0 + 3 * minute, 10.0, 50_400.0)
    assert closed is not None
    assert [e.bar.volume for e in closed if not e.is_confirm] == [300.0]


def test_day_volume_makes_the_first_bar_after_warm_up_exact() -> None:
    engine = Engine(**KW, volume_mode="cumulative")
    t0 = 1_795_372_200_000_000_000 + (9 * 60 + 15) * 60_000_000_000
    bars = {
        "ts": np.array([t0], dtype=np.int64),
        "open": np.array([10.0]),
        "high": np.array([10.0]),
        "low": np.array([10.0]),
        "close": np.array([10.0]),
        "volume": np.array([1000.0]),
        "ticks": np.array([1], dtype=np.int64),
    }
    engine.warm_up(0, bars, day_volume=49_000.0)
    minute = 60_000_000_000
    assert engine.on_tick(0, t0 + 2 * minute, 10.0, 50_000.0) is None
    closed = engine.on_tick(0, t0 + 3 * minute, 10.0, 50_400.0)
    assert closed is not None
    assert [e.bar.volume for e in closed if not e.is_confirm] == [1000.0]
    with pytest.raises(InvalidInputError, match="day_volume"):
        Engine(**KW).warm_up(1, bars, day_volume=float("nan"))


def test_bad_warm_ups_change_nothing() -> None:
    t0 = 1_795_372_200_000_000_000 + (9 * 60 + 15) * 60_000_000_000
    good = {
        "ts": np.array([t0, t0 + 60_000_000_000], dtype=np.int64),
        "open": np.array([10.0, 10.0]),
        "high": np.array([10.0, 10.0]),
        "low": np.array([10.0, 10.0]),
        "close": np.array([10.0, 10.0]),
        "volume": np.array([1.0, 1.0]),
        "ticks": np.array([1, 1], dtype=np.int64),
    }
    engine = Engine(**KW)
    for bad, match in (
        ({**good, "ts": good["ts"] + 1}, "bucket start|not a closed"),
        ({**good, "ts": good["ts"][::-1].copy()}, "not a closed"),
        ({**good, "high": np.array([10.0, 9.0])}, "not a closed"),
        ({k: v for k, v in good.items() if k != "ticks"}, "missing column"),
        ({**good, "close": good["close"][:1]}, "length"),
    ):
        with pytest.raises(InvalidInputError, match=match):
            engine.warm_up(1, bad)
    assert engine.symbols == []
    engine.warm_up(1, good)
    with pytest.raises(InvalidInputError, match="already has state"):
        engine.warm_up(1, good)
    with pytest.raises(InvalidInputError, match="unknown symbol"):
        engine.ema_states(2, confirm=False)
    fast, slow = engine.ema_states(1, confirm=False)
    with pytest.raises(InvalidInputError, match="periods"):
        engine.restore_emas(1, confirm=False, fast=slow, slow=fast)
    with pytest.raises(InvalidInputError, match="ema state"):
        engine.restore_emas(1, confirm=False, fast={"period": 3}, slow=slow)
