"""Historical candles, pure parts: timestamps, IST formatting, chunking, candle parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from mental_trader.brokers.kite.errors import KiteProtocolError
from mental_trader.brokers.kite.history import (
    INTERVALS,
    MAX_DAYS,
    chunks,
    format_ist,
    interval_name,
    parse_candles,
    parse_kite_ts,
)
from mental_trader.calendar import IST
from mental_trader.errors import InvalidInputError
from mental_trader.storage.base import CANDLE_COLUMNS, dt_to_ns

NS = 1_000_000_000


def test_parse_kite_ts_offset_without_colon() -> None:
    got = parse_kite_ts("2015-12-28T09:15:00+0530")
    assert got == datetime(2015, 12, 28, 3, 45, tzinfo=UTC)
    assert got.utcoffset() == timedelta(hours=5, minutes=30)
    assert parse_kite_ts("2015-12-28T09:15:00+05:30") == got
    assert parse_kite_ts("2015-12-28T03:45:00Z") == got
    assert parse_kite_ts("2015-12-28T03:45:00-0000") == got


def test_parse_kite_ts_ist_string() -> None:
    got = parse_kite_ts("2021-05-31 09:18:57")
    assert got == datetime(2021, 5, 31, 3, 48, 57, tzinfo=UTC)
    assert got.tzinfo is not None


def test_parse_kite_ts_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="Invalid isoformat"):
        parse_kite_ts("yesterday")


def test_format_ist() -> None:
    assert format_ist(datetime(2026, 3, 10, 3, 45, tzinfo=UTC)) == "2026-03-10 09:15:00"
    ny = timezone(timedelta(hours=-5))
    assert format_ist(datetime(2026, 3, 9, 22, 45, 30, tzinfo=ny)) == "2026-03-10 09:15:30"
    with pytest.raises(InvalidInputError):
        format_ist(datetime(2026, 3, 10, 9, 15))  # naive on purpose


def test_interval_names() -> None:
    assert interval_name(60) == "minute"
    assert interval_name(86400) == "day"
    assert set(INTERVALS.values()) == set(MAX_DAYS)
    with pytest.raises(InvalidInputError, match="120s"):
        interval_name(120)


@pytest.mark.parametrize("interval", list(MAX_DAYS))
def test_chunks_cover_range_within_caps(interval: str) -> None:
    start = datetime(2020, 1, 1, 9, 15, tzinfo=IST)
    end = start + timedelta(days=MAX_DAYS[interval] * 3 + 7, hours=5)
    windows = list(chunks(start, end, interval))
    assert len(windows) == 4
    cap = timedelta(days=MAX_DAYS[interval])
    assert windows[0][0] == start
    for (frm, to), nxt in zip(windows, [*windows[1:], None], strict=True):
        assert to - frm < cap  # strictly inside the per-request span
        assert frm <= to
        if nxt is not None:
            assert nxt[0] - to == timedelta(seconds=1)  # touching, no overlap, no gap
    assert windows[-1][1] == end - timedelta(seconds=1)


def test_chunks_exact_multiple_and_small() -> None:
    start = datetime(2026, 1, 1, tzinfo=IST)
    windows = list(chunks(start, start + timedelta(days=120), "minute"))
    assert windows == [
        (start, start + timedelta(days=60) - timedelta(seconds=1)),
        (start + timedelta(days=60), start + timedelta(days=120) - timedelta(seconds=1)),
    ]
    assert list(chunks(start, start, "minute")) == []
    one = list(chunks(start, start + timedelta(minutes=5), "minute"))
    assert one == [(start, start + timedelta(minutes=5) - timedelta(seconds=1))]


def _row(ts: str, base: float) -> list[object]:
    return [ts, base, base + 2, base - 1, base + 1, 1000]


def test_parse_candles_minute() -> None:
    rows = [
        _row("2026-03-10T09:15:00+0530", 100),
        _row("2026-03-10T09:16:00+0530", 101),
        _row("2026-03-10T09:17:00+0530", 102),  # forming at now = 09:17:30
    ]
    start = datetime(2026, 3, 10, 9, 15, tzinfo=IST)
    now = datetime(2026, 3, 10, 9, 17, 30, tzinfo=IST)
    got = parse_candles(
        rows, interval_s=60, start_ns=dt_to_ns(start), end_ns=dt_to_ns(now), now_ns=dt_to_ns(now)
    )
    assert set(got) == set(CANDLE_COLUMNS)
    for name, dtype in CANDLE_COLUMNS.items():
        assert got[name].dtype == dtype
    assert got["ts"].tolist() == [dt_to_ns(start), dt_to_ns(start) + 60 * NS]
    assert got["ts"][0] == dt_to_ns(datetime(2026, 3, 10, 3, 45, tzinfo=UTC))
    assert got["open"].tolist() == [100, 101]
    assert got["high"].tolist() == [102, 103]
    assert got["low"].tolist() == [99, 100]
    assert got["close"].tolist() == [101, 102]
    assert got["volume"].tolist() == [1000, 1000]
    assert got["ticks"].tolist() == [1, 1]


def test_parse_candles_drops_forming_keeps_closed_at_boundary() -> None:
    rows = [_row("2026-03-10T09:15:00+0530", 100), _row("2026-03-10T09:16:00+0530", 101)]
    t0 = dt_to_ns(datetime(2026, 3, 10, 9, 15, tzinfo=IST))
    # now exactly at the second candle's end: closed, kept.
    got = parse_candles(rows, interval_s=60, start_ns=t0, end_ns=t0 + 10**12, now_ns=t0 + 120 * NS)
    assert len(got["ts"]) == 2
    # one ns earlier: the second is still forming.
    got = parse_candles(
        rows, interval_s=60, start_ns=t0, end_ns=t0 + 10**12, now_ns=t0 + 120 * NS - 1
    )
    assert got["ts"].tolist() == [t0]


def test_parse_candles_range_sort_and_dedup() -> None:
    rows = [
        _row("2026-03-10T09:17:00+0530", 3),
        _row("2026-03-10T09:15:00+0530", 1),
        _row("2026-03-10T09:16:00+0530", 2),
        _row("2026-03-10T09:16:00+0530", 22),  # a later chunk repeats a candle: last wins
        _row("2026-03-10T09:18:00+0530", 4),  # at end: excluded (end is exclusive)
    ]
    t0 = dt_to_ns(datetime(2026, 3, 10, 9, 15, tzinfo=IST))
    got = parse_candles(
        rows, interval_s=60, start_ns=t0 + 60 * NS, end_ns=t0 + 180 * NS, now_ns=t0 + 10**13
    )
    assert got["ts"].tolist() == [t0 + 60 * NS, t0 + 120 * NS]
    assert got["open"].tolist() == [22, 3]


def test_parse_candles_hourly_last_candle_closes_at_session_end() -> None:
    rows = [_row("2026-03-10T14:15:00+0530", 1), _row("2026-03-10T15:15:00+0530", 2)]
    t = dt_to_ns(datetime(2026, 3, 10, 15, 15, tzinfo=IST))
    close = dt_to_ns(datetime(2026, 3, 10, 15, 30, tzinfo=IST))
    got = parse_candles(rows, interval_s=3600, start_ns=0, end_ns=close, now_ns=close)
    assert got["ts"].tolist() == [t - 3600 * NS, t]
    got = parse_candles(rows, interval_s=3600, start_ns=0, end_ns=close, now_ns=close - NS)
    assert got["ts"].tolist() == [t - 3600 * NS]


def test_parse_candles_daily_restamped_at_session_open() -> None:
    rows = [_row("2026-03-09T00:00:00+0530", 1), _row("2026-03-10T00:00:00+0530", 2)]
    open9 = dt_to_ns(datetime(2026, 3, 9, 9, 15, tzinfo=IST))
    open10 = dt_to_ns(datetime(2026, 3, 10, 9, 15, tzinfo=IST))
    during = dt_to_ns(datetime(2026, 3, 10, 12, 0, tzinfo=IST))
    got = parse_candles(rows, interval_s=86400, start_ns=0, end_ns=during, now_ns=during)
    assert got["ts"].tolist() == [open9]  # today's daily candle is still forming
    after = dt_to_ns(datetime(2026, 3, 10, 15, 30, tzinfo=IST))
    got = parse_candles(rows, interval_s=86400, start_ns=0, end_ns=after, now_ns=after)
    assert got["ts"].tolist() == [open9, open10]


def test_parse_candles_empty_and_malformed() -> None:
    got = parse_candles([], interval_s=60, start_ns=0, end_ns=1, now_ns=1)
    assert all(len(col) == 0 for col in got.values())
    assert got["ts"].dtype == np.int64
    with pytest.raises(KiteProtocolError, match="row 1"):
        parse_candles(
            [_row("2026-03-10T09:15:00+0530", 1), ["2026-03-10T09:16:00+0530", 1, 2]],
            interval_s=60,
            start_ns=0,
            end_ns=1,
            now_ns=1,
        )
    with pytest.raises(KiteProtocolError):
        parse_candles([_row("not a time", 1)], interval_s=60, start_ns=0, end_ns=1, now_ns=1)
