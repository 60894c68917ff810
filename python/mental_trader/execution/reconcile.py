"""Start-up reconciliation with Kite: orders and positions, before any trading.

:func:`reconcile` brings the store up to date with what the broker did while we were not
watching, then checks that the broker's positions are the store's open round trips. Any
failure to read the broker, or a difference it cannot explain, raises
:class:`ReconcileError`: the service must refuse to trade (never guess). Steps:

1. **Orders left live** in the store (INTENT, SUBMITTED, UNKNOWN, OPEN, PARTIALLY_FILLED)
   are looked up by tag in today's order book (read once, successfully, or we stop):

   * not there: the order was never placed (an INTENT killed before sending, or an
     ambiguous placement that never reached the book): REJECTED "not placed (not in the
     order book)"; one from an earlier day that had no fills is CANCELLED (a DAY order
     expires). One that had fills but is not in the book cannot be explained: error.
   * there and still live (``cancel_live``, the default): cancelled, because no one works
     it after a restart (the executor starts without working orders); we wait until Kite
     reports every slice terminal.
   * there and terminal: its fills (by trade id, through ``store.apply_fill``, which
     dedupes; charged per executed Kite order) and its final state.

2. **Orders with our tag that the store does not have live** must match it: unknown to the
   store yet live or filled at Kite, or filled differently: error.
3. **Round trips** are brought up to date from the stored fills
   (:func:`~.repair.replay`): an entry filled while we were down, or whose fill a killed
   process stored without writing its round trip, is opened; exits that cover a round
   trip close it; a partial exit leaves the rest open. What it cannot explain: error.
4. **Positions**: the broker's net positions of ``product`` and the open round trips'
   remaining quantities, per symbol (signed); any difference names the symbols.

The same state mapping, event ids and fill ids as :class:`~.live.KiteGateway` are used,
so an update or fill seen again later by the gateway is applied once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from mental_trader.brokers.kite.errors import KiteError
from mental_trader.calendar import IST
from mental_trader.errors import BrokerError, InvalidInputError, StorageError
from mental_trader.execution.book import OrderCharges
from mental_trader.execution.charges import ChargesTable, segment_for
from mental_trader.execution.kite_state import (
    NOT_PLACED,
    Slice,
    fill_from_trade,
    fold,
    is_our_tag,
    update_event_id,
)
from mental_trader.execution.orders import instrument_for
from mental_trader.execution.repair import Replay, replay
from mental_trader.models import (
    TERMINAL_ORDER_STATUSES,
    Fill,
    Instrument,
    OrderRecord,
    OrderStatus,
    OrderUpdate,
)

if TYPE_CHECKING:
    from mental_trader.brokers.kite.payloads import KiteOrder
    from mental_trader.brokers.kite.rest import KiteRest
    from mental_trader.risk import Clock
    from mental_trader.storage.base import Store

__all__ = ["LIVE_STATUSES", "ReconcileError", "ReconcileReport", "reconcile"]

log = logging.getLogger(__name__)

#: Store states of an order that may still change at the broker.
LIVE_STATUSES = (
    OrderStatus.INTENT,
    OrderStatus.SUBMITTED,
    OrderStatus.UNKNOWN,
    OrderStatus.OPEN,
    OrderStatus.PARTIALLY_FILLED,
)
_MANY = 1_000_000  # load every row (start-up, once)


class ReconcileError(BrokerError):
    """Reconciliation could not read the broker or found what it cannot explain: do not
    trade until a human looks.

    Attributes:
        symbols: the symbols concerned (sorted; empty when the broker could not be read).
        client_ids: the orders concerned.
    """

    def __init__(
        self, message: str, *, symbols: Sequence[str] = (), client_ids: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.symbols = tuple(sorted(set(symbols)))
        self.client_ids = tuple(client_ids)


@dataclass(slots=True)
class ReconcileReport:
    """What :func:`reconcile` did (for the log and the audit trail).

    Attributes:
        checked: store orders that were live.
        not_placed: client ids marked REJECTED / CANCELLED because Kite never had them.
        cancelled: client ids whose live slices were cancelled at Kite.
        updated: client ids whose state or fills changed.
        fills: fills newly applied.
        opened: round trips opened from fills that happened while we were down.
        closed: round trips closed likewise.
        positions: the broker's net position per symbol (signed), the product's only.
    """

    checked: int = 0
    not_placed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    fills: int = 0
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)


async def _book(rest: KiteRest) -> dict[str, list[KiteOrder]]:
    try:
        orders = await rest.orders()
    except (KiteError, BrokerError) as exc:
        raise ReconcileError(f"cannot read Kite's order book: {exc}") from exc
    by_tag: dict[str, list[KiteOrder]] = {}
    for order in orders:
        if order.tag:
            by_tag.setdefault(order.tag, []).append(order)
    return by_tag


def _slices(orders: Sequence[KiteOrder]) -> list[Slice]:
    out = []
    for order in orders:
        piece = Slice(order.order_id)
        piece.merge(order)
        out.append(piece)
    return out


async def reconcile(
    store: Store,
    rest: KiteRest,
    *,
    clock: Clock,
    product: str = "MIS",
    charges: ChargesTable | None = None,
    instruments: Mapping[str, Instrument] | None = None,
    cancel_live: bool = True,
    settle_timeout_s: float = 15.0,
    settle_poll_s: float = 0.5,
) -> ReconcileReport:
    """Reconcile the store with Kite before trading (see the module docstring).

    Args:
        store: the store (orders, fills, round trips).
        rest: the Kite REST client.
        clock: stamps the updates written.
        product: the product whose net positions are compared (PRODUCT, e.g. MIS).
        charges: prices the fills applied here (None: charges 0).
        instruments: instrument facts by symbol (option round trips need expiry/strike).
        cancel_live: cancel orders still live at Kite (else such an order is an error).
        settle_timeout_s: how long to wait for cancelled orders to become terminal.
        settle_poll_s: order book re-read period while waiting.

    Returns:
        What was done.

    Raises:
        ReconcileError: the broker could not be read, an order or position differs in a way
            reconciliation cannot explain, or a cancelled order did not settle in time.
    """
    instruments = instruments or {}
    report = ReconcileReport()
    live = await store.load_orders(statuses=LIVE_STATUSES, limit=_MANY)
    report.checked = len(live)
    by_tag = await _book(rest)

    # 1. cancel what still lives at Kite, then wait for every slice to be terminal
    to_settle = [o.client_id for o in live if o.client_id in by_tag]
    still = _live_tags(by_tag, to_settle)
    if still and not cancel_live:
        raise ReconcileError(
            f"orders still live at Kite: {', '.join(still)}",
            symbols=[o.symbol for o in live if o.client_id in still],
            client_ids=still,
        )
    for cid in still:
        await _cancel(rest, by_tag[cid])
        report.cancelled.append(cid)
    if still:
        by_tag = await _settle(rest, still, by_tag, settle_timeout_s, settle_poll_s)

    # 2. bring each live order of the store up to date
    problems: list[str] = []
    symbols: list[str] = []
    today = clock.now().astimezone(IST).date()
    for record in live:
        found = by_tag.get(record.client_id)
        try:
            if found:
                await _apply(
                    store,
                    rest,
                    record,
                    found,
                    report,
                    clock,
                    product,
                    charges,
                    instruments,
                )
            else:
                await _not_placed(store, record, today, clock, report)
        except ReconcileError as exc:
            problems.append(str(exc))
            symbols.append(record.symbol)
        except (KiteError, StorageError) as exc:
            raise ReconcileError(
                f"reconciling order {record.client_id} failed: {exc}",
                symbols=[record.symbol],
                client_ids=[record.client_id],
            ) from exc

    # 3. our tags the store does not hold live must agree with it
    live_ids = {o.client_id for o in live}
    for tag, orders in by_tag.items():
        if tag in live_ids or not is_our_tag(tag):
            continue
        problem = await _check_finished(store, tag, orders)
        if problem:
            problems.append(problem)
            symbols.append(orders[0].symbol)
    if problems:
        raise ReconcileError("; ".join(problems), symbols=symbols)

    # 4. round trips from the stored fills (a fill stored by a process killed before
    #    its round trip row was written, or fills applied above), then positions
    try:
        trips = await replay(store, instruments=instruments)
    except StorageError as exc:
        raise ReconcileError(f"replaying the stored fills failed: {exc}") from exc
    report.opened, report.closed = trips.opened, trips.closed
    if trips.problems:
        raise ReconcileError("; ".join(trips.problems), symbols=trips.symbols)
    report.positions = await _compare_positions(rest, product, trips)
    log.info(
        "reconciled %d live order(s): %d not placed, %d cancelled, %d fill(s), "
        "%d opened, %d closed; positions %s",
        report.checked,
        len(report.not_placed),
        len(report.cancelled),
        report.fills,
        len(report.opened),
        len(report.closed),
        report.positions or "flat",
    )
    return report


def _live_tags(by_tag: Mapping[str, Sequence[KiteOrder]], tags: Sequence[str]) -> list[str]:
    return [t for t in tags if any(not s.is_terminal for s in _slices(by_tag[t]))]


async def _cancel(rest: KiteRest, orders: Sequence[KiteOrder]) -> None:
    for piece, order in zip(_slices(orders), orders, strict=True):
        if piece.is_terminal:
            continue
        try:
            await rest.cancel_order(order.order_id, variety=order.variety or "regular")
        except KiteError as exc:  # e.g. it completed meanwhile: the re-read tells
            log.warning("reconcile: cancel of %s (%s) failed: %s", order.tag, order.order_id, exc)


async def _settle(
    rest: KiteRest,
    tags: Sequence[str],
    by_tag: dict[str, list[KiteOrder]],
    timeout_s: float,
    poll_s: float,
) -> dict[str, list[KiteOrder]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        await asyncio.sleep(poll_s)
        by_tag = await _book(rest)
        still = _live_tags(by_tag, [t for t in tags if t in by_tag])
        if not still:
            return by_tag
        if loop.time() >= deadline:
            raise ReconcileError(
                f"orders still live at Kite after cancelling: {', '.join(still)}",
                symbols=[by_tag[t][0].symbol for t in still],
                client_ids=still,
            )


async def _not_placed(
    store: Store, record: OrderRecord, today: date, clock: Clock, report: ReconcileReport
) -> None:
    if record.filled_qty > 0:
        raise ReconcileError(
            f"order {record.client_id} has fills but is not in Kite's order book",
            symbols=[record.symbol],
            client_ids=[record.client_id],
        )
    earlier = record.created_at.astimezone(IST).date() != today
    placed_before = record.status in (OrderStatus.OPEN, OrderStatus.SUBMITTED)
    if earlier and placed_before:
        status, message = OrderStatus.CANCELLED, "expired (not in today's order book)"
    else:
        status, message = OrderStatus.REJECTED, NOT_PLACED
    update = OrderUpdate(
        record.client_id, "reconcile-" + update_event_id(status), status, clock.now(), None, message
    )
    await store.apply_order_update(update)
    report.not_placed.append(record.client_id)
    log.warning("reconcile: order %s %s: %s", record.client_id, status, message)


async def _apply(
    store: Store,
    rest: KiteRest,
    record: OrderRecord,
    orders: Sequence[KiteOrder],
    report: ReconcileReport,
    clock: Clock,
    product: str,
    charges: ChargesTable | None,
    instruments: Mapping[str, Instrument],
) -> None:
    cid = record.client_id
    slices = _slices(orders)
    if any(not s.is_terminal for s in slices):
        raise ReconcileError(f"order {cid} is still live at Kite", client_ids=[cid])
    changed = False
    if record.status in (OrderStatus.INTENT, OrderStatus.UNKNOWN):  # keep Kite's order id
        changed = await store.apply_order_update(
            OrderUpdate(
                cid,
                update_event_id(OrderStatus.SUBMITTED),
                OrderStatus.SUBMITTED,
                clock.now(),
                orders[0].order_id,
                "found by tag at start-up",
            )
        )
    inst = instrument_for(instruments, record.symbol)
    fills: list[Fill] = []
    priced = OrderCharges()  # one order's fills: charged per executed (Kite) order
    for piece in slices:
        if piece.filled <= 0:
            continue
        for trade in await rest.order_trades(piece.order_id):
            fill = fill_from_trade(trade, cid, record.symbol, record.side, clock.now())
            fills.append(_priced(priced, fill, charges, inst, record.product or product))
    for fill in sorted(fills, key=lambda f: f.ts):
        if await store.apply_fill(fill):
            report.fills += 1
            changed = True
    filled = sum(f.qty for f in fills)
    status, message = fold(record.qty, slices, filled=filled)
    if status is not OrderStatus.FILLED:
        update = OrderUpdate(cid, update_event_id(status), status, clock.now(), None, message)
        changed = await store.apply_order_update(update) or changed
    if changed:
        report.updated.append(cid)


def _priced(
    priced: OrderCharges,
    fill: Fill,
    charges: ChargesTable | None,
    inst: Instrument,
    product: str,
) -> Fill:
    if charges is None:
        return fill
    segment = segment_for(product, inst.instrument_type)

    def cost(f: Fill) -> float:
        try:
            day = f.ts.astimezone(IST).date()
            return charges.order_total(day, segment, f.side, f.price, f.qty, inst)
        except InvalidInputError as exc:
            log.error("reconcile: no charges for %s: %s", f.trade_id, exc)
            return 0.0

    return priced.price(fill, cost)


async def _check_finished(store: Store, tag: str, orders: Sequence[KiteOrder]) -> str:
    """A problem with an order of ours the store holds as finished (or not at all), or ''."""
    slices = _slices(orders)
    filled = sum(s.filled for s in slices)
    live = any(not s.is_terminal for s in slices)
    record = await store.get_order(tag)
    if record is None:
        if live or filled:
            return f"order {tag} ({orders[0].symbol}) at Kite is unknown to the store"
        return ""
    if record.status not in TERMINAL_ORDER_STATUSES:
        return ""
    if live:
        return f"order {tag} is {record.status} in the store but live at Kite"
    if filled != record.filled_qty:
        return f"order {tag} filled {filled} at Kite but {record.filled_qty} in the store"
    return ""


async def _compare_positions(rest: KiteRest, product: str, trips: Replay) -> dict[str, int]:
    try:
        positions = await rest.positions()
    except (KiteError, BrokerError) as exc:
        raise ReconcileError(f"cannot read Kite's positions: {exc}") from exc
    broker: dict[str, int] = {}
    for p in positions.net:
        if p.product == product and p.quantity:
            broker[p.symbol] = broker.get(p.symbol, 0) + p.quantity
    ours = trips.net()
    differ = sorted(s for s in broker.keys() | ours.keys() if broker.get(s, 0) != ours.get(s, 0))
    if differ:
        detail = ", ".join(f"{s} (Kite {broker.get(s, 0)}, store {ours.get(s, 0)})" for s in differ)
        raise ReconcileError(f"positions differ from Kite: {detail}", symbols=differ)
    return broker
