"""``GET /signals``: the newest signals, optionally of one symbol."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from mental_trader.api.deps import StoreDep, query
from mental_trader.api.routes._common import ApiModel, parse_symbol
from mental_trader.models import Side

__all__ = ["SignalOut", "SignalsOut", "router"]

router = APIRouter(tags=["data"])


class SignalOut(ApiModel):
    """One stored signal (``ts`` in UTC)."""

    id: str
    ts: AwareDatetime
    symbol: str
    timeframe_s: int
    side: Side
    price: float
    strategy: str
    reason: str
    payload: dict[str, Any]


class SignalsOut(ApiModel):
    """Signals, newest first."""

    count: int
    signals: list[SignalOut]


@router.get("/signals", summary="Recent signals")
async def signals(
    store: StoreDep,
    symbol: Annotated[str | None, Query(max_length=80, description="e.g. NSE:RELIANCE")] = None,
    since: Annotated[AwareDatetime | None, Query(description="ISO-8601 with offset")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SignalsOut:
    """The newest ``limit`` signals, of one ``symbol`` and from ``since`` when given."""
    rows = await query(
        store.load_signals(
            symbol=None if symbol is None else parse_symbol(symbol), since=since, limit=limit
        )
    )
    out = [SignalOut.model_validate(r, from_attributes=True) for r in rows]
    return SignalsOut(count=len(out), signals=out)
