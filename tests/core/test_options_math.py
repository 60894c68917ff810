"""``black76`` and ``implied_vol_black76`` against vollib (an independent implementation:
Jäckel's "Let's Be Rational" for the implied volatility) and against their own round trip."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vollib.black import black as vl_black
from vollib.black.greeks import analytical as vl_greeks
from vollib.black.implied_volatility import implied_volatility as vl_iv

from mental_trader.core import black76, implied_vol_black76
from mental_trader.errors import InvalidInputError

GREEKS = ("delta", "gamma", "theta", "vega")


def _chain(rows: list[tuple[float, float, float, float, float, bool]]) -> dict[str, Any]:
    cols = list(zip(*rows, strict=True))
    f, k, t, r, sigma = (np.array(c, dtype=np.float64) for c in cols[:5])
    return {"F": f, "K": k, "T": t, "r": r, "sigma": sigma, "is_call": np.array(cols[5])}


# Forward, strike/forward, years, rate, vol: NIFTY-like weeklies to long-dated stock options,
# deep in and out of the money, an hour to two years.
GRID = [
    (f, f * m, t, r, v, call)
    for f, m, t, r, v, call in itertools.product(
        [24_000.0, 850.0],
        [0.7, 0.9, 0.98, 1.0, 1.02, 1.1, 1.4],
        [1 / (365 * 6.25), 1 / 365, 7 / 365, 0.25, 2.0],
        [0.0, 0.065],
        [0.08, 0.18, 0.45, 1.2],
        [True, False],
    )
]


def _close(ours: np.ndarray, ref: np.ndarray, rel: float, floor: float) -> np.ndarray:
    return np.abs(ours - ref) <= rel * np.abs(ref) + floor


def test_price_and_greeks_match_vollib() -> None:
    c = _chain(GRID)
    got = black76(c["F"], c["K"], c["T"], c["r"], c["sigma"], c["is_call"])
    for i, (f, k, t, r, v, call) in enumerate(GRID):
        flag = "c" if call else "p"
        want = {
            "price": vl_black(flag, f, k, t, r, v),
            "delta": vl_greeks.delta(flag, f, k, t, r, v),
            "gamma": vl_greeks.gamma(flag, f, k, t, r, v),
            "theta": vl_greeks.theta(flag, f, k, t, r, v),
            "vega": vl_greeks.vega(flag, f, k, t, r, v),
        }
        for name, ref in want.items():
            ours = float(got[name][i])
            # 1e-8 relative, with an absolute floor at 1e-12 of the forward for values
            # that are themselves rounding noise (a far out-of-the-money price of ~1e-200).
            assert math.isclose(ours, ref, rel_tol=1e-8, abs_tol=1e-12 * f), (
                f"{name} F={f} K={k} T={t} r={r} sigma={v} {flag}: {ours} vs {ref}"
            )


def test_implied_vol_matches_vollib() -> None:
    c = _chain(GRID)
    prices = black76(c["F"], c["K"], c["T"], c["r"], c["sigma"], c["is_call"])["price"]
    ours = implied_vol_black76(prices, c["F"], c["K"], c["T"], c["r"], c["is_call"])
    compared = 0
    for i, (f, k, t, r, v, call) in enumerate(GRID):
        flag = "c" if call else "p"
        price = float(prices[i])
        intrinsic = math.exp(-r * t) * max(f - k if call else k - f, 0.0)
        if not (price - intrinsic > 1e-9 * price and price > 1e-250):
            # No resolvable time value: NaN is the right answer, or a value close to the truth.
            assert math.isnan(ours[i]) or math.isclose(ours[i], v, rel_tol=1e-2)
            continue
        ref = vl_iv(price, f, k, r, t, flag)
        assert math.isclose(ours[i], ref, rel_tol=1e-8), (
            f"F={f} K={k} T={t} r={r} sigma={v} {flag}: {ours[i]} vs vollib {ref}"
        )
        # Back to the volatility that made the price, where the price still holds it: a
        # time value below ~1e-6 of the price has lost digits to the price's own rounding
        # (vollib and we then agree on the same, slightly different, volatility).
        if price - intrinsic > 1e-6 * price:
            assert math.isclose(ours[i], v, rel_tol=1e-8)
        compared += 1
    assert compared > 0.8 * len(GRID)


@pytest.mark.parametrize(
    ("k", "t", "sigma", "call"),
    [
        pytest.param(16_000.0, 7 / 365, 0.25, False, id="deep-otm-put"),
        pytest.param(32_000.0, 7 / 365, 0.25, True, id="deep-otm-call"),
        pytest.param(20_000.0, 30 / 365, 0.3, True, id="deep-itm-call"),
        pytest.param(28_000.0, 30 / 365, 0.3, False, id="deep-itm-put"),
        pytest.param(24_050.0, 1 / (365 * 24), 0.12, True, id="hour-to-expiry"),
        pytest.param(24_000.0, 1 / (365 * 24 * 60), 0.12, False, id="minute-to-expiry-atm"),
    ],
)
def test_implied_vol_at_the_edges(k: float, t: float, sigma: float, call: bool) -> None:
    c = _chain([(24_000.0, k, t, 0.065, sigma, call)])
    price = black76(c["F"], c["K"], c["T"], c["r"], c["sigma"], c["is_call"])["price"]
    iv = implied_vol_black76(price, c["F"], c["K"], c["T"], c["r"], c["is_call"])
    assert iv[0] == pytest.approx(sigma, rel=1e-8)
    ref = vl_iv(float(price[0]), 24_000.0, k, 0.065, t, "c" if call else "p")
    assert iv[0] == pytest.approx(ref, rel=1e-8)


def test_prices_outside_the_bounds_give_nan_never_a_number() -> None:
    f, k, t, r = 24_000.0, 23_000.0, 0.1, 0.065
    df = math.exp(-r * t)
    cases = [
        (math.nan, True),  # no quote
        (0.0, False),
        (-1.0, True),
        ((f - k) * df, True),  # exactly intrinsic: no time value
        ((f - k) * df - 0.05, True),  # below intrinsic
        (f * df, True),  # the forward itself
        (k * df, False),  # a put worth its strike
        (math.inf, True),
    ]
    n = len(cases)
    iv = implied_vol_black76(
        np.array([p for p, _ in cases]),
        np.full(n, f),
        np.full(n, k),
        np.full(n, t),
        np.full(n, r),
        np.array([c for _, c in cases]),
    )
    assert np.isnan(iv).all(), iv


def test_nan_volatility_gives_nan_greeks_and_the_rest_are_unaffected() -> None:
    c = _chain([(24_000.0, 24_000.0, 0.1, 0.065, 0.2, True)] * 2)
    c["sigma"][0] = math.nan
    out = black76(c["F"], c["K"], c["T"], c["r"], c["sigma"], c["is_call"])
    for name in ("price", *GREEKS):
        assert math.isnan(out[name][0])
        assert math.isfinite(out[name][1])


def _args(n: int = 3) -> dict[str, np.ndarray]:
    return {
        "F": np.full(n, 100.0),
        "K": np.full(n, 100.0),
        "T": np.full(n, 0.5),
        "r": np.full(n, 0.05),
        "sigma": np.full(n, 0.2),
        "is_call": np.ones(n, dtype=bool),
    }


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("F", np.array([100.0, -1.0, 100.0]), "F must be > 0"),
        ("K", np.array([100.0, 0.0, 100.0]), "K must be > 0"),
        ("T", np.array([100.0, 0.0, 100.0]), "T must be > 0"),
        ("T", np.array([0.5, math.inf, 0.5]), "T is not finite"),
        ("r", np.array([0.05, math.nan, 0.05]), "r is not finite"),
        ("sigma", np.array([0.2, -0.1, 0.2]), "sigma must be > 0"),
        ("sigma", np.array([0.2, math.inf, 0.2]), "sigma must be > 0"),
        ("F", np.array([100.0, 100.0]), "length mismatch"),
        ("F", np.array([100, 100, 100]), "dtype float64"),
        ("is_call", np.ones(3), "dtype bool"),
        ("K", np.full(6, 100.0)[::2], "not C-contiguous"),
    ],
)
def test_bad_input_raises(field: str, value: np.ndarray, match: str) -> None:
    args = _args()
    args[field] = value
    with pytest.raises(InvalidInputError, match=match):
        black76(**args)
    if field != "sigma":
        iv_args = {k: v for k, v in args.items() if k != "sigma"}
        with pytest.raises(InvalidInputError, match=match):
            implied_vol_black76(np.full(3, 5.0), **iv_args)


@settings(max_examples=300)
@given(
    f=st.floats(10.0, 50_000.0),
    moneyness=st.floats(0.6, 1.6),
    days=st.floats(0.01, 800.0),
    r=st.floats(-0.01, 0.12),
    sigma=st.floats(0.03, 2.5),
    call=st.booleans(),
)
def test_round_trip(
    f: float, moneyness: float, days: float, r: float, sigma: float, call: bool
) -> None:
    c = _chain([(f, f * moneyness, days / 365, r, sigma, call)])
    price = black76(c["F"], c["K"], c["T"], c["r"], c["sigma"], c["is_call"])["price"]
    iv = implied_vol_black76(price, c["F"], c["K"], c["T"], c["r"], c["is_call"])[0]
    p = float(price[0])
    intrinsic = math.exp(-r * days / 365) * max(f - f * moneyness if call else f * moneyness - f, 0)
    if p - intrinsic > 1e-9 * p and p > 1e-250:
        assert iv == pytest.approx(sigma, rel=1e-7)
    else:
        assert math.isnan(iv) or iv == pytest.approx(sigma, rel=1e-2)
