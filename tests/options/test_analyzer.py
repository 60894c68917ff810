"""Chain analytics and strike ranking on hand-built chains whose right answers are known.

Prices come from :func:`mental_trader.core.black76` with a known forward and smile, so the
parity forward, the implied volatilities and the deltas have exact targets; OI, volumes
and quotes are chosen so percentiles, PCR, max pain, buildup and the ranking can be worked
out by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime

import numpy as np
import pytest
from numpy.typing import NDArray

from mental_trader.calendar import IST
from mental_trader.core import black76
from mental_trader.errors import InvalidInputError
from mental_trader.options.analyzer import Baseline, ChainAnalytics, analyze
from mental_trader.options.chain import OptionChain, OptionSide, years_to_expiry
from mental_trader.options.ranking import RankingParams, explain, rank_strikes

FloatArray = NDArray[np.float64]

TS = datetime(2026, 11, 24, 10, 0, tzinfo=IST)
EXPIRY = date(2026, 12, 1)
YEARS = years_to_expiry(TS, EXPIRY)
RATE = 0.065
FORWARD = 24_013.7
GRID = [23_500.0 + 50.0 * i for i in range(21)]  # 23,500 .. 24,500; 24,000 is row 10


def _f(values: Sequence[float] | FloatArray) -> FloatArray:
    return np.array(values, dtype=np.float64)


def _sym(kind: str, strike: float) -> str:
    return f"NFO:NIFTY{strike:g}{kind}"


def _side(
    kind: str,
    strikes: Sequence[float],
    *,
    bid: Sequence[float] | FloatArray,
    ask: Sequence[float] | FloatArray,
    last: Sequence[float] | FloatArray | None = None,
    oi: Sequence[float] | FloatArray | None = None,
    volume: Sequence[float] | FloatArray | None = None,
    missing: Sequence[int] = (),
) -> OptionSide:
    n = len(strikes)
    return OptionSide(
        symbols=tuple("" if i in missing else _sym(kind, k) for i, k in enumerate(strikes)),
        bid=_f(bid),
        ask=_f(ask),
        last=np.full(n, np.nan) if last is None else _f(last),
        oi=np.zeros(n) if oi is None else _f(oi),
        volume=np.zeros(n) if volume is None else _f(volume),
    )


def _chain(
    strikes: Sequence[float], ce: OptionSide, pe: OptionSide, *, spot: float, rate: float = RATE
) -> OptionChain:
    return OptionChain(
        underlying="NSE:NIFTY 50",
        expiry=EXPIRY,
        ts=TS,
        spot=spot,
        strike=_f(strikes),
        ce=ce,
        pe=pe,
        lot_size=75,
        tick_size=0.05,
        rate=rate,
    )


def _smile(strikes: Sequence[float], forward: float = FORWARD) -> FloatArray:
    return 0.13 + 0.6 * np.log(_f(strikes) / forward) ** 2


def _b76(
    strikes: Sequence[float], sigma: FloatArray, *, call: bool, forward: float, rate: float
) -> dict[str, FloatArray]:
    n = len(strikes)
    return black76(
        np.full(n, forward),
        _f(strikes),
        np.full(n, YEARS),
        np.full(n, rate),
        sigma,
        np.full(n, call),
    )


def _priced_side(
    kind: str,
    strikes: Sequence[float],
    *,
    forward: float,
    rate: float,
    spread_pct: float | Sequence[float],
    oi: Sequence[float] | None,
    volume: Sequence[float] | None,
    no_quote: Sequence[int],
    no_price: Sequence[int],
) -> OptionSide:
    """A side priced by Black-76 on the smile; bid/ask straddle the price by ``spread_pct``.

    ``no_quote`` rows keep only a last trade (at the model price); ``no_price`` rows have
    neither quotes nor a trade.
    """
    price = _b76(strikes, _smile(strikes, forward), call=kind == "CE", forward=forward, rate=rate)
    p = price["price"]
    half = np.broadcast_to(_f(np.atleast_1d(spread_pct)), p.shape) / 200.0
    bid, ask, last = p * (1 - half), p * (1 + half), p.copy()
    bid[list(no_quote) + list(no_price)] = np.nan
    ask[list(no_quote) + list(no_price)] = np.nan
    last[list(no_price)] = np.nan
    return _side(kind, strikes, bid=bid, ask=ask, last=last, oi=oi, volume=volume)


def _priced_chain(
    strikes: Sequence[float] = GRID,
    *,
    forward: float = FORWARD,
    rate: float = RATE,
    spot: float | None = None,
    ce_spread: float | Sequence[float] = 1.0,
    pe_spread: float | Sequence[float] = 1.0,
    ce_oi: Sequence[float] | None = None,
    pe_oi: Sequence[float] | None = None,
    ce_volume: Sequence[float] | None = None,
    pe_volume: Sequence[float] | None = None,
    ce_no_quote: Sequence[int] = (),
    ce_no_price: Sequence[int] = (),
    pe_no_quote: Sequence[int] = (),
    pe_no_price: Sequence[int] = (),
) -> OptionChain:
    ce = _priced_side(
        "CE",
        strikes,
        forward=forward,
        rate=rate,
        spread_pct=ce_spread,
        oi=ce_oi,
        volume=ce_volume,
        no_quote=ce_no_quote,
        no_price=ce_no_price,
    )
    pe = _priced_side(
        "PE",
        strikes,
        forward=forward,
        rate=rate,
        spread_pct=pe_spread,
        oi=pe_oi,
        volume=pe_volume,
        no_quote=pe_no_quote,
        no_price=pe_no_price,
    )
    return _chain(strikes, ce, pe, spot=forward - 10.0 if spot is None else spot, rate=rate)


def _row(strike: float, strikes: Sequence[float] = GRID) -> int:
    return list(strikes).index(strike)


# -- forward, IV, delta ---------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.065, 0.10])
def test_forward_from_parity_is_the_forward_of_the_prices(rate: float) -> None:
    an = analyze(_priced_chain(rate=rate))

    assert an.forward_source == "parity"
    assert an.forward == pytest.approx(FORWARD, rel=1e-12)
    assert an.atm_index == 10
    assert an.atm_strike == 24_000.0
    atm = [24_000.0]
    sigma = _smile(atm)
    straddle = (
        _b76(atm, sigma, call=True, forward=FORWARD, rate=rate)["price"][0]
        + _b76(atm, sigma, call=False, forward=FORWARD, rate=rate)["price"][0]
    )
    assert an.atm_straddle == pytest.approx(straddle, rel=1e-12)


def test_forward_without_carry_is_strike_plus_call_minus_put() -> None:
    strikes = [90.0, 100.0, 110.0]
    ce = _side("CE", strikes, bid=[12.0, 5.0, 1.0], ask=[12.2, 5.2, 1.2])
    pe = _side("PE", strikes, bid=[0.9, 3.9, 9.0], ask=[1.1, 4.1, 9.4])
    an = analyze(_chain(strikes, ce, pe, spot=99.0, rate=0.0))

    assert an.forward == pytest.approx(100.0 + 5.1 - 4.0, abs=1e-12)
    assert an.atm_straddle == pytest.approx(9.1, abs=1e-12)


def test_forward_falls_back_to_spot_without_an_atm_premium() -> None:
    an = analyze(_priced_chain(spot=24_003.0, pe_no_price=[10]))

    assert an.forward_source == "spot"
    assert an.forward == 24_003.0
    assert math.isnan(an.atm_straddle)


def test_iv_recovers_the_smile_on_both_sides() -> None:
    an = analyze(_priced_chain())
    sigma = _smile(GRID)

    np.testing.assert_allclose(an.ce.iv, sigma, rtol=1e-8)
    np.testing.assert_allclose(an.pe.iv, sigma, rtol=1e-8)


def test_delta_is_black76_at_the_solved_iv() -> None:
    an = analyze(_priced_chain())
    k = _f(GRID)
    n = len(k)
    args = (np.full(n, an.forward), k, np.full(n, an.years), np.full(n, RATE))

    for side, call in ((an.ce, True), (an.pe, False)):
        exact = black76(*args, side.iv, np.full(n, call))["delta"]
        np.testing.assert_allclose(side.delta, exact, rtol=1e-14)
        true = _b76(GRID, _smile(GRID), call=call, forward=FORWARD, rate=RATE)["delta"]
        np.testing.assert_allclose(side.delta, true, rtol=1e-7, atol=1e-9)
    assert np.all(an.ce.delta > 0)
    assert np.all(an.pe.delta < 0)


def test_distance_from_atm_in_steps_and_percent() -> None:
    an = analyze(_priced_chain())

    np.testing.assert_array_equal(an.steps_from_atm, np.arange(21) - 10)
    assert an.steps_from_atm.dtype == np.int64
    np.testing.assert_allclose(an.distance_pct, (_f(GRID) - an.forward) / an.forward * 100)
    assert an.distance_pct[10] == pytest.approx(-13.7 / FORWARD * 100, rel=1e-9)


# -- chain level: max pain, PCR -----------------------------------------------------------


def _oi_chain(
    ce_oi: Sequence[float], pe_oi: Sequence[float], ce_vol: Sequence[float], pe_vol: Sequence[float]
) -> OptionChain:
    strikes = [100.0, 110.0, 120.0, 130.0]
    nan = [math.nan] * 4
    ce = _side("CE", strikes, bid=nan, ask=nan, oi=ce_oi, volume=ce_vol)
    pe = _side("PE", strikes, bid=nan, ask=nan, oi=pe_oi, volume=pe_vol)
    return _chain(strikes, ce, pe, spot=115.0)


def test_max_pain_by_hand() -> None:
    ce_oi, pe_oi = [5.0, 10.0, 40.0, 20.0], [30.0, 25.0, 10.0, 8.0]
    an = analyze(_oi_chain(ce_oi, pe_oi, [0.0] * 4, [0.0] * 4))
    # payout at S=100: puts 25*10 + 10*20 + 8*30 = 690
    #           S=110: calls 5*10 = 50; puts 10*10 + 8*20 = 260 -> 310
    #           S=120: calls 5*20 + 10*10 = 200; puts 8*10 = 80 -> 280
    #           S=130: calls 5*30 + 10*20 + 40*10 = 750 -> 750
    assert an.max_pain == 120.0

    k = an.strike
    brute = [
        sum(
            c * max(s - kk, 0) + p * max(kk - s, 0)
            for kk, c, p in zip(k, ce_oi, pe_oi, strict=True)
        )
        for s in k
    ]
    assert brute == [690.0, 310.0, 280.0, 750.0]


def test_max_pain_tie_takes_the_lowest_strike_and_no_oi_is_nan() -> None:
    # S=110: calls 5*10 = 50; puts 10*10 + 5*20 = 200 -> 250; S=120: 5*20 + 10*10 + 5*10 = 250
    tie = analyze(_oi_chain([5, 10, 40, 20], [30, 25, 10, 5], [0] * 4, [0] * 4))
    assert tie.max_pain == 110.0

    empty = analyze(_oi_chain([0] * 4, [0] * 4, [0] * 4, [0] * 4))
    assert math.isnan(empty.max_pain)
    assert math.isnan(empty.pcr_oi)


def test_pcr_by_hand() -> None:
    an = analyze(
        _oi_chain([5, 10, 40, 20], [30, 25, 10, 8], [100, 200, 300, 400], [50, 150, 250, 50])
    )

    assert an.pcr_oi == pytest.approx(73 / 75, rel=1e-15)
    assert an.pcr_volume == pytest.approx(500 / 1000, rel=1e-15)


def test_pcr_ignores_rows_without_a_contract() -> None:
    strikes = [100.0, 110.0]
    nan = [math.nan] * 2
    ce = _side("CE", strikes, bid=nan, ask=nan, oi=[10, 999], volume=[5, 999], missing=[1])
    pe = _side("PE", strikes, bid=nan, ask=nan, oi=[20, 30], volume=[10, 20])
    an = analyze(_chain(strikes, ce, pe, spot=104.0))

    assert an.pcr_oi == 5.0
    assert an.pcr_volume == 6.0
    assert math.isnan(an.ce.oi[1])


# -- per strike: OI change and buildup, percentiles, spread ----------------------------------


def _buildup_chain() -> OptionChain:
    strikes = [100.0, 110.0, 120.0, 130.0, 140.0]
    ce_price = [12.0, 12.0, 8.0, 8.0, 5.0]
    pe_price = [10.02, 12.0, math.nan, 7.0, 6.0]
    return _chain(
        strikes,
        _side("CE", strikes, bid=ce_price, ask=ce_price, oi=[1500, 800, 1500, 800, 900]),
        _side("PE", strikes, bid=pe_price, ask=pe_price, oi=[1500, 1000, 1300, 700, 600]),
        spot=120.0,
    )


def test_oi_change_and_buildup_classes() -> None:
    chain = _buildup_chain()
    base = {_sym("CE", k): (1000.0, 10.0) for k in (100, 110, 120, 130)}  # CE 140: no entry
    base |= {_sym("PE", k): (1000.0, 10.0) for k in (100, 110, 120)}
    an = analyze(chain, Baseline(TS, base))

    np.testing.assert_array_equal(an.ce.oi_change, [500, -200, 500, -200, np.nan])
    np.testing.assert_allclose(an.ce.price_change, [2, 2, -2, -2, np.nan])
    assert an.ce.buildup.tolist() == [
        "long_buildup",
        "short_covering",
        "short_buildup",
        "long_unwinding",
        "",
    ]
    # PE: a 0.02 move is under half a tick (no move); OI unchanged; no price; no entries
    np.testing.assert_array_equal(an.pe.oi_change, [500, 0, 300, np.nan, np.nan])
    assert an.pe.buildup.tolist() == ["", "", "", "", ""]


def test_without_baseline_changes_are_unknown() -> None:
    an = analyze(_buildup_chain())

    assert np.isnan(an.ce.oi_change).all()
    assert np.isnan(an.pe.price_change).all()
    assert an.ce.buildup.tolist() == [""] * 5


def test_baseline_of_a_chain_snapshots_oi_and_premium() -> None:
    chain = _buildup_chain()
    base = Baseline.of(chain)

    assert base.ts == TS
    assert len(base) == 10
    assert base.entries[_sym("CE", 120)] == (1500.0, 8.0)
    oi, price = base.entries[_sym("PE", 120)]
    assert oi == 1300.0
    assert math.isnan(price)
    an = analyze(chain, base)
    np.testing.assert_array_equal(an.ce.oi_change, np.zeros(5))
    assert an.ce.buildup.tolist() == [""] * 5


def test_oi_percentile_mean_rank_within_the_side() -> None:
    strikes = [100.0, 110.0, 120.0, 130.0, 140.0, 150.0]
    nan = [math.nan] * 6
    ce = _side("CE", strikes, bid=nan, ask=nan, oi=[10, 50, 30, 30, 0, 99], missing=[5])
    pe = _side("PE", strikes, bid=nan, ask=nan, oi=[7] * 6, volume=[1, 2, 3, 4, 5, 6])
    an = analyze(_chain(strikes, ce, pe, spot=120.0))

    # sorted 0, 10, 30, 30, 50: ranks 0..4 over 4 gaps; the 30s share rank 2.5
    np.testing.assert_array_equal(an.ce.oi_percentile, [25, 100, 62.5, 62.5, 0, np.nan])
    np.testing.assert_array_equal(an.pe.oi_percentile, [50] * 6)
    np.testing.assert_array_equal(an.pe.volume_percentile, [0, 20, 40, 60, 80, 100])


def test_spread_pct_needs_a_two_sided_quote() -> None:
    strikes = [100.0, 110.0, 120.0, 130.0, 140.0, 150.0]
    ce = _side(
        "CE",
        strikes,
        bid=[99.0, math.nan, 100.0, 0.0, 102.0, 50.0],
        ask=[101.0, 101.0, math.nan, 1.0, 101.0, 51.0],
        last=[100.0] * 6,
        missing=[5],
    )
    nan = [math.nan] * 6
    an = analyze(_chain(strikes, ce, _side("PE", strikes, bid=nan, ask=nan), spot=120.0))

    np.testing.assert_array_equal(an.ce.spread_pct, [2.0, np.nan, np.nan, np.nan, np.nan, np.nan])
    # a one-sided or crossed quote still has a premium: the last trade
    np.testing.assert_array_equal(an.ce.premium, [100.0] * 5 + [np.nan])


# -- ranking ------------------------------------------------------------------------------


def _one_winner_chain() -> OptionChain:
    """CE 24,050 is the only call passing every filter; each other near-ATM call fails one."""
    ce_oi = [100.0] * 21
    ce_spread = [1.0] * 21
    for strike, oi in [(24_000, 5000), (24_050, 4000), (23_950, 4500), (24_500, 6000)]:
        ce_oi[_row(strike)] = oi
    ce_oi[_row(23_500)] = 5500
    ce_spread[_row(24_000)] = 8.0  # too wide
    return _priced_chain(
        ce_oi=ce_oi,
        ce_spread=ce_spread,
        ce_no_quote=[_row(23_950)],  # last trade only
        ce_no_price=[_row(23_500)],  # nothing at all
        pe_oi=[100.0] * 21,
    )


def test_exactly_one_strike_passes_and_wins() -> None:
    an = analyze(_one_winner_chain())

    ranked = rank_strikes(an, "CE")
    assert [r.symbol for r in ranked] == [_sym("CE", 24_050)]
    best = ranked[0]
    assert best.strike == 24_050.0
    assert best.option_type == "CE"
    assert best.steps_from_atm == 1
    assert best.premium == pytest.approx(an.ce.premium[_row(24_050)])
    assert best.iv == pytest.approx(_smile([24_050.0])[0], rel=1e-8)
    assert 0.35 <= best.delta <= 0.65
    assert best.spread_pct == pytest.approx(1.0)


def test_filtered_out_contracts_carry_their_reasons() -> None:
    an = analyze(_one_winner_chain())
    rejected = {r.symbol: r for r in explain(an, "CE")}

    assert len(rejected) == 20
    assert _sym("CE", 24_050) not in rejected
    assert rejected[_sym("CE", 24_000)].reasons == ("spread_too_wide",)
    assert rejected[_sym("CE", 24_000)].spread_pct == pytest.approx(8.0)
    assert rejected[_sym("CE", 23_950)].reasons == ("no_two_sided_quote",)
    assert rejected[_sym("CE", 24_500)].reasons == ("delta_out_of_band",)
    assert rejected[_sym("CE", 24_100)].reasons == ("oi_percentile_low",)
    assert rejected[_sym("CE", 23_500)].reasons == ("iv_unsolved", "no_two_sided_quote")
    # a call deep in the money is outside the band and thin
    assert rejected[_sym("CE", 23_600)].reasons == ("delta_out_of_band", "oi_percentile_low")


def test_missing_quotes_give_nan_iv_and_are_filtered_not_fatal() -> None:
    an = analyze(_one_winner_chain())
    row = _row(23_500)

    assert math.isnan(an.ce.iv[row])
    assert math.isnan(an.ce.delta[row])
    assert math.isnan(an.ce.premium[row])
    assert an.ce.iv[row + 1] == pytest.approx(_smile([23_550.0])[0], rel=1e-8)


def test_chain_without_any_quote_ranks_nothing_and_says_why() -> None:
    nan = [math.nan] * 3
    strikes = [23_950.0, 24_000.0, 24_050.0]
    ce = _side("CE", strikes, bid=nan, ask=nan, oi=[10, 20, 30])
    pe = _side("PE", strikes, bid=nan, ask=nan, oi=[10, 20, 30])
    an = analyze(_chain(strikes, ce, pe, spot=24_010.0))

    assert an.forward_source == "spot"
    assert np.isnan(an.ce.iv).all()
    assert rank_strikes(an, "PE") == []
    reasons = [r.reasons for r in explain(an, "PE")]
    assert reasons == [
        ("iv_unsolved", "oi_percentile_low", "no_two_sided_quote"),
        ("iv_unsolved", "no_two_sided_quote"),
        ("iv_unsolved", "no_two_sided_quote"),
    ]


def test_pe_ranking_reads_the_put_side() -> None:
    pe_oi = [100.0] * 21
    pe_oi[_row(23_950)] = 9000  # the puts' favourite
    ce_oi = [100.0] * 21
    ce_oi[_row(24_100)] = 9000  # the calls' favourite
    an = analyze(_priced_chain(ce_oi=ce_oi, pe_oi=pe_oi))

    puts = rank_strikes(an, "PE", RankingParams(min_oi_percentile=90))
    calls = rank_strikes(an, "CE", RankingParams(min_oi_percentile=90))
    assert [r.symbol for r in puts] == [_sym("PE", 23_950)]
    assert [r.symbol for r in calls] == [_sym("CE", 24_100)]
    put = puts[0]
    assert put.option_type == "PE"
    assert -0.65 <= put.delta <= -0.35
    assert put.premium == pytest.approx(an.pe.premium[_row(23_950)])
    assert put.premium != pytest.approx(an.ce.premium[_row(23_950)])
    assert all(r.option_type == "PE" for r in explain(an, "PE"))


def test_higher_oi_wins_when_the_rest_is_equal() -> None:
    params = RankingParams(weight_delta=0.0)  # leaves spread and volume, equal for both

    def ranked(oi_a: float, oi_b: float) -> list[str]:
        oi = [100.0] * 21
        oi[_row(24_000)], oi[_row(24_050)] = oi_a, oi_b
        an = analyze(_priced_chain(ce_oi=oi, ce_volume=[10.0] * 21))
        return [r.symbol for r in rank_strikes(an, "CE", params)]

    a, b = _sym("CE", 24_000), _sym("CE", 24_050)
    assert ranked(5000, 4000) == [a, b]
    assert ranked(4000, 5000) == [b, a]


def test_breakdown_sums_to_score_and_scores_descend() -> None:
    oi = [float(1000 + 37 * ((i * 8) % 21)) for i in range(21)]  # a permutation
    chain = _priced_chain(
        ce_oi=oi, ce_volume=oi[::-1], ce_spread=[0.5 + 0.2 * i for i in range(21)]
    )
    old = {_sym("CE", k): (500.0 + k % 300, 100.0) for k in GRID}
    an = analyze(chain, Baseline(TS, old))
    params = RankingParams(min_oi_percentile=0.0, weight_oi_change=0.5)
    weights: dict[str, float] = dict(params.weights())

    ranked = rank_strikes(an, "CE", params)
    assert len(ranked) >= 4
    assert sum(weights.values()) == pytest.approx(1.0)
    for r in ranked:
        assert set(r.breakdown) == {"oi", "spread", "delta", "volume", "oi_change"}
        assert sum(r.breakdown.values()) == pytest.approx(r.score, abs=1e-15)
        for name, part in r.breakdown.items():
            assert 0.0 <= part <= weights[name]
        assert 0.0 <= r.score <= 1.0
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)
    # the OI part is the percentile, weighted
    top = ranked[0]
    assert top.breakdown["oi"] == pytest.approx(weights["oi"] * top.oi_percentile / 100)
    assert top.breakdown["spread"] == pytest.approx(weights["spread"] * (1 - top.spread_pct / 5))
    assert rank_strikes(an, "CE", params, top=2) == ranked[:2]


def test_ties_go_to_the_nearer_strike_then_the_lower_spread() -> None:
    spread = [1.0] * 21
    spread[_row(24_050)], spread[_row(23_950)] = 1.0, 2.0  # +1 step tighter
    spread[_row(23_900)], spread[_row(24_100)] = 1.0, 2.0  # -2 steps tighter
    an = analyze(_priced_chain(ce_spread=spread, ce_oi=[500.0] * 21))
    # OI is equal everywhere, so with only the OI weight every score is 0.5
    params = RankingParams(
        delta_min=0.05, delta_max=0.95, weight_spread=0, weight_delta=0, weight_volume=0
    )

    ranked = rank_strikes(an, "CE", params)
    assert [r.score for r in ranked] == [0.5] * 21
    assert [r.strike for r in ranked[:5]] == [24_000, 24_050, 23_950, 23_900, 24_100]


# -- parameters and bad input -------------------------------------------------------------


def test_ranking_weights_are_relative() -> None:
    params = RankingParams(weight_oi=3, weight_spread=1, weight_delta=0, weight_volume=0)

    assert params.weights() == {"oi": 0.75, "spread": 0.25}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_oi_percentile": 101},
        {"min_oi_percentile": math.nan},
        {"max_spread_pct": 0},
        {"max_spread_pct": math.inf},
        {"delta_min": 0.7, "delta_max": 0.6},
        {"delta_min": 0.5, "delta_max": 0.5},
        {"target_delta": 0.7},
        {"delta_max": 1.2},
        {"weight_oi": -0.1},
        {"weight_volume": math.nan},
        {"weight_oi": 0, "weight_spread": 0, "weight_delta": 0, "weight_volume": 0},
    ],
)
def test_invalid_ranking_params_raise(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        RankingParams(**kwargs)


def test_unknown_option_type_raises() -> None:
    an = analyze(_priced_chain())

    for call in (
        lambda: rank_strikes(an, "XX"),  # type: ignore[arg-type]
        lambda: explain(an, "ce"),  # type: ignore[arg-type]
        lambda: an.side("FUT"),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInputError, match="option type"):
            call()


def test_other_bad_inputs_raise() -> None:
    an: ChainAnalytics = analyze(_priced_chain())

    with pytest.raises(InvalidInputError):
        rank_strikes(an, "CE", top=-1)
    with pytest.raises(InvalidInputError):
        rank_strikes(an, "CE", {"min_oi_percentile": 0})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        analyze("chain")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        analyze(_priced_chain(), {"x": (1.0, 2.0)})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        Baseline(datetime(2026, 11, 24, 9, 15), {})  # naive on purpose
    with pytest.raises(InvalidInputError):
        Baseline(TS, {"NFO:X": (1.0,)})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError):
        Baseline(TS, {"NFO:X": (-5.0, 1.0)})
    nan = [math.nan] * 2
    strikes = [100.0, 110.0]
    ce, pe = _side("CE", strikes, bid=nan, ask=nan), _side("PE", strikes, bid=nan, ask=nan)
    with pytest.raises(InvalidInputError, match="rate"):
        analyze(_chain(strikes, ce, pe, spot=104.0, rate=math.nan))
