"""What travels between the PostgreSQL backend and the server, as pure functions.

* JSON for ``jsonb`` columns with non-finite floats and negative zero kept (tagged);
* the binary ``COPY`` layouts of candle rows as numpy structured dtypes, and the parser of a
  binary ``COPY`` answer (``timestamptz`` is int64 microseconds since 2000-01-01);
* SQL literals for the few statements that cannot take parameters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

from mental_trader.errors import InvalidInputError, StorageError
from mental_trader.storage.base import CANDLE_COLUMNS, Candles

#: µs from the Unix epoch to the PostgreSQL epoch (2000-01-01 UTC).
PG_EPOCH_US: Final = 946_684_800_000_000
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_US = (datetime.min.replace(tzinfo=UTC) - UNIX_EPOCH) // timedelta(microseconds=1)
MAX_US = (datetime.max.replace(tzinfo=UTC) - UNIX_EPOCH) // timedelta(microseconds=1)
_VALUE_COLS = ("open", "high", "low", "close", "volume", "ticks")
COPY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no extension
COPY_TRAILER: Final = b"\xff\xff"

# ----------------------------------------------------------------- JSON with non-finite floats

# jsonb accepts neither NaN nor ±Infinity, and its numbers have no negative zero; an EMA
# state holds NaN until it is ready. Such floats travel as {"$float": "nan" | "inf" |
# "-inf" | "-0"} and come back as the same float.
_FLOAT_TAG: Final = "$float"


def _tag_floats(value: Any) -> Any:
    if isinstance(value, float):
        if math.isfinite(value):
            return {_FLOAT_TAG: "-0"} if value == 0.0 and math.copysign(1.0, value) < 0 else value
        return {_FLOAT_TAG: "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, Mapping):
        return {str(k): _tag_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_tag_floats(v) for v in value]
    return value


def _untag_float(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _FLOAT_TAG in obj:
        return float(obj[_FLOAT_TAG])
    return obj


def json_dumps(value: Any) -> str:
    return json.dumps(_tag_floats(value), allow_nan=False, separators=(",", ":"))


def json_loads(text: str) -> Any:
    return json.loads(text, object_hook=_untag_float)


# ----------------------------------------------------------------- binary COPY layouts


def _row_dtype(fields: Sequence[tuple[str, str]]) -> np.dtype[np.void]:
    """A binary COPY tuple: int16 field count, then int32 length + value per field."""
    spec: list[tuple[str, str]] = [("nfields", ">i2")]
    for name, fmt in fields:
        spec += [(f"{name}_len", ">i4"), (name, fmt)]
    return np.dtype(spec)


_VALUE_FIELDS: list[tuple[str, str]] = [
    ("ts", ">i8"),
    ("open", ">f8"),
    ("high", ">f8"),
    ("low", ">f8"),
    ("close", ">f8"),
    ("volume", ">f8"),
    ("ticks", ">i8"),
]
#: Staging rows (sym, ts, open, high, low, close, volume, ticks).
STAGE_ROW = _row_dtype([("sym", ">i4"), *_VALUE_FIELDS])
#: Rows of a read: (ts, open, ..., ticks) and (i, ts, open, ..., ticks).
READ_ROW = _row_dtype(_VALUE_FIELDS)
READ_ROW_I = _row_dtype([("i", ">i8"), *_VALUE_FIELDS])


def _width(dtype: np.dtype[np.void], name: str) -> int:
    fields = cast("Mapping[str, tuple[np.dtype[Any], int]]", dtype.fields)
    return int(fields[name][0].itemsize)


def fill_rows(buf: npt.NDArray[np.void], cols: Candles, start: int, stop: int) -> None:
    """Write the value fields of rows [start, stop) of ``cols`` into structured ``buf``."""
    names = cast("tuple[str, ...]", buf.dtype.names)
    buf["nfields"] = len(names) // 2
    for len_name, value_name in zip(names[1::2], names[2::2], strict=True):
        buf[len_name] = _width(buf.dtype, value_name)
    buf["ts"] = np.floor_divide(cols["ts"][start:stop], 1000) - PG_EPOCH_US
    for name in _VALUE_COLS:
        buf[name] = cols[name][start:stop]


def direct_row(symbol: bytes) -> np.dtype[np.void]:
    """A ``candles`` row (symbol, timeframe_s, ts, …) for a symbol of this many bytes."""
    return _row_dtype([("symbol", f"S{len(symbol)}"), ("timeframe_s", ">i4"), *_VALUE_FIELDS])


def parse_copy(data: bytes, dtype: np.dtype[np.void]) -> npt.NDArray[np.void]:
    """The rows of a binary COPY answer of fixed-width, non-null fields."""
    if not data:
        return np.empty(0, dtype=dtype)
    if data[:11] != COPY_HEADER[:11] or len(data) < 21:
        raise StorageError("malformed binary COPY answer (header)")
    start = 19 + int.from_bytes(data[15:19], "big")
    body = memoryview(data)[start : len(data) - 2]
    if data[-2:] != COPY_TRAILER or len(body) % dtype.itemsize:
        raise StorageError("malformed binary COPY answer (length)")
    rows = np.frombuffer(body, dtype=dtype)
    names = cast("tuple[str, ...]", dtype.names)
    if len(rows) and not (rows["nfields"] == len(names) // 2).all():
        raise StorageError("malformed binary COPY answer (field count)")
    for len_name, value_name in zip(names[1::2], names[2::2], strict=True):
        if len(rows) and not (rows[len_name] == _width(dtype, value_name)).all():
            raise StorageError(f"malformed binary COPY answer (NULL or width of {value_name})")
    return rows


def candle_columns(rows: npt.NDArray[np.void]) -> Candles:
    """Native candle columns of parsed read rows."""
    out: Candles = {"ts": (rows["ts"].astype(np.int64) + PG_EPOCH_US) * 1000}
    for name in _VALUE_COLS:
        out[name] = rows[name].astype(CANDLE_COLUMNS[name])
    return out


def unique_last(cols: Candles) -> Candles:
    """``cols`` without rows whose µs time repeats (the last one wins, as in a loop of
    upserts), ordered by time. A block that is already strictly increasing is returned as is.
    """
    us = np.floor_divide(cols["ts"], 1000)
    if len(us) < 2 or bool((us[1:] > us[:-1]).all()):
        return cols
    order = np.argsort(us, kind="stable")
    s = us[order]
    keep = order[np.append(s[1:] != s[:-1], True)]
    return {name: col[keep] for name, col in cols.items()}


# ----------------------------------------------------------------- literals and URL helpers


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def text_literal(value: str) -> str:
    """A SQL string literal (the session runs with standard_conforming_strings = on)."""
    if "\x00" in value:
        raise InvalidInputError("text cannot contain NUL characters")
    return "'" + value.replace("'", "''") + "'"


def ts_literal(us: int) -> str:
    us = min(max(us, MIN_US), MAX_US)
    value = UNIX_EPOCH + timedelta(microseconds=us)
    return f"'{value.isoformat()}'::timestamptz"


def ceil_us(ns: int) -> int:
    """Smallest µs time whose ns value is >= ``ns``."""
    return -(-ns // 1000)
