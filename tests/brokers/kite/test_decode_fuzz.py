"""The decoder against pykiteconnect's parser on random valid frames, and fuzzing: random,
truncated and oversized frames return or raise InvalidInputError, never anything else."""

from __future__ import annotations

import math
import os
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kiteconnect import KiteTicker

from mental_trader.brokers.kite import decode_frame, decode_ticks
from mental_trader.brokers.kite.decode import MODE_FULL, MODE_LTP, MODE_QUOTE
from mental_trader.calendar import IST
from mental_trader.errors import InvalidInputError

from ._frames import frame

LAYOUT_LENGTHS = (8, 28, 32, 44, 184)
# nse, nfo, cds, bse, bfo, bcd, mcx, mcxsx, indices, nco; anything else divides by 100.
SEGMENTS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 12)
MODES = {"ltp": MODE_LTP, "quote": MODE_QUOTE, "full": MODE_FULL}
NS = 1_000_000_000


@pytest.fixture(scope="module")
def utc_host() -> Iterator[None]:
    """pykiteconnect builds naive datetimes in the host's zone: pin it to UTC so they
    convert back to the instant exactly."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def reference(data: bytes) -> list[dict[str, Any]]:
    """pykiteconnect 5.2's parser (it uses no instance state)."""
    ticker = KiteTicker.__new__(KiteTicker)
    ticks: list[dict[str, Any]] = ticker._parse_binary(data)
    return ticks


@st.composite
def packets(draw: st.DrawFn, min_unknown: int = 0) -> bytes:
    """A packet of a known layout (mostly) or of a random length >= ``min_unknown``, with
    random field values."""
    known = draw(st.booleans()) or draw(st.booleans())
    length = draw(st.sampled_from(LAYOUT_LENGTHS)) if known else draw(st.integers(min_unknown, 200))
    if length < 4:
        return draw(st.binary(min_size=length, max_size=length))
    segment = draw(st.one_of(st.sampled_from(SEGMENTS), st.integers(0, 255)))
    token = draw(st.integers(0, 2**24 - 1)) * 256 + segment
    # Small or full-range values: the divisors and int/float paths see both.
    words = draw(
        st.lists(
            st.one_of(st.integers(0, 10_000_000), st.integers(0, 2**32 - 1)),
            min_size=(length - 4) // 4,
            max_size=(length - 4) // 4,
        )
    )
    body = struct.pack(f">I{len(words)}I", token, *words)
    return body + draw(st.binary(min_size=length - len(body), max_size=length - len(body)))


frames = st.lists(packets(), max_size=12).map(lambda ps: frame(*ps))
# pykiteconnect reads the token before the length, so a packet under 4 bytes makes it
# raise struct.error (we skip it, as any other unknown length): compare without those.
reference_frames = st.lists(packets(min_unknown=4), max_size=12).map(lambda ps: frame(*ps))


def normalised(tick: dict[str, Any]) -> dict[str, Any]:
    """pykiteconnect's tick with its naive (UTC-host) datetimes made aware."""
    return {k: v.replace(tzinfo=UTC) if isinstance(v, datetime) else v for k, v in tick.items()}


@given(reference_frames)
def test_same_ticks_as_pykiteconnect(utc_host: None, data: bytes) -> None:
    ours = decode_frame(data)
    theirs = [normalised(t) for t in reference(data)]
    assert ours == theirs
    for a, b in zip(ours, theirs, strict=True):
        assert list(a) == list(b)
        if "ohlc" in a:
            assert list(a["ohlc"]) == list(b["ohlc"])
        for key in ("last_trade_time", "exchange_timestamp"):
            if key in a:
                assert a[key].utcoffset() == IST.utcoffset(None)
        # Same types too, except change, which we always give as a float.
        assert {k: type(v) for k, v in a.items() if k != "change"} == {
            k: type(v) for k, v in b.items() if k != "change"
        }


@given(frames)
def test_columns_agree_with_dicts(data: bytes) -> None:
    ticks = decode_frame(data)
    cols = decode_ticks(data)
    assert len(cols.token) == len(ticks)
    for i, t in enumerate(ticks):
        assert cols.token[i] == t["instrument_token"]
        assert cols.mode[i] == MODES[t["mode"]]
        assert cols.last_price[i] == t["last_price"]
        assert cols.volume[i] == t.get("volume_traded", 0)
        ts = t.get("exchange_timestamp")
        assert cols.exchange_ts_ns[i] == (0 if ts is None else int(ts.timestamp()) * NS)
        ltt = t.get("last_trade_time")
        assert cols.last_trade_ns[i] == (0 if ltt is None else int(ltt.timestamp()) * NS)
        if "depth" in t:
            assert cols.oi[i] == t["oi"]
            for side, col in (("buy", cols.bid), ("sell", cols.ask)):
                top = t["depth"][side][0]
                empty = top["quantity"] == 0 or top["price"] == 0
                assert math.isnan(col[i]) if empty else col[i] == top["price"]
        else:
            assert math.isnan(cols.bid[i])
            assert math.isnan(cols.ask[i])
            assert math.isnan(cols.oi[i])


def decodes_or_rejects(data: bytes) -> list[dict[str, Any]] | None:
    """Decode with both functions: the ticks, or None when the frame is rejected.

    Anything but a result or InvalidInputError (PanicException is a BaseException) fails.
    """
    try:
        ticks = decode_frame(data)
    except InvalidInputError as e:
        error = str(e)
    else:
        assert len(decode_ticks(data).token) == len(ticks)
        return ticks
    assert error.startswith("kite frame truncated")
    with pytest.raises(InvalidInputError, match="kite frame truncated"):
        decode_ticks(data)
    return None


@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    decodes_or_rejects(data)


@given(frames, st.data())
def test_truncated_frames_are_rejected(data: bytes, draw: st.DataObject) -> None:
    declared = struct.unpack(">H", data[:2])[0]
    if declared == 0:
        return
    cut = draw.draw(st.integers(2, len(data) - 1))
    assert decodes_or_rejects(data[:cut]) is None


@given(frames, st.binary(min_size=1, max_size=300))
def test_trailing_bytes_are_ignored(data: bytes, tail: bytes) -> None:
    assert decodes_or_rejects(data + tail) == decode_frame(data)


@given(frames, st.integers(1, 65_535 - 12))
def test_count_beyond_the_packets_is_rejected(data: bytes, extra: int) -> None:
    declared = struct.unpack(">H", data[:2])[0]
    bad = struct.pack(">H", declared + extra) + data[2:]
    assert decodes_or_rejects(bad) is None


@given(st.lists(packets(), min_size=1, max_size=5), st.data())
def test_mutated_frames(ps: list[bytes], draw: st.DataObject) -> None:
    data = bytearray(frame(*ps))
    for _ in range(draw.draw(st.integers(1, 4))):
        i = draw.draw(st.integers(0, len(data) - 1))
        data[i] = draw.draw(st.integers(0, 255))
    decodes_or_rejects(bytes(data))


def test_huge_frames() -> None:
    # 65,535 empty packets (the largest count) and a frame of 3,000 full packets.
    assert decodes_or_rejects(b"\xff\xff" + bytes(2 * 65_535)) == []
    big = frame(*[struct.pack(">I", 408_065) + bytes(180)] * 3_000)
    ticks = decodes_or_rejects(big)
    assert ticks is not None
    assert len(ticks) == 3_000
