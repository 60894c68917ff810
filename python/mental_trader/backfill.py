"""Backfill: load the last N sessions of candles from a broker into the store.

For each symbol and each of the last ``days`` sessions that have opened by ``now``:

* **resumable**: a symbol-day whose stored bar count already reaches the expected count
  (:meth:`TradingCalendar.expected_bars`, counting only bars closed by ``now``) is
  skipped, so an interrupted run continues where it stopped;
* **idempotent**: the broker's bars are upserted (one symbol-day per store transaction,
  so an interruption loses at most the symbol-day in flight), and re-running rewrites
  the same rows;
* **validated**: after loading, the stored count is compared with the expected count;
  every gap is reported as a :class:`Shortfall` (symbol, day, expected, got);
* **isolated failures**: a broker error for a symbol is recorded as a :class:`Failure`
  and that symbol's remaining days are left for the next run; the other symbols go on.
  Store errors are not caught: with the database down there is nothing to continue.

A real broker may legitimately have no bar for a minute without trades (an illiquid
stock): that shows as a shortfall, never as a faked bar.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from tqdm import tqdm

from mental_trader.brokers.base import Broker
from mental_trader.calendar import TradingCalendar, ist_date
from mental_trader.errors import InvalidInputError
from mental_trader.storage.base import Candles, Store, dt_to_ns, ns_to_dt

__all__ = ["BackfillReport", "Failure", "Shortfall", "backfill", "format_timeframe"]

log = logging.getLogger(__name__)


def format_timeframe(timeframe_s: int) -> str:
    """``60`` → ``"1m"``, ``3600`` → ``"1h"``, ``90`` → ``"90s"``."""
    if timeframe_s % 3600 == 0:
        return f"{timeframe_s // 3600}h"
    if timeframe_s % 60 == 0:
        return f"{timeframe_s // 60}m"
    return f"{timeframe_s}s"


@dataclass(frozen=True, slots=True)
class Shortfall:
    """A symbol-day with fewer stored bars than the session should have.

    ``session_closed`` is False for today's session still in progress (then
    ``expected`` counts only the bars closed at the time of the run).
    """

    symbol: str
    day: date
    expected: int
    got: int
    session_closed: bool


@dataclass(frozen=True, slots=True)
class Failure:
    """A symbol the broker failed for: the day it failed on and the days left unloaded."""

    symbol: str
    day: date
    error: str
    days_not_loaded: int


@dataclass(slots=True)
class BackfillReport:
    """What a backfill did and what is still missing."""

    timeframe_s: int
    symbols: tuple[str, ...]
    sessions: tuple[date, ...]
    rows_written: int = 0
    symbol_days_loaded: int = 0
    symbol_days_skipped: int = 0
    shortfalls: list[Shortfall] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No failure, and no shortfall on a session that has closed."""
        return not self.failures and not any(s.session_closed for s in self.shortfalls)

    def summary(self) -> str:
        """A few human-readable lines: totals, then each shortfall and failure."""
        span = f"{self.sessions[0]}..{self.sessions[-1]}" if self.sessions else "no sessions"
        lines = [
            f"backfill {format_timeframe(self.timeframe_s)}: {len(self.symbols)} symbol(s) x "
            f"{len(self.sessions)} session(s) ({span}): {self.rows_written} rows written, "
            f"{self.symbol_days_loaded} symbol-days loaded, {self.symbol_days_skipped} "
            f"already complete, {len(self.shortfalls)} shortfall(s), "
            f"{len(self.failures)} failure(s)"
        ]
        lines += [
            f"shortfall {s.symbol} {s.day}: {s.got} of {s.expected} bars"
            + ("" if s.session_closed else " (session in progress)")
            for s in self.shortfalls
        ]
        lines += [
            f"failed {f.symbol} from {f.day} ({f.days_not_loaded} day(s) not loaded): {f.error}"
            for f in self.failures
        ]
        return "\n".join(lines)


def _recent_sessions(calendar: TradingCalendar, days: int, now_ns: int) -> list[date]:
    """The last ``days`` sessions that have opened by ``now_ns``, oldest first."""
    candidates = calendar.previous_sessions(ist_date(now_ns), days + 1)
    opened = [d for d in candidates if calendar.session_bounds_ns(d)[0] <= now_ns]
    return opened[-days:] if days else []


def _within(bars: Candles, start_ns: int, end_ns: int) -> Candles:
    ts = bars["ts"]
    keep = (ts >= start_ns) & (ts < end_ns)
    if bool(keep.all()):
        return bars
    log.warning("broker returned %d bar(s) outside the requested session; dropped",
                int((~keep).sum()))  # fmt: skip
    return {name: col[keep] for name, col in bars.items()}


