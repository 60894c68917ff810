"""The daily instrument master of derivatives: downloaded, validated, swapped atomically.

Contract facts change (lot sizes are revised, strikes are added, tokens are flushed every
expiry), so the options layer reads them from the store, refreshed each morning from the
broker's instrument dump. A refresh never makes things worse: a failed download, a dump that
fails validation, or one that lists far fewer contracts than the day before (a truncated
download) keeps the previous master, and says why.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from mental_trader.models import Instrument
from mental_trader.storage.base import DERIVATIVE_TYPES, Store

__all__ = ["MasterUpdate", "refresh_instrument_master", "validate_derivatives"]

log = logging.getLogger(__name__)

#: A dump with fewer than this share of the contracts stored before, for any underlying,
#: looks truncated and is refused.
MIN_KEEP_RATIO = 0.5


class InstrumentSource(Protocol):
    """Where the dump comes from (every broker has it)."""

    async def instruments(self) -> list[Instrument]: ...


@dataclass(frozen=True, slots=True)
class MasterUpdate:
    """What a refresh did.

    Attributes:
        day: the day it ran for.
        replaced: True when the new contracts are in the store; False when the previous
            master was kept.
        counts: contracts per underlying written (empty when kept).
        problems: why the previous master was kept (empty when replaced).
    """

    day: date
    replaced: bool
    counts: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def validate_derivatives(
    rows: Sequence[Instrument], underlyings: Sequence[str], today: date
) -> list[str]:
    """The problems of a set of derivative contracts (empty: fit to store).

    Every underlying needs contracts; each contract needs a known type, a lot size >= 1, a
    tick size > 0, an expiry not before ``today``, and (for an option) a finite strike > 0;
    symbols are unique. At most the first ten problems are listed.
    """
    problems: list[str] = []
    seen: Counter[str] = Counter()
    per_underlying: Counter[str] = Counter()
    for r in rows:
        seen[r.symbol] += 1
        per_underlying[r.underlying or ""] += 1
        if r.instrument_type not in DERIVATIVE_TYPES:
            problems.append(f"{r.symbol}: not a derivative ({r.instrument_type})")
        if r.lot_size < 1 or not (math.isfinite(r.tick_size) and r.tick_size > 0):
            problems.append(f"{r.symbol}: lot size {r.lot_size}, tick size {r.tick_size}")
        if r.expiry is None or r.expiry < today:
            problems.append(f"{r.symbol}: expiry {r.expiry} is before {today}")
        if r.instrument_type in ("CE", "PE") and not (
            r.strike is not None and math.isfinite(r.strike) and r.strike > 0
        ):
            problems.append(f"{r.symbol}: strike {r.strike}")
        if r.underlying not in underlyings:
            problems.append(f"{r.symbol}: underlying {r.underlying} not asked for")
    problems += [f"{s}: listed {n} times" for s, n in seen.items() if n > 1]
    problems += [f"{u}: no contracts in the dump" for u in underlyings if not per_underlying[u]]
    return problems[:10]


async def refresh_instrument_master(
    source: InstrumentSource,
    store: Store,
    underlyings: Sequence[str],
    *,
    today: date,
    min_keep_ratio: float = MIN_KEEP_RATIO,
) -> MasterUpdate:
    """Download the broker's dump and swap the derivatives of ``underlyings`` into the store.

    Nothing changes unless the whole set is valid (:func:`validate_derivatives`) and no
    underlying shrinks below ``min_keep_ratio`` of its stored count; the swap itself is one
    transaction (:meth:`Store.replace_derivatives`). A download that fails is logged and
    reported, never raised: the previous master stays in use.
    """
    try:
        dump = await source.instruments()
    except Exception as exc:  # any broker failure: keep what we have, say why
        log.error("instrument download failed, keeping the previous master: %s", exc)
        return MasterUpdate(today, False, problems=(f"download failed: {exc}",))
    wanted = set(underlyings)
    rows = [r for r in dump if r.instrument_type in DERIVATIVE_TYPES and r.underlying in wanted]
    # A dump fetched before the exchange flushed yesterday's expiry still lists it: drop
    # what has expired rather than refuse the whole dump.
    expired = [r for r in rows if r.expiry is not None and r.expiry < today]
    if expired:
        log.info("instrument master: %d expired contracts in the dump skipped", len(expired))
        rows = [r for r in rows if r.expiry is None or r.expiry >= today]
    problems = validate_derivatives(rows, underlyings, today)
    counts = Counter(r.underlying or "" for r in rows)
    previous = await store.count_derivatives()
    for underlying in underlyings:
        before, now = previous.get(underlying, 0), counts.get(underlying, 0)
        if before and now < min_keep_ratio * before:
            problems.append(
                f"{underlying}: {now} contracts against {before} stored: looks truncated"
            )
    if problems:
        log.error(
            "instrument master refresh refused, keeping the previous one: %s", "; ".join(problems)
        )
        return MasterUpdate(today, False, problems=tuple(problems))
    await store.replace_derivatives(underlyings, rows)
    written = {u: counts.get(u, 0) for u in underlyings}
    log.info("instrument master refreshed for %s: %s", today, written)
    return MasterUpdate(today, True, counts=written)
