"""Test data: seeded synthetic tick arrays and hypothesis strategies for tick streams."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from numpy.typing import NDArray

from ._reference import MINUTE_NS, NS, ist_ns


@dataclass(frozen=True)
class Ticks:
    """Equal-length, C-contiguous tick columns in arrival order."""

    ts: NDArray[np.int64]
    price: NDArray[np.float64]
    qty: NDArray[np.float64]
    symbol: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.ts)

    def rows(self) -> list[tuple[int, int, float, float]]:
        """``(symbol, ts_ns, price, qty)`` per tick, as Python scalars."""
        return list(
            zip(
                self.symbol.tolist(),
                self.ts.tolist(),
                self.price.tolist(),
                self.qty.tolist(),
                strict=True,
            )
        )


TickFactory = Callable[..., Ticks]


def synthetic_ticks(
    n: int = 1_000,
    *,
    seed: int = 0,
    n_symbols: int = 1,
    start_ns: int | None = None,
    mean_gap_ms: float = 400.0,
    cumulative: bool = False,
    jitter_ms: int = 0,
) -> Ticks:
    """Seeded synthetic ticks starting at the NSE open (09:15 IST on 2026-11-23).

    Args:
        n: number of ticks.
        seed: RNG seed (same seed, same ticks).
        n_symbols: symbols ``0..n_symbols-1``, interleaved at random.
        start_ns: first timestamp (UTC ns); default 09:15:00 IST.
        mean_gap_ms: mean exponential gap between consecutive ticks.
        cumulative: quantities are per-symbol day-cumulative volumes instead of trade sizes.
        jitter_ms: if > 0, timestamps get +-jitter, so ticks arrive slightly out of order.
    """
    rng = np.random.default_rng(seed)
    start = ist_ns(9, 15) if start_ns is None else start_ns
    gaps = rng.exponential(mean_gap_ms * 1e6, n).astype(np.int64)
    ts = start + np.cumsum(gaps, dtype=np.int64)
    if jitter_ms > 0:
        ts = ts + rng.integers(-jitter_ms * 1_000_000, jitter_ms * 1_000_000 + 1, n)
    price = np.round(100.0 * np.exp(np.cumsum(rng.normal(0.0, 4e-4, n))), 2)
    qty = rng.integers(1, 500, n).astype(np.float64)
    symbol = rng.integers(0, n_symbols, n).astype(np.int64)
    if cumulative:
        for s in range(n_symbols):
            mask = symbol == s
            qty[mask] = np.cumsum(qty[mask])
    return Ticks(
        np.ascontiguousarray(ts, dtype=np.int64),
        np.ascontiguousarray(price, dtype=np.float64),
        np.ascontiguousarray(qty, dtype=np.float64),
        np.ascontiguousarray(symbol, dtype=np.int64),
    )


# ------------------------------------------------------------------------ hypothesis

# (session_start, session_end, utc_offset_minutes)
SESSIONS: list[tuple[str | None, str | None, int]] = [
    ("09:15", "15:30", 330),
    (None, None, 330),
    ("09:30", "16:00", -300),
    ("00:00", "12:00", 0),
]

# Local wall-clock starts (IST) of generated streams: around the open, mid-session, the close,
# and outside the session.
_STARTS = [
    (9, 14, 30),
    (9, 15, 0),
    (9, 15, 0),
    (10, 13, 0),
    (12, 0, 0),
    (15, 24, 0),
    (15, 29, 40),
    (23, 58, 0),
    (3, 0, 0),
]

_KINDS_ORDERED = [*["fwd"] * 8, "snap", "snap_minus", "jump"]
_KINDS_DISORDER = [*_KINDS_ORDERED, "back", "back"]


@st.composite
def tick_streams(
    draw: st.DrawFn,
    *,
    max_ticks: int = 80,
    max_symbols: int = 3,
    disorder: bool = True,
    volume_mode: str = "trade",
) -> Ticks:
    """Random tick streams in arrival order.

    Steps move a clock forward (small gaps, exact minute boundaries and one ns before them,
    jumps of hours or days); with ``disorder`` some ticks are stamped in the past (out of order
    within the open bucket, or late). Prices are multiples of 0.25 and quantities integers, so
    every sum is exact. In ``cumulative`` mode quantities are per-symbol running totals with
    occasional resets.
    """
    n_symbols = draw(st.integers(1, max_symbols))
    h, m, s = draw(st.sampled_from(_STARTS))
    day = draw(st.integers(0, 2))
    start = ist_ns(h, m, s, day=day) + draw(st.integers(0, 59_999)) * 1_000_000
    scale = draw(st.sampled_from([1, 1, 10, 60]))
    kinds = _KINDS_DISORDER if disorder else _KINDS_ORDERED
    size = draw(st.integers(0, max_ticks))
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(0, max_symbols - 1),
                st.sampled_from(kinds),
                st.integers(0, 30_000),
                st.integers(1, 4_000),
                st.integers(0, 400),
                st.integers(0, 15),
            ),
            min_size=size,
            max_size=size,
        )
    )
    t = start
    cum = [0] * max_symbols
    rows: list[tuple[int, int, float, float]] = []
    for sym, kind, amount, price_q, q, reset in steps:
        sym %= n_symbols
        stamp = t
        if kind == "fwd":
            t += amount * scale * 1_000_000 + amount % 997
            stamp = t
        elif kind == "snap":
            t = (t // MINUTE_NS + 1) * MINUTE_NS
            stamp = t
        elif kind == "snap_minus":
            t = (t // MINUTE_NS + 1) * MINUTE_NS - 1
            stamp = t
        elif kind == "jump":
            t += (1 + amount % 30) * 3_600 * NS
            stamp = t
        else:  # "back": one tick stamped in the past; the clock stays
            stamp = t - amount * 4 * 1_000_000
        if volume_mode == "cumulative":
            cum[sym] = q if reset == 0 else cum[sym] + q
            qty = float(cum[sym])
        else:
            qty = float(q)
        rows.append((sym, stamp, price_q * 0.25, qty))
    return Ticks(
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.float64),
        np.array([r[3] for r in rows], dtype=np.float64),
        np.array([r[0] for r in rows], dtype=np.int64),
    )


def session_kwargs(session: tuple[str | None, str | None, int]) -> dict[str, Any]:
    start, end, offset = session
    return {"session_start": start, "session_end": end, "utc_offset_minutes": offset}


sessions: st.SearchStrategy[dict[str, Any]] = st.sampled_from(SESSIONS).map(session_kwargs)
volume_modes = st.sampled_from(["trade", "cumulative"])
