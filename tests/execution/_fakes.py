"""Test doubles for the trading side: a virtual clock and a paper gateway that records.

Neither replaces the store: every execution test runs on the real SQLite store.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from mental_trader.execution.orders import EventListener, GatewayEvent, SubmitResult
from mental_trader.execution.paper import PaperGateway
from mental_trader.models import OrderIntent, OrderStatus
from mental_trader.storage import Store
from mental_trader.storage.base import dt_to_ns

#: Monday 2026-04-06 09:30 IST: a session day under the 2026-04-01 charges regime.
START = datetime(2026, 4, 6, 4, 0, tzinfo=UTC)


class FakeClock:
    """Virtual time: ``sleep`` jumps the clock to the sleeper's deadline, instantly.

    ``deadlines`` records the monotonic time each sleep waits until, which is what a
    throttle test measures (never the wall clock).
    """

    def __init__(self, start: datetime = START) -> None:
        self.start = start
        self.t = 0.0
        self.deadlines: list[float] = []

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        deadline = self.t + seconds
        self.deadlines.append(deadline)
        self.t = max(self.t, deadline)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def ts_ns(self) -> int:
        return dt_to_ns(self.now())


class RecordingPaper(PaperGateway):
    """The real paper gateway, recording submissions (with the intent row's state at that
    moment) and every event it delivers; :meth:`replay` re-delivers an event."""

    def __init__(self, *args: Any, store: Store | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.store = store
        self.submitted: list[tuple[float, OrderIntent]] = []
        self.intent_status_at_submit: list[OrderStatus | None] = []
        self.events: list[GatewayEvent] = []
        self._deliver: EventListener | None = None

    def set_listener(self, listener: EventListener) -> None:
        def record(event: GatewayEvent) -> None:
            self.events.append(event)
            listener(event)

        self._deliver = record
        super().set_listener(record)

    async def submit(self, intent: OrderIntent) -> SubmitResult:
        if self.store is not None:
            row = await self.store.get_order(intent.client_id)
            self.intent_status_at_submit.append(None if row is None else row.status)
        self.submitted.append((self.clock.monotonic(), intent))
        return await super().submit(intent)

    def replay(self, event: GatewayEvent) -> None:
        assert self._deliver is not None
        self._deliver(event)