async def _stored_count(
    store: Store, symbol: str, timeframe_s: int, start_ns: int, end_ns: int
) -> int:
    rows = await store.load_candles(symbol, timeframe_s, start_ns=start_ns, end_ns=end_ns)
    return len(rows["ts"])


async def backfill(
    store: Store,
    broker: Broker,
    calendar: TradingCalendar,
    symbols: Sequence[str],
    days: int,
    timeframe_s: int,
    *,
    progress: bool = True,
    now: datetime | None = None,
) -> BackfillReport:
    """Load the last ``days`` sessions of ``timeframe_s`` candles per symbol into ``store``.

    See the module docstring for the guarantees (resumable, idempotent, validated).

    Args:
        store: a connected, migrated store.
        broker: where the candles come from.
        calendar: the sessions, and how many bars each should have.
        symbols: exchange-qualified symbols.
        days: how many sessions, counting today's if it has opened.
        timeframe_s: bar length in seconds.
        progress: show a progress bar on stderr (only when it is a terminal).
        now: the time of the run (aware); default the wall clock.

    Returns:
        Totals, shortfalls and failures; :attr:`BackfillReport.ok` tells success.

    Raises:
        InvalidInputError: ``days < 0``, ``timeframe_s < 1`` or a naive ``now``.
        StorageError: the store failed (the symbol-days committed so far stay).
    """
    if days < 0:
        raise InvalidInputError(f"days must be >= 0, got {days}")
    if timeframe_s < 1:
        raise InvalidInputError(f"timeframe_s must be >= 1, got {timeframe_s}")
    now = now or datetime.now(UTC)
    now_ns = dt_to_ns(now)
    sessions = _recent_sessions(calendar, days, now_ns)
    report = BackfillReport(timeframe_s, tuple(symbols), tuple(sessions))
    log.info("backfill %s of %d symbol(s) over %d session(s) from %s",
             format_timeframe(timeframe_s), len(symbols), len(sessions), broker.name)  # fmt: skip
    with tqdm(
        total=len(symbols) * len(sessions),
        desc=f"backfill {format_timeframe(timeframe_s)}",
        unit="symbol-day",
        file=sys.stderr,
        disable=None if progress else True,  # None: only on a terminal
    ) as bar:
        for symbol in symbols:
            bar.set_postfix_str(symbol)
            for i, day in enumerate(sessions):
                try:
                    done = await _backfill_day(store, broker, calendar, report, symbol, day,
                                               now, now_ns)  # fmt: skip
                except _BrokerFailed as exc:
                    left = len(sessions) - i
                    report.failures.append(Failure(symbol, day, exc.message, left))
                    bar.update(left)
                    break
                bar.update(1)
                if done:
                    report.symbol_days_skipped += 1
    log.info("%s", report.summary())
    return report


class _BrokerFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def _backfill_day(
    store: Store,
    broker: Broker,
    calendar: TradingCalendar,
    report: BackfillReport,
    symbol: str,
    day: date,
    now: datetime,
    now_ns: int,
) -> bool:
    """Load one symbol-day; True when it was already complete (nothing fetched)."""
    tf = report.timeframe_s
    open_ns, close_ns = calendar.session_bounds_ns(day)
    expected = calendar.expected_bars(day, tf, until_ns=now_ns)
    if await _stored_count(store, symbol, tf, open_ns, close_ns) >= expected:
        return True
    end = ns_to_dt(close_ns) if close_ns <= now_ns else now
    try:
        bars = await broker.history(symbol, tf, ns_to_dt(open_ns), end)
    except Exception as exc:  # any broker failure: record it, go on with other symbols
        log.warning("backfill %s %s: %s failed: %s", symbol, day, broker.name, exc,
                    exc_info=log.isEnabledFor(logging.DEBUG))  # fmt: skip
        raise _BrokerFailed(f"{type(exc).__name__}: {exc}") from exc
    report.rows_written += await store.upsert_candles(symbol, tf, _within(bars, open_ns, close_ns))
    report.symbol_days_loaded += 1
    got = await _stored_count(store, symbol, tf, open_ns, close_ns)
    if got < expected:
        shortfall = Shortfall(symbol, day, expected, got, session_closed=close_ns <= now_ns)
        log.warning("backfill %s %s: %d of %d bars", symbol, day, got, expected)
        report.shortfalls.append(shortfall)
    return False
