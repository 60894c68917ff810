"""Write-behind: the tick loop hands writes to a queue and never waits for the database.

:class:`StoreWriter` keeps pending writes in an in-order, bounded spool and applies them on
its own task. A write leaves the spool only once the store has committed it; while the
database is unreachable (a retryable :class:`~mental_trader.errors.StorageError`) the writer
keeps the spool, backs off and retries the same batch. Every write is idempotent (see
:mod:`mental_trader.storage.base`), so retrying a batch whose commit outcome was lost is safe.

Limits, said plainly:
- The spool lives in memory. Writes still in it when the process is killed are lost; writes
  the store acknowledged are not (the store commits durably). Order intents therefore never
  go through here: the executor awaits the store directly, so no order is sent without a
  durable intent.
- When the spool is full the OLDEST pending write is dropped, counted in ``dropped``, logged
  at ERROR and reported by :meth:`StoreWriter.health`. Candles lost that way come back with
  ``python -m mental_trader backfill``.
- A write the database refuses on its merits (``retryable=False``) is logged at ERROR with
  what it was, counted in ``failed`` and skipped, so one bad row cannot wedge the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from mental_trader.errors import StorageError
from mental_trader.models import EmaStateRow, Event, SignalRecord
from mental_trader.storage.base import CandleRow, Store

__all__ = ["StoreWriter", "WriterHealth"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Op:
    seq: int
    kind: Literal["bars", "signal", "event"]
    bars: Sequence[CandleRow] = ()
    ema_states: Sequence[EmaStateRow] = ()
    signal: SignalRecord | None = None
    event: Event | None = None
    enqueued: float = field(default=0.0)

    def describe(self) -> str:
        if self.kind == "bars":
            return f"{len(self.bars)} bar(s) + {len(self.ema_states)} EMA state(s)"
        if self.kind == "signal" and self.signal is not None:
            return f"signal {self.signal.id}"
        return f"event {self.event.id if self.event else '?'}"


@dataclass(frozen=True, slots=True)
class WriterHealth:
    """What ``/health`` reports about persistence.

    Attributes:
        state: ``"ok"``, or ``"outage"`` while the database is unreachable.
        pending: writes in the spool, not yet committed.
        acked: writes committed since start.
        dropped: writes dropped because the spool was full.
        failed: writes the database refused (not retryable).
        outage_s: seconds since the outage began (0 when ok).
        oldest_pending_s: age of the oldest write in the spool (0 when empty).
        last_error: the last storage error message, or "".
    """

    state: Literal["ok", "outage"]
    pending: int
    acked: int
    dropped: int
    failed: int
    outage_s: float
    oldest_pending_s: float
    last_error: str


class StoreWriter:
    """A bounded, in-order write-behind queue in front of a :class:`Store`.

    Use as ``async with StoreWriter(store) as writer:``; leaving the block flushes what it
    can within ``close_timeout_s``. The enqueue methods are plain (non-async) calls that
    return at once.

    Args:
        store: a connected store.
        max_spool: the most writes held while the database is slow or down.
        max_batch_bars: bars coalesced into one transaction.
        retry_initial_s, retry_max_s: the capped exponential backoff during an outage.
        write_timeout_s: a write that takes longer counts as an outage and is retried.
        close_timeout_s: how long :meth:`close` waits for the spool to drain.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_spool: int = 100_000,
        max_batch_bars: int = 500,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
        write_timeout_s: float = 30.0,
        close_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_spool < 1:
            raise ValueError(f"max_spool must be >= 1, got {max_spool}")
        self._store = store
        self._max_spool = max_spool
        self._max_batch_bars = max_batch_bars
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._write_timeout_s = write_timeout_s
        self._close_timeout_s = close_timeout_s
        self._clock = clock
        self._spool: deque[_Op] = deque()
        self._in_flight = 0  # ops at the head of the spool being written right now
        self._seq = 0
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.acked = 0
        self.dropped = 0
        self.failed = 0
        self._outage_since: float | None = None
        self._last_error = ""

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> StoreWriter:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start the writer task (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="store-writer")

    async def close(self) -> None:
        """Drain the spool (up to ``close_timeout_s``), then stop. Reports what is left."""
        if self._task is None:
            return
        drained = await self.flush(self._close_timeout_s)
        self._closing = True
        self._wakeup.set()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if not drained:
            log.error("store writer closed with %d write(s) not committed", len(self._spool))

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every write enqueued so far is committed; False on timeout."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    # ----------------------------------------------------------------- enqueue (non-blocking)

    def commit_bars(
        self, bars: Sequence[CandleRow], ema_states: Sequence[EmaStateRow] = ()
    ) -> None:
        """Queue closed bars and their EMA states (committed together, in order)."""
        self._push(_Op(0, "bars", bars=tuple(bars), ema_states=tuple(ema_states)))

    def insert_signal(self, signal: SignalRecord) -> None:
        """Queue a signal row."""
        self._push(_Op(0, "signal", signal=signal))

    def insert_event(self, event: Event) -> None:
        """Queue an audit-log entry."""
        self._push(_Op(0, "event", event=event))

    def _push(self, op: _Op) -> None:
        self._seq += 1
        op.seq = self._seq
        op.enqueued = self._clock()
        if len(self._spool) >= self._max_spool:
            self._drop_oldest()
        self._spool.append(op)
        self._drained.clear()
        self._wakeup.set()

    def _drop_oldest(self) -> None:
        # Never the batch being written: its outcome is still to be learned.
        index = self._in_flight if self._in_flight < len(self._spool) else None
        if index is None:
            return
        victim = self._spool[index]
        del self._spool[index]
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 10_000 == 0:
            log.error(
                "store spool full (%d writes): dropped %d write(s) so far, latest %s; "
                "run `python -m mental_trader backfill` once the database is back",
                self._max_spool,
                self.dropped,
                victim.describe(),
            )

    # ----------------------------------------------------------------- health

    def health(self) -> WriterHealth:
        """The writer's state for ``/health``."""
        now = self._clock()
        return WriterHealth(
            state="outage" if self._outage_since is not None else "ok",
            pending=len(self._spool),
            acked=self.acked,
            dropped=self.dropped,
            failed=self.failed,
            outage_s=0.0 if self._outage_since is None else now - self._outage_since,
            oldest_pending_s=now - self._spool[0].enqueued if self._spool else 0.0,
            last_error=self._last_error,
        )

    # ----------------------------------------------------------------- the writer task

    def _next_batch(self) -> list[_Op]:
        head = self._spool[0]
        if head.kind != "bars":
            return [head]
        batch = [head]
        count = len(head.bars)
        for op in list(self._spool)[1:]:
            if op.kind != "bars" or count + len(op.bars) > self._max_batch_bars:
                break
            batch.append(op)
            count += len(op.bars)
        return batch

    async def _apply(self, batch: list[_Op]) -> None:
        head = batch[0]
        if head.kind == "bars":
            bars = [b for op in batch for b in op.bars]
            # Only the newest state per (symbol, timeframe) matters: the store keeps the
            # newest anyway, and encoding the others would only cost time on the loop.
            latest: dict[tuple[str, int], EmaStateRow] = {}
            for op in batch:
                for s in op.ema_states:
                    key = (s.symbol, s.timeframe_s)
                    held = latest.get(key)
                    if held is None or s.bar_ts >= held.bar_ts:
                        latest[key] = s
            await self._store.commit_bars(bars, list(latest.values()))
        elif head.kind == "signal" and head.signal is not None:
            await self._store.insert_signal(head.signal)
        elif head.event is not None:
            await self._store.insert_event(head.event)

    async def _run(self) -> None:
        delay = self._retry_initial_s
        while not self._closing:
            if not self._spool:
                self._drained.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._next_batch()
            self._in_flight = len(batch)
            try:
                await asyncio.wait_for(self._apply(batch), self._write_timeout_s)
            except (StorageError, TimeoutError) as exc:
                retryable = isinstance(exc, TimeoutError) or getattr(exc, "retryable", False)
                self._last_error = str(exc) or type(exc).__name__
                self._in_flight = 0
                if retryable:
                    if self._outage_since is None:
                        self._outage_since = self._clock()
                        log.error(
                            "database unreachable, spooling writes (%d pending): %s",
                            len(self._spool),
                            self._last_error,
                        )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max_s)
                    continue
                for _ in batch:
                    self._spool.popleft()
                self.failed += len(batch)
                log.error(
                    "database refused %s; skipped: %s",
                    ", ".join(op.describe() for op in batch),
                    self._last_error,
                )
                continue
            self._in_flight = 0
            for _ in batch:
                self._spool.popleft()
            self.acked += len(batch)
            delay = self._retry_initial_s
            if self._outage_since is not None:
                log.warning(
                    "database back after %.1f s; %d write(s) still spooled",
                    self._clock() - self._outage_since,
                    len(self._spool),
                )
                self._outage_since = None
