"""A local fake of Zerodha's Kite Connect v3 for tests and demos (loopback only).

It speaks Kite's wire protocol (MARKET_FACTS.md section 5): the REST API with its envelope,
errors and rate limits (:mod:`.rest`), and the binary WebSocket feed with order updates
(:mod:`.ws`, packets encoded by :mod:`.wire`), fed by the simulated market
(:mod:`.market`) with a simulated exchange behind the order endpoints (:mod:`.orders`).
Fault switches (:class:`Faults`) make it misbehave the ways Kite does.

Run it: ``python -m mental_trader.testing.fake_kite --speed 60``; embed it:
``async with FakeKite(...) as fake: ...``.
"""

from __future__ import annotations

from mental_trader.testing.fake_kite.faults import Faults, RateLimits, RateViolation
from mental_trader.testing.fake_kite.server import DEFAULT_WATCHLIST, FakeKite

__all__ = ["DEFAULT_WATCHLIST", "FakeKite", "Faults", "RateLimits", "RateViolation"]
