"""The public face of the Rust core (``mental_trader._core``).

Everything here is implemented in Rust (``rust_core/``); see ``_core.pyi`` for the full
contract: time, bar, EMA and crossover semantics, dtypes and errors. Inputs are never
coerced silently: pass 1-D contiguous ``float64`` / ``int64`` numpy arrays.
"""

from __future__ import annotations

from mental_trader._core import (
    Bar,
    BarBuilder,
    BarEvent,
    Ema,
    Engine,
    PanicException,
    __version__,
    black76,
    build_bars,
    crossovers,
    ema,
    implied_vol_black76,
    resample_bars,
)

__all__ = [
    "Bar",
    "BarBuilder",
    "BarEvent",
    "Ema",
    "Engine",
    "PanicException",
    "__version__",
    "black76",
    "build_bars",
    "crossovers",
    "ema",
    "implied_vol_black76",
    "resample_bars",
]
