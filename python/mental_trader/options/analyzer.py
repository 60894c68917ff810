"""Chain analytics and strike ranking: what the options layer reads before it picks a contract.

:func:`analyze` turns one :class:`~mental_trader.options.chain.OptionChain` (and, optionally,
the day's :class:`Baseline`) into :class:`ChainAnalytics`:

* per strike and side (row-aligned with the strikes): OI, its change since the baseline, its
  percentile within the side, volume, bid/ask spread in %, distance from ATM, implied
  volatility and delta, and the buildup class;
* per chain: the synthetic forward, the ATM strike and straddle, PCR (OI and volume) and max
  pain.

It is whole-array numpy; the option math is two batch calls to the Rust core with both sides
at once. The only Python loop is the baseline lookup by symbol (a dict per contract).

:func:`rank_strikes` filters one side (IV solved, ``|delta|`` in a band, OI percentile, spread)
and orders the survivors by a weighted score whose every component is in [0, 1];
each :class:`RankedStrike` carries the breakdown of its score. :func:`explain` lists the
contracts that were filtered out and why, so a log or the API can say why nothing qualified.

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
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, NamedTuple, get_args

import numpy as np
from numpy.typing import NDArray

from mental_trader.core import black76, implied_vol_black76
from mental_trader.errors import InvalidInputError
from mental_trader.models import require_aware
from mental_trader.options.chain import OptionChain, OptionSide, OptionType

if TYPE_CHECKING:
    from mental_trader.config import Settings

__all__ = [
    "Baseline",
    "BuildupClass",
    "ChainAnalytics",
    "RankedStrike",
    "RankingParams",
    "RejectReason",
    "Rejection",
    "ScoreComponent",
    "SideAnalytics",
    "analyze",
    "explain",
    "rank_strikes",
]

FloatArray = NDArray[np.float64]

BuildupClass = Literal["long_buildup", "short_covering", "short_buildup", "long_unwinding", ""]
"""Price and OI change since the baseline: up/up, up/down, down/up, down/down; ``""``
when either is unknown or unchanged."""

RejectReason = Literal[
    "iv_unsolved", "delta_out_of_band", "oi_percentile_low", "no_two_sided_quote", "spread_too_wide"
]
"""Why :func:`rank_strikes` left a contract out (see :func:`explain`)."""

ScoreComponent = Literal["oi", "spread", "delta", "volume", "oi_change"]
"""The parts of a strike's score, each normalised to [0, 1] (see :class:`RankingParams`)."""

_OPTION_TYPES: tuple[str, ...] = get_args(OptionType)
_NAN_PAIR = (math.nan, math.nan)
_BUILDUP_LABELS = np.array(
    ["", "long_buildup", "short_covering", "short_buildup", "long_unwinding"]
)


def _check_option_type(option_type: str) -> OptionType:
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
        return self.ce if _check_option_type(option_type) == "CE" else self.pe


def _percentile(values: FloatArray, valid: NDArray[np.bool_]) -> FloatArray:
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
            oi_percentile=_percentile(oi, has & np.isfinite(oi)),
            volume=volume,
            volume_percentile=_percentile(volume, has & np.isfinite(volume)),
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


