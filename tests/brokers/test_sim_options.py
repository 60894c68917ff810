"""The simulated market's options: listing, chains and option ticks."""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest

from mental_trader.brokers.sim import SimBroker
from mental_trader.brokers.sim.clock import ManualClock
from mental_trader.brokers.sim.market import SimMarket
from mental_trader.brokers.sim.options import SimFnoSpec, SimOptions, tradingsymbol
from mental_trader.calendar import IST, TradingCalendar
from mental_trader.core import implied_vol_black76
from mental_trader.errors import InvalidInputError
from mental_trader.storage.base import dt_to_ns

NIFTY = "NSE:NIFTY 50"
DAY = date(2026, 11, 25)  # a Wednesday session
AT = datetime(2026, 11, 25, 11, 0, tzinfo=IST)
WEEKLY = date(2026, 12, 1)


@pytest.fixture(scope="module")
def options(market: SimMarket) -> SimOptions:
    return SimOptions(market)


def test_expiries_are_tuesdays_weekly_and_monthly(options: SimOptions) -> None:
    listed = options.expiries(NIFTY, DAY)
    assert listed[:5] == [
        (date(2026, 12, 1), False),
        (date(2026, 12, 8), False),
        (date(2026, 12, 15), False),
        (date(2026, 12, 22), False),
        (date(2026, 12, 29), True),  # December's last Tuesday: the monthly
    ]
    assert [e for e, monthly in listed if monthly] == [
        date(2026, 12, 29),
        date(2027, 1, 26),
        date(2027, 2, 23),
    ]
    # A stock has monthly expiries only.
    assert all(monthly for _, monthly in options.expiries("NSE:INFY", DAY))


def test_an_expiry_on_a_holiday_moves_to_the_session_before(options: SimOptions) -> None:
    # 2026-11-24, the last Tuesday of November, is an NSE holiday (Guru Nanak Jayanti).
    assert not options.calendar.is_session(date(2026, 11, 24))
    listed = dict(options.expiries("NSE:INFY", date(2026, 11, 20)))
    assert listed.get(date(2026, 11, 23)) is True
    assert date(2026, 11, 24) not in listed


def test_strikes_are_on_the_grid_around_the_previous_close(options: SimOptions) -> None:
    strikes = options.strikes(NIFTY, DAY)
    assert len(strikes) == 81
    assert np.all(np.diff(strikes) == 50.0)
    assert np.all(strikes % 50 == 0)
    prev_close = options.market.open_close(NIFTY, date(2026, 11, 23))[1]
    assert abs(strikes[40] - prev_close) <= 25.0


def test_tradingsymbols_follow_kite() -> None:
    assert tradingsymbol("NIFTY", date(2026, 12, 29), 24_000.0, "CE", True) == "NIFTY26DEC24000CE"
    assert tradingsymbol("NIFTY", date(2026, 12, 1), 24_050.0, "PE", False) == "NIFTY26D0124050PE"
    assert tradingsymbol("NIFTY", date(2027, 1, 5), 23_000.0, "CE", False) == "NIFTY2710523000CE"
    assert tradingsymbol("INFY", date(2026, 10, 27), 1_520.0, "PE", True) == "INFY26OCT1520PE"


def test_instruments_carry_the_contract_facts(options: SimOptions) -> None:
    rows = options.instruments(DAY)
    nifty = [r for r in rows if r.underlying == NIFTY]
    # 7 expiries x 81 strikes x 2 sides
    assert len(nifty) == 7 * 81 * 2
    r = next(r for r in nifty if r.symbol == "NFO:NIFTY26D0124000CE" or r.strike == 24_000.0)
    assert (r.exchange, r.segment, r.lot_size, r.freeze_qty, r.tick_size) == (
        "NFO",
        "NFO-OPT",
        65,
        1800,
        0.05,
    )
    assert r.instrument_type in {"CE", "PE"}
    assert r.expiry is not None
    assert len({r.symbol for r in rows}) == len(rows)
    assert options.contract(nifty[0].symbol, DAY).underlying.symbol == NIFTY


def test_chain_prices_keep_parity_and_give_back_the_smile(options: SimOptions) -> None:
    chain = options.chain(NIFTY, WEEKLY, AT)
    assert (chain.lot_size, chain.freeze_qty) == (65, 1800)
    t, r = chain.years, chain.rate
    forward = chain.spot * math.exp(r * t)
    df = math.exp(-r * t)
    parity = chain.ce.last - chain.pe.last - df * (forward - chain.strike)
    # Same volatility on both sides of a strike: parity up to the two roundings to the tick
    # (where neither premium sits at the one-tick floor).
    priced = (chain.ce.last > 0.05) & (chain.pe.last > 0.05)
    assert priced.sum() > 40
    assert np.max(np.abs(parity[priced])) <= 0.05 + 1e-9
    # The implied volatility of the (rounded) premiums is the smile, near the money.
    n = len(chain)
    near = np.abs(chain.strike - chain.spot) <= 300
    iv = implied_vol_black76(
        chain.ce.last,
        np.full(n, forward),
        chain.strike,
        np.full(n, t),
        np.full(n, r),
        np.ones(n, dtype=bool),
    )
    assert np.all(np.isfinite(iv[near]))
    assert np.all((iv[near] > 0.08) & (iv[near] < 0.3))
    # Skew: out-of-the-money puts (low strikes) carry more volatility than calls above.
    low, high = chain.atm_index() - 8, chain.atm_index() + 8
    put_iv = implied_vol_black76(
        chain.pe.last[[low]],
        np.array([forward]),
        chain.strike[[low]],
        np.array([t]),
        np.array([r]),
        np.zeros(1, dtype=bool),
    )
    assert put_iv[0] > iv[high]


