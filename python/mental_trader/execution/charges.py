"""Indian trading charges (Zerodha rate card) from a table of dated regimes.

Every rate lives in a TOML file, none in code: the packaged default is
``mental_trader/data/charges.toml`` (MARKET_FACTS.md section 2), and the setting
``CHARGES_FILE`` points at a user's own copy. A regime applies from its ``from`` date
(inclusive) to the next regime's, keyed by the TRADE date, so a trade is always priced
with the rates in force on the day it was made.

Rounding (the contract-note convention as far as it is known):

* every line is computed unrounded in :class:`~decimal.Decimal` from the decimal text of
  the price, GST on the UNROUNDED brokerage + exchange + SEBI (+ DP) lines;
* STT is rounded to ``rounding.stt_decimals`` places (2 by default; contract notes round
  the day's STT per scrip to the rupee, which per-fill pricing cannot reproduce) and that
  rounded STT is what is charged;
* each line of the :class:`ChargeBreakdown` is then rounded half-up to
  ``rounding.decimals`` (2: paise), and ``total`` is the rounded sum of the UNROUNDED
  lines, which is how MARKET_FACTS' worked examples add up. ``total`` can therefore
  differ by a paisa from the sum of the displayed lines; ``total`` is what P&L uses.
"""

from __future__ import annotations

import importlib.resources
import logging
import math
import tomllib
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from mental_trader.errors import ConfigError, InvalidInputError
from mental_trader.models import Instrument, Side
from mental_trader.options.sizing import slice_qty

__all__ = ["SEGMENTS", "ChargeBreakdown", "ChargesTable", "segment_for"]

log = logging.getLogger(__name__)

#: The segments every regime prices.
SEGMENTS = ("equity_intraday", "equity_delivery", "futures", "options")

_CRORE = Decimal(10_000_000)
_HUNDRED = Decimal(100)
_RATE_KEYS = (
    "stt_buy_pct",
    "stt_sell_pct",
    "exchange_per_crore",
    "ipft_per_crore",
    "sebi_per_crore",
    "stamp_buy_pct",
    "gst_pct",
    "dp_per_sell",
)
_BROKERAGE_KEYS = ("brokerage_pct", "brokerage_max", "brokerage_flat")


def segment_for(product: str, instrument_type: str = "EQ") -> str:
    """The charges segment of an order: options, futures, or equity by product.

    Args:
        product: ``MIS`` (intraday), ``CNC`` (delivery) or ``NRML`` (F&O carry-forward).
        instrument_type: the instrument master's type (``EQ``, ``FUT``, ``CE``, ``PE``).

    Raises:
        InvalidInputError: an equity order with a product that equity does not have.
    """
    kind = instrument_type.upper()
    if kind in ("CE", "PE"):
        return "options"
    if kind == "FUT":
        return "futures"
    if product == "MIS":
        return "equity_intraday"
    if product == "CNC":
        return "equity_delivery"
    raise InvalidInputError(f"no equity charges segment for product {product!r}")


@dataclass(frozen=True, slots=True)
class ChargeBreakdown:
    """The charges of one executed order (one fill), in rupees, rounded (module docstring).

    ``exchange`` is the NSE transaction charge including IPFT; ``dp`` the depository charge
    on a delivery sale (before GST; its GST is in ``gst``).
    """

    brokerage: float
    stt: float
    exchange: float
    sebi: float
    stamp: float
    gst: float
    dp: float
    total: float


@dataclass(frozen=True, slots=True)
class _Rates:
    brokerage_pct: Decimal | None
    brokerage_max: Decimal | None
    brokerage_flat: Decimal | None
    stt_buy_pct: Decimal
    stt_sell_pct: Decimal
    exchange_per_crore: Decimal
    ipft_per_crore: Decimal
    sebi_per_crore: Decimal
    stamp_buy_pct: Decimal
    gst_pct: Decimal
    dp_per_sell: Decimal


