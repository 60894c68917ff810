"""Golden tests of the Kite binary frame decoder: hand-built frames for every layout and
segment, the public kiteconnect-mocks packets, the columns view and the framing rule."""

from __future__ import annotations

import base64
import os
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import numpy as np
import pytest

import mental_trader.brokers.kite as kite
from mental_trader.brokers.kite import KiteTicks, decode_frame, decode_ticks
from mental_trader.brokers.kite.decode import MODE_FULL, MODE_LTP, MODE_QUOTE
from mental_trader.calendar import IST
from mental_trader.errors import InvalidInputError

from ._frames import (
    BCD_FUT,
    INFY,
    NIFTY_50,
    NIFTY_FUT,
    USDINR_FUT,
    frame,
    full,
    index_full,
    index_quote,
    ltp,
    quote,
)

# 2026-11-23 09:15:00 IST in Unix seconds.
OPEN_S = 1_795_405_500
OPEN = datetime(2026, 11, 23, 9, 15, tzinfo=IST)

FUT_QUOTE = quote(
    NIFTY_FUT,
    2_450_005,
    last_qty=75,
    avg=2_449_000,
    volume=1_234_500,
    buy_qty=600,
    sell_qty=825,
    ohlc=(2_440_000, 2_460_000, 2_430_000, 2_400_000),
)
FUT_BIDS = [(75, 2_450_000, 1), (150, 2_449_995, 2), (225, 2_449_990, 3), (300, 2_449_985, 4)]
FUT_ASKS = [(75 * i, 2_450_005 + 5 * i, i) for i in range(1, 6)]
FUT_FULL = full(
    FUT_QUOTE,
    last_trade_ts=OPEN_S + 1,
    oi=(9_000_000, 9_100_000, 8_900_000),
    ts=OPEN_S + 2,
    bids=FUT_BIDS,
    asks=FUT_ASKS,
)
FUT_QUOTE_FIELDS = {
    "tradable": True,
    "mode": "quote",
    "instrument_token": NIFTY_FUT,
    "last_price": 24_500.05,
    "last_traded_quantity": 75,
    "average_traded_price": 24_490.0,
    "volume_traded": 1_234_500,
    "total_buy_quantity": 600,
    "total_sell_quantity": 825,
    "ohlc": {"open": 24_400.0, "high": 24_600.0, "low": 24_300.0, "close": 24_000.0},
    "change": (24_500.05 - 24_000.0) * 100 / 24_000.0,
}


def test_ltp_packet() -> None:
    (tick,) = decode_frame(frame(ltp(INFY, 157_370)))
    assert tick == {
        "tradable": True,
        "mode": "ltp",
        "instrument_token": 408_065,
        "last_price": 1573.7,
    }
    assert list(tick) == ["tradable", "mode", "instrument_token", "last_price"]


@pytest.mark.parametrize(
    ("token", "raw", "price", "tradable"),
    [
        pytest.param(INFY, 157_370, 1573.7, True, id="nse/100"),
        pytest.param(NIFTY_FUT, 2_450_005, 24_500.05, True, id="nfo/100"),
        pytest.param(USDINR_FUT, 834_512_345, 83.4512345, True, id="cds/1e7"),
        pytest.param(BCD_FUT, 834_512, 83.4512, True, id="bcd/1e4"),
        pytest.param(77 * 256 + 12, 834_512, 83.4512, True, id="nco/1e4"),
        pytest.param(77 * 256 + 7, 834_512, 8_345.12, True, id="mcx/100"),
        pytest.param(NIFTY_50, 2_450_005, 24_500.05, False, id="indices/100"),
    ],
)
def test_price_divisor_and_tradable_by_segment(
    token: int, raw: int, price: float, tradable: bool
) -> None:
    (tick,) = decode_frame(frame(ltp(token, raw)))
    assert tick["last_price"] == price
    assert tick["tradable"] is tradable
    cols = decode_ticks(frame(ltp(token, raw)))
    assert cols.last_price.tolist() == [price]


def test_index_quote_packet() -> None:
    (tick,) = decode_frame(
        frame(index_quote(NIFTY_50, 2_450_000, 2_460_000, 2_430_000, 2_440_000, 2_400_000))
    )
    assert tick == {
        "tradable": False,
        "mode": "quote",
        "instrument_token": 256_265,
        "last_price": 24_500.0,
        "ohlc": {"high": 24_600.0, "low": 24_300.0, "open": 24_400.0, "close": 24_000.0},
        # Percent against the previous close; the packet's own change field (a decoy) is ignored.
        "change": 500.0 * 100 / 24_000.0,
    }
    assert list(tick["ohlc"]) == ["high", "low", "open", "close"]


