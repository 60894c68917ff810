"""Exception hierarchy of Mental Trader.

Every error we raise shares one root, so callers can catch ``MentalTraderError``;
bad input is also a ``ValueError`` so generic callers keep working::

    MentalTraderError
    ├── InvalidInputError (ValueError)   bad argument to the Rust core or an API
    ├── ConfigError (ValueError)         invalid configuration, names the key
    ├── FeedError                        market-data feed problem (``retryable``)
    │   └── FeedDisconnected
    ├── BrokerError                      broker refused or failed a request
    │   ├── OrderRejected
    │   └── AuthError
    └── StorageError                     the store could not read or write (``retryable``)

``PanicException`` (re-exported from the extension) is a ``BaseException``: it means a
bug in the Rust core, never bad input. Catch it by name in the engine supervisor only.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BrokerError",
    "ConfigError",
    "FeedDisconnected",
    "FeedError",
    "InvalidInputError",
    "MentalTraderError",
    "OrderRejected",
    "PanicException",
    "StorageError",
]


class MentalTraderError(Exception):
    """Root of every error raised by Mental Trader."""


class InvalidInputError(MentalTraderError, ValueError):
    """An argument is malformed: wrong dtype, NaN price, bad period, unknown mode, ...

    Raised by the Rust core (``mental_trader._core``) with a message naming the problem.
    """


class ConfigError(MentalTraderError, ValueError):
    """The configuration is invalid; the message names the offending key."""


class FeedError(MentalTraderError):
    """The market-data feed failed.

    Attributes:
        retryable: whether reconnecting may help.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class FeedDisconnected(FeedError):
    """The feed connection dropped or went silent."""


class BrokerError(MentalTraderError):
    """The broker refused or failed a request."""


class OrderRejected(BrokerError):
    """The broker (or our risk manager) rejected an order."""


class AuthError(BrokerError):
    """The broker session is missing, invalid or expired."""


class StorageError(MentalTraderError):
    """The store could not read or write.

    Attributes:
        retryable: True for an outage (connection refused or lost, timeout, database
            locked): the same write may succeed later. False for a write the database
            refused on its merits (constraint, bad value), which retrying cannot fix.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


# Imported last: the extension imports InvalidInputError from this module when it raises.
from mental_trader._core import PanicException  # noqa: E402
