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
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from mental_trader.brokers.base import Quote
from mental_trader.calendar import IST
from mental_trader.execution.book import is_option
from mental_trader.execution.executor import Executor
from mental_trader.models import Instrument, Side, TradeStatus
from mental_trader.options.analyzer import Baseline, analyze
from mental_trader.options.chain import EXPIRY_TIME, OptionChain, OptionType
from mental_trader.options.manager import (
    INDEX_OPTION_NAMES,
    OptionDecision,
    OptionSignal,
    OptionsManager,
    OptionsParams,
    StrikePick,
    options_name,
)
from mental_trader.options.master import refresh_instrument_master
from mental_trader.options.ranking import RankingParams, rank_strikes
from mental_trader.options.sizing import slice_qty
from mental_trader.storage.base import Store, dt_to_ns
from mental_trader.strategy.base import Signal

__all__ = ["DeskTiming", "OptionsBroker", "OptionsDesk", "option_underlyings"]

log = logging.getLogger(__name__)

#: How many of the nearest listed expiries of an underlying are kept in the chain cache.
CACHED_EXPIRIES = 3
#: A cached chain older than this (market seconds) is not used for a new entry.
MAX_CHAIN_AGE_S = 120.0


@runtime_checkable
class OptionsBroker(Protocol):
    """What the desk needs of a broker."""

    async def instruments(self) -> list[Instrument]: ...

    async def option_chain(self, underlying: str, expiry: date) -> OptionChain: ...

    async def quote(self, symbols: list[str]) -> dict[str, Quote]: ...


