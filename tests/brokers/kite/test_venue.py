"""The Kite session in the service: login through the API's callback route, the token file,
/health's session state, and a dead token halting trading once (fake Kite on loopback)."""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

from mental_trader.api import create_app
from mental_trader.brokers.kite.broker import KiteBroker
from mental_trader.brokers.kite.session import TOKEN_FILE
from mental_trader.brokers.kite.venue import KiteVenue
from mental_trader.errors import AuthError, BrokerError
from mental_trader.risk import TradingState
from mental_trader.runtime import open_service
from mental_trader.service import DualTimeframeService
from mental_trader.testing.fake_kite import FakeKite

from ._settings import API_TOKEN, kite_settings

Factory = Callable[..., AbstractAsyncContextManager[FakeKite]]


@pytest.fixture
async def kite_service(fake_kite: FakeKite, tmp_path: Path) -> AsyncIterator[DualTimeframeService]:
    settings = kite_settings(fake_kite, tmp_path)
    async with open_service(settings, market_now=fake_kite.now) as service:
        yield service


async def test_without_a_session_the_service_asks_for_a_login(
    kite_service: DualTimeframeService,
) -> None:
    health = kite_service.health()
    assert health["broker_session"].startswith("missing: log in")
    assert "kite login" in health["broker_session"]
    await kite_service.start()
    task = kite_service._task
    assert task is not None
    with pytest.raises(AuthError):
        await asyncio.wait_for(task, 10)
    assert "log in" in kite_service.last_error
    assert kite_service.health()["status"] == "down"


async def test_callback_route_logs_in_and_stores_the_token_owner_only(
    fake_kite: FakeKite, kite_service: DualTimeframeService, tmp_path: Path
) -> None:
    app = create_app(kite_service.settings, kite_service)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as anon:
        bad = await anon.get("/kite/callback", params={"request_token": "nosuchtoken1"})
        assert bad.status_code == 502
        failed = await anon.get(
            "/kite/callback", params={"request_token": "abc", "status": "cancelled"}
        )
        assert failed.status_code == 400
        request_token = fake_kite.issue_request_token()
        hurried = await anon.get("/kite/callback", params={"request_token": request_token})
        assert hurried.status_code == 502  # one exchange a second: the flood guard
        assert "just attempted" in hurried.json()["detail"]
        await asyncio.sleep(1.05)
        ok = await anon.get("/kite/callback", params={"request_token": request_token})
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["session"].startswith("logged_in until")
        assert body["expires_at"].endswith("+05:30")
        await asyncio.sleep(1.05)
        again = await anon.get("/kite/callback", params={"request_token": request_token})
        assert again.status_code == 502  # single use
        assert "just attempted" not in again.json()["detail"]
        url = await anon.get("/broker/login", headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert url.json()["login_url"].startswith("https://kite.zerodha.com/connect/login")
    path = tmp_path / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = kite_service.venue.broker.rest.access_token  # type: ignore[union-attr]
    assert token is not None
    assert fake_kite.token_ok(fake_kite.api_key, token)
    assert kite_service.health()["broker_session"].startswith("logged_in")


async def test_a_stored_session_is_used_on_the_next_start(
    fake_kite: FakeKite, tmp_path: Path
) -> None:
    settings = kite_settings(fake_kite, tmp_path)
    async with KiteBroker.from_settings(settings, now=fake_kite.now) as broker:
        await KiteVenue(settings, broker).login(fake_kite.issue_request_token())
    async with KiteBroker.from_settings(settings, now=fake_kite.now) as broker:
        venue = KiteVenue(settings, broker)
        venue.require_session()
        assert len(await broker.instruments()) > 3


async def test_a_refused_token_halts_trading_and_alerts_once(
    fake_kite: FakeKite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = kite_settings(fake_kite, tmp_path, broker_access_token=fake_kite.access_token)
    caplog.set_level(logging.DEBUG)
    async with open_service(settings, market_now=fake_kite.now) as service:
        venue = service.venue
        assert isinstance(venue, KiteVenue)
        venue.require_session()
        fake_kite.faults.token_expired = True
        for _ in range(3):
            with pytest.raises(AuthError):
                await venue.broker.ltp(["NSE:INFY"])
        assert service.risk.state is TradingState.HALTED
        assert "log in" in service.risk.state_reason
        # no flatten: every exit would be refused with the same dead token, in a loop
        assert service.risk.take_flatten_request() is None
        assert service.health()["broker_session"].startswith("expired")
        with pytest.raises(AuthError):
            venue.require_session()
        alerts = [
            r
            for r in caplog.records
            if r.name == "mental_trader.service" and "Kite session lost" in r.getMessage()
        ]
        assert len(alerts) == 1
    assert fake_kite.access_token not in caplog.text


async def test_a_login_of_another_kite_account_is_refused(
    fake_kite: FakeKite, tmp_path: Path
) -> None:
    """The stored session belongs to one Kite user: a login as someone else must not switch
    the live client to that account (our positions would go unmanaged)."""
    settings = kite_settings(fake_kite, tmp_path, broker_access_token=fake_kite.access_token)
    async with KiteBroker.from_settings(settings, now=fake_kite.now) as broker:
        venue = KiteVenue(settings, broker)
        venue.tokens.save(
            "an-older-token", api_key=fake_kite.api_key, login_at=fake_kite.now(), user_id="ZZ9999"
        )
        ours = broker.rest.access_token
        with pytest.raises(BrokerError, match="another account"):
            await venue.login(fake_kite.issue_request_token())
        assert broker.rest.access_token == ours  # still our account's session
        stored = venue.tokens.read()
        assert stored is not None
        assert stored.user_id == "ZZ9999"  # the token file is not replaced either
