"""The fake's instrument master: Kite-style tokens and the gzipped CSV dump.

Tokens follow Kite's rule ``instrument_token = exchange_token * 256 + segment`` (segment
NSE 1, NFO 2, INDICES 9). A few well-known symbols keep their real exchange tokens (INFY
1594, so 408065; NIFTY 50 1001, so 256265); every other symbol gets one derived from a
stable hash of its name, so a symbol keeps its token for the server's life and across
runs. The listing is the sim broker's: the watchlist, the NIFTY 50 index and the option
contracts listed on the session day.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from dataclasses import dataclass

from mental_trader.brokers.sim.market import is_index_symbol, stable_seed
from mental_trader.models import Instrument

__all__ = [
    "CSV_COLUMNS",
    "SEGMENT_IDS",
    "KiteInstrument",
    "TokenRegistry",
    "dump_csv_gz",
]

#: The instrument dump's columns, in Kite's order.
CSV_COLUMNS = (
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
#: Kite's segment ids (``instrument_token & 0xFF``).
SEGMENT_IDS = {"NSE": 1, "NFO": 2, "CDS": 3, "BSE": 4, "BFO": 5, "BCD": 6, "MCX": 7, "INDICES": 9}
# real exchange tokens of a few names, so familiar tokens show up in tests and demos
_KNOWN_EXCHANGE_TOKENS = {
    "NSE:INFY": 1594,
    "NSE:RELIANCE": 2885,
    "NSE:ICICIBANK": 4963,
    "NSE:SBIN": 3045,
    "NSE:TCS": 11536,
    "NSE:HDFCBANK": 1333,
    "NSE:NIFTY 50": 1001,
    "NSE:NIFTY BANK": 1016,
}
_MAX_EXCHANGE_TOKEN = 1 << 24  # token = exchange_token * 256 + segment must fit in uint32


@dataclass(frozen=True, slots=True)
class KiteInstrument:
    """One row of the fake's dump, with the sim instrument behind it."""

    instrument: Instrument
    instrument_token: int
    exchange_token: int
    segment: str

    @property
    def symbol(self) -> str:
        """Exchange-qualified symbol (``NSE:INFY``)."""
        return self.instrument.symbol

    @property
    def is_index(self) -> bool:
        """Whether this is an index (segment INDICES: not tradable, no volume)."""
        return self.segment == "INDICES"

    def csv_row(self) -> list[str]:
        """The row in :data:`CSV_COLUMNS` order, formatted as Kite's dump formats it."""
        inst = self.instrument
        strike = inst.strike if inst.strike is not None else 0.0
        return [
            str(self.instrument_token),
            str(self.exchange_token),
            inst.tradingsymbol,
            inst.name,
            "0.0",  # Kite's dump is made before the open: last_price is not live
            inst.expiry.isoformat() if inst.expiry is not None else "",
            repr(float(strike)),
            repr(float(inst.tick_size)),
            "0" if self.is_index else str(inst.lot_size),
            "EQ" if self.is_index else inst.instrument_type,
            self.segment,
            inst.exchange,
        ]


def _segment(inst: Instrument) -> str:
    if is_index_symbol(inst.symbol):
        return "INDICES"
    if inst.exchange == "NFO":
        return "NFO-OPT" if inst.instrument_type in ("CE", "PE") else "NFO-FUT"
    return inst.exchange


class TokenRegistry:
    """Symbol <-> token, stable for the registry's life (first come keeps a token)."""

    def __init__(self) -> None:
        self._by_symbol: dict[str, KiteInstrument] = {}
        self._by_token: dict[int, KiteInstrument] = {}
        self._by_key: dict[str, KiteInstrument] = {}  # "EXCHANGE:TRADINGSYMBOL"

    def add(self, inst: Instrument) -> KiteInstrument:
        """Register ``inst`` (idempotent) and return its row."""
        found = self._by_symbol.get(inst.symbol)
        if found is not None:
            return found
        segment = _segment(inst)
        seg_id = SEGMENT_IDS["INDICES" if segment == "INDICES" else inst.exchange]
        exch = _KNOWN_EXCHANGE_TOKENS.get(inst.symbol)
        if exch is None or exch * 256 + seg_id in self._by_token:
            exch = 100_000 + stable_seed("fake-kite-token", inst.symbol) % 8_000_000
            while exch * 256 + seg_id in self._by_token:  # a hash collision: probe on
                exch = (exch + 1) % _MAX_EXCHANGE_TOKEN
        row = KiteInstrument(inst, exch * 256 + seg_id, exch, segment)
        self._by_symbol[inst.symbol] = row
        self._by_token[row.instrument_token] = row
        self._by_key[f"{inst.exchange}:{inst.tradingsymbol}"] = row
        return row

    def add_all(self, instruments: Iterable[Instrument]) -> list[KiteInstrument]:
        """Register every instrument, in order."""
        return [self.add(inst) for inst in instruments]

    def by_token(self, token: int) -> KiteInstrument | None:
        """The row of ``token``, if known."""
        return self._by_token.get(token)

    def by_symbol(self, symbol: str) -> KiteInstrument | None:
        """The row of an exchange-qualified symbol (``NSE:INFY``; ``NFO:NIFTY...``)."""
        return self._by_symbol.get(symbol)

    def by_key(self, exchange: str, tradingsymbol: str) -> KiteInstrument | None:
        """The row of Kite's ``exchange`` + ``tradingsymbol``."""
        return self._by_key.get(f"{exchange}:{tradingsymbol}")


def dump_csv_gz(rows: Iterable[KiteInstrument]) -> bytes:
    """The gzipped CSV of ``rows`` with Kite's header."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(row.csv_row())
    return gzip.compress(text.getvalue().encode(), mtime=0)
