"""``GET /candles/{symbol}``: the latest stored bars of one symbol, as columns."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Path, Query

from mental_trader.api.deps import StoreDep, query
from mental_trader.api.routes._common import ApiModel, parse_symbol
from mental_trader.config import parse_timeframe
from mental_trader.errors import InvalidInputError

__all__ = ["CandlesOut", "router"]

router = APIRouter(tags=["data"])


class CandlesOut(ApiModel):
    """Bars as equal-length columns, oldest first; ``ts`` is each bar's start, UTC."""

    symbol: str
    timeframe: str
    timeframe_s: int
    count: int
    ts: list[str]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    ticks: list[int]


def iso_utc(ts_ns: npt.NDArray[Any]) -> list[str]:
    """int64 ns since the epoch → ISO-8601 UTC strings (``2024-01-01T03:45:00Z``)."""
    values = np.asarray(ts_ns, dtype=np.int64)
    whole_seconds = not (values % 1_000_000_000).any()
    text = np.datetime_as_string(
        values.astype("datetime64[ns]"), unit="s" if whole_seconds else "us", timezone="UTC"
    )
    return [str(t) for t in text]


@router.get("/candles/{symbol}", summary="Latest bars of one symbol")
async def candles(
    store: StoreDep,
    symbol: Annotated[str, Path(max_length=80, description="NSE:RELIANCE (URL-encoded)")],
    timeframe: Annotated[str, Query(max_length=8, description="30s, 1m, 5m, 15m, 1h, ...")] = "1m",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 300,
) -> CandlesOut:
    """The last ``limit`` stored bars of ``symbol`` at ``timeframe``, oldest first."""
    name = parse_symbol(symbol)
    try:
        timeframe_s = parse_timeframe(timeframe)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    blocks = await query(store.load_last_candles([name], timeframe_s, limit))
    bars = blocks[name]
    return CandlesOut(
        symbol=name,
        timeframe=timeframe.strip().lower(),
        timeframe_s=timeframe_s,
        count=len(bars["ts"]),
        ts=iso_utc(bars["ts"]),
        open=bars["open"].tolist(),
        high=bars["high"].tolist(),
        low=bars["low"].tolist(),
        close=bars["close"].tolist(),
        volume=bars["volume"].tolist(),
        ticks=bars["ticks"].tolist(),
    )
