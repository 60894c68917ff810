"""Settings of a service that trades through a fake Kite server (shared by the Kite tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mental_trader.config import Settings, load_settings
from mental_trader.testing.fake_kite import FakeKite

API_TOKEN = "kite-test-token-0123456789abcdef"


def kite_settings(fake: FakeKite, data_dir: Path, **overrides: Any) -> Settings:
    """BROKER=kite at ``fake``'s URLs, data in ``data_dir``; ``overrides`` win."""
    values: dict[str, Any] = {
        "_env_file": None,
        "broker": "kite",
        "broker_api_key": fake.api_key,
        "broker_api_secret": "fake_api_secret",
        "broker_rest_url": fake.rest_url,
        "broker_ws_url": fake.ws_url,
        "data_dir": data_dir,
        "watchlist": "INFY,RELIANCE",
        "api_token": API_TOKEN,
    }
    values.update(overrides)
    return load_settings(**values)
