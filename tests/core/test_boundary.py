"""Bad input at the Rust boundary raises InvalidInputError (a ValueError), never a panic.

``PanicException`` derives from ``BaseException``, so ``pytest.raises(InvalidInputError)`` lets
it through and the test fails: every case here also proves that no input reaches a panic.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mental_trader.core import BarBuilder, Ema, Engine, build_bars, crossovers, ema, resample_bars
from mental_trader.errors import InvalidInputError, MentalTraderError, PanicException

from ._reference import ist_ns

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def good_ticks(n: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ts = np.array([ist_ns(9, 15, 7 * i) for i in range(n)], dtype=np.int64)
    price = np.linspace(100.0, 101.0, n)
    qty = np.ones(n)
    sym = np.zeros(n, dtype=np.int64)
    return ts, price, qty, sym


def good_bars() -> dict[str, Any]:
    ts, price, qty, sym = good_ticks(40)
    return build_bars(ts, price, qty, symbol=sym)


def test_error_hierarchy() -> None:
    assert issubclass(InvalidInputError, ValueError)
    assert issubclass(InvalidInputError, MentalTraderError)
    assert issubclass(PanicException, BaseException)
    assert not issubclass(PanicException, Exception)
    with pytest.raises(ValueError, match=r"(?i)period"):
        ema(np.ones(3), 0)


# ------------------------------------------------------------------------------ arrays

FLOAT = np.linspace(1.0, 2.0, 6)
BAD_FLOAT_ARRAYS: list[Any] = [
    pytest.param(np.arange(6, dtype=np.int64), id="int64"),
    pytest.param(np.arange(6, dtype=np.int32), id="int32"),
    pytest.param(FLOAT.astype(np.float32), id="float32"),
    pytest.param(FLOAT.astype(object), id="object"),
    pytest.param(np.ones(6, dtype=bool), id="bool"),
    pytest.param(FLOAT.astype(np.complex128), id="complex"),
    pytest.param(np.ones((2, 3)), id="2d"),
    pytest.param(np.ones((6, 1)), id="column"),
    pytest.param(np.array(1.0), id="0d"),
    pytest.param(np.linspace(1.0, 2.0, 12)[::2], id="strided"),
    pytest.param(FLOAT[::-1], id="reversed"),
    pytest.param(FLOAT.tolist(), id="list"),
    pytest.param(None, id="None"),
    pytest.param("1.0,2.0", id="str"),
]


@pytest.mark.parametrize("values", BAD_FLOAT_ARRAYS)
def test_ema_bad_values(values: Any) -> None:
    with pytest.raises(InvalidInputError):
        ema(values, 3)


def test_ema_non_contiguous_names_the_problem() -> None:
    with pytest.raises(InvalidInputError, match=r"(?i)contiguous"):
        ema(np.linspace(1.0, 2.0, 12)[::2], 3)


def test_ema_wrong_dtype_names_the_problem() -> None:
    with pytest.raises(InvalidInputError, match=r"(?i)dtype|float64|float32|type"):
        ema(FLOAT.astype(np.float32), 3)


def test_ema_big_endian_is_rejected_or_read_correctly() -> None:
    x = np.linspace(1.0, 2.0, 20)
    try:
        got = ema(x.astype(">f8"), 4)
    except InvalidInputError:
        return
    np.testing.assert_array_equal(got, ema(x, 4))


@pytest.mark.parametrize("period", [0, -1, -(2**31)])
def test_ema_bad_period(period: int) -> None:
    with pytest.raises(InvalidInputError, match=r"(?i)period"):
        ema(FLOAT, period)
    with pytest.raises(InvalidInputError, match=r"(?i)period"):
        Ema(period)


def test_ema_huge_period_is_all_nan() -> None:
    assert np.isnan(ema(FLOAT, 10**9)).all()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", [0, 3, 5])
def test_ema_non_finite(bad: float, where: int) -> None:
    x = FLOAT.copy()
    x[where] = bad
    with pytest.raises(InvalidInputError):
        ema(x, 3)


@pytest.mark.parametrize(
    "out",
    [
        pytest.param(np.empty(5), id="short"),
        pytest.param(np.empty(7), id="long"),
        pytest.param(np.empty(6, dtype=np.float32), id="float32"),
        pytest.param(np.empty(6, dtype=np.int64), id="int64"),
        pytest.param(np.empty(12)[::2], id="strided"),
        pytest.param(np.empty((2, 3)), id="2d"),
        pytest.param([0.0] * 6, id="list"),
    ],
)
def test_ema_bad_out(out: Any) -> None:
    with pytest.raises(InvalidInputError):
        ema(FLOAT, 3, out=out)


def test_ema_read_only_out() -> None:
    out = np.empty(6)
    out.flags.writeable = False
    with pytest.raises(InvalidInputError):
        ema(FLOAT, 3, out=out)


def test_ema_out_aliasing_values_is_rejected_or_correct() -> None:
    x = np.linspace(1.0, 2.0, 30)
    want = ema(x, 5)
    try:
        got = ema(x, 5, out=x)
    except InvalidInputError:
        return
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("bad", BAD_FLOAT_ARRAYS)
def test_crossovers_bad_arrays(bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        crossovers(bad, FLOAT)
    with pytest.raises(InvalidInputError):
        crossovers(FLOAT, bad)


def test_crossovers_length_mismatch() -> None:
    with pytest.raises(InvalidInputError, match=r"(?i)length|mismatch|6|5"):
        crossovers(FLOAT, FLOAT[:5].copy())


# -------------------------------------------------------------------------- build_bars

TS, PRICE, QTY, SYM = good_ticks()


def _strided(a: np.ndarray) -> np.ndarray:
    return np.repeat(a, 2)[::2]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"ts": TS.astype(np.float64)}, id="ts-float64"),
        pytest.param({"ts": TS.astype(np.int32)}, id="ts-int32"),
        pytest.param({"ts": TS.astype(np.uint64)}, id="ts-uint64"),
        pytest.param({"ts": TS.astype("datetime64[ns]")}, id="ts-datetime64"),
        pytest.param({"ts": TS.astype(object)}, id="ts-object"),
        pytest.param({"price": PRICE.astype(np.int64)}, id="price-int64"),
        pytest.param({"price": PRICE.astype(np.float32)}, id="price-float32"),
        pytest.param({"price": PRICE.astype(object)}, id="price-object"),
        pytest.param({"qty": QTY.astype(np.int64)}, id="qty-int64"),
        pytest.param({"qty": QTY.astype(np.float32)}, id="qty-float32"),
        pytest.param({"symbol": SYM.astype(np.float64)}, id="symbol-float64"),
        pytest.param({"symbol": SYM.astype(np.int32)}, id="symbol-int32"),
        pytest.param({"ts": TS.reshape(2, 4)}, id="ts-2d"),
        pytest.param({"price": PRICE.reshape(4, 2)}, id="price-2d"),
        pytest.param({"ts": _strided(TS)}, id="ts-strided"),
        pytest.param({"price": _strided(PRICE)}, id="price-strided"),
        pytest.param({"qty": _strided(QTY)}, id="qty-strided"),
        pytest.param({"symbol": _strided(SYM)}, id="symbol-strided"),
        pytest.param({"price": PRICE[:-1].copy()}, id="price-short"),
        pytest.param({"qty": np.ones(9)}, id="qty-long"),
        pytest.param({"symbol": SYM[:3].copy()}, id="symbol-short"),
        pytest.param({"ts": TS.tolist()}, id="ts-list"),
        pytest.param({"price": None}, id="price-None"),
    ],
)
def test_build_bars_bad_arrays(change: dict[str, Any]) -> None:
    args = {"ts": TS, "price": PRICE, "qty": QTY, "symbol": SYM, **change}
    with pytest.raises(InvalidInputError):
        build_bars(args["ts"], args["price"], args["qty"], symbol=args["symbol"])


def test_build_bars_length_mismatch_names_the_problem() -> None:
    with pytest.raises(InvalidInputError, match=r"(?i)length|mismatch"):
        build_bars(TS, PRICE[:-1].copy(), QTY)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, -1e-300])
def test_build_bars_bad_price(bad: float) -> None:
    price = PRICE.copy()
    price[4] = bad
    with pytest.raises(InvalidInputError, match=r"(?i)price"):
        build_bars(TS, price, QTY)


@pytest.mark.parametrize("bad", [-1.0, -1e-300, math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("mode", ["trade", "cumulative"])
def test_build_bars_bad_qty(bad: float, mode: str) -> None:
    qty = QTY.copy()
    qty[2] = bad
    with pytest.raises(InvalidInputError, match=r"(?i)qty|quantity|volume"):
        build_bars(TS, PRICE, qty, volume_mode=mode)


def test_build_bars_bad_tick_even_if_out_of_session() -> None:
    """Validation does not depend on the session filter: a NaN is an error wherever it is."""
    ts = TS.copy()
    ts[1] = ist_ns(3, 0)
    price = PRICE.copy()
    price[1] = math.nan
    with pytest.raises(InvalidInputError):
        build_bars(ts, price, QTY)


BAD_KWARGS: list[Any] = [
    pytest.param({"timeframe_s": 0}, id="tf-0"),
    pytest.param({"timeframe_s": -60}, id="tf-negative"),
    pytest.param({"timeframe_s": 86_401}, id="tf-over-a-day"),
    pytest.param({"volume_mode": "foo"}, id="mode-foo"),
    pytest.param({"volume_mode": ""}, id="mode-empty"),
    pytest.param({"volume_mode": "Trade"}, id="mode-case"),
    pytest.param({"session_start": "9:15x"}, id="start-9:15x"),
    pytest.param({"session_start": "25:00"}, id="start-25:00"),
    pytest.param({"session_start": ""}, id="start-empty"),
    pytest.param({"session_start": "09:60"}, id="start-09:60"),
    pytest.param({"session_start": "ab:cd"}, id="start-letters"),
    pytest.param({"session_start": "-1:15"}, id="start-negative"),
    pytest.param({"session_start": "\uff10\uff19:\uff11\uff15"}, id="start-fullwidth-digits"),
    pytest.param({"session_end": "15:30x"}, id="end-15:30x"),
    pytest.param({"session_end": "24:01"}, id="end-24:01"),
    pytest.param({"session_end": ""}, id="end-empty"),
    pytest.param({"session_start": "15:30", "session_end": "09:15"}, id="start-after-end"),
    pytest.param({"session_start": "09:15", "session_end": "09:15"}, id="start-equals-end"),
]


@pytest.mark.parametrize("kwargs", BAD_KWARGS)
def test_build_bars_bad_kwargs(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        build_bars(TS, PRICE, QTY, **kwargs)


@pytest.mark.parametrize("kwargs", BAD_KWARGS)
def test_bar_builder_bad_kwargs(kwargs: dict[str, Any]) -> None:
    kwargs = dict(kwargs)  # the parameter dict is shared between tests
    tf = kwargs.pop("timeframe_s", 60)
    with pytest.raises(InvalidInputError):
        BarBuilder(tf, **kwargs)


@pytest.mark.parametrize("kwargs", BAD_KWARGS)
def test_engine_bad_kwargs(kwargs: dict[str, Any]) -> None:
    kwargs = dict(kwargs)  # the parameter dict is shared between tests
    tf = kwargs.pop("timeframe_s", 60)
    with pytest.raises(InvalidInputError):
        Engine(tf, max(tf, 1) * 5, **kwargs)


def test_session_error_names_the_problem() -> None:
    with pytest.raises(InvalidInputError, match=r"(?i)session|HH:MM|time|9:15x"):
        build_bars(TS, PRICE, QTY, session_start="9:15x")
    with pytest.raises(InvalidInputError, match=r"(?i)volume|mode|foo"):
        build_bars(TS, PRICE, QTY, volume_mode="foo")
    with pytest.raises(InvalidInputError, match=r"(?i)timeframe"):
        build_bars(TS, PRICE, QTY, timeframe_s=0)


@pytest.mark.parametrize("timeframe_s", [1, 86_400])
def test_timeframe_limits_are_valid(timeframe_s: int) -> None:
    out = build_bars(TS, PRICE, QTY, timeframe_s=timeframe_s)
    assert int(out["ticks"].sum()) == len(TS)


# ----------------------------------------------------------------------- resample_bars


@pytest.mark.parametrize("missing", ["ts", "open", "high", "low", "close", "volume", "ticks"])
def test_resample_missing_column(missing: str) -> None:
    bars = good_bars()
    del bars[missing]
    with pytest.raises(InvalidInputError, match=missing):
        resample_bars(bars, 300)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda b: b.update(ts=b["ts"].astype(np.float64)), id="ts-float"),
        pytest.param(lambda b: b.update(open=b["open"].astype(np.float32)), id="open-float32"),
        pytest.param(lambda b: b.update(ticks=b["ticks"].astype(np.float64)), id="ticks-float"),
        pytest.param(lambda b: b.update(close=b["close"][:-1].copy()), id="close-short"),
        pytest.param(lambda b: b.update(symbol=b["symbol"][:-1].copy()), id="symbol-short"),
        pytest.param(lambda b: b.update(high=np.repeat(b["high"], 2)[::2]), id="high-strided"),
        pytest.param(lambda b: b.update(ts=b["ts"][::-1].copy()), id="ts-descending"),
        pytest.param(lambda b: b["ts"].__setitem__(0, ist_ns(8, 0)), id="bar-out-of-session"),
        pytest.param(lambda b: b.update(low=b["low"].reshape(1, -1)), id="low-2d"),
    ],
)
def test_resample_bad_bars(change: Callable[[dict[str, Any]], None]) -> None:
    bars = good_bars()
    assert len(bars["ts"]) > 3
    change(bars)
    with pytest.raises(InvalidInputError):
        resample_bars(bars, 300)


@pytest.mark.parametrize("timeframe_s", [0, -300, 86_401])
def test_resample_bad_timeframe(timeframe_s: int) -> None:
    with pytest.raises(InvalidInputError):
        resample_bars(good_bars(), timeframe_s)


@pytest.mark.parametrize("kwargs", [k for k in BAD_KWARGS if "session" in str(k.values)])
def test_resample_bad_session(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        resample_bars(good_bars(), 300, **kwargs)


# --------------------------------------------------------------------- streaming ticks


BAD_TICKS = [
    pytest.param(math.nan, 1.0, id="price-nan"),
    pytest.param(math.inf, 1.0, id="price-inf"),
    pytest.param(0.0, 1.0, id="price-0"),
    pytest.param(-5.0, 1.0, id="price-negative"),
    pytest.param(5.0, -1.0, id="qty-negative"),
    pytest.param(5.0, math.nan, id="qty-nan"),
    pytest.param(5.0, math.inf, id="qty-inf"),
]


@pytest.mark.parametrize(("price", "qty"), BAD_TICKS)
def test_bar_builder_bad_tick_keeps_state(price: float, qty: float) -> None:
    b = BarBuilder()
    b.on_tick(1, ist_ns(9, 15, 5), 10.0, 1.0)
    before = b.current(1)
    with pytest.raises(InvalidInputError):
        b.on_tick(1, ist_ns(9, 16, 5), price, qty)
    assert b.current(1) == before
    assert b.dropped == {"out_of_session": 0, "late": 0}


@pytest.mark.parametrize(("price", "qty"), BAD_TICKS)
def test_bad_tick_out_of_session_still_raises(price: float, qty: float) -> None:
    b = BarBuilder()
    with pytest.raises(InvalidInputError):
        b.on_tick(1, ist_ns(3, 0), price, qty)
    assert b.dropped == {"out_of_session": 0, "late": 0}


@pytest.mark.parametrize("ts", [I64_MIN, I64_MIN + 1, -1, 0, I64_MAX - 1, I64_MAX])
def test_extreme_timestamps_never_panic(ts: int) -> None:
    for make in (BarBuilder, Engine):
        obj: Any = make()
        try:
            obj.on_tick(0, ts, 10.0, 1.0)
            obj.on_time(ts)
            obj.flush()
        except InvalidInputError:
            pass
    arr = np.array([ts], dtype=np.int64)
    no_session: dict[str, Any] = {"session_start": None, "session_end": None}
    for kwargs in ({}, no_session):
        with contextlib.suppress(InvalidInputError):
            build_bars(arr, np.array([10.0]), np.array([1.0]), **kwargs)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((60, 90), id="confirm-not-a-multiple"),
        pytest.param((300, 60), id="confirm-shorter"),
        pytest.param((60, 0), id="confirm-0"),
        pytest.param((60, -300), id="confirm-negative"),
        pytest.param((0, 300), id="tf-0"),
        pytest.param((60, 300, 21, 8), id="fast-above-slow"),
        pytest.param((60, 300, 8, 8), id="fast-equals-slow"),
        pytest.param((60, 300, 0, 8), id="fast-0"),
        pytest.param((60, 300, -1, 8), id="fast-negative"),
        pytest.param((60, 300, 1, 0), id="slow-0"),
    ],
)
def test_engine_bad_args(args: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInputError):
        Engine(*args)


def test_engine_bad_volume_mode_and_session() -> None:
    with pytest.raises(InvalidInputError):
        Engine(volume_mode="shares")
    with pytest.raises(InvalidInputError):
        Engine(session_start="15:30", session_end="09:15")


@pytest.mark.parametrize(("price", "qty"), BAD_TICKS)
def test_engine_bad_tick(price: float, qty: float) -> None:
    e = Engine()
    with pytest.raises(InvalidInputError):
        e.on_tick(0, ist_ns(9, 15), price, qty)
    assert e.symbols == []


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"ts": TS.astype(np.float64)}, id="ts-float64"),
        pytest.param({"price": PRICE.astype(np.float32)}, id="price-float32"),
        pytest.param({"qty": QTY.astype(np.int64)}, id="qty-int64"),
        pytest.param({"symbol": SYM.astype(np.int32)}, id="symbol-int32"),
        pytest.param({"price": _strided(PRICE)}, id="price-strided"),
        pytest.param({"ts": TS.reshape(2, 4)}, id="ts-2d"),
        pytest.param({"qty": QTY[:-2].copy()}, id="qty-short"),
        pytest.param({"symbol": np.zeros(9, dtype=np.int64)}, id="symbol-long"),
        pytest.param({"price": np.where(PRICE > 100.5, np.nan, PRICE)}, id="price-nan"),
        pytest.param({"price": -PRICE}, id="price-negative"),
        pytest.param({"qty": -QTY}, id="qty-negative"),
    ],
)
def test_engine_on_ticks_bad_arrays(change: dict[str, Any]) -> None:
    args = {"ts": TS, "price": PRICE, "qty": QTY, "symbol": SYM, **change}
    e = Engine()
    with pytest.raises(InvalidInputError):
        e.on_ticks(args["ts"], args["price"], args["qty"], args["symbol"], flush=True)
    assert e.symbols == []
    assert e.flush() == []


# ------------------------------------------------------------------------- snapshots


def _snapshot() -> bytes:
    e = Engine(60, 300, 2, 3)
    ts, price, qty, _ = good_ticks(30)
    sym = (np.arange(30) % 3).astype(np.int64)
    e.on_ticks(ts, price, qty, sym)
    return e.snapshot()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00", id="zero-byte"),
        pytest.param(b"not a snapshot at all", id="text"),
        pytest.param(bytes(range(256)) * 4, id="ramp"),
        pytest.param(b"\xff" * 64, id="ones"),
    ],
)
def test_from_snapshot_garbage(data: bytes) -> None:
    with pytest.raises(InvalidInputError):
        Engine.from_snapshot(data)


def test_from_snapshot_every_truncation() -> None:
    blob = _snapshot()
    assert len(blob) > 16
    for n in range(len(blob)):
        with pytest.raises(InvalidInputError):
            Engine.from_snapshot(blob[:n])


def test_from_snapshot_byte_flips_never_panic() -> None:
    """A corrupted snapshot is rejected or (if still well-formed) loaded; it never panics."""
    blob = bytearray(_snapshot())
    for i in range(len(blob)):
        for flip in (0x01, 0x80, 0xFF):
            data = bytearray(blob)
            data[i] ^= flip
            with contextlib.suppress(InvalidInputError):
                Engine.from_snapshot(bytes(data))


@given(st.binary(max_size=400))
def test_from_snapshot_random_bytes(data: bytes) -> None:
    with contextlib.suppress(InvalidInputError):
        Engine.from_snapshot(data)


# ------------------------------------------------------------------------- Ema state


def _ema_state() -> dict[str, Any]:
    e = Ema(4)
    for x in (1.0, 2.0, 3.0, 4.0, 5.0):
        e.update(x)
    return dict(e.to_state())


@pytest.mark.parametrize("key", ["period", "count", "seed_sum", "value"])
def test_ema_from_state_missing_key(key: str) -> None:
    state = _ema_state()
    del state[key]
    with pytest.raises(InvalidInputError, match=key):
        Ema.from_state(state)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"period": 0}, id="period-0"),
        pytest.param({"period": -3}, id="period-negative"),
        pytest.param({"count": -1}, id="count-negative"),
        pytest.param({"value": math.nan}, id="ready-but-nan"),
        pytest.param({"value": math.inf}, id="value-inf"),
        pytest.param({"seed_sum": math.nan}, id="seed-nan"),
        pytest.param({"count": 2, "value": 3.0}, id="warming-but-valued"),
    ],
)
def test_ema_from_state_inconsistent(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        Ema.from_state({**_ema_state(), **change})


def test_ema_from_state_empty() -> None:
    with pytest.raises(InvalidInputError):
        Ema.from_state({})


# ----------------------------------------------------------------------------- fuzz

_dtypes = st.sampled_from([np.float64, np.float64, np.float32, np.int64, np.int32, object, bool])
_specials = st.sampled_from(
    [0.0, -0.0, -1.0, 1.0, math.nan, math.inf, -math.inf, 1e308, 5e-324, 2.0**63]
)


@st.composite
def arrays(draw: st.DrawFn, n: int | None = None) -> Any:
    """Mostly plausible 1-D arrays, sometimes of the wrong dtype, shape, stride or length."""
    size = draw(st.integers(0, 12)) if n is None else n + draw(st.sampled_from([0, 0, 0, 0, 1, -1]))
    size = max(size, 0)
    values = draw(st.lists(st.one_of(st.floats(1.0, 1e4), _specials), min_size=size, max_size=size))
    dtype = draw(_dtypes)
    with np.errstate(all="ignore"):
        base = np.array(values, dtype=np.float64)
        arr = base.astype(dtype) if dtype is not object else base.astype(object)
    shape = draw(st.sampled_from(["1d", "1d", "1d", "strided", "2d"]))
    if shape == "strided":
        arr = np.repeat(arr, 2)[::2]
    elif shape == "2d":
        arr = arr.reshape(1, -1)
    return arr


@st.composite
def timestamps(draw: st.DrawFn, n: int) -> Any:
    ts = draw(
        st.lists(
            st.one_of(
                st.integers(ist_ns(9, 0), ist_ns(16, 0)),
                st.sampled_from([I64_MIN, I64_MAX, 0, -1, I64_MAX - 10**12]),
            ),
            min_size=n,
            max_size=n,
        )
    )
    return np.array(ts, dtype=np.int64)


_session_args: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "session_start": st.sampled_from([None, "09:15", "00:00", "9:15", "23:59", "x"]),
        "session_end": st.sampled_from([None, "15:30", "24:00", "23:59", "00:00"]),
        "utc_offset_minutes": st.sampled_from([330, 0, -720, 840, 1439, -1439, 100_000]),
    }
)


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(InvalidInputError):
        fn(*args, **kwargs)


@given(st.data())
def test_fuzz_batch_functions(data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 10), label="n")
    ts = data.draw(st.one_of(timestamps(n), arrays(n)), label="ts")
    price = data.draw(arrays(n), label="price")
    qty = data.draw(arrays(n), label="qty")
    symbol = data.draw(
        st.one_of(st.none(), st.just(np.arange(n, dtype=np.int64) % 3), arrays(n)), label="symbol"
    )
    tf = data.draw(st.sampled_from([1, 60, 300, 86_400, 0, -1, 86_401]), label="timeframe_s")
    mode = data.draw(st.sampled_from(["trade", "cumulative", "x"]), label="volume_mode")
    session = data.draw(_session_args, label="session")
    period = data.draw(st.integers(-2, 12), label="period")

    _call(ema, price, period)
    _call(crossovers, price, qty)
    _call(
        build_bars,
        ts,
        price,
        qty,
        timeframe_s=tf,
        symbol=symbol,
        volume_mode=mode,
        **session,
    )
    try:
        bars = build_bars(ts, price, qty, symbol=symbol, timeframe_s=tf, **session)
    except InvalidInputError:
        return
    coarse = data.draw(st.sampled_from([60, 300, 3_600, 86_400, 7, 0]), label="coarse")
    _call(resample_bars, bars, coarse, **session)


@given(st.data())
def test_fuzz_streaming(data: st.DataObject) -> None:
    session = data.draw(_session_args, label="session")
    tf = data.draw(st.sampled_from([1, 60, 300, 86_400, 0, -5]), label="timeframe_s")
    mult = data.draw(st.sampled_from([1, 2, 5, 0, -1]), label="confirm multiple")
    grace = data.draw(st.sampled_from([0, 1000, 10**12]), label="grace_ms")
    builder: Any = None
    engine: Any = None
    with contextlib.suppress(InvalidInputError):
        builder = BarBuilder(tf, grace_ms=grace, **session)
    with contextlib.suppress(InvalidInputError):
        engine = Engine(tf, tf * mult, 2, 3, grace_ms=grace, **session)
    ticks = st.tuples(
        st.integers(0, 5),
        st.one_of(
            st.integers(ist_ns(9, 0), ist_ns(16, 0)),
            st.sampled_from([I64_MIN, I64_MAX, 0, -1]),
        ),
        st.one_of(st.floats(1.0, 1e4), _specials),
        st.one_of(st.floats(0.0, 1e4), _specials),
    )
    for sym, ts, price, qty in data.draw(st.lists(ticks, max_size=30), label="ticks"):
        for obj in (builder, engine):
            if obj is not None:
                _call(obj.on_tick, sym, ts, price, qty)
                if ts % 3 == 0:
                    _call(obj.on_time, ts)
    for obj in (builder, engine):
        if obj is not None:
            _call(obj.flush)
    if engine is not None:
        _call(Engine.from_snapshot, engine.snapshot())


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: BarBuilder().on_tick(0, 2**64, 10.0, 1.0), id="builder-ts"),
        pytest.param(lambda: Engine().on_tick(0, 2**64, 10.0, 1.0), id="engine-ts"),
        pytest.param(lambda: Engine().on_time(-(2**64)), id="engine-now"),
        pytest.param(lambda: ema(FLOAT, 2**64), id="ema-period"),
        pytest.param(lambda: Ema(2**64), id="Ema-period"),
    ],
)
def test_out_of_range_python_ints(call: Callable[[], object]) -> None:
    with pytest.raises(InvalidInputError):
        call()
