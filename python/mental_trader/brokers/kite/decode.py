"""Decoding of Kite Connect v3 WebSocket binary frames (the parsing runs in the Rust core).

Two views of the same frame:

* :func:`decode_frame` — one dict per packet with exactly pykiteconnect's field names and
  values (``KiteTicker._parse_binary``), for callers that want Kite's tick shape;
* :func:`decode_ticks` — :class:`KiteTicks`, equal-length numpy columns, for the live feed:
  no Python object per tick, so a :class:`~mental_trader.brokers.base.TickFrame` is a few
  array operations away.

Framing rule (both functions):

* a frame shorter than 2 bytes is a heartbeat: no ticks (``[]`` / empty columns);
* a frame whose packet count or packet lengths run past its end raises
  :class:`~mental_trader.errors.InvalidInputError` (a ``ValueError``) naming the offset;
  nothing of such a frame is returned, so a caller never acts on half a frame;
* a packet whose length is none of 8, 28, 32, 44, 184 is skipped (as the official clients
  do: the server may add layouts);
* bytes after the last declared packet are ignored.

No input can crash the process or raise ``PanicException``: every read is bounds-checked.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from mental_trader._core import decode_kite_frame, decode_kite_ticks

__all__ = ["MODE_FULL", "MODE_LTP", "MODE_QUOTE", "KiteTicks", "decode_frame", "decode_ticks"]

#: :attr:`KiteTicks.mode` codes.
MODE_LTP = 1
MODE_QUOTE = 2
MODE_FULL = 3


class KiteTicks(NamedTuple):
    """The packets of one frame as columns, in frame order (unknown layouts skipped).

    All arrays are 1-D, C-contiguous, of equal length, freshly allocated (the caller owns
    them). A field the packet's layout does not carry is 0 (integers, volume) or NaN.

    Attributes:
        token: int64 instrument tokens (segment = ``token & 0xFF``; 9 = indices).
        mode: uint8 :data:`MODE_LTP` (8-byte packet), :data:`MODE_QUOTE` (44, or 28 for an
            index) or :data:`MODE_FULL` (184, or 32 for an index).
        last_price: float64 last traded price (the index value for an index), divided by
            the segment's divisor like every price here.
        volume: float64 the day's CUMULATIVE traded volume (``volume_traded``); 0 for ltp
            and index packets, which carry none.
        exchange_ts_ns: int64 exchange timestamp, ns UTC; 0 unless full mode (184 or 32).
        last_trade_ns: int64 last trade time, ns UTC; 0 unless full mode (184 bytes).
        bid: float64 best bid (first buy level of the depth); NaN unless full mode (184)
            or when that level is empty (quantity or price 0).
        ask: float64 best ask (first sell level), NaN likewise.
        oi: float64 open interest; NaN unless full mode (184); 0 for instruments without OI.
    """

    token: npt.NDArray[np.int64]
    mode: npt.NDArray[np.uint8]
    last_price: npt.NDArray[np.float64]
    volume: npt.NDArray[np.float64]
    exchange_ts_ns: npt.NDArray[np.int64]
    last_trade_ns: npt.NDArray[np.int64]
    bid: npt.NDArray[np.float64]
    ask: npt.NDArray[np.float64]
    oi: npt.NDArray[np.float64]


def decode_frame(data: bytes) -> list[dict[str, Any]]:
    """Decode a binary frame into pykiteconnect-shaped tick dicts, one per packet.

    The keys and values are those of pykiteconnect 5.2's ``KiteTicker._parse_binary``:

    * every packet: ``tradable`` (False for the indices segment 9), ``mode`` (``"ltp"``,
      ``"quote"``, ``"full"``), ``instrument_token``, ``last_price``;
    * all but ltp: ``ohlc`` (``open``, ``high``, ``low``, ``close`` = previous close) and
      ``change`` (percent of ``last_price`` against ``close``; ``0.0`` when close is 0);
    * quote/full (44/184 bytes): ``last_traded_quantity``, ``average_traded_price``,
      ``volume_traded``, ``total_buy_quantity``, ``total_sell_quantity``;
    * full (184): ``last_trade_time``, ``oi``, ``oi_day_high``, ``oi_day_low``,
      ``exchange_timestamp`` and ``depth`` = ``{"buy": [...], "sell": [...]}``, five
      ``{"quantity", "price", "orders"}`` levels each, best first;
    * index full (32): ``exchange_timestamp``.

    Prices are divided by 10,000,000 for cds (segment 3), 10,000 for bcd (6) and nco (12),
    100 otherwise; quantities are ints.

    Differences from pykiteconnect, on purpose: timestamps are timezone-aware IST
    datetimes (``mental_trader.calendar.IST``) built from the epoch seconds, where
    pykiteconnect builds naive datetimes in the host's zone; ``change`` is always a float
    (pykiteconnect gives the int ``0`` when close is 0; the values compare equal); a broken
    frame raises :class:`~mental_trader.errors.InvalidInputError` where pykiteconnect
    raises ``struct.error`` or returns a partial list.

    Args:
        data: one binary WebSocket message (``bytes``).

    Returns:
        The ticks in frame order; ``[]`` for a heartbeat.

    Raises:
        InvalidInputError: the frame's packets run past its end (see the module docstring).
        TypeError: ``data`` is not ``bytes``.
    """
    return decode_kite_frame(data)


def decode_ticks(data: bytes) -> KiteTicks:
    """Decode a binary frame into :class:`KiteTicks` columns (the live feed's hot path).

    Same framing rule, packets and values as :func:`decode_frame`, without building a
    Python object per tick.

    Args:
        data: one binary WebSocket message (``bytes``).

    Returns:
        The columns; length 0 for a heartbeat.

    Raises:
        InvalidInputError: the frame's packets run past its end (see the module docstring).
        TypeError: ``data`` is not ``bytes``.
    """
    return KiteTicks._make(decode_kite_ticks(data))
