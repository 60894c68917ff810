"""SIGKILL during a bulk write: the database stays sound and keeps every acknowledged commit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from mental_trader.storage import open_store
from mental_trader.storage.sqlite import SqliteStore

from ._crash_writer import ROWS

CHILD = Path(__file__).with_name("_crash_writer.py")


async def test_sigkill_mid_bulk_write_loses_nothing_acknowledged(
    store_url: tuple[str, dict[str, object]],
) -> None:
    url, options = store_url
    schema = str(options.get("schema", "-"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A plain Popen read from a worker thread: no dependence on asyncio's child watcher.
    child = subprocess.Popen(  # noqa: ASYNC220 - returns at once; reads go through to_thread
        [sys.executable, str(CHILD), url, schema], stdout=subprocess.PIPE, env=env
    )
    assert child.stdout is not None
    readline = child.stdout.readline
    acked = -1
    try:
        line = await asyncio.wait_for(asyncio.to_thread(readline), 60)
        assert line.strip() == b"ready"
        while acked < 3:
            line = await asyncio.wait_for(asyncio.to_thread(readline), 60)
            assert line, "child exited early"
            acked = int(line)
        # Kill it while the next block is being written.
        await asyncio.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        rest = await asyncio.to_thread(child.stdout.read)
        acked = max([acked, *(int(x) for x in rest.split())])
    finally:
        if child.poll() is None:
            child.kill()
        await asyncio.to_thread(child.wait)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    async with open_store(url, **options) as store:
        if isinstance(store, SqliteStore):
            assert await store.integrity_check() == "ok"
        stored = await store.load_candles("NSE:CRASH", 60)
    blocks, counts = np.unique(stored["ticks"], return_counts=True)
    # Every acknowledged block is whole; at most one more (committed, not yet printed) exists;
    # no block is partial.
    assert blocks.tolist() == list(range(len(blocks)))
    assert acked + 1 <= len(blocks) <= acked + 2
    assert (counts == ROWS).all()
    np.testing.assert_array_equal(stored["close"], stored["ticks"].astype(np.float64))
