"""``GET /metrics``: Prometheus text exposition (token required, like the data endpoints).

Scrape config: ``authorization: {type: Bearer, credentials_file: <DATA_DIR>/api_token}``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from mental_trader.api.deps import MetricsDep

__all__ = ["router"]

router = APIRouter(tags=["monitoring"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(metrics: MetricsDep) -> Response:
    """Every metric of the service in the Prometheus text format."""
    return Response(content=metrics.render(), media_type=CONTENT_TYPE_LATEST)
