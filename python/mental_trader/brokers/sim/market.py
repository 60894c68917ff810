"""A deterministic simulated NSE market: per (symbol, session day), that day's ticks.

The same seed always gives the same market, on any machine and in any process: every
random draw comes from a numpy ``Generator`` seeded by a stable hash (BLAKE2b) of the
seed, the symbol and the day, never from Python's randomised ``hash()``.

How a price series is made
--------------------------
Daily level. One value per CALENDAR day from :data:`ANCHOR` on, whether or not the
exchange trades that day, so prices never depend on the holiday calendar: adding an extra
holiday removes a day's ticks but changes no other day. With ``x`` the log deviation of
the close from the symbol's base price, each day ``i`` draws an overnight gap ``g`` and a
return ``r``::

    open_i  = base * exp(x[i-1] + g_i)
    x[i]    = (1 - kappa) * x[i-1] + g_i + sigma_i * z_i        (close_i = base * exp(x[i]))

a slowly mean-reverting (AR(1), ``kappa`` = 1/250) geometric walk, so prices stay near
their base over years; ``sigma_i`` is a quarter of the symbol's daily volatility on
Saturdays and Sundays (little news, so Monday's gap stays small). The draws come in blocks
of 512 days, each from its own generator, and the path is computed once and cached, so a
day costs O(1) after the first. The next session opens at the previous session's close
carried through the gaps (and returns) of the days between.

Intraday. The session (09:15-15:30 IST) is cut into 2-second slots. Each slot gets
``1 + Poisson(rate * activity)`` ticks at uniform random millisecond times: at least one
tick every 2 s (a liquid NSE name in Kite's quote mode ticks about once a second), so every
bar of 2 s or longer exists. ``activity`` is a U-shaped profile
(busy at the open and close, quiet at lunch) times a log-normal AR(1) factor (bursts and
quiet spells lasting minutes). The log price is a Brownian bridge in "activity time" from
the day's open to its close, with Student-t (4 dof) shocks, larger in bursts; prices are
rounded to the 0.05 tick. The first tick trades at the open, the last at the close.

Volume is a real feed's: ``cum_volume`` is the day's cumulative traded volume (from 0 each
day, non-decreasing), and ``qty`` the last traded quantity of each tick (at most the
cumulative increase since the previous tick: more trades happen between snapshots than
the feed shows). An index (a symbol with a space in its name, e.g. ``"NSE:NIFTY 50"``)
has no volume: both are 0.

Consistency with the live stream
--------------------------------
History is defined as the bars of these ticks: :meth:`SimMarket.bars` runs
:meth:`SimMarket.day_ticks` through :func:`mental_trader.core.build_bars` with
``volume_mode="cumulative"`` (``qty`` argument = ``cum_volume``) and the calendar's
session. A live stream stays consistent with history by emitting exactly
``day_ticks(symbol, day)`` (each tick at its ``ts_ns``, in array order) into an
:class:`~mental_trader.core.Engine` / ``BarBuilder`` built with the same session arguments
(:attr:`SimMarket.session_kwargs`) and ``volume_mode="cumulative"``, passing
``cum_volume`` as the tick quantity.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from mental_trader.calendar import UTC_OFFSET_MINUTES, TradingCalendar
from mental_trader.core import build_bars
from mental_trader.errors import InvalidInputError
from mental_trader.storage.base import CANDLE_COLUMNS, Candles

__all__ = [
    "ANCHOR",
    "DEFAULT_PROFILES",
    "SLOT_S",
    "TICK_SIZE",
    "DayTicks",
    "SimMarket",
    "SymbolProfile",
    "derive_profile",
    "is_index_symbol",
    "stable_seed",
]

#: The first day the simulated market has prices for.
ANCHOR = date(2000, 1, 1)
#: Price grid of every simulated instrument.
TICK_SIZE = 0.05
#: Every slot of this many seconds has at least one tick.
SLOT_S = 2

_TICKS_PER_UNIT = 20.0  # 1 / TICK_SIZE, exact
_BLOCK_DAYS = 512
_KAPPA = 1.0 / 250.0  # daily mean reversion of the log price towards the base
_WEEKEND_VOL = 0.25  # Saturday/Sunday volatility relative to a weekday's
_CACHE_DAYS = 64  # (symbol, day) tick arrays kept in memory


def stable_seed(*parts: object) -> int:
    """A 128-bit seed from ``parts`` that is the same in every process and on every machine."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "big")


