"""Stubs and user documentation of the Rust extension ``mental_trader._core``.

This file is the contract of the Rust↔Python boundary; CI checks it against the binary
with ``python -m mypy.stubtest mental_trader._core``.

Conventions:
    * Timestamps are ``int64`` nanoseconds since the Unix epoch, UTC. The exchange zone is
      given as ``utc_offset_minutes`` (IST = 330); nothing depends on the host's TZ.
    * Batch inputs are 1-D, C-contiguous numpy arrays of the stated dtype: ``float64`` prices
      and quantities, ``int64`` timestamps and symbols. Anything else raises
      :class:`~mental_trader.errors.InvalidInputError` (a ``ValueError``); nothing is copied
      or converted silently. Inputs are never mutated, and callers must not mutate them
      while a batch call runs (the GIL is released during batch work).
    * Bars are stamped with their bucket START. Buckets are anchored at ``session_start``
      (so 60-minute bars run 09:15-10:15, ..., 15:15-15:30) or, with
      ``session_start=None``, at local midnight with no session filter. Ticks outside
      ``[session_start, session_end)`` local time are dropped. No bar is made for a bucket
      without ticks. Open/close are the first/last tick by arrival order.
    * A tick older than its symbol's open (or last closed) bucket is *late*: dropped and
      counted, it never changes a closed bar. In the streaming classes a tick is also late
      when its bucket ended more than ``grace_ms`` before the latest ``on_time(now_ns)``:
      the clock already closed that bucket, even if it had no bar. Dropped ticks change
      nothing else.
    * ``volume_mode="trade"``: each tick carries its traded quantity; bar volume is the sum.
      ``volume_mode="cumulative"``: each tick carries the day's cumulative volume (as Kite
      sends it); bar volume is the last cumulative in the bar minus the last cumulative
      before it that local day (0 at the start of each local day; a decrease is a reset).
    * EMA: alpha = 2/(n+1); the first n-1 outputs are undefined (NaN / None); output n-1
      is the SMA of the first n inputs; then ``ema = ema + alpha*(x - ema)``, matching
      TA-Lib and TradingView. Non-finite input is an error.
    * Symbols are int64 ids. Small non-negative ids (below 65536) are looked up in a direct
      table, so the service maps its instruments to 0..N; any other id (a raw exchange
      token) works through a hash map, a little slower.
    * Crossover at i: +1 when fast[i] > slow[i] and fast[i-1] <= slow[i-1]; -1 when
      fast[i] < slow[i] and fast[i-1] >= slow[i-1]; 0 otherwise or where any input is NaN.
    * Options (Black-76 on a forward): ``T`` in years, ``r`` continuously compounded, prices
      discounted by ``exp(-r T)``; delta with respect to the forward, theta per calendar day,
      vega per volatility point (0.01). Chain inputs are equal-length ``float64`` arrays and
      a ``bool`` array ``is_call``.
"""

from collections.abc import Mapping
from typing import Any, Final, final

import numpy as np
from numpy.typing import NDArray

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
    "decode_kite_frame",
    "decode_kite_ticks",
    "ema",
    "implied_vol_black76",
    "resample_bars",
]

__version__: Final[str]

class PanicException(BaseException):
    """A bug in the Rust core (never bad input). Catch it by name, log, and restart."""

