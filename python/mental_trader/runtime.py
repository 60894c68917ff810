"""Wiring: the store, the broker, the clock, the notifier and the service, built from settings.

``serve`` and ``run`` (and the end-to-end tests) share :func:`open_service`, so the service
a user starts is the one the tests drive.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

from mental_trader.brokers.kite.broker import KiteBroker
from mental_trader.brokers.kite.venue import KiteVenue
from mental_trader.brokers.sim import SimBroker
from mental_trader.brokers.sim.clock import SimClock, session_open
from mental_trader.calendar import TradingCalendar, ist_date
from mental_trader.config import Settings
from mental_trader.notify import Notifier
from mental_trader.options.desk import DeskTiming
from mental_trader.service import DualTimeframeService
from mental_trader.storage import open_store
from mental_trader.storage.base import Store, dt_to_ns, ns_to_dt
from mental_trader.strategy.registry import strategy_for_mode

__all__ = ["calendar_for", "open_service"]

log = logging.getLogger(__name__)


def calendar_for(settings: Settings) -> TradingCalendar:
    """The trading calendar the settings describe (exchange data plus local overrides)."""
    return TradingCalendar(
        extra_holidays=settings.extra_holidays,
        extra_sessions=settings.extra_sessions,
        session_start=settings.session_start,
        session_end=settings.session_end,
    )


@asynccontextmanager
async def open_service(
    settings: Settings,
    *,
    speed: float | None = None,
    start_ns: int | None = None,
    market_now: Callable[[], datetime] | None = None,
) -> AsyncIterator[DualTimeframeService]:
    """The service with everything it needs, opened in order and closed in reverse.

    The store is migrated. With the sim broker the market clock starts at the latest
    session open (or ``start_ns``), and where stored bars already reach further into that
    session (a restart), at their end, so the stream continues where it stopped. With
    Kite the clock is the wall clock, the session comes from BROKER_ACCESS_TOKEN or the
    token file of the last login, and EXECUTION says paper or live.

    Args:
        settings: the configuration.
        speed: simulated seconds per real second (default SIM_SPEED; sim only).
        start_ns: the sim clock's start (ns UTC) instead of the latest session open; a
            restart still continues where the stored bars end within that session.
        market_now: Kite only: the market clock instead of the wall clock (a test's fake
            Kite server runs a simulated one).
    """
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(
            open_store(settings.database_url, **_store_options(settings))
        )
        await store.migrate()
        calendar = calendar_for(settings)
        if settings.broker == "kite":
            service = await _kite_service(settings, stack, store, calendar, market_now)
            yield service
            return
        start = dt_to_ns(session_open(calendar)) if start_ns is None else start_ns
        tf = strategy_for_mode(settings).primary_timeframe_s
        last = await store.load_last_candles(settings.watchlist, tf, 1)
        ends = [int(c["ts"][-1]) + tf * 1_000_000_000 for c in last.values() if len(c["ts"])]
        day_end = calendar.session_bounds_ns(ist_date(start))[1]
        if ends and start < max(ends) < day_end:
            start = max(ends)  # a restart: continue the session where the bars end
        clock = SimClock(ns_to_dt(start), speed or settings.sim_speed)
        broker = await stack.enter_async_context(
            SimBroker.from_settings(settings, calendar=calendar, clock=clock)
        )
        service = DualTimeframeService(
            settings,
            store=store,
            broker=broker,
            calendar=calendar,
            notifier=await _notifier(settings, stack),
            market_now=clock.now,
            options_timing=DeskTiming.for_speed(clock.speed),
        )
        stack.push_async_callback(service.close)
        log.info(
            "service ready: %s on %s, %s execution, sim clock from %s at %gx",
            settings.mode,
            settings.database_url_safe,
            settings.execution,
            ns_to_dt(start).isoformat(),
            clock.speed,
        )
        yield service


async def _kite_service(
    settings: Settings,
    stack: AsyncExitStack,
    store: Store,
    calendar: TradingCalendar,
    market_now: Callable[[], datetime] | None,
) -> DualTimeframeService:
    now = market_now or _wall_clock
    broker = await stack.enter_async_context(KiteBroker.from_settings(settings, now=now))
    venue = KiteVenue(settings, broker)
    service = DualTimeframeService(
        settings,
        store=store,
        broker=broker,
        calendar=calendar,
        notifier=await _notifier(settings, stack),
        market_now=now,
        options_timing=DeskTiming.for_speed(1.0),
        venue=venue,
    )
    venue.on_session_lost = service.session_lost
    stack.push_async_callback(service.close)
    log.info(
        "service ready: %s on %s, %s execution through Kite (%s); session %s",
        settings.mode,
        settings.database_url_safe,
        settings.execution,
        settings.broker_rest_url,
        venue.session_state(),
    )
    return service


async def _notifier(settings: Settings, stack: AsyncExitStack) -> Notifier:
    """The notifier, started, and closed with the stack."""
    notifier = Notifier(settings)
    await notifier.start()
    stack.push_async_callback(notifier.close)
    return notifier


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _store_options(settings: Settings) -> dict[str, object]:
    if settings.database_backend == "sqlite":
        return {"synchronous": settings.sqlite_synchronous}
    return {"min_size": settings.db_pool_min, "max_size": settings.db_pool_max}
