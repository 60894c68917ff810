"""Historical candles: Kite's intervals, request chunking and candle parsing (pure parts).

Kite serves ``GET /instruments/historical/{token}/{interval}?from=…&to=…`` with ``from``
and ``to`` as IST ``yyyy-mm-dd hh:mm:ss`` (both inclusive) and caps the span of one request
per interval (:data:`MAX_DAYS`). Rows are ``[ts, open, high, low, close, volume(, oi)]`` with
``ts`` like ``2015-12-28T09:15:00+0530``, the candle START. Intraday candles are anchored
at the 09:15 IST open like our bars; a ``day`` candle is stamped at IST midnight and is
re-stamped here at the session open, where :func:`mental_trader.core.build_bars` puts a
daily bucket.

Kite does not report how many trades a candle holds; ``ticks`` is set to 1 for every
candle (it is known to hold at least one trade, and nothing downstream may read more into
it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np

from mental_trader.brokers.kite.errors import KiteProtocolError
from mental_trader.calendar import IST
from mental_trader.errors import InvalidInputError
from mental_trader.storage.base import Candles, dt_to_ns, empty_candles

__all__ = [
    "INTERVALS",
    "MAX_DAYS",
    "chunks",
    "format_ist",
    "parse_candles",
    "parse_kite_ts",
]

#: Bar length in seconds → Kite's interval name.
INTERVALS: dict[int, str] = {
    60: "minute",
    180: "3minute",
    300: "5minute",
    600: "10minute",
    900: "15minute",
    1800: "30minute",
    3600: "60minute",
    86400: "day",
}

#: Kite interval → the most days one request may span (Kite staff, forum 3105).
MAX_DAYS: dict[str, int] = {
    "minute": 60,
    "3minute": 100,
    "5minute": 100,
    "10minute": 100,
    "15minute": 200,
    "30minute": 200,
    "60minute": 400,
    "day": 2000,
}

_NS = 1_000_000_000


def interval_name(interval_s: int) -> str:
    """Kite's name of a bar length in seconds.

    Raises:
        InvalidInputError: not one of :data:`INTERVALS`.
    """
    try:
        return INTERVALS[interval_s]
    except KeyError:
        raise InvalidInputError(
            f"Kite has no {interval_s}s candles; use one of {sorted(INTERVALS)}"
        ) from None


def format_ist(value: datetime) -> str:
    """An aware datetime as Kite's IST ``yyyy-mm-dd hh:mm:ss``.

    Raises:
        InvalidInputError: ``value`` is naive.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"naive datetime {value!r}: give a time zone")
    return value.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


def parse_kite_ts(text: str) -> datetime:
    """Parse Kite's timestamps: ``2015-12-28T09:15:00+0530`` (candles; ``+05:30`` and ``Z``
    also accepted) or an IST ``yyyy-mm-dd hh:mm:ss`` without offset (orders, trades).

    Returns:
        An aware datetime (its own offset, IST for the offset-less form).

    Raises:
        ValueError: not a timestamp.
    """
    text = text.strip()
    # Python 3.11's fromisoformat reads "+05:30" and "Z" but not "+0530".
    if len(text) >= 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=IST)


def chunks(start: datetime, end: datetime, interval: str) -> Iterator[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into request windows of at most :data:`MAX_DAYS` days.

    Yields ``(frm, to)`` pairs to send as Kite's inclusive ``from``/``to``: consecutive
    windows touch without overlapping (``to`` is one second before the next ``frm``), and
    each spans strictly less than the cap. ``start`` and ``end`` must be aware.
    """
    span = timedelta(days=MAX_DAYS[interval])
    one_s = timedelta(seconds=1)
    frm = start
    while frm < end:
        stop = min(frm + span, end)
        yield frm, max(frm, stop - one_s)
        frm = stop


def _session_open_ns(day: date, session_open: time) -> int:
    return dt_to_ns(datetime.combine(day, session_open, tzinfo=IST))


def parse_candles(
    rows: Sequence[Sequence[Any]],
    *,
    interval_s: int,
    start_ns: int,
    end_ns: int,
    now_ns: int,
    session_open: time = time(9, 15),
    session_close: time = time(15, 30),
) -> Candles:
    """Kite candle rows → :data:`~mental_trader.storage.base.Candles` columns.

    Keeps the candles with ``start_ns <= ts < end_ns`` that have CLOSED by ``now_ns``: a
    candle closes at ``ts + interval`` or at the session close of its day, whichever comes
    first (so the 15:15 hourly candle counts as closed at 15:30). Sorted by ``ts``, one
    row per ``ts`` (the last one wins when chunks overlap).

    Raises:
        KiteProtocolError: a row is not ``[ts, o, h, l, c, v, ...]``.
    """
    if not rows:
        return empty_candles()
    n = len(rows)
    ts = np.empty(n, dtype=np.int64)
    close_at = np.empty(n, dtype=np.int64)
    ohlcv = np.empty((n, 5), dtype=np.float64)
    daily = interval_s >= 86_400
    i = 0
    try:
        for i, row in enumerate(rows):
            stamp = parse_kite_ts(str(row[0]))
            day = stamp.astimezone(IST).date()
            t = _session_open_ns(day, session_open) if daily else dt_to_ns(stamp)
            ts[i] = t
            ends = t + interval_s * _NS
            day_close = _session_open_ns(day, session_close)
            # Clamp only candles of the regular session (a muhurat candle runs its length).
            close_at[i] = min(ends, day_close) if t < day_close else ends
            ohlcv[i] = [float(row[k]) for k in range(1, 6)]
    except (ValueError, TypeError, IndexError) as exc:
        raise KiteProtocolError(f"malformed candle row {i}: {exc}") from None
    keep = (ts >= start_ns) & (ts < end_ns) & (close_at <= now_ns)
    ts, ohlcv = ts[keep], ohlcv[keep]
    # Sort by ts and keep the LAST row of each ts (a later chunk wins).
    order = np.argsort(ts, kind="stable")
    ts, ohlcv = ts[order], ohlcv[order]
    last = np.ones(len(ts), dtype=bool)
    last[:-1] = ts[1:] != ts[:-1]
    ts, ohlcv = ts[last], ohlcv[last]
    return {
        "ts": np.ascontiguousarray(ts),
        "open": np.ascontiguousarray(ohlcv[:, 0]),
        "high": np.ascontiguousarray(ohlcv[:, 1]),
        "low": np.ascontiguousarray(ohlcv[:, 2]),
        "close": np.ascontiguousarray(ohlcv[:, 3]),
        "volume": np.ascontiguousarray(ohlcv[:, 4]),
        "ticks": np.ones(len(ts), dtype=np.int64),
    }


def utc_now() -> datetime:
    """The wall clock, aware UTC (the default clock of the client)."""
    return datetime.now(UTC)
