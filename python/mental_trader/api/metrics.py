"""Prometheus metrics of the service, and the event-loop lag monitor.

:class:`Metrics` owns its own :class:`~prometheus_client.CollectorRegistry` (never the
global one), so a process — or a test session — may build as many as it likes. ``GET
/metrics`` renders it in the Prometheus text format.

Cost on the tick path. The per-tick figures (``mt_ticks_total``, ``mt_dropped_ticks_total``)
are plain Python integers behind a collector that reads them at scrape time: one
``add_ticks(len(frame))`` per feed frame costs an integer add, no lock and no label lookup.
Call it per frame, not per tick. Everything else (signals, orders, fills, tick-to-signal
latency) happens at most once per closed bar and uses ordinary prometheus_client
instruments. Nothing here does I/O.

Event-loop lag is measured by :class:`EventLoopLagMonitor`: a task that sleeps a fixed
interval and records how late it wakes up. Every sample goes to the histogram
``mt_event_loop_lag_seconds``; p50 / p99 / max over a sliding window go to the gauge
``mt_event_loop_lag_window_seconds{quantile}`` and to :meth:`EventLoopLagMonitor.snapshot`
(what ``/health`` reports).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from mental_trader.storage.writer import WriterHealth

__all__ = [
    "DROP_REASONS",
    "ORDER_OUTCOMES",
    "EventLoopLagMonitor",
    "LoopLagSnapshot",
    "Metrics",
]

log = logging.getLogger(__name__)

#: Drop reasons every exposition shows (at 0 until counted); others appear when first used.
#: ``out_of_session`` and ``late`` are the Rust engine's (``Engine.dropped()``); the rest
#: are for the feed adapter: malformed ticks, symbols not subscribed, a full tick queue.
DROP_REASONS = ("out_of_session", "late", "invalid", "unknown_symbol", "overflow")
#: Order outcomes every exposition shows (at 0 until counted).
ORDER_OUTCOMES = ("submitted", "rejected", "cancelled", "filled", "unknown")

# Tick → signal is one Rust call plus a strategy call: microseconds, a few ms at worst.
_TICK_TO_SIGNAL_BUCKETS = (
    5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
    1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0,
)  # fmt: skip
# A healthy loop wakes within a millisecond; a blocking call shows as 10 ms … seconds.
_LOOP_LAG_BUCKETS = (
    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
_RATE_PERIOD_S = 1.0  # mt_ticks_per_second is the rate over about this long


@dataclass(frozen=True, slots=True)
class LoopLagSnapshot:
    """Event-loop lag over the monitor's window, in milliseconds.

    Attributes:
        p50_ms: median lag.
        p99_ms: 99th percentile lag.
        max_ms: worst lag in the window.
        last_ms: the latest sample.
        samples: how many samples the window holds (0: nothing measured yet, all zeros).
    """

    p50_ms: float
    p99_ms: float
    max_ms: float
    last_ms: float
    samples: int


def _quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending, non-empty list."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class EventLoopLagMonitor:
    """Samples event-loop lag every ``interval_s`` on a task of its own.

    Start and stop it with ``async with monitor:`` or :meth:`start` / :meth:`stop`, or run
    :meth:`run` inside your own ``TaskGroup``. :meth:`start` is idempotent, so the service
    and the API may both ask for it; only the caller that got ``True`` should stop it.

    Args:
        interval_s: the sampling interval (100-250 ms is the useful range: shorter costs
            wake-ups, longer misses short stalls).
        window: samples kept for the percentiles (240 x 0.25 s = the last minute).
        on_sample: called with each lag in seconds, and the loop time of the sample
            (:class:`Metrics` records it in its histogram and updates its rates).
    """

    def __init__(
        self,
        *,
        interval_s: float = 0.25,
        window: int = 240,
        on_sample: Callable[[float, float], None] | None = None,
    ) -> None:
        if not 0 < interval_s <= 60:
            raise ValueError(f"interval_s must be in (0, 60], got {interval_s}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.interval_s = interval_s
        self._samples: deque[float] = deque(maxlen=window)
        self._on_sample = on_sample
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the sampling task is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> bool:
        """Start sampling on the running loop.

        Returns:
            True if this call started the task, False if it was already running.

        Raises:
            RuntimeError: no event loop is running.
        """
        if self.running:
            return False
        self._task = asyncio.get_running_loop().create_task(self.run(), name="loop-lag-monitor")
        return True

    async def stop(self) -> None:
        """Stop sampling and wait for the task to end (safe when not running)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def __aenter__(self) -> EventLoopLagMonitor:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """Sample until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            now = loop.time()
            # asyncio may wake a timer up to one clock resolution early: clamp at zero.
            self.record(max(0.0, now - due), now)

    def record(self, lag_s: float, now: float) -> None:
        """Add one sample (what :meth:`run` does each interval; public for tests and replay).

        Args:
            lag_s: how late the loop woke, in seconds.
            now: the loop time of the sample, in seconds.
        """
        self._samples.append(lag_s)
        if self._on_sample is not None:
            self._on_sample(lag_s, now)

    def reset(self) -> None:
        """Forget the samples so far (e.g. the start-up, whose stalls are not steady state)."""
        self._samples.clear()

    def snapshot(self) -> LoopLagSnapshot:
        """p50 / p99 / max / last lag over the window (zeros before the first sample)."""
        if not self._samples:
            return LoopLagSnapshot(0.0, 0.0, 0.0, 0.0, 0)
        ordered = sorted(self._samples)
        return LoopLagSnapshot(
            p50_ms=_quantile(ordered, 0.50) * 1e3,
            p99_ms=_quantile(ordered, 0.99) * 1e3,
            max_ms=ordered[-1] * 1e3,
            last_ms=self._samples[-1] * 1e3,
            samples=len(ordered),
        )


class _HotPathCollector(Collector):
    """Exposes the plain-integer counters of :class:`Metrics` at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return self._families(with_values=False)

    def collect(self) -> Iterable[Metric]:
        return self._families(with_values=True)

    def _families(self, *, with_values: bool) -> list[Metric]:
        m = self._metrics
        ticks = CounterMetricFamily("mt_ticks", "Ticks received from the feed.")
        rate = GaugeMetricFamily(
            "mt_ticks_per_second", f"Tick rate over the last ~{_RATE_PERIOD_S:g} s."
        )
        dropped = CounterMetricFamily(
            "mt_dropped_ticks", "Ticks dropped before reaching a bar, by reason.", labels=["reason"]
        )
        pending = GaugeMetricFamily(
            "mt_db_spool_pending", "Writes queued for the database, not yet committed."
        )
        outage = GaugeMetricFamily("mt_db_outage", "1 while the database is unreachable.")
        spool_dropped = CounterMetricFamily(
            "mt_db_spool_dropped", "Writes dropped because the spool was full."
        )
        failed = CounterMetricFamily("mt_db_writes_failed", "Writes the database refused.")
        families: list[Metric] = [ticks, rate, dropped, pending, outage, spool_dropped, failed]
        if not with_values:
            return families
        ticks.add_metric([], m.ticks_total)
        rate.add_metric([], m.ticks_per_second)
        for reason, count in sorted(m.dropped_totals().items()):
            dropped.add_metric([reason], count)
        health = m.writer_health()
        if health is not None:  # no series at all rather than a made-up zero
            pending.add_metric([], health.pending)
            outage.add_metric([], 1.0 if health.state == "outage" else 0.0)
            spool_dropped.add_metric([], health.dropped)
            failed.add_metric([], health.failed)
        return families


