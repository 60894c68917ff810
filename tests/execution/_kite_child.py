"""A trading process to SIGKILL: writes an order intent, then (by mode) places it at the
fake Kite server through the Kite gateway, and waits to be killed.

    python _kite_child.py DB REST_URL API_KEY ACCESS_TOKEN MODE SYMBOL

MODE: ``intent`` (killed before sending), ``inflight`` (killed while the placement's answer
is pending), ``accepted`` (killed after Kite accepted it, before any update or fill).
Prints ``READY <client id>`` when it reached the point to be killed at.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from mental_trader.brokers.kite.rest import KiteRest
from mental_trader.execution.live import KiteGateway
from mental_trader.execution.orders import new_client_id
from mental_trader.models import OrderIntent, OrderUpdate, Side
from mental_trader.risk import SystemClock
from mental_trader.storage import open_store


async def main(db: str, url: str, key: str, token: str, mode: str, symbol: str) -> None:
    store = open_store(f"sqlite:///{db}")
    await store.connect()
    await store.migrate()
    rest = KiteRest(key, access_token=token, base_url=url, timeout_s=60.0)
    gateway = KiteGateway(rest, instruments={}, clock=SystemClock())
    order = OrderIntent(new_client_id(), symbol, Side.BUY, 2, created_at=datetime.now(UTC))
    assert await store.record_order_intent(order, datetime.now(UTC))  # before sending
    if mode == "inflight":
        sys.stdout.write(f"READY {order.client_id}\n")
        sys.stdout.flush()
    if mode != "intent":
        result = await gateway.submit(order)
        await store.apply_order_update(
            OrderUpdate(
                order.client_id, "submit", result.status, datetime.now(UTC), result.broker_order_id
            )
        )
    if mode != "inflight":
        sys.stdout.write(f"READY {order.client_id}\n")
        sys.stdout.flush()
    await asyncio.sleep(3600)  # the parent kills us here


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
