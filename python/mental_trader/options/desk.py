"""The options desk: the options layer inside the running service.

It owns the :class:`~mental_trader.options.manager.OptionsManager` and feeds it:

* at start, the day's derivatives instrument master (refreshed from the broker into the
  store, validated and swapped atomically; the stored one when the refresh is refused), so
  the executor and the paper gateway know each contract's lot, tick and type;
* a cache of option chains per underlying (the nearest listed expiries), refreshed in the
  background, so an underlying signal becomes an :class:`OptionSignal` without waiting on
  the broker (the issue's "chain already cached"), with the day's first chain of each
  expiry kept as the OI/price baseline of the analytics;
* the strike choice: the analyzer's ranking (:func:`rank_strikes`, best score first);
* premium marks of the open and working contracts (broker quotes), which let paper orders
  fill, mark positions, and drive the premium stop/target exits and the square-off.

Option orders go through the service's executor like any other order, so they share its
intent-before-submission rule, client ids from signal ids, risk states and charges; their
round trips are stored in ``option_trades`` with the underlying signal and the
underlying's price at entry and exit (P&L attribution per leg).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from mental_trader.brokers.base import Quote
from mental_trader.calendar import IST
from mental_trader.execution.executor import Executor
from mental_trader.models import Instrument, Side, TradeStatus
from mental_trader.options.analyzer import Baseline, RankingParams, analyze, rank_strikes
from mental_trader.options.chain import OptionChain, OptionType
from mental_trader.options.manager import (
    OptionDecision,
    OptionSignal,
    OptionsManager,
    OptionsParams,
    StrikePick,
)
from mental_trader.options.master import refresh_instrument_master
from mental_trader.storage.base import DERIVATIVE_TYPES, Store
from mental_trader.strategy.base import Signal

__all__ = ["DeskTiming", "OptionsBroker", "OptionsDesk"]

log = logging.getLogger(__name__)

#: How many of the nearest listed expiries of an underlying are kept in the chain cache.
CACHED_EXPIRIES = 3


@runtime_checkable
class OptionsBroker(Protocol):
    """What the desk needs of a broker."""

    async def instruments(self) -> list[Instrument]: ...

    async def option_chain(self, underlying: str, expiry: date) -> OptionChain: ...

    async def quote(self, symbols: list[str]) -> dict[str, Quote]: ...


class Clock(Protocol):
    """The service's market clock."""

    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class DeskTiming:
    """Seconds between the desk's background steps (wall time)."""

    marks_s: float = 0.25
    chains_s: float = 5.0

    @classmethod
    def for_speed(cls, speed: float) -> DeskTiming:
        """Marks every market second and chains every 30 market seconds, on a market clock
        running ``speed`` times real time (within 5 ms-0.25 s and 50 ms-5 s of wall time)."""
        speed = max(speed, 1e-9)
        return cls(
            marks_s=min(max(1.0 / speed, 0.005), 0.25),
            chains_s=min(max(30.0 / speed, 0.05), 5.0),
        )


