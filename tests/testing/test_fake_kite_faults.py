"""Every fault switch of the fake Kite server, shown doing what it says, plus the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from mental_trader.testing.fake_kite import FakeKite
from tests.testing.conftest import headers, order_form, until, ws_url

INFY = 408065


async def recv_or_none(ws: ClientConnection, wait_s: float) -> str | bytes | None:
    """The next message, or None if nothing came within ``wait_s`` seconds."""
    try:
        async with asyncio.timeout(wait_s):
            return await ws.recv()
    except TimeoutError:
        return None


async def read_until_closed(ws: ClientConnection) -> None:
    """Receive until the connection closes (raises its ConnectionClosed); 5 s at most."""
    async with asyncio.timeout(5):
        while True:
            await ws.recv()


async def order_updates(ws: ClientConnection, order_id: str, want: str) -> list[dict[str, Any]]:
    """Order updates of ``order_id`` until one with status ``want``."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while not seen or seen[-1]["status"] != want:
            msg = await ws.recv()
            if isinstance(msg, str):
                body = json.loads(msg)
                if body["type"] == "order" and body["data"]["order_id"] == order_id:
                    seen.append(body["data"])
    return seen


async def test_ws_drop_aborts_the_tcp_connection(fake: FakeKite) -> None:
    async with connect(ws_url(fake)) as ws:
        await ws.send(json.dumps({"a": "subscribe", "v": [INFY]}))
        await ws.recv()
        fake.faults.ws_drop = True
        with pytest.raises(websockets.ConnectionClosedError) as err:
            await read_until_closed(ws)
        assert err.value.rcvd is None  # no close frame: the TCP connection just died
    assert fake.faults.ws_drop is False  # one shot
    async with connect(ws_url(fake)) as ws:  # reconnecting works
        assert await recv_or_none(ws, 3) is not None


async def test_ws_silent_keeps_tcp_open_but_sends_nothing(fake: FakeKite) -> None:
    async with connect(ws_url(fake)) as ws:
        await ws.send(json.dumps({"a": "subscribe", "v": [INFY]}))
        assert await recv_or_none(ws, 3) is not None
        fake.faults.ws_silent = True
        await asyncio.sleep(0.2)  # let a pass in flight finish
        while await recv_or_none(ws, 0.05) is not None:
            pass
        assert await recv_or_none(ws, 2.0) is None  # no ticks, not even heartbeats
        pong = await ws.ping()  # the TCP connection is still alive
        async with asyncio.timeout(2):
            await pong
        fake.faults.ws_silent = False
        assert await recv_or_none(ws, 3) is not None


async def test_ws_refuse_next_handshakes(fake: FakeKite) -> None:
    fake.faults.ws_refuse_handshakes = 2
    for _ in range(2):
        with pytest.raises(websockets.InvalidStatus) as err:
            async with connect(ws_url(fake)):
                pass
        assert err.value.response.status_code == 503
    async with connect(ws_url(fake)) as ws:
        assert await recv_or_none(ws, 3) is not None
    assert fake.hub.refused == {503: 2}


async def test_token_expiry_until_a_new_login(fake: FakeKite, http: httpx.AsyncClient) -> None:
    old = fake.access_token
    fake.faults.token_expired = True
    r = await http.get("/orders")
    assert r.status_code == 403
    assert r.json()["error_type"] == "TokenException"
    with pytest.raises(websockets.InvalidStatus) as err:
        async with connect(ws_url(fake)):
            pass
    assert err.value.response.status_code == 403
    rt = fake.issue_request_token()
    login = await http.post(
        "/session/token",
        data={"api_key": fake.api_key, "request_token": rt, "checksum": fake.checksum(rt)},
    )
    assert login.status_code == 200
    new = login.json()["data"]["access_token"]
    assert fake.faults.token_expired is False
    assert (await http.get("/orders", headers=headers(fake, new))).status_code == 200
    assert (await http.get("/orders", headers=headers(fake, old))).status_code == 403
    async with connect(ws_url(fake, new)) as ws:
        assert await recv_or_none(ws, 3) is not None


async def test_order_response_delayed_past_the_timeout(
    fake: FakeKite, http: httpx.AsyncClient
) -> None:
    fake.faults.delay_next_orders = 1
    fake.faults.order_delay_s = 3.0
    with pytest.raises(httpx.ReadTimeout):
        await http.post("/orders/regular", data=order_form(tag="slow1"), timeout=0.5)
    # the order exists all the same: the book shows it by tag
    orders = (await http.get("/orders")).json()["data"]
    assert [o["tag"] for o in orders] == ["slow1"]
    assert fake.orders_by_tag("slow1")[0]["order_id"] == orders[0]["order_id"]
    fast = await http.post("/orders/regular", data=order_form(tag="fast1"), timeout=2)
    assert fast.status_code == 200  # only the next placement was delayed


