"""Kite error responses → our exception classes (mapping, ambiguity, redaction)."""

from __future__ import annotations

import pytest

from mental_trader.brokers.kite.errors import (
    KiteDataError,
    KiteError,
    KiteGeneralError,
    KiteHoldingError,
    KiteInputError,
    KiteMarginError,
    KiteNetworkError,
    KiteOrderError,
    KitePermissionError,
    KiteRateLimitError,
    KiteTokenError,
    KiteUserError,
    error_from_response,
    redact,
)
from mental_trader.errors import AuthError, BrokerError, MentalTraderError, OrderRejected


@pytest.mark.parametrize(
    ("status", "error_type", "cls", "ambiguous", "retryable"),
    [
        (403, "TokenException", KiteTokenError, False, False),
        (403, "PermissionException", KitePermissionError, False, False),
        (400, "InputException", KiteInputError, False, False),
        (500, "OrderException", KiteOrderError, False, False),
        (400, "MarginException", KiteMarginError, False, False),
        (400, "HoldingException", KiteHoldingError, False, False),
        (400, "UserException", KiteUserError, False, False),
        (503, "NetworkException", KiteNetworkError, True, True),
        (502, "DataException", KiteDataError, True, True),
        (500, "GeneralException", KiteGeneralError, True, False),
        # 429 is a rate limit whatever the type says (Kite sends NetworkException).
        (429, "NetworkException", KiteRateLimitError, False, True),
        (429, None, KiteRateLimitError, False, True),
        # Unknown or absent type: by status.
        (403, None, KiteTokenError, False, False),
        (400, "SomethingNewException", KiteInputError, False, False),
        (502, None, KiteDataError, True, True),
        (503, None, KiteNetworkError, True, True),
        (504, None, KiteNetworkError, True, True),
        (500, None, KiteGeneralError, True, False),
        (404, None, KiteError, False, False),
    ],
)
def test_mapping(
    status: int, error_type: str | None, cls: type[KiteError], ambiguous: bool, retryable: bool
) -> None:
    body = {"status": "error", "message": "Kite says no", "data": None}
    if error_type is not None:
        body["error_type"] = error_type
    err = error_from_response(status, body)
    assert type(err) is cls
    assert err.status == status
    assert err.error_type == error_type
    assert err.message == "Kite says no"
    assert err.ambiguous is ambiguous
    assert err.retryable is retryable
    assert isinstance(err, BrokerError)
    assert isinstance(err, MentalTraderError)
    assert f"HTTP {status}" in str(err)
    assert "Kite says no" in str(err)


def test_hierarchy() -> None:
    assert issubclass(KiteTokenError, AuthError)
    assert issubclass(KitePermissionError, AuthError)
    assert issubclass(KiteMarginError, OrderRejected)
    assert issubclass(KiteHoldingError, KiteOrderError)
    assert not issubclass(KiteInputError, AuthError)


def test_order_request_timed_out_is_ambiguous() -> None:
    body = {
        "status": "error",
        "error_type": "InputException",
        "message": "Order request timed out. Please check the order book",
    }
    err = error_from_response(400, body)
    assert isinstance(err, KiteInputError)
    assert err.ambiguous is True
    other = error_from_response(400, {**body, "message": "Invalid quantity"})
    assert other.ambiguous is False


def test_non_json_body_maps_by_status() -> None:
    err = error_from_response(502, None)
    assert isinstance(err, KiteDataError)
    assert err.message == "HTTP 502"
    assert err.error_type is None


def test_secrets_are_redacted() -> None:
    token = "AbCdEf0123456789tok"
    body = {"status": "error", "error_type": "TokenException", "message": f"bad token {token}"}
    err = error_from_response(403, body, secrets=(token, None, ""))
    assert token not in str(err)
    assert token not in err.message
    assert "<redacted>" in err.message
    assert redact("abc", ["ab"]) == "abc"  # too short to be a secret: untouched
