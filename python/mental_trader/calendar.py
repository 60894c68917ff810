"""The NSE trading calendar: which days are sessions, and when a session opens and closes.

Holidays are data, never code. The base is exchange_calendars' ``XBOM`` calendar (NSE and
BSE share their holidays; exchange_calendars has no ``XNSE``), loaded lazily on first use.
Local overrides from the configuration win over it:

* ``extra_holidays``: days that are NOT sessions (e.g. a closure announced by circular
  days ahead, before the library knows it);
* ``extra_sessions``: days that ARE sessions (e.g. the Sunday 2026-02-01 budget session,
  which XBOM does not model).

exchange_calendars holds holidays for a range of years only (1997 to the end of the
latest year it lists). Outside that range the calendar falls back to "every weekday is a
session" and logs a warning once per calendar: add the holidays to ``EXTRA_HOLIDAYS``.

XBOM's special Saturday sessions (2024-01-20, 2025-02-01) are declared by the library as
``special_weekmasks``, which exchange_calendars 4.13 on pandas 3 does not apply; they
are read from that property and added here.

Every session has the configured hours (default 09:15-15:30 IST). Times are int64 ns
since the epoch, UTC; IST is a fixed UTC+05:30 (no daylight saving), so nothing depends
on the host's time zone.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from mental_trader.errors import InvalidInputError

__all__ = ["IST", "UTC_OFFSET_MINUTES", "TradingCalendar", "ist_date"]

log = logging.getLogger(__name__)

#: Minutes east of UTC of the exchange's clock (Asia/Kolkata, no DST).
UTC_OFFSET_MINUTES = 330
#: The exchange's time zone as a fixed offset.
IST = timezone(timedelta(minutes=UTC_OFFSET_MINUTES), "IST")

_NS_PER_S = 1_000_000_000
_EPOCH_DAY = date(1970, 1, 1)


def ist_date(ts_ns: int) -> date:
    """The IST calendar day of a UTC nanosecond timestamp."""
    local_s = ts_ns // _NS_PER_S + UTC_OFFSET_MINUTES * 60
    return _EPOCH_DAY + timedelta(days=local_s // 86_400)


def _hhmm_minutes(text: str, name: str) -> int:
    try:
        hours, minutes = (int(part) for part in text.split(":"))
    except ValueError:
        raise InvalidInputError(f"{name} {text!r} is not HH:MM") from None
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise InvalidInputError(f"{name} {text!r} is not a time of day")
    return hours * 60 + minutes


@dataclass(frozen=True, slots=True)
class _BaseCalendar:
    """The sessions exchange_calendars knows, and the range of days it covers."""

    first: date
    last: date
    sessions: frozenset[date]


@functools.cache
def _xbom() -> _BaseCalendar | None:
    """Load XBOM once per process over its whole range; None if it cannot be loaded."""
    try:
        # exchange_calendars on pandas 3 trips pandas deprecation warnings while building
        # its schedule; they say nothing about our use and would be errors under pytest.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            import exchange_calendars

            factory = exchange_calendars.get_calendar("XBOM")
            first = factory.bound_min().date()
            last = factory.bound_max().date()
            cal = exchange_calendars.get_calendar(
                "XBOM", start=first.isoformat(), end=last.isoformat()
            )
            sessions = set(cal.sessions.date)
            holidays = set(cal.adhoc_holidays.date)
            for begin, end, mask in getattr(cal, "special_weekmasks", ()):
                day = begin.date()
                while day <= end.date():
                    if mask[day.weekday()] == "1" and day not in holidays:
                        sessions.add(day)
                    day += timedelta(days=1)
    except Exception:  # a broken install must not stop the service: weekdays it is
        log.warning("exchange_calendars XBOM unavailable; every weekday is a session",
                    exc_info=True)  # fmt: skip
        return None
    return _BaseCalendar(first=first, last=last, sessions=frozenset(sessions))


class TradingCalendar:
    """NSE sessions: exchange_calendars' XBOM plus the configured overrides.

    Args:
        extra_holidays: days that are not sessions, whatever XBOM says.
        extra_sessions: days that are sessions, whatever XBOM says (weekends included).
        session_start: session open, exchange time ``"HH:MM"``.
        session_end: session close, exchange time ``"HH:MM"`` (after the open).

    Raises:
        InvalidInputError: malformed session times, or a day in both override lists.
    """

    def __init__(
        self,
        extra_holidays: Iterable[date] = (),
        extra_sessions: Iterable[date] = (),
        session_start: str = "09:15",
        session_end: str = "15:30",
    ) -> None:
        self.extra_holidays = frozenset(extra_holidays)
        self.extra_sessions = frozenset(extra_sessions)
        both = sorted(self.extra_holidays & self.extra_sessions)
        if both:
            raise InvalidInputError(
                f"{', '.join(d.isoformat() for d in both)} both an extra holiday and session"
            )
        open_min = _hhmm_minutes(session_start, "session_start")
        close_min = _hhmm_minutes(session_end, "session_end")
        if open_min >= close_min:
            raise InvalidInputError(f"session {session_start}-{session_end} ends before it opens")
        self.session_start = session_start
        self.session_end = session_end
        self._open_s = (open_min - UTC_OFFSET_MINUTES) * 60
        self._close_s = (close_min - UTC_OFFSET_MINUTES) * 60
        self._warned_outside = False

    @property
    def session_seconds(self) -> int:
        """Length of a session in seconds (22 500 for 09:15-15:30)."""
        return self._close_s - self._open_s

    @property
    def covered(self) -> tuple[date, date] | None:
        """First and last day the holiday data covers (None: no data, weekdays only)."""
        base = _xbom()
        return None if base is None else (base.first, base.last)

    def is_session(self, day: date) -> bool:
        """Whether the exchange trades on ``day``."""
        if day in self.extra_sessions:
            return True
        if day in self.extra_holidays:
            return False
        base = _xbom()
        if base is not None and base.first <= day <= base.last:
            return day in base.sessions
        if base is not None and not self._warned_outside:
            self._warned_outside = True
            log.warning(
                "NSE holiday data (exchange_calendars XBOM) covers %s..%s; %s is outside it: "
                "treating every weekday as a session (list holidays in EXTRA_HOLIDAYS)",
                base.first,
                base.last,
                day,
            )
        return day.weekday() < 5

    def sessions(self, start: date, end: date) -> list[date]:
        """The sessions from ``start`` to ``end``, both inclusive, in order."""
        out: list[date] = []
        day = start
        while day <= end:
            if self.is_session(day):
                out.append(day)
            day += timedelta(days=1)
        return out

    def previous_sessions(self, end: date, n: int) -> list[date]:
        """The last ``n`` sessions on or before ``end``, oldest first.

        Raises:
            InvalidInputError: ``n`` is negative.
        """
        if n < 0:
            raise InvalidInputError(f"n must be >= 0, got {n}")
        out: list[date] = []
        day = end
        while len(out) < n:
            if self.is_session(day):
                out.append(day)
            day -= timedelta(days=1)
        out.reverse()
        return out

    def session_bounds_ns(self, day: date) -> tuple[int, int]:
        """Open and close of ``day``'s session as int ns UTC (whether or not it is a session)."""
        midnight_s = (day - _EPOCH_DAY).days * 86_400
        return (midnight_s + self._open_s) * _NS_PER_S, (midnight_s + self._close_s) * _NS_PER_S

    def session_bounds(self, day: date) -> tuple[datetime, datetime]:
        """Open and close of ``day``'s session as aware UTC datetimes."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return (
            midnight + timedelta(seconds=self._open_s),
            midnight + timedelta(seconds=self._close_s),
        )

    def expected_bars(self, day: date, timeframe_s: int, *, until_ns: int | None = None) -> int:
        """How many session-anchored bars a fully traded ``day`` has at ``timeframe_s``.

        Buckets start at the open every ``timeframe_s`` seconds; the last one is cut at the
        close (09:15-15:30 at 60 minutes: 7 bars, the last 15:15-15:30). 0 on a non-session.

        Args:
            day: the trading day.
            timeframe_s: bar length in seconds (>= 1).
            until_ns: count only the bars closed by this time (int ns UTC): a bar closes at
                its bucket end, or at the session close for the last one.

        Raises:
            InvalidInputError: ``timeframe_s < 1``.
        """
        if timeframe_s < 1:
            raise InvalidInputError(f"timeframe_s must be >= 1, got {timeframe_s}")
        if not self.is_session(day):
            return 0
        total = -(-self.session_seconds // timeframe_s)
        if until_ns is None:
            return total
        open_ns, close_ns = self.session_bounds_ns(day)
        if until_ns >= close_ns:
            return total
        return max(0, (until_ns - open_ns) // (timeframe_s * _NS_PER_S))