def _number(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    number = Decimal(value)
    if not number.is_finite() or number < 0:
        raise ConfigError(f"{where} must be a finite number >= 0, got {value!r}")
    return number


def _rates(raw: object, where: str) -> _Rates:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} is missing or not a table")
    unknown = sorted(set(raw) - set(_RATE_KEYS) - set(_BROKERAGE_KEYS))
    missing = [key for key in _RATE_KEYS if key not in raw]
    if unknown or missing:
        raise ConfigError(f"{where}: unknown key(s) {unknown}, missing key(s) {missing}")
    got = {k: _number(raw[k], f"{where}.{k}") for k in (*_RATE_KEYS, *_BROKERAGE_KEYS) if k in raw}
    flat, pct = got.get("brokerage_flat"), got.get("brokerage_pct")
    if (flat is None) == (pct is None) or (flat is not None and "brokerage_max" in got):
        raise ConfigError(f"{where}: give brokerage_flat, or brokerage_pct (+ brokerage_max)")
    return _Rates(
        brokerage_pct=pct,
        brokerage_max=got.get("brokerage_max"),
        brokerage_flat=flat,
        **{k: got[k] for k in _RATE_KEYS},
    )


def _places(raw: object, where: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 6:
        raise ConfigError(f"{where} must be a whole number of decimal places 0..6")
    return Decimal(1).scaleb(-raw)


class ChargesTable:
    """Charges by trade date and segment. Build with :meth:`load`.

    Args:
        regimes: ``(from_date, {segment: rates})`` in ascending date order.
        decimals: quantum of the displayed lines (``Decimal("0.01")``).
        stt_decimals: quantum of the charged STT.
        source: where the table came from, for messages.
    """

    def __init__(
        self,
        regimes: list[tuple[date, dict[str, _Rates]]],
        *,
        decimals: Decimal,
        stt_decimals: Decimal,
        source: str,
    ) -> None:
        self._starts = [start for start, _ in regimes]
        self._regimes = [rates for _, rates in regimes]
        self._q = decimals
        self._stt_q = stt_decimals
        self.source = source

    @classmethod
    def load(cls, path: Path | None = None) -> ChargesTable:
        """Read a charges table: ``path``, or the packaged default when None.

        Raises:
            ConfigError: the file is unreadable, not TOML, or breaks the schema (the
                message names the file and the key).
        """
        try:
            if path is None:
                source = "packaged charges.toml"
                resource = importlib.resources.files("mental_trader.data") / "charges.toml"
                text = resource.read_text(encoding="utf-8")
            else:
                source = str(path)
                text = Path(path).read_text(encoding="utf-8")
            raw = tomllib.loads(text, parse_float=Decimal)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"charges table {path or 'default'}: {exc}") from exc
        try:
            return cls._parse(raw, source)
        except ConfigError as exc:
            raise ConfigError(f"charges table {source}: {exc}") from None

    @classmethod
    def _parse(cls, raw: dict[str, Any], source: str) -> ChargesTable:
        if raw.get("version") != 1:
            raise ConfigError(f"version must be 1, got {raw.get('version')!r}")
        rounding = raw.get("rounding")
        if not isinstance(rounding, dict):
            raise ConfigError("[rounding] table missing")
        regimes: list[tuple[date, dict[str, _Rates]]] = []
        entries = raw.get("regime")
        if not isinstance(entries, list) or not entries:
            raise ConfigError("needs at least one [[regime]]")
        for i, entry in enumerate(entries):
            start = entry.get("from")
            if type(start) is not date:
                raise ConfigError(f"regime[{i}].from must be a date (YYYY-MM-DD)")
            extra = sorted(set(entry) - {"from", *SEGMENTS})
            if extra:
                raise ConfigError(f"regime {start}: unknown segment(s) {extra}")
            rates = {seg: _rates(entry.get(seg), f"regime {start}.{seg}") for seg in SEGMENTS}
            if regimes and start <= regimes[-1][0]:
                raise ConfigError(f"regime {start} is not after regime {regimes[-1][0]}")
            regimes.append((start, rates))
        return cls(
            regimes,
            decimals=_places(rounding.get("decimals"), "rounding.decimals"),
            stt_decimals=_places(rounding.get("stt_decimals"), "rounding.stt_decimals"),
            source=source,
        )

    @property
    def first_date(self) -> date:
        """The first trade date the table prices."""
        return self._starts[0]

    def effective_from(self, trade_date: date) -> date:
        """The start date of the regime in force on ``trade_date``.

        Raises:
            InvalidInputError: ``trade_date`` is before the first regime.
        """
        return self._starts[self._index(trade_date)]

    def _index(self, trade_date: date) -> int:
        i = bisect_right(self._starts, trade_date) - 1
        if i < 0:
            raise InvalidInputError(
                f"no charges regime for trade date {trade_date}: the table ({self.source}) "
                f"starts {self._starts[0]}; add an earlier regime to your CHARGES_FILE"
            )
        return i

    def order_total(
        self,
        trade_date: date,
        segment: str,
        side: Side,
        price: float,
        qty: int,
        instrument: Instrument,
    ) -> float:
        """The total charges of an order of ``instrument``, which the exchange takes in
        slices of at most its freeze quantity (Kite's ``autoslice``): each slice is an
        executed order of its own (a flat brokerage each), the rest is per turnover.

        Raises:
            InvalidInputError: as :meth:`compute`.
        """
        freeze, lot = instrument.freeze_qty, instrument.lot_size
        slices: tuple[int, ...] = (qty,)
        if freeze is not None and qty > freeze >= lot >= 1 and qty % lot == 0:
            slices = slice_qty(qty, lot, freeze)
        return sum(self.compute(trade_date, segment, side, price, q).total for q in slices)

    def compute(
        self, trade_date: date, segment: str, side: Side, price: float, qty: int
    ) -> ChargeBreakdown:
        """The charges of one executed order.

        Args:
            trade_date: the exchange (IST) date of the trade; selects the regime.
            segment: one of :data:`SEGMENTS`.
            side: BUY or SELL (STT, stamp duty and DP depend on it).
            price: traded price (premium for options), > 0.
            qty: traded quantity in units (lots x lot size for F&O), > 0.

        Returns:
            The rounded breakdown (see the module docstring).

        Raises:
            InvalidInputError: unknown segment, a date before the first regime, or a
                non-positive price or quantity.
        """
        if segment not in SEGMENTS:
            raise InvalidInputError(f"unknown charges segment {segment!r}; known: {SEGMENTS}")
        if not (math.isfinite(price) and price > 0) or qty <= 0:
            raise InvalidInputError(f"charges need price > 0 and qty > 0, got {price}, {qty}")
        r = self._regimes[self._index(trade_date)][segment]
        turnover = Decimal(str(float(price))) * int(qty)
        buy = side is Side.BUY
        if r.brokerage_flat is not None:
            brokerage = r.brokerage_flat
        else:
            assert r.brokerage_pct is not None
            brokerage = turnover * r.brokerage_pct / _HUNDRED
            if r.brokerage_max is not None:
                brokerage = min(brokerage, r.brokerage_max)
        stt_pct = r.stt_buy_pct if buy else r.stt_sell_pct
        stt = (turnover * stt_pct / _HUNDRED).quantize(self._stt_q, ROUND_HALF_UP)
        exchange = turnover * (r.exchange_per_crore + r.ipft_per_crore) / _CRORE
        sebi = turnover * r.sebi_per_crore / _CRORE
        stamp = turnover * r.stamp_buy_pct / _HUNDRED if buy else Decimal(0)
        dp = Decimal(0) if buy else r.dp_per_sell
        gst = (brokerage + exchange + sebi + dp) * r.gst_pct / _HUNDRED
        total = brokerage + stt + exchange + sebi + stamp + gst + dp

        def out(value: Decimal) -> float:
            return float(value.quantize(self._q, ROUND_HALF_UP))

        return ChargeBreakdown(
            brokerage=out(brokerage),
            stt=out(stt),
            exchange=out(exchange),
            sebi=out(sebi),
            stamp=out(stamp),
            gst=out(gst),
            dp=out(dp),
            total=out(total),
        )
