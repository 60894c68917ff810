"""``Engine.on_tick``'s hand-written fast path and its checked twin ``Engine._on_tick``.

The public ``on_tick`` converts plain positional arguments itself and defers everything else
(keywords, other types, overflow, a busy engine) to the PyO3-generated ``_on_tick``. These
tests pin that both paths give the same events, state and errors.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mental_trader.core import BarEvent, Engine
from mental_trader.errors import InvalidInputError

from ._data import synthetic_ticks
from ._reference import ist_ns

Call = Callable[[Engine, int, int, float, float], Any]


class _Index:
    """An integer-like object (as numpy's are): it converts through ``__index__``."""

    calls = 0

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        type(self).calls += 1
        return self.value


CALLS: dict[str, Call] = {
    "positional": lambda e, s, t, p, q: e.on_tick(s, t, p, q),
    "keywords": lambda e, s, t, p, q: e.on_tick(symbol=s, ts_ns=t, price=p, qty=q),
    "mixed": lambda e, s, t, p, q: e.on_tick(s, t, price=p, qty=q),
    "numpy scalars": lambda e, s, t, p, q: e.on_tick(
        np.int64(s), np.int64(t), np.float64(p), np.float64(q)
    ),
    "int quantities": lambda e, s, t, p, q: e.on_tick(s, t, p, int(q)),
    "index objects": lambda e, s, t, p, q: e.on_tick(_Index(s), _Index(t), p, q),
    "checked": lambda e, s, t, p, q: e._on_tick(s, t, p, q),
    "unbound": lambda e, s, t, p, q: Engine.on_tick(e, s, t, p, q),
}


@pytest.mark.parametrize("how", list(CALLS))
@pytest.mark.parametrize("cumulative", [False, True])
def test_every_call_form_gives_the_same_events_and_state(how: str, cumulative: bool) -> None:
    ticks = synthetic_ticks(3_000, seed=11, n_symbols=4, cumulative=cumulative, jitter_ms=900)
    mode = "cumulative" if cumulative else "trade"
    ref, eng = Engine(60, 300, 3, 5, volume_mode=mode), Engine(60, 300, 3, 5, volume_mode=mode)
    want: list[BarEvent] = []
    got: list[BarEvent] = []
    call = CALLS[how]
    for s, t, p, q in ticks.rows():
        # on_frame is the other path into the same engine (tested equal to on_tick elsewhere).
        want += ref.on_frame(np.array([t]), np.array([p]), np.array([q]), np.array([s])) or []
        got += call(eng, s, t, p, q) or []
    assert len(got) > 50
    assert got == want
    assert eng.dropped == ref.dropped
    assert eng.snapshot() == ref.snapshot()


def test_returns_none_inside_a_bar_and_events_when_one_closes() -> None:
    e = Engine(60, 300, 3, 5)
    assert e.on_tick(7, ist_ns(9, 15, 1), 100.0, 5.0) is None
    assert e.on_tick(7, ist_ns(9, 15, 30), 101.0, 5.0) is None  # the fast path
    assert e.on_tick(7, ist_ns(9, 15, 59), 99.5, 2.0) is None
    events = e.on_tick(7, ist_ns(9, 16, 0), 100.5, 1.0)
    assert events is not None
    (event,) = events
    bar = event.bar
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ticks) == (
        100.0,
        101.0,
        99.5,
        99.5,
        12.0,
        3,
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((0, 1, 10.0), {}, TypeError, "qty"),
        ((0, 1, 10.0, 1.0, 5), {}, TypeError, "positional"),
        ((0, 1, 10.0), {"quantity": 1.0}, TypeError, "quantity"),
        ((0, 1, "10", 1.0), {}, TypeError, "price"),
        ((1.5, 1, 10.0, 1.0), {}, TypeError, "symbol"),
        ((0, 2**64, 10.0, 1.0), {}, InvalidInputError, "int64"),
        ((0, 1, 10**400, 1.0), {}, InvalidInputError, "float"),
    ],
)
def test_bad_arguments_raise_the_checked_errors(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    e = Engine()
    e.on_tick(0, ist_ns(9, 15, 1), 10.0, 1.0)
    before = e.snapshot()
    with pytest.raises(error, match=match):
        e.on_tick(*args, **kwargs)
    with pytest.raises(error, match=match):
        e._on_tick(*args, **kwargs)
    assert e.snapshot() == before


@pytest.mark.parametrize(
    ("price", "qty"), [(math.nan, 1.0), (-1.0, 1.0), (0.0, 1.0), (10.0, -1.0), (math.inf, 1.0)]
)
def test_bad_values_inside_an_open_bar_raise_and_change_nothing(price: float, qty: float) -> None:
    e = Engine()
    e.on_tick(0, ist_ns(9, 15, 1), 10.0, 1.0)
    before = e.snapshot()
    with pytest.raises(InvalidInputError):
        e.on_tick(0, ist_ns(9, 15, 2), price, qty)
    assert e.snapshot() == before
    assert e.on_tick(0, ist_ns(9, 15, 3), 10.5, 1.0) is None  # still usable


def test_conversion_code_runs_once_and_its_exceptions_propagate() -> None:
    """Arguments that need Python code to convert skip the fast path untouched: their
    ``__index__`` runs once, and whatever it raises (even KeyboardInterrupt) comes out."""
    e = Engine()
    _Index.calls = 0
    assert e.on_tick(_Index(0), ist_ns(9, 15, 1), 10.0, 1.0) is None
    assert _Index.calls == 1

    class Interrupting:
        def __index__(self) -> int:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        e.on_tick(Interrupting(), ist_ns(9, 15, 2), 10.0, 1.0)


def test_the_checked_path_cannot_be_redirected(monkeypatch: pytest.MonkeyPatch) -> None:
    e = Engine()
    monkeypatch.setattr(Engine, "_on_tick", lambda *a, **k: "hijacked", raising=True)
    assert e.on_tick(symbol=0, ts_ns=ist_ns(9, 15, 1), price=10.0, qty=1.0) is None
    assert e.symbols == [0]


def test_errors_name_the_public_method() -> None:
    with pytest.raises(TypeError, match=r"Engine\.on_tick\(\) missing 1 required"):
        Engine().on_tick(0, 1, 10.0)  # type: ignore[call-arg]


def test_signature_is_the_documented_one() -> None:
    params = list(inspect.signature(Engine.on_tick).parameters)
    assert params == ["self", "symbol", "ts_ns", "price", "qty"]
    assert "bar closed" in (Engine.on_tick.__doc__ or "")


def test_unbound_call_on_another_type_is_refused() -> None:
    with pytest.raises(TypeError):
        Engine.on_tick(object(), 0, 1, 10.0, 1.0)  # type: ignore[arg-type]


def test_a_call_while_another_thread_holds_the_engine_is_refused_cleanly() -> None:
    """``on_ticks`` releases the GIL; a call from another thread meanwhile raises
    RuntimeError and changes nothing: the final state is exactly that of the batch alone."""
    ticks = synthetic_ticks(1_000_000, seed=3, n_symbols=8)
    eng, ref = Engine(), Engine()
    ref.on_ticks(ticks.ts, ticks.price, ticks.qty, ticks.symbol)
    errors: list[BaseException] = []

    def batch() -> None:
        try:
            eng.on_ticks(ticks.ts, ticks.price, ticks.qty, ticks.symbol)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=batch)
    worker.start()
    refused = rejected = 0
    messages: set[str] = set()
    ts = int(ticks.ts[0])
    while worker.is_alive():
        # A NaN price: refused while the batch holds the engine, rejected as bad input
        # otherwise; neither may change the state.
        try:
            eng.on_tick(0, ts, math.nan, 1.0)
        except RuntimeError as exc:
            messages.add(str(exc))
            refused += 1
        except InvalidInputError:
            rejected += 1
    worker.join()
    assert not errors
    assert refused > 0
    assert messages == {"Engine is in use by another call (another thread?)"}
    assert eng.snapshot() == ref.snapshot()
    with pytest.raises(InvalidInputError):  # free again
        eng.on_tick(0, ts, math.nan, 1.0)
