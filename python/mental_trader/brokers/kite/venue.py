"""Trading through Kite: the session, the order gateway, reconciliation and login.

:class:`KiteVenue` is what the service needs beyond the :class:`~mental_trader.brokers.base.Broker`
when the broker is Kite:

* the daily session: the access token from BROKER_ACCESS_TOKEN or the token file in the
  data directory (:class:`~mental_trader.brokers.kite.session.TokenStore`), its state for
  ``/health``, and :meth:`KiteVenue.login` for the API's callback route (the request token
  exchanged for a new access token, stored 0600, handed to the live REST client);
* the order gateway: with EXECUTION=live, start-up reconciliation of the store's orders and
  positions against Kite (trading is refused if it fails), then a
  :class:`~mental_trader.execution.live.KiteGateway` wired to the WebSocket's order updates
  and reconnects; with EXECUTION=paper, the paper gateway on Kite's prices;
* a dead token (Kite refuses it on REST or on the WebSocket): trading halts, one alert asks
  for a new login, and nothing retries with the dead token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, MutableMapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mental_trader.brokers.kite.broker import KiteBroker
from mental_trader.brokers.kite.errors import KiteTokenError
from mental_trader.brokers.kite.session import TokenStore, login_url
from mental_trader.errors import AuthError, BrokerError
from mental_trader.execution.charges import ChargesTable
from mental_trader.execution.live import KiteGateway
from mental_trader.execution.orders import OrderGateway
from mental_trader.execution.paper import PaperGateway
from mental_trader.execution.reconcile import reconcile
from mental_trader.models import Instrument

if TYPE_CHECKING:
    from mental_trader.config import Settings
    from mental_trader.risk import Clock
    from mental_trader.storage.base import Store

__all__ = ["LOGIN_HINT", "KiteVenue"]

log = logging.getLogger(__name__)

_LOGIN_INTERVAL_S = 1.0  # the least time between two request-token exchanges
#: What to do about a missing or dead session.
LOGIN_HINT = "log in: run `python -m mental_trader kite login` and open the URL it prints"


class KiteVenue:
    """The Kite session and order gateway of one service (see the module docstring).

    Args:
        settings: the configuration (EXECUTION, PRODUCT, BROKER_API_KEY/SECRET, DATA_DIR).
        broker: the Kite broker the service streams from.
        tokens: the token file (default: the data directory's).
        now: the wall clock (token expiry is wall time, whatever the market clock).
        on_session_lost: called once per dead session with a message for the user (the
            service halts trading and notifies).
    """

    def __init__(
        self,
        settings: Settings,
        broker: KiteBroker,
        *,
        tokens: TokenStore | None = None,
        now: Callable[[], datetime] | None = None,
        on_session_lost: Callable[[str], None] | None = None,
    ) -> None:
        if settings.broker_api_key is None:
            raise BrokerError("BROKER=kite needs BROKER_API_KEY")
        self.settings = settings
        self.broker = broker
        self.tokens = tokens or TokenStore.in_dir(settings.data_dir)
        self._now = now or (lambda: datetime.now(UTC))
        self.on_session_lost = on_session_lost
        self._api_key = settings.broker_api_key.get_secret_value()
        self.gateway: KiteGateway | None = None
        self._lost = False
        self._expires_at: datetime | None = None
        self._login_lock = asyncio.Lock()
        self._last_login_mono = float("-inf")
        broker.on_auth_failure = self._session_lost
        broker.rest.on_token_error = self._token_error
        if broker.rest.access_token is None:
            # Read once: /health must answer from memory, never from the file.
            stored = self.tokens.read()
            if stored is not None and stored.api_key == self._api_key:
                self._expires_at = stored.expires_at
                if stored.is_valid(self._now()):
                    broker.rest.access_token = stored.access_token.get_secret_value()

    # -- session -------------------------------------------------------------------------

    @property
    def login_url(self) -> str:
        """Kite's login page for this app."""
        return login_url(self._api_key)

    def session_state(self) -> str:
        """The session as ``/health`` shows it (no secret): ``logged_in until …``,
        ``expired: …`` or ``missing: …``."""
        if self._lost:
            return f"expired: Kite refused the access token; {LOGIN_HINT}"
        if self.broker.rest.access_token is None:
            if self._expires_at is not None:  # the stored session expired
                return f"expired at {self._expires_at.isoformat()}; {LOGIN_HINT}"
            return f"missing: {LOGIN_HINT}"
        if self._expires_at is not None:
            if self._now() >= self._expires_at:
                return f"expired at {self._expires_at.isoformat()}; {LOGIN_HINT}"
            return f"logged_in until {self._expires_at.isoformat()}"
        return "logged_in (BROKER_ACCESS_TOKEN)"

    def require_session(self) -> None:
        """Raise :class:`~mental_trader.errors.AuthError` unless a live token is held."""
        if self._lost or self.broker.rest.access_token is None:
            raise AuthError(f"Kite session {self.session_state()}")
        if self._expires_at is not None and self._now() >= self._expires_at:
            raise AuthError(f"Kite session {self.session_state()}")

    async def login(self, request_token: str) -> datetime:
        """Exchange a login's ``request_token`` for an access token and store it.

        Returns:
            When the new token expires (06:00 IST next day).

        Raises:
            BrokerError: no BROKER_API_SECRET; Kite refused the request token; another
                login less than a second ago; or the session is another Kite account's
                than the stored one (the previous token stays in use).
        """
        secret = self.settings.broker_api_secret
        if secret is None:
            raise BrokerError("Kite login needs BROKER_API_SECRET")
        # The callback is public: one exchange at a time, and not more than one a second,
        # so a flood of requests cannot crowd the order reads out of the REST rate limit.
        async with self._login_lock:
            wait = self._last_login_mono + _LOGIN_INTERVAL_S - time.monotonic()
            if wait > 0:
                raise BrokerError("a Kite login was just attempted: try again in a second")
            self._last_login_mono = time.monotonic()
            return await self._exchange(request_token, secret.get_secret_value())

    async def _exchange(self, request_token: str, api_secret: str) -> datetime:
        rest = self.broker.rest
        previous = rest.access_token
        known = await asyncio.to_thread(self.tokens.read)
        session = await rest.create_session(request_token, api_secret)
        if known is not None and known.user_id and session.user_id != known.user_id:
            rest.access_token = previous  # another account's session: do not trade on it
            raise BrokerError(
                f"the Kite login is for another account ({session.user_id}, not "
                f"{known.user_id}); log in with the account this service trades"
            )
        now = self._now()
        stored = await asyncio.to_thread(
            self.tokens.save,
            session.access_token,
            api_key=self._api_key,
            login_at=now,
            user_id=session.user_id,
        )
        self.broker.rest.access_token = stored.access_token.get_secret_value()
        self._expires_at = stored.expires_at
        self._lost = False
        log.info("Kite login: session valid until %s", stored.expires_at.isoformat())
        return stored.expires_at

    def _token_error(self, _: KiteTokenError) -> None:
        self._session_lost(f"Kite refused the access token; {LOGIN_HINT}")

    def _session_lost(self, message: str) -> None:
        if self._lost:
            return  # once per session: no alert storm, no retry loop
        self._lost = True
        if self.on_session_lost is not None:
            self.on_session_lost(f"Kite session lost: {message}")
        else:
            log.error("Kite session lost: %s", message)

    # -- execution -----------------------------------------------------------------------

    async def open_gateway(
        self,
        store: Store,
        *,
        instruments: MutableMapping[str, Instrument],
        charges: ChargesTable,
        clock: Clock,
    ) -> OrderGateway:
        """The order gateway for EXECUTION (live: reconciled first).

        Raises:
            ReconcileError: live, and the store and Kite do not agree (trading refused).
            AuthError: no live session.
        """
        self.require_session()
        if self.settings.execution != "live":
            return PaperGateway.from_settings(
                self.settings, charges, clock, instruments=instruments
            )
        report = await reconcile(
            store,
            self.broker.rest,
            clock=clock,
            product=self.settings.product,
            charges=charges,
            instruments=instruments,
        )
        log.info("Kite reconciliation: %s", report)
        secret = self.settings.broker_api_secret
        gateway = KiteGateway(
            self.broker.rest,
            instruments=instruments,
            clock=clock,
            api_secret=secret.get_secret_value() if secret else None,
        )
        self.broker.on_order = gateway.on_order_message
        self.broker.on_reconnect = gateway.on_reconnect
        self.gateway = gateway
        return gateway

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        """What must run beside the engine (the live gateway's order loop)."""
        return [] if self.gateway is None else [self.gateway.run()]
