"""The fake Kite server's REST side, through a plain httpx client on loopback."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import datetime

import httpx
import numpy as np
import pytest

from mental_trader.calendar import IST
from mental_trader.errors import InvalidInputError
from mental_trader.testing.fake_kite import FakeKite
from tests.testing.conftest import DAY, START, headers, make_fake, order_form, until


def test_refuses_a_non_loopback_host() -> None:
    with pytest.raises(InvalidInputError, match="loopback"):
        FakeKite(host="0.0.0.0")
    with pytest.raises(InvalidInputError, match="loopback"):
        FakeKite(host="192.168.1.10")


async def test_headers_are_checked_like_kite(fake: FakeKite) -> None:
    async with httpx.AsyncClient(base_url=fake.rest_url) as raw:
        good = await raw.get("/user/profile", headers=headers(fake))
        assert good.status_code == 200
        assert good.json()["status"] == "success"
        assert good.json()["data"]["user_id"]
        for bad in (
            {"Authorization": headers(fake)["Authorization"]},  # no version
            {"X-Kite-Version": "3"},  # no token
            headers(fake, token="not-a-token"),
            {"X-Kite-Version": "3", "Authorization": f"token other:{fake.access_token}"},
        ):
            r = await raw.get("/user/profile", headers=bad)
            assert r.status_code == 403
            body = r.json()
            assert body["status"] == "error"
            assert body["error_type"] == "TokenException"
            assert fake.access_token not in body["message"]


async def test_login_logout(fake: FakeKite) -> None:
    first_token = fake.access_token
    async with httpx.AsyncClient(base_url=fake.rest_url, headers={"X-Kite-Version": "3"}) as c:
        rt = fake.issue_request_token()
        wrong = await c.post(
            "/session/token", data={"api_key": fake.api_key, "request_token": rt, "checksum": "0"}
        )
        assert wrong.status_code == 403
        assert wrong.json()["error_type"] == "TokenException"
        rt = fake.issue_request_token()
        form = {"api_key": fake.api_key, "request_token": rt, "checksum": fake.checksum(rt)}
        r = await c.post("/session/token", data=form)
        assert r.status_code == 200, r.text
        session = r.json()["data"]
        token = session["access_token"]
        assert session["api_key"] == fake.api_key
        assert {"user_id", "public_token", "login_time"} <= session.keys()
        again = await c.post("/session/token", data=form)  # a request token is single use
        assert again.status_code == 403
        auth = headers(fake, token)
        assert (await c.get("/user/profile", headers=auth)).status_code == 200
        out = await c.delete(
            "/session/token",
            params={"api_key": fake.api_key, "access_token": token},
            headers=auth,
        )
        assert out.json() == {"status": "success", "data": True}
        assert (await c.get("/user/profile", headers=auth)).status_code == 403
        # the token issued at start still works
        assert fake.access_token == token  # the attribute follows the latest login
        assert (await c.get("/user/profile", headers=headers(fake, first_token))).status_code == 200


async def test_instrument_dump(fake: FakeKite, http: httpx.AsyncClient) -> None:
    r = await http.get("/instruments")
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0].keys()) == [
        "instrument_token", "exchange_token", "tradingsymbol", "name", "last_price", "expiry",
        "strike", "tick_size", "lot_size", "instrument_type", "segment", "exchange",
    ]  # fmt: skip
    by_symbol = {(row["exchange"], row["tradingsymbol"]): row for row in rows}
    infy = by_symbol[("NSE", "INFY")]
    assert (infy["instrument_token"], infy["exchange_token"], infy["segment"]) == (
        "408065", "1594", "NSE",
    )  # fmt: skip
    nifty = by_symbol[("NSE", "NIFTY 50")]
    assert (nifty["instrument_token"], nifty["segment"]) == ("256265", "INDICES")
    options = [row for row in rows if row["segment"] == "NFO-OPT"]
    assert len(options) > 100
    for row in rows:
        token, exch = int(row["instrument_token"]), int(row["exchange_token"])
        seg = {"NSE": 1, "NFO-OPT": 2, "INDICES": 9}[row["segment"]]
        assert token == exch * 256 + seg
    assert len({row["instrument_token"] for row in rows}) == len(rows)
    weekly = re.compile(r"^NIFTY\d{2}[1-9OND]\d{2}\d+(CE|PE)$")
    monthly = re.compile(r"^[A-Z]+\d{2}[A-Z]{3}\d+(CE|PE)$")
    for row in options:
        assert weekly.match(row["tradingsymbol"]) or monthly.match(row["tradingsymbol"])
        assert row["expiry"] >= DAY.isoformat()
        assert float(row["strike"]) > 0
        assert int(row["lot_size"]) > 1
    nse = await http.get("/instruments/NSE")
    assert {row["exchange"] for row in csv.DictReader(io.StringIO(nse.text))} == {"NSE"}


async def test_historical_candles(fake: FakeKite, http: httpx.AsyncClient) -> None:
    token = fake.token_of("NSE:INFY")
    now = fake.now().astimezone(IST)
    to = now.replace(second=30, microsecond=0)  # inside the running minute
    params = {"from": f"{DAY} 09:15:00", "to": to.strftime("%Y-%m-%d %H:%M:%S")}
    r = await http.get(f"/instruments/historical/{token}/minute", params=params)
    assert r.status_code == 200, r.text
    candles = r.json()["data"]["candles"]
    assert candles[0][0] == f"{DAY}T09:15:00+0530"
    assert all(len(c) == 6 for c in candles)
    stamps = [datetime.strptime(c[0], "%Y-%m-%dT%H:%M:%S%z") for c in candles]
    assert stamps == sorted(stamps)
    assert all(s.minute != stamps[i - 1].minute for i, s in enumerate(stamps) if i)
    # like Kite, a `to` inside the running candle returns that (partial) candle too
    assert stamps[-1] == to.replace(second=0)
    # the closed candles are the sim broker's bars, value for value
    closed = await fake.sim.history(
        "NSE:INFY", 60, datetime.fromisoformat(f"{DAY}T09:15:00+05:30"), to.replace(second=0)
    )
    assert len(closed["ts"]) == len(candles) - 1
    np.testing.assert_allclose(closed["open"], [c[1] for c in candles[:-1]])
    np.testing.assert_allclose(closed["high"], [c[2] for c in candles[:-1]])
    np.testing.assert_allclose(closed["close"], [c[4] for c in candles[:-1]])
    np.testing.assert_allclose(closed["volume"], [c[5] for c in candles[:-1]])
    # day candles, stamped at midnight IST; with oi
    day = await http.get(
        f"/instruments/historical/{token}/day",
        params={"from": "2026-02-20 00:00:00", "to": f"{DAY} 23:59:59", "oi": "1"},
    )
    rows = day.json()["data"]["candles"]
    assert rows[-1][0] == f"{DAY}T00:00:00+0530"
    assert len(rows[-1]) == 7
    assert rows[-2][0] == "2026-02-27T00:00:00+0530"
    # the per-request caps
    too_long = await http.get(
        f"/instruments/historical/{token}/minute",
        params={"from": "2025-12-01 09:15:00", "to": f"{DAY} 15:30:00"},
    )
    assert too_long.status_code == 400
    assert too_long.json()["error_type"] == "InputException"
    assert "60 days" in too_long.json()["message"]
    ok_hour = await http.get(
        f"/instruments/historical/{token}/60minute",
        params={"from": "2025-12-01 09:15:00", "to": f"{DAY} 15:30:00"},
    )
    assert ok_hour.status_code == 200
    bad = await http.get(f"/instruments/historical/{token}/2minute", params=params)
    assert bad.status_code == 400


async def test_quotes(fake: FakeKite, http: httpx.AsyncClient) -> None:
    keys = ["NSE:INFY", "NSE:NIFTY 50", "NSE:NOSUCH"]
    full = (await http.get("/quote", params=[("i", k) for k in keys])).json()["data"]
    assert set(full) == {"NSE:INFY", "NSE:NIFTY 50"}  # unknown ones are absent
    q = full["NSE:INFY"]
    assert q["instrument_token"] == 408065
    assert {"timestamp", "last_trade_time", "last_quantity", "volume", "average_price",
            "buy_quantity", "sell_quantity", "oi", "net_change", "lower_circuit_limit",
            "upper_circuit_limit"} <= q.keys()  # fmt: skip
    assert set(q["ohlc"]) == {"open", "high", "low", "close"}
    assert q["ohlc"]["low"] <= q["last_price"] <= q["ohlc"]["high"]
    buy, sell = q["depth"]["buy"], q["depth"]["sell"]
    assert len(buy) == len(sell) == 5
    assert buy[0]["price"] < q["last_price"] < sell[0]["price"]
    assert [b["price"] for b in buy] == sorted((b["price"] for b in buy), reverse=True)
    assert q["volume"] > 0
    assert full["NSE:NIFTY 50"]["volume"] == 0
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", q["timestamp"])
    ohlc = (await http.get("/quote/ohlc", params={"i": "NSE:INFY"})).json()["data"]
    assert set(ohlc["NSE:INFY"]) == {"instrument_token", "last_price", "ohlc"}
    ltp = await http.get("/quote/ltp", params=[("i", "NSE:INFY"), ("i", "NSE:RELIANCE")])
    data = ltp.json()["data"]
    assert set(data["NSE:RELIANCE"]) == {"instrument_token", "last_price"}
    assert data["NSE:RELIANCE"]["instrument_token"] == 738561
    # an option quote carries the sim chain's touch and OI
    spot = full["NSE:NIFTY 50"]["last_price"]
    nfo = list(csv.DictReader(io.StringIO((await http.get("/instruments/NFO")).text)))
    atm = min(
        (r for r in nfo if r["name"] == "NIFTY" and r["instrument_type"] == "CE"),
        key=lambda r: (r["expiry"], abs(float(r["strike"]) - spot)),
    )
    key = f"NFO:{atm['tradingsymbol']}"
    opt = (await http.get("/quote", params={"i": key})).json()["data"][key]
    assert opt["oi"] > 0
    assert 0 < opt["depth"]["buy"][0]["price"] < opt["depth"]["sell"][0]["price"]
    assert opt["instrument_token"] == int(atm["instrument_token"])


async def test_order_validation(fake: FakeKite, http: httpx.AsyncClient) -> None:
    async def error(form: dict[str, str]) -> tuple[int, str, str]:
        r = await http.post("/orders/regular", data=form)
        body = r.json()
        return r.status_code, body.get("error_type", ""), body.get("message", "")

    status, kind, msg = await error(order_form(market_protection=None))
    assert (status, kind) == (400, "InputException")
    assert msg == "Market orders without market protection are not allowed via API"
    assert (await error(order_form(order_type="SL-M", trigger_price=2000, market_protection=0)))[
        2
    ] == "Market orders without market protection are not allowed via API"
    assert (await error(order_form(tag="x" * 21)))[:2] == (400, "InputException")
    assert (await error(order_form(tag="has-dash")))[:2] == (400, "InputException")
    assert (await error(order_form(tradingsymbol="NOSUCH")))[:2] == (400, "InputException")
    assert (await error(order_form(order_type="LIMIT", price=0)))[:2] == (400, "InputException")
    assert (await error(order_form(tradingsymbol="NIFTY 50")))[:2] == (400, "InputException")
    assert fake.orders.orders == {}  # nothing refused up front was created
    ok = await http.post("/orders/regular", data=order_form(tag="a" * 20))
    assert ok.status_code == 200


async def test_market_order_lifecycle(fake: FakeKite, http: httpx.AsyncClient) -> None:
    r = await http.post("/orders/regular", data=order_form(tag="mkt1", quantity=3))
    assert r.status_code == 200, r.text
    order_id = r.json()["data"]["order_id"]
    assert set(r.json()["data"]) == {"order_id"}

    async def done() -> list[dict[str, object]] | None:
        hist = (await http.get(f"/orders/{order_id}")).json()["data"]
        return hist if hist[-1]["status"] == "COMPLETE" else None

    history = await until(done)
    statuses = [h["status"] for h in history]
    assert statuses == [
        "PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING", "OPEN", "COMPLETE",
    ]  # fmt: skip
    final = history[-1]
    assert final["filled_quantity"] == 3
    assert final["pending_quantity"] == 0
    assert final["tag"] == "mkt1"
    assert final["exchange_order_id"]
    trades = (await http.get(f"/orders/{order_id}/trades")).json()["data"]
    assert len(trades) == 1
    assert trades[0]["quantity"] == 3
    assert trades[0]["average_price"] == final["average_price"]
    assert (await http.get("/trades")).json()["data"][0]["trade_id"] == trades[0]["trade_id"]
    # a buy at market fills at the ask: above the last trade it followed
    assert final["average_price"] > 0
    assert [o["order_id"] for o in (await http.get("/orders")).json()["data"]] == [order_id]
    pos = (await http.get("/portfolio/positions")).json()["data"]
    assert set(pos) == {"net", "day"}
    assert pos["net"][0]["quantity"] == 3
    assert pos["net"][0]["tradingsymbol"] == "INFY"
    margins = (await http.get("/user/margins")).json()["data"]
    assert margins["equity"]["utilised"]["debits"] == pytest.approx(3 * final["average_price"])
    assert fake.orders_by_tag("mkt1")[0]["order_id"] == order_id


async def test_limit_modify_cancel(fake: FakeKite, http: httpx.AsyncClient) -> None:
    ltp = (await http.get("/quote/ltp", params={"i": "NSE:INFY"})).json()["data"]["NSE:INFY"]
    far = round(round(ltp["last_price"] * 0.5 * 20) / 20, 2)
    r = await http.post(
        "/orders/regular", data=order_form(order_type="LIMIT", price=far, market_protection=None)
    )
    order_id = r.json()["data"]["order_id"]

    async def status() -> str:
        return str((await http.get(f"/orders/{order_id}")).json()["data"][-1]["status"])

    await until(lambda: _is(status, "OPEN"))
    m = await http.put(f"/orders/regular/{order_id}", data={"price": str(far - 1), "quantity": "2"})
    assert m.json()["data"] == {"order_id": order_id}
    hist = (await http.get(f"/orders/{order_id}")).json()["data"]
    assert [h["status"] for h in hist[-3:]] == [
        "MODIFY VALIDATION PENDING",
        "MODIFY PENDING",
        "OPEN",
    ]
    assert hist[-1]["price"] == far - 1
    assert hist[-1]["quantity"] == 2
    c = await http.delete(f"/orders/regular/{order_id}")
    assert c.json()["data"] == {"order_id": order_id}
    final = (await http.get(f"/orders/{order_id}")).json()["data"][-1]
    assert final["status"] == "CANCELLED"
    assert final["cancelled_quantity"] == 2
    again = await http.delete(f"/orders/regular/{order_id}")
    assert again.status_code == 400


async def _is(status: object, want: str) -> bool:
    assert callable(status)
    return bool(await status() == want)


async def test_freeze_quantity_and_autoslice(fake: FakeKite, http: httpx.AsyncClient) -> None:
    rows = (await http.get("/instruments/NFO")).text.splitlines()[1:]
    symbol = next(r.split(",")[2] for r in rows if r.split(",")[2].startswith("NIFTY"))
    form = order_form(exchange="NFO", tradingsymbol=symbol, product="NRML", quantity=65 * 60)
    refused = await http.post("/orders/regular", data=form)
    assert refused.status_code == 400
    assert "freeze" in refused.json()["message"]
    sliced = await http.post("/orders/regular", data={**form, "autoslice": "true"})
    data = sliced.json()["data"]
    assert set(data) == {"order_id", "children"}
    ids = [data["order_id"], *(c["order_id"] for c in data["children"])]
    sizes = [fake.orders.get(i).quantity for i in ids]
    assert sum(sizes) == 65 * 60
    assert max(sizes) <= 1800
    assert all(size % 65 == 0 for size in sizes)
    odd = await http.post("/orders/regular", data={**form, "quantity": "100"})
    assert odd.status_code == 400  # not a multiple of the lot


async def test_kite_rate_limits_are_enforced_and_recorded() -> None:
    async with make_fake(rate_limits=None) as fake:
        async with httpx.AsyncClient(base_url=fake.rest_url, headers=headers(fake)) as http:
            first = await http.get("/quote/ltp", params={"i": "NSE:INFY"})
            second = await http.get("/quote/ltp", params={"i": "NSE:INFY"})
            assert first.status_code == 200
            assert second.status_code == 429
            assert second.json()["error_type"] == "NetworkException"
            assert second.json()["message"] == "Too many requests"
            got = await asyncio.gather(*(http.get("/orders") for _ in range(12)))
            assert sorted(r.status_code for r in got) == [200] * 10 + [429] * 2
        scopes = [v.scope for v in fake.rate_limit_violations]
        assert scopes == ["quote", "others", "others"]
        assert fake.rates.max_in_window("others") == 10
        assert len(fake.requests_in_scope("quote")) == 1


async def test_kite_rate_limits_windows() -> None:
    async with make_fake(rate_limits={"quote": (1, 0.2)}) as fake:
        async with httpx.AsyncClient(base_url=fake.rest_url, headers=headers(fake)) as http:
            for _ in range(3):
                assert (await http.get("/quote/ltp", params={"i": "NSE:INFY"})).status_code == 200
                await asyncio.sleep(0.25)
        assert fake.rate_limit_violations == []
        assert fake.rates.max_in_window("quote") == 1


async def test_stop_orders_trigger(fake: FakeKite, http: httpx.AsyncClient) -> None:
    ltp = (await http.get("/quote/ltp", params={"i": "NSE:INFY"})).json()["data"]["NSE:INFY"]
    above = round(round(ltp["last_price"] * 1.2 * 20) / 20, 2)
    # a sell stop above the market triggers on the next tick, then sells at market
    r = await http.post(
        "/orders/regular",
        data=order_form(transaction_type="SELL", order_type="SL-M", trigger_price=above),
    )
    order_id = r.json()["data"]["order_id"]

    async def complete() -> list[str] | None:
        hist = (await http.get(f"/orders/{order_id}")).json()["data"]
        statuses = [h["status"] for h in hist]
        return statuses if statuses[-1] == "COMPLETE" else None

    statuses = await until(complete)
    assert statuses[3:] == ["TRIGGER PENDING", "OPEN", "COMPLETE"]
    # a buy stop far above stays pending
    r = await http.post(
        "/orders/regular",
        data=order_form(order_type="SL", trigger_price=above, price=above, market_protection=None),
    )
    pending_id = r.json()["data"]["order_id"]
    await asyncio.sleep(0.3)
    hist = (await http.get(f"/orders/{pending_id}")).json()["data"]
    assert hist[-1]["status"] == "TRIGGER PENDING"
    assert hist[-1]["trigger_price"] == above


async def test_orders_refused_when_the_market_is_closed() -> None:
    before_open = START.replace(hour=8)
    async with (
        make_fake(start=before_open) as fake,
        httpx.AsyncClient(base_url=fake.rest_url, headers=headers(fake)) as http,
    ):
        r = await http.post("/orders/regular", data=order_form())
        assert r.status_code == 400
        assert "closed" in r.json()["message"]
        # quotes before the open show the previous session's last trade
        q = (await http.get("/quote", params={"i": "NSE:INFY"})).json()["data"]["NSE:INFY"]
        assert q["last_trade_time"] < f"{DAY} 00:00:00"
