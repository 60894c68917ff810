"""Strike ranking: filters, then a weighted score with its breakdown.

:func:`rank_strikes` filters one side of a :class:`~mental_trader.options.analyzer.ChainAnalytics`
(IV solved, ``|delta|`` in a band, OI percentile, spread) and orders the survivors by a
weighted score whose every component is in [0, 1]; each :class:`RankedStrike` carries the
breakdown of its score. :func:`explain` lists the contracts that were filtered out and why,
so a log or the API can say why nothing qualified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from mental_trader.errors import InvalidInputError
from mental_trader.options.analyzer import (
    ChainAnalytics,
    FloatArray,
    SideAnalytics,
    check_option_type,
    percentile,
)
from mental_trader.options.chain import OptionType

if TYPE_CHECKING:
    from mental_trader.config import Settings

__all__ = [
    "RankedStrike",
    "RankingParams",
    "RejectReason",
    "Rejection",
    "ScoreComponent",
    "explain",
    "rank_strikes",
]

RejectReason = Literal[
    "iv_unsolved", "delta_out_of_band", "oi_percentile_low", "no_two_sided_quote", "spread_too_wide"
]
"""Why :func:`rank_strikes` left a contract out (see :func:`explain`)."""

ScoreComponent = Literal["oi", "spread", "delta", "volume", "oi_change"]
"""The parts of a strike's score, each normalised to [0, 1] (see :class:`RankingParams`)."""


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
    side = analytics.side(check_option_type(option_type))
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
        pct = percentile(change, side.has_contract & np.isfinite(change))
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
