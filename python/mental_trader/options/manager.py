"""The options manager: underlying signals in, option entries and exits (:class:`OptionSignal`) out.

A bullish underlying signal (BUY entry) buys a call (CE), a bearish one (SELL entry) buys a
put (PE); every option order we open is a BUY, every exit a SELL. The executor trades an
:class:`OptionSignal` through the same order state machine as an equity signal and reports
fills back (:meth:`OptionsManager.on_entry_filled`, :meth:`OptionsManager.on_exit_filled`),
which keeps the manager's small registry of open option positions.

Pure and synchronous: no I/O, no waiting. The caller fetches the chains; the strike choice
is an injected callable (the analyzer's ranking; :func:`nearest_liquid_strike` is the simple
fallback); time comes from an injected clock.

An ENTRY signal passes these gates in order; the first that fails rejects it with a
:class:`RejectCode` and a human-readable reason:

1. ``not_enabled`` - the underlying is not an options underlying (see
   :meth:`OptionsManager.underlying_name`).
2. ``after_square_off`` - the clock is at or after the square-off time (IST).
3. ``debounced`` - per (underlying, signal side): a signal less than ``debounce_s`` after
   the PREVIOUS signal of that underlying and side that reached this gate, whatever that
   one's outcome (acted, debounced, or rejected further on), is collapsed. So a burst
   yields its first signal only, and the next one needs ``debounce_s`` of quiet. The window
   is half-open: exactly ``debounce_s`` later is NOT debounced. BUY and SELL are independent.
4. ``position_open`` - a position of this underlying and option type is already open.
5. ``cooldown`` - per (underlying, option type): less than ``cooldown_s`` after the last
   entry :class:`OptionSignal` of that type was EMITTED (not filled: an entry that then
   fails still cools down). Exactly ``cooldown_s`` later is allowed; CE and PE are
   independent.
6. ``no_expiry`` - the expiry: the nearest with at least ``min_days_to_expiry`` calendar
   days left, counted as whole IST dates from the clock's date to the expiry date (0 allows
   the current expiry until it expires at 15:30 IST on its day), or the configured
   ``fixed_expiry``. An expired chain is never used.
7. ``no_strike`` - the picker found no strike.
8. ``premium_too_small`` / ``size`` - the premium leaves no room for a stop, or one lot
   risks more than the cap (:func:`~mental_trader.options.sizing.size_option`).

Debounce and cooldown are measured on the injected clock (when the manager sees the signal),
not on the bar time of the signal.

EXITS are never debounced and never cooled down:

* an underlying EXIT signal closes the open option positions whose view it ends: an exit of
  a long (SELL) closes the CEs of that underlying, an exit of a short (BUY) the PEs;
* an opposite-side ENTRY (a reversal) first closes the other type's positions (a SELL entry
  closes the CEs), then goes through the entry gates itself;
* :meth:`OptionsManager.on_option_quote` exits when the premium touches the stop (checked
  first) or the target;
* :meth:`OptionsManager.square_off` exits everything at or after the square-off time.

Once an exit is emitted for a position it is ``exiting`` and no second exit is emitted for
it until :meth:`OptionsManager.on_exit_cancelled` re-arms it.

Ids are deterministic, so replaying the same input gives the same ids. An entry's id seeds
its order's client id (the executor refuses a second intent with it); an exit needs no such
key, since the executor sends at most one working exit per position:

* an entry, or an exit caused by an underlying signal: ``"{underlying signal id}/{contract}"``;
* an exit the manager causes (premium stop/target, square-off):
  ``"{entry id}/{reason}@{ts_ns}"``.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, get_args

import numpy as np

from mental_trader.calendar import IST
from mental_trader.errors import InvalidInputError
from mental_trader.models import Side, require_aware
from mental_trader.options.chain import OptionChain, OptionType
from mental_trader.options.signals import (
    OptionDecision,
    OptionPosition,
    OptionSignal,
    RejectCode,
    StrikePick,
    StrikePicker,
    nearest_liquid_strike,
)
from mental_trader.options.sizing import (
    DEFAULT_LEVELS,
    Mode,
    PremiumLevels,
    size_option,
    slice_qty,
)
from mental_trader.strategy.base import Signal

if TYPE_CHECKING:
    from mental_trader.config import Settings

__all__ = [
    "INDEX_OPTION_NAMES",
    "Clock",
    "OptionDecision",
    "OptionPosition",
    "OptionSignal",
    "OptionsManager",
    "OptionsParams",
    "RejectCode",
    "StrikePick",
    "StrikePicker",
    "nearest_liquid_strike",
    "options_name",
]

log = logging.getLogger(__name__)


def _load_option_names() -> Mapping[str, str]:
    """The packaged ``option_names.toml``: index tradingsymbol → options name (data, not
    code: exchanges rename and add indices)."""
    text = (importlib.resources.files("mental_trader.data") / "option_names.toml").read_text(
        encoding="utf-8"
    )
    return MappingProxyType({str(k): str(v) for k, v in tomllib.loads(text)["indices"].items()})


#: Default map from an index's exchange name (Kite's tradingsymbol, without the exchange)
#: to the name its options trade under (``mental_trader/data/option_names.toml``). Stocks
#: need no entry: their options use the stock symbol. Override with
#: :attr:`OptionsParams.aliases`.
INDEX_OPTION_NAMES: Mapping[str, str] = _load_option_names()

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    """What the manager needs of a clock (``ManualClock``, ``SimClock``, ``SystemClock``)."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


