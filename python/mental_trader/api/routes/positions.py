"""``GET /positions``: the net position per symbol, from the stored fills."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from mental_trader.api.deps import StoreDep, query
from mental_trader.api.routes._common import ApiModel

__all__ = ["PositionOut", "PositionsOut", "router"]

router = APIRouter(tags=["data"])


class PositionOut(ApiModel):
    """Net position in one symbol: ``qty`` signed (+long, -short), realized P&L gross."""

    symbol: str
    qty: int
    avg_price: float | None
    realized_pnl: float
    charges: float


class PositionsOut(ApiModel):
    """Positions by symbol."""

    count: int
    positions: list[PositionOut]


@router.get("/positions", summary="Positions from the stored fills")
async def positions(
    store: StoreDep,
    open_only: Annotated[bool, Query(description="leave out flat symbols")] = False,
) -> PositionsOut:
    """Every symbol traded (or only those with an open quantity), with realized P&L."""
    rows = await query(store.positions())
    out = [
        PositionOut.model_validate(p, from_attributes=True)
        for p in rows
        if p.qty != 0 or not open_only
    ]
    return PositionsOut(count=len(out), positions=out)
