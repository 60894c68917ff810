"""SIGKILL around order submission, then restart and reconcile: no duplicate, no orphan.

A child process writes an order intent and is killed before sending it, while its
placement's answer is pending (the fake holds it), or right after Kite accepted it. The
fake Kite server and the SQLite store outlive it; reconciliation at the next start must
leave every order of ours at the broker exactly once, known to the store with the broker's
outcome, and the positions equal.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from mental_trader.execution.charges import ChargesTable
from mental_trader.execution.kite_state import NOT_PLACED
from mental_trader.execution.reconcile import reconcile
from mental_trader.models import TERMINAL_ORDER_STATUSES, OrderStatus, TradeStatus
from mental_trader.storage import open_store
from mental_trader.testing.fake_kite import FakeKite

from ._kite import WallClock, fake_kite, rest_for

CHILD = Path(__file__).with_name("_kite_child.py")
MODES = {"intent": "NSE:INFY", "inflight": "NSE:RELIANCE", "accepted": "NSE:ICICIBANK"}


async def _run_and_kill(fake: FakeKite, db: Path, mode: str, symbol: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), str(db), fake.rest_url, fake.api_key, fake.access_token,
        mode, symbol, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            line = (await proc.stdout.readline()).decode().split()
            assert line[:1] == ["READY"], f"child {mode} said {line}"
            client_id = line[1]
            if mode == "inflight":  # the order exists at Kite; its answer is held back
                while not fake.orders_by_tag(client_id):  # noqa: ASYNC110 - another party's state
                    await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return client_id


async def test_sigkill_around_submission_leaves_no_duplicate_and_no_orphan(
    tmp_path: Path, charges: ChargesTable
) -> None:
    db = tmp_path / "kill.db"
    async with fake_kite(watchlist=tuple(MODES.values())) as fake:
        fake.faults.order_delay_s = 30.0
        ids: dict[str, str] = {}
        for mode, symbol in MODES.items():
            fake.faults.delay_next_orders = 1 if mode == "inflight" else 0
            ids[mode] = await _run_and_kill(fake, db, mode, symbol)
        assert fake.faults.delay_next_orders == 0  # the in-flight placement did reach Kite

        store = open_store(f"sqlite:///{db}")
        await store.connect()
        rest = rest_for(fake)
        try:
            before = {o.client_id: o.status for o in await store.load_orders()}
            assert before[ids["intent"]] is OrderStatus.INTENT
            assert before[ids["inflight"]] is OrderStatus.INTENT  # killed before the answer
            assert before[ids["accepted"]] is OrderStatus.SUBMITTED

            report = await reconcile(store, rest, clock=WallClock(), charges=charges)

            # zero duplicates: one Kite order per tag at most, none for the unsent intent
            assert fake.orders_by_tag(ids["intent"]) == []
            assert len(fake.orders_by_tag(ids["inflight"])) == 1
            assert len(fake.orders_by_tag(ids["accepted"])) == 1
            assert len(fake.placements) == 2
            # zero orphans: every order of ours at Kite is terminal and agrees with the store
            for payload in fake.orders.orders.values():
                assert payload.status in ("COMPLETE", "CANCELLED", "REJECTED")
                row = await store.get_order(payload.tag or "")
                assert row is not None, f"orphan {payload.order_id}"
                assert row.status in TERMINAL_ORDER_STATUSES
                assert row.filled_qty == payload.filled_quantity
                assert row.broker_order_id == payload.order_id
            unsent = await store.get_order(ids["intent"])
            assert unsent is not None
            assert (unsent.status, unsent.message) == (OrderStatus.REJECTED, NOT_PLACED)
            # the positions Kite holds are the store's open round trips
            held = {t.symbol: t.qty for t in await store.load_trades(status=TradeStatus.OPEN)}
            assert report.positions == held
            assert all(held[MODES[m]] == 2 for m in ("inflight", "accepted") if MODES[m] in held)
            assert sorted(report.opened) == sorted(
                ids[m]
                for m in ("inflight", "accepted")
                if fake.orders_by_tag(ids[m])[0]["status"] == "COMPLETE"
            )
            # a second start changes nothing
            again = await reconcile(store, rest, clock=WallClock(), charges=charges)
            assert (again.checked, again.fills, again.opened) == (0, 0, [])
        finally:
            await rest.close()
            await store.close()
