"""Strategy building blocks: signals, the position view, and the EMA-crossover rules.

A strategy is a plain Python object fed the CLOSED bar events of the Rust engine (primary and
confirm, in the order the engine emits them; see :attr:`Strategy.skips_quiet_bars` for the
ones a strategy may let the service leave out) together with the service's view of the open
position. It returns :class:`Signal` values and never talks to a broker.

:class:`EmaCrossStrategy` holds the rules shared by the built-in strategies (DESIGN.md
section 4):

* **Entry** on a primary EMA cross (+1 BUY, -1 SELL), confirmed by the trend of the last
  CLOSED confirm bar (confirm ``ema_fast > ema_slow`` for BUY, ``<`` for SELL; no warmed-up
  confirm bar yet means no entry). The engine puts that trend on every primary event
  (``BarEvent.confirm_trend``), counting a confirm bar that closes at the same instant as the
  primary bar (the primary bar is the last of its confirm bucket), so the decision is made
  on the primary event itself and confirm events change nothing here.
* **Exits**, evaluated on every primary bar close while a position is open, first match
  wins: the stop (``stop_loss_pct`` from entry, or the optional trailing stop
  ``trailing_stop_pct`` from the best price since entry as of the previous bar, whichever
  is tighter), then the target (both from the bar's high/low; when one bar touches both,
  the stop is assumed hit first, the conservative reading), then end-of-day square-off
  (any primary bar closing at or after the square-off time, so the first such bar and
  every later one while the position stays open), then an opposite primary cross.
* **No entries** from a bar closing at or after the square-off time.
* An opposite cross that exits a position may also enter the other way (a reversal) when
  its confirm trend agrees: the list then holds the exit first, then the entry.

Signal ids are deterministic (:func:`signal_id`), so replaying a bar never makes a second id.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, Protocol, Self

from mental_trader.calendar import UTC_OFFSET_MINUTES
from mental_trader.config import parse_timeframe
from mental_trader.errors import InvalidInputError
from mental_trader.models import Side, SignalRecord

if TYPE_CHECKING:
    from mental_trader.config import Settings

__all__ = [
    "BarEventLike",
    "BarLike",
    "EmaCrossStrategy",
    "PositionView",
    "Signal",
    "SignalKind",
    "SignalReason",
    "Strategy",
    "StrategyParams",
    "signal_id",
]

log = logging.getLogger(__name__)

SignalKind = Literal["entry", "exit"]
SignalReason = Literal[
    "ema_cross", "opposite_cross", "stop", "target", "trailing_stop", "square_off"
]

_NS = 1_000_000_000
_DAY_S = 86_400
_OFFSET_S = UTC_OFFSET_MINUTES * 60
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_new_signal = tuple.__new__  # Signal from a tuple of its fields, without a Python frame


class BarLike(Protocol):
    """The bar fields a strategy reads (:class:`mental_trader.core.Bar` has them)."""

    @property
    def ts(self) -> int: ...
    @property
    def open(self) -> float: ...
    @property
    def high(self) -> float: ...
    @property
    def low(self) -> float: ...
    @property
    def close(self) -> float: ...


class BarEventLike(Protocol):
    """The event fields a strategy reads (:class:`mental_trader.core.BarEvent` has them)."""

    @property
    def timeframe_s(self) -> int: ...
    @property
    def is_confirm(self) -> bool: ...
    @property
    def bar(self) -> BarLike: ...
    @property
    def ema_fast(self) -> float | None: ...
    @property
    def ema_slow(self) -> float | None: ...
    @property
    def cross(self) -> int: ...
    @property
    def end_ns(self) -> int: ...
    @property
    def confirm_ts(self) -> int | None: ...
    @property
    def confirm_ema_fast(self) -> float | None: ...
    @property
    def confirm_ema_slow(self) -> float | None: ...
    @property
    def confirm_trend(self) -> int: ...


def signal_id(strategy: str, symbol: str, bar_ts_ns: int, kind: str, side: Side) -> str:
    """The deterministic id of a signal: one bar, kind and side give one id.

    The kind is part of the id because a reversal emits an exit and an entry of the same
    side (SELL to close a long, SELL to open a short) on the same bar.

    Args:
        strategy: the strategy name.
        symbol: exchange-qualified symbol (``"NSE:INFY"``).
        bar_ts_ns: start of the primary bar (ns since the epoch, UTC).
        kind: ``"entry"`` or ``"exit"``.
        side: the order side the signal asks for.
    """
    return f"{strategy}-{symbol}-{bar_ts_ns}-{kind}-{side.value}"


def _utc(ts_ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ts_ns // 1_000)


def _seconds(value: time) -> int:
    return value.hour * 3600 + value.minute * 60 + value.second


def _hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


class Signal(NamedTuple):
    """A trading signal emitted by a strategy (immutable).

    A named tuple, not a frozen dataclass: a signal is built on the tick-to-signal path, and
    a tuple is built in a fraction of the time. What is derived (``id``, ``ts``) is computed
    when read, off that path.

    Attributes:
        symbol: exchange-qualified symbol (``"NSE:INFY"``).
        side: the order side asked for (an exit of a long is SELL).
        kind: ``"entry"`` or ``"exit"``.
        price: the bar close, or for a stop/target/trailing exit the level hit (the bar's
            open when the bar opened beyond the stop: a gap fills there, not at the level).
        reason: why (``ema_cross`` for entries).
        stop: entry: the stop level from the close; exit: the stop level in force.
        target: entry: the target level from the close; exit: the target in force.
        timeframe_s: the primary timeframe.
        strategy: name of the strategy that emitted it.
        bar_ts_ns: start of the primary bar (ns, UTC) the signal came from.
        end_ns: when that bar closed (ns, UTC).
        payload: JSON-ready details (EMA values, confirm trend, levels).
    """

    symbol: str
    side: Side
    kind: SignalKind
    price: float
    reason: SignalReason
    stop: float | None
    target: float | None
    timeframe_s: int
    strategy: str
    bar_ts_ns: int
    end_ns: int
    payload: dict[str, Any]

    @property
    def id(self) -> str:
        """Deterministic, see :func:`signal_id`."""
        return signal_id(self.strategy, self.symbol, self.bar_ts_ns, self.kind, self.side)

    @property
    def ts(self) -> datetime:
        """The close time of the primary bar (aware, UTC)."""
        return _utc(self.end_ns)

    def to_record(self) -> SignalRecord:
        """The row to store: ``kind``, ``stop``, ``target`` go into the payload."""
        payload = {"kind": self.kind, "stop": self.stop, "target": self.target, **self.payload}
        return SignalRecord(
            id=self.id,
            ts=self.ts,
            symbol=self.symbol,
            timeframe_s=self.timeframe_s,
            side=self.side,
            price=self.price,
            strategy=self.strategy,
            reason=self.reason,
            payload=payload,
        )


@dataclass(frozen=True, slots=True)
class PositionView:
    """What a strategy sees of an open position (the service owns and updates it).

    Attributes:
        side: BUY for a long, SELL for a short.
        qty: open quantity (> 0).
        entry_price: average entry price.
        stop: stop level; None means ``stop_loss_pct`` from ``entry_price``.
        target: target level; None means ``target_pct`` from ``entry_price``.
        best_price: the best price since entry (highest high of a long, lowest low of a
            short) over the bars closed BEFORE the one being evaluated; None means
            ``entry_price``. Advance it with :meth:`advanced` after each primary bar.
    """

    side: Side
    qty: int
    entry_price: float
    stop: float | None = None
    target: float | None = None
    best_price: float | None = None

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise InvalidInputError(f"position quantity must be > 0, got {self.qty}")
        if not (math.isfinite(self.entry_price) and self.entry_price > 0):
            raise InvalidInputError(f"entry price must be finite and > 0, got {self.entry_price}")

    def advanced(self, bar: BarLike) -> PositionView:
        """This view with ``best_price`` moved by a closed primary bar's high (long) or low."""
        best = self.entry_price if self.best_price is None else self.best_price
        best = max(best, bar.high) if self.side is Side.BUY else min(best, bar.low)
        return dataclasses.replace(self, best_price=best)


