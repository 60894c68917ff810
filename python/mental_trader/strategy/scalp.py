"""The scalp strategy: 1-minute EMA crosses filtered by the 5-minute trend."""

from __future__ import annotations

from mental_trader.strategy.base import EmaCrossStrategy
from mental_trader.strategy.registry import register

__all__ = ["ScalpStrategy"]


@register
class ScalpStrategy(EmaCrossStrategy):
    """EMA crossover on 1m bars, confirmed by the 5m trend; tight 0.5 % stop, 1 % target.

    Every value is configurable (see :meth:`~mental_trader.strategy.Strategy.from_settings`).
    """

    name = "scalp"
    default_primary_timeframe_s = 60
    default_confirm_timeframe_s = 300
    default_stop_loss_pct = 0.5
    default_target_pct = 1.0
