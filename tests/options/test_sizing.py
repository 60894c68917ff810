"""Option sizing: premium levels per mode, lots from the risk cap, freeze slicing."""

from __future__ import annotations

import math

import pytest

from mental_trader.errors import InvalidInputError
from mental_trader.options.sizing import (
    DEFAULT_LEVELS,
    OptionSize,
    PremiumLevels,
    premium_levels,
    size_option,
    slice_qty,
)

NIFTY_LOT = 65
NIFTY_FREEZE = 1800
TICK = 0.05


# -- levels -------------------------------------------------------------------------------


def test_default_levels_per_mode() -> None:
    assert DEFAULT_LEVELS["scalp"] == PremiumLevels(20.0, 30.0)
    assert DEFAULT_LEVELS["intraday"] == PremiumLevels(30.0, 60.0)
    assert premium_levels(100.0, DEFAULT_LEVELS["scalp"], TICK) == (80.0, 130.0)
    assert premium_levels(100.0, DEFAULT_LEVELS["intraday"], TICK) == (70.0, 160.0)


def test_levels_round_stop_down_and_target_up_to_the_tick() -> None:
    # 101.37 x 0.8 = 81.096 -> 81.05 (down); 101.37 x 1.3 = 131.781 -> 131.80 (up)
    stop, target = DEFAULT_LEVELS["scalp"].levels(101.37, TICK)
    assert (stop, target) == (81.05, 131.8)
    # prices already on the grid stay put despite float division noise
    assert premium_levels(80.0, PremiumLevels(25.0, 50.0), TICK) == (60.0, 120.0)


def test_stop_never_below_one_tick_and_target_above_entry() -> None:
    # 0.10 x 0.8 = 0.08 -> 0.05, 0.10 x 1.3 = 0.13 -> 0.15; a 99 % stop rounds to 0 -> one tick
    assert premium_levels(0.10, PremiumLevels(20.0, 30.0), TICK) == (0.05, 0.15)
    assert premium_levels(1.0, PremiumLevels(99.0, 0.001), TICK) == (0.05, 1.05)


@pytest.mark.parametrize(("stop_pct", "target_pct"), [(0, 30), (100, 30), (20, 0), (math.nan, 1)])
def test_levels_reject_out_of_range_percentages(stop_pct: float, target_pct: float) -> None:
    with pytest.raises(InvalidInputError):
        PremiumLevels(stop_pct, target_pct)


@pytest.mark.parametrize(("premium", "tick"), [(0.0, TICK), (-1.0, TICK), (math.inf, TICK), (1, 0)])
def test_levels_reject_bad_premium_or_tick(premium: float, tick: float) -> None:
    with pytest.raises(InvalidInputError):
        premium_levels(premium, DEFAULT_LEVELS["scalp"], tick)


# -- lots ---------------------------------------------------------------------------------


def test_lots_round_down_from_the_risk_cap() -> None:
    # risk per lot (100 - 80) x 65 = 1300; 2000 / 1300 = 1.54 -> 1 lot
    size = size_option(100.0, 80.0, NIFTY_LOT, 2000.0, 10, NIFTY_FREEZE)
    assert size == OptionSize(lots=1, qty=65, slices=(65,), risk_per_lot=1300.0, reason=None)
    assert size.tradable
    assert size.risk == 1300.0
    # 3899 / 1300 = 2.999 -> 2 lots
    assert size_option(100.0, 80.0, NIFTY_LOT, 3899.0, 10).lots == 2


def test_risk_exactly_at_the_cap_is_one_lot() -> None:
    # (10.3 - 10.1) x 100 = 20.000000000000107 in floats: still one lot at a cap of 20
    assert size_option(10.3, 10.1, 100, 20.0, 5).lots == 1
    assert size_option(100.0, 80.0, NIFTY_LOT, 2600.0, 5).lots == 2


def test_premium_risk_above_the_cap_is_no_trade_with_a_reason() -> None:
    # (100 - 60) x 65 = 2600 per lot > 2000
    size = size_option(100.0, 60.0, NIFTY_LOT, 2000.0, 2, NIFTY_FREEZE)
    assert (size.lots, size.qty, size.slices, size.tradable) == (0, 0, (), False)
    assert size.reason == "risk per lot ₹2,600.00 (65 x ₹40.00) exceeds the cap ₹2,000.00"


def test_max_lots_caps_the_risk_based_lots() -> None:
    size = size_option(100.0, 80.0, NIFTY_LOT, 100_000.0, 2, NIFTY_FREEZE)
    assert (size.lots, size.qty, size.slices, size.reason) == (2, 130, (130,), None)


def test_whole_premium_stop_is_allowed() -> None:
    assert size_option(10.0, 0.0, NIFTY_LOT, 1300.0, 5).lots == 2  # 650 per lot


# -- slicing ------------------------------------------------------------------------------


def test_quantity_above_the_freeze_is_sliced_in_whole_lots() -> None:
    # 1 rupee of risk per unit, 65 per lot: a cap of 1950 buys 30 lots = 1950 > 1800
    size = size_option(10.0, 9.0, NIFTY_LOT, 1950.0, 50, NIFTY_FREEZE)
    assert (size.lots, size.qty) == (30, 1950)
    assert size.slices == (1755, 195)  # 27 lots + 3 lots
    assert all(s % NIFTY_LOT == 0 and s <= NIFTY_FREEZE for s in size.slices)


def test_quantity_at_the_freeze_is_one_order() -> None:
    assert slice_qty(1755, NIFTY_LOT, NIFTY_FREEZE) == (1755,)
    assert slice_qty(1800, 60, 1800) == (1800,)
    assert slice_qty(3600, 60, 1800) == (1800, 1800)
    assert slice_qty(3660, 60, 1800) == (1800, 1800, 60)


def test_no_freeze_means_one_order() -> None:
    size = size_option(10.0, 9.0, NIFTY_LOT, 1950.0, 50, None)
    assert size.slices == (1950,)
    assert slice_qty(0, NIFTY_LOT, NIFTY_FREEZE) == ()


@pytest.mark.parametrize(
    ("qty", "lot", "freeze"), [(100, 65, 1800), (-65, 65, 1800), (130, 0, None), (130, 65, 64)]
)
def test_slice_rejects_bad_input(qty: int, lot: int, freeze: int | None) -> None:
    with pytest.raises(InvalidInputError):
        slice_qty(qty, lot, freeze)


@pytest.mark.parametrize(
    ("premium", "stop", "lot", "cap", "max_lots", "freeze"),
    [
        (math.nan, 80.0, 65, 2000.0, 2, None),
        (0.0, 0.0, 65, 2000.0, 2, None),
        (-5.0, -6.0, 65, 2000.0, 2, None),
        (100.0, 100.0, 65, 2000.0, 2, None),  # stop at the premium
        (100.0, 120.0, 65, 2000.0, 2, None),  # stop above it
        (100.0, -1.0, 65, 2000.0, 2, None),
        (100.0, math.nan, 65, 2000.0, 2, None),
        (100.0, 80.0, 0, 2000.0, 2, None),
        (100.0, 80.0, 65, 0.0, 2, None),
        (100.0, 80.0, 65, math.inf, 2, None),
        (100.0, 80.0, 65, 2000.0, 0, None),
        (100.0, 80.0, 65, 2000.0, 2, 64),  # freeze below one lot
    ],
)
def test_size_rejects_invalid_input(
    premium: float, stop: float, lot: int, cap: float, max_lots: int, freeze: int | None
) -> None:
    with pytest.raises(InvalidInputError):
        size_option(premium, stop, lot, cap, max_lots, freeze)
