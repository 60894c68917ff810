"""The FastAPI control surface (DESIGN §9): :func:`create_app` and what it is built from.

Typical start-up (the CLI)::

    check_bind(host, settings)
    token, generated = resolve_api_token(settings)
    if generated:
        ...  # show the token to the operator once; never log it
    app = create_app(settings, service, api_token=token)
"""

from __future__ import annotations

from mental_trader.api.app import ERROR_STATUS, create_app, http_status
from mental_trader.api.auth import check_bind, is_loopback, resolve_api_token, token_path
from mental_trader.api.deps import ApiContext, ServiceApi
from mental_trader.api.metrics import EventLoopLagMonitor, LoopLagSnapshot, Metrics

__all__ = [
    "ERROR_STATUS",
    "ApiContext",
    "EventLoopLagMonitor",
    "LoopLagSnapshot",
    "Metrics",
    "ServiceApi",
    "check_bind",
    "create_app",
    "http_status",
    "is_loopback",
    "resolve_api_token",
    "token_path",
]
