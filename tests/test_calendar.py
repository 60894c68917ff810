"""The NSE trading calendar: XBOM holidays, config overrides, session bounds, bar counts."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest

from mental_trader.calendar import TradingCalendar, ist_date
from mental_trader.errors import InvalidInputError


def ns(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000_000


@pytest.fixture(scope="module")
def cal() -> TradingCalendar:
    return TradingCalendar()


@pytest.mark.parametrize(
    "day",
    [
        date(2026, 1, 15),
        date(2026, 1, 26),
        date(2026, 3, 3),
        date(2026, 11, 24),
        date(2026, 12, 25),
    ],
)
def test_known_2026_holidays_are_not_sessions(cal: TradingCalendar, day: date) -> None:
    assert day.weekday() < 5
    assert not cal.is_session(day)


def test_weekends_are_not_sessions_and_weekdays_are(cal: TradingCalendar) -> None:
    assert not cal.is_session(date(2026, 11, 28))  # Saturday
    assert not cal.is_session(date(2026, 11, 29))  # Sunday
    assert cal.is_session(date(2026, 11, 25))
    assert cal.is_session(date(2026, 1, 27))


def test_xbom_special_saturday_sessions(cal: TradingCalendar) -> None:
    # declared by exchange_calendars as special weekmasks, which it does not apply itself
    assert cal.is_session(date(2024, 1, 20))
    assert cal.is_session(date(2025, 2, 1))
    assert not cal.is_session(date(2024, 1, 22))  # the Monday that closed instead


def test_extra_sessions_and_holidays_override_xbom(cal: TradingCalendar) -> None:
    budget = date(2026, 2, 1)  # Sunday budget session, not in XBOM
    assert not cal.is_session(budget)
    local = TradingCalendar(extra_sessions=[budget], extra_holidays=[date(2026, 11, 25)])
    assert local.is_session(budget)
    assert not local.is_session(date(2026, 11, 25))
    assert local.sessions(date(2026, 1, 30), date(2026, 2, 2)) == [
        date(2026, 1, 30),
        budget,
        date(2026, 2, 2),
    ]
    assert local.expected_bars(budget, 60) == 375
    assert local.expected_bars(date(2026, 11, 25), 60) == 0


def test_a_day_in_both_override_lists_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="2026-02-01"):
        TradingCalendar(extra_holidays=[date(2026, 2, 1)], extra_sessions=[date(2026, 2, 1)])


@pytest.mark.parametrize(
    ("start", "end"), [("15:30", "09:15"), ("9.15", "15:30"), ("25:00", "26:00")]
)
def test_bad_session_hours_are_refused(start: str, end: str) -> None:
    with pytest.raises(InvalidInputError):
        TradingCalendar(session_start=start, session_end=end)


def test_sessions_are_inclusive_and_previous_sessions_count_back(cal: TradingCalendar) -> None:
    week = cal.sessions(date(2026, 11, 23), date(2026, 11, 27))
    assert week == [date(2026, 11, 23), date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)]
    assert cal.previous_sessions(date(2026, 11, 25), 3) == [
        date(2026, 11, 20),
        date(2026, 11, 23),
        date(2026, 11, 25),
    ]
    assert cal.previous_sessions(date(2026, 11, 24), 1) == [date(2026, 11, 23)]
    assert cal.previous_sessions(date(2026, 11, 24), 0) == []
    with pytest.raises(InvalidInputError):
        cal.previous_sessions(date(2026, 11, 24), -1)


@pytest.mark.parametrize(("timeframe_s", "bars"), [(60, 375), (300, 75), (900, 25), (3600, 7)])
def test_expected_bars(cal: TradingCalendar, timeframe_s: int, bars: int) -> None:
    assert cal.expected_bars(date(2026, 11, 25), timeframe_s) == bars
    assert cal.expected_bars(date(2026, 11, 24), timeframe_s) == 0


def test_expected_bars_until_now_counts_closed_bars_only(cal: TradingCalendar) -> None:
    day = date(2026, 11, 25)
    at = datetime(2026, 11, 25, 4, 0, 30, tzinfo=UTC)  # 09:30:30 IST
    assert cal.expected_bars(day, 60, until_ns=ns(at)) == 15
    assert cal.expected_bars(day, 3600, until_ns=ns(at)) == 0
    before_open = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    assert cal.expected_bars(day, 60, until_ns=ns(before_open)) == 0
    # 15:20 IST: six hourly bars closed, the last (15:15-15:30) still forming
    at = datetime(2026, 11, 25, 9, 50, tzinfo=UTC)
    assert cal.expected_bars(day, 3600, until_ns=ns(at)) == 6
    close = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # 15:30 IST closes the last one
    assert cal.expected_bars(day, 3600, until_ns=ns(close)) == 7
    with pytest.raises(InvalidInputError):
        cal.expected_bars(day, 0)


def test_session_bounds_are_utc_ns_of_0915_and_1530_ist(cal: TradingCalendar) -> None:
    open_ns, close_ns = cal.session_bounds_ns(date(2026, 11, 25))
    assert open_ns == ns(datetime(2026, 11, 25, 3, 45, tzinfo=UTC))
    assert close_ns == ns(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    assert cal.session_bounds(date(2026, 11, 25)) == (
        datetime(2026, 11, 25, 3, 45, tzinfo=UTC),
        datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
    )
    short = TradingCalendar(session_start="10:00", session_end="11:00")
    assert short.expected_bars(date(2026, 11, 25), 60) == 60


def test_ist_date_turns_at_ist_midnight() -> None:
    assert ist_date(ns(datetime(2026, 11, 25, 18, 29, 59, tzinfo=UTC))) == date(2026, 11, 25)
    assert ist_date(ns(datetime(2026, 11, 25, 18, 30, tzinfo=UTC))) == date(2026, 11, 26)


def test_outside_the_holiday_data_weekdays_are_sessions_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cal = TradingCalendar()
    covered = cal.covered
    assert covered is not None
    later = date(covered[1].year + 1, 1, 5)
    later += timedelta(days=-later.weekday() % 7)  # the first Monday from the 5th
    with caplog.at_level(logging.WARNING, logger="mental_trader.calendar"):
        assert cal.is_session(later)
        assert not cal.is_session(later + timedelta(days=5))  # Saturday
        assert len(cal.sessions(later, later + timedelta(days=6))) == 5
    warnings = [r for r in caplog.records if "outside" in r.getMessage()]
    assert len(warnings) == 1
    # an extra holiday still applies there
    assert not TradingCalendar(extra_holidays=[later]).is_session(later)
