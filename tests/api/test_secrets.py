"""No secret setting ever appears in a response, body or header."""

from __future__ import annotations

import httpx

from .conftest import SECRET_VALUES, TOKEN

GETS = [
    "/",
    "/health",
    "/status",
    "/config",
    "/signals",
    "/trades",
    "/option-trades",
    "/positions",
    "/pnl/daily",
    "/candles/NSE%3ARELIANCE",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/no-such-page",
]
POSTS = ["/control/start", "/control/stop", "/control/halt", "/control/flatten"]


def _leaks(response: httpx.Response) -> list[str]:
    text = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return [secret for secret in SECRET_VALUES if secret in text]


async def test_no_response_contains_a_secret(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    responses = [await client.get(path) for path in GETS]
    responses += [await client.post(path) for path in POSTS]
    responses += [await anon.get(path) for path in GETS]
    responses.append(await client.get("/", headers={"Authorization": f"Bearer {TOKEN}-wrong"}))
    responses.append(await client.post("/control/halt", json={"reason": "", "x": 1}))
    for response in responses:
        assert response.status_code != 500, response.request.url
        assert _leaks(response) == [], response.request.url


async def test_config_shows_secrets_only_as_flags(client: httpx.AsyncClient) -> None:
    body = (await client.get("/config")).json()
    for name in (
        "broker_api_key",
        "broker_api_secret",
        "broker_access_token",
        "notifier_webhook",
        "smtp_password",
        "api_token",
    ):
        assert name not in body
        assert body[f"{name}_set"] is True
    assert "database_url" not in body
