"""The order model: client ids, tick and lot rounding, the in-memory state machine."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mental_trader.errors import InvalidInputError
from mental_trader.execution.orders import (
    CLIENT_ID_LENGTH,
    OrderRole,
    WorkingOrder,
    instrument_for,
    new_client_id,
    opposite,
    round_to_lot,
    round_to_tick,
)
from mental_trader.models import Instrument, OrderIntent, OrderStatus, Side


def test_client_ids_fit_the_kite_tag() -> None:
    ids = {new_client_id() for _ in range(2000)}
    assert len(ids) == 2000
    for cid in ids:
        assert len(cid) == CLIENT_ID_LENGTH == 20
        assert cid.isalnum()
        assert cid.isascii()
        assert cid.startswith("MT")


@pytest.mark.parametrize(
    ("price", "tick", "side", "expected"),
    [
        (100.01, 0.05, Side.BUY, 100.05),  # a buyer pays up
        (100.01, 0.05, Side.SELL, 100.0),  # a seller gets down
        (100.03, 0.05, None, 100.05),
        (100.02, 0.05, None, 100.0),
        (100.05, 0.05, Side.BUY, 100.05),  # on the grid stays put
        (100.05, 0.05, Side.SELL, 100.05),
        (0.3, 0.1, Side.SELL, 0.3),  # 0.3 / 0.1 = 2.9999999999999996 in binary
        (1234.87035, 0.05, Side.BUY, 1234.9),
        (249.994, 0.01, Side.BUY, 250.0),
        (249.994, 0.01, Side.SELL, 249.99),
        (25_012.0, 0.1, Side.SELL, 25_012.0),
    ],
)
def test_round_to_tick(price: float, tick: float, side: Side | None, expected: float) -> None:
    assert round_to_tick(price, tick, side) == expected


@given(
    cents=st.integers(min_value=1, max_value=10_000_000),
    tick=st.sampled_from([0.01, 0.05, 0.1, 0.2, 0.5, 1.0]),
)
def test_round_to_tick_brackets_the_price(cents: int, tick: float) -> None:
    price = cents / 100
    up, down = round_to_tick(price, tick, Side.BUY), round_to_tick(price, tick, Side.SELL)
    assert down <= price + 1e-9
    assert up >= price - 1e-9
    assert up - down <= tick + 1e-9
    for value in (up, down):
        assert abs(value / tick - round(value / tick)) < 1e-6


def test_round_to_tick_rejects_nonsense() -> None:
    for price, tick in ((0.0, 0.05), (100.0, 0.0), (float("inf"), 0.05), (-1.0, 0.05)):
        with pytest.raises(InvalidInputError):
            round_to_tick(price, tick)


def test_round_to_lot() -> None:
    assert round_to_lot(139, 65) == 130
    assert round_to_lot(130, 65) == 130
    assert round_to_lot(64, 65) == 0
    assert round_to_lot(40.9, 1) == 40
    assert round_to_lot(500 / 12.5 - 1e-12, 1) == 40  # float noise from a division
    assert round_to_lot(-5, 1) == 0
    with pytest.raises(InvalidInputError):
        round_to_lot(10, 0)


def test_opposite_and_default_instrument() -> None:
    assert opposite(Side.BUY) is Side.SELL
    assert opposite(Side.SELL) is Side.BUY
    default = instrument_for({}, "NSE:INFY")
    assert (default.exchange, default.tradingsymbol, default.tick_size, default.lot_size) == (
        "NSE", "INFY", 0.05, 1,
    )  # fmt: skip
    nifty = Instrument("NFO:NIFTYX", "NFO", "NIFTYX", instrument_type="CE", lot_size=65)
    assert instrument_for({"NFO:NIFTYX": nifty}, "NFO:NIFTYX") is nifty


def test_working_order_state_machine() -> None:
    intent = OrderIntent(client_id=new_client_id(), symbol="NSE:INFY", side=Side.BUY, qty=1)
    work = WorkingOrder(intent, OrderRole.ENTRY)
    assert work.client_id == intent.client_id
    assert work.status is OrderStatus.INTENT
    assert work.advance(OrderStatus.OPEN)
    assert not work.advance(OrderStatus.OPEN)  # a repeat is not a move
    assert not work.advance(OrderStatus.SUBMITTED)  # never backwards
    assert work.advance(OrderStatus.FILLED)
    assert work.is_terminal
    for late in OrderStatus:
        assert not work.advance(late)  # nothing leaves a terminal state
    assert work.status is OrderStatus.FILLED
