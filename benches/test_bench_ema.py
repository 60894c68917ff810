"""``ema`` against ``talib.EMA`` and pandas ``ewm(adjust=False)`` on a float64 random walk.

Quick: ``pytest benches/test_bench_ema.py --benchmark-only`` (1,000,000 values);
full: ``MT_BENCH_SCALE=full pytest benches --benchmark-only`` (10,000,000).
Target (issue 2): ours <= 1.25x the time of ``talib.EMA``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib
from numpy.typing import NDArray

import benchlib
from mental_trader.core import ema

PERIOD = 21
GROUP = "ema"


@pytest.fixture(scope="module")
def values(scale: benchlib.Scale) -> NDArray[np.float64]:
    rng = np.random.default_rng(11)
    return np.ascontiguousarray(1_000.0 + np.cumsum(rng.normal(0.0, 0.5, scale.ema_n)))


@pytest.fixture(scope="module")
def values_and_out(values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    return values, np.empty_like(values)


@pytest.fixture(scope="module")
def series(values: NDArray[np.float64]) -> pd.Series:
    return pd.Series(values)


# impl -> (fixture holding its input, the timed call)
CONTENDERS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "ours": ("values", lambda x: ema(x, PERIOD)),
    "ours (out=)": ("values_and_out", lambda xo: ema(xo[0], PERIOD, xo[1])),
    "talib.EMA": ("values", lambda x: talib.EMA(x, timeperiod=PERIOD)),
    "pandas ewm": ("series", lambda s: s.ewm(span=PERIOD, adjust=False).mean()),
}


@benchlib.interleaved(CONTENDERS)
def test_ema(
    benchmark: Any, request: pytest.FixtureRequest, scale: benchlib.Scale, impl: str, block: int
) -> None:
    fixture, fn = CONTENDERS[impl]
    arg = request.getfixturevalue(fixture)
    out = benchlib.bench(
        benchmark, group=GROUP, impl=impl, n=scale.ema_n, block=block, fn=fn, args=(arg,)
    )
    if impl.startswith("ours") and block == 0:
        values = request.getfixturevalue("values")
        np.testing.assert_allclose(out, talib.EMA(values, timeperiod=PERIOD), rtol=1e-9)
        if impl == "ours (out=)":
            assert np.shares_memory(out, arg[1])
