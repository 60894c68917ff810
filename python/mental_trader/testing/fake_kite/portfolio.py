"""The fake account's portfolio: positions from the order book's trades, and margins.

Positions are per (symbol, product), all intraday (the fake has no overnight book), marked
to the sim market's last price. Margins are the equity segment's cash less the cost of
the open positions plus their unrealised P&L (a simple stand-in for Kite's RMS figures).
"""

from __future__ import annotations

from typing import Any

from mental_trader.testing.fake_kite.orders import FakeTrade, OrderBook

__all__ = ["margins", "positions"]


def positions(book: OrderBook) -> dict[str, list[dict[str, Any]]]:
    """``{"net": [...], "day": [...]}`` (the fake has no overnight positions)."""
    now = book.now_ns()
    books: dict[tuple[str, str], list[FakeTrade]] = {}
    for trade in book.trades:
        books.setdefault((trade.order.inst.symbol, trade.order.product), []).append(trade)
    rows = []
    for (symbol, product), trades in books.items():
        inst = trades[0].order.inst
        bq = sum(t.quantity for t in trades if t.order.transaction_type == "BUY")
        sq = sum(t.quantity for t in trades if t.order.transaction_type == "SELL")
        bv = sum(t.quantity * t.price for t in trades if t.order.transaction_type == "BUY")
        sv = sum(t.quantity * t.price for t in trades if t.order.transaction_type == "SELL")
        snap = book.market.snapshot(symbol, now)
        last = snap.last_price if snap is not None else 0.0
        qty = bq - sq
        pnl = round(sv - bv + qty * last, 2)
        avg = (bv / bq if qty > 0 else sv / sq if qty < 0 else 0.0) if qty else 0.0
        rows.append(
            {
                "tradingsymbol": inst.instrument.tradingsymbol,
                "exchange": inst.instrument.exchange,
                "instrument_token": inst.instrument_token,
                "product": product,
                "quantity": qty,
                "overnight_quantity": 0,
                "multiplier": 1,
                "average_price": round(avg, 4),
                "close_price": snap.close if snap is not None else 0.0,
                "last_price": last,
                "value": round(sv - bv, 2),
                "pnl": pnl,
                "m2m": pnl,
                "unrealised": pnl,
                "realised": 0,
                "buy_quantity": bq,
                "buy_price": round(bv / bq, 4) if bq else 0,
                "buy_value": round(bv, 2),
                "buy_m2m": round(bv, 2),
                "sell_quantity": sq,
                "sell_price": round(sv / sq, 4) if sq else 0,
                "sell_value": round(sv, 2),
                "sell_m2m": round(sv, 2),
                "day_buy_quantity": bq,
                "day_buy_price": round(bv / bq, 4) if bq else 0,
                "day_buy_value": round(bv, 2),
                "day_sell_quantity": sq,
                "day_sell_price": round(sv / sq, 4) if sq else 0,
                "day_sell_value": round(sv, 2),
            }
        )
    return {"net": rows, "day": [dict(r) for r in rows]}


def margins(book: OrderBook) -> dict[str, Any]:
    """``GET /user/margins``: equity from the fake's cash and positions; no commodity."""
    net_rows = positions(book)["net"]
    debits = sum(abs(r["quantity"]) * r["average_price"] for r in net_rows)
    m2m = sum(r["pnl"] for r in net_rows)
    cash = book.cash
    zeros = dict.fromkeys(
        ("exposure", "m2m_realised", "option_premium", "payout", "span", "holding_sales",
         "turnover", "liquid_collateral", "stock_collateral", "delivery"),
        0,
    )  # fmt: skip

    def segment(enabled: bool, debit: float, unrealised: float) -> dict[str, Any]:
        live = round(cash - debit + unrealised, 2) if enabled else 0
        return {
            "enabled": enabled,
            "net": live,
            "available": {
                "adhoc_margin": 0,
                "cash": cash if enabled else 0,
                "opening_balance": cash if enabled else 0,
                "live_balance": live,
                "collateral": 0,
                "intraday_payin": 0,
            },
            "utilised": {
                **zeros,
                "debits": round(debit, 2),
                "m2m_unrealised": round(unrealised, 2),
            },
        }

    return {"equity": segment(True, debits, m2m), "commodity": segment(False, 0.0, 0.0)}
