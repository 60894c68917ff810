"""Option math over a chain: implied volatility + greeks of 200 strikes, ours against vollib.

The chain is NIFTY-like: 200 strikes 50 points apart around a 24,000 forward, 5 days to
expiry, a volatility smile, calls above the forward and puts below (the out-of-the-money
side a chain analyzer reads). Ours is two batch calls, ``implied_vol_black76`` then
``black76`` at the solved volatilities; vollib (what a Python user would pick: Jäckel's
"Let's Be Rational" for the volatility, analytical greeks) runs strike by strike. The two
alternate in blocks; the report gives the median per chain.

Also the decision an underlying signal takes once the chains are cached (issue 5:
"underlying signal → OptionSignal (chain already cached) p99 <= 2 ms"): the real
:class:`OptionsManager` with the analyzer's ranking as the picker, on the sim market's NIFTY
chains (three expiries, 81 strikes each), alternating BUY and SELL signals with debounce
and cooldown off so every signal goes the whole way to an :class:`OptionSignal`.

Targets (issue 5): IV + greeks for a 200-strike chain in <= 50 µs; signal → OptionSignal
p99 <= 2 ms.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import numpy as np
from vollib.black.greeks import analytical as vl_greeks
from vollib.black.implied_volatility import implied_volatility as vl_iv

import benchlib
from mental_trader.brokers.sim.market import SimMarket
from mental_trader.brokers.sim.options import SimOptions
from mental_trader.calendar import IST, TradingCalendar
from mental_trader.core import black76, implied_vol_black76
from mental_trader.models import Side
from mental_trader.options.analyzer import analyze
from mental_trader.options.manager import OptionsManager, OptionsParams, StrikePick
from mental_trader.options.ranking import RankingParams, rank_strikes
from mental_trader.strategy.base import Signal

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


N_SIGNALS = {"quick": 400, "full": 4_000}[benchlib.SCALE.name]


class _FixedClock:
    def __init__(self, now: datetime) -> None:
        self.value = now

    def now(self) -> datetime:
        return self.value


def _pick(chain: Any, option_type: Any) -> StrikePick | None:
    ranked = rank_strikes(analyze(chain), option_type, RankingParams(), top=1)
    if not ranked:
        return None
    r = ranked[0]
    return StrikePick(r.symbol, r.strike, r.premium, r.score, dict(r.breakdown))


def test_signal_to_option_signal(benchmark: Any) -> None:
    at = datetime(2026, 11, 25, 11, 0, tzinfo=IST)
    options = SimOptions(SimMarket(42, TradingCalendar()))
    nifty = "NSE:NIFTY 50"
    chains = [
        options.chain(nifty, e, at) for e, _ in options.expiries(nifty, date(2026, 11, 25))[:3]
    ]
    params = OptionsParams(debounce_s=0.0, cooldown_s=0.0, risk_cap=50_000.0)
    clock = _FixedClock(at)
    times: list[float] = []
    made = 0
    for i in range(N_SIGNALS):
        manager = OptionsManager(params, clock)  # fresh: no open position blocks an entry
        side = Side.BUY if i % 2 == 0 else Side.SELL
        signal = Signal(
            nifty,
            side,
            "entry",
            24_000.0,
            "ema_cross",
            None,
            None,
            60,
            "scalp",
            1_795_400_000_000_000_000 + i * 60_000_000_000,
            1_795_400_060_000_000_000 + i * 60_000_000_000,
            {},
        )
        t0 = time.perf_counter()
        decision = manager.on_signal(signal, chains, _pick)
        times.append(time.perf_counter() - t0)
        made += decision.entry is not None
    assert made == N_SIGNALS, "every signal must end in an option entry"
    p50, p99 = (float(np.percentile(times, q)) * 1e6 for q in (50, 99))
    benchmark.group = "options"
    benchmark.extra_info.update(impl="ours", n=1, block=0, p50_us=p50, p99_us=p99)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    benchlib.REPORT.append(
        (
            f"underlying signal -> OptionSignal, cached chains ({N_SIGNALS})",
            f"p50 {p50:.0f} us / p99 {p99:.0f} us",
            "p99 <= 2 ms",
            "PASS" if p99 <= 2_000 else "MISS",
        )
    )
