"""Persistence: one :class:`Store` interface, SQLite (embedded default) and PostgreSQL backends.

Use :func:`open_store` to get the backend a ``DATABASE_URL`` names, and
:class:`StoreWriter` to keep database latency and outages away from the tick loop.
"""

from mental_trader.storage.base import CANDLE_COLUMNS, CandleRow, Candles, Store, open_store
from mental_trader.storage.writer import StoreWriter

__all__ = ["CANDLE_COLUMNS", "CandleRow", "Candles", "Store", "StoreWriter", "open_store"]
