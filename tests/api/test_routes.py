"""Every read endpoint against the seeded SQLite store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import numpy as np
import pytest

from mental_trader import __version__
from mental_trader.api.routes.candles import iso_utc
from mental_trader.storage import Store
from mental_trader.storage.base import CandleRow, dt_to_ns

from .conftest import T0, FakeService


async def test_root_describes_the_system_and_lists_endpoints(client: httpx.AsyncClient) -> None:
    body = (await client.get("/")).json()
    assert body["name"] == "Mental Trader"
    assert body["version"] == __version__
    assert (body["mode"], body["broker"], body["execution"]) == ("scalp", "sim", "paper")
    assert body["token_source"] == "API_TOKEN"
    endpoints = {e["path"]: e for e in body["endpoints"]}
    for path in (
        "/",
        "/health",
        "/status",
        "/config",
        "/control/start",
        "/control/stop",
        "/control/halt",
        "/control/flatten",
        "/signals",
        "/trades",
        "/positions",
        "/pnl/daily",
        "/candles/{symbol}",
        "/metrics",
        "/docs",
        "/openapi.json",
    ):
        assert path in endpoints
    assert [p for p, e in endpoints.items() if not e["auth"]] == [
        "/docs",
        "/health",
        "/kite/callback",
        "/openapi.json",
    ]
    assert endpoints["/broker/login"]["auth"]
    assert endpoints["/control/halt"]["methods"] == ["POST"]


@pytest.mark.parametrize(("state", "code"), [("ok", 200), ("degraded", 200), ("down", 503)])
async def test_health_status_codes(
    anon: httpx.AsyncClient, service: FakeService, state: str, code: int
) -> None:
    service.health_status = state
    response = await anon.get("/health")
    assert response.status_code == code
    body = response.json()
    assert body["status"] == state
    assert set(body) == {
        "status",
        "feed",
        "last_tick_age_s",
        "db",
        "broker_session",
        "loop_lag_ms",
        "engine_running",
    }
    assert response.headers["Cache-Control"] == "no-store"


async def test_status_is_the_services_report(client: httpx.AsyncClient) -> None:
    body = (await client.get("/status")).json()
    assert body["running"] is False
    assert body["trading_state"] == "ACTIVE"
    assert body["symbols"]["NSE:RELIANCE"]["last_bar_ts"] == "2024-01-02T03:45:00Z"


async def test_config_is_the_public_dict(client: httpx.AsyncClient, service: FakeService) -> None:
    body = (await client.get("/config")).json()
    assert body == service.settings.public_dict()
    assert body["broker_api_secret_set"] is True
    assert body["database_url_safe"] == "postgresql://mt:***@127.0.0.1:5432/mt"


async def test_signals(client: httpx.AsyncClient) -> None:
    body = (await client.get("/signals")).json()
    assert body["count"] == 3
    assert [s["id"] for s in body["signals"]] == ["sig-2", "sig-1", "sig-0"]
    first = body["signals"][2]
    assert first == {
        "id": "sig-0",
        "ts": "2024-01-02T03:45:00Z",
        "symbol": "NSE:RELIANCE",
        "timeframe_s": 60,
        "side": "BUY",
        "price": 100.0,
        "strategy": "ema_cross",
        "reason": "cross",
        "payload": {"fast": 8, "slow": 21},
    }
    rel = (await client.get("/signals", params={"symbol": "nse:reliance", "limit": 1})).json()
    assert [s["id"] for s in rel["signals"]] == ["sig-2"]
    unqualified = (await client.get("/signals", params={"symbol": "INFY"})).json()
    assert [s["id"] for s in unqualified["signals"]] == ["sig-1"]
    since = (T0 + timedelta(minutes=1)).isoformat()
    recent = (await client.get("/signals", params={"since": since})).json()
    assert [s["id"] for s in recent["signals"]] == ["sig-2", "sig-1"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"symbol": "NSE:RELI ANCE"},
        {"symbol": "NSE:"},
        {"since": "2024-01-02T03:45:00"},  # naive: refused
    ],
)
async def test_signals_refuse_bad_queries(
    client: httpx.AsyncClient, params: dict[str, str | int]
) -> None:
    assert (await client.get("/signals", params=params)).status_code == 422


async def test_trades(client: httpx.AsyncClient) -> None:
    body = (await client.get("/trades")).json()
    assert [t["id"] for t in body["trades"]] == ["t-infy", "t-rel"]
    closed = (await client.get("/trades", params={"status": "closed"})).json()["trades"]
    assert len(closed) == 1
    trade = closed[0]
    assert trade["status"] == "CLOSED"
    assert trade["exit_ts"] == "2024-01-02T04:45:00Z"
    assert trade["gross_pnl"] == pytest.approx(20.0)
    assert trade["net_pnl"] == pytest.approx(17.5)
    opened = (await client.get("/trades", params={"status": "OPEN", "symbol": "NSE:INFY"})).json()
    assert [t["id"] for t in opened["trades"]] == ["t-infy"]
    assert opened["trades"][0]["exit_ts"] is None
    assert (await client.get("/trades", params={"limit": 1})).json()["count"] == 1
    assert (await client.get("/trades", params={"status": "pending"})).status_code == 422


async def test_option_trades(client: httpx.AsyncClient) -> None:
    body = (await client.get("/option-trades", params={"underlying": "nifty"})).json()
    assert body["count"] == 1
    trade = body["option_trades"][0]
    assert (trade["symbol"], trade["expiry"], trade["qty"]) == (
        "NFO:NIFTY24JAN21500CE",
        "2024-01-04",
        50,
    )
    assert trade["gross_pnl"] == pytest.approx(500.0)
    assert (await client.get("/option-trades", params={"status": "open"})).json()["count"] == 0


async def test_pnl_attribution_splits_each_underlying_by_leg(client: httpx.AsyncClient) -> None:
    body = (await client.get("/pnl/attribution")).json()
    assert body == {
        "underlyings": [
            {
                "underlying": "NIFTY",
                "underlying_net_pnl": 0.0,
                "underlying_trades": 0,
                "option_net_pnl": 500.0,
                "option_trades": 1,
            }
        ]
    }


async def test_option_chain_is_served_from_the_service_or_404(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    missing = await client.get("/options/BANKNIFTY/chain")
    assert missing.status_code == 404
    assert "OPTIONS_ENABLED" in missing.json()["detail"]
    got = await client.get("/options/nifty/chain", params={"expiry": "2026-12-01"})
    assert got.status_code == 200
    assert got.json()["pcr_oi"] == 0.9
    assert service.chain_requests[-1] == ("nifty", date(2026, 12, 1))
    bad = await client.get("/options/NIFTY/chain", params={"expiry": "soon"})
    assert bad.status_code == 422


async def test_option_signals_and_positions(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    service.recent_option_signals = [{"id": f"s{i}", "kind": "entry"} for i in range(5)]
    service.open_option_positions = [{"symbol": "NFO:NIFTY26D0124000CE", "qty": 65}]
    signals = (await client.get("/options/signals", params={"limit": 2})).json()
    assert [s["id"] for s in signals] == ["s0", "s1"]
    assert (await client.get("/options/signals", params={"limit": 0})).status_code == 422
    positions = (await client.get("/options/positions")).json()
    assert positions == [{"symbol": "NFO:NIFTY26D0124000CE", "qty": 65}]


async def test_positions(client: httpx.AsyncClient) -> None:
    body = (await client.get("/positions")).json()
    positions = {p["symbol"]: p for p in body["positions"]}
    assert positions["NSE:INFY"]["qty"] == -5
    assert positions["NSE:INFY"]["avg_price"] == pytest.approx(1500.0)
    assert positions["NSE:RELIANCE"]["qty"] == 0
    assert positions["NSE:RELIANCE"]["realized_pnl"] == pytest.approx(20.0)
    open_only = (await client.get("/positions", params={"open_only": "true"})).json()
    assert [p["symbol"] for p in open_only["positions"]] == ["NSE:INFY"]


async def test_daily_pnl(client: httpx.AsyncClient) -> None:
    body = (
        await client.get("/pnl/daily", params={"start": "2024-01-01", "end": "2024-01-05"})
    ).json()
    assert body["days"] == [
        {"day": "2024-01-02", "trades": 2, "gross_pnl": 520.0, "charges": 2.5, "net_pnl": 517.5}
    ]
    assert (body["trades"], body["net_pnl"]) == (2, pytest.approx(517.5))
    empty = (
        await client.get("/pnl/daily", params={"start": "2024-01-03", "end": "2024-01-05"})
    ).json()
    assert (empty["days"], empty["net_pnl"]) == ([], 0)


async def test_daily_pnl_defaults_to_the_last_30_ist_days(client: httpx.AsyncClient) -> None:
    body = (await client.get("/pnl/daily")).json()
    start, end = (datetime.fromisoformat(body[k]).date() for k in ("start", "end"))
    assert (end - start).days == 29
    ist_today = (datetime.now(UTC) + timedelta(hours=5, minutes=30)).date()
    assert abs((end - ist_today).days) <= 1  # the test may straddle midnight


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2024-01-05", "end": "2024-01-01"},
        {"start": "2023-01-01", "end": "2024-12-31"},
        {"start": "yesterday"},
    ],
)
async def test_daily_pnl_refuses_bad_ranges(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/pnl/daily", params=params)
    assert response.status_code == 422
    assert "detail" in response.json()


async def test_candles_as_columns(client: httpx.AsyncClient) -> None:
    response = await client.get("/candles/NSE%3ARELIANCE", params={"limit": 3})
    assert response.status_code == 200
    body = response.json()
    assert (body["symbol"], body["timeframe"], body["timeframe_s"], body["count"]) == (
        "NSE:RELIANCE",
        "1m",
        60,
        3,
    )
    assert body["ts"] == ["2024-01-02T03:47:00Z", "2024-01-02T03:48:00Z", "2024-01-02T03:49:00Z"]
    assert body["close"] == [102.0, 103.0, 104.0]
    assert body["ticks"] == [7, 7, 7]
    assert all(len(body[c]) == 3 for c in ("open", "high", "low", "volume"))
    default = (await client.get("/candles/NSE:RELIANCE")).json()
    assert default["count"] == 5  # fewer stored than the default limit of 300


async def test_candles_of_an_unknown_symbol_or_timeframe_are_empty(
    client: httpx.AsyncClient,
) -> None:
    for path, params in [
        ("/candles/NSE%3AINFY", {}),
        ("/candles/NSE%3ARELIANCE", {"timeframe": "5m"}),
    ]:
        body = (await client.get(path, params=params)).json()
        assert (body["count"], body["ts"], body["close"]) == (0, [], [])


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/candles/NSE%3ARELIANCE", {"timeframe": "7q"}),
        ("/candles/NSE%3ARELIANCE", {"timeframe": "0m"}),
        ("/candles/NSE%3ARELIANCE", {"limit": 0}),
        ("/candles/NSE%3ARELIANCE", {"limit": 10_001}),
        ("/candles/%20", {}),
    ],
)
async def test_candles_refuse_bad_queries(
    client: httpx.AsyncClient, path: str, params: dict[str, str | int]
) -> None:
    assert (await client.get(path, params=params)).status_code == 422


async def test_candles_see_new_rows(client: httpx.AsyncClient, store: Store) -> None:
    ts = dt_to_ns(T0 + timedelta(minutes=30))
    await store.commit_bars([CandleRow("NSE:INFY", 60, ts, 1.0, 2.0, 0.5, 1.5, 10.0, 3)])
    body = (await client.get("/candles/NSE%3AINFY")).json()
    assert body["ts"] == ["2024-01-02T04:15:00Z"]


def test_iso_utc_keeps_sub_second_precision() -> None:
    assert iso_utc(np.array([0, 1_500_000_000], dtype=np.int64)) == [
        "1970-01-01T00:00:00.000000Z",
        "1970-01-01T00:00:01.500000Z",
    ]
    assert iso_utc(np.array([], dtype=np.int64)) == []
