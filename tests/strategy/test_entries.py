"""Entries: exactly at primary crosses whose last closed confirm bar agrees."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import numpy as np
import pytest

from mental_trader.errors import InvalidInputError
from mental_trader.models import Side
from mental_trader.strategy import (
    IntradayStrategy,
    ScalpStrategy,
    Signal,
    Strategy,
    signal_id,
)

from ._market import NS, SESSION_OPEN_S, Market, expected_entries, hhmm_s, tod_s

SYMBOL = "NSE:INFY"


def flat_run(strategy: Strategy, m: Market, *, confirm_first: bool = False) -> list[Signal]:
    """Every signal of a strategy that is always flat (the service never fills)."""
    out: list[Signal] = []
    for call in m.calls:
        events = sorted(call, key=lambda e: not e.is_confirm) if confirm_first else call
        for event in events:
            out.extend(strategy.on_bar_close(event, SYMBOL, None))
    return out


def entries_of(signals: list[Signal], m: Market) -> list[tuple[int, Side]]:
    index = {ts: i for i, ts in enumerate(m.primary["ts"].tolist())}
    assert all(s.kind == "entry" for s in signals)
    return [(index[s.bar_ts_ns], s.side) for s in signals]


@pytest.mark.parametrize(
    ("cls", "market_name"),
    [(ScalpStrategy, "scalp_market"), (IntradayStrategy, "intraday_market")],
)
def test_entries_exactly_at_confirmed_crosses(
    cls: type[Strategy], market_name: str, request: pytest.FixtureRequest
) -> None:
    m: Market = request.getfixturevalue(market_name)
    expected = expected_entries(m)
    # the path must exercise both outcomes of the filter, and both sides
    assert len(expected) >= 10
    assert int(np.count_nonzero(m.cross)) > len(expected)
    assert {side for _, side in expected} == {Side.BUY, Side.SELL}

    signals = flat_run(cls(), m)
    assert entries_of(signals, m) == expected
    for s in signals:
        i = int(np.searchsorted(m.primary["ts"], s.bar_ts_ns))
        close = float(m.primary["close"][i])
        assert s.price == close
        assert s.reason == "ema_cross"
        assert s.symbol == SYMBOL
        assert s.strategy == cls.name
        assert s.timeframe_s == m.timeframe_s
        assert s.ts == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            microseconds=m.end_ns(i) // 1000
        )
        assert s.ts.tzinfo is not None
        sl, tp = cls.default_stop_loss_pct / 100, cls.default_target_pct / 100
        sign = s.side.sign
        assert s.stop == pytest.approx(close * (1 - sign * sl), rel=1e-12)
        assert s.target == pytest.approx(close * (1 + sign * tp), rel=1e-12)
        assert s.payload["ema_fast"] == pytest.approx(float(m.fast[i]), rel=1e-9)
        assert s.payload["ema_slow"] == pytest.approx(float(m.slow[i]), rel=1e-9)
        assert np.sign(s.payload["confirm_ema_fast"] - s.payload["confirm_ema_slow"]) == sign


def test_intraday_defaults_are_wider_than_scalp() -> None:
    scalp, intraday = ScalpStrategy(), IntradayStrategy()
    assert (scalp.primary_timeframe_s, scalp.confirm_timeframe_s) == (60, 300)
    assert (intraday.primary_timeframe_s, intraday.confirm_timeframe_s) == (300, 900)
    assert intraday.params.stop_loss_pct > scalp.params.stop_loss_pct
    assert intraday.params.target_pct > scalp.params.target_pct


def test_confirm_bar_closing_with_the_primary_bar_counts(scalp_market: Market) -> None:
    """At a 5m boundary the engine emits the 1m bar, then the 5m bar closing with it.

    That 5m bar is closed when the 1m cross is acted on, so it is the one that confirms;
    the market has a boundary cross where it disagrees with the 5m bar before it.
    """
    m = scalp_market
    c_end = m.confirm["ts"] + m.confirm_timeframe_s * NS
    flips = []
    for i in np.flatnonzero(m.cross).tolist():
        j = int(np.searchsorted(c_end, m.end_ns(i), side="right")) - 1
        if c_end[j] == m.end_ns(i) and m.confirm_trend[j] != m.confirm_trend[j - 1]:
            flips.append((i, int(m.cross[i]), int(m.confirm_trend[j])))
    assert flips, "the synthetic path lost its boundary case"
    entries = set(entries_of(flat_run(ScalpStrategy(), m), m))
    for i, cross, trend in flips:
        side = Side.BUY if cross > 0 else Side.SELL
        assert ((i, side) in entries) == (cross == trend)


def test_boundary_entry_comes_out_of_the_primary_event(scalp_market: Market) -> None:
    """The trend of a confirm bar closing with the primary bar rides on the primary event,
    so that entry is decided there; confirm events never yield a signal."""
    m = scalp_market
    strategy = ScalpStrategy()
    boundary = 0
    for call in m.calls:
        for event in call:
            out = strategy.on_bar_close(event, SYMBOL, None)
            assert not (out and event.is_confirm)
            for s in out:
                end_tod = tod_s(s.bar_ts_ns + m.timeframe_s * NS)
                boundary += (end_tod - SESSION_OPEN_S) % m.confirm_timeframe_s == 0
    assert boundary >= 1


def test_engine_events_carry_the_confirm_trend_in_force(scalp_market: Market) -> None:
    """Every primary event's confirm fields are the last confirm bar closed by its end
    (computed here with the batch functions, not from the events)."""
    m = scalp_market
    c_ts = m.confirm["ts"]
    c_end = c_ts + m.confirm_timeframe_s * NS
    events = m.primary_events()
    assert len(events) == len(m)
    for i, ev in enumerate(events):
        assert ev.end_ns == m.end_ns(i)
        assert ev.confirm_trend == m.confirm_sign_for(i)
        j = int(np.searchsorted(c_end, m.end_ns(i), side="right")) - 1
        assert ev.confirm_ts == (int(c_ts[j]) if j >= 0 else None)
    confirms = [e for call in m.calls for e in call if e.is_confirm]
    assert [e.confirm_ts for e in confirms] == c_ts.tolist()
    assert all(e.confirm_ema_fast == e.ema_fast for e in confirms)


def test_confirm_first_order_gives_the_same_signals(scalp_market: Market) -> None:
    engine_order = flat_run(ScalpStrategy(), scalp_market)
    confirm_first = flat_run(ScalpStrategy(), scalp_market, confirm_first=True)
    assert confirm_first == engine_order


def test_no_short_entries_when_shorts_are_disabled(scalp_market: Market) -> None:
    strategy = ScalpStrategy(ScalpStrategy.default_params(allow_short=False))
    got = entries_of(flat_run(strategy, scalp_market), scalp_market)
    assert got == expected_entries(scalp_market, allow_short=False)
    assert got
    assert all(side is Side.BUY for _, side in got)


def test_no_entries_at_or_after_square_off(scalp_market: Market) -> None:
    m = scalp_market
    square_off = time(12, 0)
    strategy = ScalpStrategy(ScalpStrategy.default_params(square_off_time=square_off))
    got = entries_of(flat_run(strategy, m), m)
    assert got == expected_entries(m, square_off=square_off)
    assert all(tod_s(m.end_ns(i)) < hhmm_s(square_off) for i, _ in got)
    # the filter removed real candidates
    later = [(i, s) for i, s in expected_entries(m) if tod_s(m.end_ns(i)) >= hhmm_s(square_off)]
    assert later


def test_no_entry_before_the_confirm_ema_is_ready(scalp_market: Market) -> None:
    m = scalp_market
    first_ready = int(np.flatnonzero(m.confirm_trend)[0])
    ready_end = int(m.confirm["ts"][first_ready]) + m.confirm_timeframe_s * NS
    early = [i for i in np.flatnonzero(m.cross).tolist() if m.end_ns(i) < ready_end]
    assert early, "no primary cross before the confirm EMAs warm up"
    got = entries_of(flat_run(ScalpStrategy(), m), m)
    assert all(m.end_ns(i) >= ready_end for i, _ in got)


def test_signal_ids_are_deterministic(scalp_market: Market) -> None:
    first = flat_run(ScalpStrategy(), scalp_market)
    second = flat_run(ScalpStrategy(), scalp_market)
    assert [s.id for s in first] == [s.id for s in second]
    assert len({s.id for s in first}) == len(first)
    s = first[0]
    assert s.id == signal_id("scalp", SYMBOL, s.bar_ts_ns, "entry", s.side)
    assert s.id == f"scalp-{SYMBOL}-{s.bar_ts_ns}-entry-{s.side.value}"


def test_replaying_a_bar_repeats_the_same_id(scalp_market: Market) -> None:
    strategy = ScalpStrategy()
    seen: dict[str, Signal] = {}
    for call in scalp_market.calls:
        for _ in range(2):  # the service replays each call (e.g. after a restart)
            for event in call:
                for s in strategy.on_bar_close(event, SYMBOL, None):
                    assert seen.setdefault(s.id, s) == s
    assert len(seen) == len(expected_entries(scalp_market))


def test_signal_to_record(scalp_market: Market) -> None:
    s = flat_run(ScalpStrategy(), scalp_market)[0]
    record = s.to_record()
    assert (record.id, record.ts, record.symbol, record.side, record.price) == (
        s.id,
        s.ts,
        s.symbol,
        s.side,
        s.price,
    )
    assert record.reason == "ema_cross"
    assert record.payload["kind"] == "entry"
    assert record.payload["stop"] == s.stop


def test_symbols_are_independent(scalp_market: Market) -> None:
    strategy = ScalpStrategy()
    both: dict[str, list[Signal]] = {"NSE:INFY": [], "NSE:TCS": []}
    for call in scalp_market.calls:
        for event in call:
            for symbol, out in both.items():
                out.extend(strategy.on_bar_close(event, symbol, None))
    assert [s.bar_ts_ns for s in both["NSE:INFY"]] == [s.bar_ts_ns for s in both["NSE:TCS"]]
    assert {s.id for s in both["NSE:INFY"]}.isdisjoint(s.id for s in both["NSE:TCS"])


def test_wrong_timeframe_is_a_wiring_error(intraday_market: Market) -> None:
    event = intraday_market.calls[0][0]
    with pytest.raises(InvalidInputError, match="expected 60s"):
        ScalpStrategy().on_bar_close(event, SYMBOL, None)