def is_index_symbol(symbol: str) -> bool:
    """Whether ``symbol`` names an index (Kite index names have a space: ``NIFTY 50``)."""
    return " " in symbol.partition(":")[2]


@dataclass(frozen=True, slots=True)
class SymbolProfile:
    """The character of one simulated symbol.

    Attributes:
        base_price: the level the price reverts to over years.
        daily_vol: standard deviation of a session's open-to-close log return.
        gap_vol: standard deviation of the overnight log gap.
        rate: mean extra ticks per slot (SLOT_S seconds) at average activity.
        day_volume: mean shares traded per session (0 for an index).
    """

    base_price: float
    daily_vol: float
    gap_vol: float
    rate: float
    day_volume: float


#: Defaults for a few well-known symbols; any other is derived from its name.
DEFAULT_PROFILES: dict[str, SymbolProfile] = {
    "NSE:RELIANCE": SymbolProfile(1400.0, 0.014, 0.004, 1.2, 8.0e6),
    "NSE:INFY": SymbolProfile(1550.0, 0.016, 0.005, 1.0, 6.0e6),
    "NSE:ICICIBANK": SymbolProfile(1350.0, 0.013, 0.004, 1.1, 1.1e7),
    "NSE:NIFTY 50": SymbolProfile(25000.0, 0.008, 0.003, 1.5, 0.0),
}


def derive_profile(symbol: str) -> SymbolProfile:
    """A plausible profile for a symbol without a default, from its name alone."""
    rng = np.random.default_rng(stable_seed("profile", symbol))
    u = rng.random(4)
    index = is_index_symbol(symbol)
    return SymbolProfile(
        base_price=round(math.exp(math.log(50.0) + u[0] * math.log(5000.0 / 50.0)), 1)
        * (100.0 if index else 1.0),
        daily_vol=(0.006 + 0.006 * u[1]) if index else (0.012 + 0.013 * u[1]),
        gap_vol=0.003 + 0.004 * u[2],
        rate=0.5 + 0.7 * u[3],
        day_volume=0.0 if index else float(round(math.exp(math.log(5e5) + u[3] * math.log(10)))),
    )


@dataclass(frozen=True, slots=True)
class DayTicks:
    """One symbol's ticks of one session, in arrival (= time) order; arrays are read-only.

    Attributes:
        symbol: exchange-qualified symbol.
        day: the session day (IST).
        ts_ns: int64 exchange timestamps, ns UTC, inside the session.
        price: float64 traded prices on the 0.05 grid.
        qty: float64 last traded quantity of each tick (0 for an index).
        cum_volume: float64 cumulative volume of the day after each tick (0 for an index).
    """

    symbol: str
    day: date
    ts_ns: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    qty: npt.NDArray[np.float64]
    cum_volume: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.ts_ns)


class TickSource(Protocol):
    """What a feed replays: each symbol's ticks per session, and the calendar."""

    @property
    def calendar(self) -> TradingCalendar: ...

    def day_ticks(self, symbol: str, day: date) -> DayTicks: ...


