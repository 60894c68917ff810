"""The FastAPI application: :func:`create_app`, its lifespan and the error mapping.

Build it with ``create_app(settings, service)`` (there is no module-level app). The service
is built, started and stopped by its owner (the CLI); the app only serves it. The lifespan
runs what the app itself owns: the event-loop lag monitor, unless the service already runs
it.

Errors: every :mod:`mental_trader.errors` type maps to one HTTP status here, in
:data:`ERROR_STATUS`, and nowhere else. The body is ``{"detail": message, "error":
class name}``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from mental_trader import __version__
from mental_trader.api.auth import require_token, resolve_api_token
from mental_trader.api.deps import ApiContext, ServiceApi
from mental_trader.api.routes import PROTECTED_ROUTERS, PUBLIC_ROUTERS
from mental_trader.config import Settings
from mental_trader.errors import (
    BrokerError,
    ConfigError,
    FeedError,
    InvalidInputError,
    MentalTraderError,
    OrderRejected,
    StorageError,
)

__all__ = ["ERROR_STATUS", "create_app", "http_status"]

log = logging.getLogger(__name__)

#: Our exceptions → HTTP status; the most specific class in an error's MRO wins.
ERROR_STATUS: dict[type[MentalTraderError], int] = {
    InvalidInputError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ConfigError: status.HTTP_400_BAD_REQUEST,
    StorageError: status.HTTP_503_SERVICE_UNAVAILABLE,
    FeedError: status.HTTP_503_SERVICE_UNAVAILABLE,
    OrderRejected: status.HTTP_409_CONFLICT,  # refused on its merits: retrying won't help
    BrokerError: status.HTTP_502_BAD_GATEWAY,
}
_RETRY_AFTER_S = "5"

_DESCRIPTION = """\
Control and monitoring of the Mental Trader service.

**Authentication:** every endpoint except `/health` and `/kite/callback` (Kite's login
redirect) needs `Authorization: Bearer <token>`:
`API_TOKEN`, or the token generated in `<DATA_DIR>/api_token` (printed once at first start).
This documentation (`/docs`, `/openapi.json`) is open: it describes the API and holds no data.
"""


def http_status(exc: MentalTraderError) -> int:
    """The HTTP status an error of ours maps to (500 for one without a mapping)."""
    for cls in type(exc).__mro__:
        code = ERROR_STATUS.get(cls)
        if code is not None:
            return code
    return status.HTTP_500_INTERNAL_SERVER_ERROR


async def _error_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MentalTraderError)
    code = http_status(exc)
    if code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
        log.log(
            logging.ERROR if code == status.HTTP_500_INTERNAL_SERVER_ERROR else logging.WARNING,
            "%s %s -> %d: %s: %s",
            request.method,
            request.url.path,
            code,
            type(exc).__name__,
            exc,
        )
    headers = (
        {"Retry-After": _RETRY_AFTER_S} if code == status.HTTP_503_SERVICE_UNAVAILABLE else None
    )
    return JSONResponse(
        {"detail": str(exc), "error": type(exc).__name__}, status_code=code, headers=headers
    )


def create_app(settings: Settings, service: ServiceApi, *, api_token: str | None = None) -> FastAPI:
    """Build the API of one service.

    Args:
        settings: the service's settings (``/config`` shows ``settings.public_dict()``).
        service: the trading service, built and owned by the caller.
        api_token: the bearer token to require, as :func:`resolve_api_token` returned it;
            by default it is resolved here (``API_TOKEN``, else the token file).

    Returns:
        The app; serve it with uvicorn on an address :func:`check_bind` accepts.

    Raises:
        ConfigError: ``api_token`` is shorter than 16 characters, or the token file cannot
            be written.
    """
    if api_token is None:
        api_token, _ = resolve_api_token(settings)
    elif len(api_token) < 16:
        raise ConfigError("the API token must be at least 16 characters")
    context = ApiContext(
        settings=settings,
        service=service,
        token=SecretStr(api_token),
        token_from_file=settings.api_token is None,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        monitor = service.metrics.loop_lag
        started = monitor.start()  # False: the service runs it already
        log.info("API ready (docs at /docs)")
        try:
            yield
        finally:
            if started:
                await monitor.stop()

    app = FastAPI(
        title="Mental Trader",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.api = context
    app.add_exception_handler(MentalTraderError, _error_response)
    for router in PUBLIC_ROUTERS:
        app.include_router(router)
    for router in PROTECTED_ROUTERS:
        app.include_router(router, dependencies=[Depends(require_token)])
    return app