@final
class Bar:
    """One closed (or, from ``BarBuilder.current``, still forming) OHLCV bar.

    Frozen; compares and hashes by value. ``ts`` is the bucket start (ns, UTC).
    """

    def __new__(
        cls,
        symbol: int,
        ts: int,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        ticks: int,
    ) -> Bar: ...
    @property
    def symbol(self) -> int: ...
    @property
    def ts(self) -> int: ...
    @property
    def open(self) -> float: ...
    @property
    def high(self) -> float: ...
    @property
    def low(self) -> float: ...
    @property
    def close(self) -> float: ...
    @property
    def volume(self) -> float: ...
    @property
    def ticks(self) -> int: ...
    def to_dict(self) -> dict[str, int | float]:
        """The bar as a dict with the same keys as ``build_bars`` columns."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Ema:
    """Streaming exponential moving average (the batch :func:`ema`, one value at a time).

    Args:
        period: number of values, >= 1.

    Raises:
        InvalidInputError: ``period < 1``.
    """

    def __new__(cls, period: int) -> Ema: ...
    @property
    def period(self) -> int: ...
    @property
    def count(self) -> int:
        """Number of values consumed so far."""
    @property
    def value(self) -> float | None:
        """Current EMA, or None during the first ``period - 1`` values."""
    @property
    def is_ready(self) -> bool:
        """True once ``period`` values have been consumed."""
    def update(self, x: float) -> float | None:
        """Consume one value; return the EMA, or None while warming up.

        Raises:
            InvalidInputError: ``x`` is NaN or infinite (the state is unchanged).
        """
    def reset(self) -> None:
        """Forget every value consumed."""
    def to_state(self) -> dict[str, int | float]:
        """Exact state: ``period``, ``count``, ``seed_sum`` and ``value`` (NaN until ready)."""
    @staticmethod
    def from_state(state: Mapping[str, int | float]) -> Ema:
        """Rebuild an Ema from :meth:`to_state`; it continues bit-identically.

        Raises:
            InvalidInputError: missing key or inconsistent values.
        """
    def __eq__(self, other: object, /) -> bool: ...

def ema(
    values: NDArray[np.float64], period: int, out: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    """EMA of ``values`` (TA-Lib ``EMA`` semantics; first ``period - 1`` outputs NaN).

    Args:
        values: 1-D contiguous float64, all finite.
        period: >= 1.
        out: optional preallocated 1-D contiguous writable float64 array of the same length,
            filled in place and returned (lets backtests reuse buffers).

    Raises:
        InvalidInputError: bad dtype/shape/contiguity, ``period < 1``, a non-finite value,
            ``out`` of another length.
    """

def crossovers(fast: NDArray[np.float64], slow: NDArray[np.float64]) -> NDArray[np.int8]:
    """+1 / -1 / 0 crossover flags of ``fast`` over ``slow`` (``out[0] = 0``; NaN gives 0).

    Raises:
        InvalidInputError: bad dtype/shape/contiguity or different lengths.
    """

def black76(
    F: NDArray[np.float64],
    K: NDArray[np.float64],
    T: NDArray[np.float64],
    r: NDArray[np.float64],
    sigma: NDArray[np.float64],
    is_call: NDArray[np.bool_],
) -> dict[str, NDArray[np.float64]]:
    """Black-76 price and greeks of every option of a chain (equal-length 1-D arrays).

    ``F`` forward, ``K`` strike, ``T`` years to expiry, ``r`` continuously compounded rate,
    ``sigma`` annual volatility, ``is_call`` a bool array. Returns ``price`` (discounted),
    ``delta`` (with respect to the forward), ``gamma``, ``theta`` (per calendar day) and
    ``vega`` (per volatility point, i.e. per 0.01). A NaN ``sigma`` (an implied volatility
    that could not be solved) gives NaN in every output of that row.

    Raises:
        InvalidInputError: bad dtype/shape/contiguity, different lengths, ``F``/``K``/``T``
            not finite and > 0, ``r`` not finite, ``sigma`` not NaN and not finite and > 0.
    """

def implied_vol_black76(
    price: NDArray[np.float64],
    F: NDArray[np.float64],
    K: NDArray[np.float64],
    T: NDArray[np.float64],
    r: NDArray[np.float64],
    is_call: NDArray[np.bool_],
) -> NDArray[np.float64]:
    """Implied Black-76 volatility of every discounted option price of a chain.

    NaN, never a wrong number, where the price is NaN, outside the no-arbitrage bounds
    (at or below the discounted intrinsic value; at or above the discounted forward for a
    call, the discounted strike for a put), its time value is lost in the rounding of the
    price, or no volatility reproduces it.

    Raises:
        InvalidInputError: bad dtype/shape/contiguity, different lengths, ``F``/``K``/``T``
            not finite and > 0, ``r`` not finite.
    """

def decode_kite_frame(data: bytes) -> list[dict[str, Any]]:
    """Kite Connect binary WebSocket frame → one pykiteconnect-shaped tick dict per packet.

    Public face: :func:`mental_trader.brokers.kite.decode_frame`, whose docstring lists
    the keys. Timestamps are aware IST datetimes (``mental_trader.calendar.IST``).

    Framing: a frame under 2 bytes is a heartbeat (``[]``); packets of an unknown length
    are skipped; bytes after the declared packets are ignored.

    Raises:
        InvalidInputError: the declared packets run past the end of the frame.
    """

def decode_kite_ticks(
    data: bytes,
) -> tuple[
    NDArray[np.int64],
    NDArray[np.uint8],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
]:
    """Kite Connect binary WebSocket frame → columns, one row per packet.

    Public face: :func:`mental_trader.brokers.kite.decode_ticks` (the columns named, as
    :class:`~mental_trader.brokers.kite.KiteTicks`). In order: ``token`` int64, ``mode``
    uint8 (1 ltp, 2 quote, 3 full), ``last_price``, ``volume`` (cumulative; 0 for ltp and
    index packets), ``exchange_ts_ns`` and ``last_trade_ns`` (ns UTC; 0 where the layout
    has none), ``bid``, ``ask`` (best depth level; NaN without depth or when empty) and
    ``oi`` (NaN without depth). Same framing rule as :func:`decode_kite_frame`.

    Raises:
        InvalidInputError: the declared packets run past the end of the frame.
    """

def build_bars(
    ts_ns: NDArray[np.int64],
    price: NDArray[np.float64],
    qty: NDArray[np.float64],
    *,
    timeframe_s: int = 60,
    symbol: NDArray[np.int64] | None = None,
    session_start: str | None = "09:15",
    session_end: str | None = "15:30",
    utc_offset_minutes: int = 330,
    volume_mode: str = "trade",
) -> dict[str, NDArray[np.int64] | NDArray[np.float64]]:
    """Aggregate ticks into time bars, processing them in array (arrival) order.

    Exactly the rules of :class:`BarBuilder` fed tick by tick and flushed at the end.

    Returns:
        Columns ``ts`` (int64 ns UTC, bucket start), ``open``, ``high``, ``low``, ``close``,
        ``volume`` (float64), ``ticks`` (int64), plus ``symbol`` (int64) when ``symbol`` was
        given; rows ordered by ``ts`` then ``symbol``.

    Raises:
        InvalidInputError: bad dtype/shape/contiguity, different lengths, a price that is
            not finite and > 0, a negative or non-finite quantity, ``timeframe_s`` outside
            1..86400, a malformed session ("HH:MM", start < end), an unknown volume mode.
    """

def resample_bars(
    bars: Mapping[str, NDArray[np.int64] | NDArray[np.float64]],
    timeframe_s: int,
    *,
    session_start: str | None = "09:15",
    session_end: str | None = "15:30",
    utc_offset_minutes: int = 330,
) -> dict[str, NDArray[np.int64] | NDArray[np.float64]]:
    """Coarser bars from finer ones (e.g. 1m -> 5m) with the same anchoring.

    ``bars`` has the columns of :func:`build_bars` (``symbol`` optional); rows of one symbol
    must be in ascending ``ts`` order. ``timeframe_s`` must be a multiple of the source
    timeframe. Open/close come from the first/last source bar, volume and ticks are summed.

    Returns:
        The same columns, rows ordered by ``ts`` then ``symbol``.

    Raises:
        InvalidInputError: missing column, bad dtype/shape, different lengths, rows of a
            symbol out of order, a bar outside the session, bad session arguments.
    """

@final
class BarBuilder:
    """Streaming tick -> bar aggregation for many symbols (the state machine of build_bars).

    Args:
        timeframe_s: bar length in seconds, 1..86400.
        session_start, session_end, utc_offset_minutes, volume_mode: as in :func:`build_bars`.
        grace_ms: :meth:`on_time` closes a bar once ``now`` is more than ``grace_ms`` past
            its bucket end, leaving time for delayed ticks.
    """

    def __new__(
        cls,
        timeframe_s: int = 60,
        *,
        session_start: str | None = "09:15",
        session_end: str | None = "15:30",
        utc_offset_minutes: int = 330,
        volume_mode: str = "trade",
        grace_ms: int = 1000,
    ) -> BarBuilder: ...
    @property
    def timeframe_s(self) -> int: ...
    @property
    def dropped(self) -> dict[str, int]:
        """Dropped ticks by reason: ``out_of_session`` and ``late``."""
    def on_tick(self, symbol: int, ts_ns: int, price: float, qty: float) -> list[Bar]:
        """Consume one tick; return the bar it closed (at most one), usually none.

        Raises:
            InvalidInputError: price not finite and > 0, qty negative or non-finite,
                timestamp out of range (the state is unchanged).
        """
    def on_time(self, now_ns: int) -> list[Bar]:
        """Close and return the open bars whose bucket ended more than ``grace_ms`` before now."""
    def flush(self) -> list[Bar]:
        """Close and return every open bar (ordered by ``ts`` then ``symbol``)."""
    def current(self, symbol: int) -> Bar | None:
        """The symbol's still-open bar, if any (not closed by this call)."""

