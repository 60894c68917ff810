"""The trading service (the seed's DualTimeframeService): feed → Engine → strategy → orders.

One task runs the tick loop: every feed frame goes into the Rust :class:`Engine` in one call
(``on_frame``); only when a bar closes does Python do more — persist the bar and the EMA
state that consumed it (through the write-behind :class:`StoreWriter`, never awaited on
the loop), run the strategy, and hand its signals to the order task. Orders go through
the :class:`Executor` on their own task, so a slow store or broker never holds up ticks.

Start-up: resolve instruments; load the last WARMUP_BARS bars per symbol from the store,
fetching history through the broker for whatever is missing; warm the engine up from
them; restore the EMA states stored with the last bars (a restart continues with the same
EMA values as an uninterrupted run); reload open trades; subscribe to ticks from where
the stored bars end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from mental_trader.api.metrics import Metrics
from mental_trader.brokers.base import Broker, Feed
from mental_trader.calendar import IST, TradingCalendar, ist_date
from mental_trader.config import Settings
from mental_trader.core import BarEvent, Engine
from mental_trader.errors import InvalidInputError
from mental_trader.execution import ChargesTable, Executor, OrderGateway, PaperGateway
from mental_trader.execution.venue import Venue
from mental_trader.models import EmaStateRow, Event, Instrument, Side
from mental_trader.notify import Notifier
from mental_trader.options.desk import (
    DeskTiming,
    OptionsBroker,
    OptionsDesk,
    option_underlyings,
)
from mental_trader.options.manager import OptionsParams
from mental_trader.options.ranking import RankingParams
from mental_trader.risk import RiskManager
from mental_trader.storage import CandleRow, Store, StoreWriter
from mental_trader.storage.base import ns_to_dt
from mental_trader.strategy import PositionView, Signal, Strategy
from mental_trader.strategy.registry import strategy_for_mode
from mental_trader.warmup import warm_up

__all__ = ["DualTimeframeService", "ServiceClock"]

log = logging.getLogger(__name__)

_TIMER_NS = 250_000_000  # close bars by the clock at most this often (feed time)
_DAY_NS = 86_400 * 1_000_000_000


class ServiceClock:
    """Trading-side clock: times from the market clock, throttles on real time.

    Stamps (intents, fills, trades) follow the market clock — the simulated one in sim —
    while the order throttle and retries wait in real seconds, as broker rate limits do.
    """

    def __init__(self, market_now: Callable[[], datetime]) -> None:
        self._market_now = market_now

    def now(self) -> datetime:
        """The market clock's time (aware UTC)."""
        return self._market_now()

    def monotonic(self) -> float:
        """Real monotonic seconds."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep real seconds without blocking the loop."""
        await asyncio.sleep(seconds)


@dataclasses.dataclass
class _SymbolState:
    """What /status shows per symbol and what the strategy needs to see of a position."""

    symbol: str
    last_price: float | None = None
    last_tick_ns: int | None = None
    events: dict[str, BarEvent] = dataclasses.field(default_factory=dict)
    view: PositionView | None = None


