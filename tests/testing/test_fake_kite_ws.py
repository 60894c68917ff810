"""The fake Kite server's WebSocket side, through the plain ``websockets`` client."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import struct

import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from mental_trader.testing.fake_kite import FakeKite
from mental_trader.testing.fake_kite.market import DepthLevel, Snapshot
from mental_trader.testing.fake_kite.wire import (
    encode_frame,
    pack_full,
    pack_index_full,
    pack_index_quote,
    pack_ltp,
    pack_quote,
)
from tests.testing.conftest import packets, ws_url

INFY, NIFTY = 408065, 256265


async def next_binary(ws: ClientConnection, wait_s: float = 5.0) -> bytes:
    """The next binary message longer than a heartbeat."""
    async with asyncio.timeout(wait_s):
        while True:
            msg = await ws.recv()
            if isinstance(msg, bytes) and len(msg) > 1:
                return msg


async def packets_by_token(ws: ClientConnection, want: set[int]) -> dict[int, bytes]:
    """Collect packets until every token in ``want`` has shown up."""
    got: dict[int, bytes] = {}
    async with asyncio.timeout(5):
        while not want <= got.keys():
            for p in packets(await next_binary(ws)):
                got[struct.unpack_from(">I", p)[0]] = p
    return got


def test_encoder_layouts() -> None:
    snap = Snapshot(
        symbol="NSE:INFY", last_price=1573.7, last_quantity=7, last_trade_ns=1_625_461_887 * 10**9,
        timestamp_ns=1_625_461_887 * 10**9, volume=1_192_471, average_price=1570.37,
        open=1569.15, high=1575.0, low=1561.05, close=1567.8, bid=1573.4, ask=1573.7,
        buy=(DepthLevel(1573.4, 5, 1),), sell=(DepthLevel(1573.7, 172, 3),), oi=0,
        is_index=False,
    )  # fmt: skip
    ltp = pack_ltp(INFY, snap)
    assert struct.unpack(">II", ltp) == (INFY, 157370)
    quote = pack_quote(INFY, snap)
    assert len(quote) == 44
    fields = struct.unpack(">11I", quote)
    assert fields[:5] == (INFY, 157370, 7, 157037, 1_192_471)
    assert fields[7:] == (156915, 157500, 156105, 156780)
    full = pack_full(INFY, snap)
    assert len(full) == 184
    assert full[:44] == quote
    assert struct.unpack_from(">5I", full, 44) == (1_625_461_887, 0, 0, 0, 1_625_461_887)
    assert struct.unpack_from(">IIH", full, 64) == (5, 157340, 1)
    assert struct.unpack_from(">IIH", full, 64 + 12) == (0, 0, 0)  # empty levels are zeros
    assert struct.unpack_from(">IIH", full, 64 + 5 * 12) == (172, 157370, 3)
    idx = pack_index_quote(NIFTY, snap)
    assert len(idx) == 28
    assert struct.unpack(">IIIIIIi", idx)[2:] == (157500, 156105, 156915, 156780, 590)
    assert len(pack_index_full(NIFTY, snap)) == 32
    frame = encode_frame([ltp, quote])
    assert frame[:2] == b"\x00\x02"
    assert packets(frame) == [ltp, quote]
    # CDS prices carry 7 decimals, BCD 4
    usd = dataclasses.replace(snap, last_price=83.2575)
    assert struct.unpack(">II", pack_ltp((1234 << 8) | 3, usd))[1] == 832_575_000
    assert struct.unpack(">II", pack_ltp((1234 << 8) | 6, usd))[1] == 832_575


async def test_handshake_checks(fake: FakeKite) -> None:
    for url in (
        ws_url(fake, token="bad"),
        f"{fake.ws_url}?api_key=other&access_token={fake.access_token}",
        fake.ws_url,
    ):
        with pytest.raises(websockets.InvalidStatus) as err:
            async with connect(url):
                pass
        assert err.value.response.status_code == 403
    sockets = [await connect(ws_url(fake)) for _ in range(3)]
    with pytest.raises(websockets.InvalidStatus) as err:
        async with connect(ws_url(fake)):
            pass
    assert err.value.response.status_code == 429  # Kite allows 3 sockets per API key
    for ws in sockets:
        await ws.close()


async def test_subscribe_modes_and_unsubscribe(fake: FakeKite) -> None:
    async with connect(ws_url(fake)) as ws:
        await ws.send(json.dumps({"a": "subscribe", "v": [INFY, NIFTY]}))
        first = await packets_by_token(ws, {INFY, NIFTY})
        assert len(first[INFY]) == 44  # quote mode after a subscribe
        assert len(first[NIFTY]) == 28  # an index quote packet
        price = struct.unpack_from(">I", first[INFY], 4)[0] / 100
        assert 500 < price < 5000
        nifty = struct.unpack_from(">I", first[NIFTY], 4)[0] / 100
        assert 10_000 < nifty < 50_000
        await ws.send(json.dumps({"a": "mode", "v": ["full", [INFY, NIFTY]]}))
        full = await packets_by_token(ws, {INFY, NIFTY})
        assert (len(full[INFY]), len(full[NIFTY])) == (184, 32)
        bid = struct.unpack_from(">I", full[INFY], 64 + 4)[0]
        ask = struct.unpack_from(">I", full[INFY], 64 + 5 * 12 + 4)[0]
        assert 0 < bid < ask
        await ws.send(json.dumps({"a": "mode", "v": ["ltp", [INFY]]}))
        await ws.send(json.dumps({"a": "unsubscribe", "v": [NIFTY]}))
        ltp = await packets_by_token(ws, {INFY})
        assert len(ltp[INFY]) == 8
        # after the unsubscribe no NIFTY packet comes any more
        seen: set[int] = set()
        for _ in range(5):
            seen |= {struct.unpack_from(">I", p)[0] for p in packets(await next_binary(ws))}
        assert seen == {INFY}
        await ws.send(json.dumps({"a": "explode", "v": []}))
        async with asyncio.timeout(5):
            while not isinstance(msg := await ws.recv(), str):
                pass
        assert json.loads(msg)["type"] == "error"


async def test_heartbeat_when_idle(fake: FakeKite) -> None:
    async with connect(ws_url(fake)) as ws:
        async with asyncio.timeout(3):
            msg = await ws.recv()
        assert msg == b"\x00"  # nothing subscribed: a 1-byte heartbeat about every second


async def test_ticks_follow_the_sim_clock(fake: FakeKite) -> None:
    async with connect(ws_url(fake)) as ws:
        await ws.send(json.dumps({"a": "mode", "v": ["full", [INFY]]}))
        stamps = []
        for _ in range(4):
            (p,) = packets(await next_binary(ws))
            stamps.append(struct.unpack_from(">I", p, 44)[0])  # last trade time
        assert stamps == sorted(stamps)
        assert stamps[-1] > stamps[0]  # at speed 60 a second of ticks is a minute