def option_underlyings(
    instruments: Iterable[Instrument],
    names: Collection[str],
    aliases: Mapping[str, str] = INDEX_OPTION_NAMES,
) -> list[str]:
    """The underlying symbols that have option contracts among ``instruments`` and whose
    options name (``"NSE:NIFTY 50"`` → ``"NIFTY"``) is in ``names``."""
    return sorted(
        {
            i.underlying
            for i in instruments
            if i.underlying and is_option(i) and options_name(i.underlying, aliases) in names
        }
    )


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
        self._listed: dict[str, list[date]] = {}  # underlying -> expiries, from the master
        self._warned: dict[str, float] = {}
        #: realized P&L per underlying and leg, refreshed with the chains
        self.pnl_attribution: dict[str, dict[str, float]] = {}

    # ----------------------------------------------------------------- start-up

    async def prepare(self, today: date) -> tuple[str, ...]:
        """Refresh the instrument master, load the option contracts into the shared map,
        fill the chain cache; returns the underlying symbols the desk trades."""
        names, aliases = self.manager.params.underlyings, self.manager.params.aliases
        dump_underlyings = option_underlyings(self.instruments.values(), names, aliases)
        if dump_underlyings:
            update = await refresh_instrument_master(
                self.broker, self.store, dump_underlyings, today=today
            )
            if not update.replaced:
                log.error("options: instrument master kept: %s", "; ".join(update.problems))
        stored = [
            i
            for i in await self.store.load_instruments()
            if is_option(i) and i.expiry is not None and i.expiry >= today
        ]
        self.underlyings = tuple(option_underlyings(stored, names, aliases))
        listed: dict[str, set[date]] = {}
        for i in stored:
            if i.underlying in self.underlyings and i.expiry is not None:
                self.instruments[i.symbol] = i
                listed.setdefault(i.underlying, set()).add(i.expiry)
        self._listed = {u: sorted(expiries) for u, expiries in listed.items()}
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
            if t.symbol in self._entries:
                continue  # our own entry, filled: _sync_fills hands it over
            if t.symbol in known or t.option_type not in ("CE", "PE"):
                continue
            instrument = self.instruments.get(t.symbol)
            tick = instrument.tick_size if instrument else 0.05
            freeze = instrument.freeze_qty if instrument else None
            if freeze is not None and freeze < t.lot_size:
                freeze = None  # not a usable limit
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
                slices=slice_qty(
                    qty, t.lot_size, freeze if freeze and freeze >= t.lot_size else None
                ),
                premium=t.entry_price,
                stop=stop,
                target=target,
                reason="restored",
                ts=now,
                tick_size=tick,
                freeze_qty=freeze,
            )
            self.manager.on_entry_filled(entry, qty=qty, price=t.entry_price, opened_at=t.entry_ts)
            log.warning("options: took over the open %s (opened %s)", t.symbol, t.entry_ts)

    def _expiries(self, underlying: str) -> list[date]:
        """The nearest listed expiries of ``underlying`` that have not expired yet."""
        now = self.clock.now()
        live = (
            e
            for e in self._listed.get(underlying, [])
            if datetime.combine(e, EXPIRY_TIME, tzinfo=IST) > now
        )
        return list(itertools.islice(live, CACHED_EXPIRIES))

    async def refresh_chains(self) -> None:
        """Fetch the chains of every underlying's nearest expiries into the cache."""
        today = self.clock.now().astimezone(IST).date()
        self._baselines = {k: v for k, v in self._baselines.items() if k[2] >= today}
        for underlying in self.underlyings:
            fresh: dict[date, OptionChain] = {}
            for expiry in self._expiries(underlying):
                try:
                    chain = await self.broker.option_chain(underlying, expiry)
                except Exception as exc:  # one chain failing must not stop the others
                    log.warning("options: chain %s %s unavailable: %s", underlying, expiry, exc)
                    continue
                fresh[expiry] = chain
                key = (underlying, expiry, chain.ts.astimezone(IST).date())
                self._baselines.setdefault(key, Baseline.of(chain))
            self.chains[underlying] = fresh  # expired expiries leave the cache

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
        """An underlying signal: decide on the cached chains (only fresh ones), then trade
        what was decided."""
        now = self.clock.now()
        chains = [
            c
            for c in self.chains.get(signal.symbol, {}).values()
            if (now - c.ts).total_seconds() <= MAX_CHAIN_AGE_S
        ]
        t0 = time.perf_counter()
        decision = self.manager.on_signal(signal, chains, self._pick)
        self.latencies.append(time.perf_counter() - t0)
        if decision.rejected:
            log.info("options: %s: %s", signal.id, decision.reason)
        # The view this signal ends also ends the entries of that type still working: the
        # manager only knows filled positions, so cancel those here.
        ends: OptionType = (
            ("CE" if signal.side is Side.SELL else "PE")
            if signal.kind == "exit"
            else ("PE" if signal.side is Side.BUY else "CE")
        )
        await self._cancel_entries(signal.symbol, ends, signal.id)
        signals = decision.signals
        entry = decision.entry
        if entry is not None and self._working_entry(entry.underlying_symbol, entry.option_type):
            # one position per underlying and type: a working entry of it counts as one
            log.info("options: %s skipped: an entry of that type is still working", entry.id)
            signals = tuple(s for s in signals if s is not entry)
        await self._trade(signals, signal.price)
        return decision

    def _working_entry(self, underlying: str, option_type: OptionType) -> bool:
        return any(
            e.underlying_symbol == underlying and e.option_type == option_type
            for e in self._entries.values()
        )

    async def _cancel_entries(self, underlying: str, option_type: OptionType, why: str) -> None:
        for symbol, e in list(self._entries.items()):
            if e.underlying_symbol != underlying or e.option_type != option_type:
                continue
            if self.executor.entry_working(symbol) and not any(
                p.symbol == symbol for p in self.executor.positions()
            ):
                result = await self.executor.exit(symbol, f"view ended by {why}")
                log.info("options: working entry %s cancelled: %s", e.id, result.reason)

    async def _trade(
        self, signals: tuple[OptionSignal, ...], underlying_price: float | None
    ) -> None:
        for s in signals:
            price = underlying_price if underlying_price is not None else self._price(s)
            try:
                placed = await (self._exit(s, price) if s.kind == "exit" else self._enter(s, price))
            except Exception:  # one signal failing must not drop the others
                log.exception("options: %s %s failed", s.kind, s.id)
                if s.kind == "exit":
                    self.manager.on_exit_cancelled(s.symbol)  # re-armed: retried on a mark
                continue
            if placed:
                self._remember(s)

    async def _exit(self, s: OptionSignal, price: float | None) -> bool:
        result = await self.executor.exit(s.symbol, s.reason, underlying_price=price)
        if result.ok or self.executor.exit_working(s.symbol):
            # sent, already working, or its outcome unknown: never a second exit order
            self._exits.add(s.symbol)
            return result.ok
        if not self.executor.holds(s.symbol):  # closed already (e.g. by a flatten)
            self.manager.on_exit_filled(s.symbol)
        else:  # refused or rejected: the position stays managed and exits fire again
            self.manager.on_exit_cancelled(s.symbol)
            self._warn(f"exit:{s.symbol}", f"options: exit {s.id} not placed: {result.reason}")
        return False

    async def _enter(self, s: OptionSignal, price: float | None) -> bool:
        # One order for the whole size: above the freeze quantity the exchange takes it in
        # the signal's slices (Kite's autoslice; paper charges each slice as an order).
        result = await self.executor.enter(
            s.symbol,
            Side.BUY,
            s.qty,
            s.premium,
            s.reason,
            s.id,
            strategy="options",
            underlying_price=price,
            underlying_signal_id=s.underlying_signal_id,
        )
        if result.ok or self.executor.entry_working(s.symbol):
            # placed, or its outcome unknown: track it until it fills or dies
            self._entries[s.symbol] = s
            return result.ok
        log.info("options: entry %s not placed: %s", s.id, result.reason)
        return False

    def _warn(self, key: str, message: str) -> None:
        """Log a repeating problem at most once a minute (wall time) per key."""
        now = time.monotonic()
        if now - self._warned.get(key, -1e9) >= 60.0:
            self._warned[key] = now
            log.warning(message)

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
        held = {p.symbol for p in self.executor.positions() if self._is_option(p.symbol)}
        return sorted(held | set(self._entries) | self._exits)

    def _is_option(self, symbol: str) -> bool:
        instrument = self.instruments.get(symbol)
        return instrument is not None and is_option(instrument)

    async def _quotes(self, symbols: list[str]) -> dict[str, Quote]:
        """Quotes of ``symbols``; one that fails (no trade yet, an expired contract) is
        skipped, not the round."""
        try:
            return dict(await self.broker.quote(symbols))
        except Exception:
            out: dict[str, Quote] = {}
            for symbol in symbols:
                try:
                    out.update(await self.broker.quote([symbol]))
                except Exception as exc:
                    self._warn(f"quote:{symbol}", f"options: no quote for {symbol}: {exc}")
            return out

    async def mark_once(self) -> None:
        """Quotes of the open and working contracts → paper fills at the touch, marks,
        premium exits; then the square-off, the executor's pump and the manager's view of
        fills (these run even when quotes fail)."""
        now = self.clock.now()
        now_ns = dt_to_ns(now)
        exits: list[OptionSignal] = []
        symbols = self._watched()
        for symbol, q in (await self._quotes(symbols) if symbols else {}).items():
            # A buy fills at the ask, a sell at the bid (never better than the touch); a
            # held position is marked at the last trade.
            if symbol in self._entries and math.isfinite(q.ask) and q.ask > 0:
                touch = q.ask
            elif symbol in self._exits and math.isfinite(q.bid) and q.bid > 0:
                touch = q.bid
            else:
                touch = q.last_price
            if math.isfinite(touch) and touch > 0:
                self.executor.on_tick(symbol, now_ns, touch)
            if math.isfinite(q.last_price) and q.last_price > 0:
                hit = self.manager.on_option_quote(symbol, q.last_price, now)
                if hit is not None:
                    exits.append(hit)
        exits += self.manager.square_off(now)
        if exits:
            await self._trade(tuple(exits), None)
        await self.executor.pump()
        await self._sync_fills()

    async def _sync_fills(self) -> None:
        held = {p.symbol: p for p in self.executor.positions() if p.qty}
        for symbol, entry in list(self._entries.items()):
            pos = held.get(symbol)
            if pos is not None and not self.executor.entry_working(symbol):
                price = pos.avg_price if pos.avg_price else entry.premium
                self.manager.on_entry_filled(entry, qty=abs(pos.qty), price=price)
                del self._entries[symbol]
            elif not self.executor.holds(symbol):  # the entry died unfilled
                del self._entries[symbol]
        known = {p.symbol for p in self.manager.positions()}
        for position in self.manager.positions():
            if position.symbol not in held and not self.executor.holds(position.symbol):
                # closed, whoever closed it (our exit, a flatten, the kill switch)
                self.manager.on_exit_filled(position.symbol)
                self._exits.discard(position.symbol)
            elif position.exiting and not self.executor.exit_working(position.symbol):
                # its exit died (rejected, cancelled): manage it again
                self.manager.on_exit_cancelled(position.symbol)
                self._exits.discard(position.symbol)
        self._exits &= set(held)
        orphans = [
            s for s in held if self._is_option(s) and s not in known and s not in self._entries
        ]
        if orphans:  # e.g. an entry whose outcome was unknown filled after all
            await self._adopt_open_positions()

    async def run(self) -> None:
        """Mark every ``marks_s``; refresh the chain cache every ``chains_s`` and the P&L
        attribution every 5 s (wall time); on a new IST day, refresh the instrument master
        (retried every minute while it fails; marking goes on meanwhile)."""
        next_chains = next_pnl = next_prepare = time.monotonic()
        while True:
            now = time.monotonic()
            today = self.clock.now().astimezone(IST).date()
            if self._day is not None and today != self._day and now >= next_prepare:
                try:
                    await self.prepare(today)  # the day's contracts: expiries roll over
                except Exception:
                    next_prepare = now + 60.0
                    log.exception("options: the new day's preparation failed; retrying")
            try:
                await self.mark_once()
            except Exception:  # a bad round must not end the options layer
                self._warn("mark", "options: a mark round failed (see the traceback above)")
                log.debug("options mark round failed", exc_info=True)
            try:
                if now >= next_chains:
                    next_chains = now + self.timing.chains_s
                    await self.refresh_chains()
                if now >= next_pnl:
                    next_pnl = now + 5.0
                    self.pnl_attribution = await self.attribution()
            except Exception:
                self._warn("chains", "options: refreshing chains or P&L failed")
                log.debug("options refresh failed", exc_info=True)
            await asyncio.sleep(self.timing.marks_s)

    # ----------------------------------------------------------------- reading

    async def attribution(self) -> dict[str, dict[str, float]]:
        """Realized net P&L per underlying and leg: the underlying's own round trips
        (``trades``) against the option round trips it caused (``option_trades``)."""
        own, options = await self.store.closed_pnl()
        return {
            u: {
                "underlying": round(own.get(u, (0.0, 0))[0], 2),
                "option": round(options.get(u, (0.0, 0))[0], 2),
            }
            for u in sorted(set(options) | (set(own) & set(self.underlyings)))
        }

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
