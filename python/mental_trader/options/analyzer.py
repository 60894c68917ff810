"""Chain analytics: what the options layer reads before it picks a contract (the ranking
that picks it is :mod:`mental_trader.options.ranking`).

:func:`analyze` turns one :class:`~mental_trader.options.chain.OptionChain` (and, optionally,
the day's :class:`Baseline`) into :class:`ChainAnalytics`:

* per strike and side (row-aligned with the strikes): OI, its change since the baseline, its
  percentile within the side, volume, bid/ask spread in %, distance from ATM, implied
  volatility and delta, and the buildup class;
* per chain: the synthetic forward, the ATM strike and straddle, PCR (OI and volume) and max
  pain.

It is whole-array numpy; the option math is two batch calls to the Rust core with both sides
at once. The only Python loop is the baseline lookup by symbol (a dict per contract).

Conventions:
    * The premium of a contract is :meth:`OptionSide.mid` (the mid where both quotes exist,
      else the last trade); NaN where neither exists or the strike has no contract.
    * The forward comes from put-call parity at the ATM row (the strike nearest the spot):
      ``F = K_atm + (C - P) * exp(r T)``, exact for Black-76's discounted prices (the
      issue's ``K + C - P`` when ``r T`` is small). Without both ATM premiums it is the spot.
    * An implied volatility that cannot be solved is NaN, never a wrong number, and so is
      its delta. Delta is Black-76's, with respect to the forward (calls > 0, puts < 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from mental_trader.core import black76, implied_vol_black76
from mental_trader.errors import InvalidInputError
from mental_trader.models import require_aware
from mental_trader.options.chain import OptionChain, OptionSide, OptionType

if TYPE_CHECKING:
    pass

__all__ = [
    "Baseline",
    "BuildupClass",
    "ChainAnalytics",
    "FloatArray",
    "SideAnalytics",
    "analyze",
    "check_option_type",
    "percentile",
]

FloatArray = NDArray[np.float64]

BuildupClass = Literal["long_buildup", "short_covering", "short_buildup", "long_unwinding", ""]
"""Price and OI change since the baseline: up/up, up/down, down/up, down/down; ``""``
when either is unknown or unchanged."""

_OPTION_TYPES: tuple[str, ...] = get_args(OptionType)
_NAN_PAIR = (math.nan, math.nan)
_BUILDUP_LABELS = np.array(
    ["", "long_buildup", "short_covering", "short_buildup", "long_unwinding"]
)


def check_option_type(option_type: str) -> OptionType:
    """``option_type`` as an :data:`OptionType`.

    Raises:
        InvalidInputError: not ``"CE"`` or ``"PE"``.
    """
    if option_type == "CE":
        return "CE"
    if option_type == "PE":
        return "PE"
    raise InvalidInputError(f"option type must be one of {_OPTION_TYPES}, got {option_type!r}")


# -- baseline -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Baseline:
    """The reference snapshot OI change and buildup are measured against (one per day).

    Which moment is the reference (the previous close, the day's first chain) is the
    caller's choice; :meth:`of` snapshots a chain.

    Attributes:
        ts: when the snapshot was taken (aware).
        entries: contract symbol -> ``(oi, price)``; price NaN when the contract had no
            quote. Copied into a read-only mapping of floats.

    Raises:
        InvalidInputError: naive ``ts``, or an entry that is not ``(oi, price)`` with a finite
            OI >= 0 and a price that is NaN or finite and >= 0.
    """

    ts: datetime
    entries: Mapping[str, tuple[float, float]]

    def __post_init__(self) -> None:
        require_aware(self.ts, "Baseline.ts")
        clean: dict[str, tuple[float, float]] = {}
        for symbol, value in self.entries.items():
            try:
                oi, price = (float(v) for v in value)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"baseline {symbol!r}: expected (oi, price)") from exc
            if not (math.isfinite(oi) and oi >= 0) or price < 0 or math.isinf(price):
                raise InvalidInputError(f"baseline {symbol!r}: bad oi {oi} or price {price}")
            clean[str(symbol)] = (oi, price)
        object.__setattr__(self, "entries", MappingProxyType(clean))

    @classmethod
    def of(cls, chain: OptionChain) -> Baseline:
        """Snapshot every contract of a chain: its OI and premium (mid, else last)."""
        entries: dict[str, tuple[float, float]] = {}
        for side in (chain.ce, chain.pe):
            oi, price = side.oi.tolist(), side.mid().tolist()
            for i, symbol in enumerate(side.symbols):
                if symbol:
                    entries[symbol] = (oi[i], price[i])
        return cls(chain.ts, entries)

    def __len__(self) -> int:
        return len(self.entries)


# -- analytics ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class SideAnalytics:
    """Per-strike analytics of one side, row-aligned with :attr:`ChainAnalytics.strike`.

    Every float column is NaN on rows without a contract (``has_contract`` False).

    Attributes:
        option_type: ``"CE"`` or ``"PE"``.
        symbols: contract symbols (``""``: no contract at that strike).
        has_contract: bool mask of rows with a contract.
        premium: mid, else last trade (NaN: no price).
        oi: open interest (units).
        oi_change: OI minus the baseline's (NaN: no baseline entry).
        oi_percentile: 0-100 rank of OI among this side's contracts; ties share the mean of
            their ranks (lowest 0, highest 100, all equal or a single contract 50).
        volume: the day's volume (units); volume_percentile: its rank, as ``oi_percentile``.
        spread_pct: ``(ask - bid) / mid * 100`` (NaN without a two-sided quote).
        iv: implied volatility of the premium (NaN: not solvable).
        delta: Black-76 delta at ``iv`` (NaN where ``iv`` is).
        price_change: premium minus the baseline's (NaN: unknown).
        buildup: :data:`BuildupClass` per row; a price move under half a tick is no move.
    """

    option_type: OptionType
    symbols: tuple[str, ...]
    has_contract: NDArray[np.bool_]
    premium: FloatArray
    oi: FloatArray
    oi_change: FloatArray
    oi_percentile: FloatArray
    volume: FloatArray
    volume_percentile: FloatArray
    spread_pct: FloatArray
    iv: FloatArray
    delta: FloatArray
    price_change: FloatArray
    buildup: NDArray[np.str_]


@dataclass(frozen=True, slots=True, eq=False)
class ChainAnalytics:
    """The analytics of one chain (see :func:`analyze`).

    Attributes:
        underlying, expiry, ts: those of the chain.
        years, rate: the Black-76 inputs used (calendar years to expiry, annual rate).
        strike: strikes, ascending.
        forward: the synthetic forward; forward_source: ``"parity"`` or ``"spot"`` (the
            fallback when an ATM premium is missing).
        atm_index, atm_strike: the row and strike nearest the spot.
        atm_straddle: CE + PE premium at the ATM strike (NaN: one is missing).
        steps_from_atm: signed row distance from the ATM row (int64).
        distance_pct: ``(strike - forward) / forward * 100``.
        pcr_oi, pcr_volume: total PE over total CE OI / volume (NaN: CE total 0).
        max_pain: the strike minimising the total intrinsic payout to holders at expiry
            (the lowest such strike on a tie; NaN without any OI).
        ce, pe: the per-strike analytics of each side.
    """

    underlying: str
    expiry: date
    ts: datetime
    years: float
    rate: float
    strike: FloatArray
    forward: float
    forward_source: Literal["parity", "spot"]
    atm_index: int
    atm_strike: float
    atm_straddle: float
    steps_from_atm: NDArray[np.int64]
    distance_pct: FloatArray
    pcr_oi: float
    pcr_volume: float
    max_pain: float
    ce: SideAnalytics
    pe: SideAnalytics

    def side(self, option_type: OptionType) -> SideAnalytics:
        """The CE or PE side.

        Raises:
            InvalidInputError: an option type other than ``"CE"`` / ``"PE"``.
        """
        return self.ce if check_option_type(option_type) == "CE" else self.pe


def percentile(values: FloatArray, valid: NDArray[np.bool_]) -> FloatArray:
    """0-100 mean-rank percentile of ``values[valid]``; NaN elsewhere."""
    out = np.full(len(values), np.nan)
    v = values[valid]
    m = len(v)
    if m == 1:
        out[valid] = 50.0
    elif m > 1:
        s = np.sort(v)
        # lo + hi - 1 is twice the mean 0-based rank of a value's ties
        lo = np.searchsorted(s, v, "left")
        hi = np.searchsorted(s, v, "right")
        out[valid] = (lo + hi - 1) * (50.0 / (m - 1))
    return out


def _spread_pct(side: OptionSide, has: NDArray[np.bool_]) -> FloatArray:
    both = has & (side.bid > 0) & (side.ask >= side.bid)
    # `where=` keeps rows without a two-sided quote from dividing (no 0/0 warning)
    out: FloatArray = np.divide(
        200.0 * (side.ask - side.bid),
        side.ask + side.bid,
        out=np.full(len(both), np.nan),
        where=both,
    )
    return out


def _baseline_columns(
    symbols: tuple[str, ...], baseline: Baseline | None
) -> tuple[FloatArray, FloatArray]:
    n = len(symbols)
    if baseline is None:
        nan = np.full(n, np.nan)
        return nan, nan
    get = baseline.entries.get
    pairs = np.array([get(s, _NAN_PAIR) for s in symbols], dtype=np.float64).reshape(n, 2)
    return pairs[:, 0], pairs[:, 1]


def _buildup(price_change: FloatArray, oi_change: FloatArray, tick: float) -> NDArray[np.str_]:
    up, down = price_change >= 0.5 * tick, price_change <= -0.5 * tick
    more, less = oi_change > 0, oi_change < 0
    # NaN compares False everywhere, so unknown rows get code 0, i.e. ""
    code = (up & more) * 1 + (up & less) * 2 + (down & more) * 3 + (down & less) * 4
    labels: NDArray[np.str_] = _BUILDUP_LABELS[code]
    return labels


def _max_pain(strike: FloatArray, ce_oi: FloatArray, pe_oi: FloatArray) -> float:
    """Strike minimising sum_K CE_OI(K) max(S-K, 0) + PE_OI(K) max(K-S, 0), in O(n)."""
    if not (ce_oi.sum() + pe_oi.sum()) > 0:
        return math.nan
    # Calls at K <= S pay S*sum(oi) - sum(oi*K); puts at K > S pay sum(oi*K) - S*sum(oi).
    cum_c, cum_ck = np.cumsum(ce_oi), np.cumsum(ce_oi * strike)
    cum_p, cum_pk = np.cumsum(pe_oi), np.cumsum(pe_oi * strike)
    pain = strike * cum_c - cum_ck + (cum_pk[-1] - cum_pk) - strike * (cum_p[-1] - cum_p)
    # the cumulative sums round, so exact ties may differ in the last bits: take the lowest
    best = float(pain.min())
    tol = 1e-12 * float(np.abs(pain).max())
    return float(strike[int(np.argmax(pain <= best + tol))])


def _pcr(pe_total: float, ce_total: float) -> float:
    return pe_total / ce_total if ce_total > 0 else math.nan


def analyze(chain: OptionChain, baseline: Baseline | None = None) -> ChainAnalytics:
    """Per-strike and chain analytics of one chain (see the module docstring).

    Args:
        chain: the chain.
        baseline: the day's reference snapshot; without it (or without an entry for a
            contract) OI change and price change are NaN and the buildup class is ``""``.

    Raises:
        InvalidInputError: not an :class:`OptionChain` / :class:`Baseline`, or a non-finite
            rate.
    """
    if not isinstance(chain, OptionChain):
        raise InvalidInputError(f"analyze needs an OptionChain, got {type(chain).__name__}")
    if baseline is not None and not isinstance(baseline, Baseline):
        raise InvalidInputError(f"baseline must be a Baseline, got {type(baseline).__name__}")
    rate = float(chain.rate)
    if not math.isfinite(rate):
        raise InvalidInputError(f"option chain: bad rate {chain.rate}")
    strike = chain.strike
    n = len(strike)
    years = chain.years
    atm = chain.atm_index()

    has_ce = np.fromiter(map(bool, chain.ce.symbols), dtype=np.bool_, count=n)
    has_pe = np.fromiter(map(bool, chain.pe.symbols), dtype=np.bool_, count=n)
    ce_prem = np.where(has_ce, chain.ce.mid(), np.nan)
    pe_prem = np.where(has_pe, chain.pe.mid(), np.nan)

    c, p = float(ce_prem[atm]), float(pe_prem[atm])
    forward = float(strike[atm]) + (c - p) * math.exp(rate * years)
    source: Literal["parity", "spot"] = "parity"
    if not (math.isfinite(forward) and forward > 0):
        forward, source = float(chain.spot), "spot"

    # both sides in one call each: rows 0..n-1 are the calls, n..2n-1 the puts
    k2 = np.concatenate((strike, strike))
    f2 = np.full(2 * n, forward)
    t2 = np.full(2 * n, years)
    r2 = np.full(2 * n, rate)
    is_call = np.arange(2 * n) < n
    iv = implied_vol_black76(np.concatenate((ce_prem, pe_prem)), f2, k2, t2, r2, is_call)
    delta = black76(f2, k2, t2, r2, iv, is_call)["delta"]

    def side_analytics(
        option_type: OptionType,
        side: OptionSide,
        has: NDArray[np.bool_],
        premium: FloatArray,
        rows: slice,
    ) -> SideAnalytics:
        oi = np.where(has, side.oi, np.nan)
        volume = np.where(has, side.volume, np.nan)
        base_oi, base_price = _baseline_columns(side.symbols, baseline)
        oi_change = oi - base_oi
        price_change = premium - base_price
        return SideAnalytics(
            option_type=option_type,
            symbols=side.symbols,
            has_contract=has,
            premium=premium,
            oi=oi,
            oi_change=oi_change,
            oi_percentile=percentile(oi, has & np.isfinite(oi)),
            volume=volume,
            volume_percentile=percentile(volume, has & np.isfinite(volume)),
            spread_pct=_spread_pct(side, has),
            iv=iv[rows],
            delta=delta[rows],
            price_change=price_change,
            buildup=_buildup(price_change, oi_change, chain.tick_size),
        )

    ce = side_analytics("CE", chain.ce, has_ce, ce_prem, slice(0, n))
    pe = side_analytics("PE", chain.pe, has_pe, pe_prem, slice(n, 2 * n))
    # OI and volume count only where a contract exists and the number is known
    ce_oi = np.where(has_ce & np.isfinite(chain.ce.oi), chain.ce.oi, 0.0)
    pe_oi = np.where(has_pe & np.isfinite(chain.pe.oi), chain.pe.oi, 0.0)
    return ChainAnalytics(
        underlying=chain.underlying,
        expiry=chain.expiry,
        ts=chain.ts,
        years=years,
        rate=rate,
        strike=strike,
        forward=forward,
        forward_source=source,
        atm_index=atm,
        atm_strike=float(strike[atm]),
        atm_straddle=c + p,
        steps_from_atm=np.arange(n, dtype=np.int64) - atm,
        distance_pct=(strike - forward) * (100.0 / forward),
        pcr_oi=_pcr(float(pe_oi.sum()), float(ce_oi.sum())),
        pcr_volume=_pcr(float(np.nansum(pe.volume)), float(np.nansum(ce.volume))),
        max_pain=_max_pain(strike, ce_oi, pe_oi),
        ce=ce,
        pe=pe,
    )
