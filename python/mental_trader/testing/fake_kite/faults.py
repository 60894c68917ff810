"""Fault switches of the fake Kite server, and its rate-limit bookkeeping.

:class:`Faults` is a plain mutable object: a test flips a switch (``fake.faults.ws_silent =
True``) or a separate process does it over the admin route (``POST /_fake/faults`` with a
JSON object of the same names). Counters (``*_next``) count down as the server uses them.

:class:`RateLimits` enforces Kite's per-scope limits (MARKET_FACTS.md section 5) over a
sliding window and remembers every request it served and every one it refused as a
violation, so a client test can assert that the limits were never exceeded.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mental_trader.errors import InvalidInputError

__all__ = ["DEFAULT_RATE_LIMITS", "Faults", "RateLimits", "RateViolation"]

#: Kite's limits per scope: (requests, window seconds). ``orders`` covers place, modify and
#: cancel together; ``orders_minute`` is the same scope's 400/min.
DEFAULT_RATE_LIMITS: dict[str, tuple[int, float]] = {
    "quote": (1, 1.0),
    "historical": (3, 1.0),
    "orders": (10, 1.0),
    "orders_minute": (400, 60.0),
    "others": (10, 1.0),
}


@dataclass
class Faults:
    """The fault switches (all off by default).

    Attributes:
        ws_drop: one shot: abort the TCP connection of every open WebSocket (no close
            frame); the server sets it back to False once done.
        ws_silent: while True, send nothing on any WebSocket (no ticks, no heartbeats, no
            order updates), keeping TCP open.
        ws_refuse_handshakes: refuse the next N WebSocket handshakes with HTTP
            ``ws_refuse_status``.
        ws_refuse_status: the HTTP status of a refused handshake (503 by default).
        token_expired: every REST call answers 403 TokenException and WebSocket upgrades are
            refused with 403, until a new login (``POST /session/token``), which clears the
            switch and invalidates every access token issued before.
        delay_next_orders: the next N order placements create their order at once but
            answer only after ``order_delay_s`` seconds (past the client's timeout).
        order_delay_s: how long a delayed placement holds its response.
        rate_limit_next: answer the next N REST requests with 429 NetworkException
            (not counted as violations: the server forced them).
        rms_reject_next: the next N order placements are accepted (an order_id is
            returned) and then REJECTED by the RMS with ``rms_reject_message``.
        rms_reject_message: the rejection's ``status_message``.
        lose_order_updates: while True, order updates are not sent on the WebSocket
            (REST still shows the truth).
    """

    ws_drop: bool = False
    ws_silent: bool = False
    ws_refuse_handshakes: int = 0
    ws_refuse_status: int = 503
    token_expired: bool = False
    delay_next_orders: int = 0
    order_delay_s: float = 10.0
    rate_limit_next: int = 0
    rms_reject_next: int = 0
    rms_reject_message: str = "RMS:Margin Exceeds. Insufficient funds (fake Kite RMS rejection)."
    lose_order_updates: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The switches as a JSON-ready dict."""
        return asdict(self)

    def update(self, values: dict[str, Any]) -> None:
        """Set switches from a dict of names to values (the admin route's body).

        Raises:
            InvalidInputError: an unknown name or a value of the wrong type.
        """
        kinds = {f.name: type(getattr(self, f.name)) for f in fields(self)}
        for name, value in values.items():
            kind = kinds.get(name)
            if kind is None:
                raise InvalidInputError(f"unknown fault switch {name!r}")
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not kind:
                raise InvalidInputError(f"fault {name} takes a {kind.__name__}, got {value!r}")
            setattr(self, name, value)

    def take(self, name: str) -> bool:
        """Use one unit of the counter ``name``: True if it was above zero."""
        left = int(getattr(self, name))
        if left <= 0:
            return False
        setattr(self, name, left - 1)
        return True


@dataclass(frozen=True, slots=True)
class RateViolation:
    """A request the server refused because its scope's limit was exceeded.

    Attributes:
        scope: the rate-limit scope (``quote``, ``historical``, ``orders``,
            ``orders_minute``, ``others``).
        method: HTTP method.
        path: request path.
        at: ``time.monotonic()`` of its arrival.
        in_window: how many requests of the scope the server had served in the window.
    """

    scope: str
    method: str
    path: str
    at: float
    in_window: int


@dataclass
class RateLimits:
    """Sliding-window limits per scope, with a record of what was served and refused.

    A request is served if fewer than ``limit`` requests of its scope were served in the
    last ``window`` seconds (for ``orders`` both the per-second and per-minute windows
    apply); otherwise it is refused with 429 and recorded in :attr:`violations`.
    """

    limits: dict[str, tuple[int, float]] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    #: ``time.monotonic()`` of every served request, per scope (``orders_minute`` shares
    #: ``orders``).
    served: dict[str, list[float]] = field(default_factory=dict)
    violations: list[RateViolation] = field(default_factory=list)
    _recent: dict[str, deque[float]] = field(default_factory=dict)

    def admit(self, scope: str, method: str, path: str, now: float | None = None) -> bool:
        """Whether a request of ``scope`` may be served now; records it either way."""
        at = time.monotonic() if now is None else now
        windows = [scope, "orders_minute"] if scope == "orders" else [scope]
        for name in windows:
            limit, window = self.limits[name]
            recent = self._recent.setdefault(name, deque())
            while recent and recent[0] <= at - window:
                recent.popleft()
            if len(recent) >= limit:
                self.violations.append(RateViolation(name, method, path, at, len(recent)))
                return False
        for name in windows:
            self._recent[name].append(at)
        self.served.setdefault(scope, []).append(at)
        return True

    def max_in_window(self, scope: str, window: float | None = None) -> int:
        """The most requests of ``scope`` the server served within any ``window`` seconds
        (default the scope's own window)."""
        times = self.served.get(scope, [])
        span = self.limits[scope][1] if window is None else window
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - span:
                lo += 1
            best = max(best, hi - lo + 1)
        return best
