"""Brokers: the :class:`~mental_trader.brokers.base.Broker` protocol and its implementations.

``sim`` is the embedded simulated NSE market (the default); ``kite`` (Zerodha Kite Connect)
comes later.
"""

from __future__ import annotations

from mental_trader.brokers.base import Broker

__all__ = ["Broker"]
