"""Kite Connect errors as our own exception classes, and the mapping from a response.

Every class derives from :class:`~mental_trader.errors.BrokerError` (one root for callers)::

    BrokerError
    └── KiteError                      status, error_type, message, ambiguous, retryable
        ├── KiteTokenError (AuthError)       TokenException, HTTP 403: log in again
        ├── KitePermissionError (AuthError)  PermissionException
        ├── KiteInputError                   InputException, HTTP 400
        ├── KiteOrderError (OrderRejected)   OrderException
        │   ├── KiteMarginError              MarginException (insufficient funds)
        │   └── KiteHoldingError             HoldingException (insufficient holdings)
        ├── KiteUserError                    UserException (account problem)
        ├── KiteRateLimitError               HTTP 429 ("Too many requests")
        ├── KiteNetworkError                 NetworkException, HTTP 503/504
        ├── KiteDataError                    DataException, HTTP 502
        ├── KiteGeneralError                 GeneralException, other 5xx
        ├── KiteTransportError               timeout / connection error (no HTTP status)
        ├── KiteProtocolError                a response we cannot read
        └── KiteOrderUnknownError            a write whose outcome is unknown (see below)

**Ambiguity.** Kite takes no client order id, so a placement that timed out, lost its
connection, got a 5xx (Network/Data/GeneralException) or the HTTP 400 "Order request timed
out. Please check the order book" may still have created an order (MARKET_FACTS §6 pitfall
3). Such an error has ``ambiguous=True``. :class:`~mental_trader.brokers.kite.rest.KiteRest`
never retries a write; its write methods re-raise an ambiguous error as
:class:`KiteOrderUnknownError` (the original as ``__cause__``) so the caller looks the tag
up in the order book instead of retrying. Any other error from a write means it was not
carried out. A connection that could not even be opened is not ambiguous.

``retryable`` marks errors a read (GET) may retry after a backoff: 429, 502/503/504 and
transport errors. Messages carry Kite's text with any known secret redacted, never a token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from mental_trader.errors import AuthError, BrokerError, OrderRejected

__all__ = [
    "KiteDataError",
    "KiteError",
    "KiteGeneralError",
    "KiteHoldingError",
    "KiteInputError",
    "KiteMarginError",
    "KiteNetworkError",
    "KiteOrderError",
    "KiteOrderUnknownError",
    "KitePermissionError",
    "KiteProtocolError",
    "KiteRateLimitError",
    "KiteTokenError",
    "KiteTransportError",
    "KiteUserError",
    "error_from_response",
    "redact",
]

_REDACTED = "<redacted>"
# Kite's answer when the OMS did not confirm a placement in time; the order may exist.
_TIMED_OUT = re.compile(r"timed?\s*out.*order\s*book", re.IGNORECASE | re.DOTALL)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each (non-empty) secret replaced."""
    for secret in secrets:
        if secret and len(secret) >= 4:  # a 1-3 character "secret" would shred the text
            text = text.replace(secret, _REDACTED)
    return text


class KiteError(BrokerError):
    """Kite refused or failed a request.

    Attributes:
        status: the HTTP status (None when no response arrived).
        error_type: Kite's ``error_type`` (e.g. ``"InputException"``), None if absent.
        message: Kite's message, secrets redacted.
        ambiguous: for a write (place/modify/cancel), whether it may have been carried out
            although it failed; resolve by reading the order book, never by retrying.
        retryable: whether a read may be retried after a backoff.
    """

    ambiguous_default = False
    retryable_default = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        ambiguous: bool | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.status = status
        self.error_type = error_type
        self.message = message
        self.ambiguous = self.ambiguous_default if ambiguous is None else ambiguous
        self.retryable = self.retryable_default if retryable is None else retryable
        label = error_type or type(self).__name__
        prefix = f"HTTP {status} " if status is not None else ""
        super().__init__(f"{prefix}{label}: {message}")


