"""``POST /control/*``: start and stop the engine, the kill switch (halt, flatten)."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Body
from pydantic import Field

from mental_trader.api.deps import ServiceDep
from mental_trader.api.routes._common import ApiModel

__all__ = ["ControlOut", "ReasonIn", "router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/control", tags=["control"])

_DEFAULT_REASON = "operator request via the API"


class ReasonIn(ApiModel):
    """Why the operator acts; recorded with the action. The body itself may be omitted."""

    reason: str = Field(_DEFAULT_REASON, min_length=1, max_length=500)


class ControlOut(ApiModel):
    """The outcome of a control action."""

    action: Literal["start", "stop", "halt", "flatten"]
    changed: bool
    message: str


# Optional, so that `curl -X POST .../control/halt` works in a hurry.
ReasonBody = Annotated[ReasonIn | None, Body()]


@router.post("/start", summary="Start the engine")
async def start(service: ServiceDep) -> ControlOut:
    """Start the engine; ``changed`` is False when it was already running."""
    started = await service.start()
    log.info("API: start (%s)", "started" if started else "already running")
    message = "engine started" if started else "engine already running"
    return ControlOut(action="start", changed=started, message=message)


@router.post("/stop", summary="Stop the engine")
async def stop(service: ServiceDep) -> ControlOut:
    """Stop the engine; ``changed`` is False when it was not running."""
    stopped = await service.stop()
    log.info("API: stop (%s)", "stopped" if stopped else "not running")
    message = "engine stopped" if stopped else "engine was not running"
    return ControlOut(action="stop", changed=stopped, message=message)


@router.post("/halt", summary="Kill switch: block new entries")
async def halt(service: ServiceDep, body: ReasonBody = None) -> ControlOut:
    """Set the trading state to HALTED (no new entries until the next session)."""
    reason = body.reason if body is not None else _DEFAULT_REASON
    log.warning("API: halt (reason %r)", reason)
    await service.halt(reason)
    return ControlOut(action="halt", changed=True, message=f"trading halted: {reason}")


@router.post("/flatten", summary="Kill switch: cancel orders and close every position")
async def flatten(service: ServiceDep, body: ReasonBody = None) -> ControlOut:
    """Cancel open orders and close all positions."""
    reason = body.reason if body is not None else _DEFAULT_REASON
    log.warning("API: flatten (reason %r)", reason)
    await service.flatten(reason)
    return ControlOut(action="flatten", changed=True, message=f"flatten requested: {reason}")
