"""The embedded simulated NSE market and its broker (no account needed).

:class:`SimMarket` makes deterministic ticks per (symbol, session day); :class:`SimBroker`
serves instruments and history from them.
"""

from __future__ import annotations

from mental_trader.brokers.sim.broker import NIFTY_50, SimBroker
from mental_trader.brokers.sim.market import DayTicks, SimMarket, SymbolProfile

__all__ = ["NIFTY_50", "DayTicks", "SimBroker", "SimMarket", "SymbolProfile"]
