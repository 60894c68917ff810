"""``GET /``: what this service is and which endpoints it has."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request

from mental_trader import __version__
from mental_trader.api.deps import ContextDep
from mental_trader.api.routes._common import ApiModel

__all__ = ["router"]

router = APIRouter(tags=["system"])


class EndpointOut(ApiModel):
    """One endpoint of the API."""

    path: str
    methods: list[str]
    auth: bool
    summary: str


class InfoOut(ApiModel):
    """System information."""

    name: str
    version: str
    mode: str
    broker: str
    execution: str
    watchlist: list[str]
    primary_timeframe_s: int
    confirm_timeframe_s: int
    auth: Literal["bearer"]
    token_source: Literal["API_TOKEN", "file"]
    docs: str
    docs_public: bool
    endpoints: list[EndpointOut]


def _endpoints(request: Request) -> list[EndpointOut]:
    # From the OpenAPI document (public and cached by FastAPI) rather than walking the
    # router, whose internals change between FastAPI releases. A protected operation lists
    # the bearer scheme under "security".
    app = request.app
    out: list[EndpointOut] = []
    for path, operations in app.openapi().get("paths", {}).items():
        auth = any("security" in op for op in operations.values())
        methods = sorted(m.upper() for m in operations)
        summary = next((op.get("summary", "") for op in operations.values()), "")
        out.append(EndpointOut(path=path, methods=methods, auth=auth, summary=summary))
    docs = ((app.docs_url, "Interactive API docs"), (app.openapi_url, "OpenAPI schema"))
    out += [
        EndpointOut(path=path, methods=["GET"], auth=False, summary=summary)
        for path, summary in docs
        if path
    ]
    return sorted(out, key=lambda e: e.path)


@router.get("/", summary="System info and the endpoint list")
async def info(request: Request, ctx: ContextDep) -> InfoOut:
    """Name, version, trading mode, broker and execution, and every endpoint."""
    settings = ctx.settings
    return InfoOut(
        name="Mental Trader",
        version=__version__,
        mode=settings.mode,
        broker=settings.broker,
        execution=settings.execution,
        watchlist=list(settings.watchlist),
        primary_timeframe_s=settings.primary_timeframe_s,
        confirm_timeframe_s=settings.confirm_timeframe_s,
        auth="bearer",
        token_source="file" if ctx.token_from_file else "API_TOKEN",
        docs=request.app.docs_url or "",
        docs_public=True,
        endpoints=_endpoints(request),
    )