def _frozen(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


class SimMarket:
    """Deterministic ticks and bars of a simulated NSE market (see the module docstring).

    Thread-safe: the caches are guarded by a lock, so history may be computed in worker
    threads.

    Args:
        seed: the market's seed; the same seed gives the same ticks.
        calendar: which days are sessions, and their hours.
        profiles: per-symbol profiles overriding :data:`DEFAULT_PROFILES`.
    """

    def __init__(
        self,
        seed: int,
        calendar: TradingCalendar,
        *,
        profiles: Mapping[str, SymbolProfile] | None = None,
    ) -> None:
        self.seed = int(seed)
        self.calendar = calendar
        self._profiles = {**DEFAULT_PROFILES, **(profiles or {})}
        self._lock = threading.Lock()
        self._levels: dict[str, list[float]] = {}  # symbol -> x[i], log close deviation
        self._days: OrderedDict[tuple[str, date], DayTicks] = OrderedDict()

    @property
    def session_kwargs(self) -> dict[str, Any]:
        """Session arguments for ``build_bars`` / ``BarBuilder`` / ``Engine``."""
        return {
            "session_start": self.calendar.session_start,
            "session_end": self.calendar.session_end,
            "utc_offset_minutes": UTC_OFFSET_MINUTES,
        }

    def profile(self, symbol: str) -> SymbolProfile:
        """The profile of ``symbol`` (a default, an override, or derived from the name)."""
        found = self._profiles.get(symbol)
        return found if found is not None else derive_profile(symbol)

    # ----------------------------------------------------------------- daily level

    def open_close(self, symbol: str, day: date) -> tuple[float, float]:
        """The unrounded open and close price of ``day`` (defined for every calendar day).

        Raises:
            InvalidInputError: ``day`` is before :data:`ANCHOR`.
        """
        i = (day - ANCHOR).days
        if i < 0:
            raise InvalidInputError(f"the simulated market starts on {ANCHOR}, not {day}")
        profile = self.profile(symbol)
        with self._lock:
            levels = self._levels.setdefault(symbol, [])
            while len(levels) <= i:
                self._extend(symbol, profile, levels)
            prev = levels[i - 1] if i > 0 else 0.0
            close_x = levels[i]
        gap = self._gap(symbol, profile, i)
        return profile.base_price * math.exp(prev + gap), profile.base_price * math.exp(close_x)

    def _block(self, symbol: str, block: int) -> npt.NDArray[np.float64]:
        rng = np.random.default_rng(stable_seed(self.seed, symbol, "daily", block))
        return rng.standard_normal((2, _BLOCK_DAYS))

    def _gap(self, symbol: str, profile: SymbolProfile, i: int) -> float:
        block, k = divmod(i, _BLOCK_DAYS)
        return float(self._block(symbol, block)[0, k]) * profile.gap_vol

    def _extend(self, symbol: str, profile: SymbolProfile, levels: list[float]) -> None:
        """Append the next block of daily closes (caller holds the lock)."""
        block = len(levels) // _BLOCK_DAYS
        draws = self._block(symbol, block).tolist()
        x = levels[-1] if levels else 0.0
        first = ANCHOR + timedelta(days=block * _BLOCK_DAYS)
        weekday = first.weekday()
        for k in range(_BLOCK_DAYS):
            vol = profile.daily_vol * (_WEEKEND_VOL if (weekday + k) % 7 >= 5 else 1.0)
            x = (1.0 - _KAPPA) * x + draws[0][k] * profile.gap_vol + draws[1][k] * vol
            levels.append(x)

    # ----------------------------------------------------------------- intraday ticks

    def day_ticks(self, symbol: str, day: date) -> DayTicks:
        """All ticks of ``symbol`` in ``day``'s session (empty on a non-session day).

        Raises:
            InvalidInputError: ``day`` is before :data:`ANCHOR`.
        """
        if day < ANCHOR:
            raise InvalidInputError(f"the simulated market starts on {ANCHOR}, not {day}")
        key = (symbol, day)
        with self._lock:
            cached = self._days.get(key)
            if cached is not None:
                self._days.move_to_end(key)
                return cached
        ticks = self._generate(symbol, day)
        with self._lock:
            self._days[key] = ticks
            while len(self._days) > _CACHE_DAYS:
                self._days.popitem(last=False)
        return ticks

    def _generate(self, symbol: str, day: date) -> DayTicks:
        if not self.calendar.is_session(day):
            empty_f = _frozen(np.empty(0, dtype=np.float64))
            return DayTicks(symbol, day, _frozen(np.empty(0, dtype=np.int64)), empty_f,
                            empty_f, empty_f)  # fmt: skip
        profile = self.profile(symbol)
        day_open, day_close = self.open_close(symbol, day)
        rng = np.random.default_rng(stable_seed(self.seed, symbol, day.isoformat()))
        session_s = self.calendar.session_seconds
        n_slots = -(-session_s // SLOT_S)

        # activity per slot: U-shaped profile (mean 1) x log-normal AR(1) bursts (mean 1)
        t = (np.arange(n_slots) + 0.5) * SLOT_S / session_s
        shape = 0.55 + 1.8 * np.exp(-t / 0.05) + 1.0 * np.exp(-(1.0 - t) / 0.06)
        shape /= shape.mean()
        kernel = 0.95 ** np.arange(120)
        noise = rng.standard_normal(n_slots + len(kernel) - 1)
        bursts = np.convolve(noise, kernel, mode="valid") / math.sqrt(float(kernel @ kernel))
        activity = shape * np.exp(0.7 * bursts - 0.245)

        # tick times: >= 1 per slot, uniform millisecond times inside the slot
        counts = 1 + rng.poisson(profile.rate * activity)
        slot = np.repeat(np.arange(n_slots), counts)
        n = len(slot)
        pos = np.sort(slot + rng.random(n))
        offset_ms = np.minimum((pos * (SLOT_S * 1000)).astype(np.int64), session_s * 1000 - 1)
        open_ns = self.calendar.session_bounds_ns(day)[0]
        ts_ns = open_ns + offset_ms * 1_000_000

        # log price: Brownian bridge open -> close in activity time, Student-t shocks
        var = activity[slot]
        var[0] = 0.0
        shocks = rng.standard_t(4, n) / math.sqrt(2.0) * np.sqrt(var)
        walk = np.cumsum(shocks)
        clock = np.cumsum(var)
        total = float(clock[-1])
        frac = clock / total if total > 0 else np.zeros(n)
        scale = profile.daily_vol / math.sqrt(total) if total > 0 else 0.0
        log_open, log_close = math.log(day_open), math.log(day_close)
        log_price = log_open + frac * (log_close - log_open) + scale * (walk - frac * walk[-1])
        # round(x * 20) / 20 (not round(x / 0.05) * 0.05) gives the double nearest k * 0.05
        price = np.maximum(np.round(np.exp(log_price) * _TICKS_PER_UNIT) / _TICKS_PER_UNIT,
                           TICK_SIZE)  # fmt: skip

        # volume: cumulative day volume, and the last traded quantity of each tick
        if profile.day_volume > 0:
            day_factor = math.exp(0.3 * float(rng.standard_normal()) - 0.045)
            mean_inc = profile.day_volume * day_factor / n
            inc = np.maximum(
                np.round(mean_inc * np.sqrt(activity[slot]) * rng.lognormal(-0.32, 0.8, n)), 1.0
            )
            trade = max(1.0, 25_000.0 / day_open)  # about Rs 25 000 a trade
            qty = np.minimum(np.maximum(np.round(rng.lognormal(math.log(trade), 1.0, n)), 1.0),
                             inc)  # fmt: skip
            cum_volume = np.cumsum(inc)
        else:
            qty = cum_volume = np.zeros(n)
        return DayTicks(
            symbol=symbol,
            day=day,
            ts_ns=_frozen(ts_ns.astype(np.int64)),
            price=_frozen(price.astype(np.float64)),
            qty=_frozen(qty.astype(np.float64)),
            cum_volume=_frozen(cum_volume.astype(np.float64)),
        )

    # ----------------------------------------------------------------- bars

    def bars(self, symbol: str, day: date, timeframe_s: int) -> Candles:
        """All bars of ``day`` at ``timeframe_s``: exactly build_bars over :meth:`day_ticks`.

        Raises:
            InvalidInputError: ``timeframe_s`` outside 1..86400, ``day`` before the anchor.
        """
        ticks = self.day_ticks(symbol, day)
        built = build_bars(
            ticks.ts_ns,
            ticks.price,
            ticks.cum_volume,
            timeframe_s=timeframe_s,
            volume_mode="cumulative",
            **self.session_kwargs,
        )
        return {name: built[name] for name in CANDLE_COLUMNS}