def test_quotes_widen_away_from_the_money_and_straddle_the_premium(options: SimOptions) -> None:
    chain = options.chain(NIFTY, WEEKLY, AT)
    ce = chain.ce
    atm = chain.atm_index()
    two_sided = np.isfinite(ce.bid)
    assert np.all(ce.bid[two_sided] < ce.last[two_sided])
    assert np.all(ce.ask >= ce.last)
    spread_pct = (ce.ask - ce.bid) / ce.last
    assert spread_pct[atm] < spread_pct[atm + 6] < spread_pct[atm + 12]
    assert spread_pct[atm] < spread_pct[atm - 6]
    on_grid = np.round(ce.ask / 0.05)
    assert np.allclose(on_grid * 0.05, ce.ask)


def test_oi_and_volume_are_whole_lots_shaped_and_moving(options: SimOptions) -> None:
    morning = options.chain(NIFTY, WEEKLY, datetime(2026, 11, 25, 9, 30, tzinfo=IST))
    afternoon = options.chain(NIFTY, WEEKLY, datetime(2026, 11, 25, 14, 30, tzinfo=IST))
    for side in (morning.ce, morning.pe, afternoon.ce, afternoon.pe):
        assert np.all(side.oi % 65 == 0)
        assert np.all(side.volume % 65 == 0)
        assert np.all(side.oi >= 0)
    # Calls' OI peaks above the money, puts' below.
    assert morning.strike[np.argmax(morning.ce.oi)] > morning.strike[np.argmax(morning.pe.oi)]
    # Volume only accrues; OI changes through the day.
    assert np.all(afternoon.ce.volume >= morning.ce.volume)
    assert afternoon.ce.volume.sum() > morning.ce.volume.sum()
    assert not np.array_equal(afternoon.ce.oi, morning.ce.oi)


def test_option_ticks_mark_the_position_like_the_chain(options: SimOptions) -> None:
    chain = options.chain(NIFTY, WEEKLY, AT)
    symbol = chain.ce.symbols[chain.atm_index()]
    ticks = options.day_ticks(symbol, DAY)
    base = options.market.day_ticks(NIFTY, DAY)
    assert np.array_equal(ticks.ts_ns, base.ts_ns)
    assert np.all(ticks.price >= 0.05)
    assert np.all(np.diff(ticks.cum_volume) == 65)
    i = int(np.searchsorted(ticks.ts_ns, dt_to_ns(AT), side="right")) - 1
    assert ticks.price[i] == chain.ce.last[chain.atm_index()]
    # A call rises and falls with its underlying.
    up = np.diff(base.price) > 0
    moves = np.diff(ticks.price)
    assert np.mean(moves[up] >= 0) > 0.95


def test_the_same_seed_gives_the_same_chain() -> None:
    a = SimOptions(SimMarket(7, TradingCalendar())).chain(NIFTY, WEEKLY, AT)
    b = SimOptions(SimMarket(7, TradingCalendar())).chain(NIFTY, WEEKLY, AT)
    c = SimOptions(SimMarket(8, TradingCalendar())).chain(NIFTY, WEEKLY, AT)
    assert np.array_equal(a.ce.last, b.ce.last)
    assert np.array_equal(a.pe.oi, b.pe.oi)
    assert a.spot != c.spot


def test_unknown_underlyings_expiries_and_symbols_are_refused(options: SimOptions) -> None:
    with pytest.raises(InvalidInputError, match="no options"):
        options.chain("NSE:TCS", WEEKLY, AT)
    with pytest.raises(InvalidInputError, match="no expiry"):
        options.chain(NIFTY, date(2026, 12, 2), AT)
    with pytest.raises(InvalidInputError, match="not listed"):
        options.day_ticks("NFO:NIFTY26D0199999CE", DAY)


def test_a_bad_spec_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fno.toml"
    path.write_text('tick_size = 0.05\nrate = 0.06\n[underlyings."NSE:X"]\nname = "X"\n')
    with pytest.raises(InvalidInputError, match="sim F&O spec"):
        SimFnoSpec.load(path)


async def test_the_sim_broker_serves_chains_quotes_and_option_ticks() -> None:
    clock = ManualClock(AT)
    async with SimBroker(["NSE:INFY"], seed=42, clock=clock) as broker:
        chain = await broker.option_chain(NIFTY, WEEKLY)
        atm = chain.atm_index()
        symbol = chain.ce.symbols[atm]
        quote = (await broker.quote([symbol]))[symbol]
        assert quote.last_price == chain.ce.last[atm]
        assert quote.bid < quote.last_price < quote.ask
        # A feed streams an option with its underlying.
        feed = await broker.subscribe([NIFTY, symbol], resume_from_ns=dt_to_ns(AT))
        clock.advance(30.0)
        async with feed:
            frames = []
            async for frame in feed:
                frames.append(frame)
                if frame.end_ns >= dt_to_ns(AT) + 20 * 10**9:
                    break
        ids = np.concatenate([f.symbol for f in frames])
        assert set(ids.tolist()) == {0, 1}
        option_prices = np.concatenate([f.price[f.symbol == 1] for f in frames])
        assert np.all(np.abs(option_prices - chain.ce.last[atm]) < 0.02 * chain.ce.last[atm] + 5)
