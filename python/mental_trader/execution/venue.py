"""A real broker's session and order gateway, as the service sees it.

The service trades on paper against its broker's prices unless it is given a
:class:`Venue` (``brokers.kite.venue.KiteVenue`` for Zerodha): then the venue says whether
the broker session is live, builds the order gateway (live: after reconciling the store
with the broker), names the tasks that must run beside the engine, and exchanges a login.
"""

from __future__ import annotations

from collections.abc import Coroutine, MutableMapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mental_trader.execution.charges import ChargesTable
    from mental_trader.execution.orders import OrderGateway
    from mental_trader.models import Instrument
    from mental_trader.risk import Clock
    from mental_trader.storage.base import Store

__all__ = ["Venue"]


class Venue(Protocol):
    """A real broker's session and order gateway (see ``brokers.kite.venue.KiteVenue``).

    Without one the service trades on paper against its broker's prices (the sim).
    """

    def session_state(self) -> str:
        """The broker session as ``/health`` shows it (no secret)."""
        ...

    def require_session(self) -> None:
        """Raise :class:`~mental_trader.errors.AuthError` unless the session is live."""
        ...

    async def open_gateway(
        self,
        store: Store,
        *,
        instruments: MutableMapping[str, Instrument],
        charges: ChargesTable,
        clock: Clock,
    ) -> OrderGateway:
        """The order gateway (live: after reconciling the store with the broker)."""
        ...

    def tasks(self) -> list[Coroutine[Any, Any, None]]:
        """Coroutines to run beside the engine while it trades."""
        ...

    async def login(self, request_token: str) -> datetime:
        """Exchange a login's request token for a new session; its expiry."""
        ...

    @property
    def login_url(self) -> str:
        """Where the user logs in."""
        ...