def test_index_full_packet() -> None:
    data = frame(
        index_full(NIFTY_50, 2_450_000, 2_460_000, 2_430_000, 2_440_000, 2_400_000, OPEN_S)
    )
    (tick,) = decode_frame(data)
    assert tick["mode"] == "full"
    assert tick["exchange_timestamp"] == OPEN
    assert tick["exchange_timestamp"].utcoffset().total_seconds() == 19_800
    assert list(tick) == [
        "tradable", "mode", "instrument_token", "last_price", "ohlc", "change", "exchange_timestamp"
    ]  # fmt: skip
    assert "last_trade_time" not in tick
    assert "volume_traded" not in tick


def test_quote_packet() -> None:
    (tick,) = decode_frame(frame(FUT_QUOTE))
    assert tick == FUT_QUOTE_FIELDS
    assert list(tick) == list(FUT_QUOTE_FIELDS)
    assert list(tick["ohlc"]) == ["open", "high", "low", "close"]


def test_full_packet() -> None:
    (tick,) = decode_frame(frame(FUT_FULL))
    expected = {
        **FUT_QUOTE_FIELDS,
        "mode": "full",
        "last_trade_time": datetime(2026, 11, 23, 9, 15, 1, tzinfo=IST),
        "oi": 9_000_000,
        "oi_day_high": 9_100_000,
        "oi_day_low": 8_900_000,
        "exchange_timestamp": datetime(2026, 11, 23, 9, 15, 2, tzinfo=IST),
        "depth": {
            "buy": [
                {"quantity": 75, "price": 24_500.0, "orders": 1},
                {"quantity": 150, "price": 24_499.95, "orders": 2},
                {"quantity": 225, "price": 24_499.9, "orders": 3},
                {"quantity": 300, "price": 24_499.85, "orders": 4},
                {"quantity": 0, "price": 0.0, "orders": 0},
            ],
            "sell": [
                {"quantity": 75, "price": 24_500.1, "orders": 1},
                {"quantity": 150, "price": 24_500.15, "orders": 2},
                {"quantity": 225, "price": 24_500.2, "orders": 3},
                {"quantity": 300, "price": 24_500.25, "orders": 4},
                {"quantity": 375, "price": 24_500.3, "orders": 5},
            ],
        },
    }
    assert tick == expected
    assert list(tick) == list(expected)
    assert all(isinstance(tick[k], int) for k in ("volume_traded", "oi", "last_traded_quantity"))


def test_full_packet_cds_divides_depth_prices_too() -> None:
    q = quote(USDINR_FUT, 834_512_500, ohlc=(834_000_000, 835_000_000, 833_000_000, 833_500_000))
    data = frame(full(q, bids=[(1, 834_500_000, 1)], asks=[(2, 834_525_000, 1)]))
    (tick,) = decode_frame(data)
    assert tick["last_price"] == 83.45125
    assert tick["ohlc"]["close"] == 83.35
    assert tick["depth"]["buy"][0]["price"] == 83.45
    assert tick["depth"]["sell"][0]["price"] == 83.4525


def test_change_is_zero_when_close_is_zero() -> None:
    ticks = decode_frame(frame(quote(INFY, 157_370), index_quote(NIFTY_50, 1, 1, 1, 1, 0)))
    assert [t["change"] for t in ticks] == [0.0, 0.0]


def test_multi_packet_frame_keeps_order() -> None:
    packets = [
        ltp(INFY, 157_370),
        FUT_FULL,
        index_quote(NIFTY_50, 2_450_000, 2_460_000, 2_430_000, 2_440_000, 2_400_000),
        FUT_QUOTE,
        index_full(NIFTY_50, 2_450_100, 2_460_000, 2_430_000, 2_440_000, 2_400_000, OPEN_S),
    ]
    ticks = decode_frame(frame(*packets))
    assert [(t["instrument_token"], t["mode"]) for t in ticks] == [
        (INFY, "ltp"),
        (NIFTY_FUT, "full"),
        (NIFTY_50, "quote"),
        (NIFTY_FUT, "quote"),
        (NIFTY_50, "full"),
    ]
    assert [decode_frame(frame(p))[0] for p in packets] == ticks


@pytest.mark.parametrize(
    "data", [b"", b"\x00", b"\x07", b"\x00\x00"], ids=["0", "1", "1b", "count0"]
)
def test_heartbeats_and_empty_frames(data: bytes) -> None:
    assert decode_frame(data) == []
    cols = decode_ticks(data)
    assert all(len(c) == 0 for c in cols)


