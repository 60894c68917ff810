"""Hand-built Kite binary packets and frames for the decoder tests.

Written from the wire layout (MARKET_FACTS §5) with ``struct`` (big-endian, unsigned),
independent of any encoder in the package, so the tests check the decoder against the
protocol rather than against itself.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

# Segments (token & 0xFF) and tokens built as exchange_token * 256 + segment.
NSE, NFO, CDS, BCD, INDICES = 1, 2, 3, 6, 9
INFY = 1594 * 256 + NSE  # 408065
NIFTY_FUT = 13_238 * 256 + NFO
USDINR_FUT = 1_001 * 256 + CDS
BCD_FUT = 77 * 256 + BCD
NIFTY_50 = 1001 * 256 + INDICES  # 256265

DepthLevel = tuple[int, int, int]  # quantity, raw price, orders


def ltp(token: int, price: int) -> bytes:
    """An 8-byte ltp packet."""
    return struct.pack(">II", token, price)


def index_quote(token: int, price: int, high: int, low: int, open_: int, close: int) -> bytes:
    """A 28-byte index quote packet (the wire's own change field set to a decoy)."""
    return struct.pack(">7I", token, price, high, low, open_, close, 999_999)


def index_full(
    token: int, price: int, high: int, low: int, open_: int, close: int, ts: int
) -> bytes:
    """A 32-byte index full packet."""
    return index_quote(token, price, high, low, open_, close) + struct.pack(">I", ts)


def quote(
    token: int,
    price: int,
    *,
    last_qty: int = 0,
    avg: int = 0,
    volume: int = 0,
    buy_qty: int = 0,
    sell_qty: int = 0,
    ohlc: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> bytes:
    """A 44-byte quote packet; ``ohlc`` is (open, high, low, close)."""
    return struct.pack(">11I", token, price, last_qty, avg, volume, buy_qty, sell_qty, *ohlc)


def full(
    quote_packet: bytes,
    *,
    last_trade_ts: int = 0,
    oi: tuple[int, int, int] = (0, 0, 0),
    ts: int = 0,
    bids: Sequence[DepthLevel] = (),
    asks: Sequence[DepthLevel] = (),
) -> bytes:
    """A 184-byte full packet: a quote packet plus the full fields; missing levels empty."""
    assert len(quote_packet) == 44
    levels = [*bids, *[(0, 0, 0)] * (5 - len(bids)), *asks, *[(0, 0, 0)] * (5 - len(asks))]
    depth = b"".join(struct.pack(">IIHH", q, p, o, 0) for q, p, o in levels)
    return quote_packet + struct.pack(">5I", last_trade_ts, *oi, ts) + depth


def frame(*packets: bytes) -> bytes:
    """A binary frame: u16 count, then u16 length + bytes per packet."""
    body = b"".join(struct.pack(">H", len(p)) + p for p in packets)
    return struct.pack(">H", len(packets)) + body
