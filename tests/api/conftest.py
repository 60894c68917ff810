"""API test set-up: a small real service stand-in over a REAL SQLite store, and a client.

``FakeService`` implements :class:`~mental_trader.api.ServiceApi` in memory (engine state,
halts, flattens) and reads a real, migrated SQLite store seeded through the store API. The
client fixture enters the app's lifespan itself: ``httpx.ASGITransport`` does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from mental_trader.api import Metrics, create_app
from mental_trader.config import Settings, load_settings
from mental_trader.errors import InvalidInputError
from mental_trader.models import Fill, OptionTrade, OrderIntent, Side, SignalRecord, Trade
from mental_trader.storage import Store, open_store

TOKEN = "test-token-0123456789abcdef"
# Every secret setting, with a value that must never appear in any response.
SECRETS: dict[str, str] = {
    "broker_api_key": "kkey-ZQ7RW2M9VXPLT4",
    "broker_api_secret": "ksec-HJ5N8CQ3BYD6FG",
    "broker_access_token": "kacc-TU2KE9WS4RZA7M",
    "notifier_webhook": "https://hooks.test.invalid/whk-PN3X8VDL5QJ2",
    "smtp_password": "smtp-GW6YH4TB9CK3RF",
    "api_token": TOKEN,
    "database_url": "postgresql://mt:pgpw-LM4QZ8XN2VE7@127.0.0.1:5432/mt",
}
# The parts that are secret (the webhook's host and the URL's user are not).
SECRET_VALUES = (
    "kkey-ZQ7RW2M9VXPLT4",
    "ksec-HJ5N8CQ3BYD6FG",
    "kacc-TU2KE9WS4RZA7M",
    "whk-PN3X8VDL5QJ2",
    "smtp-GW6YH4TB9CK3RF",
    TOKEN,
    "pgpw-LM4QZ8XN2VE7",
)

T0 = datetime(2024, 1, 2, 3, 45, tzinfo=UTC)  # 09:15 IST, a Tuesday
MINUTE_NS = 60 * 1_000_000_000


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings isolated from the environment's .env, with data under ``tmp_path``."""
    values: dict[str, Any] = {"data_dir": tmp_path / "data", "api_token": TOKEN}
    values.update(overrides)
    return load_settings(_env_file=None, **values)


