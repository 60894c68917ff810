"""The simulated market's options: contracts, chains and option ticks, consistent with the
underlying's simulated ticks.

The F&O universe (which underlyings, lot sizes, strike steps, expiries listed, freeze
quantities, volatility smiles) is data: ``mental_trader/data/sim_fno.toml``.

* **Expiries** are Tuesdays (NSE since 2025-08-28): weekly ones for an underlying marked
  ``weekly`` (NIFTY), and monthly ones on the month's last Tuesday; a Tuesday that is not a
  session moves to the session before it. On a session day the next ``weeklies`` weekly and
  ``monthlies`` monthly expiries are listed.
* **Strikes** are on the underlying's grid around the previous session's close, as the
  exchange lists them: ``strikes_each_side`` above and below.
* **Premiums** are Black-76 (the Rust core's :func:`mental_trader.core.black76`) on the
  forward ``F = S exp(r T)`` of the underlying's last trade, with calendar time to the expiry
  close, and a smile in log-moneyness ``m = ln(K/F)``:
  ``vol = atm * (1 + skew m + smile m^2)`` (clipped), where the at-the-money level rises as
  the underlying falls from the day's open. The smile is anchored to the forward, so it
  moves with the underlying. Premiums are rounded to the tick, never below one tick.
* **Quotes** straddle the premium with a spread that widens away from the money (in
  standard deviations of moneyness). **OI** starts each day from a per-strike profile
  (calls heavier above the money, puts below) and drifts through the session by a seeded
  per-strike factor; **volume** accrues through the session, most near the money. Both are
  whole lots and deterministic under the seed.
* **Option ticks**: every trade of the underlying reprices each option, so
  :meth:`SimOptions.day_ticks` gives an option position the marks it needs, at the
  underlying's tick times, and the chain's ``last`` is the last of these ticks.
"""

from __future__ import annotations

import importlib.resources
import math
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mental_trader.brokers.sim.market import DayTicks, SimMarket, stable_seed
from mental_trader.calendar import IST, ist_date
from mental_trader.core import black76
from mental_trader.errors import InvalidInputError
from mental_trader.models import Instrument
from mental_trader.options.chain import EXPIRY_TIME, OptionChain, OptionSide, OptionType
from mental_trader.storage.base import dt_to_ns, ns_to_dt

__all__ = ["SimContract", "SimFnoSpec", "SimOptions", "SimUnderlying"]

_YEAR_NS = 365 * 86_400 * 1_000_000_000
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKLY_MONTH = "123456789OND"  # Kite's one-letter month of a weekly contract
_TUESDAY = 1
_KINDS: tuple[OptionType, OptionType] = ("CE", "PE")
#: OI of the busiest strike at the open, in lots.
_PEAK_OI_LOTS = 60_000
#: Volume of the busiest strike over a whole session, in lots.
_PEAK_VOLUME_LOTS = 400_000


@dataclass(frozen=True, slots=True)
class SimUnderlying:
    """One underlying of the simulated F&O universe (see ``sim_fno.toml``)."""

    symbol: str
    name: str
    lot_size: int
    strike_step: float
    strikes_each_side: int
    weekly: bool
    weeklies: int
    monthlies: int
    freeze_qty: int
    atm_vol: float
    skew: float
    smile: float


@dataclass(frozen=True, slots=True)
class SimFnoSpec:
    """The simulated F&O universe: tick size, rate and the underlyings."""

    tick_size: float
    rate: float
    underlyings: Mapping[str, SimUnderlying]

    @classmethod
    def load(cls, path: Path | None = None) -> SimFnoSpec:
        """Read the spec (default: the packaged ``sim_fno.toml``).

        Raises:
            InvalidInputError: an unreadable file, or a missing or invalid field.
        """
        try:
            if path is None:
                text = (importlib.resources.files("mental_trader.data") / "sim_fno.toml").read_text(
                    encoding="utf-8"
                )
            else:
                text = path.read_text(encoding="utf-8")
            raw = tomllib.loads(text)
            underlyings = {
                symbol: SimUnderlying(symbol=symbol, **fields)
                for symbol, fields in raw["underlyings"].items()
            }
            spec = cls(float(raw["tick_size"]), float(raw["rate"]), underlyings)
        except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInputError(f"sim F&O spec {path or 'sim_fno.toml'}: {exc}") from exc
        for u in spec.underlyings.values():
            if u.lot_size < 1 or u.strike_step <= 0 or u.strikes_each_side < 1:
                raise InvalidInputError(f"sim F&O spec: bad contract figures for {u.symbol}")
            if not 0 < u.atm_vol < 3 or u.monthlies < 1 or u.weeklies < 0 or u.freeze_qty < 1:
                raise InvalidInputError(f"sim F&O spec: bad listing or volatility for {u.symbol}")
        return spec


