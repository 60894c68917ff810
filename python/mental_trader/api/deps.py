"""What the routes depend on: the :class:`ServiceApi` protocol and ``Annotated`` aliases.

The app does not build the service: the CLI does, and hands it to
:func:`~mental_trader.api.app.create_app`, which keeps an :class:`ApiContext` on
``app.state``. Routes take what they need through the aliases below (``ServiceDep``,
``StoreDep``, …) and never reach into ``app.state`` themselves.

The context lives on ``app.state`` rather than in lifespan state because it exists before
the lifespan runs (it is built from arguments), and because a test transport such as
``httpx.ASGITransport`` does not pass lifespan state to requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, Request
from pydantic import SecretStr

from mental_trader.api.metrics import Metrics
from mental_trader.config import Settings
from mental_trader.errors import StorageError
from mental_trader.storage.base import Store

__all__ = [
    "QUERY_TIMEOUT_S",
    "ApiContext",
    "ContextDep",
    "MetricsDep",
    "ServiceApi",
    "ServiceDep",
    "SettingsDep",
    "StoreDep",
    "get_context",
    "query",
]

T = TypeVar("T")

#: How long a read endpoint waits for the store before answering 503.
QUERY_TIMEOUT_S = 10.0


class ServiceApi(Protocol):
    """What the API needs from the trading service (``DualTimeframeService`` provides it).

    ``health()`` and ``status()`` are plain calls on the event loop: they must return at
    once from in-memory state (no I/O) and hold only JSON-ready values (str, numbers, bool,
    None, lists, dicts; datetimes, enums and dataclasses are converted). No secrets.
    """

    @property
    def settings(self) -> Settings:
        """The settings the service runs with."""

    @property
    def store(self) -> Store:
        """The connected, migrated store (the API only reads it)."""

    @property
    def metrics(self) -> Metrics:
        """The service's metrics (``GET /metrics`` renders them)."""

    def health(self) -> dict[str, Any]:
        """Liveness and readiness.

        Returns:
            ``{"status": "ok" | "degraded" | "down", "feed": {...}, "last_tick_age_s":
            float | None, "db": {...WriterHealth fields}, "broker_session": str,
            "loop_lag_ms": float, "engine_running": bool}`` — exactly these keys.
        """

    def status(self) -> dict[str, Any]:
        """Running state, trading state, per-symbol last bar and EMAs, positions, P&L."""

    def option_chain(self, underlying: str, expiry: date | None = None) -> dict[str, Any] | None:
        """The cached option chain of ``underlying`` (symbol or options name such as
        ``"NIFTY"``) for ``expiry`` (default the nearest), with its analytics and strike
        ranking, JSON-ready; None when options are off or the underlying is unknown."""

    def option_signals(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest option signals, newest first (empty when options are off)."""

    def option_positions(self) -> list[dict[str, Any]]:
        """The open option positions (empty when options are off)."""

    async def start(self) -> bool:
        """Start the engine; True if this call started it, False if it was running.

        Concurrent calls must start exactly one engine loop.
        """

    async def stop(self) -> bool:
        """Stop the engine; True if this call stopped it, False if it was not running."""

    async def halt(self, reason: str) -> None:
        """Block new entries (trading state HALTED) and record ``reason``."""

    async def flatten(self, reason: str) -> None:
        """Cancel open orders and close every position, recording ``reason``."""

    def broker_login_url(self) -> str | None:
        """Where the user logs in to the broker (None: the broker needs no login)."""

    async def broker_login(self, request_token: str) -> dict[str, Any]:
        """Exchange a login's request token for a broker session.

        Returns:
            ``{"session": str, "expires_at": ISO str}``.

        Raises:
            InvalidInputError: the broker needs no login.
            BrokerError: the broker refused the request token.
        """


@dataclass(frozen=True, slots=True)
class ApiContext:
    """Everything a request may need, fixed when the app is created.

    Attributes:
        settings: the service's settings.
        service: the trading service.
        token: the bearer token every protected endpoint requires.
        token_from_file: True when the token is the generated one in the token file.
    """

    settings: Settings
    service: ServiceApi
    token: SecretStr = field(repr=False)
    token_from_file: bool = False


def get_context(request: Request) -> ApiContext:
    """The :class:`ApiContext` of the app serving ``request``."""
    ctx = getattr(request.app.state, "api", None)
    if not isinstance(ctx, ApiContext):
        raise RuntimeError("the app was not built by mental_trader.api.create_app")
    return ctx


ContextDep = Annotated[ApiContext, Depends(get_context)]


def _service(ctx: ContextDep) -> ServiceApi:
    return ctx.service


def _settings(ctx: ContextDep) -> Settings:
    return ctx.settings


def _store(ctx: ContextDep) -> Store:
    return ctx.service.store


def _metrics(ctx: ContextDep) -> Metrics:
    return ctx.service.metrics


ServiceDep = Annotated[ServiceApi, Depends(_service)]
SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[Store, Depends(_store)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]


async def query(read: Awaitable[T], *, timeout_s: float = QUERY_TIMEOUT_S) -> T:
    """Await a store read, bounded in time.

    Args:
        read: the store coroutine.
        timeout_s: the bound.

    Returns:
        The read's result.

    Raises:
        StorageError: the store did not answer in time (retryable; the API answers 503).
    """
    try:
        async with asyncio.timeout(timeout_s):
            return await read
    except TimeoutError:
        raise StorageError(
            f"the store did not answer within {timeout_s:g} s", retryable=True
        ) from None