class FakeService:
    """An in-memory :class:`~mental_trader.api.ServiceApi` over a real store."""

    def __init__(self, settings: Settings, store: Store, metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.running = False
        self.engines_started = 0
        self.halts: list[str] = []
        self.flattens: list[str] = []
        self.health_status = "ok"
        self.fail: Exception | None = None
        self._lock = asyncio.Lock()
        self.chains: dict[str, dict[str, Any]] = {
            "NIFTY": {"underlying": "NSE:NIFTY 50", "pcr_oi": 0.9, "ce": [], "pe": []}
        }
        self.chain_requests: list[tuple[str, date | None]] = []
        self.recent_option_signals: list[dict[str, Any]] = []
        self.open_option_positions: list[dict[str, Any]] = []

    def health(self) -> dict[str, Any]:
        lag = self.metrics.loop_lag.snapshot()
        return {
            "status": self.health_status,
            "feed": {"state": "connected" if self.running else "idle", "reconnects": 0},
            "last_tick_age_s": 0.2 if self.running else None,
            "db": {"state": "ok", "pending": 0, "acked": 3, "dropped": 0, "failed": 0},
            "broker_session": "sim",
            "loop_lag_ms": lag.p99_ms,
            "engine_running": self.running,
        }

    def status(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "trading_state": "HALTED" if self.halts else "ACTIVE",
            "symbols": {
                "NSE:RELIANCE": {"last_bar_ts": T0, "close": 101.5, "ema_fast": 101.2},
            },
            "positions": [{"symbol": "NSE:INFY", "qty": 5}],
            "pnl": {"realized": 10.0},
        }

    def option_chain(self, underlying: str, expiry: date | None = None) -> dict[str, Any] | None:
        self.chain_requests.append((underlying, expiry))
        return self.chains.get(underlying.upper())

    def option_signals(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.recent_option_signals[:limit]

    def option_positions(self) -> list[dict[str, Any]]:
        return list(self.open_option_positions)

    async def start(self) -> bool:
        if self.fail is not None:
            raise self.fail
        async with self._lock:
            if self.running:
                return False
            await asyncio.sleep(0.01)  # warm-up: the other callers pile up meanwhile
            self.running = True
            self.engines_started += 1
            return True

    async def stop(self) -> bool:
        async with self._lock:
            was, self.running = self.running, False
            return was

    async def halt(self, reason: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.halts.append(reason)

    async def flatten(self, reason: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.flattens.append(reason)

    def broker_login_url(self) -> str | None:
        return None

    async def broker_login(self, request_token: str) -> dict[str, Any]:
        raise InvalidInputError("BROKER=sim has no login")


async def seed(store: Store) -> None:
    """Real rows through the store API: signals, trades, an option trade, fills, candles."""
    for i, (symbol, side) in enumerate(
        [("NSE:RELIANCE", Side.BUY), ("NSE:INFY", Side.SELL), ("NSE:RELIANCE", Side.SELL)]
    ):
        await store.insert_signal(
            SignalRecord(
                id=f"sig-{i}",
                ts=T0 + timedelta(minutes=i),
                symbol=symbol,
                timeframe_s=60,
                side=side,
                price=100.0 + i,
                strategy="ema_cross",
                reason="cross",
                payload={"fast": 8, "slow": 21},
            )
        )
    await store.open_trade(
        Trade(
            id="t-rel",
            symbol="NSE:RELIANCE",
            side=Side.BUY,
            qty=10,
            entry_ts=T0,
            entry_price=100.0,
            strategy="ema_cross",
            signal_id="sig-0",
            entry_charges=1.0,
        )
    )
    await store.close_trade(
        "t-rel",
        exit_ts=T0 + timedelta(hours=1),
        exit_price=102.0,
        exit_charges=1.5,
        reason="target",
    )
    await store.open_trade(
        Trade(
            id="t-infy",
            symbol="NSE:INFY",
            side=Side.SELL,
            qty=5,
            entry_ts=T0 + timedelta(minutes=1),
            entry_price=1500.0,
        )
    )
    await store.open_option_trade(
        OptionTrade(
            id="o-1",
            underlying="NIFTY",
            symbol="NFO:NIFTY24JAN21500CE",
            expiry=date(2024, 1, 4),
            strike=21500.0,
            option_type="CE",
            side=Side.BUY,
            lots=1,
            lot_size=50,
            entry_ts=T0,
            entry_price=120.0,
        )
    )
    await store.close_option_trade("o-1", exit_ts=T0 + timedelta(hours=2), exit_price=130.0)
    fills = [
        ("c1", "NSE:RELIANCE", Side.BUY, 10, 100.0),
        ("c2", "NSE:RELIANCE", Side.SELL, 10, 102.0),
        ("c3", "NSE:INFY", Side.SELL, 5, 1500.0),
    ]
    for i, (client_id, symbol, side, qty, price) in enumerate(fills):
        await store.record_order_intent(OrderIntent(client_id, symbol, side, qty), T0)
        await store.apply_fill(
            Fill(f"f{i}", client_id, symbol, side, qty, price, T0 + timedelta(minutes=i))
        )
    n = 5
    await store.upsert_candles(
        "NSE:RELIANCE",
        60,
        {
            "ts": int(T0.timestamp()) * 1_000_000_000 + np.arange(n, dtype=np.int64) * MINUTE_NS,
            "open": np.full(n, 100.0),
            "high": np.full(n, 101.0),
            "low": np.full(n, 99.0),
            "close": 100.0 + np.arange(n, dtype=np.float64),
            "volume": np.full(n, 1000.0),
            "ticks": np.full(n, 7, dtype=np.int64),
        },
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store with seeded rows."""
    async with open_store(f"sqlite:///{tmp_path}/t.db") as s:
        await s.migrate()
        await seed(s)
        yield s


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with every secret set (see :data:`SECRETS`)."""
    return make_settings(tmp_path, **SECRETS)


@pytest.fixture
def service(settings: Settings, store: Store) -> FakeService:
    """The service stand-in."""
    return FakeService(settings, store, Metrics(lag_interval_s=0.01))


@pytest.fixture
def app(settings: Settings, service: FakeService) -> FastAPI:
    """The API of ``service``."""
    return create_app(settings, service)


def make_client(app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    """A client of ``app`` without a network, sending ``token`` when given."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
    )


@pytest.fixture
async def running_app(app: FastAPI) -> AsyncIterator[FastAPI]:
    """The app inside its lifespan (entered here: ASGITransport does not)."""
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def anon(running_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without a token."""
    async with make_client(running_app) as c:
        yield c


@pytest.fixture
async def client(running_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client sending the right bearer token."""
    async with make_client(running_app, TOKEN) as c:
        yield c
