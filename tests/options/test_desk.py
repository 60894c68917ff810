"""The options desk on the real sim broker, SQLite store and paper executor: a restart takes
over an open option position and its premium stop still closes it; the settings reach the
ranking and the premium levels."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pytest

from mental_trader.brokers.base import Quote
from mental_trader.brokers.sim import SimBroker
from mental_trader.brokers.sim.clock import ManualClock
from mental_trader.calendar import IST, TradingCalendar
from mental_trader.config import load_settings
from mental_trader.errors import BrokerError
from mental_trader.execution import ChargesTable, Executor, PaperGateway
from mental_trader.execution.orders import SubmitResult
from mental_trader.models import (
    OptionTrade,
    OrderIntent,
    OrderStatus,
    Side,
    TradeStatus,
)
from mental_trader.options.chain import OptionChain
from mental_trader.options.desk import MAX_CHAIN_AGE_S, OptionsDesk
from mental_trader.options.manager import OptionsParams
from mental_trader.options.ranking import RankingParams
from mental_trader.options.sizing import PremiumLevels
from mental_trader.risk import RiskManager
from mental_trader.service import ServiceClock
from mental_trader.storage import Store, open_store
from mental_trader.storage.base import dt_to_ns
from mental_trader.strategy.base import Signal

NIFTY = "NSE:NIFTY 50"
AT = datetime(2026, 11, 25, 11, 0, tzinfo=IST)


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


# ----------------------------------------------------------------------------- failure paths


class _Gateway(PaperGateway):
    """The paper gateway, refusing SELL orders while ``reject_sells`` is set."""

    reject_sells = False

    async def submit(self, intent: OrderIntent) -> SubmitResult:
        if self.reject_sells and intent.side is Side.SELL:
            return SubmitResult(False, OrderStatus.REJECTED, None, "RMS: blocked")
        return await super().submit(intent)


class _Broker(SimBroker):
    """The sim broker, with quotes that can fail."""

    quotes_fail = False

    async def quote(self, symbols: list[str]) -> dict[str, Quote]:  # type: ignore[override]
        if self.quotes_fail:
            raise BrokerError("quote service down")
        return await super().quote(symbols)


@dataclass
class _Rig:
    clock: ManualClock
    broker: _Broker
    gateway: _Gateway
    executor: Executor
    desk: OptionsDesk
    symbol: str
    premium: float
    spot: float


@asynccontextmanager
async def _rig(
    tmp_path: Path,
    at: datetime = AT,
    *,
    before_restart: Callable[[Store, OptionChain], Awaitable[None]] | None = None,
) -> AsyncIterator[_Rig]:
    """The desk as the service builds it, over a fresh store; ``before_restart`` writes what
    a previous run left before the executor restores and the desk prepares."""
    settings = load_settings(
        _env_file=None, data_dir=tmp_path, options_enabled=True, daily_loss_limit=99_000.0
    )
    clock = ManualClock(at)
    async with (
        open_store(settings.database_url) as store,
        _Broker(["NSE:INFY"], seed=42, calendar=TradingCalendar(), clock=clock) as broker,
    ):
        await store.migrate()
        instruments = {i.symbol: i for i in await broker.instruments()}
        chain = await broker.option_chain(NIFTY, date(2026, 12, 1))
        atm = chain.atm_index()
        if before_restart is not None:
            await before_restart(store, chain)
        trading = ServiceClock(clock.now)
        charges = ChargesTable.load()
        gateway = _Gateway(charges, trading, half_spread_bps=0, instruments=instruments)
        risk = RiskManager(settings, trading)
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
        )
        await desk.prepare(at.date())
        yield _Rig(
            clock,
            broker,
            gateway,
            executor,
            desk,
            chain.ce.symbols[atm],
            float(chain.ce.last[atm]),
            chain.spot,
        )


async def _open_call(rig: _Rig) -> None:
    """A call the desk did not see open (as when an entry's outcome was unknown and the
    broker filled it after all): entered and filled through the executor directly."""
    result = await rig.executor.enter(rig.symbol, Side.BUY, 65, rig.premium, "test", "sig-x")
    assert result.ok, result.reason
    rig.executor.on_tick(rig.symbol, dt_to_ns(rig.clock.now()), rig.premium)
    await rig.executor.pump()
    assert [p.symbol for p in rig.executor.positions()] == [rig.symbol]


async def test_an_unknown_filled_option_is_taken_over_and_managed(tmp_path: Path) -> None:
    async with _rig(tmp_path) as rig:
        await _open_call(rig)
        rig.clock.advance(2.0)
        await rig.desk.mark_once()  # the quote fills it; the desk finds it unmanaged
        (pos,) = rig.desk.manager.positions()
        assert pos.symbol == rig.symbol
        assert pos.stop < pos.entry_price < pos.target


async def test_a_rejected_exit_leaves_the_position_managed_and_it_exits_later(
    tmp_path: Path,
) -> None:
    square_off = datetime(2026, 11, 25, 15, 16, tzinfo=IST)
    async with _rig(tmp_path, square_off) as rig:
        await _open_call(rig)
        rig.clock.advance(2.0)
        rig.gateway.reject_sells = True
        await rig.desk.mark_once()  # fills the entry, adopts it
        await rig.desk.mark_once()  # square-off: the exit is rejected
        (pos,) = rig.desk.manager.positions()
        assert not pos.exiting  # re-armed, not stuck
        assert rig.executor.holds(rig.symbol)
        rig.gateway.reject_sells = False
        await rig.desk.mark_once()  # the square-off fires again and is placed
        rig.clock.advance(2.0)
        await rig.desk.mark_once()  # and fills
        assert not rig.executor.holds(rig.symbol)
        assert rig.desk.manager.positions() == ()
        (trip,) = await rig.desk.store.load_option_trades()
        assert (trip.status, trip.exit_reason) == (TradeStatus.CLOSED, "square_off")


async def test_failing_quotes_do_not_stop_the_square_off(tmp_path: Path) -> None:
    square_off = datetime(2026, 11, 25, 15, 16, tzinfo=IST)
    async with _rig(tmp_path, square_off) as rig:
        await _open_call(rig)
        rig.clock.advance(2.0)
        await rig.desk.mark_once()  # filled and adopted
        rig.broker.quotes_fail = True
        await rig.desk.mark_once()  # no quote at all: the square-off exit is still sent
        assert rig.executor.exit_working(rig.symbol)
        assert [s["reason"] for s in rig.desk.signals_view()] == ["square_off"]


async def test_a_restart_counts_option_entries_and_closes_an_expired_contract(
    tmp_path: Path,
) -> None:
    async with _rig(tmp_path) as rig:
        store = rig.desk.store
        await store.open_option_trade(
            OptionTrade(
                id="MTexpired00000000001",
                underlying=NIFTY,
                symbol="NFO:NIFTY26N1823000CE",  # a weekly that expired on 2026-11-18
                expiry=date(2026, 11, 18),
                strike=23_000.0,
                option_type="CE",
                side=Side.BUY,
                lots=1,
                lot_size=65,
                entry_ts=AT,
                entry_price=100.0,
            )
        )
        settings = load_settings(_env_file=None, data_dir=tmp_path, daily_loss_limit=99_000.0)
        trading = ServiceClock(rig.clock.now)
        risk = RiskManager(settings, trading)
        instruments = dict(rig.desk.instruments)
        again = Executor(
            store, rig.gateway, risk, ChargesTable.load(), trading, instruments=instruments
        )
        await again.restore()
        assert risk.trades_today == 1  # the option entry counts against MAX_TRADES_PER_DAY
        assert instruments["NFO:NIFTY26N1823000CE"].instrument_type == "CE"
        assert (await again.exit("NFO:NIFTY26N1823000CE", "expired")).ok
        again.on_tick("NFO:NIFTY26N1823000CE", dt_to_ns(rig.clock.now()), 0.05)
        await again.pump()
        (trip,) = await store.load_option_trades()
        assert (trip.status, trip.exit_reason, trip.exit_price) == (
            TradeStatus.CLOSED,
            "expired",
            0.05,
        )


async def test_a_restart_takes_over_an_open_option_and_its_stop_closes_it(tmp_path: Path) -> None:
    opened: dict[str, float] = {}

    async def before_restart(store: Store, chain: OptionChain) -> None:
        """A call bought at twice today's premium, still open when the service stopped."""
        atm = chain.atm_index()
        opened["price"] = round(2 * float(chain.ce.last[atm]), 2)
        await store.open_option_trade(
            OptionTrade(
                id="MTrestored0000000001",
                underlying=NIFTY,
                symbol=chain.ce.symbols[atm],
                expiry=date(2026, 12, 1),
                strike=float(chain.strike[atm]),
                option_type="CE",
                side=Side.BUY,
                lots=1,
                lot_size=chain.lot_size,
                entry_ts=AT,
                entry_price=opened["price"],
                underlying_signal_id="scalp-NSE:NIFTY 50-1-entry-BUY",
                underlying_entry_price=chain.spot,
            )
        )

    async with _rig(tmp_path, before_restart=before_restart) as rig:
        entry_price = opened["price"]
        (taken,) = rig.desk.manager.positions()
        assert (taken.symbol, taken.qty, taken.entry_price) == (rig.symbol, 65, entry_price)
        assert taken.stop == pytest.approx(entry_price * 0.8, abs=0.05)  # scalp: 20 % stop
        assert taken.opened_at == AT  # its own entry time, not the restart's
        # The premium is half the entry: far below the stop. One mark sends the exit, the
        # next quote fills it.
        await rig.desk.mark_once()
        rig.clock.advance(5.0)
        await rig.desk.mark_once()
        (trip,) = await rig.desk.store.load_option_trades()
        assert trip.status is TradeStatus.CLOSED
        assert trip.exit_reason == "premium_stop"
        assert trip.exit_price is not None
        assert trip.exit_price < taken.stop
        assert trip.underlying_exit_price == rig.spot
        assert rig.desk.manager.positions() == ()
        assert [s["reason"] for s in rig.desk.signals_view()] == ["premium_stop"]


