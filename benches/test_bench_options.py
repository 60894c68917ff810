"""Option math over a chain: implied volatility + greeks of 200 strikes, ours against vollib.

The chain is NIFTY-like: 200 strikes 50 points apart around a 24,000 forward, 5 days to
expiry, a volatility smile, calls above the forward and puts below (the out-of-the-money
side a chain analyzer reads). Ours is two batch calls, ``implied_vol_black76`` then
``black76`` at the solved volatilities; vollib (what a Python user would pick: Jäckel's
"Let's Be Rational" for the volatility, analytical greeks) runs strike by strike. The two
alternate in blocks; the report gives the median per chain.

Target (issue 5): IV + greeks for a 200-strike chain in <= 50 µs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from vollib.black.greeks import analytical as vl_greeks
from vollib.black.implied_volatility import implied_volatility as vl_iv

import benchlib
from mental_trader.core import black76, implied_vol_black76

N_STRIKES = 200
BLOCKS = 3
ROUNDS = {"quick": (300, 2), "full": (3_000, 10)}[benchlib.SCALE.name]  # ours, vollib


def _chain() -> dict[str, Any]:
    k = 19_000.0 + 50.0 * np.arange(N_STRIKES)
    f = np.full(N_STRIKES, 24_000.0)
    t = np.full(N_STRIKES, 5 / 365)
    r = np.full(N_STRIKES, 0.065)
    sigma = 0.13 + 0.6 * np.log(k / f) ** 2
    is_call = k >= f
    price = black76(f, k, t, r, sigma, is_call)["price"]
    return {"price": price, "F": f, "K": k, "T": t, "r": r, "is_call": is_call, "sigma": sigma}


def _ours(c: dict[str, Any]) -> dict[str, Any]:
    iv = implied_vol_black76(c["price"], c["F"], c["K"], c["T"], c["r"], c["is_call"])
    return {"iv": iv, **black76(c["F"], c["K"], c["T"], c["r"], iv, c["is_call"])}


def _vollib(c: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for p, f, k, t, r, call in zip(
        c["price"], c["F"], c["K"], c["T"], c["r"], c["is_call"], strict=True
    ):
        flag = "c" if call else "p"
        iv = vl_iv(p, f, k, r, t, flag)
        rows.append(
            (
                iv,
                vl_greeks.delta(flag, f, k, t, r, iv),
                vl_greeks.gamma(flag, f, k, t, r, iv),
                vl_greeks.theta(flag, f, k, t, r, iv),
                vl_greeks.vega(flag, f, k, t, r, iv),
            )
        )
    cols = np.array(rows).T
    return dict(zip(("iv", "delta", "gamma", "theta", "vega"), cols, strict=True))


def _time(fn: Callable[[dict[str, Any]], Any], c: dict[str, Any], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(c)
        out.append(time.perf_counter() - t0)
    return out


def test_chain_iv_and_greeks(benchmark: Any) -> None:
    c = _chain()
    ours, theirs = _ours(c), _vollib(c)
    # Same answers before any timing: the volatility that made the prices, vollib's greeks.
    np.testing.assert_allclose(ours["iv"], c["sigma"], rtol=1e-8)
    for name in ("iv", "delta", "gamma", "theta", "vega"):
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-8, atol=1e-12)
    n_ours, n_ref = ROUNDS
    times: dict[str, list[float]] = {"ours": [], "vollib": []}
    _time(_ours, c, 50)  # warm-up
    for _ in range(BLOCKS):
        times["ours"] += _time(_ours, c, n_ours)
        times["vollib"] += _time(_vollib, c, n_ref)
    ours_us = float(np.median(times["ours"])) * 1e6
    ref_us = float(np.median(times["vollib"])) * 1e6
    benchmark.group = "options"
    benchmark.extra_info.update(impl="ours", n=N_STRIKES, block=0, ours_us=ours_us, ref_us=ref_us)
    benchmark.pedantic(_ours, args=(c,), rounds=20, iterations=10)
    benchlib.REPORT.append(
        (
            f"IV + greeks, {N_STRIKES}-strike chain: ours (vollib)",
            f"{ours_us:.1f} us ({ref_us / 1e3:.1f} ms, {ref_us / ours_us:,.0f}x)",
            "<= 50 us",
            "PASS" if ours_us <= 50 else "MISS",
        )
    )
