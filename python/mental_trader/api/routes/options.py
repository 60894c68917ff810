"""The options layer: ``GET /options/{underlying}/chain``, ``/options/signals``,
``/options/positions``, and ``GET /pnl/attribution`` (P&L per underlying and leg)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from mental_trader.api.deps import ServiceDep, StoreDep, query
from mental_trader.api.routes._common import ApiModel

__all__ = ["AttributionOut", "LegPnlOut", "router"]

router = APIRouter(tags=["options"])


@router.get("/options/{underlying}/chain", summary="Option chain with analytics and ranking")
async def option_chain(
    service: ServiceDep,
    underlying: Annotated[
        str, Path(max_length=80, description="an options name (NIFTY) or the underlying symbol")
    ],
    expiry: Annotated[dt.date | None, Query(description="default: the nearest cached")] = None,
) -> dict[str, Any]:
    """The chain the options layer last fetched for ``underlying``: per strike and side the
    quotes, OI (and its change since the day's first chain), volume, spread, IV and delta
    (Black-76 on the parity forward) and buildup; PCR, max pain and the ATM straddle; and
    the best-ranked strikes per side with their score breakdowns."""
    view = service.option_chain(underlying, expiry)
    if view is None:
        raise HTTPException(
            status_code=404,
            detail=f"no cached option chain for {underlying!r}"
            + ("" if expiry is None else f" expiring {expiry}")
            + " (is OPTIONS_ENABLED on and the underlying in OPTIONS_UNDERLYINGS?)",
        )
    return view


@router.get("/options/signals", summary="Latest option signals")
async def option_signals(
    service: ServiceDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[dict[str, Any]]:
    """Option entries and exits the options layer decided, newest first (this run)."""
    return service.option_signals(limit)


@router.get("/options/positions", summary="Open option positions")
async def option_positions(service: ServiceDep) -> list[dict[str, Any]]:
    """Open option positions with their premium stop and target."""
    return service.option_positions()


class LegPnlOut(ApiModel):
    """Realized net P&L of one underlying, by leg."""

    underlying: str
    underlying_net_pnl: float
    underlying_trades: int
    option_net_pnl: float
    option_trades: int


class AttributionOut(ApiModel):
    """P&L attribution per leg for every underlying with closed option round trips."""

    underlyings: list[LegPnlOut]


@router.get("/pnl/attribution", summary="P&L per underlying: underlying leg vs option leg")
async def pnl_attribution(store: StoreDep) -> AttributionOut:
    """For each underlying that had option round trips: the realized net P&L of its own
    round trips (``/trades``) against that of the option round trips it caused
    (``/option-trades``)."""
    own, options = await query(store.closed_pnl())
    return AttributionOut(
        underlyings=[
            LegPnlOut(
                underlying=u,
                underlying_net_pnl=round(own.get(u, (0.0, 0))[0], 2),
                underlying_trades=own.get(u, (0.0, 0))[1],
                option_net_pnl=round(net, 2),
                option_trades=count,
            )
            for u, (net, count) in sorted(options.items())
        ]
    )
