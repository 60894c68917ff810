"""Trading strategies: closed bar events in, :class:`Signal` values out.

A strategy never talks to a broker. The service feeds it every event of each engine call
(primary and confirm, in order; a strategy that :attr:`~Strategy.skips_quiet_bars` gets only
the primary events that can matter) with its view of the open position, and acts on the
signals it returns. Adding a strategy is a class plus :func:`register`::

    @register
    class MyStrategy(EmaCrossStrategy):
        name = "mine"
        default_primary_timeframe_s = 60
        default_confirm_timeframe_s = 300
        default_stop_loss_pct = 0.3
        default_target_pct = 0.6

    strategy = create("mine", settings)
"""

from __future__ import annotations

from mental_trader.strategy.base import (
    BarEventLike,
    BarLike,
    EmaCrossStrategy,
    PositionView,
    Signal,
    SignalKind,
    SignalReason,
    Strategy,
    StrategyParams,
    signal_id,
)
from mental_trader.strategy.intraday import IntradayStrategy
from mental_trader.strategy.registry import (
    available,
    create,
    get,
    register,
    strategy_for_mode,
)
from mental_trader.strategy.scalp import ScalpStrategy

__all__ = [
    "BarEventLike",
    "BarLike",
    "EmaCrossStrategy",
    "IntradayStrategy",
    "PositionView",
    "ScalpStrategy",
    "Signal",
    "SignalKind",
    "SignalReason",
    "Strategy",
    "StrategyParams",
    "available",
    "create",
    "get",
    "register",
    "signal_id",
    "strategy_for_mode",
]