def _signal(side: Side, n: int) -> Signal:
    bar = dt_to_ns(AT) + n * 60_000_000_000
    return Signal(
        NIFTY, side, "entry", 24_000.0, "ema_cross", None, None, 60, "scalp", bar, bar, {}
    )


async def test_a_reversal_cancels_the_working_entry_it_ends(tmp_path: Path) -> None:
    async with _rig(tmp_path) as rig:
        bought = await rig.desk.on_signal(_signal(Side.BUY, 0))
        call = bought.entry
        assert call is not None
        assert call.option_type == "CE"
        assert rig.executor.entry_working(call.symbol)  # sent, not filled: no mark yet
        # A second BUY while the call is still working: no second call.
        rig.clock.advance(120.0)  # past the debounce and the cooldown
        again = await rig.desk.on_signal(_signal(Side.BUY, 2))
        assert again.entry is not None  # the manager would enter again: the desk does not
        assert [p.symbol for p in rig.executor.positions()] == []
        assert not any(
            rig.executor.entry_working(s)
            for s in rig.desk.instruments
            if s != call.symbol and s.endswith("CE")
        )
        # The reversal: the working call is cancelled, a put goes out.
        rig.clock.advance(10.0)
        await rig.desk.refresh_chains()  # as the background refresh keeps them fresh
        sold = await rig.desk.on_signal(_signal(Side.SELL, 3))
        await rig.executor.pump()  # as the service's order task does after each signal
        assert not rig.executor.holds(call.symbol)
        assert sold.entry is not None
        assert sold.entry.option_type == "PE"
        assert rig.executor.entry_working(sold.entry.symbol)


async def test_stale_chains_are_not_traded(tmp_path: Path) -> None:
    async with _rig(tmp_path) as rig:
        rig.clock.advance(MAX_CHAIN_AGE_S + 1.0)  # the cache was filled at AT, not since
        decision = await rig.desk.on_signal(_signal(Side.BUY, 0))
        assert decision.code == "no_expiry"
        assert not any(rig.executor.holds(s) for s in rig.desk.instruments)
        rig.clock.advance(10.0)  # past the debounce of the first signal
        await rig.desk.refresh_chains()
        fresh = await rig.desk.on_signal(_signal(Side.BUY, 10))
        assert fresh.entry is not None
