"""errors.py exceptions become HTTP statuses in one place (api/app.py)."""

from __future__ import annotations

import httpx
import pytest

from mental_trader.api import http_status
from mental_trader.errors import (
    AuthError,
    BrokerError,
    ConfigError,
    FeedDisconnected,
    InvalidInputError,
    MentalTraderError,
    OrderRejected,
    StorageError,
)
from mental_trader.storage import Store

from .conftest import FakeService


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInputError("bad"), 422),
        (ConfigError("bad"), 400),
        (StorageError("down", retryable=True), 503),
        (FeedDisconnected("silent"), 503),
        (BrokerError("5xx"), 502),
        (AuthError("session expired"), 502),
        (OrderRejected("freeze quantity"), 409),
        (MentalTraderError("other"), 500),
    ],
)
async def test_error_mapping(
    client: httpx.AsyncClient, service: FakeService, error: MentalTraderError, code: int
) -> None:
    assert http_status(error) == code
    service.fail = error
    response = await client.post("/control/flatten", json={"reason": "test"})
    assert response.status_code == code
    assert response.json() == {"detail": str(error), "error": type(error).__name__}
    assert ("Retry-After" in response.headers) == (code == 503)


async def test_store_outage_is_503(client: httpx.AsyncClient, store: Store) -> None:
    await store.close()
    for path in ("/signals", "/trades", "/positions", "/pnl/daily", "/candles/NSE%3AINFY"):
        response = await client.get(path)
        assert response.status_code == 503, path
        assert response.json()["error"] == "StorageError"
