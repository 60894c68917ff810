"""``GET /pnl/daily``: net P&L per IST trading day, trades and option trades together."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query

from mental_trader.api.deps import StoreDep, query
from mental_trader.api.routes._common import ApiModel
from mental_trader.calendar import IST
from mental_trader.errors import InvalidInputError

__all__ = ["DailyPnlOut", "DayPnlOut", "router"]

router = APIRouter(tags=["data"])

_DEFAULT_DAYS = 30
_MAX_DAYS = 366


class DayPnlOut(ApiModel):
    """P&L of the round trips closed on one IST day."""

    day: dt.date
    trades: int
    gross_pnl: float
    charges: float
    net_pnl: float


class DailyPnlOut(ApiModel):
    """Days with closed round trips in ``[start, end]``, and their totals."""

    start: dt.date
    end: dt.date
    days: list[DayPnlOut]
    trades: int
    gross_pnl: float
    charges: float
    net_pnl: float


@router.get("/pnl/daily", summary="Daily P&L (IST days)")
async def daily_pnl(
    store: StoreDep,
    start: Annotated[dt.date | None, Query(description="first day (default: end - 29)")] = None,
    end: Annotated[dt.date | None, Query(description="last day (default: today, IST)")] = None,
) -> DailyPnlOut:
    """P&L per day by exit time, both ends inclusive, at most 366 days."""
    last = end or dt.datetime.now(IST).date()
    first = start or last - dt.timedelta(days=_DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidInputError(f"start {first} is after end {last}")
    if (last - first).days + 1 > _MAX_DAYS:
        raise InvalidInputError(f"at most {_MAX_DAYS} days per request")
    rows = await query(store.daily_pnl(first, last))
    days = [DayPnlOut.model_validate(r, from_attributes=True) for r in rows]
    return DailyPnlOut(
        start=first,
        end=last,
        days=days,
        trades=sum(d.trades for d in days),
        gross_pnl=sum(d.gross_pnl for d in days),
        charges=sum(d.charges for d in days),
        net_pnl=sum(d.net_pnl for d in days),
    )
