"""Child process of test_crash.py: bulk-writes candle blocks and prints each acknowledged one.

Usage: python _crash_writer.py URL SCHEMA   (SCHEMA "-" for none)

Block ``b`` holds ROWS candles whose close is ``b``; a line ``b`` on stdout means the store
acknowledged block ``b`` as committed. The parent kills this process with SIGKILL mid-write.
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np

from mental_trader.storage import open_store

ROWS = 5_000
MIN_NS = 60_000_000_000


async def main(url: str, schema: str) -> None:
    options = {} if schema == "-" else {"schema": schema}
    async with open_store(url, **options) as store:
        await store.migrate()
        print("ready", flush=True)  # noqa: T201 - the protocol with the parent
        for b in range(100_000):
            ts = (b * ROWS + np.arange(ROWS, dtype=np.int64)) * MIN_NS
            value = np.full(ROWS, float(b))
            bars = {
                "ts": ts,
                "open": value,
                "high": value,
                "low": value,
                "close": value,
                "volume": value,
                "ticks": np.full(ROWS, b, dtype=np.int64),
            }
            await store.upsert_candles("NSE:CRASH", 60, bars)
            print(b, flush=True)  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
