"""``GET /trades`` and ``GET /option-trades``: round trips, newest entry first."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from mental_trader.api.deps import StoreDep, query
from mental_trader.api.routes._common import ApiModel, parse_symbol
from mental_trader.models import Side, TradeStatus

__all__ = ["OptionTradeOut", "OptionTradesOut", "TradeOut", "TradesOut", "router"]

router = APIRouter(tags=["data"])

# open / closed, in any case
StatusQuery = Annotated[
    str | None, Query(pattern="^(?i:open|closed)$", description="OPEN or CLOSED")
]
Limit = Annotated[int, Query(ge=1, le=5000)]


class TradeOut(ApiModel):
    """One round trip; exit fields and P&L are null while it is open."""

    id: str
    symbol: str
    side: Side
    qty: int
    entry_ts: AwareDatetime
    entry_price: float
    strategy: str
    signal_id: str | None
    entry_charges: float
    status: TradeStatus
    exit_ts: AwareDatetime | None
    exit_price: float | None
    exit_charges: float
    exit_reason: str
    gross_pnl: float | None
    net_pnl: float | None


class TradesOut(ApiModel):
    """Round trips, newest entry first."""

    count: int
    trades: list[TradeOut]


class OptionTradeOut(ApiModel):
    """One option round trip (``qty`` = lots x lot size)."""

    id: str
    underlying: str
    symbol: str
    expiry: dt.date
    strike: float
    option_type: str
    side: Side
    lots: int
    lot_size: int
    qty: int
    entry_ts: AwareDatetime
    entry_price: float
    underlying_signal_id: str | None
    underlying_entry_price: float | None
    entry_charges: float
    status: TradeStatus
    exit_ts: AwareDatetime | None
    exit_price: float | None
    underlying_exit_price: float | None
    exit_charges: float
    exit_reason: str
    gross_pnl: float | None
    net_pnl: float | None


class OptionTradesOut(ApiModel):
    """Option round trips, newest entry first."""

    count: int
    option_trades: list[OptionTradeOut]


def _status(text: str | None) -> TradeStatus | None:
    return None if text is None else TradeStatus(text.upper())


@router.get("/trades", summary="Round trips (trades)")
async def trades(
    store: StoreDep,
    status: StatusQuery = None,
    symbol: Annotated[str | None, Query(max_length=80, description="e.g. NSE:RELIANCE")] = None,
    since: Annotated[AwareDatetime | None, Query(description="entry time, ISO-8601")] = None,
    limit: Limit = 100,
) -> TradesOut:
    """Trades by status, symbol and entry time, newest entry first."""
    rows = await query(
        store.load_trades(
            status=_status(status),
            symbol=None if symbol is None else parse_symbol(symbol),
            since=since,
            limit=limit,
        )
    )
    out = [TradeOut.model_validate(r, from_attributes=True) for r in rows]
    return TradesOut(count=len(out), trades=out)


@router.get("/option-trades", summary="Option round trips")
async def option_trades(
    store: StoreDep,
    status: StatusQuery = None,
    underlying: Annotated[str | None, Query(max_length=32, description="e.g. NIFTY")] = None,
    limit: Limit = 100,
) -> OptionTradesOut:
    """Option trades by status and underlying, newest entry first."""
    rows = await query(
        store.load_option_trades(
            status=_status(status), underlying=None if underlying is None else underlying.upper()
        )
    )
    out = [OptionTradeOut.model_validate(r, from_attributes=True) for r in rows[:limit]]
    return OptionTradesOut(count=len(out), option_trades=out)
