//! Array extraction with clear errors, output columns, error mapping and `detached`.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::bars::BarTable;
use crate::error::{CoreError, CoreResult};
use crate::resample::BarColumns;
use crate::session::SessionSpec;

pyo3::import_exception!(mental_trader.errors, InvalidInputError);

impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> Self {
        InvalidInputError::new_err(e.to_string())
    }
}

/// Raise `InvalidInputError` with `msg`.
pub fn invalid(msg: impl Into<String>) -> PyErr {
    InvalidInputError::new_err(msg.into())
}

/// Run batch work with the GIL released, converting the core's errors.
pub fn detached<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> CoreResult<T> + Send,
{
    py.detach(f).map_err(PyErr::from)
}

/// Describe what was passed instead of the expected array.
fn describe(obj: &Bound<'_, PyAny>) -> String {
    if let Ok(arr) = obj.cast::<PyUntypedArray>() {
        let dtype = arr
            .dtype()
            .str()
            .map_or_else(|_| "?".to_owned(), |s| s.to_string());
        format!("a {}-D array of dtype {dtype}", arr.ndim())
    } else {
        let name = obj
            .get_type()
            .name()
            .map_or_else(|_| "?".to_owned(), |s| s.to_string());
        format!("an object of type {name}")
    }
}

/// Borrow `obj` as a read-only 1-D C-contiguous numpy array of `T`.
pub fn array1<'py, T: numpy::Element>(
    name: &str,
    dtype: &str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    let arr = obj.cast::<PyArray1<T>>().map_err(|_| {
        invalid(format!(
            "{name}: expected a 1-D numpy array of dtype {dtype}, got {}",
            describe(obj)
        ))
    })?;
    if !arr.is_c_contiguous() {
        return Err(CoreError::NonContiguous(name.to_owned()).into());
    }
    arr.try_readonly()
        .map_err(|e| invalid(format!("{name}: cannot borrow the array: {e}")))
}

/// Borrow as float64 (see [`array1`]).
pub fn f64_array<'py>(name: &str, obj: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArray1<'py, f64>> {
    array1::<f64>(name, "float64", obj)
}

/// Borrow as int64 (see [`array1`]).
pub fn i64_array<'py>(name: &str, obj: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArray1<'py, i64>> {
    array1::<i64>(name, "int64", obj)
}

/// The contiguous slice of a borrowed array.
pub fn slice<'a, T: numpy::Element>(
    name: &str,
    arr: &'a PyReadonlyArray1<'_, T>,
) -> PyResult<&'a [T]> {
    arr.as_slice()
        .map_err(|_| CoreError::NonContiguous(name.to_owned()).into())
}

/// Session arguments as the Python API takes them.
pub fn session_spec(
    timeframe_s: i64,
    session_start: Option<String>,
    session_end: Option<String>,
    utc_offset_minutes: i64,
) -> SessionSpec {
    SessionSpec {
        timeframe_s,
        session_start,
        session_end,
        utc_offset_minutes,
    }
}

/// Bar columns (plus `symbol` when asked) as a dict of numpy arrays (no copy: numpy takes
/// over each column's buffer).
pub fn table_to_dict(
    py: Python<'_>,
    table: BarTable,
    with_symbol: bool,
) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("ts", PyArray1::from_vec(py, table.ts))?;
    if with_symbol {
        d.set_item("symbol", PyArray1::from_vec(py, table.symbol))?;
    }
    d.set_item("open", PyArray1::from_vec(py, table.open))?;
    d.set_item("high", PyArray1::from_vec(py, table.high))?;
    d.set_item("low", PyArray1::from_vec(py, table.low))?;
    d.set_item("close", PyArray1::from_vec(py, table.close))?;
    d.set_item("volume", PyArray1::from_vec(py, table.volume))?;
    d.set_item("ticks", PyArray1::from_vec(py, table.ticks))?;
    Ok(d)
}

/// An integer argument that must fit in int64. Out of range, it raises `InvalidInputError`
/// (a `ValueError`) instead of PyO3's `OverflowError`; the happy path costs what `i64` does.
#[derive(Debug, Clone, Copy)]
pub struct Int(pub i64);

impl<'a, 'py> FromPyObject<'a, 'py> for Int {
    type Error = PyErr;

    #[inline]
    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<i64>() {
            Ok(v) => Ok(Self(v)),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) => Err(
                invalid(format!("integer {} does not fit in int64", obj.as_any())),
            ),
            Err(e) => Err(e),
        }
    }
}

/// A float argument. A Python int too large for a float raises `InvalidInputError` (a
/// `ValueError`) instead of `OverflowError`; the happy path costs what `f64` does.
#[derive(Debug, Clone, Copy)]
pub struct Float(pub f64);

impl<'a, 'py> FromPyObject<'a, 'py> for Float {
    type Error = PyErr;

    #[inline]
    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<f64>() {
            Ok(v) => Ok(Self(v)),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) => Err(
                invalid(format!("number {} does not fit in a float", obj.as_any())),
            ),
            Err(e) => Err(e),
        }
    }
}

/// The columns of a bar dict (`ts`, `open`, `high`, `low`, `close`, `volume`, `ticks`, and
/// optionally `symbol`) as checked numpy arrays.
pub struct BarArrays<'py> {
    ts: PyReadonlyArray1<'py, i64>,
    symbol: Option<PyReadonlyArray1<'py, i64>>,
    open: PyReadonlyArray1<'py, f64>,
    high: PyReadonlyArray1<'py, f64>,
    low: PyReadonlyArray1<'py, f64>,
    close: PyReadonlyArray1<'py, f64>,
    volume: PyReadonlyArray1<'py, f64>,
    ticks: PyReadonlyArray1<'py, i64>,
}

impl<'py> BarArrays<'py> {
    /// Take the columns out of a mapping, with errors naming the missing or bad column.
    pub fn extract(bars: &Bound<'py, PyAny>) -> PyResult<Self> {
        let col = |key: &str| -> PyResult<Bound<'py, PyAny>> {
            bars.get_item(key)
                .map_err(|_| invalid(format!("bars: missing column {key:?}")))
        };
        let symbol = if bars.contains("symbol").unwrap_or(false) {
            Some(i64_array("bars['symbol']", &col("symbol")?)?)
        } else {
            None
        };
        Ok(Self {
            ts: i64_array("bars['ts']", &col("ts")?)?,
            symbol,
            open: f64_array("bars['open']", &col("open")?)?,
            high: f64_array("bars['high']", &col("high")?)?,
            low: f64_array("bars['low']", &col("low")?)?,
            close: f64_array("bars['close']", &col("close")?)?,
            volume: f64_array("bars['volume']", &col("volume")?)?,
            ticks: i64_array("bars['ticks']", &col("ticks")?)?,
        })
    }

    /// Borrowed slices of the columns (contiguity checked).
    pub fn columns(&self) -> PyResult<BarColumns<'_>> {
        Ok(BarColumns {
            ts: slice("bars['ts']", &self.ts)?,
            symbol: self
                .symbol
                .as_ref()
                .map(|a| slice("bars['symbol']", a))
                .transpose()?,
            open: slice("bars['open']", &self.open)?,
            high: slice("bars['high']", &self.high)?,
            low: slice("bars['low']", &self.low)?,
            close: slice("bars['close']", &self.close)?,
            volume: slice("bars['volume']", &self.volume)?,
            ticks: slice("bars['ticks']", &self.ticks)?,
        })
    }
}
