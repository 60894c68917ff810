"""Typed views of Kite payloads: the autoslice answer, orders and trades with IST times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mental_trader.brokers.kite.payloads import (
    AutosliceChild,
    KiteOrder,
    KiteTrade,
    PlaceResult,
)


def test_autoslice_answer_with_a_refused_child() -> None:
    # The shape of kiteconnect-mocks' autoslice_response.json (values illustrative).
    data = {
        "order_id": "240100000000001",
        "children": [
            {"order_id": "240100000000002"},
            {
                "error": {
                    "code": 400,
                    "error_type": "MarginException",
                    "message": "Insufficient funds",
                }
            },
        ],
    }
    result = PlaceResult.from_json(data)
    assert result.order_id == "240100000000001"
    assert result.children == (
        AutosliceChild(order_id="240100000000002"),
        AutosliceChild(
            order_id=None, error_type="MarginException", message="Insufficient funds", code=400
        ),
    )
    assert PlaceResult.from_json({"order_id": 7}).children == ()
    with pytest.raises(KeyError):
        PlaceResult.from_json({"children": []})


def test_order_times_are_aware_ist() -> None:
    order = KiteOrder.from_json(
        {
            "order_id": "1",
            "status": "COMPLETE",
            "tag": "MTabc",
            "exchange": "NSE",
            "tradingsymbol": "INFY",
            "transaction_type": "BUY",
            "order_type": "MARKET",
            "product": "MIS",
            "variety": "regular",
            "validity": "DAY",
            "quantity": 5,
            "filled_quantity": 5,
            "pending_quantity": 0,
            "cancelled_quantity": 0,
            "price": 0,
            "trigger_price": 0,
            "average_price": 1500.5,
            "order_timestamp": "2026-03-02 09:18:57",
            "exchange_timestamp": None,
            "status_message": None,
            "instrument_token": 408065,
        }
    )
    assert order.order_timestamp == datetime(2026, 3, 2, 3, 48, 57, tzinfo=UTC)
    assert order.exchange_timestamp is None
    assert order.status_message is None
    assert order.symbol == "NSE:INFY"
    assert order.average_price == 1500.5
    assert "raw" not in repr(order)


def test_trade_defaults_for_missing_fields() -> None:
    trade = KiteTrade.from_json({"trade_id": 10, "order_id": 20, "quantity": "3"})
    assert (trade.trade_id, trade.order_id, trade.quantity) == ("10", "20", 3)
    assert trade.average_price == 0.0
    assert trade.fill_timestamp is None
