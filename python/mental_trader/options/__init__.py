"""The options layer: from an underlying signal to a ranked, sized option position.

``chain`` holds the chain data model; ``analyzer`` the per-strike and chain analytics;
``ranking`` the strike ranking; ``sizing`` lots and order slices; ``manager`` debounce, cooldown,
expiry and strike choice; ``signals`` the :class:`OptionSignal` the executor trades and the
manager's other values; ``master`` the daily instrument master; ``desk`` the layer inside
the running service. The option
math (Black-76, implied volatility) is in the Rust core: :func:`mental_trader.core.black76`.
"""

from __future__ import annotations

from mental_trader.options.chain import (
    EXPIRY_TIME,
    OptionChain,
    OptionSide,
    OptionType,
    years_to_expiry,
)

__all__ = ["EXPIRY_TIME", "OptionChain", "OptionSide", "OptionType", "years_to_expiry"]