# -- ranking ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RankingParams:
    """Filters and weights of :func:`rank_strikes`.

    Filters: the IV must be solved, ``delta_min <= |delta| <= delta_max``, the OI
    percentile ``>= min_oi_percentile`` and the spread ``<= max_spread_pct`` (with a
    two-sided quote). Weights are relative (divided by their sum, so the score is in
    [0, 1]); each component is first normalised to [0, 1]:

    * ``oi``: OI percentile / 100; ``volume``: volume percentile / 100;
    * ``spread``: ``1 - spread_pct / max_spread_pct``;
    * ``delta``: 1 at ``target_delta``, falling linearly to 0 at the farther band edge;
    * ``oi_change``: the percentile of the OI change within the side / 100 (0 when unknown).

    Raises:
        InvalidInputError: a value out of range: percentile outside 0-100, spread not > 0,
            not ``0 <= delta_min <= target_delta <= delta_max <= 1`` with
            ``delta_min < delta_max``, a weight negative or not finite, all weights 0.
    """

    min_oi_percentile: float = 50.0
    max_spread_pct: float = 5.0
    delta_min: float = 0.35
    delta_max: float = 0.65
    target_delta: float = 0.5
    weight_oi: float = 0.3
    weight_spread: float = 0.25
    weight_delta: float = 0.25
    weight_volume: float = 0.2
    weight_oi_change: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RankingParams:
        """The OPTIONS_MIN_OI_PERCENTILE, OPTIONS_MAX_SPREAD_PCT, OPTIONS_DELTA_MIN/MAX and
        OPTIONS_WEIGHT_* settings (the target delta stays 0.5).

        Raises:
            InvalidInputError: an inconsistent combination (e.g. DELTA_MIN above 0.5).
        """
        return cls(
            min_oi_percentile=settings.options_min_oi_percentile,
            max_spread_pct=settings.options_max_spread_pct,
            delta_min=settings.options_delta_min,
            delta_max=settings.options_delta_max,
            weight_oi=settings.options_weight_oi,
            weight_spread=settings.options_weight_spread,
            weight_delta=settings.options_weight_delta,
            weight_volume=settings.options_weight_volume,
            weight_oi_change=settings.options_weight_oi_change,
        )

    def __post_init__(self) -> None:
        if not 0 <= self.min_oi_percentile <= 100:
            raise InvalidInputError(
                f"min_oi_percentile must be 0-100, got {self.min_oi_percentile}"
            )
        if not (math.isfinite(self.max_spread_pct) and self.max_spread_pct > 0):
            raise InvalidInputError(f"max_spread_pct must be > 0, got {self.max_spread_pct}")
        lo, target, hi = self.delta_min, self.target_delta, self.delta_max
        if not (0 <= lo <= target <= hi <= 1 and lo < hi):
            raise InvalidInputError(
                f"need 0 <= delta_min <= target_delta <= delta_max <= 1 and delta_min <"
                f" delta_max, got {lo}, {target}, {hi}"
            )
        weights = self.weights_raw()
        for name, w in weights.items():
            if not (math.isfinite(w) and w >= 0):
                raise InvalidInputError(f"weight_{name} must be finite and >= 0, got {w}")
        if sum(weights.values()) <= 0:
            raise InvalidInputError("at least one ranking weight must be > 0")

    def weights_raw(self) -> dict[ScoreComponent, float]:
        """The weights as given, by component."""
        return {
            "oi": self.weight_oi,
            "spread": self.weight_spread,
            "delta": self.weight_delta,
            "volume": self.weight_volume,
            "oi_change": self.weight_oi_change,
        }

    def weights(self) -> dict[ScoreComponent, float]:
        """The non-zero weights divided by their sum (they add up to 1)."""
        raw = self.weights_raw()
        total = sum(raw.values())
        return {name: w / total for name, w in raw.items() if w > 0}


@dataclass(frozen=True, slots=True)
class RankedStrike:
    """A contract that passed the filters, with its score.

    Attributes:
        symbol, strike, option_type: the contract.
        premium: its mid (else last) price; iv, delta: at that premium.
        score: the weighted score in [0, 1]; higher is better.
        breakdown: component -> weighted contribution (only weighted components); the
            values add up to ``score``.
        oi, oi_percentile, volume, spread_pct, steps_from_atm: the inputs of the score.
    """

    symbol: str
    strike: float
    option_type: OptionType
    premium: float
    iv: float
    delta: float
    score: float
    breakdown: dict[str, float] = field(hash=False)
    oi: float
    oi_percentile: float
    volume: float
    spread_pct: float
    steps_from_atm: int


@dataclass(frozen=True, slots=True)
class Rejection:
    """A contract :func:`rank_strikes` left out, with every filter it failed.

    Attributes:
        symbol, strike, option_type: the contract.
        reasons: the failed filters (:data:`RejectReason`), in filter order; a delta band
            failure is only reported where the IV was solved.
        iv, delta, oi_percentile, spread_pct: the values the filters saw (NaN: unknown).
    """

    symbol: str
    strike: float
    option_type: OptionType
    reasons: tuple[RejectReason, ...]
    iv: float
    delta: float
    oi_percentile: float
    spread_pct: float


class _Screen(NamedTuple):
    side: SideAnalytics
    passed: NDArray[np.bool_]
    reasons: list[tuple[RejectReason, NDArray[np.bool_]]]


def _screen(analytics: ChainAnalytics, option_type: str, params: RankingParams) -> _Screen:
    if not isinstance(params, RankingParams):
        raise InvalidInputError(f"params must be RankingParams, got {type(params).__name__}")
    side = analytics.side(_check_option_type(option_type))
    has = side.has_contract
    solved = np.isfinite(side.iv)
    abs_delta = np.abs(side.delta)
    spread = side.spread_pct
    # NaN comparisons are False, so every "ok" mask below is False where a value is unknown
    in_band = (abs_delta >= params.delta_min) & (abs_delta <= params.delta_max)
    oi_ok = side.oi_percentile >= params.min_oi_percentile
    quoted = np.isfinite(spread)
    reasons: list[tuple[RejectReason, NDArray[np.bool_]]] = [
        ("iv_unsolved", has & ~solved),
        ("delta_out_of_band", has & solved & ~in_band),
        ("oi_percentile_low", has & ~oi_ok),
        ("no_two_sided_quote", has & ~quoted),
        ("spread_too_wide", has & quoted & ~(spread <= params.max_spread_pct)),
    ]
    passed = has & solved & in_band & oi_ok & (spread <= params.max_spread_pct)
    return _Screen(side, passed, reasons)


