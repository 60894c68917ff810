"""The options manager: debounce, cooldown, expiry and strike choice, sizing, ids, exits."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import pytest

from mental_trader.brokers.sim.clock import ManualClock
from mental_trader.calendar import IST
from mental_trader.config import load_settings
from mental_trader.errors import InvalidInputError
from mental_trader.models import Side
from mental_trader.options.chain import OptionChain, OptionSide, OptionType
from mental_trader.options.manager import (
    OptionDecision,
    OptionSignal,
    OptionsManager,
    OptionsParams,
    StrikePick,
    nearest_liquid_strike,
)
from mental_trader.options.sizing import PremiumLevels
from mental_trader.strategy.base import Signal, SignalKind, SignalReason

INDEX = "NSE:NIFTY 50"
START = datetime(2026, 3, 2, 10, 0, tzinfo=IST)  # a Monday
TODAY, TUE1, TUE2, TUE3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 10), date(2026, 3, 17)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


def ns(ts: datetime) -> int:
    return (ts - EPOCH) // US * 1_000


def contract(expiry: date, strike: float, option_type: OptionType) -> str:
    return f"NFO:NIFTY{expiry:%y%m%d}{strike:.0f}{option_type}"


def make_chain(
    expiry: date = TUE1,
    *,
    spot: float = 25_000.0,
    time_value: float = 100.0,
    spread: float = 1.0,
    ts: datetime = START,
    underlying: str = INDEX,
    ce_quoted: bool = True,
    lot_size: int = 65,
    freeze_qty: int | None = 1800,
) -> OptionChain:
    """Five strikes 50 apart around 25,000; premium = intrinsic + ``time_value``."""
    strikes = 25_000.0 + 50.0 * np.arange(-2, 3, dtype=np.float64)

    def side(
        option_type: OptionType, intrinsic: np.ndarray[Any, np.dtype[np.float64]]
    ) -> OptionSide:
        mid = intrinsic + time_value
        bid, ask = mid - spread / 2, mid + spread / 2
        if option_type == "CE" and not ce_quoted:
            bid = ask = np.full(len(strikes), np.nan)
        return OptionSide(
            symbols=tuple(contract(expiry, k, option_type) for k in strikes),
            bid=bid,
            ask=ask,
            last=np.full(len(strikes), np.nan) if not ce_quoted else mid.copy(),
            oi=np.full(len(strikes), 1e5),
            volume=np.full(len(strikes), 1e6),
        )

    return OptionChain(
        underlying=underlying,
        expiry=expiry,
        ts=ts,
        spot=spot,
        strike=strikes,
        ce=side("CE", np.maximum(spot - strikes, 0.0)),
        pe=side("PE", np.maximum(strikes - spot, 0.0)),
        lot_size=lot_size,
        tick_size=0.05,
        freeze_qty=freeze_qty,
    )


CHAINS = [make_chain(TUE1), make_chain(TUE2), make_chain(TUE3)]


def signal(
    side: Side,
    kind: SignalKind = "entry",
    *,
    bar: int = 0,
    symbol: str = INDEX,
    reason: SignalReason = "ema_cross",
    price: float = 25_000.0,
) -> Signal:
    """A 1-minute signal of the ``bar``-th bar from 09:59 IST (distinct bars, distinct ids)."""
    bar_ns = ns(START - timedelta(minutes=1)) + bar * 60_000_000_000
    return Signal(
        symbol, side, kind, price, reason, None, None, 60, "scalp",
        bar_ns, bar_ns + 60_000_000_000, {},
    )  # fmt: skip


def manager(**overrides: Any) -> tuple[OptionsManager, ManualClock]:
    clock = ManualClock(START)
    return OptionsManager(OptionsParams(**overrides), clock), clock


def at(clock: ManualClock, seconds: float = 0.0, micros: int = 0) -> None:
    """Move the clock to START + seconds + micros (exactly)."""
    clock.set_ns(ns(START) + round(seconds * 1e9) + micros * 1_000)


def entry_of(decision: OptionDecision) -> OptionSignal:
    assert decision.code is None, decision.reason
    assert decision.entry is not None
    return decision.entry


# -- direction and the entry signal ---------------------------------------------------------


def test_buy_signal_buys_the_atm_call() -> None:
    m, _ = manager()
    sig = signal(Side.BUY)
    decision = m.on_signal(sig, CHAINS, nearest_liquid_strike)
    entry = entry_of(decision)
    symbol = contract(TUE1, 25_000, "CE")
    assert decision.signals == (entry,)
    assert decision.exits == ()
    assert not decision.rejected
    assert entry.id == f"{sig.id}/{symbol}"
    assert (entry.symbol, entry.option_type, entry.strike, entry.expiry) == (
        symbol, "CE", 25_000.0, TUE1,
    )  # fmt: skip
    assert (entry.side, entry.kind, entry.reason) == (Side.BUY, "entry", "ema_cross")
    # mid 100 -> scalp stop 20 % below, target 30 % above; (100 - 80) x 65 = 1300 <= 2000
    assert (entry.premium, entry.stop, entry.target) == (100.0, 80.0, 130.0)
    assert (entry.lots, entry.lot_size, entry.qty, entry.slices) == (1, 65, 65, (65,))
    assert (entry.underlying, entry.underlying_symbol, entry.underlying_signal_id) == (
        "NIFTY", INDEX, sig.id,
    )  # fmt: skip
    assert entry.ts == START
    assert (entry.underlying_price, entry.freeze_qty, entry.tick_size) == (25_000.0, 1800, 0.05)
    assert entry.payload["risk_per_lot"] == 1300.0
    assert entry.payload["days_to_expiry"] == 1
    assert entry.payload["breakdown"] == {"distance": 0.0, "bid": 99.5, "ask": 100.5}
    json.dumps(entry.payload)  # JSON-ready


def test_sell_signal_buys_the_atm_put() -> None:
    m, _ = manager()
    sig = signal(Side.SELL)
    entry = entry_of(m.on_signal(sig, CHAINS, nearest_liquid_strike))
    assert (entry.symbol, entry.option_type, entry.side) == (
        contract(TUE1, 25_000, "PE"), "PE", Side.BUY,
    )  # fmt: skip
    assert entry.id == f"{sig.id}/{contract(TUE1, 25_000, 'PE')}"


def test_nearest_strike_moves_with_the_spot_and_prefers_the_lower_on_a_tie() -> None:
    chain = make_chain(spot=25_060.0)
    pick = nearest_liquid_strike(chain, "CE")
    assert pick is not None
    assert (pick.strike, pick.premium) == (25_050.0, 110.0)  # intrinsic 10 + 100
    tie = nearest_liquid_strike(make_chain(spot=25_025.0), "PE")
    assert tie is not None
    assert tie.strike == 25_000.0


def test_signal_of_another_underlying_is_not_traded() -> None:
    m, _ = manager()
    decision = m.on_signal(signal(Side.BUY, symbol="NSE:RELIANCE"), [], nearest_liquid_strike)
    assert (decision.signals, decision.code) == ((), "not_enabled")
    assert decision.reason == "not an options underlying: NSE:RELIANCE"
    assert m.underlying_name(INDEX) == "NIFTY"
    assert m.underlying_name("NSE:RELIANCE") == "RELIANCE"
    assert m.underlying_name("NIFTY") == "NIFTY"


def test_stock_underlying_enabled_by_name() -> None:
    m, _ = manager(underlyings=frozenset({"RELIANCE"}))
    chain = make_chain(underlying="NSE:RELIANCE")
    entry = entry_of(
        m.on_signal(signal(Side.BUY, symbol="NSE:RELIANCE"), [chain], nearest_liquid_strike)
    )
    assert entry.underlying == "RELIANCE"


# -- debounce -------------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "option_type"), [(Side.BUY, "CE"), (Side.SELL, "PE")])
def test_burst_collapses_to_its_first_signal(side: Side, option_type: str) -> None:
    m, clock = manager(debounce_s=5.0, cooldown_s=0.0)
    outcomes: list[str | None] = []
    for bar, second in enumerate([0, 1, 3, 7, 12, 13]):
        at(clock, second)
        decision = m.on_signal(signal(side, bar=bar), CHAINS, nearest_liquid_strike)
        outcomes.append(decision.code)
        if decision.entry is not None:
            assert decision.entry.option_type == option_type
    # 7 is 7 s after the acted one but only 4 s after the debounced one at 3: still the burst;
    # 12 comes after 5 s of quiet; 13 starts another burst
    assert outcomes == [None, "debounced", "debounced", "debounced", None, "debounced"]


def test_buy_and_sell_are_debounced_independently() -> None:
    m, clock = manager(debounce_s=5.0, cooldown_s=0.0)
    assert m.on_signal(signal(Side.BUY, bar=0), CHAINS, nearest_liquid_strike).code is None
    at(clock, 1)
    assert m.on_signal(signal(Side.SELL, bar=1), CHAINS, nearest_liquid_strike).code is None
    at(clock, 2)
    buy = m.on_signal(signal(Side.BUY, bar=2), CHAINS, nearest_liquid_strike)
    sell = m.on_signal(signal(Side.SELL, bar=3), CHAINS, nearest_liquid_strike)
    assert (buy.code, sell.code) == ("debounced", "debounced")
    assert buy.reason == "debounced: 2s after the previous BUY on NIFTY"


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_debounce_window_is_half_open(side: Side) -> None:
    m, clock = manager(debounce_s=5.0, cooldown_s=0.0)
    assert m.on_signal(signal(side, bar=0), CHAINS, nearest_liquid_strike).code is None
    at(clock, 5, micros=-1)  # w - 1 us: inside
    assert m.on_signal(signal(side, bar=1), CHAINS, nearest_liquid_strike).code == "debounced"
    at(clock, 10, micros=-1)  # exactly w after the debounced one: outside
    assert m.on_signal(signal(side, bar=2), CHAINS, nearest_liquid_strike).code is None
    at(clock, 15, micros=-1)  # exactly w after the acted one: outside
    assert m.on_signal(signal(side, bar=3), CHAINS, nearest_liquid_strike).code is None


def test_zero_debounce_lets_simultaneous_signals_through() -> None:
    m, _ = manager(debounce_s=0.0, cooldown_s=0.0)
    first = m.on_signal(signal(Side.BUY, bar=0), CHAINS, nearest_liquid_strike)
    second = m.on_signal(signal(Side.BUY, bar=1), CHAINS, nearest_liquid_strike)
    assert (first.code, second.code) == (None, None)


# -- cooldown -------------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "option_type"), [(Side.BUY, "CE"), (Side.SELL, "PE")])
def test_cooldown_edge_is_exact(side: Side, option_type: str) -> None:
    m, clock = manager(debounce_s=0.0, cooldown_s=60.0)
    assert m.on_signal(signal(side, bar=0), CHAINS, nearest_liquid_strike).code is None
    at(clock, 60, micros=-1)
    held = m.on_signal(signal(side, bar=1), CHAINS, nearest_liquid_strike)
    assert (held.code, held.signals) == ("cooldown", ())
    assert held.reason == f"cooldown: {option_type} on NIFTY for 1e-06s more"
    at(clock, 60)
    assert entry_of(m.on_signal(signal(side, bar=2), CHAINS, nearest_liquid_strike)).ts == (
        START + timedelta(seconds=60)
    )


def test_call_cooldown_does_not_block_puts() -> None:
    m, clock = manager(debounce_s=0.0, cooldown_s=60.0)
    assert m.on_signal(signal(Side.BUY, bar=0), CHAINS, nearest_liquid_strike).code is None
    at(clock, 1)
    put = entry_of(m.on_signal(signal(Side.SELL, bar=1), CHAINS, nearest_liquid_strike))
    assert put.option_type == "PE"
    at(clock, 30)
    assert m.on_signal(signal(Side.BUY, bar=2), CHAINS, nearest_liquid_strike).code == "cooldown"
    assert m.on_signal(signal(Side.SELL, bar=3), CHAINS, nearest_liquid_strike).code == "cooldown"
    at(clock, 60)
    assert m.on_signal(signal(Side.BUY, bar=4), CHAINS, nearest_liquid_strike).code is None
    assert m.on_signal(signal(Side.SELL, bar=5), CHAINS, nearest_liquid_strike).code == "cooldown"


def test_only_an_emitted_entry_starts_the_cooldown() -> None:
    m, clock = manager(debounce_s=0.0, cooldown_s=60.0)

    def nothing(_chain: OptionChain, _option_type: OptionType) -> StrikePick | None:
        return None

    assert m.on_signal(signal(Side.BUY, bar=0), CHAINS, nothing).code == "no_strike"
    at(clock, 1)
    assert m.on_signal(signal(Side.BUY, bar=1), CHAINS, nearest_liquid_strike).code is None


# -- expiry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_days", "fixed", "expected"),
    [
        (0, None, TODAY),  # today's expiry is allowed until 15:30 IST
        (1, None, TUE1),  # skips today's
        (2, None, TUE2),  # skips TUE1 with one day left
        (8, None, TUE2),  # 8 days left exactly
        (9, None, TUE3),
        (0, TUE3, TUE3),
    ],
)
def test_expiry_choice(min_days: int, fixed: date | None, expected: date) -> None:
    m, _ = manager(min_days_to_expiry=min_days, fixed_expiry=fixed)
    expired = make_chain(date(2026, 2, 24))
    # a mapping, out of order: the manager sorts by expiry
    chains = {e: make_chain(e) for e in (TUE3, TUE1, TODAY, TUE2)} | {date(2026, 2, 24): expired}
    entry = entry_of(m.on_signal(signal(Side.BUY), chains, nearest_liquid_strike))
    assert entry.expiry == expected
    assert entry.symbol == contract(expected, 25_000, "CE")


def test_no_eligible_expiry_is_a_rejection() -> None:
    m, _ = manager(min_days_to_expiry=30)
    decision = m.on_signal(signal(Side.BUY), CHAINS, nearest_liquid_strike)
    assert (decision.code, decision.reason) == (
        "no_expiry",
        "no expiry of NIFTY with ≥ 30 days left",
    )
    fixed, _ = manager(fixed_expiry=date(2026, 3, 24))
    assert fixed.on_signal(signal(Side.BUY), CHAINS, nearest_liquid_strike).code == "no_expiry"
    empty, _ = manager()
    assert empty.on_signal(signal(Side.BUY), [], nearest_liquid_strike).code == "no_expiry"


def test_todays_expiry_is_skipped_once_expired() -> None:
    m, clock = manager(square_off_time=time(15, 31))
    clock.set_ns(ns(datetime(2026, 3, 2, 15, 30, tzinfo=IST)))
    chains = [make_chain(TODAY), make_chain(TUE1)]
    assert entry_of(m.on_signal(signal(Side.BUY), chains, nearest_liquid_strike)).expiry == TUE1


# -- strike and sizing ----------------------------------------------------------------------


def test_no_quoted_strike_is_a_rejection() -> None:
    m, _ = manager()
    chains = [make_chain(ce_quoted=False)]
    decision = m.on_signal(signal(Side.BUY), chains, nearest_liquid_strike)
    assert (decision.code, decision.reason) == (
        "no_strike",
        "no strike on the CE side of 2026-03-03",
    )
    assert m.on_signal(signal(Side.SELL), chains, nearest_liquid_strike).code is None


def test_injected_picker_chooses_the_strike_and_explains_it() -> None:
    def otm(chain: OptionChain, option_type: OptionType) -> StrikePick | None:
        row = len(chain) - 1  # 25,100 CE: premium 100 (no intrinsic)
        return StrikePick(
            chain.side(option_type).symbols[row], float(chain.strike[row]), 50.0, 0.8,
            {"oi_pct": 0.9, "spread": 0.7},
        )  # fmt: skip

    m, _ = manager()
    entry = entry_of(m.on_signal(signal(Side.BUY), CHAINS, otm))
    assert (entry.symbol, entry.strike, entry.premium) == (
        contract(TUE1, 25_100, "CE"),
        25_100.0,
        50.0,
    )
    assert (entry.stop, entry.target) == (40.0, 65.0)
    assert entry.lots == 2  # (50 - 40) x 65 = 650 per lot; 2000 / 650 = 3, capped at 2
    assert (entry.payload["score"], entry.payload["breakdown"]) == (
        0.8,
        {"oi_pct": 0.9, "spread": 0.7},
    )


@pytest.mark.parametrize(
    "bad",
    [
        StrikePick("NFO:NOPE", 25_000.0, 100.0),
        StrikePick(contract(TUE1, 25_000, "PE"), 25_000.0, 100.0),  # the other side
        StrikePick(contract(TUE1, 25_000, "CE"), 25_050.0, 100.0),  # wrong strike
        StrikePick(contract(TUE1, 25_000, "CE"), 25_000.0, math.nan),
        StrikePick(contract(TUE1, 25_000, "CE"), 25_000.0, 0.0),
    ],
)
def test_a_pick_off_the_chain_is_a_wiring_error(bad: StrikePick) -> None:
    m, _ = manager()
    with pytest.raises(InvalidInputError):
        m.on_signal(signal(Side.BUY), CHAINS, lambda _c, _t: bad)


def test_premium_risk_above_the_cap_is_no_trade() -> None:
    m, _ = manager(risk_cap=1000.0)
    decision = m.on_signal(signal(Side.BUY), CHAINS, nearest_liquid_strike)
    assert (decision.signals, decision.code) == ((), "size")
    assert decision.reason == "risk per lot ₹1,300.00 (65 x ₹20.00) exceeds the cap ₹1,000.00"


@pytest.mark.parametrize(
    ("risk_cap", "max_lots", "lots", "slices"),
    [
        (3899.0, 10, 2, (130,)),  # 2.999 lots round down
        (100_000.0, 2, 2, (130,)),  # max lots cap
        (39_000.0, 30, 30, (1755, 195)),  # 30 x 65 = 1950 > 1800: 27 + 3 lots
    ],
)
def test_sizing_through_the_manager(
    risk_cap: float, max_lots: int, lots: int, slices: tuple[int, ...]
) -> None:
    m, _ = manager(risk_cap=risk_cap, max_lots=max_lots)
    entry = entry_of(m.on_signal(signal(Side.BUY), CHAINS, nearest_liquid_strike))
    assert (entry.lots, entry.qty, entry.slices) == (lots, lots * 65, slices)


def test_intraday_levels() -> None:
    m, _ = manager(mode="intraday")
    entry = entry_of(m.on_signal(signal(Side.SELL), CHAINS, nearest_liquid_strike))
    assert (entry.stop, entry.target) == (70.0, 160.0)
    assert (entry.lots, entry.payload["risk_per_lot"]) == (1, 1950.0)  # (100 - 70) x 65


def test_a_one_tick_premium_cannot_carry_a_stop() -> None:
    m, _ = manager()
    chains = [make_chain(time_value=0.05, spread=0.0)]
    decision = m.on_signal(signal(Side.BUY), chains, nearest_liquid_strike)
    assert decision.code == "premium_too_small"


def test_no_entries_from_the_square_off_time() -> None:
    m, clock = manager()
    clock.set_ns(ns(datetime(2026, 3, 2, 15, 14, 59, 999_999, tzinfo=IST)))
    assert m.on_signal(signal(Side.BUY, bar=0), CHAINS, nearest_liquid_strike).code is None
    clock.set_ns(ns(datetime(2026, 3, 2, 15, 15, tzinfo=IST)))
    late = m.on_signal(signal(Side.SELL, bar=1), CHAINS, nearest_liquid_strike)
    assert (late.code, late.reason) == ("after_square_off", "no entries from 15:15 IST")


# -- ids ------------------------------------------------------------------------------------


def test_ids_are_deterministic_on_replay() -> None:
    sig = signal(Side.BUY, bar=3)
    first = entry_of(manager()[0].on_signal(sig, CHAINS, nearest_liquid_strike))
    replay = entry_of(manager()[0].on_signal(sig, CHAINS, nearest_liquid_strike))
    assert replay == first
    assert (
        first.id == f"scalp-NSE:NIFTY 50-{sig.bar_ts_ns}-entry-BUY/{contract(TUE1, 25_000, 'CE')}"
    )
    other_bar = entry_of(
        manager()[0].on_signal(signal(Side.BUY, bar=4), CHAINS, nearest_liquid_strike)
    )
    other_expiry = entry_of(
        manager(fixed_expiry=TUE2)[0].on_signal(sig, CHAINS, nearest_liquid_strike)
    )
    assert len({first.id, other_bar.id, other_expiry.id}) == 3


# -- positions and exits --------------------------------------------------------------------


def open_call(m: OptionsManager, **fill: Any) -> OptionSignal:
    entry = entry_of(m.on_signal(signal(Side.BUY, bar=0), CHAINS, nearest_liquid_strike))
    m.on_entry_filled(entry, **fill)
    return entry


def test_underlying_exit_closes_the_call_at_the_chain_premium() -> None:
    m, clock = manager()
    entry = open_call(m)
    (pos,) = m.positions()
    assert (pos.symbol, pos.qty, pos.lots, pos.entry_price, pos.exiting) == (
        entry.symbol, 65, 1, 100.0, False,
    )  # fmt: skip
    at(clock, 1)  # within the debounce window: exits are never debounced
    exit_sig = signal(Side.SELL, "exit", bar=1, reason="opposite_cross", price=24_980.0)
    moved = [make_chain(TUE1, spot=25_040.0)]  # the 25,000 CE: 40 intrinsic + 100
    decision = m.on_signal(exit_sig, moved, nearest_liquid_strike)
    (out,) = decision.signals
    assert decision.code is None
    assert decision.exits == (out,)
    assert decision.entry is None
    assert out.id == f"{exit_sig.id}/{entry.symbol}"
    assert (out.symbol, out.side, out.kind, out.reason) == (
        entry.symbol,
        Side.SELL,
        "exit",
        "underlying_exit",
    )
    assert (out.qty, out.lots, out.slices, out.premium) == (65, 1, (65,), 140.0)
    assert (out.stop, out.target, out.underlying_signal_id) == (80.0, 130.0, exit_sig.id)
    assert out.payload["premium_source"] == "chain"
    assert out.payload["underlying_reason"] == "opposite_cross"
    assert m.positions()[0].exiting
    # a second exit signal finds nothing left to exit
    again = m.on_signal(signal(Side.SELL, "exit", bar=2), moved, nearest_liquid_strike)
    assert (again.signals, again.code) == ((), "no_position")
    assert m.on_exit_filled(entry.symbol) is None
    assert m.positions() == ()


def test_exit_of_a_short_does_not_close_calls() -> None:
    m, _ = manager()
    open_call(m)
    decision = m.on_signal(signal(Side.BUY, "exit", bar=1), [], nearest_liquid_strike)
    assert (decision.code, decision.reason) == (
        "no_position",
        "no open PE position on NIFTY to exit",
    )
    assert not m.positions()[0].exiting


def test_exit_premium_falls_back_to_the_last_quote_then_the_entry() -> None:
    m, _ = manager()
    entry = open_call(m)
    first = m.on_signal(signal(Side.SELL, "exit", bar=1), [], nearest_liquid_strike).signals[0]
    assert (first.premium, first.payload["premium_source"]) == (100.0, "entry")
    m.on_exit_cancelled(entry.symbol)
    m.on_option_quote(entry.symbol, 104.5, START)
    second = m.on_signal(signal(Side.SELL, "exit", bar=2), [], nearest_liquid_strike).signals[0]
    assert (second.premium, second.payload["premium_source"]) == (104.5, "quote")


def test_reversal_exits_the_call_and_buys_the_put() -> None:
    m, clock = manager(debounce_s=5.0)
    entry = open_call(m)
    at(clock, 2)
    rev = signal(Side.SELL, bar=1)
    decision = m.on_signal(rev, CHAINS, nearest_liquid_strike)
    exit_out, put = decision.signals
    assert (exit_out.symbol, exit_out.kind, exit_out.reason) == (entry.symbol, "exit", "reversal")
    assert exit_out.id == f"{rev.id}/{entry.symbol}"
    assert decision.entry == put
    assert (put.option_type, put.kind, put.id) == ("PE", "entry", f"{rev.id}/{put.symbol}")


def test_reversal_exit_is_not_debounced_even_when_its_entry_is() -> None:
    m, clock = manager(debounce_s=5.0, cooldown_s=0.0)
    assert m.on_signal(signal(Side.SELL, bar=0), CHAINS, nearest_liquid_strike).code is None
    at(clock, 1)
    call = entry_of(m.on_signal(signal(Side.BUY, bar=1), CHAINS, nearest_liquid_strike))
    m.on_entry_filled(call)
    at(clock, 3)  # 3 s after the previous SELL
    decision = m.on_signal(signal(Side.SELL, bar=2), CHAINS, nearest_liquid_strike)
    assert decision.code == "debounced"
    assert decision.rejected
    assert [s.symbol for s in decision.exits] == [call.symbol]
    assert decision.entry is None


def test_open_position_blocks_a_second_entry_of_its_type() -> None:
    m, clock = manager(debounce_s=0.0, cooldown_s=0.0)
    open_call(m)
    at(clock, 120)
    decision = m.on_signal(signal(Side.BUY, bar=1), CHAINS, nearest_liquid_strike)
    assert (decision.code, decision.reason) == ("position_open", "a CE position on NIFTY is open")


def test_premium_stop_and_target_exits() -> None:
    m, _ = manager()
    entry = open_call(m)
    ts = START + timedelta(seconds=30)
    assert m.on_option_quote(entry.symbol, 80.05, ts) is None
    assert m.on_option_quote(entry.symbol, 129.95, ts) is None
    stop = m.on_option_quote(entry.symbol, 80.0, ts)  # touches the stop
    assert stop is not None
    assert (stop.reason, stop.premium, stop.side, stop.qty, stop.ts) == (
        "premium_stop", 80.0, Side.SELL, 65, ts,
    )  # fmt: skip
    assert stop.id == f"{entry.id}/premium_stop@{ns(ts)}"
    assert stop.underlying_signal_id == entry.underlying_signal_id
    assert m.on_option_quote(entry.symbol, 70.0, ts) is None  # already exiting
    m.on_exit_cancelled(entry.symbol)  # the exit died: re-armed
    later = ts + timedelta(seconds=1)
    target = m.on_option_quote(entry.symbol, 131.0, later)
    assert target is not None
    assert (target.reason, target.premium, target.id) == (
        "premium_target", 131.0, f"{entry.id}/premium_target@{ns(later)}",
    )  # fmt: skip
    assert m.on_option_quote("NFO:OTHER", 5.0, ts) is None  # no position: just remembered


def test_fills_add_up_and_reanchor_the_levels() -> None:
    m, _ = manager(risk_cap=39_000.0, max_lots=30)
    entry = entry_of(m.on_signal(signal(Side.BUY), CHAINS, nearest_liquid_strike))
    assert entry.slices == (1755, 195)
    m.on_entry_filled(entry, qty=1755, price=110.0)
    pos = m.on_entry_filled(entry, qty=195, price=120.0)
    assert (pos.qty, pos.lots) == (1950, 30)
    assert pos.entry_price == pytest.approx(111.0)  # (1755 x 110 + 195 x 120) / 1950
    assert (pos.stop, pos.target) == (88.8, 144.3)  # 111 x 0.8, 111 x 1.3
    # a partial exit leaves the rest, sliced again on the next exit
    left = m.on_exit_filled(entry.symbol, 1755)
    assert left is not None
    assert left.qty == 195
    out = m.square_off(datetime(2026, 3, 2, 15, 15, tzinfo=IST))
    assert [o.slices for o in out] == [(195,)]


def test_square_off_from_the_configured_time() -> None:
    m, _ = manager()
    entry = open_call(m)
    m.on_option_quote(entry.symbol, 112.0, START)
    assert m.square_off(datetime(2026, 3, 2, 15, 14, 59, tzinfo=IST)) == []
    ts = datetime(2026, 3, 2, 9, 45, tzinfo=UTC)  # 15:15 IST
    (out,) = m.square_off(ts)
    assert (out.symbol, out.reason, out.premium, out.kind, out.ts) == (
        entry.symbol, "square_off", 112.0, "exit", ts,
    )  # fmt: skip
    assert out.id == f"{entry.id}/square_off@{ns(ts)}"
    assert m.square_off(ts + timedelta(minutes=1)) == []  # already exiting


def test_square_off_closes_a_position_left_from_an_earlier_day() -> None:
    m, _ = manager()
    open_call(m)
    (out,) = m.square_off(datetime(2026, 3, 3, 9, 20, tzinfo=IST))
    assert (out.reason, out.premium) == ("square_off", 100.0)  # no quote: the entry premium


# -- invalid input --------------------------------------------------------------------------


class NaiveClock:
    def now(self) -> datetime:
        return datetime(2026, 3, 2, 10, 0)  # naive on purpose


def test_invalid_inputs_raise() -> None:
    m, _ = manager()
    with pytest.raises(InvalidInputError):
        OptionsManager(OptionsParams(), NaiveClock()).on_signal(
            signal(Side.BUY), CHAINS, nearest_liquid_strike
        )
    bad = signal(Side.BUY)._replace(kind="enter")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        m.on_signal(bad, CHAINS, nearest_liquid_strike)
    with pytest.raises(InvalidInputError):  # a chain of another underlying
        m.on_signal(
            signal(Side.BUY), [make_chain(underlying="NSE:NIFTY BANK")], nearest_liquid_strike
        )
    with pytest.raises(InvalidInputError):  # two chains of one expiry
        m.on_signal(signal(Side.BUY), [make_chain(), make_chain()], nearest_liquid_strike)
    with pytest.raises(InvalidInputError):
        m.on_option_quote("NFO:X", 10.0, datetime(2026, 3, 2, 10, 0))
    with pytest.raises(InvalidInputError):
        m.on_option_quote("NFO:X", math.nan, START)
    with pytest.raises(InvalidInputError):
        m.square_off(datetime(2026, 3, 2, 15, 20))


def test_invalid_fills_raise() -> None:
    m, _ = manager()
    entry = open_call(m)
    exit_sig = m.on_signal(signal(Side.SELL, "exit", bar=1), [], nearest_liquid_strike).signals[0]
    with pytest.raises(InvalidInputError):
        m.on_entry_filled(exit_sig)
    with pytest.raises(InvalidInputError):
        m.on_entry_filled(entry, qty=64)
    with pytest.raises(InvalidInputError):
        m.on_entry_filled(entry, price=0.0)
    with pytest.raises(InvalidInputError):
        m.on_exit_filled(entry.symbol, 130)
    assert m.on_exit_filled("NFO:UNKNOWN") is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"debounce_s": -1.0},
        {"cooldown_s": math.inf},
        {"min_days_to_expiry": -1},
        {"max_lots": 0},
        {"risk_cap": math.nan},
        {"mode": "swing"},
    ],
)
def test_invalid_params_raise(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        OptionsParams(**overrides)


# -- configuration --------------------------------------------------------------------------


def test_params_from_settings() -> None:
    settings = load_settings(
        _env_file=None,
        mode="intraday",
        square_off_time="15:10",
        options_enabled=True,
        options_underlyings="nifty,banknifty",
        options_debounce_s=2.5,
        options_cooldown_s=30,
        options_min_days_to_expiry=1,
        options_max_lots=4,
        options_premium_risk=5000,
    )
    params = OptionsParams.from_settings(settings)
    assert params.underlyings == frozenset({"NIFTY", "BANKNIFTY"})
    assert (params.debounce_s, params.cooldown_s, params.min_days_to_expiry) == (2.5, 30.0, 1)
    assert (params.max_lots, params.risk_cap, params.fixed_expiry) == (4, 5000.0, None)
    assert (params.mode, params.premium_levels) == ("intraday", PremiumLevels(30.0, 60.0))
    assert params.square_off_time == time(15, 10)
    scalp = OptionsParams.from_settings(settings, mode="scalp")
    assert scalp.premium_levels == PremiumLevels(20.0, 30.0)


def test_disabled_options_trade_no_underlying() -> None:
    params = OptionsParams.from_settings(load_settings(_env_file=None, options_enabled=False))
    assert params.underlyings == frozenset()
