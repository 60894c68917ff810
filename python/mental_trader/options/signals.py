"""The options layer's values: the strike a picker chose, the option signals the manager
emits, its decisions and the positions it manages (see :mod:`mental_trader.options.manager`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import numpy as np

from mental_trader.errors import InvalidInputError
from mental_trader.models import Side, require_aware
from mental_trader.options.chain import OptionChain, OptionType

__all__ = [
    "OptionDecision",
    "OptionPosition",
    "OptionSignal",
    "RejectCode",
    "StrikePick",
    "StrikePicker",
    "nearest_liquid_strike",
]

RejectCode = Literal[
    "not_enabled",
    "after_square_off",
    "debounced",
    "position_open",
    "cooldown",
    "no_expiry",
    "no_strike",
    "premium_too_small",
    "size",
    "no_position",
]


# -- strike choice ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StrikePick:
    """The contract a picker chose on one side of a chain.

    Attributes:
        symbol: the contract symbol (a row of the chain side).
        strike: its strike.
        premium: the price to size and set levels from (> 0).
        score: the picker's score (higher is better; informational).
        breakdown: JSON-ready explanation of the score.
    """

    symbol: str
    strike: float
    premium: float
    score: float = 0.0
    breakdown: dict[str, Any] = field(default_factory=dict)


#: Chooses the strike on one side of a chain, or None when nothing is tradable.
StrikePicker = Callable[[OptionChain, OptionType], StrikePick | None]


def nearest_liquid_strike(chain: OptionChain, option_type: OptionType) -> StrikePick | None:
    """The listed strike nearest the spot with a two-sided quote (bid > 0, ask >= bid).

    The lower strike wins a tie, like :meth:`OptionChain.atm_index`. The premium is the mid.
    A fallback and test picker; the analyzer's ranking is the real one.
    """
    side = chain.side(option_type)
    listed = np.array([bool(s) for s in side.symbols])
    with np.errstate(invalid="ignore"):
        quoted = listed & (side.bid > 0) & (side.ask >= side.bid)
    if not quoted.any():
        return None
    distance = np.where(quoted, np.abs(chain.strike - chain.spot), np.inf)
    row = int(np.argmin(distance))  # the first minimum: the lower strike
    bid, ask = float(side.bid[row]), float(side.ask[row])
    return StrikePick(
        symbol=side.symbols[row],
        strike=float(chain.strike[row]),
        premium=0.5 * (bid + ask),
        score=-float(distance[row]),
        breakdown={"distance": float(distance[row]), "bid": bid, "ask": ask},
    )


# -- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OptionSignal:
    """An option order the executor should trade (an entry or an exit).

    Attributes:
        id: deterministic (module docstring); use it as the order's client-id seed.
        underlying_signal_id: the underlying signal that caused it (for a manager-made
            exit, the one that caused the entry).
        underlying: the options name of the underlying (``"NIFTY"``).
        underlying_symbol: its exchange symbol (``"NSE:NIFTY 50"``).
        symbol: the contract (``"NFO:NIFTY26MAR25000CE"``).
        expiry, strike, option_type: the contract's terms.
        side: BUY for an entry (we only buy options), SELL for an exit.
        kind: ``"entry"`` or ``"exit"``.
        lots, lot_size, qty: size; ``qty == lots * lot_size``.
        slices: order quantities, each at or below ``freeze_qty`` and whole lots.
        premium: the reference premium (entry: the pick's; exit: the quote that
            triggered it, else the chain's mid, else the last quote, else the entry).
        stop, target: the premium levels in force.
        reason: entry: the underlying signal's reason; exit: ``underlying_exit``,
            ``reversal``, ``premium_stop``, ``premium_target`` or ``square_off``.
        ts: when it was decided (aware).
        tick_size: the contract's price step.
        freeze_qty: the exchange's per-order limit used for ``slices`` (None: none).
        underlying_price: the underlying's price of the signal (None for a manager-made exit).
        payload: JSON-ready details (pick score and breakdown, sizing, expiry choice).
    """

    id: str
    underlying_signal_id: str
    underlying: str
    underlying_symbol: str
    symbol: str
    expiry: date
    strike: float
    option_type: OptionType
    side: Side
    kind: Literal["entry", "exit"]
    lots: int
    lot_size: int
    qty: int
    slices: tuple[int, ...]
    premium: float
    stop: float
    target: float
    reason: str
    ts: datetime
    tick_size: float
    freeze_qty: int | None = None
    underlying_price: float | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_aware(self.ts, "OptionSignal.ts")
        if self.option_type not in ("CE", "PE"):
            raise InvalidInputError(f"option_type must be CE or PE, got {self.option_type!r}")
        if self.lots < 1 or self.qty != self.lots * self.lot_size or sum(self.slices) != self.qty:
            raise InvalidInputError(
                f"inconsistent option size: {self.lots} lots x {self.lot_size} != {self.qty}"
                f" or slices {self.slices}"
            )


@dataclass(frozen=True, slots=True)
class OptionDecision:
    """What the manager made of one underlying signal.

    Attributes:
        signals: what to trade, in order: exits first, then at most one entry.
        code: why no entry (or, for an exit signal, nothing) was made; None when the
            signal was acted on in full.
        reason: the human-readable form of ``code``, with the numbers.
    """

    signals: tuple[OptionSignal, ...] = ()
    code: RejectCode | None = None
    reason: str | None = None

    @property
    def rejected(self) -> bool:
        """Whether the signal was not acted on in full (see ``code``)."""
        return self.code is not None

    @property
    def entry(self) -> OptionSignal | None:
        """The entry among :attr:`signals`, if any."""
        last = self.signals[-1] if self.signals else None
        return last if last is not None and last.kind == "entry" else None

    @property
    def exits(self) -> tuple[OptionSignal, ...]:
        """The exits among :attr:`signals`."""
        return tuple(s for s in self.signals if s.kind == "exit")


@dataclass(frozen=True, slots=True)
class OptionPosition:
    """An open option position the manager knows of (from reported fills).

    Attributes:
        symbol, underlying, underlying_symbol, expiry, strike, option_type: as in
            :class:`OptionSignal`.
        lot_size, qty: size (units, whole lots).
        entry_price: average fill premium.
        stop, target: premium levels, from the average fill.
        entry_id: the entry :class:`OptionSignal` id; underlying_signal_id: its cause.
        opened_at: when the first fill was reported (clock time).
        tick_size, freeze_qty: contract facts carried from the entry.
        exiting: an exit was emitted and is not yet filled or cancelled.
    """

    symbol: str
    underlying: str
    underlying_symbol: str
    expiry: date
    strike: float
    option_type: OptionType
    lot_size: int
    qty: int
    entry_price: float
    stop: float
    target: float
    entry_id: str
    underlying_signal_id: str
    opened_at: datetime
    tick_size: float
    freeze_qty: int | None = None
    exiting: bool = False

    @property
    def lots(self) -> int:
        """Whole lots held."""
        return self.qty // self.lot_size