def _components(
    side: SideAnalytics, rows: NDArray[np.intp], params: RankingParams
) -> dict[ScoreComponent, FloatArray]:
    """Each weighted component of the rows, normalised to [0, 1]."""
    weights = params.weights()
    out: dict[ScoreComponent, FloatArray] = {}
    if "oi" in weights:
        out["oi"] = side.oi_percentile[rows] / 100.0
    if "spread" in weights:
        out["spread"] = 1.0 - side.spread_pct[rows] / params.max_spread_pct
    if "delta" in weights:
        half_width = max(
            params.target_delta - params.delta_min, params.delta_max - params.target_delta
        )
        off = np.abs(np.abs(side.delta[rows]) - params.target_delta)
        out["delta"] = 1.0 - off / half_width
    if "volume" in weights:
        out["volume"] = np.nan_to_num(side.volume_percentile[rows]) / 100.0
    if "oi_change" in weights:
        change = side.oi_change
        pct = _percentile(change, side.has_contract & np.isfinite(change))
        out["oi_change"] = np.nan_to_num(pct[rows]) / 100.0
    return {name: np.clip(v, 0.0, 1.0) for name, v in out.items()}


def rank_strikes(
    analytics: ChainAnalytics,
    option_type: OptionType,
    params: RankingParams | None = None,
    *,
    top: int | None = None,
) -> list[RankedStrike]:
    """The contracts of one side that pass the filters, best first.

    Ordered by score (descending), then nearness to ATM (fewer strike steps), then lower
    spread, then lower strike. :func:`explain` gives the contracts left out.

    Args:
        analytics: from :func:`analyze`.
        option_type: ``"CE"`` or ``"PE"``.
        params: filters and weights (default :class:`RankingParams`).
        top: return at most this many (None: all).

    Raises:
        InvalidInputError: unknown option type, ``params`` not RankingParams, ``top < 0``.
    """
    params = RankingParams() if params is None else params
    if top is not None and top < 0:
        raise InvalidInputError(f"top must be >= 0, got {top}")
    side, passed, _ = _screen(analytics, option_type, params)
    rows = np.flatnonzero(passed)
    if len(rows) == 0:
        return []
    weights = params.weights()
    parts = {name: weights[name] * comp for name, comp in _components(side, rows, params).items()}
    score = np.zeros(len(rows))
    for contribution in parts.values():
        score = score + contribution
    steps = analytics.steps_from_atm[rows]
    # rounding the score keeps last-bit noise from beating the tie-breakers
    order = np.lexsort((rows, side.spread_pct[rows], np.abs(steps), -np.round(score, 12)))
    if top is not None:
        order = order[:top]
    strike = analytics.strike
    ranked = []
    for j in order.tolist():
        i = int(rows[j])
        breakdown: dict[str, float] = {name: float(v[j]) for name, v in parts.items()}
        ranked.append(
            RankedStrike(
                symbol=side.symbols[i],
                strike=float(strike[i]),
                option_type=side.option_type,
                premium=float(side.premium[i]),
                iv=float(side.iv[i]),
                delta=float(side.delta[i]),
                score=sum(breakdown.values()),
                breakdown=breakdown,
                oi=float(side.oi[i]),
                oi_percentile=float(side.oi_percentile[i]),
                volume=float(side.volume[i]),
                spread_pct=float(side.spread_pct[i]),
                steps_from_atm=int(steps[j]),
            )
        )
    return ranked


def explain(
    analytics: ChainAnalytics, option_type: OptionType, params: RankingParams | None = None
) -> list[Rejection]:
    """The contracts of one side that :func:`rank_strikes` leaves out, by ascending strike.

    Rows without a contract are not listed. An empty list with no ranked strikes means the
    side has no contracts.

    Raises:
        InvalidInputError: unknown option type or ``params`` not RankingParams.
    """
    params = RankingParams() if params is None else params
    side, passed, reasons = _screen(analytics, option_type, params)
    # plain lists: indexing them per row is far cheaper than indexing numpy arrays
    masks = [(name, mask.tolist()) for name, mask in reasons]
    strike, iv, delta = analytics.strike.tolist(), side.iv.tolist(), side.delta.tolist()
    oi_pct, spread = side.oi_percentile.tolist(), side.spread_pct.tolist()
    return [
        Rejection(
            symbol=side.symbols[i],
            strike=strike[i],
            option_type=side.option_type,
            reasons=tuple(name for name, mask in masks if mask[i]),
            iv=iv[i],
            delta=delta[i],
            oi_percentile=oi_pct[i],
            spread_pct=spread[i],
        )
        for i in np.flatnonzero(side.has_contract & ~passed).tolist()
    ]