# kiteconnect-mocks (github.com/zerodha/kiteconnect-mocks, commit c7a8123 of 2026-03-25):
# ticker_full.packet and ticker_quote.packet, base64 of one packet without the frame header.
# Expected values from ticker_full.json / ticker_quote.json, renamed to pykiteconnect's keys.
MOCK_FULL = (
    "AAY6AQACZroAAAAHAAJlbQASMhcAA+m7AAWKAQACZPMAAmc8AAJhyQACZGxg4pR/AAAAAAAAAAAAAAAAYOKUfwAAAAUA"
    "AmacAAEAAAAAAIwAAmZ0AAIAAAAAAAIAAmZvAAEAAAAAANsAAmZqAAcAAAAAADIAAmZlAAEAAAAAAKwAAma6AAMAAAAA"
    "ACwAAma/AAMAAAAAAS4AAmbJAAMAAAAAAI0AAmbOAAIAAAAAAtQAAmbTAAUAAA=="
)
MOCK_QUOTE = "AAY6AQACZoMAAAABAAJlaQAR8bIAA+n/AAWANwACZPMAAmc8AAJhyQACZGw="
MOCK_OHLC = {"open": 1569.15, "high": 1575.0, "low": 1561.05, "close": 1567.8}


def _mock_frame(b64: str) -> bytes:
    packet = base64.b64decode(b64)
    return struct.pack(">HH", 1, len(packet)) + packet


def test_kiteconnect_mocks_full_packet() -> None:
    data = _mock_frame(MOCK_FULL)
    assert len(data) == 4 + 184
    (tick,) = decode_frame(data)
    at = datetime.fromisoformat("2021-07-05T10:41:27+05:30")
    levels = lambda rows: [{"price": p, "quantity": q, "orders": o} for p, q, o in rows]  # noqa: E731
    expected = {
        "tradable": True,
        "mode": "full",
        "instrument_token": 408_065,
        "last_price": 1573.7,
        "last_traded_quantity": 7,
        "average_traded_price": 1570.37,
        "volume_traded": 1_192_471,
        "total_buy_quantity": 256_443,
        "total_sell_quantity": 363_009,
        "ohlc": MOCK_OHLC,
        "change": (1573.7 - 1567.8) * 100 / 1567.8,
        "last_trade_time": at,
        "oi": 0,
        "oi_day_high": 0,
        "oi_day_low": 0,
        "exchange_timestamp": at,
        "depth": {
            "buy": levels(
                [
                    (1573.4, 5, 1),
                    (1573.0, 140, 2),
                    (1572.95, 2, 1),
                    (1572.9, 219, 7),
                    (1572.85, 50, 1),
                ]
            ),
            "sell": levels(
                [
                    (1573.7, 172, 3),
                    (1573.75, 44, 3),
                    (1573.85, 302, 3),
                    (1573.9, 141, 2),
                    (1573.95, 724, 5),
                ]
            ),
        },
    }
    assert tick == expected
    # The mock's "change" is absolute points (gokiteconnect's NetChange): 5.9.
    assert tick["change"] * 1567.8 / 100 == pytest.approx(5.9, abs=1e-9)
    cols = decode_ticks(data)
    assert cols.bid.tolist() == [1573.4]
    assert cols.ask.tolist() == [1573.7]
    assert cols.exchange_ts_ns.tolist() == [int(at.timestamp()) * 1_000_000_000]


def test_kiteconnect_mocks_quote_packet() -> None:
    data = _mock_frame(MOCK_QUOTE)
    assert len(data) == 4 + 44
    (tick,) = decode_frame(data)
    # ticker_quote.json's "change" (5.9) was copied from the full mock and does not match
    # its own prices, so change is checked against pykiteconnect's formula instead.
    assert tick == {
        "tradable": True,
        "mode": "quote",
        "instrument_token": 408_065,
        "last_price": 1573.15,
        "last_traded_quantity": 1,
        "average_traded_price": 1570.33,
        "volume_traded": 1_175_986,
        "total_buy_quantity": 256_511,
        "total_sell_quantity": 360_503,
        "ohlc": MOCK_OHLC,
        "change": (1573.15 - 1567.8) * 100 / 1567.8,
    }


