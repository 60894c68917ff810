"""The risk manager: sizing, pre-trade limits, trading states, daily loss, submit throttle.

Pure and synchronous (no I/O, no waiting) except :meth:`RiskManager.acquire`, the
submit-rate throttle. The executor tells it what happens (an entry is being sent, an
entry died unfilled, a round trip closed, the open positions' marked P&L) and asks it
before every entry (:meth:`RiskManager.check_entry`). Exits are always allowed.

Trading states:

* ``ACTIVE`` - entries and exits;
* ``REDUCING`` - exits only (e.g. near the square-off time, or by an operator);
* ``HALTED`` - nothing new, and a flatten is requested: the kill switch (:meth:`halt`) or
  the daily loss limit (realized + unrealized NET P&L <= -DAILY_LOSS_LIMIT). It lasts
  until :meth:`reset_for_new_session` at the next session.

The executor consumes a flatten request with :meth:`take_flatten_request`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from mental_trader.calendar import IST
from mental_trader.execution.orders import round_to_lot
from mental_trader.models import Side

if TYPE_CHECKING:
    from mental_trader.config import Settings

__all__ = [
    "Clock",
    "RiskDecision",
    "RiskManager",
    "SubmitThrottle",
    "SystemClock",
    "TradingState",
]

log = logging.getLogger(__name__)


class Clock(Protocol):
    """Time for the trading side: wall time, a monotonic timer, and a non-blocking sleep.

    Tests and the accelerated sim inject their own; :class:`SystemClock` is the real one.
    """

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` without blocking the event loop."""
        ...


class SystemClock:
    """The real clock: UTC wall time, :func:`time.monotonic`, :func:`asyncio.sleep`."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """:func:`time.monotonic`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """:func:`asyncio.sleep`."""
        await asyncio.sleep(seconds)


class SubmitThrottle:
    """Spaces order submissions at most ``rate_per_s`` per second (a one-token bucket).

    Each :meth:`acquire` reserves the next free slot, ``1 / rate`` after the previous
    one, and sleeps until it (FIFO for concurrent callers, no lock needed: the reservation
    happens before the first await). So any one-second window ``[t, t + 1)`` holds at most
    ``rate_per_s`` submissions: MAX_ORDERS_PER_SECOND (at most 9) stays below the broker's
    10/s. A cancelled waiter's slot stays used, which errs on the slow side.
    """

    def __init__(self, rate_per_s: float, clock: Clock) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate must be > 0, got {rate_per_s}")
        self.interval_s = 1.0 / rate_per_s
        self._clock = clock
        self._next_free = -math.inf

    async def acquire(self) -> None:
        """Wait for this submission's slot."""
        now = self._clock.monotonic()
        slot = max(now, self._next_free)
        self._next_free = slot + self.interval_s
        if slot > now:
            await self._clock.sleep(slot - now)


class TradingState(StrEnum):
    """What the risk manager lets through (module docstring)."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The answer to a pre-trade check.

    Attributes:
        allowed: whether the order may go.
        reason: why not (or why the quantity was cut); empty when allowed as asked.
        qty: the quantity allowed (capped and rounded down to the lot), 0 when refused.
    """

    allowed: bool
    reason: str
    qty: int


def _refuse(reason: str) -> RiskDecision:
    return RiskDecision(False, reason, 0)