@dataclass(frozen=True, slots=True)
class StrategyParams:
    """The tunable values of a strategy.

    Percentages are in percent (``0.5`` means 0.5 %). Times of day are exchange-local
    (IST) and must match the session the engine was built with.
    """

    primary_timeframe_s: int
    confirm_timeframe_s: int
    stop_loss_pct: float
    target_pct: float
    trailing_stop_pct: float | None = None
    allow_short: bool = True
    square_off_time: time = time(15, 15)
    session_start: time = time(9, 15)
    session_end: time = time(15, 30)

    def __post_init__(self) -> None:
        primary, confirm = self.primary_timeframe_s, self.confirm_timeframe_s
        if primary <= 0 or confirm <= primary or confirm % primary != 0:
            raise InvalidInputError(
                f"confirm timeframe {confirm}s must be a whole multiple (>1x) of the primary"
                f" timeframe {primary}s"
            )
        for name in ("stop_loss_pct", "target_pct", "trailing_stop_pct"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0 < value < 100):
                raise InvalidInputError(f"{name} must be in (0, 100), got {value}")
        if not self.session_start < self.square_off_time <= self.session_end:
            raise InvalidInputError(
                f"square-off {self.square_off_time} must be inside the session"
                f" {self.session_start}-{self.session_end}"
            )


