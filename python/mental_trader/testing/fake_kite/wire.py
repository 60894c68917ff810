"""Kite's binary WebSocket market data, ENCODED (the fake's side of the wire).

Layout (MARKET_FACTS.md section 5; all integers big-endian):

* frame: ``uint16`` packet count, then per packet ``uint16`` length + the packet;
* heartbeat: a frame of a single byte (clients skip frames shorter than 2 bytes);
* ltp (8 bytes): token, last price;
* index quote (28) / full (32): token, last, high, low, open, close (previous day), price
  change (last - close; signed), then for full the exchange timestamp (unix s);
* quote (44): token, last, last traded qty, average traded price, volume, total buy qty,
  total sell qty, open, high, low, close (previous day);
* full (184): quote + last trade time, OI, OI day high, OI day low, exchange timestamp
  (unix s), then 10 depth entries of 12 bytes (5 bids then 5 asks): qty int32, price
  int32, orders int16, 2 pad bytes.

Prices are integers in paise (x100); CDS (segment 3) x 10,000,000 and BCD (segment 6)
x 10,000. The index packets are for segment 9 (INDICES) tokens.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Literal

from mental_trader.testing.fake_kite.market import DepthLevel, Snapshot

__all__ = [
    "HEARTBEAT",
    "MODE_LENGTHS",
    "Mode",
    "encode_frame",
    "pack_full",
    "pack_index_full",
    "pack_index_quote",
    "pack_ltp",
    "pack_packet",
    "pack_quote",
    "price_scale",
]

Mode = Literal["ltp", "quote", "full"]
#: Packet lengths by mode (equity / derivative packets).
MODE_LENGTHS: dict[str, int] = {"ltp": 8, "quote": 44, "full": 184}
#: The idle heartbeat: one byte.
HEARTBEAT = b"\x00"
_INDICES = 9
_EMPTY = DepthLevel(0.0, 0, 0)
_NS_PER_S = 1_000_000_000
_U32 = 0xFFFF_FFFF


def price_scale(token: int) -> int:
    """What a price is multiplied by on the wire, by the token's segment."""
    segment = token & 0xFF
    if segment == 3:
        return 10_000_000
    if segment == 6:
        return 10_000
    return 100


def _p(value: float, scale: int) -> int:
    return min(max(round(value * scale), 0), _U32)


def _u(value: float) -> int:
    return min(max(int(value), 0), _U32)


def pack_ltp(token: int, snap: Snapshot) -> bytes:
    """The 8-byte ltp packet."""
    return struct.pack(">II", token, _p(snap.last_price, price_scale(token)))


def pack_index_quote(token: int, snap: Snapshot) -> bytes:
    """The 28-byte index quote packet."""
    s = price_scale(token)
    change = round((snap.last_price - snap.close) * s) if snap.close else 0
    return struct.pack(
        ">IIIIIIi",
        token,
        _p(snap.last_price, s),
        _p(snap.high, s),
        _p(snap.low, s),
        _p(snap.open, s),
        _p(snap.close, s),
        change,
    )


def pack_index_full(token: int, snap: Snapshot) -> bytes:
    """The 32-byte index full packet (the quote packet + exchange timestamp)."""
    return pack_index_quote(token, snap) + struct.pack(">I", snap.timestamp_ns // _NS_PER_S)


def pack_quote(token: int, snap: Snapshot) -> bytes:
    """The 44-byte quote packet."""
    s = price_scale(token)
    return struct.pack(
        ">11I",
        token,
        _p(snap.last_price, s),
        _u(snap.last_quantity),
        _p(snap.average_price, s),
        _u(snap.volume),
        _u(snap.buy_quantity),
        _u(snap.sell_quantity),
        _p(snap.open, s),
        _p(snap.high, s),
        _p(snap.low, s),
        _p(snap.close, s),
    )


def _levels(levels: Sequence[DepthLevel]) -> list[DepthLevel]:
    return [*levels[:5], *([_EMPTY] * (5 - min(len(levels), 5)))]


def pack_full(token: int, snap: Snapshot) -> bytes:
    """The 184-byte full packet (quote + times, OI and five levels of depth)."""
    s = price_scale(token)
    head = pack_quote(token, snap) + struct.pack(
        ">5I",
        snap.last_trade_ns // _NS_PER_S,
        _u(snap.oi),
        _u(snap.oi),
        _u(snap.oi),
        snap.timestamp_ns // _NS_PER_S,
    )
    depth = b"".join(
        struct.pack(">IIH2x", _u(level.quantity), _p(level.price, s), min(level.orders, 0xFFFF))
        for level in (*_levels(snap.buy), *_levels(snap.sell))
    )
    return head + depth


def pack_packet(mode: Mode, token: int, snap: Snapshot) -> bytes:
    """The packet of ``token`` in ``mode`` (index tokens get index packets in quote/full)."""
    if mode == "ltp":
        return pack_ltp(token, snap)
    if token & 0xFF == _INDICES:
        return pack_index_full(token, snap) if mode == "full" else pack_index_quote(token, snap)
    return pack_full(token, snap) if mode == "full" else pack_quote(token, snap)


def encode_frame(packets: Sequence[bytes]) -> bytes:
    """One binary WebSocket message carrying ``packets`` (at most 65,535)."""
    if len(packets) > 0xFFFF:
        raise ValueError(f"a frame carries at most 65535 packets, got {len(packets)}")
    parts = [struct.pack(">H", len(packets))]
    for packet in packets:
        parts.append(struct.pack(">H", len(packet)))
        parts.append(packet)
    return b"".join(parts)