def test_ticks_columns() -> None:
    data = frame(
        ltp(INFY, 157_370),
        FUT_FULL,
        index_full(NIFTY_50, 2_450_100, 2_460_000, 2_430_000, 2_440_000, 2_400_000, OPEN_S),
        FUT_QUOTE,
        full(FUT_QUOTE, oi=(5, 6, 4)),  # empty book on both sides
    )
    cols = decode_ticks(data)
    assert isinstance(cols, KiteTicks)
    dtypes = {
        "token": np.int64,
        "mode": np.uint8,
        "exchange_ts_ns": np.int64,
        "last_trade_ns": np.int64,
    }
    for name, arr in cols._asdict().items():
        assert arr.dtype == dtypes.get(name, np.float64), name
        assert arr.ndim == 1
        assert arr.flags.c_contiguous
        assert len(arr) == 5
    ns = 1_000_000_000
    nan = float("nan")
    assert cols.token.tolist() == [INFY, NIFTY_FUT, NIFTY_50, NIFTY_FUT, NIFTY_FUT]
    assert cols.mode.tolist() == [MODE_LTP, MODE_FULL, MODE_FULL, MODE_QUOTE, MODE_FULL]
    assert cols.last_price.tolist() == [1573.7, 24_500.05, 24_501.0, 24_500.05, 24_500.05]
    assert cols.volume.tolist() == [0.0, 1_234_500.0, 0.0, 1_234_500.0, 1_234_500.0]
    assert cols.exchange_ts_ns.tolist() == [0, (OPEN_S + 2) * ns, OPEN_S * ns, 0, 0]
    assert cols.last_trade_ns.tolist() == [0, (OPEN_S + 1) * ns, 0, 0, 0]
    np.testing.assert_array_equal(cols.bid, [nan, 24_500.0, nan, nan, nan])
    np.testing.assert_array_equal(cols.ask, [nan, 24_500.1, nan, nan, nan])
    np.testing.assert_array_equal(cols.oi, [nan, 9_000_000.0, nan, nan, 5.0])


def test_unknown_packet_lengths_are_skipped_and_trailing_bytes_ignored() -> None:
    data = frame(b"\x01\x02\x03", ltp(INFY, 100), b"", bytes(50), ltp(NIFTY_50, 200)) + b"junk"
    assert [t["last_price"] for t in decode_frame(data)] == [1.0, 2.0]
    assert decode_ticks(data).token.tolist() == [INFY, NIFTY_50]


@pytest.mark.parametrize("cut", [1, 2, 10, 100, 183])
def test_truncated_frame_raises(cut: int) -> None:
    good = frame(ltp(INFY, 100), FUT_FULL)
    bad = good[: len(good) - cut]
    for decode in (decode_frame, decode_ticks):
        with pytest.raises(InvalidInputError, match="kite frame truncated"):
            decode(bad)


def test_count_or_length_past_the_end_raises() -> None:
    more = struct.pack(">H", 3) + frame(ltp(INFY, 100), ltp(INFY, 200))[2:]
    with pytest.raises(InvalidInputError, match="packet 2 of 3 has no length"):
        decode_frame(more)
    long = struct.pack(">HH", 1, 184) + FUT_QUOTE
    with pytest.raises(ValueError, match="packet 0 of 1 needs 184 bytes at byte 4, 44 left"):
        decode_ticks(long)


def test_non_bytes_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        decode_frame("\x00\x00")  # type: ignore[arg-type]


@contextmanager
def host_tz(name: str) -> Iterator[None]:
    """Run with the process's local zone set to ``name``."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_timestamps_do_not_depend_on_the_host_zone() -> None:
    data = frame(FUT_FULL)
    seen = []
    for name in ("UTC", "America/New_York", "Asia/Kolkata"):
        with host_tz(name):
            (tick,) = decode_frame(data)
            seen.append(
                (tick["exchange_timestamp"].isoformat(), tick["last_trade_time"].isoformat())
            )
    assert seen == [("2026-11-23T09:15:02+05:30", "2026-11-23T09:15:01+05:30")] * 3


def test_frames_share_nothing_mutable() -> None:
    data = frame(FUT_FULL, FUT_FULL)
    a, b = decode_frame(data)
    a["depth"]["buy"][0]["price"] = -1.0
    a["ohlc"]["close"] = -1.0
    del a["oi"]
    assert b["depth"]["buy"][0]["price"] == 24_500.0
    assert b["ohlc"]["close"] == 24_000.0
    again = decode_frame(data)[0]
    assert again["ohlc"]["close"] == 24_000.0
    assert again["oi"] == 9_000_000


def test_package_exports() -> None:
    assert {"KiteTicks", "decode_frame", "decode_ticks"} <= set(kite.__all__)
    assert kite.decode_frame is decode_frame
