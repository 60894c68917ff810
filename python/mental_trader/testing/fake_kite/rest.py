"""The fake's REST API: Kite Connect v3's endpoints as a Starlette app.

Every Kite route checks, in order: the ``rate_limit_next`` fault, the rate limit of its
scope (429 NetworkException "Too many requests", recorded as a violation), the headers
(``X-Kite-Version: 3`` and ``Authorization: token api_key:access_token``, else 403
TokenException) and the ``token_expired`` fault. ``POST /session/token`` needs no access
token (it is the login). Routes under ``/_fake/`` are the test harness's: fault switches,
request tokens, inspection; they are not Kite's and need no auth.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mental_trader.calendar import IST
from mental_trader.core import build_bars
from mental_trader.errors import InvalidInputError
from mental_trader.storage.base import dt_to_ns
from mental_trader.testing.fake_kite import portfolio
from mental_trader.testing.fake_kite.envelope import (
    KiteError,
    candle_time,
    error_response,
    ist_text,
    ok,
    parse_ist,
)
from mental_trader.testing.fake_kite.instruments import KiteInstrument, dump_csv_gz
from mental_trader.testing.fake_kite.market import DepthLevel, Snapshot

if TYPE_CHECKING:
    from mental_trader.testing.fake_kite.server import FakeKite

__all__ = ["INTERVALS", "build_app"]

#: Kite's candle intervals: (seconds, the most days one request may span).
INTERVALS: dict[str, tuple[int, int]] = {
    "minute": (60, 60),
    "3minute": (180, 100),
    "5minute": (300, 100),
    "10minute": (600, 100),
    "15minute": (900, 200),
    "30minute": (1800, 200),
    "60minute": (3600, 400),
    "day": (86_400, 2000),
}
_MAX_QUOTE = 500
_MAX_LTP = 1000

Handler = Callable[[Request], Awaitable[Response]]


def _scope(path: str, method: str) -> str:
    if path.startswith("/quote"):
        return "quote"
    if path.startswith("/instruments/historical"):
        return "historical"
    if path.startswith("/orders") and method in ("POST", "PUT", "DELETE"):
        return "orders"
    return "others"


async def _form(request: Request) -> dict[str, str]:
    """A form-encoded body (Kite's POST/PUT bodies), last value of a repeated field."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def build_app(fake: FakeKite) -> Starlette:
    """The REST app of ``fake`` (routes close over it)."""

    def kite(handler: Handler, *, auth: bool = True) -> Handler:
        async def wrapped(request: Request) -> Response:
            fake.request_count += 1
            try:
                if fake.faults.take("rate_limit_next"):
                    raise KiteError(429, "NetworkException", "Too many requests")
                scope = _scope(request.url.path, request.method)
                if not fake.rates.admit(scope, request.method, request.url.path):
                    raise KiteError(429, "NetworkException", "Too many requests")
                if auth:
                    fake.check_auth(
                        request.headers.get("x-kite-version"),
                        request.headers.get("authorization"),
                    )
                return await handler(request)
            except KiteError as exc:
                return error_response(exc)

        return wrapped

    # ----------------------------------------------------------------- session

    async def session_token(request: Request) -> Response:
        if request.headers.get("x-kite-version") != "3":
            raise KiteError(403, "TokenException", "Invalid or missing `X-Kite-Version`.")
        form = await _form(request)
        data = fake.login(
            form.get("api_key", ""), form.get("request_token", ""), form.get("checksum", "")
        )
        return ok(data)

    async def session_logout(request: Request) -> Response:
        fake.logout(request.query_params.get("access_token", ""))
        return ok(True)

    async def profile(request: Request) -> Response:
        return ok(fake.profile())

    # ----------------------------------------------------------------- instruments

    async def instruments(request: Request) -> Response:
        rows = await fake.listing()
        exchange = request.path_params.get("exchange")
        if exchange is not None:
            rows = [r for r in rows if r.instrument.exchange == exchange]
        return Response(
            dump_csv_gz(rows),
            media_type="text/csv",
            headers={"Content-Encoding": "gzip"},
        )

    async def historical(request: Request) -> Response:
        try:
            token = int(request.path_params["token"])
        except ValueError:
            raise KiteError(400, "InputException", "Invalid `instrument_token`.") from None
        interval = request.path_params["interval"]
        if interval not in INTERVALS:
            raise KiteError(400, "InputException", "Invalid `interval`.")
        inst = fake.registry.by_token(token)
        if inst is None:
            raise KiteError(400, "InputException", "Invalid `instrument_token`.")
        q = request.query_params
        start = parse_ist(q.get("from", ""), "from")
        end = parse_ist(q.get("to", ""), "to")
        if end < start:
            raise KiteError(400, "InputException", "Invalid `from` and `to`: from is after to.")
        step, cap = INTERVALS[interval]
        if (end - start) > timedelta(days=cap):
            raise KiteError(400, "InputException", f"interval exceeds max limit: {cap} days")
        with_oi = q.get("oi") == "1"
        rows = await asyncio.to_thread(
            _candles, fake, inst, step, start, end, fake.now_ns(), with_oi
        )
        return ok({"candles": rows})

    # ----------------------------------------------------------------- quotes

    def _lookup(request: Request, cap: int) -> list[tuple[str, KiteInstrument]]:
        keys = request.query_params.getlist("i")
        if not keys:
            raise KiteError(400, "InputException", "No instruments given (`i`).")
        if len(keys) > cap:
            raise KiteError(400, "InputException", f"Too many instruments: at most {cap}.")
        found = []
        for key in dict.fromkeys(keys):
            exchange, _, tradingsymbol = key.partition(":")
            inst = fake.registry.by_key(exchange, tradingsymbol)
            if inst is not None:  # like Kite: unknown instruments are simply absent
                found.append((key, inst))
        return found

    async def quote_view(request: Request, cap: int, shape: Callable[..., Any]) -> Response:
        found = _lookup(request, cap)
        now = fake.now_ns()
        snaps = await asyncio.to_thread(
            lambda: [(k, i, fake.market.snapshot(i.symbol, now)) for k, i in found]
        )
        return ok({k: shape(i, s) for k, i, s in snaps if s is not None})

    async def quote(request: Request) -> Response:
        return await quote_view(request, _MAX_QUOTE, _full_quote)

    async def quote_ohlc(request: Request) -> Response:
        return await quote_view(request, _MAX_LTP, _ohlc_quote)

    async def quote_ltp(request: Request) -> Response:
        return await quote_view(
            request,
            _MAX_LTP,
            lambda i, s: {"instrument_token": i.instrument_token, "last_price": s.last_price},
        )

    # ----------------------------------------------------------------- orders

    async def place_order(request: Request) -> Response:
        form = await _form(request)
        message = fake.faults.rms_reject_message if fake.faults.take("rms_reject_next") else None
        data = fake.orders.place(request.path_params["variety"], form, rms_reject=message)
        fake.placements.append(data["order_id"])
        if fake.faults.take("delay_next_orders"):
            await fake.sleep_unless_closing(fake.faults.order_delay_s)
        return ok(data)

    async def modify_order(request: Request) -> Response:
        form = await _form(request)
        p = request.path_params
        return ok(fake.orders.modify(p["variety"], p["order_id"], form))

    async def cancel_order(request: Request) -> Response:
        p = request.path_params
        return ok(fake.orders.cancel(p["variety"], p["order_id"]))

    async def list_orders(request: Request) -> Response:
        return ok([o.payload() for o in fake.orders.orders.values()])

    async def order_history(request: Request) -> Response:
        return ok(list(fake.orders.get(request.path_params["order_id"]).history))

    async def list_trades(request: Request) -> Response:
        return ok([t.payload() for t in fake.orders.trades])

    async def order_trades(request: Request) -> Response:
        order = fake.orders.get(request.path_params["order_id"])
        return ok([t.payload() for t in fake.orders.trades if t.order is order])

    async def positions(request: Request) -> Response:
        return ok(await asyncio.to_thread(portfolio.positions, fake.orders))

    async def margins(request: Request) -> Response:
        data = await asyncio.to_thread(portfolio.margins, fake.orders)
        segment = request.path_params.get("segment")
        if segment is None:
            return ok(data)
        if segment not in data:
            raise KiteError(400, "InputException", "Invalid segment.")
        return ok(data[segment])

    # ----------------------------------------------------------------- the harness's

    async def admin_faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = json.loads(await request.body() or b"{}")
                if not isinstance(body, dict):
                    raise InvalidInputError("the body must be a JSON object")
                fake.faults.update(body)
            except (ValueError, InvalidInputError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            if fake.faults.ws_drop:
                fake.drop_ws()
        return JSONResponse(fake.faults.as_dict())

    async def admin_request_token(request: Request) -> Response:
        return JSONResponse({"request_token": fake.issue_request_token()})

    async def admin_orders(request: Request) -> Response:
        tag = request.query_params.get("tag")
        orders = fake.orders.by_tag(tag) if tag else list(fake.orders.orders.values())
        return JSONResponse([o.payload() for o in orders])

    async def admin_rate_limits(request: Request) -> Response:
        rates = fake.rates
        return JSONResponse(
            {
                "served": {k: len(v) for k, v in rates.served.items()},
                "max_in_window": {k: rates.max_in_window(k) for k in rates.served},
                "violations": [
                    {"scope": v.scope, "method": v.method, "path": v.path, "at": v.at}
                    for v in rates.violations
                ],
            }
        )

    async def admin_drop_ws(request: Request) -> Response:
        return JSONResponse({"dropped": fake.drop_ws()})

    routes = [
        Route("/session/token", kite(session_token, auth=False), methods=["POST"]),
        Route("/session/token", kite(session_logout), methods=["DELETE"]),
        Route("/user/profile", kite(profile), methods=["GET"]),
        Route("/user/margins", kite(margins), methods=["GET"]),
        Route("/user/margins/{segment}", kite(margins), methods=["GET"]),
        Route("/instruments", kite(instruments), methods=["GET"]),
        Route("/instruments/historical/{token}/{interval}", kite(historical), methods=["GET"]),
        Route("/instruments/{exchange}", kite(instruments), methods=["GET"]),
        Route("/quote", kite(quote), methods=["GET"]),
        Route("/quote/ohlc", kite(quote_ohlc), methods=["GET"]),
        Route("/quote/ltp", kite(quote_ltp), methods=["GET"]),
        Route("/orders", kite(list_orders), methods=["GET"]),
        Route("/orders/{order_id}/trades", kite(order_trades), methods=["GET"]),
        Route("/orders/{order_id}", kite(order_history), methods=["GET"]),
        Route("/orders/{variety}", kite(place_order), methods=["POST"]),
        Route("/orders/{variety}/{order_id}", kite(modify_order), methods=["PUT"]),
        Route("/orders/{variety}/{order_id}", kite(cancel_order), methods=["DELETE"]),
        Route("/trades", kite(list_trades), methods=["GET"]),
        Route("/portfolio/positions", kite(positions), methods=["GET"]),
        Route("/_fake/faults", admin_faults, methods=["GET", "POST"]),
        Route("/_fake/request_token", admin_request_token, methods=["POST"]),
        Route("/_fake/orders", admin_orders, methods=["GET"]),
        Route("/_fake/rate_limits", admin_rate_limits, methods=["GET"]),
        Route("/_fake/drop_ws", admin_drop_ws, methods=["POST"]),
    ]
    return Starlette(routes=routes)


# --------------------------------------------------------------------- shapes


def _levels(levels: tuple[DepthLevel, ...]) -> list[dict[str, Any]]:
    rows = [{"price": lv.price, "quantity": lv.quantity, "orders": lv.orders} for lv in levels]
    return rows + [{"price": 0, "quantity": 0, "orders": 0}] * (5 - len(rows))


def _ohlc(s: Snapshot) -> dict[str, float]:
    return {"open": s.open, "high": s.high, "low": s.low, "close": s.close}


def _ohlc_quote(inst: KiteInstrument, s: Snapshot) -> dict[str, Any]:
    return {"instrument_token": inst.instrument_token, "last_price": s.last_price, "ohlc": _ohlc(s)}


def _full_quote(inst: KiteInstrument, s: Snapshot) -> dict[str, Any]:
    band = s.close or s.last_price
    tick = 0.05
    return {
        "instrument_token": inst.instrument_token,
        "timestamp": ist_text(s.timestamp_ns),
        "last_trade_time": ist_text(s.last_trade_ns),
        "last_price": s.last_price,
        "last_quantity": s.last_quantity,
        "buy_quantity": s.buy_quantity,
        "sell_quantity": s.sell_quantity,
        "volume": s.volume,
        "average_price": s.average_price,
        "oi": s.oi,
        "oi_day_high": s.oi,
        "oi_day_low": s.oi,
        "net_change": s.net_change,
        "lower_circuit_limit": round(math.floor(band * 0.8 / tick) * tick, 2),
        "upper_circuit_limit": round(math.ceil(band * 1.2 / tick) * tick, 2),
        "ohlc": _ohlc(s),
        "depth": {"buy": _levels(s.buy), "sell": _levels(s.sell)},
    }


# --------------------------------------------------------------------- candles


def _candles(
    fake: FakeKite,
    inst: KiteInstrument,
    step: int,
    start: datetime,
    end: datetime,
    now_ns: int,
    with_oi: bool,
) -> list[list[Any]]:
    """Candles starting in [start, end] from ticks before now (a forming one included)."""
    calendar = fake.market.calendar
    start_ns, end_ns = dt_to_ns(start), dt_to_ns(end)
    out: list[list[Any]] = []
    first_day = start.astimezone(IST).date()
    last_day = end.astimezone(IST).date()
    for day in calendar.sessions(first_day, last_day):
        try:
            ticks = fake.market.options.day_ticks(inst.symbol, day)
        except InvalidInputError:
            continue  # an option not listed that day
        keep = int(np.searchsorted(ticks.ts_ns, now_ns, side="left"))
        if keep == 0:
            continue
        ts = np.ascontiguousarray(ticks.ts_ns[:keep])
        price = np.ascontiguousarray(ticks.price[:keep])
        cum = np.ascontiguousarray(ticks.cum_volume[:keep])
        if step == 86_400:
            stamp = dt_to_ns(datetime.combine(day, time(0, 0), tzinfo=IST))
            if first_day <= day <= last_day:
                row = [float(price[0]), float(price.max()), float(price.min()), float(price[-1])]
                out.append(_row(stamp, row, float(cum[-1]), with_oi))
            continue
        bars = build_bars(
            ts, price, cum, timeframe_s=step, volume_mode="cumulative",
            **fake.market.options.market.session_kwargs,
        )  # fmt: skip
        for k in range(len(bars["ts"])):
            stamp = int(bars["ts"][k])
            if start_ns <= stamp <= end_ns:
                ohlc = [float(bars[c][k]) for c in ("open", "high", "low", "close")]
                out.append(_row(stamp, ohlc, float(bars["volume"][k]), with_oi))
    return out


def _row(stamp: int, ohlc: list[float], volume: float, with_oi: bool) -> list[Any]:
    row: list[Any] = [candle_time(stamp), *ohlc, int(volume)]
    if with_oi:
        row.append(0)
    return row
