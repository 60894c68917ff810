"""``GET /status``: the engine's running and trading state, bars, EMAs, positions and P&L."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mental_trader.api.deps import ServiceDep

__all__ = ["router"]

router = APIRouter(tags=["system"])


@router.get("/status", summary="Running state, last bars and EMAs, positions, P&L")
async def status(service: ServiceDep) -> dict[str, Any]:
    """The service's own status report (its shape is the service's; see ``ServiceApi``)."""
    return service.status()
