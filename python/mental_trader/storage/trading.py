"""The trading tables of the store: orders and their events, fills, positions, round trips
(stock and option trades) and P&L, written once for both backends (see ``base.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from mental_trader.calendar import IST
from mental_trader.errors import StorageError
from mental_trader.models import (
    DailyPnl,
    Fill,
    OptionTrade,
    OrderIntent,
    OrderRecord,
    OrderStatus,
    OrderUpdate,
    Position,
    Side,
    Trade,
    TradeStatus,
    can_transition,
)
from mental_trader.storage.backend import Backend

__all__ = ["TradingTables"]

log = logging.getLogger(__name__)

_ORDER_COLS = (
    "client_id, symbol, side, qty, order_type, product, price, trigger_price, signal_id, "
    "status, broker_order_id, filled_qty, avg_price, message, created_at, updated_at"
)
_TRADE_COLS = (
    "id, symbol, side, qty, entry_ts, entry_price, strategy, signal_id, entry_charges, status, "
    "exit_ts, exit_price, exit_charges, exit_reason, gross_pnl, net_pnl"
)
_OPTION_TRADE_COLS = (
    "id, underlying, symbol, expiry, strike, option_type, side, lots, lot_size, entry_ts, "
    "entry_price, underlying_signal_id, underlying_entry_price, entry_charges, status, exit_ts, "
    "exit_price, underlying_exit_price, exit_charges, exit_reason, gross_pnl, net_pnl"
)
_FILL_COLS = "trade_id, client_id, symbol, side, qty, price, ts, charges"

_RoundTrip = TypeVar("_RoundTrip", Trade, OptionTrade)


def _pnl(side: Side, qty: int, entry: float, exit_: float) -> float:
    return side.sign * (exit_ - entry) * qty


class TradingTables(Backend):
    """Orders, fills, positions, trades and P&L (a part of :class:`~.base.Store`)."""

    # ----------------------------------------------------------------- orders and fills

    async def record_order_intent(self, intent: OrderIntent, now: datetime) -> bool:
        """Durably record an order BEFORE it is sent; return False if the client id exists.

        A repeated call with the same client id changes nothing, so a caller that lost the
        answer may call again; the caller must then not send a second order.
        """
        created = self._ts(intent.created_at or now)
        async with self.transaction() as conn:
            row = await conn.fetchrow(
                f"INSERT INTO orders ({_ORDER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                "$10, NULL, 0, NULL, '', $11, $11) ON CONFLICT (client_id) DO NOTHING "
                "RETURNING client_id",
                intent.client_id,
                intent.symbol,
                intent.side.value,
                intent.qty,
                intent.order_type,
                intent.product,
                intent.price,
                intent.trigger_price,
                intent.signal_id,
                OrderStatus.INTENT.value,
                created,
            )
        return row is not None

    async def apply_order_update(self, update: OrderUpdate) -> bool:
        """Apply one order state transition at most once; return whether it changed the order.

        A repeated ``event_id`` or a transition the state machine forbids (anything out of a
        terminal state) is recorded nowhere and returns False.

        Raises:
            StorageError: the order is unknown.
        """
        async with self.transaction() as conn:
            row = await conn.fetchrow(
                "SELECT status FROM orders WHERE client_id = $1 FOR UPDATE"
                if self.backend == "postgresql"
                else "SELECT status FROM orders WHERE client_id = $1",
                update.client_id,
            )
            if row is None:
                raise StorageError(f"order update for unknown client id {update.client_id!r}")
            current = OrderStatus(row[0])
            if update.status != current and not can_transition(current, update.status):
                log.warning(
                    "order %s: ignoring transition %s -> %s",
                    update.client_id,
                    current,
                    update.status,
                )
                return False
            inserted = await conn.fetchrow(
                "INSERT INTO order_events (client_id, event_id, status, ts, broker_order_id, "
                "message) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (client_id, event_id) DO NOTHING RETURNING event_id",
                update.client_id,
                update.event_id,
                update.status.value,
                self._ts(update.ts),
                update.broker_order_id,
                update.message,
            )
            if inserted is None:
                return False
            await conn.execute(
                "UPDATE orders SET status = $2, "
                "broker_order_id = COALESCE($3, broker_order_id), message = $4, updated_at = $5 "
                "WHERE client_id = $1",
                update.client_id,
                update.status.value,
                update.broker_order_id,
                update.message,
                self._ts(update.ts),
            )
        return True

    async def get_order(self, client_id: str) -> OrderRecord | None:
        """One order by client id, or None."""
        async with self.read() as conn:
            row = await conn.fetchrow(
                f"SELECT {_ORDER_COLS} FROM orders WHERE client_id = $1", client_id
            )
        return None if row is None else self._order(row)

    async def load_orders(
        self, *, statuses: Iterable[OrderStatus] | None = None, limit: int = 1000
    ) -> list[OrderRecord]:
        """Orders, newest first, optionally only those in ``statuses``."""
        wanted = None if statuses is None else {s.value for s in statuses}
        async with self.read() as conn:
            rows = await conn.fetch(
                f"SELECT {_ORDER_COLS} FROM orders ORDER BY created_at DESC, client_id DESC"
            )
        out = [self._order(r) for r in rows if wanted is None or r[9] in wanted]
        return out[:limit]

    def _order(self, r: Sequence[Any]) -> OrderRecord:
        return OrderRecord(
            client_id=r[0],
            symbol=r[1],
            side=Side(r[2]),
            qty=int(r[3]),
            order_type=r[4],
            product=r[5],
            price=None if r[6] is None else float(r[6]),
            trigger_price=None if r[7] is None else float(r[7]),
            signal_id=r[8],
            status=OrderStatus(r[9]),
            broker_order_id=r[10],
            filled_qty=int(r[11]),
            avg_price=None if r[12] is None else float(r[12]),
            message=r[13],
            created_at=self._dt(r[14]),
            updated_at=self._dt(r[15]),
        )

    async def apply_fill(self, fill: Fill) -> bool:
        """Apply an execution once (keyed by broker trade id); return whether it was new.

        Updates the order's filled quantity and average price and moves it to
        PARTIALLY_FILLED or FILLED, in the same transaction as the fill row.

        Raises:
            StorageError: the order is unknown, or the fill would overfill it.
        """
        async with self.transaction() as conn:
            order = await conn.fetchrow(
                "SELECT qty, filled_qty, avg_price, status, side, symbol FROM orders "
                "WHERE client_id = $1" + (" FOR UPDATE" if self.backend == "postgresql" else ""),
                fill.client_id,
            )
            if order is None:
                raise StorageError(
                    f"fill {fill.trade_id!r} for unknown client id {fill.client_id!r}"
                )
            inserted = await conn.fetchrow(
                f"INSERT INTO fills ({_FILL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (trade_id) DO NOTHING RETURNING trade_id",
                fill.trade_id,
                fill.client_id,
                fill.symbol,
                fill.side.value,
                fill.qty,
                fill.price,
                self._ts(fill.ts),
                fill.charges,
            )
            if inserted is None:
                return False
            qty, filled, avg = int(order[0]), int(order[1]), order[2]
            if fill.side.value != order[4] or fill.symbol != order[5]:
                raise StorageError(
                    f"fill {fill.trade_id!r} ({fill.side} {fill.symbol}) does not match order "
                    f"{fill.client_id!r} ({order[4]} {order[5]})"
                )
            new_filled = filled + fill.qty
            if new_filled > qty:
                raise StorageError(
                    f"fill {fill.trade_id!r} overfills order {fill.client_id!r}: "
                    f"{new_filled} > {qty}"
                )
            new_avg = (
                fill.price
                if avg is None or filled == 0
                else (float(avg) * filled + fill.price * fill.qty) / new_filled
            )
            current = OrderStatus(order[3])
            status = OrderStatus.FILLED if new_filled == qty else OrderStatus.PARTIALLY_FILLED
            if status != current and not can_transition(current, status):
                status = current
            await conn.execute(
                "UPDATE orders SET filled_qty = $2, avg_price = $3, status = $4, updated_at = $5 "
                "WHERE client_id = $1",
                fill.client_id,
                new_filled,
                new_avg,
                status.value,
                self._ts(fill.ts),
            )
        return True

    async def load_fills(
        self, *, client_id: str | None = None, symbol: str | None = None
    ) -> list[Fill]:
        """Fills in time order, optionally of one order or one symbol."""
        async with self.read() as conn:
            rows = await conn.fetch(
                f"SELECT {_FILL_COLS} FROM fills WHERE ($1 = '' OR client_id = $1) "
                "AND ($2 = '' OR symbol = $2) ORDER BY ts, trade_id",
                client_id or "",
                symbol or "",
            )
        return [
            Fill(
                trade_id=r[0],
                client_id=r[1],
                symbol=r[2],
                side=Side(r[3]),
                qty=int(r[4]),
                price=float(r[5]),
                ts=self._dt(r[6]),
                charges=float(r[7]),
            )
            for r in rows
        ]

    async def positions(self) -> list[Position]:
        """Net position per symbol from every fill, with realized P&L (average-cost method)."""
        book: dict[str, list[float]] = {}  # symbol → [qty, avg, realized, charges]
        for f in await self.load_fills():
            pos = book.setdefault(f.symbol, [0.0, 0.0, 0.0, 0.0])
            qty, avg = pos[0], pos[1]
            signed = f.side.sign * f.qty
            pos[3] += f.charges
            if qty == 0 or (qty > 0) == (signed > 0):  # opening or adding
                pos[1] = (avg * abs(qty) + f.price * abs(signed)) / (abs(qty) + abs(signed))
                pos[0] = qty + signed
                continue
            closing = min(abs(qty), abs(signed))
            pos[2] += closing * (f.price - avg) * (1 if qty > 0 else -1)
            pos[0] = qty + signed
            if pos[0] == 0:
                pos[1] = 0.0
            elif (pos[0] > 0) != (qty > 0):  # flipped: the rest opens at this price
                pos[1] = f.price
        return [
            Position(
                symbol=s,
                qty=int(p[0]),
                avg_price=p[1] if p[0] else None,
                realized_pnl=p[2],
                charges=p[3],
            )
            for s, p in sorted(book.items())
        ]

    # ----------------------------------------------------------------- trades

    async def open_trade(self, trade: Trade) -> bool:
        """Record an open round trip; return False if its id exists (nothing changes)."""
        async with self.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO trades (id, symbol, side, qty, entry_ts, entry_price, strategy, "
                "signal_id, entry_charges, status, exit_charges, exit_reason) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, '') "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                trade.id,
                trade.symbol,
                trade.side.value,
                trade.qty,
                self._ts(trade.entry_ts),
                trade.entry_price,
                trade.strategy,
                trade.signal_id,
                trade.entry_charges,
                TradeStatus.OPEN.value,
            )
        return row is not None

    async def close_trade(
        self,
        trade_id: str,
        *,
        exit_ts: datetime,
        exit_price: float,
        exit_charges: float = 0.0,
        reason: str = "",
    ) -> Trade:
        """Close a round trip and compute its P&L; closing it again returns it unchanged.

        Raises:
            StorageError: no trade has this id.
        """
        return await self._close_round_trip(
            "trades",
            _TRADE_COLS,
            self._trade,
            trade_id,
            exit_ts=exit_ts,
            exit_price=exit_price,
            exit_charges=exit_charges,
            reason=reason,
        )

    async def _close_round_trip(
        self,
        table: str,
        cols: str,
        parse: Callable[[Sequence[Any]], _RoundTrip],
        trade_id: str,
        *,
        exit_ts: datetime,
        exit_price: float,
        exit_charges: float,
        reason: str,
        extra: Mapping[str, Any] | None = None,
    ) -> _RoundTrip:
        """Close a trade or option trade once: P&L net of both legs' charges, in one
        transaction; an already closed one comes back unchanged."""
        select = f"SELECT {cols} FROM {table} WHERE id = $1"
        sets = ["status", "exit_ts", "exit_price", "exit_charges", "exit_reason", "gross_pnl"]
        sets += ["net_pnl", *(extra or {})]
        update = ", ".join(f"{col} = ${i}" for i, col in enumerate(sets, start=2))
        async with self.transaction() as conn:
            row = await conn.fetchrow(select, trade_id)
            if row is None:
                what = table.removesuffix("s").replace("_", " ")
                raise StorageError(f"close of unknown {what} {trade_id!r}")
            trade = parse(row)
            if trade.status is TradeStatus.CLOSED:
                return trade
            gross = _pnl(trade.side, trade.qty, trade.entry_price, exit_price)
            net = gross - trade.entry_charges - exit_charges
            await conn.execute(
                f"UPDATE {table} SET {update} WHERE id = $1",
                trade_id,
                TradeStatus.CLOSED.value,
                self._ts(exit_ts),
                exit_price,
                exit_charges,
                reason,
                gross,
                net,
                *(extra or {}).values(),
            )
            row = await conn.fetchrow(select, trade_id)
        assert row is not None
        return parse(row)

    async def load_trades(
        self,
        *,
        status: TradeStatus | None = None,
        symbol: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[Trade]:
        """Round trips, newest entry first, filtered by status, symbol and entry time."""
        since_v = self._ts(since) if since is not None else self._ts_ns(-(2**62))
        async with self.read() as conn:
            rows = await conn.fetch(
                f"SELECT {_TRADE_COLS} FROM trades WHERE ($1 = '' OR status = $1) "
                "AND ($2 = '' OR symbol = $2) AND entry_ts >= $3 "
                "ORDER BY entry_ts DESC, id DESC LIMIT $4",
                status.value if status else "",
                symbol or "",
                since_v,
                limit,
            )
        return [self._trade(r) for r in rows]

    def _trade(self, r: Sequence[Any]) -> Trade:
        return Trade(
            id=r[0],
            symbol=r[1],
            side=Side(r[2]),
            qty=int(r[3]),
            entry_ts=self._dt(r[4]),
            entry_price=float(r[5]),
            strategy=r[6],
            signal_id=r[7],
            entry_charges=float(r[8]),
            status=TradeStatus(r[9]),
            exit_ts=None if r[10] is None else self._dt(r[10]),
            exit_price=None if r[11] is None else float(r[11]),
            exit_charges=float(r[12]),
            exit_reason=r[13],
            gross_pnl=None if r[14] is None else float(r[14]),
            net_pnl=None if r[15] is None else float(r[15]),
        )

    async def open_option_trade(self, trade: OptionTrade) -> bool:
        """Record an open option round trip; return False if its id exists."""
        async with self.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO option_trades (id, underlying, symbol, expiry, strike, option_type, "
                "side, lots, lot_size, entry_ts, entry_price, underlying_signal_id, "
                "underlying_entry_price, entry_charges, status, exit_charges, exit_reason) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0, '') "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                trade.id,
                trade.underlying,
                trade.symbol,
                self._date(trade.expiry),
                trade.strike,
                trade.option_type,
                trade.side.value,
                trade.lots,
                trade.lot_size,
                self._ts(trade.entry_ts),
                trade.entry_price,
                trade.underlying_signal_id,
                trade.underlying_entry_price,
                trade.entry_charges,
                TradeStatus.OPEN.value,
            )
        return row is not None

    async def close_option_trade(
        self,
        trade_id: str,
        *,
        exit_ts: datetime,
        exit_price: float,
        underlying_exit_price: float | None = None,
        exit_charges: float = 0.0,
        reason: str = "",
    ) -> OptionTrade:
        """Close an option round trip and compute its P&L; closing it again is a no-op.

        Raises:
            StorageError: no option trade has this id.
        """
        return await self._close_round_trip(
            "option_trades",
            _OPTION_TRADE_COLS,
            self._option_trade,
            trade_id,
            exit_ts=exit_ts,
            exit_price=exit_price,
            exit_charges=exit_charges,
            reason=reason,
            extra={"underlying_exit_price": underlying_exit_price},
        )

    async def closed_pnl(self) -> tuple[dict[str, tuple[float, int]], dict[str, tuple[float, int]]]:
        """Realized net P&L and count of closed round trips: ``trades`` by symbol, and
        ``option_trades`` by underlying (the P&L attribution per leg)."""
        closed = TradeStatus.CLOSED.value
        async with self.read() as conn:
            own = await conn.fetch(
                "SELECT symbol, SUM(net_pnl), COUNT(*) FROM trades WHERE status = $1 "
                "GROUP BY symbol",
                closed,
            )
            options = await conn.fetch(
                "SELECT underlying, SUM(net_pnl), COUNT(*) FROM option_trades "
                "WHERE status = $1 GROUP BY underlying",
                closed,
            )
        return (
            {str(r[0]): (float(r[1] or 0.0), int(r[2])) for r in own},
            {str(r[0]): (float(r[1] or 0.0), int(r[2])) for r in options},
        )

    async def load_option_trades(
        self, *, status: TradeStatus | None = None, underlying: str | None = None
    ) -> list[OptionTrade]:
        """Option round trips, newest entry first."""
        async with self.read() as conn:
            rows = await conn.fetch(
                f"SELECT {_OPTION_TRADE_COLS} FROM option_trades WHERE ($1 = '' OR status = $1) "
                "AND ($2 = '' OR underlying = $2) ORDER BY entry_ts DESC, id DESC",
                status.value if status else "",
                underlying or "",
            )
        return [self._option_trade(r) for r in rows]

    def _option_trade(self, r: Sequence[Any]) -> OptionTrade:
        expiry = self._undate(r[3])
        assert expiry is not None
        return OptionTrade(
            id=r[0],
            underlying=r[1],
            symbol=r[2],
            expiry=expiry,
            strike=float(r[4]),
            option_type=r[5],
            side=Side(r[6]),
            lots=int(r[7]),
            lot_size=int(r[8]),
            entry_ts=self._dt(r[9]),
            entry_price=float(r[10]),
            underlying_signal_id=r[11],
            underlying_entry_price=None if r[12] is None else float(r[12]),
            entry_charges=float(r[13]),
            status=TradeStatus(r[14]),
            exit_ts=None if r[15] is None else self._dt(r[15]),
            exit_price=None if r[16] is None else float(r[16]),
            underlying_exit_price=None if r[17] is None else float(r[17]),
            exit_charges=float(r[18]),
            exit_reason=r[19],
            gross_pnl=None if r[20] is None else float(r[20]),
            net_pnl=None if r[21] is None else float(r[21]),
        )

    async def daily_pnl(self, start: date, end: date) -> list[DailyPnl]:
        """Net P&L per IST day (by exit time) of trades and option trades closed in [start, end]."""
        lo = datetime(start.year, start.month, start.day, tzinfo=IST)
        hi = datetime(end.year, end.month, end.day, tzinfo=IST) + timedelta(days=1)
        rows: list[Sequence[Any]] = []
        async with self.read() as conn:
            for table in ("trades", "option_trades"):
                rows += await conn.fetch(
                    f"SELECT exit_ts, gross_pnl, entry_charges + exit_charges FROM {table} "
                    "WHERE status = $1 AND exit_ts >= $2 AND exit_ts < $3",
                    TradeStatus.CLOSED.value,
                    self._ts(lo),
                    self._ts(hi),
                )
        days: dict[date, list[float]] = {}
        for r in rows:
            day = self._dt(r[0]).astimezone(IST).date()
            acc = days.setdefault(day, [0.0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += float(r[1])
            acc[2] += float(r[2])
        return [
            DailyPnl(day=d, trades=int(a[0]), gross_pnl=a[1], charges=a[2], net_pnl=a[1] - a[2])
            for d, a in sorted(days.items())
        ]
