"""The option chain of one underlying and expiry: the data the options layer works on.

A chain is columnar (one numpy array per field, one row per strike, strikes ascending and
unique), with the call (CE) and put (PE) sides side by side, so the analytics run over whole
arrays and the option math goes to the Rust core in one call per side. A missing quote
(no bid, no trade yet) is NaN; a missing contract on one side has an empty symbol.

Contract facts (lot size, tick size, freeze quantity, expiry, strike grid) come from the
instrument master, never from code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from mental_trader.calendar import IST
from mental_trader.errors import InvalidInputError
from mental_trader.models import require_aware

__all__ = [
    "EXPIRY_TIME",
    "OptionChain",
    "OptionSide",
    "OptionType",
    "years_to_expiry",
]

OptionType = Literal["CE", "PE"]

#: Options expire at the close of the expiry day (NSE: 15:30 IST).
EXPIRY_TIME = time(15, 30)
_YEAR_S = 365.0 * 86_400.0

FloatArray = NDArray[np.float64]


def years_to_expiry(ts: datetime, expiry: date, close: time = EXPIRY_TIME) -> float:
    """Calendar years from ``ts`` to the expiry day's close (IST), at least one second.

    Calendar time (not trading time) is the convention of the Black-76 inputs here: theta
    is per calendar day.
    """
    require_aware(ts, "ts")
    end = datetime.combine(expiry, close, tzinfo=IST)
    seconds = (end - ts).total_seconds()
    return max(seconds, 1.0) / _YEAR_S


@dataclass(frozen=True, slots=True, eq=False)
class OptionSide:
    """One side (CE or PE) of a chain, row-aligned with :attr:`OptionChain.strike`.

    Attributes:
        symbols: exchange-qualified contract symbols (``"NFO:NIFTY25D0924000CE"``); ``""``
            where the strike has no contract on this side.
        bid, ask: best bid / ask (NaN: none).
        last: last traded price (NaN: no trade yet).
        oi: open interest in units (contracts x lot size), 0 if none.
        volume: the day's traded volume in units.
    """

    symbols: tuple[str, ...]
    bid: FloatArray
    ask: FloatArray
    last: FloatArray
    oi: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        n = len(self.symbols)
        for name in ("bid", "ask", "last", "oi", "volume"):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float64 or arr.shape != (n,):
                raise InvalidInputError(f"option side: {name} must be a float64 array of {n}")

    def mid(self) -> FloatArray:
        """The mid price where both quotes exist, else the last trade (NaN: neither)."""
        both = (self.bid > 0) & (self.ask >= self.bid)
        return np.where(both, 0.5 * (self.bid + self.ask), self.last)

    def index_of(self, symbol: str) -> int | None:
        """The row of a contract symbol, or None."""
        try:
            return self.symbols.index(symbol)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True, eq=False)
class OptionChain:
    """The chain of one underlying and one expiry at one moment.

    Attributes:
        underlying: the underlying's symbol (``"NSE:NIFTY 50"``, ``"NSE:RELIANCE"``).
        expiry: the expiry date (options expire at :data:`EXPIRY_TIME` IST).
        ts: when the quotes were taken (aware).
        spot: the underlying's last price then.
        strike: strikes, ascending and unique.
        ce, pe: the call and put sides.
        lot_size: units per lot; tick_size: price step; freeze_qty: the largest quantity
            (units) one order may carry on the exchange (None: unknown, no slicing).
        rate: the continuously compounded rate for discounting (annual).
    """

    underlying: str
    expiry: date
    ts: datetime
    spot: float
    strike: FloatArray
    ce: OptionSide
    pe: OptionSide
    lot_size: int
    tick_size: float
    freeze_qty: int | None = None
    rate: float = 0.065

    def __post_init__(self) -> None:
        require_aware(self.ts, "OptionChain.ts")
        k = self.strike
        if not isinstance(k, np.ndarray) or k.dtype != np.float64 or k.ndim != 1 or len(k) == 0:
            raise InvalidInputError("option chain: strike must be a non-empty float64 array")
        if not (np.all(np.isfinite(k)) and np.all(k > 0) and np.all(np.diff(k) > 0)):
            raise InvalidInputError("option chain: strikes must be finite, > 0 and ascending")
        for side in (self.ce, self.pe):
            if len(side.symbols) != len(k):
                raise InvalidInputError("option chain: each side needs one row per strike")
        if self.lot_size < 1 or not self.tick_size > 0:
            raise InvalidInputError("option chain: lot size >= 1 and tick size > 0 required")
        if not (np.isfinite(self.spot) and self.spot > 0):
            raise InvalidInputError(f"option chain: bad spot {self.spot}")

    def __len__(self) -> int:
        return len(self.strike)

    @property
    def years(self) -> float:
        """Calendar years from :attr:`ts` to expiry (see :func:`years_to_expiry`)."""
        return years_to_expiry(self.ts, self.expiry)

    def side(self, option_type: OptionType) -> OptionSide:
        """The CE or PE side."""
        return self.ce if option_type == "CE" else self.pe

    def atm_index(self) -> int:
        """The row of the strike nearest the spot (the lower one on a tie)."""
        return int(np.argmin(np.abs(self.strike - self.spot)))

    def expiry_close(self) -> datetime:
        """The moment of expiry (UTC)."""
        return datetime.combine(self.expiry, EXPIRY_TIME, tzinfo=IST).astimezone(UTC)

    def days_to_expiry(self) -> float:
        """Calendar days to expiry (fractional)."""
        return (self.expiry_close() - self.ts) / timedelta(days=1)
