"""Option position sizing: premium stop/target per mode, lots from the risk cap, order slices.

We only BUY options (calls on bullish signals, puts on bearish ones), so the most a position
can lose is its premium, and with a premium stop the planned loss of one lot is
``(premium - stop) * lot_size``. The number of lots is the premium-risk cap divided by that,
rounded DOWN, then capped by the maximum lots. An order above the exchange freeze quantity
is rejected, so a larger quantity is sliced into orders of whole lots at or below it.

A business "no" (one lot already risks more than the cap) is a result with a reason, never
an exception; malformed input raises :class:`~mental_trader.errors.InvalidInputError`.

Contract facts (lot size, tick size, freeze quantity) are arguments: they come from the
instrument master and the freeze-quantity configuration, never from this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from mental_trader.errors import InvalidInputError

__all__ = [
    "DEFAULT_LEVELS",
    "Mode",
    "OptionSize",
    "PremiumLevels",
    "premium_levels",
    "size_option",
    "slice_qty",
]

Mode = Literal["scalp", "intraday"]

# Float division of a price on the tick grid can land a hair below the whole number
# (80.0 / 0.05 = 1599.9999999999998): nudge before floor/ceil so grid prices stay put.
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class PremiumLevels:
    """Stop and target of a long option, in percent of the entry premium.

    Attributes:
        stop_pct: the stop sits this far BELOW the entry premium (0 < stop_pct < 100).
        target_pct: the target sits this far ABOVE it (> 0).

    Raises:
        InvalidInputError: a percentage out of range or not finite.
    """

    stop_pct: float
    target_pct: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.stop_pct) and 0 < self.stop_pct < 100):
            raise InvalidInputError(f"premium stop_pct must be in (0, 100), got {self.stop_pct}")
        if not (math.isfinite(self.target_pct) and self.target_pct > 0):
            raise InvalidInputError(
                f"premium target_pct must be finite and > 0, got {self.target_pct}"
            )

    def levels(self, premium: float, tick_size: float) -> tuple[float, float]:
        """``(stop, target)`` premiums for an entry at ``premium`` (see :func:`premium_levels`)."""
        return premium_levels(premium, self, tick_size)


#: Default levels per mode. Scalps use tight levels (a 1-minute signal is wrong or right
#: quickly); intraday trades give the premium room for the slower 5-minute signal.
DEFAULT_LEVELS: Mapping[Mode, PremiumLevels] = MappingProxyType(
    {
        "scalp": PremiumLevels(stop_pct=20.0, target_pct=30.0),
        "intraday": PremiumLevels(stop_pct=30.0, target_pct=60.0),
    }
)


def _grid(ticks: int, tick_size: float) -> float:
    # round off the float noise of ticks * tick (0.05 * 1621 = 81.05000000000001)
    return round(ticks * tick_size, 10)


def premium_levels(premium: float, levels: PremiumLevels, tick_size: float) -> tuple[float, float]:
    """The ``(stop, target)`` premiums of a long option bought at ``premium``.

    The stop is rounded DOWN to the tick and the target UP (both away from the entry, so
    rounding never tightens a level), the stop is at least one tick, and the target at
    least one tick above the entry. For a premium of one tick or less the stop can reach
    the premium: such an option cannot carry a premium stop (:func:`size_option` refuses it).

    Args:
        premium: the entry premium (> 0).
        levels: the stop and target percentages.
        tick_size: the contract's price step (> 0).

    Raises:
        InvalidInputError: a non-finite or non-positive premium or tick size.
    """
    if not (math.isfinite(premium) and premium > 0):
        raise InvalidInputError(f"premium must be finite and > 0, got {premium}")
    if not (math.isfinite(tick_size) and tick_size > 0):
        raise InvalidInputError(f"tick size must be finite and > 0, got {tick_size}")
    stop_ticks = math.floor(premium * (1 - levels.stop_pct / 100) / tick_size + _EPS)
    target_ticks = math.ceil(premium * (1 + levels.target_pct / 100) / tick_size - _EPS)
    above_entry = math.floor(premium / tick_size + _EPS) + 1
    return _grid(max(stop_ticks, 1), tick_size), _grid(max(target_ticks, above_entry), tick_size)


@dataclass(frozen=True, slots=True)
class OptionSize:
    """How many lots to buy, and the orders that carry them.

    Attributes:
        lots: whole lots (0: no trade).
        qty: units, ``lots * lot_size``.
        slices: order quantities in units, each a whole number of lots at or below the
            freeze quantity, summing to ``qty`` (largest first; empty when ``lots == 0``).
        risk_per_lot: ``(premium - stop) * lot_size``, rupees.
        reason: why there is no trade (None when ``lots > 0``).
    """

    lots: int
    qty: int
    slices: tuple[int, ...]
    risk_per_lot: float
    reason: str | None = None

    @property
    def tradable(self) -> bool:
        """Whether at least one lot may be bought."""
        return self.lots > 0

    @property
    def risk(self) -> float:
        """The planned loss at the premium stop, rupees (``lots * risk_per_lot``)."""
        return self.lots * self.risk_per_lot


def _check_int(value: int, minimum: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"{what} must be an integer >= {minimum}, got {value!r}")


def slice_qty(qty: int, lot_size: int, freeze_qty: int | None) -> tuple[int, ...]:
    """Split ``qty`` units into order quantities the exchange accepts.

    Each slice is the largest whole number of lots at or below ``freeze_qty`` (1800 at a
    lot of 65 gives 27 lots = 1755), and the last one carries the rest.

    Args:
        qty: units, a whole number of lots (>= 0; 0 gives no slice).
        lot_size: units per lot (>= 1).
        freeze_qty: the most units one order may carry (>= lot_size), or None (no limit).

    Raises:
        InvalidInputError: a quantity that is not whole lots, a lot size below 1, or a
            freeze quantity below one lot.
    """
    _check_int(lot_size, 1, "lot size")
    _check_int(qty, 0, "quantity")
    if qty % lot_size:
        raise InvalidInputError(f"quantity {qty} is not a whole number of lots of {lot_size}")
    if freeze_qty is not None:
        _check_int(freeze_qty, lot_size, "freeze quantity")
    if qty == 0:
        return ()
    if freeze_qty is None or qty <= freeze_qty:
        return (qty,)
    per_order = freeze_qty // lot_size * lot_size
    full, rest = divmod(qty, per_order)
    return (per_order,) * full + ((rest,) if rest else ())


def size_option(
    premium: float,
    stop_premium: float,
    lot_size: int,
    risk_cap: float,
    max_lots: int,
    freeze_qty: int | None = None,
) -> OptionSize:
    """Lots of a long option from the premium-risk cap and the premium stop.

    ``lots = min(floor(risk_cap / ((premium - stop_premium) * lot_size)), max_lots)``.

    Args:
        premium: the expected entry premium (> 0).
        stop_premium: the premium stop (0 <= stop < premium; 0 means the whole premium).
        lot_size: units per lot (>= 1).
        risk_cap: the most rupees one position may lose at its stop (> 0).
        max_lots: the most lots one position may hold (>= 1).
        freeze_qty: the most units one order may carry (>= lot_size), None: no slicing.

    Returns:
        The size; ``lots == 0`` with a ``reason`` when one lot risks more than the cap.

    Raises:
        InvalidInputError: any argument out of its range or not finite.
    """
    if not (math.isfinite(premium) and premium > 0):
        raise InvalidInputError(f"premium must be finite and > 0, got {premium}")
    if not (math.isfinite(stop_premium) and 0 <= stop_premium < premium):
        raise InvalidInputError(
            f"stop premium must be finite, >= 0 and below the premium {premium}, got {stop_premium}"
        )
    _check_int(lot_size, 1, "lot size")
    if not (math.isfinite(risk_cap) and risk_cap > 0):
        raise InvalidInputError(f"risk cap must be finite and > 0, got {risk_cap}")
    _check_int(max_lots, 1, "max lots")
    if freeze_qty is not None:
        _check_int(freeze_qty, lot_size, "freeze quantity")

    risk_per_lot = (premium - stop_premium) * lot_size
    lots = min(math.floor(risk_cap / risk_per_lot + _EPS), max_lots)
    if lots == 0:
        reason = (
            f"risk per lot ₹{risk_per_lot:,.2f} ({lot_size} x ₹{premium - stop_premium:,.2f})"
            f" exceeds the cap ₹{risk_cap:,.2f}"
        )
        return OptionSize(0, 0, (), risk_per_lot, reason)
    qty = lots * lot_size
    return OptionSize(lots, qty, slice_qty(qty, lot_size, freeze_qty), risk_per_lot)
