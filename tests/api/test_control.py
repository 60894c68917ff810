"""POST /control/*: start, stop and the kill switch."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from .conftest import FakeService


async def test_concurrent_starts_start_exactly_one_engine(
    client: httpx.AsyncClient, service: FakeService
) -> None:
    responses = await asyncio.gather(*(client.post("/control/start") for _ in range(10)))
    assert all(r.status_code == 200 for r in responses)
    bodies = [r.json() for r in responses]
    assert sum(b["changed"] for b in bodies) == 1
    assert {b["message"] for b in bodies} == {"engine started", "engine already running"}
    assert service.engines_started == 1
    assert (await client.get("/health")).json()["engine_running"] is True


async def test_stop(client: httpx.AsyncClient, service: FakeService) -> None:
    assert (await client.post("/control/stop")).json()["changed"] is False
    await client.post("/control/start")
    body = (await client.post("/control/stop")).json()
    assert body == {"action": "stop", "changed": True, "message": "engine stopped"}
    assert not service.running


@pytest.mark.parametrize("action", ["halt", "flatten"])
async def test_kill_switch_records_the_reason(
    client: httpx.AsyncClient, service: FakeService, action: str
) -> None:
    response = await client.post(f"/control/{action}", json={"reason": "loss limit near"})
    assert response.status_code == 200
    body = response.json()
    assert (body["action"], body["changed"]) == (action, True)
    assert "loss limit near" in body["message"]
    assert getattr(service, f"{action}s") == ["loss limit near"]


@pytest.mark.parametrize("action", ["halt", "flatten"])
async def test_kill_switch_works_without_a_body(
    client: httpx.AsyncClient, service: FakeService, action: str
) -> None:
    assert (await client.post(f"/control/{action}")).status_code == 200
    assert getattr(service, f"{action}s") == ["operator request via the API"]


@pytest.mark.parametrize(
    "body",
    [{"reason": ""}, {"reason": "x" * 501}, {"reason": "ok", "extra": 1}, {"reason": 5}],
)
async def test_halt_refuses_a_bad_body(
    client: httpx.AsyncClient, service: FakeService, body: object
) -> None:
    assert (await client.post("/control/halt", json=body)).status_code == 422
    assert service.halts == []
    status = (await client.get("/status")).json()
    assert status["trading_state"] == "ACTIVE"


async def test_halt_shows_in_status(client: httpx.AsyncClient) -> None:
    await client.post("/control/halt", json={"reason": "manual"})
    assert (await client.get("/status")).json()["trading_state"] == "HALTED"