class KiteTokenError(KiteError, AuthError):
    """TokenException: the session expired or was invalidated; an interactive re-login is
    needed (retrying cannot help)."""


class KitePermissionError(KiteError, AuthError):
    """PermissionException: the app or account may not use this endpoint."""


class KiteInputError(KiteError):
    """InputException: missing or bad parameters (also a MARKET order without protection)."""


class KiteOrderError(KiteError, OrderRejected):
    """OrderException: the order could not be placed, modified or cancelled."""


class KiteMarginError(KiteOrderError):
    """MarginException: insufficient funds for the order."""


class KiteHoldingError(KiteOrderError):
    """HoldingException: insufficient holdings to sell."""


class KiteUserError(KiteError):
    """UserException: an account-related problem."""


class KiteRateLimitError(KiteError):
    """HTTP 429: too many requests; the request was not carried out."""

    retryable_default = True


class KiteNetworkError(KiteError):
    """NetworkException / HTTP 503, 504: the API could not reach the OMS."""

    ambiguous_default = True
    retryable_default = True


class KiteDataError(KiteError):
    """DataException / HTTP 502: the API could not understand the OMS response."""

    ambiguous_default = True
    retryable_default = True


class KiteGeneralError(KiteError):
    """GeneralException or an unclassified 5xx."""

    ambiguous_default = True


class KiteTransportError(KiteError):
    """No HTTP response: timeout or connection error. ``ambiguous`` is False only when the
    request cannot have reached the server (connection refused, connect timeout)."""

    ambiguous_default = True
    retryable_default = True


class KiteProtocolError(KiteError):
    """A response we could not read (not JSON, no envelope). Ambiguous for a write."""

    ambiguous_default = True


class KiteOrderUnknownError(KiteError):
    """A place/modify/cancel whose outcome is unknown: look the order up by its tag (or id)
    in the order book; never send it again blindly. ``__cause__`` is the original error."""

    ambiguous_default = True


_BY_TYPE: Mapping[str, type[KiteError]] = {
    "TokenException": KiteTokenError,
    "PermissionException": KitePermissionError,
    "InputException": KiteInputError,
    "OrderException": KiteOrderError,
    "MarginException": KiteMarginError,
    "HoldingException": KiteHoldingError,
    "UserException": KiteUserError,
    "NetworkException": KiteNetworkError,
    "DataException": KiteDataError,
    "GeneralException": KiteGeneralError,
}


def _by_status(status: int) -> type[KiteError]:
    if status == 403:
        return KiteTokenError
    if status == 502:
        return KiteDataError
    if status in (503, 504):
        return KiteNetworkError
    if status >= 500:
        return KiteGeneralError
    if status == 400:
        return KiteInputError
    return KiteError  # 404, 405, 410 and other 4xx: a plain refusal


def error_from_response(
    status: int, body: Mapping[str, Any] | None, secrets: Iterable[str | None] = ()
) -> KiteError:
    """The exception for an error response.

    Args:
        status: the HTTP status.
        body: the decoded JSON body (None when it was not JSON).
        secrets: strings to redact from the message (access token, api secret, ...).

    HTTP 429 is :class:`KiteRateLimitError` whatever ``error_type`` says (Kite sends it as
    NetworkException). An unknown or absent ``error_type`` is mapped by status.
    """
    error_type = body.get("error_type") if body is not None else None
    raw_message = body.get("message") if body is not None else None
    message = redact(str(raw_message) if raw_message else f"HTTP {status}", secrets)
    error_type = str(error_type) if error_type else None
    if status == 429:
        cls: type[KiteError] = KiteRateLimitError
    elif error_type is not None and error_type in _BY_TYPE:
        cls = _BY_TYPE[error_type]
    else:
        cls = _by_status(status)
    ambiguous = True if _TIMED_OUT.search(message) else None
    return cls(message, status=status, error_type=error_type, ambiguous=ambiguous)