class Strategy(ABC):
    """Base class of strategies: closed bar events in, signals out.

    Subclasses set ``name`` and the ``default_*`` class variables, implement
    :meth:`on_bar_close`, and register with :func:`mental_trader.strategy.register`.
    An instance may keep per-symbol state and belongs to one task.
    """

    name: ClassVar[str]
    default_primary_timeframe_s: ClassVar[int]
    default_confirm_timeframe_s: ClassVar[int]
    default_stop_loss_pct: ClassVar[float]
    default_target_pct: ClassVar[float]
    default_trailing_stop_pct: ClassVar[float | None] = None
    #: True promises: a confirm event, and a primary event with ``cross == 0`` for a symbol
    #: without a position, yield no signal and change no state, so the service may skip
    #: those calls (most bar closes; it keeps them off the tick-to-signal path).
    skips_quiet_bars: ClassVar[bool] = False

    def __init__(self, params: StrategyParams | None = None) -> None:
        """Create the strategy.

        Args:
            params: the values to use; None means :meth:`default_params`.
        """
        self.params = p = self.default_params() if params is None else params
        sl, tp = p.stop_loss_pct / 100.0, p.target_pct / 100.0
        # (stop, target) as multiples of the entry price, for a long and for a short
        self._long_levels = (1.0 - sl, 1.0 + tp)
        self._short_levels = (1.0 + sl, 1.0 - tp)

    @classmethod
    def default_params(cls, **overrides: Any) -> StrategyParams:
        """The class defaults (and the default session), with ``overrides`` applied.

        Raises:
            InvalidInputError: an unknown or invalid parameter.
        """
        params = StrategyParams(
            primary_timeframe_s=cls.default_primary_timeframe_s,
            confirm_timeframe_s=cls.default_confirm_timeframe_s,
            stop_loss_pct=cls.default_stop_loss_pct,
            target_pct=cls.default_target_pct,
            trailing_stop_pct=cls.default_trailing_stop_pct,
        )
        return _replace(params, overrides)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Self:
        """Build the strategy from the configuration.

        Timeframes come from ``PRIMARY_TIMEFRAME`` / ``CONFIRM_TIMEFRAME`` when set, else
        from the class defaults. ``STOP_LOSS_PCT``, ``TARGET_PCT`` and
        ``TRAILING_STOP_PCT`` override the class defaults only when set explicitly
        (environment, ``.env`` or an override), so each mode keeps its own default width.
        Square-off time and session come from the settings.

        Args:
            settings: the service configuration.
            **overrides: :class:`StrategyParams` fields to force (e.g. ``allow_short=False``).

        Raises:
            InvalidInputError: an unknown or invalid parameter.
        """
        explicit = settings.model_fields_set
        values: dict[str, Any] = {
            "primary_timeframe_s": (
                parse_timeframe(settings.primary_timeframe)
                if settings.primary_timeframe
                else cls.default_primary_timeframe_s
            ),
            "confirm_timeframe_s": (
                parse_timeframe(settings.confirm_timeframe)
                if settings.confirm_timeframe
                else cls.default_confirm_timeframe_s
            ),
            "stop_loss_pct": (
                settings.stop_loss_pct if "stop_loss_pct" in explicit else cls.default_stop_loss_pct
            ),
            "target_pct": (
                settings.target_pct if "target_pct" in explicit else cls.default_target_pct
            ),
            "trailing_stop_pct": (
                settings.trailing_stop_pct
                if settings.trailing_stop_pct is not None
                else cls.default_trailing_stop_pct
            ),
            "square_off_time": _hhmm(settings.square_off_time),
            "session_start": _hhmm(settings.session_start),
            "session_end": _hhmm(settings.session_end),
        }
        values.update(overrides)
        return cls(_replace(cls.default_params(), values))

    @property
    def primary_timeframe_s(self) -> int:
        """Primary bar length in seconds (entries and exits are decided on these bars)."""
        return self.params.primary_timeframe_s

    @property
    def confirm_timeframe_s(self) -> int:
        """Confirm bar length in seconds (the trend filter)."""
        return self.params.confirm_timeframe_s

    def levels(self, side: Side, entry_price: float) -> tuple[float, float]:
        """The ``(stop, target)`` levels of a position entered at ``entry_price``."""
        stop, target = self._long_levels if side is Side.BUY else self._short_levels
        return entry_price * stop, entry_price * target

    def position_from_fill(self, side: Side, qty: int, price: float) -> PositionView:
        """A fresh position view, with levels computed from the actual fill price."""
        stop, target = self.levels(side, price)
        return PositionView(side, qty, price, stop=stop, target=target, best_price=price)

    def reset(self, symbol: str | None = None) -> None:  # noqa: B027 -- optional hook
        """Forget the per-symbol state (of one symbol, or of all)."""

    @abstractmethod
    def on_bar_close(
        self, event: BarEventLike, symbol: str, position: PositionView | None
    ) -> list[Signal]:
        """Consume one closed bar event and return the signals it triggers (often none).

        Args:
            event: a primary or confirm event from :class:`mental_trader.core.Engine`,
                passed in the order the engine emitted them.
            symbol: the exchange-qualified symbol the event belongs to.
            position: the open position in ``symbol`` as the service sees it, or None.

        Returns:
            Signals in the order they should be acted on (an exit before an entry).
        """