class Metrics:
    """The service's Prometheus metrics, in a registry of their own.

    Build one per service (``Metrics()``); the API renders it at ``/metrics``. Feed it:

    * per feed frame: :meth:`add_ticks` (and :meth:`add_dropped` for ticks the adapter
      rejects); after an engine call that may have dropped ticks, or once a second,
      :meth:`sync_dropped` with ``Engine.dropped()``;
    * per signal / order / fill: :meth:`observe_tick_to_signal`, :meth:`add_signal`,
      :meth:`add_order`, :meth:`add_fill`;
    * once: :meth:`bind_writer` with ``StoreWriter.health`` (read at scrape time).

    The loop-lag monitor is :attr:`loop_lag`; while it runs it also refreshes
    ``mt_ticks_per_second``.

    Args:
        process_metrics: also export ``process_*`` (CPU, memory, fds) and Python GC figures.
        lag_interval_s: the loop-lag sampling interval.
        lag_window: loop-lag samples kept for the percentiles.
    """

    def __init__(
        self,
        *,
        process_metrics: bool = True,
        lag_interval_s: float = 0.25,
        lag_window: int = 240,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.tick_to_signal_seconds = Histogram(
            "mt_tick_to_signal_seconds",
            "From receiving the tick that closed a bar to the signal it produced.",
            buckets=_TICK_TO_SIGNAL_BUCKETS,
            registry=reg,
        )
        self.event_loop_lag_seconds = Histogram(
            "mt_event_loop_lag_seconds",
            "How late the event loop woke a sleeping task (every sample).",
            buckets=_LOOP_LAG_BUCKETS,
            registry=reg,
        )
        self.event_loop_lag_window_seconds = Gauge(
            "mt_event_loop_lag_window_seconds",
            "Event-loop lag quantiles over the monitor's sliding window.",
            ["quantile"],
            registry=reg,
        )
        self.signals_total = Counter(
            "mt_signals", "Signals emitted by the strategies.", ["side"], registry=reg
        )
        self.orders_total = Counter(
            "mt_orders",
            "Order outcomes: submitted, rejected, cancelled, filled, unknown.",
            ["outcome"],
            registry=reg,
        )
        self.fills_total = Counter("mt_fills", "Fills applied.", registry=reg)
        for side in ("BUY", "SELL"):  # series exist at 0, so rate() works from the start
            self.signals_total.labels(side)
        for outcome in ORDER_OUTCOMES:
            self.orders_total.labels(outcome)
        self._lag_quantiles = {
            name: self.event_loop_lag_window_seconds.labels(name) for name in ("0.5", "0.99", "1")
        }
        if process_metrics:
            ProcessCollector(registry=reg)
            GCCollector(registry=reg)
        # Plain integers: the hot path adds to them without locks or label lookups.
        self.ticks_total = 0
        self.ticks_per_second = 0.0
        self._dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._synced: dict[str, int] = {}  # last Engine.dropped() totals seen
        self._rate_mark: tuple[float, int] | None = None
        self._writer_health: Callable[[], WriterHealth] | None = None
        reg.register(_HotPathCollector(self))
        self.loop_lag = EventLoopLagMonitor(
            interval_s=lag_interval_s, window=lag_window, on_sample=self._on_lag_sample
        )

    # ----------------------------------------------------------------- hot path

    def add_ticks(self, n: int) -> None:
        """Count ``n`` received ticks (call once per feed frame)."""
        self.ticks_total += n

    def add_dropped(self, reason: str, n: int = 1) -> None:
        """Count ``n`` ticks dropped for ``reason`` (a small fixed set, see :data:`DROP_REASONS`).

        Call it per frame with the frame's count, like :meth:`add_ticks`.
        """
        self._dropped[reason] = self._dropped.get(reason, 0) + n

    def sync_dropped(self, totals: Mapping[str, int]) -> None:
        """Fold in cumulative drop counts kept elsewhere (``Engine.dropped()``).

        Only the increase since the previous call is added. A total that went DOWN means
        the engine was rebuilt (its counts restarted at zero): its new value is all new.

        Args:
            totals: reason → cumulative count.
        """
        for reason, total in totals.items():
            last = self._synced.get(reason, 0)
            increase = total - last if total >= last else total
            if increase:
                self._dropped[reason] = self._dropped.get(reason, 0) + increase
            self._synced[reason] = total

    def dropped_totals(self) -> dict[str, int]:
        """Dropped ticks by reason, since this object was made."""
        return dict(self._dropped)

    # ----------------------------------------------------------------- per bar / order

    def observe_tick_to_signal(self, seconds: float) -> None:
        """Record the latency from a bar-closing tick's arrival to its signal."""
        self.tick_to_signal_seconds.observe(seconds)

    def add_signal(self, side: str) -> None:
        """Count one signal (``side`` is ``"BUY"`` or ``"SELL"``)."""
        self.signals_total.labels(side).inc()

    def add_order(self, outcome: str) -> None:
        """Count one order outcome: submitted, rejected, cancelled, filled or unknown."""
        self.orders_total.labels(outcome).inc()

    def add_fill(self, n: int = 1) -> None:
        """Count ``n`` applied fills."""
        self.fills_total.inc(n)

    # ----------------------------------------------------------------- sources read at scrape

    def bind_writer(self, health: Callable[[], WriterHealth]) -> None:
        """Export the write-behind spool (``mt_db_*``), read from ``health()`` at each scrape.

        Args:
            health: usually ``StoreWriter.health``; it must be cheap and must not block.
        """
        self._writer_health = health

    def writer_health(self) -> WriterHealth | None:
        """The bound writer's health, or None (unbound, or it failed: logged)."""
        if self._writer_health is None:
            return None
        try:
            return self._writer_health()
        except Exception:
            log.exception("writer health for /metrics failed")
            return None

    # ----------------------------------------------------------------- periodic

    def update_rates(self, now: float) -> None:
        """Refresh ``mt_ticks_per_second`` (the lag monitor calls this every sample).

        Args:
            now: a monotonic time in seconds (the loop's clock).
        """
        if self._rate_mark is None:
            self._rate_mark = (now, self.ticks_total)
            return
        since, ticks = self._rate_mark
        elapsed = now - since
        if elapsed >= _RATE_PERIOD_S:
            self.ticks_per_second = (self.ticks_total - ticks) / elapsed
            self._rate_mark = (now, self.ticks_total)

    def _on_lag_sample(self, lag_s: float, now: float) -> None:
        self.event_loop_lag_seconds.observe(lag_s)
        snap = self.loop_lag.snapshot()
        self._lag_quantiles["0.5"].set(snap.p50_ms / 1e3)
        self._lag_quantiles["0.99"].set(snap.p99_ms / 1e3)
        self._lag_quantiles["1"].set(snap.max_ms / 1e3)
        self.update_rates(now)

    # ----------------------------------------------------------------- exposition

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)
