"""Markets shared by the strategy tests (built once per module: they are read-only)."""

from __future__ import annotations

import pytest

from ._market import Market, make_market


@pytest.fixture(scope="package")
def scalp_market() -> Market:
    """Two sessions of 1m bars with 5m confirm bars, EMA 8/21."""
    return make_market(60, 300, days=2)


@pytest.fixture(scope="package")
def intraday_market() -> Market:
    """Six sessions of 5m bars with 15m confirm bars, EMA 8/21."""
    return make_market(300, 900, days=6)
