"""``Engine.on_frame``: a feed frame of ticks in one call, exactly ``on_tick`` per tick."""

from __future__ import annotations

import numpy as np
import pytest

from mental_trader.core import BarEvent, Engine
from mental_trader.errors import InvalidInputError

from ._data import synthetic_ticks


@pytest.mark.parametrize("frame", [1, 3, 17, 250])
@pytest.mark.parametrize("cumulative", [False, True])
def test_frames_equal_tick_by_tick(frame: int, cumulative: bool) -> None:
    ticks = synthetic_ticks(3_000, seed=frame, n_symbols=5, cumulative=cumulative, jitter_ms=900)
    mode = "cumulative" if cumulative else "trade"
    by_tick, by_frame = (
        Engine(60, 300, 3, 5, volume_mode=mode),
        Engine(60, 300, 3, 5, volume_mode=mode),
    )
    want: list[BarEvent] = []
    for row in ticks.rows():
        want += by_tick.on_tick(*row) or []
    got: list[BarEvent] = []
    for i in range(0, len(ticks), frame):
        part = slice(i, i + frame)
        events = by_frame.on_frame(
            ticks.ts[part], ticks.price[part], ticks.qty[part], ticks.symbol[part]
        )
        assert events is None or len(events) > 0
        got += events or []
    assert len(want) > 50
    assert got == want
    assert by_frame.dropped == by_tick.dropped
    assert by_frame.snapshot() == by_tick.snapshot()


def test_quiet_frame_returns_none() -> None:
    ticks = synthetic_ticks(10, n_symbols=2, mean_gap_ms=100.0)
    e = Engine()
    assert e.on_frame(ticks.ts, ticks.price, ticks.qty, ticks.symbol) is None


def test_bad_frame_changes_nothing() -> None:
    ticks = synthetic_ticks(20, n_symbols=2)
    e = Engine()
    before = e.snapshot()
    price = ticks.price.copy()
    price[7] = np.nan
    with pytest.raises(InvalidInputError, match="tick index 7"):
        e.on_frame(ticks.ts, price, ticks.qty, ticks.symbol)
    assert e.snapshot() == before
    with pytest.raises(InvalidInputError, match="length mismatch"):
        e.on_frame(ticks.ts, ticks.price[:-1], ticks.qty, ticks.symbol)
    assert e.snapshot() == before
