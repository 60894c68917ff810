"""The form bodies of Kite's order writes, validated before anything is sent.

``POST /orders/{variety}`` and ``PUT /orders/{variety}/{id}`` take form-encoded fields
(MARKET_FACTS §5). Everything Kite would refuse up front and that we can know locally is
refused here with :class:`~mental_trader.errors.InvalidInputError`, so a bad order costs no
request (and no slot of the 10 orders/s): the tag (1-20 ASCII letters/digits), the enums,
a positive quantity, the price a LIMIT/SL order needs, the trigger an SL/SL-M order needs,
and ``market_protection`` on MARKET and SL-M orders (Kite rejects 0/absent since
2026-04-01: ``-1`` automatic or a percentage in (0, 100]).
"""

from __future__ import annotations

import re

from mental_trader.errors import InvalidInputError

__all__ = [
    "PROTECTED_ORDER_TYPES",
    "check_protection",
    "check_variety",
    "modify_form",
    "place_form",
    "validate_tag",
]

_TAG = re.compile(r"[A-Za-z0-9]{1,20}")
_VARIETIES = frozenset({"regular", "amo", "co", "iceberg", "auction"})
_SIDES = frozenset({"BUY", "SELL"})
_ORDER_TYPES = frozenset({"MARKET", "LIMIT", "SL", "SL-M"})
_PRODUCTS = frozenset({"CNC", "NRML", "MIS", "MTF", "CO"})
_VALIDITIES = frozenset({"DAY", "IOC", "TTL"})
#: Order types that Kite (since 2026-04-01) rejects without market protection.
PROTECTED_ORDER_TYPES = frozenset({"MARKET", "SL-M"})


def validate_tag(tag: str) -> str:
    """Return ``tag`` if Kite accepts it as an order tag (1-20 ASCII letters/digits).

    Raises:
        InvalidInputError: otherwise.
    """
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise InvalidInputError(f"order tag must be 1-20 ASCII letters or digits, got {tag!r}")
    return tag


def check_protection(value: float) -> float:
    """Return ``value`` if it is a valid market protection: -1 or a percentage in (0, 100].

    Raises:
        InvalidInputError: otherwise (0 included: Kite rejects it on MARKET/SL-M).
    """
    if value != -1 and not 0 < value <= 100:
        raise InvalidInputError(
            f"market_protection must be -1 (automatic) or in (0, 100] percent, got {value}"
        )
    return value


def check_variety(variety: str) -> str:
    """Return ``variety`` if Kite knows it (regular, amo, co, iceberg, auction).

    Raises:
        InvalidInputError: otherwise.
    """
    return _choice(variety, _VARIETIES, "variety")


def _num(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() else repr(float(value))


def _choice(value: str, allowed: frozenset[str], what: str) -> str:
    if value not in allowed:
        raise InvalidInputError(f"{what} must be one of {sorted(allowed)}, got {value!r}")
    return value


def _quantity(quantity: int) -> str:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise InvalidInputError(f"quantity must be a positive int, got {quantity!r}")
    return str(quantity)


def place_form(
    *,
    tag: str,
    exchange: str,
    tradingsymbol: str,
    transaction_type: str,
    order_type: str,
    quantity: int,
    product: str,
    price: float | None,
    trigger_price: float | None,
    validity: str,
    validity_ttl: int | None,
    disclosed_quantity: int | None,
    market_protection: float,
    freeze_qty: int | None,
) -> dict[str, str]:
    """The form of a placement (arguments as :meth:`~.rest.KiteRest.place_order`;
    ``market_protection`` already resolved). ``autoslice=true`` when ``quantity`` exceeds
    a positive ``freeze_qty``.

    Raises:
        InvalidInputError: a field Kite would refuse.
    """
    if not exchange or not tradingsymbol:
        raise InvalidInputError("exchange and tradingsymbol are required")
    form = {
        "tradingsymbol": tradingsymbol,
        "exchange": exchange,
        "transaction_type": _choice(transaction_type, _SIDES, "transaction_type"),
        "order_type": _choice(order_type, _ORDER_TYPES, "order_type"),
        "quantity": _quantity(quantity),
        "product": _choice(product, _PRODUCTS, "product"),
        "validity": _choice(validity, _VALIDITIES, "validity"),
        "tag": validate_tag(tag),
    }
    if order_type in ("LIMIT", "SL"):
        if price is None or not price > 0:
            raise InvalidInputError(f"{order_type} order needs price > 0, got {price}")
        form["price"] = _num(price)
    if order_type in ("SL", "SL-M"):
        if trigger_price is None or not trigger_price > 0:
            raise InvalidInputError(f"{order_type} order needs trigger_price > 0")
        form["trigger_price"] = _num(trigger_price)
    if order_type in PROTECTED_ORDER_TYPES:
        form["market_protection"] = _num(check_protection(market_protection))
    if validity == "TTL":
        if not validity_ttl or validity_ttl <= 0:
            raise InvalidInputError("validity TTL needs validity_ttl minutes > 0")
        form["validity_ttl"] = str(validity_ttl)
    if disclosed_quantity:
        form["disclosed_quantity"] = str(disclosed_quantity)
    if freeze_qty is not None and freeze_qty > 0 and quantity > freeze_qty:
        form["autoslice"] = "true"
    return form


def modify_form(
    *,
    order_type: str | None,
    quantity: int | None,
    price: float | None,
    trigger_price: float | None,
    disclosed_quantity: int | None,
    validity: str | None,
    market_protection: float,
) -> dict[str, str]:
    """The form of a modification: only the given fields; ``market_protection`` (already
    resolved) is added when ``order_type`` is MARKET or SL-M.

    Raises:
        InvalidInputError: a field Kite would refuse.
    """
    form: dict[str, str] = {}
    if order_type is not None:
        form["order_type"] = _choice(order_type, _ORDER_TYPES, "order_type")
        if order_type in PROTECTED_ORDER_TYPES:
            form["market_protection"] = _num(check_protection(market_protection))
    if quantity is not None:
        form["quantity"] = _quantity(quantity)
    if price is not None:
        form["price"] = _num(price)
    if trigger_price is not None:
        form["trigger_price"] = _num(trigger_price)
    if disclosed_quantity is not None:
        form["disclosed_quantity"] = str(disclosed_quantity)
    if validity is not None:
        form["validity"] = _choice(validity, _VALIDITIES, "validity")
    return form
