"""What several routers share: the response-model base and query-parameter parsing."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from mental_trader.errors import InvalidInputError

__all__ = ["ApiModel", "parse_symbol"]

_QUALIFIED = re.compile(r"[A-Z]{2,8}:[A-Z0-9&_.-]{1,64}")


class ApiModel(BaseModel):
    """Base of every request and response body: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def parse_symbol(text: str) -> str:
    """An exchange-qualified symbol from a query or path value (``"nse:infy"`` → ``"NSE:INFY"``).

    An unqualified name means NSE, as in ``WATCHLIST``.

    Raises:
        InvalidInputError: the value is not a symbol (the API answers 422).
    """
    name = text.strip().upper()
    if ":" not in name:
        name = f"NSE:{name}"
    if not _QUALIFIED.fullmatch(name):
        raise InvalidInputError(f"malformed symbol {text[:80]!r} (use e.g. NSE:RELIANCE)")
    return name