async def test_rate_limit_next_requests(fake: FakeKite, http: httpx.AsyncClient) -> None:
    fake.faults.rate_limit_next = 2
    codes = [(await http.get("/orders")).status_code for _ in range(3)]
    assert codes == [429, 429, 200]
    assert fake.rate_limit_violations == []  # forced, not the client's fault


async def test_rms_rejection_after_acceptance(fake: FakeKite, http: httpx.AsyncClient) -> None:
    async with connect(ws_url(fake)) as ws:
        fake.faults.rms_reject_next = 1
        r = await http.post("/orders/regular", data=order_form(tag="rms1"))
        assert r.status_code == 200
        order_id = r.json()["data"]["order_id"]
        updates = await order_updates(ws, order_id, "REJECTED")
    rejected = updates[-1]
    assert rejected["status_message"] == fake.faults.rms_reject_message
    assert rejected["checksum"] == fake.order_checksum(order_id, rejected["order_timestamp"])
    hist = (await http.get(f"/orders/{order_id}")).json()["data"]
    assert [h["status"] for h in hist] == [
        "PUT ORDER REQ RECEIVED",
        "VALIDATION PENDING",
        "REJECTED",
    ]


async def test_order_updates_and_losing_them(fake: FakeKite, http: httpx.AsyncClient) -> None:
    async with connect(ws_url(fake)) as ws:
        r = await http.post("/orders/regular", data=order_form(tag="seen1"))
        order_id = r.json()["data"]["order_id"]
        updates = await order_updates(ws, order_id, "COMPLETE")
        assert [u["status"] for u in updates] == ["OPEN", "COMPLETE"]
        done = updates[-1]
        for name in ("order_id", "exchange_order_id", "status", "status_message", "tradingsymbol",
                     "exchange", "transaction_type", "order_type", "product", "quantity",
                     "filled_quantity", "pending_quantity", "average_price", "price",
                     "trigger_price", "tag", "order_timestamp", "exchange_timestamp",
                     "checksum", "instrument_token", "variety", "validity", "guid"):  # fmt: skip
            assert name in done
        assert done["checksum"] == fake.order_checksum(order_id, done["order_timestamp"])

        fake.faults.lose_order_updates = True
        r = await http.post("/orders/regular", data=order_form(tag="lost1"))
        lost_id = r.json()["data"]["order_id"]

        async def complete() -> bool:
            hist = (await http.get(f"/orders/{lost_id}")).json()["data"]
            return bool(hist[-1]["status"] == "COMPLETE")

        await until(complete)  # REST tells the truth
        deadline = time.monotonic() + 1.0
        while (msg := await recv_or_none(ws, max(deadline - time.monotonic(), 0.01))) is not None:
            if isinstance(msg, str):
                assert json.loads(msg)["data"]["order_id"] != lost_id
    assert fake.hub.updates_lost >= 2


async def test_admin_route_flips_faults(fake: FakeKite) -> None:
    async with httpx.AsyncClient(base_url=fake.rest_url) as admin:
        r = await admin.post("/_fake/faults", json={"ws_silent": True, "rate_limit_next": 1})
        assert r.status_code == 200
        assert r.json()["ws_silent"] is True
        assert fake.faults.ws_silent is True
        assert fake.faults.rate_limit_next == 1
        bad = await admin.post("/_fake/faults", json={"no_such_fault": True})
        assert bad.status_code == 400
        wrong = await admin.post("/_fake/faults", json={"ws_silent": "yes"})
        assert wrong.status_code == 400
        rt = (await admin.post("/_fake/request_token")).json()["request_token"]
        assert fake.checksum(rt)
        stats = (await admin.get("/_fake/rate_limits")).json()
        assert stats["violations"] == []
        async with connect(ws_url(fake)) as ws:
            await admin.post("/_fake/faults", json={"ws_silent": False, "ws_drop": True})
            with pytest.raises(websockets.ConnectionClosedError):
                await read_until_closed(ws)


async def test_cli_serves_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mental_trader.testing.fake_kite", "--speed", "100",
        "--session-day", "2026-03-02", "--watchlist", "NSE:INFY",
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        info: dict[str, str] = {}
        async with asyncio.timeout(30):
            while len(info) < 5:
                line = (await proc.stdout.readline()).decode().strip()
                assert line, "the CLI exited early"
                key, _, value = line.partition("=")
                info[key] = value
        assert info["rest_url"].startswith("http://127.0.0.1:")
        assert info["ws_url"].startswith("ws://127.0.0.1:")
        auth = {
            "X-Kite-Version": "3",
            "Authorization": f"token {info['api_key']}:{info['access_token']}",
        }
        async with httpx.AsyncClient(base_url=info["rest_url"], headers=auth) as c:
            assert (await c.get("/user/profile")).status_code == 200
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
