"""Metrics, the event-loop lag monitor, and GET /metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from mental_trader.api import EventLoopLagMonitor, Metrics, create_app
from mental_trader.storage import Store, StoreWriter
from mental_trader.storage.writer import WriterHealth

from .conftest import FakeService, make_settings

NAMES = (
    "mt_tick_to_signal_seconds",
    "mt_ticks_total",
    "mt_ticks_per_second",
    "mt_dropped_ticks_total",
    "mt_event_loop_lag_seconds",
    "mt_event_loop_lag_window_seconds",
    "mt_signals_total",
    "mt_orders_total",
    "mt_fills_total",
    "mt_db_spool_pending",
)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) → value, parsed back from the exposition text."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _block_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # deliberately blocking: the lag monitor must see it


def test_each_metrics_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()  # no "duplicated timeseries" error
    a.add_ticks(3)
    assert samples(a)[("mt_ticks_total", ())] == 3
    assert samples(b)[("mt_ticks_total", ())] == 0


def test_counters_and_histograms() -> None:
    m = Metrics(process_metrics=False)
    m.add_ticks(20)
    m.add_ticks(5)
    m.add_dropped("invalid", 2)
    m.add_dropped("queue_stalled")
    m.observe_tick_to_signal(42e-6)
    m.add_signal("BUY")
    m.add_order("submitted")
    m.add_order("filled")
    m.add_fill(2)
    s = samples(m)
    assert s[("mt_ticks_total", ())] == 25
    assert s[("mt_dropped_ticks_total", (("reason", "invalid"),))] == 2
    assert s[("mt_dropped_ticks_total", (("reason", "queue_stalled"),))] == 1
    assert s[("mt_dropped_ticks_total", (("reason", "late"),))] == 0  # known reasons show 0
    assert s[("mt_tick_to_signal_seconds_bucket", (("le", "5e-05"),))] == 1
    assert s[("mt_tick_to_signal_seconds_bucket", (("le", "2.5e-05"),))] == 0
    assert s[("mt_signals_total", (("side", "BUY"),))] == 1
    assert s[("mt_signals_total", (("side", "SELL"),))] == 0
    assert s[("mt_orders_total", (("outcome", "filled"),))] == 1
    assert s[("mt_orders_total", (("outcome", "rejected"),))] == 0
    assert s[("mt_fills_total", ())] == 2
    assert not any(name.startswith("process_") for name, _ in s)


def test_sync_dropped_adds_increases_and_survives_an_engine_rebuild() -> None:
    m = Metrics(process_metrics=False)
    m.add_dropped("late")  # from the feed adapter
    m.sync_dropped({"late": 3, "out_of_session": 10})
    m.sync_dropped({"late": 5, "out_of_session": 10})
    assert m.dropped_totals()["late"] == 6
    m.sync_dropped({"late": 2, "out_of_session": 0})  # a new engine restarts at zero
    assert m.dropped_totals()["late"] == 8
    assert m.dropped_totals()["out_of_session"] == 10


def test_tick_rate() -> None:
    m = Metrics(process_metrics=False)
    m.update_rates(100.0)
    m.add_ticks(500)
    m.update_rates(100.5)  # under the rate period: unchanged
    assert m.ticks_per_second == 0
    m.add_ticks(500)
    m.update_rates(102.0)
    assert m.ticks_per_second == pytest.approx(500.0)
    assert samples(m)[("mt_ticks_per_second", ())] == pytest.approx(500.0)


async def test_writer_spool_is_read_at_scrape_time(store: Store) -> None:
    m = Metrics(process_metrics=False)
    assert ("mt_db_spool_pending", ()) not in samples(m)  # unbound: no made-up zero
    async with StoreWriter(store) as writer:
        m.bind_writer(writer.health)
        s = samples(m)
        assert s[("mt_db_spool_pending", ())] == 0
        assert s[("mt_db_outage", ())] == 0
    outage = WriterHealth(
        state="outage",
        pending=7,
        acked=0,
        dropped=1,
        failed=0,
        outage_s=3.0,
        oldest_pending_s=2.0,
        last_error="connection refused",
    )
    m.bind_writer(lambda: outage)
    s = samples(m)
    assert (s[("mt_db_spool_pending", ())], s[("mt_db_outage", ())]) == (7, 1)
    assert s[("mt_db_spool_dropped_total", ())] == 1


def test_a_failing_writer_health_does_not_break_the_scrape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = Metrics(process_metrics=False)

    def broken() -> WriterHealth:
        raise RuntimeError("boom")

    m.bind_writer(broken)
    assert ("mt_db_spool_pending", ()) not in samples(m)
    assert "writer health" in caplog.text


def test_lag_percentiles() -> None:
    monitor = EventLoopLagMonitor(window=100)
    assert monitor.snapshot().samples == 0
    for i in range(1, 101):
        monitor.record(i / 1000, float(i))  # 1 … 100 ms
    snap = monitor.snapshot()
    assert (snap.p50_ms, snap.p99_ms, snap.max_ms, snap.last_ms, snap.samples) == pytest.approx(
        (50.0, 99.0, 100.0, 100.0, 100)
    )
    monitor.record(0.5, 101.0)  # the window slides: 1 ms falls out
    assert monitor.snapshot().samples == 100
    assert monitor.snapshot().max_ms == pytest.approx(500.0)


def test_lag_monitor_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        EventLoopLagMonitor(interval_s=0)
    with pytest.raises(ValueError, match="window"):
        EventLoopLagMonitor(window=0)


async def test_lag_monitor_sees_a_blocked_loop() -> None:
    m = Metrics(process_metrics=False, lag_interval_s=0.01)
    async with m.loop_lag as monitor:
        assert monitor.running
        assert monitor.start() is False  # idempotent: one task
        await asyncio.sleep(0.05)
        _block_the_loop(0.1)
        await asyncio.sleep(0.05)
    assert not m.loop_lag.running
    snap = m.loop_lag.snapshot()
    assert snap.samples >= 3
    assert snap.max_ms >= 80
    s = samples(m)
    assert s[("mt_event_loop_lag_seconds_count", ())] == snap.samples
    assert s[("mt_event_loop_lag_window_seconds", (("quantile", "1"),))] >= 0.08
    await m.loop_lag.stop()  # stopping twice is harmless


async def test_metrics_endpoint(client: httpx.AsyncClient, service: FakeService) -> None:
    service.metrics.add_ticks(123)
    await asyncio.sleep(0.05)  # let the lag monitor (started by the lifespan) sample
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for name in NAMES:
        assert f"# TYPE {name.removesuffix('_total')}" in response.text, name
    assert "mt_ticks_total 123.0" in response.text
    assert "process_cpu_seconds_total" in response.text
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert "mt_event_loop_lag_seconds" in families


async def test_lifespan_runs_the_lag_monitor_unless_the_service_does(
    tmp_path: Path, store: Store
) -> None:
    settings = make_settings(tmp_path)
    service = FakeService(settings, store, Metrics(process_metrics=False))
    app: FastAPI = create_app(settings, service)
    async with app.router.lifespan_context(app):
        assert service.metrics.loop_lag.running
    assert not service.metrics.loop_lag.running

    assert service.metrics.loop_lag.start()  # the service runs it itself
    try:
        async with app.router.lifespan_context(app):
            pass
        assert service.metrics.loop_lag.running  # not the app's to stop
    finally:
        await service.metrics.loop_lag.stop()
