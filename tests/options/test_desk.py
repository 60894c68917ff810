"""The options desk on the real sim broker, SQLite store and paper executor: a restart takes
over an open option position and its premium stop still closes it; the settings reach the
ranking and the premium levels."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from mental_trader.brokers.sim import SimBroker
from mental_trader.brokers.sim.clock import ManualClock
from mental_trader.calendar import IST, TradingCalendar
from mental_trader.config import load_settings
from mental_trader.execution import ChargesTable, Executor, PaperGateway
from mental_trader.models import Instrument, OptionTrade, Side, TradeStatus
from mental_trader.options.analyzer import RankingParams
from mental_trader.options.desk import DeskTiming, OptionsDesk
from mental_trader.options.manager import OptionsParams
from mental_trader.options.sizing import PremiumLevels
from mental_trader.risk import RiskManager
from mental_trader.service import ServiceClock
from mental_trader.storage import open_store

NIFTY = "NSE:NIFTY 50"
AT = datetime(2026, 11, 25, 11, 0, tzinfo=IST)


async def test_a_restart_takes_over_an_open_option_and_its_stop_closes_it(tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None, data_dir=tmp_path, options_enabled=True, daily_loss_limit=99_000.0
    )
    clock = ManualClock(AT)
    async with (
        open_store(settings.database_url) as store,
        SimBroker(["NSE:INFY"], seed=42, calendar=TradingCalendar(), clock=clock) as broker,
    ):
        await store.migrate()
        instruments: dict[str, Instrument] = {i.symbol: i for i in await broker.instruments()}
        chain = await broker.option_chain(NIFTY, date(2026, 12, 1))
        atm = chain.atm_index()
        symbol, premium = chain.ce.symbols[atm], float(chain.ce.last[atm])
        contract = instruments[symbol]
        # Before the "restart": a call bought at twice today's premium, still open.
        entry_price = round(2 * premium, 2)
        await store.open_option_trade(
            OptionTrade(
                id="MTrestored0000000001",
                underlying=NIFTY,
                symbol=symbol,
                expiry=date(2026, 12, 1),
                strike=float(chain.strike[atm]),
                option_type="CE",
                side=Side.BUY,
                lots=1,
                lot_size=contract.lot_size,
                entry_ts=AT,
                entry_price=entry_price,
                underlying_signal_id="scalp-NSE:NIFTY 50-1-entry-BUY",
                underlying_entry_price=chain.spot,
            )
        )
        charges = ChargesTable.load()
        trading = ServiceClock(clock.now)  # market time, real-time throttle
        risk = RiskManager(settings, trading)
        gateway = PaperGateway(charges, trading, half_spread_bps=0, instruments=instruments)
        executor = Executor(store, gateway, risk, charges, trading, instruments=instruments)
        await executor.restore()
        desk = OptionsDesk(
            OptionsParams.from_settings(settings),
            broker=broker,
            store=store,
            executor=executor,
            instruments=instruments,
            clock=trading,
            notify=lambda kind, payload: None,
            underlying_price=lambda s: chain.spot,
            timing=DeskTiming.for_speed(1.0),
        )
        assert await desk.prepare(AT.date()) == (NIFTY,)
        (taken,) = desk.manager.positions()
        assert (taken.symbol, taken.qty, taken.entry_price) == (symbol, 65, entry_price)
        assert taken.stop == pytest.approx(entry_price * 0.8, abs=0.05)  # scalp: 20 % stop
        # The premium is half the entry: far below the stop. One mark sends the exit, the
        # next quote fills it.
        await desk.mark_once()
        clock.advance(5.0)
        await desk.mark_once()
        (trip,) = await store.load_option_trades()
        assert trip.status is TradeStatus.CLOSED
        assert trip.exit_reason == "premium_stop"
        assert trip.exit_price is not None
        assert trip.exit_price < taken.stop
        assert trip.underlying_exit_price == chain.spot
        assert desk.manager.positions() == ()
        assert [s["reason"] for s in desk.signals_view()] == ["premium_stop"]


def test_settings_reach_the_ranking_and_the_premium_levels(tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None,
        data_dir=tmp_path,
        options_enabled=True,
        options_min_oi_percentile=70,
        options_max_spread_pct=2.5,
        options_delta_min=0.4,
        options_delta_max=0.6,
        options_weight_oi_change=0.5,
        options_stop_pct=15,
        mode="intraday",
    )
    ranking = RankingParams.from_settings(settings)
    assert (ranking.min_oi_percentile, ranking.max_spread_pct) == (70.0, 2.5)
    assert (ranking.delta_min, ranking.delta_max, ranking.weight_oi_change) == (0.4, 0.6, 0.5)
    params = OptionsParams.from_settings(settings)
    # The stop is configured; the target stays the intraday default.
    assert params.premium_levels == PremiumLevels(stop_pct=15.0, target_pct=60.0)
    assert OptionsParams.from_settings(load_settings(_env_file=None)).premium_levels == (
        PremiumLevels(stop_pct=20.0, target_pct=30.0)
    )