class OptionsDesk:
    """The options layer of one service run (see the module docstring).

    Args:
        params: the manager's settings (:meth:`OptionsParams.from_settings`).
        broker: chains, quotes and the instrument dump.
        store: the instrument master and the option round trips.
        executor: trades the option signals (shared with the equity side).
        instruments: the service's instrument map, shared with the executor and the paper
            gateway; the desk adds the option contracts to it.
        clock: the market clock.
        notify: ``notify(kind, payload)`` for option signals (the service's notifier).
        underlying_price: the last price of an underlying symbol (None: unknown).
        ranking: the strike ranking's filters and weights.
        timing: background intervals.
    """

    def __init__(
        self,
        params: OptionsParams,
        *,
        broker: OptionsBroker,
        store: Store,
        executor: Executor,
        instruments: MutableMapping[str, Instrument],
        clock: Clock,
        notify: Callable[[str, dict[str, Any]], None],
        underlying_price: Callable[[str], float | None],
        ranking: RankingParams | None = None,
        timing: DeskTiming | None = None,
    ) -> None:
        self.manager = OptionsManager(params, clock)
        self.broker, self.store, self.executor = broker, store, executor
        self.instruments, self.clock, self._notify = instruments, clock, notify
        self._underlying_price = underlying_price
        self.ranking = ranking or RankingParams()
        self.timing = timing or DeskTiming()
        #: underlying symbol -> expiry -> the cached chain
        self.chains: dict[str, dict[date, OptionChain]] = {}
        self._baselines: dict[tuple[str, date, date], Baseline] = {}
        self._entries: dict[str, OptionSignal] = {}  # sent, not yet filled
        self._exits: set[str] = set()  # exit sent, position not yet gone
        self.recent: deque[dict[str, Any]] = deque(maxlen=200)
        #: seconds from an underlying signal to the manager's decision (chains cached)
        self.latencies: deque[float] = deque(maxlen=10_000)
        self.underlyings: tuple[str, ...] = ()
        self._day: date | None = None
        #: realized P&L per underlying and leg, refreshed with the chains
        self.pnl_attribution: dict[str, dict[str, float]] = {}

    # ----------------------------------------------------------------- start-up

    async def prepare(self, today: date) -> tuple[str, ...]:
        """Refresh the instrument master, load the option contracts into the shared map,
        fill the chain cache; returns the underlying symbols the desk trades."""
        names = self.manager.params.underlyings
        dump_underlyings = sorted(
            {
                i.underlying
                for i in self.instruments.values()
                if i.underlying
                and i.instrument_type in DERIVATIVE_TYPES
                and self.manager.underlying_name(i.underlying) in names
            }
        )
        if dump_underlyings:
            update = await refresh_instrument_master(
                self.broker, self.store, dump_underlyings, today=today
            )
            if not update.replaced:
                log.error("options: instrument master kept: %s", "; ".join(update.problems))
        stored = [
            i
            for i in await self.store.load_instruments()
            if i.instrument_type in ("CE", "PE")
            and i.underlying
            and self.manager.underlying_name(i.underlying) in names
            and i.expiry is not None
            and i.expiry >= today
        ]
        for i in stored:
            self.instruments[i.symbol] = i
        self.underlyings = tuple(sorted({i.underlying for i in stored if i.underlying}))
        if not self.underlyings:
            log.warning("options: no contracts for %s in the instrument master", sorted(names))
        await self._adopt_open_positions()
        await self.refresh_chains()
        self._day = today
        return self.underlyings

    async def _adopt_open_positions(self) -> None:
        """Open option round trips from before a restart: the executor restored them; the
        manager takes them over too, so premium exits and the square-off still apply."""
        known = {p.symbol for p in self.manager.positions()}
        now = self.clock.now()
        for t in await self.store.load_option_trades(status=TradeStatus.OPEN):
            if t.symbol in known or t.option_type not in ("CE", "PE"):
                continue
            instrument = self.instruments.get(t.symbol)
            tick = instrument.tick_size if instrument else 0.05
            qty = t.lots * t.lot_size
            stop, target = self.manager.params.premium_levels.levels(t.entry_price, tick)
            entry = OptionSignal(
                id=f"restored:{t.id}",
                underlying_signal_id=t.underlying_signal_id or "",
                underlying=self.manager.underlying_name(t.underlying),
                underlying_symbol=t.underlying,
                symbol=t.symbol,
                expiry=t.expiry,
                strike=t.strike,
                option_type="CE" if t.option_type == "CE" else "PE",
                side=Side.BUY,
                kind="entry",
                lots=t.lots,
                lot_size=t.lot_size,
                qty=qty,
                slices=(qty,),
                premium=t.entry_price,
                stop=stop,
                target=target,
                reason="restored",
                ts=now,
                tick_size=tick,
                freeze_qty=instrument.freeze_qty if instrument else None,
            )
            self.manager.on_entry_filled(entry, qty=qty, price=t.entry_price)
            log.info("options: took over the open %s from before the restart", t.symbol)

    def _expiries(self, underlying: str, today: date) -> list[date]:
        found = {
            i.expiry
            for i in self.instruments.values()
            if i.underlying == underlying
            and i.instrument_type in ("CE", "PE")
            and i.expiry is not None
            and i.expiry >= today
        }
        return sorted(e for e in found if e is not None)[:CACHED_EXPIRIES]

    async def refresh_chains(self) -> None:
        """Fetch the chains of every underlying's nearest expiries into the cache."""
        today = self.clock.now().astimezone(IST).date()
        for underlying in self.underlyings:
            fresh: dict[date, OptionChain] = {}
            for expiry in self._expiries(underlying, today):
                try:
                    chain = await self.broker.option_chain(underlying, expiry)
                except Exception as exc:  # one chain failing must not stop the others
                    log.warning("options: chain %s %s unavailable: %s", underlying, expiry, exc)
                    continue
                fresh[expiry] = chain
                key = (underlying, expiry, chain.ts.astimezone(IST).date())
                self._baselines.setdefault(key, Baseline.of(chain))
            if fresh:
                self.chains[underlying] = fresh

    # ----------------------------------------------------------------- signals

    def handles(self, symbol: str) -> bool:
        """Whether signals of ``symbol`` go to the options layer."""
        return symbol in self.underlyings

    def _pick(self, chain: OptionChain, option_type: OptionType) -> StrikePick | None:
        key = (chain.underlying, chain.expiry, chain.ts.astimezone(IST).date())
        analytics = analyze(chain, self._baselines.get(key))
        ranked = rank_strikes(analytics, option_type, self.ranking, top=1)
        if not ranked:
            return None
        best = ranked[0]
        return StrikePick(
            symbol=best.symbol,
            strike=best.strike,
            premium=best.premium,
            score=best.score,
            breakdown={"score": best.score, **best.breakdown, "iv": best.iv, "delta": best.delta},
        )

    async def on_signal(self, signal: Signal) -> OptionDecision:
        """An underlying signal: decide on cached chains, then trade what was decided."""
        chains = self.chains.get(signal.symbol, {})
        t0 = time.perf_counter()
        decision = self.manager.on_signal(signal, chains, self._pick)
        self.latencies.append(time.perf_counter() - t0)
        if decision.rejected:
            log.info("options: %s: %s", signal.id, decision.reason)
        await self._trade(decision.signals, signal.price)
        return decision

    async def _trade(
        self, signals: tuple[OptionSignal, ...], underlying_price: float | None
    ) -> None:
        for s in signals:
            price = underlying_price if underlying_price is not None else self._price(s)
            if s.kind == "exit":
                result = await self.executor.exit(s.symbol, s.reason, underlying_price=price)
                if result.ok or result.client_id is not None:  # sent, or one already works
                    self._exits.add(s.symbol)
                elif not self.executor.holds(s.symbol):  # closed already (e.g. a flatten)
                    self.manager.on_exit_filled(s.symbol)
                else:
                    self.manager.on_exit_cancelled(s.symbol)
            else:
                qty = s.slices[0]
                if len(s.slices) > 1:
                    # One working order per symbol: the first slice (<= the freeze quantity)
                    # is the position; the rest would need child orders the executor lacks.
                    log.warning(
                        "options: %s capped to its first slice %d of %s", s.id, qty, s.slices
                    )
                result = await self.executor.enter(
                    s.symbol,
                    Side.BUY,
                    qty,
                    s.premium,
                    s.reason,
                    s.id,
                    strategy="options",
                    underlying_price=price,
                    underlying_signal_id=s.underlying_signal_id,
                )
                if result.ok:
                    self._entries[s.symbol] = s
                else:
                    log.info("options: entry %s not placed: %s", s.id, result.reason)
            self._remember(s)

    def _price(self, s: OptionSignal) -> float | None:
        return self._underlying_price(s.underlying_symbol)

    def _remember(self, s: OptionSignal) -> None:
        record = {
            "id": s.id,
            "ts": s.ts.isoformat(),
            "kind": s.kind,
            "symbol": s.symbol,
            "side": s.side.value,
            "underlying": s.underlying_symbol,
            "underlying_signal_id": s.underlying_signal_id,
            "expiry": s.expiry.isoformat(),
            "strike": s.strike,
            "option_type": s.option_type,
            "lots": s.lots,
            "qty": s.qty,
            "price": s.premium,
            "stop": s.stop,
            "target": s.target,
            "reason": s.reason,
            "payload": s.payload,
        }
        self.recent.append(record)
        self._notify("option_signal", record)

    # ----------------------------------------------------------------- the marks loop

    def _watched(self) -> list[str]:
        held = {p.symbol for p in self.executor.positions() if p.symbol in self.instruments}
        return sorted(held | set(self._entries) | self._exits)

    async def mark_once(self) -> None:
        """Quotes of the open and working contracts → paper fills, marks, premium exits,
        the square-off, and the manager's view of fills."""
        symbols = [s for s in self._watched() if self.instruments.get(s, None) is not None]
        symbols = [s for s in symbols if self.instruments[s].instrument_type in ("CE", "PE")]
        now = self.clock.now()
        exits: list[OptionSignal] = []
        if symbols:
            quotes = await self.broker.quote(symbols)
            for symbol, q in quotes.items():
                self.executor.on_tick(symbol, q.last_trade_ns, q.last_price)
                hit = self.manager.on_option_quote(symbol, q.last_price, now)
                if hit is not None:
                    exits.append(hit)
        exits += self.manager.square_off(now)
        if exits:
            await self._trade(tuple(exits), None)
        await self.executor.pump()
        self._sync_fills()

    def _sync_fills(self) -> None:
        held = {p.symbol: p for p in self.executor.positions()}
        for symbol, entry in list(self._entries.items()):
            pos = held.get(symbol)
            if pos is not None:
                self.manager.on_entry_filled(entry, qty=abs(pos.qty), price=pos.avg_price)
                del self._entries[symbol]
            elif not self.executor.holds(symbol):  # the entry died unfilled
                del self._entries[symbol]
        # A position the executor no longer has is closed, whoever closed it (our exit, a
        # flatten on the daily loss limit, a kill switch).
        for position in self.manager.positions():
            if position.symbol not in held and not self.executor.holds(position.symbol):
                self.manager.on_exit_filled(position.symbol)
                self._exits.discard(position.symbol)
        self._exits &= set(held)

    async def run(self) -> None:
        """Mark every ``marks_s``; refresh the chain cache and the P&L attribution every
        ``chains_s`` (wall time); on a new IST day, refresh the instrument master first."""
        next_chains = time.monotonic() + self.timing.chains_s
        while True:
            try:
                today = self.clock.now().astimezone(IST).date()
                if self._day is not None and today != self._day:
                    await self.prepare(today)  # the day's contracts: expiries roll over
                await self.mark_once()
                if time.monotonic() >= next_chains:
                    next_chains = time.monotonic() + self.timing.chains_s
                    await self.refresh_chains()
                    self.pnl_attribution = await self.attribution()
            except Exception:  # a bad quote round must not end the options layer
                log.exception("options desk step failed")
            await asyncio.sleep(self.timing.marks_s)

    # ----------------------------------------------------------------- reading

    async def attribution(self) -> dict[str, dict[str, float]]:
        """Realized net P&L per underlying and leg: the underlying's own round trips
        (``trades``) against the option round trips it caused (``option_trades``)."""
        out: dict[str, dict[str, float]] = {}
        for t in await self.store.load_trades(status=TradeStatus.CLOSED):
            if t.symbol in self.underlyings and t.net_pnl is not None:
                leg = out.setdefault(t.symbol, {"underlying": 0.0, "option": 0.0})
                leg["underlying"] += t.net_pnl
        for o in await self.store.load_option_trades(status=TradeStatus.CLOSED):
            if o.net_pnl is not None:
                leg = out.setdefault(o.underlying, {"underlying": 0.0, "option": 0.0})
                leg["option"] += o.net_pnl
        return {u: {k: round(v, 2) for k, v in legs.items()} for u, legs in out.items()}

    def status(self) -> dict[str, Any]:
        """For ``/status``: what the desk trades, holds and last decided."""
        lat = sorted(self.latencies)
        return {
            "underlyings": list(self.underlyings),
            "cached_chains": {u: sorted(e.isoformat() for e in c) for u, c in self.chains.items()},
            "positions": [
                {
                    "symbol": p.symbol,
                    "qty": p.qty,
                    "entry_price": p.entry_price,
                    "stop": p.stop,
                    "target": p.target,
                    "underlying_signal_id": p.underlying_signal_id,
                }
                for p in self.manager.positions()
            ],
            "signals": len(self.recent),
            "pnl_attribution": self.pnl_attribution,
            "decision_us_p50": round(lat[len(lat) // 2] * 1e6, 1) if lat else None,
            "decision_us_p99": round(lat[int(len(lat) * 0.99)] * 1e6, 1) if lat else None,
        }

    def _underlying_of(self, text: str) -> str | None:
        """An underlying symbol from its symbol or its options name (``"NIFTY"``)."""
        wanted = text.strip().upper()
        for underlying in self.underlyings:
            if wanted in (underlying.upper(), self.manager.underlying_name(underlying).upper()):
                return underlying
        return None

    def chain_view(self, underlying: str, expiry: date | None = None) -> dict[str, Any] | None:
        """The cached chain of ``underlying`` (symbol or options name) for ``expiry``
        (default the nearest) with its analytics and ranking, JSON-ready; None if unknown."""
        symbol = self._underlying_of(underlying)
        cached = self.chains.get(symbol or "", {})
        if not cached:
            return None
        chain = cached.get(expiry) if expiry is not None else cached[min(cached)]
        if chain is None:
            return None
        key = (chain.underlying, chain.expiry, chain.ts.astimezone(IST).date())
        a = analyze(chain, self._baselines.get(key))
        sides: dict[str, list[dict[str, Any]]] = {}
        ranked: dict[str, list[dict[str, Any]]] = {}
        for kind in ("CE", "PE"):
            side, stats = chain.side(kind), a.side(kind)
            sides[kind] = [
                {
                    "strike": float(chain.strike[i]),
                    "symbol": side.symbols[i],
                    "bid": _num(side.bid[i]),
                    "ask": _num(side.ask[i]),
                    "last": _num(side.last[i]),
                    "oi": _num(stats.oi[i]),
                    "oi_change": _num(stats.oi_change[i]),
                    "oi_percentile": _num(stats.oi_percentile[i]),
                    "volume": _num(stats.volume[i]),
                    "spread_pct": _num(stats.spread_pct[i]),
                    "iv": _num(stats.iv[i]),
                    "delta": _num(stats.delta[i]),
                    "buildup": str(stats.buildup[i]),
                }
                for i in range(len(chain))
            ]
            ranked[kind] = [
                {
                    "symbol": r.symbol,
                    "strike": r.strike,
                    "premium": r.premium,
                    "iv": _num(r.iv),
                    "delta": _num(r.delta),
                    "score": _num(r.score),
                    "breakdown": {k: _num(v) for k, v in r.breakdown.items()},
                }
                for r in rank_strikes(a, kind, self.ranking, top=5)
            ]
        return {
            "underlying": chain.underlying,
            "expiry": chain.expiry.isoformat(),
            "expiries": sorted(e.isoformat() for e in cached),
            "ts": chain.ts.isoformat(),
            "spot": chain.spot,
            "lot_size": chain.lot_size,
            "tick_size": chain.tick_size,
            "freeze_qty": chain.freeze_qty,
            "forward": _num(a.forward),
            "atm_strike": _num(a.atm_strike),
            "atm_straddle": _num(a.atm_straddle),
            "pcr_oi": _num(a.pcr_oi),
            "pcr_volume": _num(a.pcr_volume),
            "max_pain": _num(a.max_pain),
            "ce": sides["CE"],
            "pe": sides["PE"],
            "ranked": ranked,
        }

    def signals_view(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest option signals first."""
        return list(reversed(self.recent))[:limit]

    def positions_view(self) -> list[dict[str, Any]]:
        """The open option positions with their levels and last premium."""
        return [
            {
                "symbol": p.symbol,
                "underlying": p.underlying_symbol,
                "expiry": p.expiry.isoformat(),
                "strike": p.strike,
                "option_type": p.option_type,
                "lots": p.lots,
                "qty": p.qty,
                "entry_price": p.entry_price,
                "stop": p.stop,
                "target": p.target,
                "underlying_signal_id": p.underlying_signal_id,
                "opened_at": p.opened_at.isoformat(),
                "exiting": p.exiting,
            }
            for p in self.manager.positions()
        ]


def _num(value: Any) -> float | None:
    """A JSON number: NaN and infinities (no value) become None."""
    out = float(value)
    return out if math.isfinite(out) else None
