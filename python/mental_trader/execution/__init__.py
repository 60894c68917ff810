"""Execution: Indian charges, the order model, the paper fill model and the executor.

* :mod:`~mental_trader.execution.charges` - Zerodha charges from dated regimes (TOML).
* :mod:`~mental_trader.execution.orders` - client ids, tick/lot rounding (the one place),
  the gateway protocol and the order state machine.
* :mod:`~mental_trader.execution.paper` - the paper gateway (DESIGN's fill model).
* :mod:`~mental_trader.execution.book` - positions and working orders per symbol.
* :mod:`~mental_trader.execution.executor` - entries, exits, flatten, fills to trades.
"""

from mental_trader.execution.charges import ChargeBreakdown, ChargesTable, segment_for
from mental_trader.execution.executor import Executor, OrderResult
from mental_trader.execution.orders import (
    OrderGateway,
    SubmitResult,
    new_client_id,
    round_to_lot,
    round_to_tick,
)
from mental_trader.execution.paper import PaperGateway

__all__ = [
    "ChargeBreakdown",
    "ChargesTable",
    "Executor",
    "OrderGateway",
    "OrderResult",
    "PaperGateway",
    "SubmitResult",
    "new_client_id",
    "round_to_lot",
    "round_to_tick",
    "segment_for",
]