class DualTimeframeService:
    """The live trading loop on a primary and a confirm timeframe (see the module docstring).

    Args:
        settings: the configuration.
        store: a connected, migrated store.
        broker: the market data source (sim or a real broker).
        calendar: the trading calendar.
        notifier: optional notifier (started and closed by the caller).
        metrics: the Prometheus metrics (a new set by default).
        market_now: the market clock (default: the broker's).
        strategy: the strategy (default: the one MODE names).
        options_timing: how often the options desk marks and refreshes chains (default:
            for a real-time clock).
        venue: a real broker's session and order gateway (None: paper on the broker's
            prices).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        broker: Broker,
        calendar: TradingCalendar,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
        market_now: Callable[[], datetime] | None = None,
        strategy: Strategy | None = None,
        options_timing: DeskTiming | None = None,
        venue: Venue | None = None,
    ) -> None:
        self._settings = settings
        self.venue = venue
        self._store = store
        self.broker = broker
        self.calendar = calendar
        self.notifier = notifier
        self._metrics = metrics or Metrics()
        self.strategy = strategy or strategy_for_mode(settings)
        self._options_timing = options_timing
        self.clock = ServiceClock(market_now or _utc_now)
        self.writer = StoreWriter(store, max_spool=settings.write_spool_max)
        self._metrics.bind_writer(self.writer.health)
        self.engine = self._new_engine()
        self.charges = ChargesTable.load(settings.charges_file)
        self.risk = RiskManager(settings, self.clock)
        self.gateway: OrderGateway | None = None
        self.executor: Executor | None = None
        #: The options layer (OPTIONS_ENABLED), made when the loop starts.
        self.options: OptionsDesk | None = None
        self.symbols: list[str] = []
        self._ids: dict[str, int] = {}
        self._state: dict[str, _SymbolState] = {}
        self._instruments: dict[str, Instrument] = {}
        self._signals: asyncio.Queue[Signal] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._feed: Feed | None = None
        self._feed_state = "stopped"
        self._last_tick_mono: float | None = None
        self._resume_ns: int | None = None
        self.last_error = ""
        self._owns_lag_monitor = False
        #: Recent tick-to-signal latencies in seconds (for /status and the benchmark).
        self.latencies: deque[float] = deque(maxlen=100_000)

    # ----------------------------------------------------------------- ServiceApi

    @property
    def settings(self) -> Settings:
        """The configuration."""
        return self._settings

    @property
    def store(self) -> Store:
        """The store."""
        return self._store

    @property
    def metrics(self) -> Metrics:
        """The Prometheus metrics."""
        return self._metrics

    @property
    def running(self) -> bool:
        """Whether the engine loop runs."""
        return self._task is not None and not self._task.done()

    async def start(self) -> bool:
        """Start the engine loop; False if it already runs (one loop, whatever the races)."""
        async with self._lock:
            if self.running:
                return False
            self.writer.start()
            if self.metrics.loop_lag.start():
                self._owns_lag_monitor = True
            self._task = asyncio.create_task(self._run(), name="trading-loop")
            return True

    async def stop(self) -> bool:
        """Stop new work, cancel the loop, flush pending writes. False if not running."""
        async with self._lock:
            task, self._task = self._task, None
            if task is None:
                return False
            task.cancel()
            # A loop that failed already logged it and set last_error: stopping succeeds.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await self.writer.flush(10.0)
            return True

    async def close(self) -> None:
        """Stop and release what the service owns (the writer, the lag monitor)."""
        await self.stop()
        await self.writer.close()
        if self._owns_lag_monitor:  # the API's lifespan may run it instead
            await self.metrics.loop_lag.stop()
            self._owns_lag_monitor = False

    async def halt(self, reason: str) -> None:
        """Kill switch: no new entries until the next session, and flatten."""
        if self.executor is None:
            self.risk.halt(reason)
            return
        await self.executor.halt(reason)
        self._event("halt", f"halted: {reason}", level="WARNING")

    async def flatten(self, reason: str) -> None:
        """Exit every position and cancel working entries."""
        if self.executor is not None:
            await self.executor.flatten(reason)

    def health(self) -> dict[str, Any]:
        """Liveness and readiness (see ``api.deps.ServiceApi.health``)."""
        db = dataclasses.asdict(self.writer.health())
        age = None if self._last_tick_mono is None else time.monotonic() - self._last_tick_mono
        lag = self.metrics.loop_lag.snapshot()
        if not self.running and self.last_error:
            status = "down"
        elif db["state"] != "ok" or self._feed_state not in ("live", "stopped"):
            status = "degraded"
        else:
            status = "ok"
        return {
            "status": status,
            "feed": {"state": self._feed_state, "symbols": len(self.symbols)},
            "last_tick_age_s": age,
            "db": db,
            "broker_session": ("n/a (sim)" if self.venue is None else self.venue.session_state()),
            "loop_lag_ms": lag.p99_ms,
            "engine_running": self.running,
        }

    def status(self) -> dict[str, Any]:
        """Running and trading state, per-symbol last bars and EMAs, positions, P&L."""
        positions = [
            {
                "symbol": p.symbol,
                "qty": p.qty,
                "avg_price": p.avg_price,
                "last_price": self._state[p.symbol].last_price if p.symbol in self._state else None,
            }
            for p in (self.executor.positions() if self.executor else [])
        ]
        return {
            "running": self.running,
            "mode": self.settings.mode,
            "strategy": self.strategy.name,
            "timeframes": {
                "primary_s": self.engine.timeframe_s,
                "confirm_s": self.engine.confirm_timeframe_s,
            },
            "market_time": self.clock.now().isoformat(),
            "trading_state": str(self.risk.state),
            "trading_state_reason": self.risk.state_reason,
            "symbols": {
                s: {
                    "last_price": st.last_price,
                    "bars": {k: _bar_json(ev) for k, ev in st.events.items()},
                }
                for s, st in self._state.items()
            },
            "positions": positions,
            "pnl": {"net_today": self.risk.net_pnl},
            "options": None if self.options is None else self.options.status(),
            "ticks": self.metrics.ticks_total,
            "dropped_ticks": dict(self.engine.dropped),
            "last_error": self.last_error,
        }

    def option_chain(self, underlying: str, expiry: date | None = None) -> dict[str, Any] | None:
        """The cached chain with analytics (see ``api.deps.ServiceApi.option_chain``)."""
        return None if self.options is None else self.options.chain_view(underlying, expiry)

    def option_signals(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest option signals, newest first."""
        return [] if self.options is None else self.options.signals_view(limit)

    def option_positions(self) -> list[dict[str, Any]]:
        """The open option positions."""
        return [] if self.options is None else self.options.positions_view()

    # ----------------------------------------------------------------- start-up

    def _new_engine(self) -> Engine:
        s = self.settings
        return Engine(
            timeframe_s=self.strategy.primary_timeframe_s,
            confirm_timeframe_s=self.strategy.confirm_timeframe_s,
            fast=s.ema_short,
            slow=s.ema_long,
            session_start=s.session_start,
            session_end=s.session_end,
            volume_mode="cumulative",  # broker feeds carry the day's cumulative volume
            grace_ms=s.bar_grace_ms,
        )

    async def _resolve(self) -> None:
        instruments = {i.symbol: i for i in await self.broker.instruments()}
        missing = [s for s in self.settings.watchlist if s not in instruments]
        if missing:
            raise RuntimeError(f"the broker does not know {missing}")
        self._instruments = instruments
        self.symbols = list(self.settings.watchlist)
        # The options underlyings' own bars make their signals (an index is not traded).
        for underlying in self._option_underlyings():
            if underlying not in self.symbols:
                self.symbols.append(underlying)
        self._ids = {s: i for i, s in enumerate(self.symbols)}
        self._state = {s: _SymbolState(s) for s in self.symbols}

    async def _warm_up(self) -> None:
        """Stored bars (history fetched for what is missing) → engine, then EMA states."""
        self._resume_ns = await warm_up(
            self.engine,
            self.strategy,
            store=self.store,
            broker=self.broker,
            calendar=self.calendar,
            symbols=self.symbols,
            warmup_bars=self.settings.warmup_bars,
            now=self.clock.now(),
            remember=self._remember,
        )

    # ----------------------------------------------------------------- the loop

    async def _run(self) -> None:
        try:
            # A start after a stop begins afresh from the store, as a new process would: the
            # engine refuses a second warm-up, and signals queued before the stop are stale.
            self.engine = self._new_engine()
            self.strategy.reset()
            self._signals = asyncio.Queue()
            self._feed = None
            if self.venue is not None:
                self.venue.require_session()  # before any call a dead token would fail
            await self._resolve()
            await self._warm_up()
            self.gateway = await self._open_gateway()
            self.executor = Executor(
                self.store,
                self.gateway,
                self.risk,
                self.charges,
                self.clock,
                notify=self._notify_exec,
                instruments=self._instruments,
            )
            await self.executor.restore()
            self._sync_views()
            self.options = await self._options_desk(self.executor)
            # Start-up made a large heap (imports, calendars, history) that lives for the
            # whole run; freezing it keeps full GC passes short, so they cannot stall the
            # tick loop for 100+ ms.
            gc.collect()
            gc.freeze()
            async with asyncio.TaskGroup() as group:
                group.create_task(self.executor.run(), name="executor")
                group.create_task(self._order_worker(), name="orders")
                group.create_task(self._tick_loop(), name="ticks")
                group.create_task(self._clock_loop(), name="bar-clock")
                if self.options is not None:
                    group.create_task(self.options.run(), name="options")
                for task in self.venue.tasks() if self.venue is not None else ():
                    group.create_task(task, name="venue")
        except asyncio.CancelledError:
            self._feed_state = "stopped"
            raise
        except BaseException as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._feed_state = "failed"
            log.exception("trading loop failed")
            self._event("error", f"trading loop failed: {self.last_error}", level="ERROR")
            raise

    async def _open_gateway(self) -> OrderGateway:
        if self.venue is None:
            return PaperGateway.from_settings(
                self.settings, self.charges, self.clock, instruments=self._instruments
            )
        return await self.venue.open_gateway(
            self.store, instruments=self._instruments, charges=self.charges, clock=self.clock
        )

    def session_lost(self, message: str) -> None:
        """The broker refused our session: no new entries, one alert asking for a login.

        Nothing is sent to the broker (no flatten): every order would be refused with the
        same dead token, so open positions wait for the new login.
        """
        self.risk.halt(message, flatten=False)
        log.error("%s", message)
        self._notify("alert", {"message": message})
        self._event("session", message, level="ERROR")

    async def broker_login(self, request_token: str) -> dict[str, Any]:
        """Log in to the broker with a login's request token (the API's callback route).

        Raises:
            InvalidInputError: this service has no broker session (the sim).
            BrokerError: the broker refused the request token.
        """
        if self.venue is None:
            raise InvalidInputError(f"BROKER={self.settings.broker} has no login")
        expires = await self.venue.login(request_token)
        self._event("session", f"broker login: session valid until {expires.isoformat()}")
        if self.executor is not None:  # a flatten refused meanwhile goes out now
            self.executor.retry_refused_exits()
        return {"session": self.venue.session_state(), "expires_at": expires.isoformat()}

    def broker_login_url(self) -> str | None:
        """Where the user logs in to the broker (None for the sim)."""
        return None if self.venue is None else self.venue.login_url

    async def _tick_loop(self) -> None:
        feed = await self.broker.subscribe(self.symbols, resume_from_ns=self._resume_ns)
        self._feed = feed
        self._feed_state = "live"
        engine, metrics, executor = self.engine, self.metrics, self.executor
        assert executor is not None
        names = self.symbols
        next_timer = 0
        next_day_ns = 0  # the next IST midnight: a new session resets the risk day
        async with feed:
            async for frame in feed:
                if frame.end_ns >= next_day_ns:
                    day = ist_date(int(frame.ts_ns[0]) if len(frame.ts_ns) else frame.end_ns)
                    next_day_ns = _ist_midnight_ns(day) + _DAY_NS
                    if day != self.risk.day:
                        self.risk.reset_for_new_session(day)
                t0 = time.perf_counter_ns()
                events = engine.on_frame(frame.ts_ns, frame.price, frame.qty, frame.symbol)
                if events:  # signals first; the per-frame bookkeeping can wait
                    self._on_events(events, t0)
                n = len(frame.ts_ns)
                metrics.add_ticks(n)
                self._last_tick_mono = time.monotonic()
                # Last price per symbol: frames are small, a reversed walk is cheapest.
                syms, prices, stamps = frame.symbol.tolist(), frame.price.tolist(), frame.ts_ns
                for i in range(n - 1, -1, -1):
                    st = self._state[names[syms[i]]]
                    if st.last_tick_ns is None or st.last_tick_ns < stamps[i]:
                        st.last_price, st.last_tick_ns = prices[i], int(stamps[i])
                if not executor.is_flat:
                    executor.on_ticks(names, syms, stamps, prices)
                if frame.end_ns >= next_timer:
                    next_timer = frame.end_ns + _TIMER_NS
                    t1 = time.perf_counter_ns()
                    closed = engine.on_time(feed.watermark_ns())
                    if closed:
                        self._on_events(closed, t1)
                    metrics.sync_dropped(engine.dropped)

    async def _clock_loop(self) -> None:
        """Close bars by the clock while no frame arrives.

        The tick loop closes bars by time only when a frame comes. After the session's last
        tick no frame comes until the next session opens, so without this the day's last
        bar (and its confirm bar, EMA state and exit signals) would stay open overnight.
        """
        while True:
            await asyncio.sleep(_TIMER_NS / 1e9)
            feed = self._feed
            if feed is None:
                continue
            closed = self.engine.on_time(feed.watermark_ns())
            if closed:
                self._on_events(closed, time.perf_counter_ns())

    def _on_events(self, events: Sequence[BarEvent], t0: int) -> None:
        """Run the strategy on closed bars (signals first), then queue their persistence.

        ``t0`` is when the engine call that closed them started: the signal latency runs
        from there to the moment the signal object exists.
        """
        names, strategy, states = self.symbols, self.strategy, self._state
        skip_quiet = strategy.skips_quiet_bars
        for ev in events:
            if skip_quiet and ev.is_confirm:
                continue  # the strategy promised nothing happens on a confirm bar
            symbol = names[ev.symbol]
            st = states[symbol]
            if skip_quiet and not ev.cross and st.view is None:
                continue  # ... nor on a quiet primary bar without a position
            signals = strategy.on_bar_close(ev, symbol, st.view)
            if signals:
                latency = (time.perf_counter_ns() - t0) / 1e9
                for signal in signals:
                    # Stored at once (write-behind), so a stop or crash before the order
                    # task gets to it still leaves the signal in the audit trail.
                    self.writer.insert_signal(signal.to_record())
                    self.latencies.append(latency)
                    self.metrics.observe_tick_to_signal(latency)
                    self.metrics.add_signal(signal.side.value)
                    self._signals.put_nowait(signal)
            if st.view is not None and not ev.is_confirm:
                st.view = st.view.advanced(ev.bar)
        # Bookkeeping after every signal of the batch is out.
        rows: list[CandleRow] = []
        latest: dict[tuple[int, bool], BarEvent] = {}
        for ev in events:
            b = ev.bar
            symbol = names[ev.symbol]
            rows.append(
                CandleRow(
                    symbol, ev.timeframe_s, b.ts, b.open, b.high, b.low, b.close, b.volume, b.ticks
                )
            )
            latest[(ev.symbol, ev.is_confirm)] = ev
            self._remember(symbol, ev)
        ema_rows = []
        for (sid, confirm), ev in latest.items():
            fast, slow = self.engine.ema_states(sid, confirm=confirm)
            ema_rows.append(
                EmaStateRow(names[sid], ev.timeframe_s, ns_to_dt(ev.bar.ts), fast, slow)
            )
        self.writer.commit_bars(rows, ema_rows)

    def _remember(self, symbol: str, ev: BarEvent) -> None:
        self._state[symbol].events["confirm" if ev.is_confirm else "primary"] = ev

    async def _order_worker(self) -> None:
        executor = self.executor
        assert executor is not None
        while True:
            signal = await self._signals.get()
            self._notify("signal", _signal_payload(signal))
            if self.options is not None and self.options.handles(signal.symbol):
                try:
                    await self.options.on_signal(signal)
                except Exception:  # the options leg failing must not stop the equity leg
                    log.exception("options for signal %s failed", signal.id)
            try:
                if signal.kind == "exit":
                    result = await executor.exit(signal.symbol, signal.reason)
                else:
                    instrument = self._instruments.get(signal.symbol)
                    if instrument is not None and instrument.instrument_type == "INDEX":
                        continue  # an index is not tradable; the options layer uses it
                    stop_distance = (
                        abs(signal.price - signal.stop) if signal.stop is not None else None
                    )
                    qty = self.risk.size(
                        signal.price,
                        stop_distance,
                        lot_size=instrument.lot_size if instrument else 1,
                    )
                    result = await executor.enter(
                        signal.symbol,
                        signal.side,
                        qty,
                        signal.price,
                        signal.reason,
                        signal.id,
                        strategy=signal.strategy,
                    )
                self.metrics.add_order("submitted" if result.ok else "rejected")
                if not result.ok:
                    log.info("%s %s not placed: %s", signal.kind, signal.symbol, result.reason)
            except Exception:
                log.exception("order for signal %s failed", signal.id)
            await executor.pump()
            self._sync_views()

    def _option_underlyings(self) -> list[str]:
        """The underlyings (symbols) of the configured OPTIONS_UNDERLYINGS names that have
        contracts in the broker's instrument dump."""
        if not self.settings.options_enabled:
            return []
        return option_underlyings(self._instruments.values(), self.settings.options_underlyings)

    async def _options_desk(self, executor: Executor) -> OptionsDesk | None:
        if not self.settings.options_enabled:
            return None
        if not isinstance(self.broker, OptionsBroker):
            log.error("options: the %s broker serves no option chains", self.broker.name)
            return None
        desk = OptionsDesk(
            OptionsParams.from_settings(self.settings),
            broker=self.broker,
            store=self.store,
            executor=executor,
            instruments=self._instruments,
            clock=self.clock,
            notify=self._notify,
            underlying_price=lambda s: self._state[s].last_price if s in self._state else None,
            ranking=RankingParams.from_settings(self.settings),
            timing=self._options_timing,
        )
        await desk.prepare(self.clock.now().astimezone(IST).date())
        return desk

    def _sync_views(self) -> None:
        """Position views for the strategy from the executor's positions."""
        if self.executor is None:
            return
        held = {p.symbol: p for p in self.executor.positions()}
        for symbol, st in self._state.items():
            pos = held.get(symbol)
            if pos is None or pos.qty == 0 or pos.avg_price is None:
                st.view = None
            elif st.view is None or st.view.qty != abs(pos.qty):
                side = Side.BUY if pos.qty > 0 else Side.SELL
                st.view = self.strategy.position_from_fill(side, abs(pos.qty), pos.avg_price)

    # ----------------------------------------------------------------- notifications

    def _notify(self, kind: str, payload: dict[str, Any]) -> None:
        if self.notifier is not None:
            self.notifier.notify(kind, payload)

    def _notify_exec(self, kind: str, message: str) -> None:
        self._sync_views()
        self._notify(kind, {"message": message})
        self._event(kind, message)

    def _event(self, kind: str, message: str, *, level: str = "INFO") -> None:
        now = self.clock.now()
        event_id = f"{kind}-{uuid.uuid4().hex}"
        self.writer.insert_event(Event(event_id, now, kind, message, level))


def _ist_midnight_ns(day: date) -> int:
    """00:00 IST of ``day`` as ns UTC."""
    return ((day - date(1970, 1, 1)).days * 86_400 - 19_800) * 1_000_000_000


def _bar_json(ev: BarEvent) -> dict[str, Any]:
    b = ev.bar
    return {
        "ts": ns_to_dt(b.ts).isoformat(),
        "open": b.open,
        "high": b.high,
        "low": b.low,
        "close": b.close,
        "volume": b.volume,
        "ema_fast": ev.ema_fast,
        "ema_slow": ev.ema_slow,
        "cross": ev.cross,
    }


def _signal_payload(signal: Signal) -> dict[str, Any]:
    return {
        "id": signal.id,
        "symbol": signal.symbol,
        "side": signal.side.value,
        "kind": signal.kind,
        "price": signal.price,
        "reason": signal.reason,
        "ts": signal.ts.isoformat(),
        "stop": signal.stop,
        "target": signal.target,
    }


def _utc_now() -> datetime:
    return datetime.now(UTC)
