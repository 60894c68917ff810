"""Shared test set-up: hypothesis profiles and seeded synthetic ticks.

Hypothesis profiles: ``fast`` (default, 50 examples) and ``slow`` (500 examples, for CI),
chosen with the environment variable ``HYPOTHESIS_PROFILE``. Nothing here reads the host's
time zone: every timestamp is built from a fixed UTC date and the IST offset.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from .core._data import TickFactory, synthetic_ticks

settings.register_profile("fast", max_examples=50, deadline=None)
settings.register_profile("slow", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


@pytest.fixture
def make_ticks() -> TickFactory:
    """Factory of seeded synthetic tick arrays (see :func:`synthetic_ticks`)."""
    return synthetic_ticks
