"""Mental Trader: a self-hosted algorithmic scalping / intraday trading service for NSE.

The hot path (ticks -> bars -> EMA -> crossover, option math) lives in the Rust extension
``mental_trader._core``, exposed through :mod:`mental_trader.core`.
"""

from __future__ import annotations

from mental_trader._core import __version__
from mental_trader.core import (
    Bar,
    BarBuilder,
    BarEvent,
    Ema,
    Engine,
    black76,
    build_bars,
    crossovers,
    ema,
    implied_vol_black76,
    resample_bars,
)
from mental_trader.errors import InvalidInputError, MentalTraderError

__all__ = [
    "Bar",
    "BarBuilder",
    "BarEvent",
    "Ema",
    "Engine",
    "InvalidInputError",
    "MentalTraderError",
    "__version__",
    "black76",
    "build_bars",
    "crossovers",
    "ema",
    "implied_vol_black76",
    "resample_bars",
]