def _replace(params: StrategyParams, values: dict[str, Any]) -> StrategyParams:
    try:
        return dataclasses.replace(params, **values)
    except TypeError as exc:
        raise InvalidInputError(f"unknown strategy parameter: {exc}") from None


class EmaCrossStrategy(Strategy):
    """EMA crossover on the primary timeframe with a confirm-timeframe trend filter.

    The rules are in the module docstring. Subclasses only set ``name`` and defaults.
    """

    skips_quiet_bars = True

    def __init__(self, params: StrategyParams | None = None) -> None:
        """Create the strategy (see :class:`Strategy`)."""
        super().__init__(params)
        p = self.params
        # Read on every event: attributes, not properties of params.
        self._square_off_s = _seconds(p.square_off_time)
        self._primary_s = p.primary_timeframe_s
        self._confirm_s = p.confirm_timeframe_s
        self._allow_short = p.allow_short

    def on_bar_close(
        self, event: BarEventLike, symbol: str, position: PositionView | None
    ) -> list[Signal]:
        """See :meth:`Strategy.on_bar_close` and the module docstring for the rules.

        Raises:
            InvalidInputError: the event's timeframe is not this strategy's (a wiring bug).
        """
        is_confirm = event.is_confirm
        expected = self._confirm_s if is_confirm else self._primary_s
        if event.timeframe_s != expected:
            kind = "confirm" if is_confirm else "primary"
            raise InvalidInputError(
                f"{self.name}: {kind} event of {event.timeframe_s}s, expected {expected}s"
            )
        if is_confirm:
            return []  # its trend reaches the strategy on the primary events
        end_ns = event.end_ns
        after_square_off = (end_ns // _NS + _OFFSET_S) % _DAY_S >= self._square_off_s
        signals: list[Signal] = []
        if position is not None:
            exit_signal = self._exit(event, symbol, position, end_ns, after_square_off)
            if exit_signal is None:
                return signals
            signals.append(exit_signal)  # the position is closed: a reversal may follow
        cross = event.cross
        if cross == 0 or after_square_off or (cross < 0 and not self._allow_short):
            return signals
        if event.confirm_trend != cross:
            if event.confirm_ema_slow is None:
                log.debug("%s %s: cross without a confirm trend yet", self.name, symbol)
            return signals
        signals.append(self._entry(event, symbol, cross, end_ns))
        return signals

    # -- rules --------------------------------------------------------------------------

    def _entry(self, event: BarEventLike, symbol: str, cross: int, end_ns: int) -> Signal:
        bar = event.bar
        close = bar.close
        if cross > 0:
            side, (stop_x, target_x) = Side.BUY, self._long_levels
        else:
            side, (stop_x, target_x) = Side.SELL, self._short_levels
        # tuple.__new__, not Signal(...): the named tuple's __new__ is a Python function,
        # a few µs when the signal path runs with cold caches (the live pace)
        return _new_signal(
            Signal,
            (
                symbol,
                side,
                "entry",
                close,
                "ema_cross",
                close * stop_x,
                close * target_x,
                self._primary_s,
                self.name,
                bar.ts,
                end_ns,
                {
                    "ema_fast": event.ema_fast,
                    "ema_slow": event.ema_slow,
                    "cross": cross,
                    "confirm_timeframe_s": self._confirm_s,
                    "confirm_bar_ts_ns": event.confirm_ts,
                    "confirm_ema_fast": event.confirm_ema_fast,
                    "confirm_ema_slow": event.confirm_ema_slow,
                },
            ),
        )

    def _exit(
        self,
        event: BarEventLike,
        symbol: str,
        position: PositionView,
        end_ns: int,
        after_square_off: bool,
    ) -> Signal | None:
        bar = event.bar
        long = position.side is Side.BUY
        stop, target = self.levels(position.side, position.entry_price)
        stop = stop if position.stop is None else position.stop
        target = target if position.target is None else position.target
        best = position.entry_price if position.best_price is None else position.best_price
        stop_reason: SignalReason = "stop"
        trail_pct = self.params.trailing_stop_pct
        if trail_pct is not None:
            trail = best * (1.0 - trail_pct / 100.0) if long else best * (1.0 + trail_pct / 100.0)
            if (trail > stop) if long else (trail < stop):
                stop, stop_reason = trail, "trailing_stop"

        reason: SignalReason | None = None
        price = bar.close
        if (bar.low <= stop) if long else (bar.high >= stop):
            # stop before target when one bar touches both: the conservative reading
            reason = stop_reason
            price = min(stop, bar.open) if long else max(stop, bar.open)
        elif (bar.high >= target) if long else (bar.low <= target):
            reason, price = "target", target
        elif after_square_off:
            reason = "square_off"
        elif event.cross == (-1 if long else 1):
            reason = "opposite_cross"
        if reason is None:
            return None
        side = Side.SELL if long else Side.BUY
        return _new_signal(  # see _entry
            Signal,
            (
                symbol,
                side,
                "exit",
                price,
                reason,
                stop,
                target,
                self._primary_s,
                self.name,
                bar.ts,
                end_ns,
                {
                    "entry_price": position.entry_price,
                    "qty": position.qty,
                    "best_price": best,
                    "bar_high": bar.high,
                    "bar_low": bar.low,
                    "bar_close": bar.close,
                    "ema_fast": event.ema_fast,
                    "ema_slow": event.ema_slow,
                    "cross": event.cross,
                },
            ),
        )
