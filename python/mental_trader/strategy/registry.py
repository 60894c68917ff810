"""The strategy registry: adding a strategy is a class plus ``@register``.

Importing :mod:`mental_trader.strategy` registers the built-in strategies (``scalp`` and
``intraday``); a strategy defined elsewhere registers when its module is imported.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypeVar

from mental_trader.errors import ConfigError, InvalidInputError
from mental_trader.strategy.base import Strategy

if TYPE_CHECKING:
    from mental_trader.config import Settings

__all__ = ["available", "create", "get", "register", "strategy_for_mode"]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_STRATEGIES: dict[str, type[Strategy]] = {}

S = TypeVar("S", bound=type[Strategy])


def register(cls: S) -> S:
    """Class decorator: make a strategy available to :func:`create` under ``cls.name``.

    Raises:
        InvalidInputError: the class has no valid own ``name`` (lowercase, ``[a-z0-9_]``),
            is abstract, or another class already took the name.
    """
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"{cls.__qualname__} needs its own lowercase `name` class attribute to register"
        )
    if getattr(cls, "__abstractmethods__", None):
        raise InvalidInputError(f"{cls.__qualname__} is abstract and cannot be registered")
    existing = _STRATEGIES.get(name)
    if existing is not None and existing is not cls:
        raise InvalidInputError(
            f"strategy name {name!r} is already registered by {existing.__qualname__}"
        )
    _STRATEGIES[name] = cls
    return cls


def available() -> tuple[str, ...]:
    """The registered strategy names, sorted."""
    return tuple(sorted(_STRATEGIES))


def get(name: str) -> type[Strategy]:
    """The strategy class registered under ``name``.

    Raises:
        ConfigError: no strategy has that name (the message lists the known ones).
    """
    try:
        return _STRATEGIES[name]
    except KeyError:
        known = ", ".join(available()) or "none"
        raise ConfigError(f"unknown strategy {name!r} (known: {known})") from None


def create(name: str, settings: Settings, **overrides: Any) -> Strategy:
    """Build the strategy registered under ``name`` from the configuration.

    Args:
        name: a registered name (``"scalp"``, ``"intraday"``, ...).
        settings: the service configuration.
        **overrides: :class:`~mental_trader.strategy.StrategyParams` fields to force,
            e.g. ``allow_short=False``.

    Raises:
        ConfigError: unknown name.
        InvalidInputError: an unknown or invalid parameter.
    """
    return get(name).from_settings(settings, **overrides)


def strategy_for_mode(settings: Settings, **overrides: Any) -> Strategy:
    """The strategy of ``settings.mode`` (``scalp`` or ``intraday``), built from ``settings``."""
    return create(settings.mode, settings, **overrides)
