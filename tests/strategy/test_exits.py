"""Exits: opposite cross, stop, target, trailing stop and end-of-day square-off."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time

import pytest

from mental_trader.core import BarEvent
from mental_trader.models import Side
from mental_trader.strategy import (
    IntradayStrategy,
    PositionView,
    ScalpStrategy,
    Strategy,
    StrategyParams,
)

from ._market import (
    IST_OFFSET_S,
    NS,
    Market,
    Trade,
    drive,
    expected_entries,
    hhmm_s,
    reference_trades,
    tod_s,
)

SYMBOL = "NSE:RELIANCE"


def params(cls: type[Strategy], **values: object) -> StrategyParams:
    return cls.default_params(**values)


def assert_trades(got: list[Trade], want: list[Trade]) -> None:
    assert [(t.entry_i, t.side, t.exit_i, t.reason) for t in got] == [
        (t.entry_i, t.side, t.exit_i, t.reason) for t in want
    ]
    for g, w in zip(got, want, strict=True):
        assert g.entry_price == w.entry_price
        if w.exit_price is None:
            assert g.exit_price is None
        else:
            assert g.exit_price == pytest.approx(w.exit_price, rel=1e-12)


def test_opposite_cross_and_reversal(scalp_market: Market) -> None:
    """Wide stop and target: every position ends at the next cross (or square-off)."""
    m = scalp_market
    strategy = ScalpStrategy(params(ScalpStrategy, stop_loss_pct=19.0, target_pct=99.0))
    run = drive(strategy, m, SYMBOL)
    want = reference_trades(m, stop_pct=19.0, target_pct=99.0)
    assert_trades(run.trades, want)
    reasons = Counter(t.reason for t in run.trades)
    assert reasons["opposite_cross"] >= 5
    assert set(reasons) <= {"opposite_cross", "square_off", None}
    for t in run.trades:
        if t.reason == "opposite_cross":
            assert t.exit_i is not None
            assert int(m.cross[t.exit_i]) == -t.side.sign
            assert t.exit_price == m.bar(t.exit_i)[3]


@pytest.mark.parametrize("cls", [ScalpStrategy, IntradayStrategy])
@pytest.mark.parametrize("trail", [None, 0.25])
def test_skipping_quiet_bars_changes_nothing(
    cls: type[Strategy], trail: float | None, request: pytest.FixtureRequest
) -> None:
    """The service skips primary bars without a cross while flat: same signals, same trades."""
    m: Market = request.getfixturevalue(
        "scalp_market" if cls is ScalpStrategy else "intraday_market"
    )
    p = params(cls, stop_loss_pct=0.3, target_pct=0.6, trailing_stop_pct=trail)
    assert cls.skips_quiet_bars
    every = drive(cls(p), m, SYMBOL)
    skipping = drive(cls(p), m, SYMBOL, skip_quiet=True)
    assert len(every.signals) >= 10
    assert skipping.signals == every.signals
    assert skipping.trades == every.trades


@pytest.mark.parametrize(
    ("stop", "target", "trail", "reasons"),
    [
        (0.3, 0.6, None, {"stop", "target"}),
        (0.8, 0.5, None, {"target"}),
        (0.6, 5.0, 0.25, {"trailing_stop"}),
    ],
)
def test_stop_target_trailing_against_reference(
    scalp_market: Market,
    stop: float,
    target: float,
    trail: float | None,
    reasons: set[str],
) -> None:
    m = scalp_market
    strategy = ScalpStrategy(
        params(ScalpStrategy, stop_loss_pct=stop, target_pct=target, trailing_stop_pct=trail)
    )
    run = drive(strategy, m, SYMBOL)
    want = reference_trades(m, stop_pct=stop, target_pct=target, trail_pct=trail)
    assert_trades(run.trades, want)
    seen = Counter(t.reason for t in run.trades)
    assert reasons <= set(seen), seen
    for t, s in zip(run.trades, [s for s in run.signals if s.kind == "exit"], strict=False):
        assert s.side is (Side.SELL if t.side is Side.BUY else Side.BUY)
        if t.reason == "target":
            assert s.price == pytest.approx(t.entry_price * (1 + t.side.sign * target / 100))


def test_intraday_against_reference(intraday_market: Market) -> None:
    m = intraday_market
    strategy = IntradayStrategy()
    run = drive(strategy, m, SYMBOL)
    want = reference_trades(m, stop_pct=1.0, target_pct=2.0)
    assert_trades(run.trades, want)
    assert len(run.trades) >= 3


def test_opposite_cross_reverses_when_the_confirm_agrees(scalp_market: Market) -> None:
    """A long meets a confirmed bearish cross: exit, then a short entry, same bar."""
    m = scalp_market
    i, side = next((i, side) for i, side in expected_entries(m) if side is Side.SELL)
    strategy = ScalpStrategy()
    long = PositionView(Side.BUY, 3, m.bar(i - 5)[3], stop=1.0, target=1e9)
    got = []
    for call in m.calls:
        # the long is open during the engine call that closes bar i; flat elsewhere
        mine = any(not e.is_confirm and e.bar.ts == m.ts(i) for e in call)
        for event in call:
            out = strategy.on_bar_close(event, SYMBOL, long if mine else None)
            if mine:
                got.extend(out)
    exit_signal, entry = got
    assert (exit_signal.kind, exit_signal.reason, exit_signal.side) == (
        "exit",
        "opposite_cross",
        Side.SELL,
    )
    assert (entry.kind, entry.reason, entry.side) == ("entry", "ema_cross", side)
    assert exit_signal.bar_ts_ns == entry.bar_ts_ns == m.ts(i)
    assert exit_signal.price == entry.price == m.bar(i)[3]
    assert exit_signal.id != entry.id  # both SELL: the kind keeps the ids apart


def _primary(m: Market, i: int) -> BarEvent:
    events = m.primary_events()
    assert events[i].bar.ts == m.ts(i)
    return events[i]


def _non_cross_bar(m: Market, start: int) -> int:
    """A primary bar at or after ``start`` with no cross, before 15:00 IST."""
    i = start
    while int(m.cross[i]) != 0 or tod_s(m.end_ns(i)) >= hhmm_s(time(15, 0)):
        i += 1
    return i


def test_stop_and_target_in_one_bar_assume_the_stop(scalp_market: Market) -> None:
    m = scalp_market
    i = _non_cross_bar(m, 200)
    o, h, low, _ = m.bar(i)
    assert h > low
    for side in (Side.BUY, Side.SELL):
        # levels inside the bar's range on both sides
        near_low, near_high = low + 0.25 * (h - low), h - 0.25 * (h - low)
        stop, target = (near_low, near_high) if side is Side.BUY else (near_high, near_low)
        position = PositionView(side, 10, (low + h) / 2, stop=stop, target=target)
        [signal] = ScalpStrategy().on_bar_close(_primary(m, i), SYMBOL, position)
        assert signal.kind == "exit"
        assert signal.reason == "stop"
        gap_price = min(stop, o) if side is Side.BUY else max(stop, o)
        assert signal.price == gap_price
        assert signal.side is (Side.SELL if side is Side.BUY else Side.BUY)
        assert signal.id == f"scalp-{SYMBOL}-{m.ts(i)}-exit-{signal.side.value}"


def test_a_gap_through_the_stop_exits_at_the_open(scalp_market: Market) -> None:
    m = scalp_market
    i = _non_cross_bar(m, 300)
    o = m.bar(i)[0]
    long = PositionView(Side.BUY, 1, o * 1.01, stop=o + 0.05, target=o * 1.05)
    [signal] = ScalpStrategy().on_bar_close(_primary(m, i), SYMBOL, long)
    assert (signal.reason, signal.price) == ("stop", o)
    short = PositionView(Side.SELL, 1, o * 0.99, stop=o - 0.05, target=o * 0.95)
    [signal] = ScalpStrategy().on_bar_close(_primary(m, i), SYMBOL, short)
    assert (signal.reason, signal.price) == ("stop", o)


def test_trailing_stop_uses_the_best_price_before_the_bar(scalp_market: Market) -> None:
    m = scalp_market
    i = _non_cross_bar(m, 250)
    while m.bar(i)[0] - m.bar(i)[2] < 0.1:  # a bar that trades below its open
        i = _non_cross_bar(m, i + 1)
    o, h, low, _ = m.bar(i)
    strategy = ScalpStrategy(params(ScalpStrategy, trailing_stop_pct=0.5))
    best = (low + o) / 2 / (1 - 0.005)  # the trail level sits between the open and the low
    position = PositionView(Side.BUY, 1, low * 0.999, best_price=best)
    [signal] = strategy.on_bar_close(_primary(m, i), SYMBOL, position)
    assert signal.reason == "trailing_stop"
    assert signal.price == pytest.approx((low + o) / 2, rel=1e-12)
    assert signal.payload["best_price"] == best
    # a best price that leaves the trail below the bar: no exit
    calm = PositionView(Side.BUY, 1, low * 0.999, best_price=(low - 1.0) / (1 - 0.005))
    assert strategy.on_bar_close(_primary(m, i), SYMBOL, calm) == []
    # advanced() moves the best price with the bar (high of a long, low of a short)
    fresh = PositionView(Side.BUY, 1, low * 0.999)
    assert fresh.advanced(_primary(m, i).bar).best_price == h
    assert calm.advanced(_primary(m, i).bar).best_price == calm.best_price  # already higher
    short = PositionView(Side.SELL, 1, h * 1.2)
    assert short.advanced(_primary(m, i).bar).best_price == low


def test_square_off_on_the_first_bar_closing_at_the_time(scalp_market: Market) -> None:
    m = scalp_market
    strategy = ScalpStrategy(params(ScalpStrategy, stop_loss_pct=19.0, target_pct=99.0))
    events = m.primary_events()
    day_bars = [i for i in range(len(m)) if m.ts(i) < m.ts(0) + 86_400 * NS]
    at = next(i for i in day_bars if tod_s(m.end_ns(i)) >= hhmm_s(time(15, 15)))
    assert tod_s(m.ts(at)) == hhmm_s(time(15, 14))
    entry = m.bar(at - 30)[3]
    position = PositionView(Side.SELL, 5, entry)
    for i in range(at - 29, at):
        out = strategy.on_bar_close(events[i], SYMBOL, position)
        assert "square_off" not in {s.reason for s in out}
    [signal] = strategy.on_bar_close(events[at], SYMBOL, position)
    assert (signal.kind, signal.reason, signal.side) == ("exit", "square_off", Side.BUY)
    assert signal.price == m.bar(at)[3]
    ist = signal.ts.astimezone(UTC).timestamp() + IST_OFFSET_S
    assert datetime.fromtimestamp(ist, UTC).time() == time(15, 15)
    # a position still open on the next bar (the exit did not fill) is squared off again
    [again] = strategy.on_bar_close(events[at + 1], SYMBOL, position)
    assert again.reason == "square_off"
    assert again.id != signal.id


def test_square_off_time_is_configurable(scalp_market: Market) -> None:
    m = scalp_market
    square_off = time(11, 30)
    strategy = ScalpStrategy(
        params(ScalpStrategy, stop_loss_pct=19.0, target_pct=99.0, square_off_time=square_off)
    )
    run = drive(strategy, m, SYMBOL)
    want = reference_trades(m, stop_pct=19.0, target_pct=99.0, square_off=square_off)
    assert_trades(run.trades, want)
    assert "square_off" in {t.reason for t in run.trades}
    entries = [s for s in run.signals if s.kind == "entry"]
    assert entries
    assert all(tod_s(s.bar_ts_ns) + 60 < hhmm_s(square_off) for s in entries)
    # crosses after the square-off time would have entered without it
    assert len(expected_entries(m)) > len(expected_entries(m, square_off=square_off))


def test_no_signal_on_a_quiet_bar_with_a_position(scalp_market: Market) -> None:
    m = scalp_market
    i = _non_cross_bar(m, 100)
    _, h, low, c = m.bar(i)
    position = PositionView(Side.BUY, 1, c, stop=low - 1.0, target=h + 1.0)
    assert ScalpStrategy().on_bar_close(_primary(m, i), SYMBOL, position) == []
