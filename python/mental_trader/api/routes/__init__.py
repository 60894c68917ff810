"""The API's routers, one per file; :func:`~mental_trader.api.app.create_app` mounts them.

``PUBLIC_ROUTERS`` answer without a token; ``PROTECTED_ROUTERS`` require the bearer token.
"""

from __future__ import annotations

from fastapi import APIRouter

from mental_trader.api.routes import (
    broker,
    candles,
    config,
    control,
    health,
    info,
    metrics,
    options,
    pnl,
    positions,
    signals,
    status,
    trades,
)

__all__ = ["PROTECTED_ROUTERS", "PUBLIC_ROUTERS"]

PUBLIC_ROUTERS: tuple[APIRouter, ...] = (health.router, broker.callback_router)
PROTECTED_ROUTERS: tuple[APIRouter, ...] = (
    info.router,
    status.router,
    config.router,
    control.router,
    signals.router,
    trades.router,
    positions.router,
    pnl.router,
    options.router,
    candles.router,
    metrics.router,
    broker.router,
)
