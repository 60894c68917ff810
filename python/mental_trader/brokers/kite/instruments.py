"""Kite's instrument dump (``GET /instruments``, a CSV) → :class:`~mental_trader.models.Instrument`.

The dump's columns: ``instrument_token, exchange_token, tradingsymbol, name, last_price,
expiry, strike, tick_size, lot_size, instrument_type, segment, exchange``. Our symbol is
``"EXCHANGE:TRADINGSYMBOL"``. For a derivative (NFO/BFO futures and options) ``name`` is the
root its contracts trade under (``NIFTY``, ``RELIANCE``); ``underlying`` is the
exchange-qualified symbol of the underlying: the index whose options name it is
(:data:`~mental_trader.options.manager.INDEX_OPTION_NAMES` inverted, so ``NIFTY`` →
``"NSE:NIFTY 50"``), otherwise the stock of that name on the cash exchange.

Index rows (segment ``INDICES``) list tick and lot size 0; they become the
:class:`Instrument` defaults (0.05, 1). Freeze quantities are not in the dump; pass them
(by options name) if known, else ``freeze_qty`` stays None.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections.abc import Mapping
from datetime import date

from mental_trader.brokers.kite.errors import KiteProtocolError
from mental_trader.models import Instrument
from mental_trader.options.manager import INDEX_OPTION_NAMES

__all__ = ["DUMP_COLUMNS", "parse_instruments", "underlying_symbol"]

log = logging.getLogger(__name__)

#: The columns of Kite's instrument dump (order as Kite sends them).
DUMP_COLUMNS = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)
_REQUIRED = frozenset(DUMP_COLUMNS) - {"exchange_token", "last_price"}
#: Derivatives exchange → the cash exchange its underlyings are listed on.
_CASH_EXCHANGE = {"NFO": "NSE", "BFO": "BSE"}
_DERIVATIVES = frozenset({"FUT", "CE", "PE"})
_DEFAULT_TICK = 0.05  # Instrument's default tick size


def underlying_symbol(
    exchange: str, name: str, aliases: Mapping[str, str] = INDEX_OPTION_NAMES
) -> str | None:
    """The underlying of a derivative of ``exchange`` whose dump ``name`` is ``name``.

    ``aliases`` maps an index's tradingsymbol to its options name (``"NIFTY 50"`` →
    ``"NIFTY"``); it is inverted here. None for an exchange without a cash market we map
    (MCX, CDS, ...) or an empty name.
    """
    return _underlying(exchange, name, {v: k for k, v in aliases.items()})


def _underlying(exchange: str, name: str, by_options_name: Mapping[str, str]) -> str | None:
    cash = _CASH_EXCHANGE.get(exchange)
    if cash is None or not name:
        return None
    return f"{cash}:{by_options_name.get(name, name)}"


def _decompress(body: bytes) -> str:
    # httpx undoes Content-Encoding: gzip; a body that is still gzip (served as a file) too.
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return body.decode("utf-8-sig")


def parse_instruments(
    body: bytes | str,
    *,
    aliases: Mapping[str, str] = INDEX_OPTION_NAMES,
    freeze_qty: Mapping[str, int] | None = None,
) -> list[Instrument]:
    """Parse an instrument dump (CSV, optionally gzipped) into instruments, in dump order.

    Args:
        body: the response body (bytes, gzip or plain) or the decoded text.
        aliases: index tradingsymbol → options name (see :func:`underlying_symbol`).
        freeze_qty: options/futures name (``"NIFTY"``) → freeze quantity in units, for
            derivatives; absent names keep ``freeze_qty=None``.

    Returns:
        One :class:`Instrument` per well-formed row. A malformed row is skipped (and
        counted in one warning), so one bad line cannot lose the whole master.

    Raises:
        KiteProtocolError: the header lacks a required column (not an instrument dump).
    """
    text = _decompress(body) if isinstance(body, bytes) else body
    reader = csv.DictReader(io.StringIO(text))
    missing = _REQUIRED - set(reader.fieldnames or ())
    if missing:
        raise KiteProtocolError(f"instrument dump lacks column(s) {sorted(missing)}")
    by_options_name = {v: k for k, v in aliases.items()}
    freeze = freeze_qty or {}
    out: list[Instrument] = []
    bad = 0
    for row in reader:
        try:
            out.append(_instrument(row, by_options_name, freeze))
        except (ValueError, TypeError, KeyError):
            bad += 1
    if bad:
        log.warning("instrument dump: skipped %d malformed row(s) of %d", bad, bad + len(out))
    return out


def _instrument(
    row: Mapping[str, str | None], by_options_name: Mapping[str, str], freeze: Mapping[str, int]
) -> Instrument:
    exchange = (row["exchange"] or "").strip()
    tradingsymbol = (row["tradingsymbol"] or "").strip()
    if not exchange or not tradingsymbol:
        raise ValueError("row without exchange or tradingsymbol")
    name = (row["name"] or "").strip()
    instrument_type = (row["instrument_type"] or "").strip()
    expiry_text = (row["expiry"] or "").strip()
    strike = float(row["strike"] or 0)
    is_derivative = instrument_type in _DERIVATIVES
    underlying = _underlying(exchange, name, by_options_name) if is_derivative else None
    return Instrument(
        symbol=f"{exchange}:{tradingsymbol}",
        exchange=exchange,
        tradingsymbol=tradingsymbol,
        instrument_token=int(row["instrument_token"] or ""),
        name=name,
        segment=(row["segment"] or "").strip(),
        instrument_type=instrument_type,
        # Index rows carry 0 for both; our code divides by them, so they get the defaults.
        tick_size=float(row["tick_size"] or 0) or _DEFAULT_TICK,
        lot_size=int(float(row["lot_size"] or 0)) or 1,
        expiry=date.fromisoformat(expiry_text) if expiry_text else None,
        strike=strike if instrument_type in ("CE", "PE") else None,
        underlying=underlying,
        freeze_qty=freeze.get(name) if is_derivative else None,
    )
