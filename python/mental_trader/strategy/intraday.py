"""The intraday strategy: 5-minute EMA crosses filtered by the 15-minute trend."""

from __future__ import annotations

from mental_trader.strategy.base import EmaCrossStrategy
from mental_trader.strategy.registry import register

__all__ = ["IntradayStrategy"]


@register
class IntradayStrategy(EmaCrossStrategy):
    """EMA crossover on 5m bars, confirmed by the 15m trend; wider 1 % stop, 2 % target.

    Every value is configurable (see :meth:`~mental_trader.strategy.Strategy.from_settings`).
    """

    name = "intraday"
    default_primary_timeframe_s = 300
    default_confirm_timeframe_s = 900
    default_stop_loss_pct = 1.0
    default_target_pct = 2.0