class RiskManager:
    """Sizing, limits and trading state for one trading day (see the module docstring).

    Args:
        settings: CAPITAL, RISK_PER_TRADE_PCT, STOP_LOSS_PCT, MAX_POSITION_VALUE,
            MAX_OPEN_POSITIONS, MAX_TRADES_PER_DAY, DAILY_LOSS_LIMIT,
            MAX_ORDERS_PER_SECOND are read from it.
        clock: gives the session day at start and paces the throttle.
    """

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.throttle = SubmitThrottle(settings.max_orders_per_second, clock)
        self.state = TradingState.ACTIVE
        self.state_reason = ""
        self.day: date = clock.now().astimezone(IST).date()
        self.trades_today = 0
        self.realized_pnl = 0.0
        self.unrealized_pnl = 0.0
        self._open: set[str] = set()
        self._flatten_reason: str | None = None

    # -- reading --------------------------------------------------------------------

    @property
    def open_positions(self) -> int:
        """Symbols with a position or an entry on its way."""
        return len(self._open)

    @property
    def net_pnl(self) -> float:
        """Today's realized plus unrealized net P&L (INR)."""
        return self.realized_pnl + self.unrealized_pnl

    @property
    def entries_allowed(self) -> bool:
        """Whether the state lets new entries through (ACTIVE)."""
        return self.state is TradingState.ACTIVE

    @property
    def flatten_requested(self) -> bool:
        """Whether a flatten is waiting for the executor."""
        return self._flatten_reason is not None

    # -- sizing ---------------------------------------------------------------------

    def stop_distance(self, price: float) -> float:
        """The default stop distance at ``price``: STOP_LOSS_PCT of it."""
        return price * self.settings.stop_loss_pct / 100.0

    def size(self, price: float, stop_distance: float | None = None, *, lot_size: int = 1) -> int:
        """Quantity risking RISK_PER_TRADE_PCT of CAPITAL over the stop distance.

        ``floor(capital * risk_pct / 100 / stop_distance)``, rounded down to the lot,
        capped by ``MAX_POSITION_VALUE / price`` (also in whole lots). 0 means even one
        lot is too big.

        Args:
            price: expected entry price, > 0.
            stop_distance: rupees per unit between entry and stop; default
                :meth:`stop_distance`.
            lot_size: contract lot size (1 for equity).
        """
        if not (math.isfinite(price) and price > 0):
            return 0
        distance = self.stop_distance(price) if stop_distance is None else stop_distance
        if not (math.isfinite(distance) and distance > 0):
            return 0
        budget = self.settings.capital * self.settings.risk_per_trade_pct / 100.0
        by_risk = round_to_lot(math.floor(budget / distance + 1e-9), lot_size)
        return min(by_risk, self._cap(price, lot_size))

    def _cap(self, price: float, lot_size: int) -> int:
        return round_to_lot(math.floor(self.settings.max_position_value / price + 1e-9), lot_size)

    # -- pre-trade checks -------------------------------------------------------------

    def check_entry(
        self, symbol: str, side: Side, qty: int, price: float, *, lot_size: int = 1
    ) -> RiskDecision:
        """May a new position in ``symbol`` be opened with ``qty`` at about ``price``?

        Refused when not ACTIVE, at MAX_TRADES_PER_DAY, at MAX_OPEN_POSITIONS, when the
        symbol is already open, or on a bad quantity or price. Otherwise allowed with
        ``qty`` rounded down to the lot and cut to MAX_POSITION_VALUE / price.
        """
        if self.state is not TradingState.ACTIVE:
            return _refuse(f"{self.state.value.lower()}: {self.state_reason}; exits only")
        if self.trades_today >= self.settings.max_trades_per_day:
            return _refuse(f"max trades per day reached ({self.settings.max_trades_per_day})")
        if symbol in self._open:
            return _refuse(f"{symbol} already has a position or an entry working")
        if len(self._open) >= self.settings.max_open_positions:
            return _refuse(f"max open positions reached ({self.settings.max_open_positions})")
        if not (math.isfinite(price) and price > 0) or qty <= 0 or lot_size < 1:
            return _refuse(f"bad order: qty {qty}, price {price}, lot {lot_size}")
        allowed = min(round_to_lot(qty, lot_size), self._cap(price, lot_size))
        if allowed <= 0:
            return _refuse(
                f"{qty} x {price:g} (lot {lot_size}) is under one lot or over max position "
                f"value {self.settings.max_position_value:g}"
            )
        reason = "" if allowed == qty else f"quantity cut from {qty} to {allowed}"
        return RiskDecision(True, reason, allowed)

    def check_exit(self, symbol: str) -> RiskDecision:
        """Exits are always allowed, in every state (the quantity is the position's)."""
        return RiskDecision(True, "", 0)

    async def acquire(self) -> None:
        """Wait for a submission slot (every place and cancel passes here)."""
        await self.throttle.acquire()

    # -- what the executor reports --------------------------------------------------

    def entry_reserved(self, symbol: str) -> None:
        """An entry for ``symbol`` is being prepared: it counts as an open position."""
        self._open.add(symbol)

    def entry_submitted(self, symbol: str) -> None:
        """An entry was handed to the broker: it counts toward MAX_TRADES_PER_DAY."""
        self.trades_today += 1

    def release(self, symbol: str) -> None:
        """The entry for ``symbol`` ended without a position (refused, rejected, cancelled)."""
        self._open.discard(symbol)

    def position_closed(self, symbol: str, net_pnl: float) -> None:
        """A round trip closed with ``net_pnl`` (after both legs' charges)."""
        self._open.discard(symbol)
        self.realized_pnl += net_pnl
        self._check_loss()

    def mark(self, unrealized_net_pnl: float) -> bool:
        """Record the open positions' marked net P&L; return True if that just HALTED us."""
        self.unrealized_pnl = unrealized_net_pnl
        return self._check_loss()

    def restore_day(self, realized_pnl: float, trades: int, open_symbols: set[str]) -> None:
        """Resume a day after a restart with its realized net P&L, trades and positions."""
        self.realized_pnl = realized_pnl
        self.trades_today = trades
        self._open = set(open_symbols)
        self._check_loss()

    def _check_loss(self) -> bool:
        limit = self.settings.daily_loss_limit
        if self.state is TradingState.HALTED or self.net_pnl > -limit:
            return False
        self.halt(f"daily loss limit: net P&L {self.net_pnl:.2f} <= -{limit:g}")
        return True

    # -- states -----------------------------------------------------------------------

    def halt(self, reason: str, *, flatten: bool = True) -> None:
        """Kill switch: HALTED (no entries) until the next session, and request a flatten.

        ``flatten=False`` halts without the flatten: when the broker refuses our session,
        every exit order would be refused too, and retrying them would only loop.
        """
        if self.state is not TradingState.HALTED:
            log.warning("trading HALTED: %s", reason)
        self.state = TradingState.HALTED
        self.state_reason = reason
        if flatten:
            self._flatten_reason = reason

    def reduce(self, reason: str) -> None:
        """Exits only (no flatten). Does nothing when HALTED."""
        if self.state is TradingState.ACTIVE:
            log.info("trading REDUCING: %s", reason)
            self.state = TradingState.REDUCING
            self.state_reason = reason

    def resume(self) -> bool:
        """Back to ACTIVE by hand; refused (False) while the daily loss limit is breached."""
        if self.net_pnl <= -self.settings.daily_loss_limit:
            return False
        self.state, self.state_reason = TradingState.ACTIVE, ""
        return True

    def take_flatten_request(self) -> str | None:
        """The pending flatten request's reason (then cleared), or None."""
        reason, self._flatten_reason = self._flatten_reason, None
        return reason

    def reset_for_new_session(self, day: date) -> None:
        """Start session ``day``: ACTIVE again, trade count and realized P&L back to 0.

        Open positions (delivery or NRML carried overnight) stay counted.
        """
        log.info("risk: new session %s (was %s, %s)", day, self.day, self.state.value)
        self.day = day
        self.state, self.state_reason = TradingState.ACTIVE, ""
        self.trades_today = 0
        self.realized_pnl = 0.0
        self._flatten_reason = None
