"""The broker's daily login: ``GET /broker/login`` and Kite's redirect, ``GET /kite/callback``.

Kite's login (MARKET_FACTS §5): the user opens the login URL, logs in with 2FA, and Kite
redirects the browser to the app's redirect URL with a single-use ``request_token``. Set
that redirect URL to ``http://<host>:<port>/kite/callback`` in the Kite developer console;
this route exchanges the token for the day's access token (stored owner-only in the data
directory, valid until 06:00 IST next day).

The callback cannot carry our bearer token (Kite's redirect makes the request), so it is
public: a request token alone is useless without the API secret, which only this service
holds, and the route reveals nothing but the session's expiry.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from mental_trader.api.deps import ServiceDep
from mental_trader.api.routes._common import ApiModel
from mental_trader.errors import BrokerError, InvalidInputError

__all__ = ["LoginOut", "LoginUrlOut", "callback_router", "router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/broker", tags=["broker"])
callback_router = APIRouter(tags=["broker"])


class LoginUrlOut(ApiModel):
    """Where to log in, and where the broker must redirect afterwards."""

    login_url: str
    callback_path: str


class LoginOut(ApiModel):
    """A successful login."""

    session: str
    expires_at: str
    next_step: str


@router.get("/login", summary="The broker's login URL (Kite: daily, with 2FA)")
async def login_url(service: ServiceDep) -> LoginUrlOut:
    """404 when the broker needs no login (the sim)."""
    url = service.broker_login_url()
    if url is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this broker needs no login")
    return LoginUrlOut(login_url=url, callback_path="/kite/callback")


@callback_router.get(
    "/kite/callback",
    summary="Kite's login redirect: exchanges the request token (no bearer token needed)",
)
async def kite_callback(
    service: ServiceDep,
    request_token: Annotated[str, Query(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9]+$")],
    login_status: Annotated[str, Query(alias="status")] = "success",
) -> LoginOut:
    """400 when Kite reports a failed login, 404 for a broker without login, 502 when Kite
    refuses the request token (expired, used, or another app's)."""
    if login_status != "success":
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"Kite login status: {login_status}")
    try:
        result = await service.broker_login(request_token)
    except InvalidInputError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except BrokerError as exc:
        log.warning("broker login failed: %s", exc)
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"login refused: {exc}") from None
    return LoginOut(
        session=result["session"],
        expires_at=result["expires_at"],
        next_step="POST /control/start to (re)start trading",
    )
