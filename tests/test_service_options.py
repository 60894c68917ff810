"""End-to-end: the options layer in the running service, on the simulated market (issue 5).

Only real components: SQLite under ``tmp_path``, the sim broker with its option chains and
its accelerated clock, the Rust engine, the analyzer, the options manager, the paper
executor. An underlying (NIFTY 50) crossover must become an option trade that is entered,
marked, exited and stored with its attribution. Timing-dependent values (which bar fills an
order) are checked for their invariants, not their values.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path

import httpx
import pytest

from mental_trader.api import create_app
from mental_trader.brokers.sim.clock import session_open
from mental_trader.config import Settings, load_settings
from mental_trader.execution import ChargesTable
from mental_trader.execution.orders import client_id_for
from mental_trader.models import OptionTrade, Side, TradeStatus
from mental_trader.runtime import calendar_for, open_service
from mental_trader.service import DualTimeframeService
from mental_trader.storage.base import dt_to_ns

DAY = date(2025, 1, 8)
NIFTY = "NSE:NIFTY 50"
SPEED = 4_000.0
TIMEOUT_S = 60.0
TOKEN = "tok-" + "y" * 24
EXIT_REASONS = {"premium_stop", "premium_target", "reversal", "square_off", "underlying_exit"}
_SETTING_NAMES = frozenset(Settings.env_names())


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.upper() in _SETTING_NAMES:
            monkeypatch.delenv(name)


async def _until(
    condition: Callable[[], Awaitable[bool]], what: str, service: DualTimeframeService
) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not await condition():
        if service.last_error:
            pytest.fail(f"the service failed while waiting for {what}: {service.last_error}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_an_underlying_cross_becomes_an_option_trade_entered_marked_and_exited(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        _env_file=None,
        data_dir=tmp_path,
        sim_seed=42,
        watchlist="INFY",
        options_enabled=True,
        max_orders_per_second=9,
        daily_loss_limit=99_000.0,
    )
    start_ns = dt_to_ns(session_open(calendar_for(settings), DAY))
    async with open_service(settings, speed=SPEED, start_ns=start_ns) as service:
        assert await service.start()

        async def closed_option_trip() -> bool:
            trips = await service.store.load_option_trades(status=TradeStatus.CLOSED)
            return bool(trips)

        await _until(closed_option_trip, "a closed option round trip", service)
        status = service.status()
        # The API over the running service: the cached chain with analytics, the option
        # signals, the attribution.
        app = create_app(settings, service, api_token=TOKEN)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as api:
            chain = (await api.get("/options/NIFTY/chain")).json()
            option_signals = (await api.get("/options/signals")).json()
            legs = (await api.get("/pnl/attribution")).json()
        desk = service.options
        assert desk is not None
        attribution = await desk.attribution()
        assert await service.stop()
        store = service.store
        trips = await store.load_option_trades(status=TradeStatus.CLOSED)
        signals = {s.id: s for s in await store.load_signals(symbol=NIFTY, limit=1000)}
        orders = {o.client_id: o for o in await store.load_orders()}
        equity_trips = await store.load_trades()
        master = await store.count_derivatives()

    # The options layer ran on NIFTY, from the stored instrument master.
    assert status["options"]["underlyings"] == [NIFTY]
    assert master[NIFTY] > 100
    assert status["options"]["decision_us_p99"] is not None

    trip: OptionTrade = trips[-1]  # the first round trip of the day
    # The contract: a NIFTY option on the 50-point grid, whole lots of 65.
    assert trip.underlying == NIFTY
    assert trip.symbol.startswith("NFO:NIFTY")
    assert trip.strike % 50 == 0
    assert trip.lot_size == 65
    assert trip.lots >= 1
    assert trip.expiry >= DAY
    assert trip.side is Side.BUY  # we buy options: calls on BUY signals, puts on SELL
    # Attribution: the underlying signal it came from, and the underlying's prices.
    assert trip.underlying_signal_id in signals
    cause = signals[trip.underlying_signal_id]
    assert trip.option_type == ("CE" if cause.side is Side.BUY else "PE")
    assert trip.underlying_entry_price == cause.price
    assert trip.underlying_exit_price is not None
    assert trip.exit_reason in EXIT_REASONS
    # Money: gross from the fills, net of both legs' options charges.
    qty = trip.lots * trip.lot_size
    assert trip.exit_price is not None
    assert trip.gross_pnl == pytest.approx((trip.exit_price - trip.entry_price) * qty)
    table = ChargesTable.load(settings.charges_file)
    assert trip.entry_charges == pytest.approx(
        table.compute(DAY, "options", Side.BUY, trip.entry_price, qty).total
    )
    assert trip.exit_charges == pytest.approx(
        table.compute(DAY, "options", Side.SELL, trip.exit_price, qty).total
    )
    assert trip.net_pnl == pytest.approx(trip.gross_pnl - trip.entry_charges - trip.exit_charges)
    # One order per option signal: its client id comes from the option signal's id.
    entry_order = orders[trip.id]
    assert trip.id == client_id_for(f"{trip.underlying_signal_id}/{trip.symbol}")
    assert entry_order.symbol == trip.symbol
    # Option round trips are not equity round trips too.
    assert all(not t.symbol.startswith("NFO:") for t in equity_trips)
    # P&L attribution per leg: NIFTY (an index) has only the option leg.
    closed_net = sum(t.net_pnl or 0.0 for t in trips)
    assert attribution[NIFTY]["option"] == pytest.approx(closed_net, abs=0.01)
    assert attribution[NIFTY]["underlying"] == 0.0
    assert math.isfinite(status["options"]["decision_us_p50"])
    # The chain view: both sides per strike, IVs solved near the money, a ranking.
    assert chain["underlying"] == NIFTY
    assert len(chain["ce"]) == len(chain["pe"]) > 50
    near = [row for row in chain["ce"] if abs(row["strike"] - chain["spot"]) <= 200]
    assert near
    assert all(row["iv"] is not None and 0.05 < row["iv"] < 0.5 for row in near)
    assert chain["pcr_oi"] > 0
    assert chain["max_pain"] in {row["strike"] for row in chain["ce"]}
    assert chain["ranked"]["CE"]
    assert chain["ranked"]["CE"][0]["breakdown"]
    entries = [s for s in option_signals if s["kind"] == "entry"]
    assert any(s["underlying_signal_id"] == trip.underlying_signal_id for s in entries)
    (nifty_legs,) = [u for u in legs["underlyings"] if u["underlying"] == NIFTY]
    assert nifty_legs["option_trades"] >= 1
