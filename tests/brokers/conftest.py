"""The sim-broker tests' shared fixtures: the calendar and the seed-42 market."""

from __future__ import annotations

import pytest

from mental_trader.brokers.sim.market import SimMarket
from mental_trader.calendar import TradingCalendar


@pytest.fixture(scope="module")
def cal() -> TradingCalendar:
    """XBOM sessions, no overrides."""
    return TradingCalendar()


@pytest.fixture(scope="module")
def market(cal: TradingCalendar) -> SimMarket:
    """The simulated market of seed 42."""
    return SimMarket(42, cal)
