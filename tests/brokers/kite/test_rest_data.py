"""KiteRest against the fake Kite server on loopback: instruments, candles, quotes, margins,
login, error mapping, retries of reads and the rate limits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from mental_trader.brokers.kite.errors import (
    KiteInputError,
    KiteRateLimitError,
    KiteTokenError,
    KiteTransportError,
)
from mental_trader.brokers.kite.rest import KiteRest
from mental_trader.brokers.kite.session import TokenStore, login_url
from mental_trader.calendar import IST
from mental_trader.config import Settings
from mental_trader.errors import AuthError, BrokerError, InvalidInputError
from mental_trader.storage.base import CANDLE_COLUMNS, dt_to_ns
from mental_trader.testing.fake_kite import FakeKite

NS = 1_000_000_000


@pytest.fixture
async def kite(fake_kite: FakeKite) -> AsyncIterator[KiteRest]:
    async with KiteRest(
        fake_kite.api_key,
        access_token=fake_kite.access_token,
        base_url=fake_kite.rest_url,
        clock=fake_kite.now,
        retry_backoff_s=0.01,
    ) as client:
        yield client


async def test_instruments_match_the_listing(kite: KiteRest, fake_kite: FakeKite) -> None:
    got = {i.symbol: i for i in await kite.instruments()}
    listed = await fake_kite.sim.instruments()
    assert {i.symbol for i in listed} <= set(got)
    assert got["NSE:INFY"].instrument_token == fake_kite.token_of("NSE:INFY")
    assert got["NSE:NIFTY 50"].segment == "INDICES"
    options = [i for i in got.values() if i.instrument_type in ("CE", "PE")]
    assert options
    for sim in listed:
        row = got[sim.symbol]
        assert (row.exchange, row.tradingsymbol) == (sim.exchange, sim.tradingsymbol)
        assert row.lot_size == sim.lot_size
        assert row.expiry == sim.expiry
        assert row.strike == sim.strike
        if sim.instrument_type in ("CE", "PE"):
            assert row.underlying == sim.underlying
            assert row.freeze_qty is None  # not in Kite's dump
    assert {i.underlying for i in options} >= {"NSE:NIFTY 50"}
    nse = await kite.instruments("NSE")
    assert nse
    assert {i.exchange for i in nse} == {"NSE"}


def _settled(fake: FakeKite) -> datetime:
    """A minute boundary safely in the past of the fake's (fast) clock, so the client and
    the sim, asked one after the other, agree on which candles have closed."""
    now = fake.now() - timedelta(minutes=2)
    return now.replace(second=0, microsecond=0)


async def test_minute_candles_equal_the_sim_bars(kite: KiteRest, fake_kite: FakeKite) -> None:
    end = _settled(fake_kite)
    start = end.astimezone(IST).replace(hour=9, minute=15)
    got = await kite.history(fake_kite.token_of("NSE:INFY"), 60, start, end)
    want = await fake_kite.sim.history("NSE:INFY", 60, start, end)
    assert len(got["ts"]) >= 40  # 09:15 to past 10:00
    assert set(got) == set(CANDLE_COLUMNS)
    for name in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert got["ts"][0] == dt_to_ns(start)
    assert got["ts"][-1] == dt_to_ns(end) - 60 * NS
    assert (got["ticks"] == 1).all()


async def test_forming_candle_dropped(kite: KiteRest, fake_kite: FakeKite) -> None:
    now = fake_kite.now()
    got = await kite.history(fake_kite.token_of("NSE:INFY"), 60, now - timedelta(hours=1), now)
    last = int(got["ts"][-1])
    # Kite (and the fake) return the candle still forming at `now`; it must not be here.
    assert last + 60 * NS <= dt_to_ns(now)
    assert last + 120 * NS > dt_to_ns(now)  # ...but the one before it is


async def test_long_range_is_chunked_within_caps(kite: KiteRest, fake_kite: FakeKite) -> None:
    end = _settled(fake_kite)
    start = end - timedelta(days=70)
    before = len(fake_kite.requests_in_scope("historical"))
    got = await kite.history(fake_kite.token_of("NSE:INFY"), 60, start, end)
    assert len(fake_kite.requests_in_scope("historical")) - before == 2  # 60 + 10 days
    ts = got["ts"]
    assert (np.diff(ts) > 0).all()  # sorted, no duplicate at the chunk seam
    want = await fake_kite.sim.history("NSE:INFY", 60, start, end)
    np.testing.assert_array_equal(ts, want["ts"])
    np.testing.assert_array_equal(got["close"], want["close"])


async def test_daily_candles_stamped_at_session_open(kite: KiteRest, fake_kite: FakeKite) -> None:
    now = fake_kite.now()
    start = now - timedelta(days=10)
    got = await kite.history(fake_kite.token_of("NSE:RELIANCE"), 86400, start, now)
    want = await fake_kite.sim.history("NSE:RELIANCE", 86400, start, now)
    assert len(got["ts"]) >= 5
    for name in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    for ts in got["ts"]:
        local = datetime.fromtimestamp(int(ts) / NS, IST)
        assert (local.hour, local.minute) == (9, 15)
    # Today's daily candle is still forming at 10:00: absent.
    assert datetime.fromtimestamp(int(got["ts"][-1]) / NS, IST).date() < now.astimezone(IST).date()


async def test_history_refuses_bad_input(kite: KiteRest, fake_kite: FakeKite) -> None:
    token = fake_kite.token_of("NSE:INFY")
    now = fake_kite.now()
    naive = now.replace(tzinfo=None)
    with pytest.raises(InvalidInputError):
        await kite.history(token, 60, naive - timedelta(hours=1), now)
    with pytest.raises(InvalidInputError):
        await kite.history(token, 60, now - timedelta(hours=1), naive)
    with pytest.raises(InvalidInputError, match="future"):
        await kite.history(token, 60, now - timedelta(hours=1), now + timedelta(hours=1))
    with pytest.raises(InvalidInputError, match="120s"):
        await kite.history(token, 120, now - timedelta(hours=1), now)
    empty = await kite.history(token, 60, now, now - timedelta(hours=1))
    assert len(empty["ts"]) == 0
    with pytest.raises(KiteInputError, match="instrument_token"):
        await kite.history(999_999_999, 60, now - timedelta(hours=1), now)


async def test_quotes_ltp_ohlc(kite: KiteRest, fake_kite: FakeKite) -> None:
    symbols = ["NSE:INFY", "NSE:RELIANCE", "NSE:NIFTY 50", "NSE:NOSUCHTHING"]
    quotes = await kite.quote(symbols)
    assert set(quotes) == {"NSE:INFY", "NSE:RELIANCE", "NSE:NIFTY 50"}  # unknown: absent
    infy = quotes["NSE:INFY"]
    assert infy.instrument_token == fake_kite.token_of("NSE:INFY")
    assert infy.last_price > 0
    assert infy.bids
    assert infy.asks
    assert infy.bids[0].price < infy.asks[0].price
    assert infy.timestamp is not None
    assert infy.timestamp.utcoffset() == timedelta(hours=5, minutes=30)
    ltp = await kite.ltp(symbols)
    assert set(ltp) == set(quotes)
    assert all(p > 0 for p in ltp.values())
    ohlc = await kite.ohlc(["NSE:INFY"])
    assert ohlc["NSE:INFY"].low <= ohlc["NSE:INFY"].last_price <= ohlc["NSE:INFY"].high
    with pytest.raises(InvalidInputError):
        await kite.ltp(["INFY"])


async def test_quote_batches(kite: KiteRest, fake_kite: FakeKite) -> None:
    many = ["NSE:INFY", *(f"NSE:NOPE{i}" for i in range(1000))]  # 1001 symbols
    before = len(fake_kite.requests_in_scope("quote"))
    ltp = await kite.ltp(many)
    assert set(ltp) == {"NSE:INFY"}
    assert len(fake_kite.requests_in_scope("quote")) - before == 2  # 1000 + 1
    assert fake_kite.rate_limit_violations == []


async def test_margins(kite: KiteRest) -> None:
    margins = await kite.margins()
    assert margins["equity"].enabled
    assert margins["equity"].net > 0
    assert margins["equity"].available["cash"] > 0
    one = await kite.margins("equity")
    assert one["equity"].net == margins["equity"].net


async def test_token_expiry_then_login(
    kite: KiteRest, fake_kite: FakeKite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    old_token = kite.access_token
    assert old_token is not None
    fake_kite.faults.token_expired = True
    count = fake_kite.request_count
    with pytest.raises(KiteTokenError) as info:
        await kite.orders()
    assert fake_kite.request_count - count == 1  # a TokenException is never retried
    assert info.value.status == 403
    assert isinstance(info.value, AuthError)
    assert old_token not in str(info.value)
    # Log in again: the request token from Kite's redirect, our checksum.
    assert login_url(fake_kite.api_key).endswith(f"?api_key={fake_kite.api_key}&v=3")
    request_token = fake_kite.issue_request_token()
    session = await kite.create_session(request_token, "fake_api_secret")
    new_token = session.access_token.get_secret_value()
    assert new_token != old_token
    assert kite.access_token == new_token
    assert session.login_time is not None
    assert await kite.orders() == []
    store = TokenStore.in_dir(tmp_path)
    stored = store.save(session.access_token, api_key=fake_kite.api_key,
                        login_at=session.login_time, user_id=session.user_id)  # fmt: skip
    assert store.load(fake_kite.now(), api_key=fake_kite.api_key) == stored
    # A request token is single use; the error names no secret.
    with pytest.raises(KiteTokenError) as again:
        await kite.create_session(request_token, "fake_api_secret")
    for secret in (old_token, new_token, request_token, "fake_api_secret"):
        assert secret not in caplog.text
        assert secret not in str(again.value)
        assert secret not in repr(kite)
        assert secret not in repr(session)


async def test_wrong_checksum_is_a_token_error(kite: KiteRest, fake_kite: FakeKite) -> None:
    with pytest.raises(KiteTokenError, match="checksum"):
        await kite.create_session(fake_kite.issue_request_token(), "wrong_secret")


async def test_not_logged_in_fails_fast(fake_kite: FakeKite) -> None:
    async with KiteRest(fake_kite.api_key, base_url=fake_kite.rest_url) as client:
        count = fake_kite.request_count
        with pytest.raises(KiteTokenError, match="log in"):
            await client.orders()
        assert fake_kite.request_count == count


async def test_reads_retry_a_429(kite: KiteRest, fake_kite: FakeKite) -> None:
    fake_kite.faults.rate_limit_next = 2
    count = fake_kite.request_count
    assert (await kite.margins())["equity"].net > 0
    assert fake_kite.request_count - count == 3  # two 429s, then served
    fake_kite.faults.rate_limit_next = 5
    count = fake_kite.request_count
    with pytest.raises(KiteRateLimitError) as info:
        await kite.positions()
    assert fake_kite.request_count - count == 3  # 1 + read_retries, then it gives up
    assert info.value.status == 429
    fake_kite.faults.rate_limit_next = 0


async def test_connection_refused_is_a_transport_error(fake_kite: FakeKite) -> None:
    url = fake_kite.rest_url
    await fake_kite.close()
    async with KiteRest("k", access_token="t0kenvalue", base_url=url, read_retries=0) as client:
        with pytest.raises(KiteTransportError) as info:
            await client.margins()
    assert info.value.ambiguous is False  # never connected: nothing was sent
    assert info.value.status is None


async def test_closed_client_refuses(fake_kite: FakeKite) -> None:
    client = KiteRest(fake_kite.api_key, access_token=fake_kite.access_token,
                      base_url=fake_kite.rest_url)  # fmt: skip
    await client.close()
    await client.close()
    with pytest.raises(BrokerError, match="closed"):
        await client.margins()
    with pytest.raises(BrokerError):
        async with client:
            pass


async def test_burst_never_exceeds_the_limits(kite: KiteRest, fake_kite: FakeKite) -> None:
    token = fake_kite.token_of("NSE:INFY")
    now = fake_kite.now()

    async with asyncio.TaskGroup() as tg:
        for _ in range(3):
            tg.create_task(kite.ltp(["NSE:INFY"]))
        for k in range(7):
            tg.create_task(kite.history(token, 60, now - timedelta(minutes=30 + k), now))
        for _ in range(20):
            tg.create_task(kite.margins())
    assert fake_kite.rate_limit_violations == []
    assert len(fake_kite.requests_in_scope("quote")) == 3
    assert len(fake_kite.requests_in_scope("historical")) == 7
    assert fake_kite.rates.max_in_window("quote") <= 1
    assert fake_kite.rates.max_in_window("historical") <= 3
    assert fake_kite.rates.max_in_window("others") <= 8


async def test_from_settings(fake_kite: FakeKite) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        broker="kite",
        broker_api_key=SecretStr(fake_kite.api_key),
        broker_api_secret=SecretStr("fake_api_secret"),
        broker_access_token=SecretStr(fake_kite.access_token),
        broker_rest_url=fake_kite.rest_url,  # plain http is accepted on loopback only
    )
    async with KiteRest.from_settings(settings, timeout_s=3.0) as client:
        assert client.timeout_s == 3.0
        assert (await client.margins())["equity"].net > 0
        assert fake_kite.access_token not in repr(client)
