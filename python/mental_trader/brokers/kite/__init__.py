"""Zerodha Kite Connect v3: the binary WebSocket protocol (REST, login and the feed come next).

* :mod:`~mental_trader.brokers.kite.decode` — binary frames → pykiteconnect-shaped tick
  dicts (:func:`decode_frame`) or numpy columns for the live feed (:func:`decode_ticks`);
  the parsing runs in the Rust core.
"""

from __future__ import annotations

from mental_trader.brokers.kite.decode import KiteTicks, decode_frame, decode_ticks

__all__ = ["KiteTicks", "decode_frame", "decode_ticks"]