@dataclass(frozen=True, slots=True)
class SimContract:
    """One listed option: what its symbol stands for."""

    symbol: str
    underlying: SimUnderlying
    expiry: date
    strike: float
    option_type: OptionType
    monthly: bool


def _on_grid(ticks: npt.NDArray[np.float64], tick: float) -> npt.NDArray[np.float64]:
    """A whole number of ticks as a price, without float noise (177.45, not 177.4500..02)."""
    return np.round(ticks * tick, 8)


def _strike_text(strike: float) -> str:
    return str(int(strike)) if float(strike).is_integer() else f"{strike:g}"


def tradingsymbol(name: str, expiry: date, strike: float, kind: OptionType, monthly: bool) -> str:
    """Kite's option tradingsymbol: ``NIFTY25DEC24000CE`` (monthly) or ``NIFTY25D0924000CE``
    (weekly: year, one-letter month, day)."""
    yy = f"{expiry.year % 100:02d}"
    if monthly:
        return f"{name}{yy}{_MONTHS[expiry.month - 1]}{_strike_text(strike)}{kind}"
    month = _WEEKLY_MONTH[expiry.month - 1]
    return f"{name}{yy}{month}{expiry.day:02d}{_strike_text(strike)}{kind}"


class SimOptions:
    """Contracts, chains and option ticks of the simulated market.

    Args:
        market: the simulated market of the underlyings (its calendar decides sessions).
        spec: the F&O universe (default: the packaged one).

    Thread-safe (the caches are guarded by a lock).
    """

    def __init__(self, market: SimMarket, spec: SimFnoSpec | None = None) -> None:
        self.market = market
        self.calendar = market.calendar
        self.spec = spec or SimFnoSpec.load()
        self._lock = threading.Lock()
        self._contracts: dict[date, dict[str, SimContract]] = {}

    @property
    def underlyings(self) -> tuple[str, ...]:
        """The underlyings with options."""
        return tuple(self.spec.underlyings)

    def _underlying(self, symbol: str) -> SimUnderlying:
        found = self.spec.underlyings.get(symbol)
        if found is None:
            raise InvalidInputError(f"{symbol} has no options in the simulated market")
        return found

    # ----------------------------------------------------------------- listing

    def _session_on_or_before(self, day: date) -> date:
        for _ in range(15):
            if self.calendar.is_session(day):
                return day
            day -= timedelta(days=1)
        raise InvalidInputError(f"no session in the two weeks before {day}")

    def _monthly_expiry(self, year: int, month: int) -> date:
        first_next = date(year + month // 12, month % 12 + 1, 1)
        last = first_next - timedelta(days=1)
        tuesday = last - timedelta(days=(last.weekday() - _TUESDAY) % 7)
        return self._session_on_or_before(tuesday)

    def expiries(self, underlying: str, day: date) -> list[tuple[date, bool]]:
        """The expiries listed on ``day`` (nearest first), each with whether it is monthly."""
        u = self._underlying(underlying)
        monthly: list[date] = []
        year, month = day.year, day.month
        while len(monthly) < u.monthlies:
            expiry = self._monthly_expiry(year, month)
            if expiry >= day:
                monthly.append(expiry)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        listed = {d: True for d in monthly}
        if u.weekly:
            tuesday = day + timedelta(days=(_TUESDAY - day.weekday()) % 7)
            weeklies: list[date] = []
            while len(weeklies) < u.weeklies:
                expiry = self._session_on_or_before(tuesday)
                if expiry >= day:
                    weeklies.append(expiry)
                tuesday += timedelta(days=7)
            for expiry in weeklies:
                listed.setdefault(expiry, False)
        return sorted(listed.items())

    def strikes(self, underlying: str, day: date) -> npt.NDArray[np.float64]:
        """The strike grid listed on ``day``: around the previous session's close."""
        u = self._underlying(underlying)
        previous = self.calendar.previous_sessions(day - timedelta(days=1), 1)
        ref = self.market.open_close(underlying, previous[-1] if previous else day)[1]
        centre = round(ref / u.strike_step) * u.strike_step
        offsets = np.arange(-u.strikes_each_side, u.strikes_each_side + 1, dtype=np.float64)
        return centre + u.strike_step * offsets

    def contracts(self, day: date) -> dict[str, SimContract]:
        """Every option listed on ``day``, by exchange-qualified symbol (``NFO:...``)."""
        with self._lock:
            found = self._contracts.get(day)
        if found is not None:
            return found
        out: dict[str, SimContract] = {}
        for symbol, u in self.spec.underlyings.items():
            strikes = self.strikes(symbol, day)
            for expiry, monthly in self.expiries(symbol, day):
                for strike in strikes.tolist():
                    for kind in _KINDS:
                        ts = tradingsymbol(u.name, expiry, strike, kind, monthly)
                        out[f"NFO:{ts}"] = SimContract(
                            f"NFO:{ts}", u, expiry, strike, kind, monthly
                        )
        with self._lock:
            self._contracts[day] = out
            while len(self._contracts) > 8:
                self._contracts.pop(next(iter(self._contracts)))
        return out

    def instruments(self, day: date) -> list[Instrument]:
        """The option contracts listed on ``day`` as instrument-master rows."""
        return [
            Instrument(
                symbol=c.symbol,
                exchange="NFO",
                tradingsymbol=c.symbol.partition(":")[2],
                instrument_token=stable_seed("token", c.symbol) & 0x7FFF_FFFF,
                name=c.underlying.name,
                segment="NFO-OPT",
                instrument_type=c.option_type,
                tick_size=self.spec.tick_size,
                lot_size=c.underlying.lot_size,
                expiry=c.expiry,
                strike=c.strike,
                underlying=c.underlying.symbol,
                freeze_qty=c.underlying.freeze_qty,
            )
            for c in self.contracts(day).values()
        ]

    def contract(self, symbol: str, day: date) -> SimContract:
        """The contract behind an option symbol listed on ``day``.

        Raises:
            InvalidInputError: not listed that day.
        """
        found = self.contracts(day).get(symbol)
        if found is None:
            raise InvalidInputError(f"{symbol} is not listed on {day}")
        return found

    # ----------------------------------------------------------------- pricing

    def _price(
        self,
        u: SimUnderlying,
        day_open: float,
        spot: npt.NDArray[np.float64],
        t_ns: npt.NDArray[np.int64],
        expiry: date,
        strike: npt.NDArray[np.float64],
        is_call: npt.NDArray[np.bool_],
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(premium rounded to the tick, vol, standardised moneyness) per row."""
        end_ns = dt_to_ns(datetime.combine(expiry, EXPIRY_TIME, tzinfo=IST))
        years = np.maximum(end_ns - t_ns, 1_000_000_000) / _YEAR_NS
        rate = np.full(len(spot), self.spec.rate)
        forward = spot * np.exp(rate * years)
        m = np.log(strike / forward)
        # A falling underlying lifts the whole smile (the leverage effect).
        atm = u.atm_vol * np.exp(np.clip(-4.0 * np.log(spot / day_open), -0.4, 0.8))
        vol = atm * np.clip(1.0 + u.skew * m + u.smile * m * m, 0.6, 3.0)
        out = black76(forward, strike, years, rate, vol, is_call)
        tick = self.spec.tick_size
        premium = _on_grid(np.maximum(np.round(out["price"] / tick), 1.0), tick)
        z = m / (vol * np.sqrt(years))
        return premium, vol, z

    def _quote_sides(
        self, premium: npt.NDArray[np.float64], z: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Bid and ask around the premium; the spread widens away from the money."""
        tick = self.spec.tick_size
        half = np.maximum(premium * (0.002 + 0.006 * np.minimum(np.abs(z), 4.0)), tick / 2)
        bid = _on_grid(np.maximum(np.floor((premium - half) / tick + 1e-9), 0.0), tick)
        ask = _on_grid(np.ceil((premium + half) / tick - 1e-9), tick)
        bid = np.where(bid <= 0.0, np.nan, bid)  # nobody bids below a tick
        return bid, ask

    def _oi_volume(
        self,
        u: SimUnderlying,
        day: date,
        expiry: date,
        strikes: npt.NDArray[np.float64],
        day_open: float,
        frac: float,
    ) -> dict[OptionType, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
        """OI and cumulative volume (units) per strike at a fraction ``frac`` of the session."""
        days_left = max((expiry - day).days, 0) + 0.5
        width = u.atm_vol * day_open * math.sqrt(days_left / 365.0)
        z = (strikes - day_open) / max(width, u.strike_step)
        rng = np.random.default_rng(stable_seed(self.market.seed, u.symbol, day, expiry, "oi"))
        out: dict[OptionType, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
        shifts: tuple[tuple[OptionType, float], ...] = (("CE", 0.6), ("PE", -0.6))
        for kind, shift in shifts:
            shape = np.exp(-0.5 * (z - shift) ** 2)
            drift = rng.uniform(-0.3, 0.5, len(strikes))
            oi_lots = np.round(_PEAK_OI_LOTS * shape * (1.0 + drift * frac))
            vol_lots = np.floor(_PEAK_VOLUME_LOTS * np.exp(-0.5 * z * z) * frac)
            out[kind] = (oi_lots * u.lot_size, vol_lots * u.lot_size)
        return out

    def _spot_at(self, underlying: str, at_ns: int) -> tuple[float, int, float, date]:
        """(last price, its time, the day's open, the session day) of the underlying."""
        day = ist_date(at_ns)
        sessions = self.calendar.previous_sessions(day, 5)
        for session in reversed(sessions):
            ticks = self.market.day_ticks(underlying, session)
            i = int(np.searchsorted(ticks.ts_ns, at_ns, side="right"))
            if i > 0:
                return (
                    float(ticks.price[i - 1]),
                    int(ticks.ts_ns[i - 1]),
                    float(ticks.price[0]),
                    session,
                )
        raise InvalidInputError(f"no trade of {underlying} in the sessions before {day}")

    def chain(self, underlying: str, expiry: date, at: datetime) -> OptionChain:
        """The chain of ``underlying`` for ``expiry`` as of ``at``.

        Raises:
            InvalidInputError: no options on that underlying, or that expiry is not listed.
        """
        u = self._underlying(underlying)
        at_ns = dt_to_ns(at)
        spot, tick_ns, day_open, day = self._spot_at(underlying, at_ns)
        listed = dict(self.expiries(underlying, day))
        if expiry not in listed:
            raise InvalidInputError(f"{underlying}: no expiry {expiry} listed on {day}")
        strikes = self.strikes(underlying, day)
        n = len(strikes)
        start_ns, end_ns = self.calendar.session_bounds_ns(day)
        frac = min(max((tick_ns - start_ns) / (end_ns - start_ns), 0.0), 1.0)
        oi_volume = self._oi_volume(u, day, expiry, strikes, day_open, frac)
        sides: dict[OptionType, OptionSide] = {}
        kinds: tuple[OptionType, OptionType] = ("CE", "PE")
        for kind in kinds:
            premium, _, z = self._price(
                u,
                day_open,
                np.full(n, spot),
                np.full(n, tick_ns, dtype=np.int64),
                expiry,
                strikes,
                np.full(n, kind == "CE"),
            )
            bid, ask = self._quote_sides(premium, z)
            oi, volume = oi_volume[kind]
            monthly = listed[expiry]
            symbols = tuple(
                f"NFO:{tradingsymbol(u.name, expiry, k, kind, monthly)}" for k in strikes.tolist()
            )
            sides[kind] = OptionSide(symbols, bid, ask, premium, oi, volume)
        return OptionChain(
            underlying=underlying,
            expiry=expiry,
            ts=ns_to_dt(at_ns),
            spot=spot,
            strike=strikes,
            ce=sides["CE"],
            pe=sides["PE"],
            lot_size=u.lot_size,
            tick_size=self.spec.tick_size,
            freeze_qty=u.freeze_qty,
            rate=self.spec.rate,
        )

    def day_ticks(self, symbol: str, day: date) -> DayTicks:
        """The ticks of any symbol on ``day``: the market's for an underlying or index; for
        an option (``NFO:``), one tick at each trade of its underlying, at that trade's time,
        priced from it, one lot each (``cum_volume`` counts them).

        So a :class:`SimOptions` is a tick source for a :class:`SimFeed` that streams
        underlyings and options together.

        Raises:
            InvalidInputError: an option not listed on ``day``.
        """
        if not symbol.startswith("NFO:"):
            return self.market.day_ticks(symbol, day)
        c = self.contract(symbol, day)
        base = self.market.day_ticks(c.underlying.symbol, day)
        n = len(base)
        premium, _, _ = self._price(
            c.underlying,
            float(base.price[0]) if n else 1.0,
            np.asarray(base.price, dtype=np.float64),
            np.asarray(base.ts_ns, dtype=np.int64),
            c.expiry,
            np.full(n, c.strike),
            np.full(n, c.option_type == "CE"),
        )
        qty = np.full(n, float(c.underlying.lot_size))
        arrays: dict[str, Any] = {
            "ts_ns": np.array(base.ts_ns, copy=True),
            "price": premium,
            "qty": qty,
            "cum_volume": np.cumsum(qty),
        }
        for arr in arrays.values():
            arr.setflags(write=False)
        return DayTicks(symbol=symbol, day=day, **arrays)