@final
class BarEvent:
    """A bar closed by :class:`Engine`, with the EMAs and crossover it produced.

    ``is_confirm`` tells a confirm-timeframe bar from a primary one. ``ema_fast`` and
    ``ema_slow`` are None until warmed up; ``cross`` is +1, -1 or 0. ``end_ns`` is the end
    of the bar's bucket (cut at the session close): when the bar closes by the clock, also
    for a bar the engine emits later (closed by a later tick, :meth:`Engine.on_time` or
    :meth:`Engine.flush`).

    The ``confirm_*`` fields are the last confirm bar closed by ``end_ns``: for a primary
    event, including a confirm bar that closes with it (the engine emits that confirm event
    right after the primary one); for a confirm event, that bar itself. ``confirm_trend`` is
    +1 when its fast EMA is above the slow, -1 below, 0 when equal or not warmed up. The
    EMA values follow :meth:`Engine.restore_emas`; ``confirm_ts`` stays the ``ts`` of the
    last confirm bar the engine closed (None before the first), so restore the state stored
    with that bar.
    """

    @property
    def symbol(self) -> int: ...
    @property
    def timeframe_s(self) -> int: ...
    @property
    def is_confirm(self) -> bool: ...
    @property
    def bar(self) -> Bar: ...
    @property
    def ema_fast(self) -> float | None: ...
    @property
    def ema_slow(self) -> float | None: ...
    @property
    def cross(self) -> int: ...
    @property
    def end_ns(self) -> int: ...
    @property
    def confirm_ts(self) -> int | None: ...
    @property
    def confirm_ema_fast(self) -> float | None: ...
    @property
    def confirm_ema_slow(self) -> float | None: ...
    @property
    def confirm_trend(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class Engine:
    """The fused live path: ticks -> primary bars -> confirm bars -> fast/slow EMAs -> crosses.

    Per symbol: a primary bar builder, a confirm resampler, fast and slow EMAs on both
    timeframes and crossover state. One :meth:`on_tick` call per tick; it returns None on the
    common path (no bar closed). A confirm bar closes as soon as its last primary bar closes,
    or when a later primary bucket opens, or on :meth:`on_time` / :meth:`flush`. Once a
    confirm bar is closed, ticks of its bucket are late: a closed bar never changes.

    EMAs use a fused multiply-add where the CPU has FMA (detected at run time), like
    TA-Lib's compiled C; results can differ in the last bits between FMA and non-FMA
    machines, never between batch and streaming on one machine.

    Args:
        timeframe_s: primary timeframe in seconds.
        confirm_timeframe_s: confirm timeframe, a multiple of ``timeframe_s``.
        fast, slow: EMA periods, ``1 <= fast < slow``.
        session_start, session_end, utc_offset_minutes, volume_mode, grace_ms: as in
            :class:`BarBuilder`.
    """

    def __new__(
        cls,
        timeframe_s: int = 60,
        confirm_timeframe_s: int = 300,
        fast: int = 8,
        slow: int = 21,
        *,
        session_start: str | None = "09:15",
        session_end: str | None = "15:30",
        utc_offset_minutes: int = 330,
        volume_mode: str = "trade",
        grace_ms: int = 1000,
    ) -> Engine: ...
    @property
    def timeframe_s(self) -> int: ...
    @property
    def confirm_timeframe_s(self) -> int: ...
    @property
    def fast(self) -> int: ...
    @property
    def slow(self) -> int: ...
    @property
    def dropped(self) -> dict[str, int]:
        """Dropped ticks by reason: ``out_of_session`` and ``late``."""
    @property
    def symbols(self) -> list[int]:
        """Symbols seen so far, in order of first appearance."""
    def on_tick(self, symbol: int, ts_ns: int, price: float, qty: float) -> list[BarEvent] | None:
        """Consume one tick; None when no bar closed, else the closed-bar events.

        Events come primary first, then confirm.

        Raises:
            InvalidInputError: price not finite and > 0, qty negative or non-finite,
                timestamp out of range (the state is unchanged).
        """
    def on_time(self, now_ns: int) -> list[BarEvent] | None:
        """Close bars whose bucket ended more than ``grace_ms`` before ``now_ns``."""
    def flush(self) -> list[BarEvent]:
        """Close every open primary and confirm bar and return their events."""
    def on_ticks(
        self,
        ts_ns: NDArray[np.int64],
        price: NDArray[np.float64],
        qty: NDArray[np.float64],
        symbol: NDArray[np.int64] | None = None,
        *,
        flush: bool = False,
    ) -> dict[str, dict[str, NDArray[np.int64] | NDArray[np.float64] | NDArray[np.int8]]]:
        """Batch twin of :meth:`on_tick`: run whole arrays through the same state.

        Returns ``{"primary": columns, "confirm": columns}``, events in emission order, with
        the bar columns of :func:`build_bars` plus ``symbol``, ``ema_fast``, ``ema_slow``
        (float64, NaN until ready), ``cross`` (int8), ``end_ns`` (int64) and
        ``confirm_trend`` (int8; see :class:`BarEvent`). With ``flush=True`` open bars are
        closed at the end. The whole batch is validated before any tick is applied, so a
        bad input changes nothing.
        """
    def on_frame(
        self,
        ts_ns: NDArray[np.int64],
        price: NDArray[np.float64],
        qty: NDArray[np.float64],
        symbol: NDArray[np.int64],
    ) -> list[BarEvent] | None:
        """The ticks of one feed frame at once: exactly :meth:`on_tick` for each, in order.

        Returns None when no bar closed, else the events, like :meth:`on_tick`. The frame
        is validated before any tick is applied, so a bad input changes nothing. One call
        costs about what one :meth:`on_tick` call does, so a frame of a few dozen ticks
        runs far cheaper per tick than a Python loop of :meth:`on_tick`.
        """
    def warm_up(
        self,
        symbol: int,
        bars: Mapping[str, NDArray[Any]],
        *,
        day_volume: float | None = None,
    ) -> list[BarEvent]:
        """Warm a new symbol up from history: its closed primary bars, oldest first.

        The bars (columns ``ts``, ``open``, ``high``, ``low``, ``close``, ``volume``,
        ``ticks``; a ``symbol`` column is ignored) run through the EMAs and the confirm
        resampler exactly as if they had closed live; their events are returned. Afterwards
        ticks in the last bar's bucket or earlier are late. In cumulative volume mode the
        day's cumulative volume continues from ``day_volume`` (the volume of all of the last
        bar's day's bars) when given, so the next bar's volume is exact; without it the
        first tick of that day only sets the baseline (adds no volume).

        Raises:
            InvalidInputError: the symbol already has state (warm up before its first tick),
                or a bar is not at a primary bucket start, not after the previous one, or has
                impossible prices or counts. Nothing changes then.
        """
    def restore_emas(
        self,
        symbol: int,
        *,
        confirm: bool,
        fast: Mapping[str, Any],
        slow: Mapping[str, Any],
    ) -> None:
        """Replace a symbol's EMA pair on one timeframe with stored :meth:`Ema.to_state` dicts.

        For a bit-identical continuation after a restart: warm up from the stored bars, then
        restore the EMA states persisted with the last of them. The crossover continues from
        the restored values.

        Raises:
            InvalidInputError: unknown symbol, an invalid state, or periods other than
                ``fast`` / ``slow`` of this engine.
        """
    def ema_states(self, symbol: int, *, confirm: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """The (fast, slow) EMA states of a symbol on one timeframe, to persist with its bars.

        Raises:
            InvalidInputError: unknown symbol.
        """
    def snapshot(self) -> bytes:
        """The whole state as versioned bytes (restore with :meth:`from_snapshot`)."""
    @staticmethod
    def from_snapshot(data: bytes) -> Engine:
        """Rebuild an Engine that continues exactly where the snapshot was taken.

        Raises:
            InvalidInputError: the bytes are not a valid snapshot of this version.
        """
