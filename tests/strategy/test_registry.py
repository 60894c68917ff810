"""Registry and configuration: adding a strategy is a class plus ``@register``."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from mental_trader.config import load_settings
from mental_trader.errors import ConfigError, InvalidInputError
from mental_trader.models import Side
from mental_trader.strategy import (
    BarEventLike,
    EmaCrossStrategy,
    IntradayStrategy,
    PositionView,
    ScalpStrategy,
    Signal,
    Strategy,
    available,
    create,
    get,
    register,
    registry,
    strategy_for_mode,
)


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_STRATEGIES", dict(registry._STRATEGIES))


def test_builtins_are_registered() -> None:
    assert available() == ("intraday", "scalp")
    assert get("scalp") is ScalpStrategy
    assert get("intraday") is IntradayStrategy


def test_register_a_new_strategy() -> None:
    @register
    class Quick(EmaCrossStrategy):
        name = "quick"
        default_primary_timeframe_s = 30
        default_confirm_timeframe_s = 120
        default_stop_loss_pct = 0.2
        default_target_pct = 0.4

    assert "quick" in available()
    strategy = create("quick", load_settings(_env_file=None))
    assert isinstance(strategy, Quick)
    assert (strategy.primary_timeframe_s, strategy.confirm_timeframe_s) == (30, 120)
    assert (strategy.params.stop_loss_pct, strategy.params.target_pct) == (0.2, 0.4)


def test_register_a_custom_rule_set() -> None:
    @register
    class Never(Strategy):
        name = "never"
        default_primary_timeframe_s = 60
        default_confirm_timeframe_s = 300
        default_stop_loss_pct = 1.0
        default_target_pct = 1.0

        def on_bar_close(
            self, event: BarEventLike, symbol: str, position: PositionView | None
        ) -> list[Signal]:
            return []

    assert isinstance(create("never", load_settings(_env_file=None)), Never)


def test_register_refuses_bad_classes() -> None:
    class Nameless(EmaCrossStrategy):
        pass

    with pytest.raises(InvalidInputError, match="name"):
        register(Nameless)

    class Abstract(Strategy):
        name = "abstract"

    with pytest.raises(InvalidInputError, match="abstract"):
        register(Abstract)

    class Impostor(EmaCrossStrategy):
        name = "scalp"

    with pytest.raises(InvalidInputError, match="already registered"):
        register(Impostor)
    assert register(ScalpStrategy) is ScalpStrategy  # re-registering the same class is fine


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown strategy 'swing' \(known: intraday, scalp\)"):
        create("swing", load_settings(_env_file=None))


def test_strategy_for_mode() -> None:
    scalp = strategy_for_mode(load_settings(_env_file=None))
    assert isinstance(scalp, ScalpStrategy)
    intraday = strategy_for_mode(load_settings(_env_file=None, mode="intraday"))
    assert isinstance(intraday, IntradayStrategy)
    assert (intraday.primary_timeframe_s, intraday.confirm_timeframe_s) == (300, 900)
    # each mode keeps its own default width unless the percents are set explicitly
    assert (intraday.params.stop_loss_pct, intraday.params.target_pct) == (1.0, 2.0)
    assert (scalp.params.stop_loss_pct, scalp.params.target_pct) == (0.5, 1.0)
    assert intraday.params.trailing_stop_pct is None


def test_settings_override_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOP_LOSS_PCT", "0.7")
    settings = load_settings(
        _env_file=None,
        mode="intraday",
        target_pct=1.5,
        trailing_stop_pct=0.4,
        primary_timeframe="3m",
        confirm_timeframe="30m",
        square_off_time="15:00",
        session_start="09:30",
    )
    strategy = strategy_for_mode(settings, allow_short=False)
    p = strategy.params
    assert (p.primary_timeframe_s, p.confirm_timeframe_s) == (180, 1800)
    assert (p.stop_loss_pct, p.target_pct, p.trailing_stop_pct) == (0.7, 1.5, 0.4)
    assert (p.square_off_time, p.session_start, p.session_end) == (
        time(15, 0),
        time(9, 30),
        time(15, 30),
    )
    assert p.allow_short is False


def test_bad_parameters_are_refused() -> None:
    settings = load_settings(_env_file=None)
    with pytest.raises(InvalidInputError, match="unknown strategy parameter"):
        create("scalp", settings, stop_pct=1.0)
    with pytest.raises(InvalidInputError, match="whole multiple"):
        ScalpStrategy.default_params(confirm_timeframe_s=90)
    with pytest.raises(InvalidInputError, match="stop_loss_pct"):
        ScalpStrategy.default_params(stop_loss_pct=0.0)
    with pytest.raises(InvalidInputError, match="square-off"):
        ScalpStrategy.default_params(square_off_time=time(16, 0))


def test_position_view_validates_and_computes_levels() -> None:
    strategy = ScalpStrategy()
    long = strategy.position_from_fill(Side.BUY, 10, 200.0)
    assert long.stop == pytest.approx(199.0)
    assert long.target == pytest.approx(202.0)
    assert long.best_price == 200.0
    short = strategy.position_from_fill(Side.SELL, 10, 200.0)
    assert short.stop == pytest.approx(201.0)
    assert short.target == pytest.approx(198.0)
    with pytest.raises(InvalidInputError, match="quantity"):
        PositionView(Side.BUY, 0, 100.0)
    with pytest.raises(InvalidInputError, match="entry price"):
        PositionView(Side.BUY, 1, float("nan"))


def test_signal_derives_its_id_and_aware_time_and_is_immutable() -> None:
    bar_ts = 1_795_000_000_000_000_000
    signal = Signal(
        symbol="NSE:INFY",
        side=Side.BUY,
        kind="entry",
        price=1.0,
        reason="ema_cross",
        stop=0.99,
        target=1.02,
        timeframe_s=60,
        strategy="scalp",
        bar_ts_ns=bar_ts,
        end_ns=bar_ts + 60_000_000_000,
        payload={"cross": 1},
    )
    assert signal.id == f"scalp-NSE:INFY-{bar_ts}-entry-BUY"
    assert signal.ts == datetime.fromtimestamp(bar_ts / 1e9 + 60, tz=UTC)
    assert signal.ts.tzinfo is not None
    with pytest.raises(AttributeError):
        signal.price = 2.0  # type: ignore[misc]
    record = signal.to_record()
    assert (record.id, record.ts, record.price) == (signal.id, signal.ts, 1.0)
    assert record.payload == {"kind": "entry", "stop": 0.99, "target": 1.02, "cross": 1}
