"""Zerodha Kite Connect v3: REST, the binary WebSocket feed, login, and the broker.

* :mod:`~mental_trader.brokers.kite.decode` — binary frames → pykiteconnect-shaped tick
  dicts (:func:`decode_frame`) or numpy columns for the live feed (:func:`decode_ticks`);
  the parsing runs in the Rust core.
* :mod:`~mental_trader.brokers.kite.rest` — :class:`KiteRest`, the REST client (envelope,
  errors, rate limits, every endpoint the service uses); errors in
  :mod:`~mental_trader.brokers.kite.errors`, login and the token file in
  :mod:`~mental_trader.brokers.kite.session`.
* :mod:`~mental_trader.brokers.kite.ticker` — :class:`KiteTicker`, the WebSocket connection
  (subscriptions, watchdog, reconnects); :mod:`~mental_trader.brokers.kite.feed` —
  :class:`KiteFeed`, its frames as engine frames, backfilled after a reconnect.
* :mod:`~mental_trader.brokers.kite.broker` — :class:`KiteBroker`, the Broker protocol.
* :mod:`~mental_trader.brokers.kite.venue` — the session and order gateway in the service
  (import it from there: it depends on the execution package).
"""

from __future__ import annotations

from mental_trader.brokers.kite.broker import KiteBroker
from mental_trader.brokers.kite.decode import KiteTicks, decode_frame, decode_ticks
from mental_trader.brokers.kite.feed import KiteFeed
from mental_trader.brokers.kite.rest import KiteRest
from mental_trader.brokers.kite.ticker import KiteTicker

__all__ = [
    "KiteBroker",
    "KiteFeed",
    "KiteRest",
    "KiteTicker",
    "KiteTicks",
    "decode_frame",
    "decode_ticks",
]
