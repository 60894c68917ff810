"""``GET /health``: liveness and readiness, open without a token (for probes)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response, status

from mental_trader.api.deps import ServiceDep
from mental_trader.api.routes._common import ApiModel

__all__ = ["HealthOut", "router"]

router = APIRouter(tags=["system"])


class HealthOut(ApiModel):
    """The service's health (see ``ServiceApi.health``).

    ``ok``: everything works. ``degraded``: still serving but something needs attention
    (database outage with writes spooled, feed reconnecting, high loop lag). ``down``: not
    able to trade.
    """

    status: Literal["ok", "degraded", "down"]
    feed: dict[str, Any]
    last_tick_age_s: float | None
    db: dict[str, Any]
    broker_session: str
    loop_lag_ms: float
    engine_running: bool


@router.get(
    "/health",
    summary="Liveness and readiness (no token needed)",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": HealthOut}},
)
async def health(service: ServiceDep, response: Response) -> HealthOut:
    """200 when ``ok`` or ``degraded``, 503 when ``down``: the body says why either way."""
    out = HealthOut.model_validate(service.health())
    response.headers["Cache-Control"] = "no-store"
    if out.status == "down":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return out