def _ns(ts: datetime) -> int:
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _finite_positive(value: float, what: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise InvalidInputError(f"{what} must be finite and > 0, got {value!r}")
    return float(value)


def options_name(symbol: str, aliases: Mapping[str, str] = INDEX_OPTION_NAMES) -> str:
    """The name an underlying's options trade under (``"NSE:NIFTY 50"`` → ``"NIFTY"``)."""
    name = symbol.partition(":")[2] or symbol
    return aliases.get(name, name)


# -- parameters ---------------------------------------------------------------------------


def _hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True, slots=True)
class OptionsParams:
    """The options manager's settings.

    Attributes:
        underlyings: options names to trade (``"NIFTY"``); empty trades none.
        debounce_s: the debounce window (>= 0; 0 turns debouncing off).
        cooldown_s: the cooldown per underlying and option type (>= 0).
        min_days_to_expiry: the fewest whole calendar days left on the expiry (>= 0).
        fixed_expiry: trade this expiry only (None: choose by ``min_days_to_expiry``).
        max_lots: the most lots per position (>= 1).
        risk_cap: the most rupees a position may lose at its premium stop (> 0).
        mode: ``"scalp"`` or ``"intraday"``, which picks the default premium levels.
        levels: premium stop/target; None: :data:`DEFAULT_LEVELS` of ``mode``.
        square_off_time: IST time of day from which entries stop and positions are closed.
        aliases: exchange names of underlyings (without the exchange) to options names.

    Raises:
        InvalidInputError: a value out of range.
    """

    underlyings: frozenset[str] = frozenset({"NIFTY"})
    debounce_s: float = 5.0
    cooldown_s: float = 60.0
    min_days_to_expiry: int = 0
    fixed_expiry: date | None = None
    max_lots: int = 2
    risk_cap: float = 2000.0
    mode: Mode = "scalp"
    levels: PremiumLevels | None = None
    square_off_time: time = time(15, 15)
    aliases: Mapping[str, str] = field(default_factory=lambda: INDEX_OPTION_NAMES)

    def __post_init__(self) -> None:
        for name in ("debounce_s", "cooldown_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidInputError(f"{name} must be finite and >= 0, got {value!r}")
        if self.min_days_to_expiry < 0:
            raise InvalidInputError(
                f"min_days_to_expiry must be >= 0, got {self.min_days_to_expiry}"
            )
        if self.max_lots < 1:
            raise InvalidInputError(f"max_lots must be >= 1, got {self.max_lots}")
        _finite_positive(self.risk_cap, "risk_cap")
        if self.mode not in get_args(Mode):
            raise InvalidInputError(f"mode must be scalp or intraday, got {self.mode!r}")

    @property
    def premium_levels(self) -> PremiumLevels:
        """The levels in force: :attr:`levels`, else the mode's default."""
        return self.levels if self.levels is not None else DEFAULT_LEVELS[self.mode]

    @classmethod
    def from_settings(cls, settings: Settings, mode: Mode | None = None) -> OptionsParams:
        """Build the parameters from the configuration.

        OPTIONS_UNDERLYINGS (none when OPTIONS_ENABLED is false), OPTIONS_DEBOUNCE_S,
        OPTIONS_COOLDOWN_S, OPTIONS_MIN_DAYS_TO_EXPIRY, OPTIONS_MAX_LOTS,
        OPTIONS_PREMIUM_RISK, SQUARE_OFF_TIME and MODE (unless ``mode`` is given). The
        premium levels are the mode's defaults unless OPTIONS_STOP_PCT / OPTIONS_TARGET_PCT
        are set; the expiry is chosen by days left.

        Args:
            settings: the service configuration.
            mode: the trading mode; default the configured MODE.
        """
        chosen: Mode = settings.mode if mode is None else mode
        levels = None
        if settings.options_stop_pct is not None or settings.options_target_pct is not None:
            default = DEFAULT_LEVELS[chosen]
            levels = PremiumLevels(
                stop_pct=settings.options_stop_pct or default.stop_pct,
                target_pct=settings.options_target_pct or default.target_pct,
            )
        return cls(
            underlyings=frozenset(settings.options_underlyings if settings.options_enabled else ()),
            debounce_s=settings.options_debounce_s,
            cooldown_s=settings.options_cooldown_s,
            min_days_to_expiry=settings.options_min_days_to_expiry,
            max_lots=settings.options_max_lots,
            risk_cap=settings.options_premium_risk,
            mode=chosen,
            levels=levels,
            square_off_time=_hhmm(settings.square_off_time),
        )


# -- the manager --------------------------------------------------------------------------


class _Rejected(Exception):
    """Internal: an entry gate said no (never escapes the manager)."""

    def __init__(self, code: RejectCode, reason: str) -> None:
        super().__init__(reason)
        self.code: RejectCode = code
        self.reason = reason


def _other(option_type: OptionType) -> OptionType:
    return "PE" if option_type == "CE" else "CE"


class OptionsManager:
    """Turns underlying signals into option signals (see the module docstring).

    Owned by one task; not thread-safe.

    Args:
        params: the settings.
        clock: gives the decision time (debounce, cooldown, expiry days, square-off).
    """

    def __init__(self, params: OptionsParams, clock: Clock) -> None:
        self.params = params
        self._clock = clock
        self._debounce_w = timedelta(seconds=params.debounce_s)
        self._cooldown_w = timedelta(seconds=params.cooldown_s)
        self._last_signal: dict[tuple[str, Side], datetime] = {}
        self._last_entry: dict[tuple[str, OptionType], datetime] = {}
        self._positions: dict[str, OptionPosition] = {}
        self._quotes: dict[str, float] = {}

    # -- reading ------------------------------------------------------------------------

    def underlying_name(self, symbol: str) -> str:
        """The options name of an underlying symbol, through :attr:`OptionsParams.aliases`.

        ``"NSE:NIFTY 50"`` → ``"NIFTY"``; ``"NSE:RELIANCE"`` → ``"RELIANCE"`` (no alias).
        """
        return options_name(symbol, self.params.aliases)

    def positions(self) -> tuple[OptionPosition, ...]:
        """The open option positions, in the order they were opened."""
        return tuple(self._positions.values())

    # -- underlying signals -------------------------------------------------------------

    def on_signal(
        self,
        signal: Signal,
        chains: Iterable[OptionChain] | Mapping[Any, OptionChain],
        pick: StrikePicker,
    ) -> OptionDecision:
        """Decide what an underlying signal means for options.

        Args:
            signal: the underlying's signal.
            chains: the available chains of the signal's underlying, one per expiry (a
                sequence, or a mapping whose values are the chains). Exits only use them
                for a reference premium, so an exit may pass none.
            pick: chooses the strike on the chosen chain's CE (BUY) or PE (SELL) side.

        Returns:
            The exits and/or entry to trade, or why not.

        Raises:
            InvalidInputError: a malformed signal, a chain of another underlying, two
                chains of one expiry, a naive clock reading, or a pick that is not a
                quoted row of the chain (a wiring bug, not a business "no").
        """
        if signal.kind not in ("entry", "exit") or not isinstance(signal.side, Side):
            raise InvalidInputError(f"bad signal: kind {signal.kind!r}, side {signal.side!r}")
        now = require_aware(self._clock.now(), "clock.now()")
        name = self.underlying_name(signal.symbol)
        if name not in self.params.underlyings:
            return OptionDecision(
                code="not_enabled", reason=f"not an options underlying: {signal.symbol}"
            )
        available = self._chains(chains, signal.symbol)
        if signal.kind == "exit":
            # an exit of a long (SELL) ends the bullish view: close the calls
            closes: OptionType = "CE" if signal.side is Side.SELL else "PE"
            exits = self._signal_exits(signal, name, closes, available, now, "underlying_exit")
            if exits:
                return OptionDecision(exits)
            return OptionDecision(
                code="no_position", reason=f"no open {closes} position on {name} to exit"
            )
        option_type: OptionType = "CE" if signal.side is Side.BUY else "PE"
        exits = self._signal_exits(signal, name, _other(option_type), available, now, "reversal")
        try:
            entry = self._entry(signal, name, option_type, available, pick, now)
        except _Rejected as no:
            log.info("options %s %s: %s", signal.id, option_type, no.reason)
            return OptionDecision(exits, no.code, no.reason)
        return OptionDecision((*exits, entry))

    def _chains(
        self, chains: Iterable[OptionChain] | Mapping[Any, OptionChain], symbol: str
    ) -> list[OptionChain]:
        values = chains.values() if isinstance(chains, Mapping) else chains
        by_expiry: dict[date, OptionChain] = {}
        for chain in values:
            if chain.underlying != symbol:
                raise InvalidInputError(
                    f"chain of {chain.underlying} given for a signal of {symbol}"
                )
            if chain.expiry in by_expiry:
                raise InvalidInputError(f"two chains of {symbol} for expiry {chain.expiry}")
            by_expiry[chain.expiry] = chain
        return [by_expiry[e] for e in sorted(by_expiry)]

    def _entry(
        self,
        signal: Signal,
        name: str,
        option_type: OptionType,
        chains: list[OptionChain],
        pick: StrikePicker,
        now: datetime,
    ) -> OptionSignal:
        p = self.params
        if now.astimezone(IST).time() >= p.square_off_time:
            raise _Rejected("after_square_off", f"no entries from {p.square_off_time:%H:%M} IST")

        # every signal reaching the gate moves the window, so a burst needs quiet to end
        key = (name, signal.side)
        previous = self._last_signal.get(key)
        self._last_signal[key] = now
        if previous is not None and now - previous < self._debounce_w:
            gap = (now - previous).total_seconds()
            raise _Rejected(
                "debounced", f"debounced: {gap:g}s after the previous {signal.side} on {name}"
            )

        if any(
            pos.underlying == name and pos.option_type == option_type
            for pos in self._positions.values()
        ):
            raise _Rejected("position_open", f"a {option_type} position on {name} is open")

        last_entry = self._last_entry.get((name, option_type))
        if last_entry is not None and now - last_entry < self._cooldown_w:
            left = (last_entry + self._cooldown_w - now).total_seconds()
            raise _Rejected("cooldown", f"cooldown: {option_type} on {name} for {left:g}s more")

        chain = self._expiry(chains, now, name)
        chosen = pick(chain, option_type)
        if chosen is None:
            raise _Rejected("no_strike", f"no strike on the {option_type} side of {chain.expiry}")
        row = self._check_pick(chain, option_type, chosen)

        levels = p.premium_levels
        stop, target = levels.levels(chosen.premium, chain.tick_size)
        if stop >= chosen.premium:
            raise _Rejected(
                "premium_too_small",
                f"premium {chosen.premium:g} leaves no room for a stop (tick {chain.tick_size:g})",
            )
        size = size_option(
            chosen.premium, stop, chain.lot_size, p.risk_cap, p.max_lots, chain.freeze_qty
        )
        if size.reason is not None:
            raise _Rejected("size", size.reason)

        self._last_entry[(name, option_type)] = now
        days_left = (chain.expiry - now.astimezone(IST).date()).days
        return OptionSignal(
            id=f"{signal.id}/{chosen.symbol}",
            underlying_signal_id=signal.id,
            underlying=name,
            underlying_symbol=signal.symbol,
            symbol=chosen.symbol,
            expiry=chain.expiry,
            strike=float(chain.strike[row]),
            option_type=option_type,
            side=Side.BUY,
            kind="entry",
            lots=size.lots,
            lot_size=chain.lot_size,
            qty=size.qty,
            slices=size.slices,
            premium=chosen.premium,
            stop=stop,
            target=target,
            reason=signal.reason,
            ts=now,
            tick_size=chain.tick_size,
            freeze_qty=chain.freeze_qty,
            underlying_price=signal.price,
            payload={
                "mode": p.mode,
                "stop_pct": levels.stop_pct,
                "target_pct": levels.target_pct,
                "risk_per_lot": size.risk_per_lot,
                "risk": size.risk,
                "risk_cap": p.risk_cap,
                "days_to_expiry": days_left,
                "spot": chain.spot,
                "chain_ts": chain.ts.isoformat(),
                "score": chosen.score,
                "breakdown": dict(chosen.breakdown),
            },
        )

    def _expiry(self, chains: list[OptionChain], now: datetime, name: str) -> OptionChain:
        live = [c for c in chains if now < c.expiry_close()]
        fixed = self.params.fixed_expiry
        if fixed is not None:
            for chain in live:
                if chain.expiry == fixed:
                    return chain
            raise _Rejected("no_expiry", f"no live chain of {name} for the fixed expiry {fixed}")
        today = now.astimezone(IST).date()
        need = self.params.min_days_to_expiry
        for chain in live:  # ascending expiry: the first eligible is the nearest
            if (chain.expiry - today).days >= need:
                return chain
        raise _Rejected("no_expiry", f"no expiry of {name} with ≥ {need} days left")

    @staticmethod
    def _check_pick(chain: OptionChain, option_type: OptionType, chosen: StrikePick) -> int:
        row = chain.side(option_type).index_of(chosen.symbol) if chosen.symbol else None
        if row is None or chain.strike[row] != chosen.strike:
            raise InvalidInputError(
                f"pick {chosen.symbol!r} @ {chosen.strike:g} is not a {option_type} row of the"
                f" {chain.expiry} chain"
            )
        _finite_positive(chosen.premium, f"pick premium of {chosen.symbol}")
        return row

    # -- exits --------------------------------------------------------------------------

    def _signal_exits(
        self,
        signal: Signal,
        name: str,
        option_type: OptionType,
        chains: list[OptionChain],
        now: datetime,
        reason: str,
    ) -> tuple[OptionSignal, ...]:
        by_expiry = {c.expiry: c for c in chains}
        exits: list[OptionSignal] = []
        for pos in self._positions.values():
            if pos.underlying != name or pos.option_type != option_type or pos.exiting:
                continue
            premium, source = self._reference_premium(pos, by_expiry.get(pos.expiry))
            exits.append(
                self._exit(
                    pos,
                    f"{signal.id}/{pos.symbol}",
                    signal.id,
                    premium,
                    reason,
                    now,
                    signal.price,
                    {"premium_source": source, "underlying_reason": signal.reason},
                )
            )
        return tuple(exits)

    def _reference_premium(
        self, pos: OptionPosition, chain: OptionChain | None
    ) -> tuple[float, str]:
        if chain is not None:
            side = chain.side(pos.option_type)
            row = side.index_of(pos.symbol)
            if row is not None:
                with np.errstate(invalid="ignore"):
                    mid = float(side.mid()[row])
                if math.isfinite(mid) and mid > 0:
                    return mid, "chain"
        quote = self._quotes.get(pos.symbol)
        if quote is not None:
            return quote, "quote"
        return pos.entry_price, "entry"

    def _exit(
        self,
        pos: OptionPosition,
        signal_id: str,
        cause_id: str,
        premium: float,
        reason: str,
        ts: datetime,
        underlying_price: float | None,
        payload: dict[str, Any],
    ) -> OptionSignal:
        self._positions[pos.symbol] = dataclasses.replace(pos, exiting=True)
        return OptionSignal(
            id=signal_id,
            underlying_signal_id=cause_id,
            underlying=pos.underlying,
            underlying_symbol=pos.underlying_symbol,
            symbol=pos.symbol,
            expiry=pos.expiry,
            strike=pos.strike,
            option_type=pos.option_type,
            side=Side.SELL,
            kind="exit",
            lots=pos.lots,
            lot_size=pos.lot_size,
            qty=pos.qty,
            slices=slice_qty(pos.qty, pos.lot_size, pos.freeze_qty),
            premium=premium,
            stop=pos.stop,
            target=pos.target,
            reason=reason,
            ts=ts,
            tick_size=pos.tick_size,
            freeze_qty=pos.freeze_qty,
            underlying_price=underlying_price,
            payload={"entry_id": pos.entry_id, "entry_price": pos.entry_price, **payload},
        )

    def _managed_exit(
        self, pos: OptionPosition, premium: float, reason: str, ts: datetime
    ) -> OptionSignal:
        exit_id = f"{pos.entry_id}/{reason}@{_ns(ts)}"
        return self._exit(pos, exit_id, pos.underlying_signal_id, premium, reason, ts, None, {})

    def on_option_quote(self, symbol: str, price: float, ts: datetime) -> OptionSignal | None:
        """A contract's latest premium; an exit when it touches the stop or the target.

        The stop is checked first (a quote at or below the stop exits ``premium_stop``),
        then the target (at or above: ``premium_target``). Quotes of contracts without an
        open position are remembered as reference premiums only.

        Raises:
            InvalidInputError: a naive ``ts`` or a price that is not finite and > 0.
        """
        require_aware(ts, "quote ts")
        self._quotes[symbol] = _finite_positive(price, f"quote of {symbol}")
        pos = self._positions.get(symbol)
        if pos is None or pos.exiting:
            return None
        if price <= pos.stop:
            return self._managed_exit(pos, price, "premium_stop", ts)
        if price >= pos.target:
            return self._managed_exit(pos, price, "premium_target", ts)
        return None

    def square_off(self, ts: datetime) -> list[OptionSignal]:
        """Exits for every open position at or after the square-off time (IST) of ``ts``.

        A position opened on an earlier IST date is squared off at any time. Before the
        square-off time, and for positions already exiting, nothing.

        Raises:
            InvalidInputError: a naive ``ts``.
        """
        local = require_aware(ts, "square-off ts").astimezone(IST)
        late = local.time() >= self.params.square_off_time
        exits: list[OptionSignal] = []
        for pos in list(self._positions.values()):
            stale = pos.opened_at.astimezone(IST).date() < local.date()
            if pos.exiting or not (late or stale):
                continue
            premium = self._quotes.get(pos.symbol, pos.entry_price)
            exits.append(self._managed_exit(pos, premium, "square_off", ts))
        return exits

    # -- fills --------------------------------------------------------------------------

    def on_entry_filled(
        self,
        entry: OptionSignal,
        *,
        qty: int | None = None,
        price: float | None = None,
        opened_at: datetime | None = None,
    ) -> OptionPosition:
        """Record a fill of an entry (all of it, or one slice; fills add up).

        The stop and target are re-anchored on the average fill premium.

        Args:
            entry: the entry signal that was filled.
            qty: units filled (whole lots); default the entry's ``qty``.
            price: the fill premium; default the entry's ``premium``.
            opened_at: when the position opened (default now); a position taken over after
                a restart keeps its entry time, so the square-off still sees its day.

        Returns:
            The position after the fill.

        Raises:
            InvalidInputError: not an entry, or a bad quantity or price.
        """
        if entry.kind != "entry":
            raise InvalidInputError(f"{entry.id} is not an entry")
        filled = entry.qty if qty is None else qty
        if filled < 1 or filled % entry.lot_size:
            raise InvalidInputError(
                f"filled quantity {filled} is not a whole number of lots of {entry.lot_size}"
            )
        fill_price = _finite_positive(entry.premium if price is None else price, "fill price")
        held = self._positions.get(entry.symbol)
        total = filled + (held.qty if held else 0)
        average = (fill_price * filled + (held.entry_price * held.qty if held else 0.0)) / total
        stop, target = self.params.premium_levels.levels(average, entry.tick_size)
        if held is not None:
            pos = dataclasses.replace(
                held, qty=total, entry_price=average, stop=stop, target=target
            )
        else:
            pos = OptionPosition(
                symbol=entry.symbol,
                underlying=entry.underlying,
                underlying_symbol=entry.underlying_symbol,
                expiry=entry.expiry,
                strike=entry.strike,
                option_type=entry.option_type,
                lot_size=entry.lot_size,
                qty=total,
                entry_price=average,
                stop=stop,
                target=target,
                entry_id=entry.id,
                underlying_signal_id=entry.underlying_signal_id,
                opened_at=require_aware(opened_at or self._clock.now(), "opened_at"),
                tick_size=entry.tick_size,
                freeze_qty=entry.freeze_qty,
            )
        self._positions[entry.symbol] = pos
        return pos

    def on_exit_filled(self, symbol: str, qty: int | None = None) -> OptionPosition | None:
        """Record an exit fill of ``symbol`` (default: all of it).

        Returns:
            What is left open (still ``exiting``), or None when the position is closed or
            was not known (logged).

        Raises:
            InvalidInputError: a quantity below 1, above the open quantity, or not whole
                lots.
        """
        pos = self._positions.get(symbol)
        if pos is None:
            log.warning("exit fill of %s, which has no open option position", symbol)
            return None
        filled = pos.qty if qty is None else qty
        if not 1 <= filled <= pos.qty or filled % pos.lot_size:
            raise InvalidInputError(
                f"exit fill of {filled} for an open {pos.qty} (lots of {pos.lot_size}) of {symbol}"
            )
        if filled == pos.qty:
            del self._positions[symbol]
            return None
        left = dataclasses.replace(pos, qty=pos.qty - filled)
        self._positions[symbol] = left
        return left

    def on_exit_cancelled(self, symbol: str) -> None:
        """An exit of ``symbol`` died unfilled (cancelled, rejected): exits may fire again."""
        pos = self._positions.get(symbol)
        if pos is not None:
            self._positions[symbol] = dataclasses.replace(pos, exiting=False)
