"""Kite's JSON envelope, its errors, and its time formats.

Success: ``{"status": "success", "data": ...}``. Error: ``{"status": "error", "message":
..., "error_type": ..., "data": null}`` with Kite's HTTP status (TokenException 403,
InputException 400, NetworkException 429 for rate limits, ...). Timestamps are IST strings
``yyyy-mm-dd hh:mm:ss``; candles use ``2015-12-28T09:15:00+0530``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from starlette.responses import JSONResponse

from mental_trader.calendar import IST
from mental_trader.storage.base import ns_to_dt

__all__ = [
    "KiteError",
    "candle_time",
    "error_response",
    "ist_text",
    "ok",
    "parse_ist",
    "sha256_hex",
]


class KiteError(Exception):
    """An error Kite answers with its envelope (raised inside the fake's handlers).

    Args:
        status: HTTP status.
        error_type: Kite's ``error_type`` (``InputException``, ``TokenException``...).
        message: Kite's human message (never a secret).
    """

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def ok(data: Any, status: int = 200) -> JSONResponse:
    """The success envelope."""
    return JSONResponse({"status": "success", "data": data}, status_code=status)


def error_response(exc: KiteError) -> JSONResponse:
    """The error envelope of ``exc``."""
    body = {"status": "error", "message": exc.message, "error_type": exc.error_type, "data": None}
    return JSONResponse(body, status_code=exc.status)


def ist_text(ts_ns: int | None) -> str | None:
    """``yyyy-mm-dd hh:mm:ss`` in IST (None stays None)."""
    if ts_ns is None:
        return None
    return ns_to_dt(ts_ns).astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


def candle_time(ts_ns: int) -> str:
    """A candle's timestamp as Kite writes it: ``2015-12-28T09:15:00+0530``."""
    return ns_to_dt(ts_ns).astimezone(IST).strftime("%Y-%m-%dT%H:%M:%S%z")


def parse_ist(text: str, name: str) -> datetime:
    """Parse Kite's ``yyyy-mm-dd hh:mm:ss`` (or ``yyyy-mm-dd``) as IST.

    Raises:
        KiteError: InputException on a malformed value.
    """
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=IST)
        except ValueError:
            continue
    raise KiteError(400, "InputException", f"Invalid `{name}` timestamp: {text!r}")


def sha256_hex(*parts: str) -> str:
    """SHA-256 of the concatenated parts, hex (Kite's checksums)."""
    return hashlib.sha256("".join(parts).encode()).hexdigest()
