//! Batch functions: `ema`, `crossovers`, `build_bars`, `resample_bars`.

use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::arrays::{
    detached, f64_array, i64_array, invalid, session_spec, slice, table_to_dict, BarArrays, Int,
};
use crate::bars::{self, BatchBars, VolumeMode};
use crate::cross::crossovers_into;
use crate::ema::ema_into;
use crate::error::CoreError;
use crate::resample;
use crate::session::Session;

fn period_u64(period: i64) -> PyResult<u64> {
    u64::try_from(period)
        .map_err(|_| invalid(format!("invalid period: period must be >= 1, got {period}")))
}

/// EMA of `values` (TA-Lib semantics), optionally into a caller's `out` buffer.
#[pyfunction(name = "ema")]
#[pyo3(signature = (values, period, out = None))]
pub fn ema_py<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyAny>,
    period: Int,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let period = period_u64(period.0)?;
    let x = f64_array("values", values)?;
    let xs = slice("values", &x)?;
    match out {
        None => {
            // numpy's allocator (huge pages for big arrays) faults memory in much faster
            // than a fresh Vec would.
            let arr = PyArray1::<f64>::zeros(py, xs.len(), false);
            {
                let mut w = arr.readwrite();
                let os = w
                    .as_slice_mut()
                    .map_err(|_| PyErr::from(CoreError::NonContiguous("out".into())))?;
                detached(py, || ema_into(xs, period, os))?;
            }
            Ok(arr.into_any())
        }
        Some(obj) => {
            let arr = obj.cast::<PyArray1<f64>>().map_err(|_| {
                invalid("out: expected a 1-D writable numpy array of dtype float64")
            })?;
            if !arr.is_c_contiguous() {
                return Err(CoreError::NonContiguous("out".into()).into());
            }
            if arr.len() != xs.len() {
                return Err(CoreError::LengthMismatch {
                    left: xs.len(),
                    right: arr.len(),
                }
                .into());
            }
            let mut w = arr.try_readwrite().map_err(|e| {
                invalid(format!(
                    "out: cannot write to it ({e}); it must be writable and not alias values"
                ))
            })?;
            let os = w
                .as_slice_mut()
                .map_err(|_| PyErr::from(CoreError::NonContiguous("out".into())))?;
            detached(py, || ema_into(xs, period, os))?;
            Ok(obj.clone())
        }
    }
}

/// +1 / -1 / 0 crossovers of `fast` over `slow`.
#[pyfunction(name = "crossovers")]
pub fn crossovers_py<'py>(
    py: Python<'py>,
    fast: &Bound<'py, PyAny>,
    slow: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i8>>> {
    let f = f64_array("fast", fast)?;
    let s = f64_array("slow", slow)?;
    let (fs, ss) = (slice("fast", &f)?, slice("slow", &s)?);
    let arr = PyArray1::<i8>::zeros(py, fs.len(), false);
    {
        let mut w = arr.readwrite();
        let os = w
            .as_slice_mut()
            .map_err(|_| PyErr::from(CoreError::NonContiguous("out".into())))?;
        detached(py, || crossovers_into(fs, ss, os))?;
    }
    Ok(arr)
}

/// Ticks -> bars (see `_core.pyi`).
#[pyfunction(name = "build_bars")]
#[pyo3(signature = (
    ts_ns, price, qty, *, timeframe_s = Int(60), symbol = None, session_start = Some("09:15".to_owned()),
    session_end = Some("15:30".to_owned()), utc_offset_minutes = Int(330), volume_mode = "trade"
), text_signature = "(ts_ns, price, qty, *, timeframe_s=60, symbol=None, session_start='09:15', session_end='15:30', utc_offset_minutes=330, volume_mode='trade')")]
pub fn build_bars_py<'py>(
    py: Python<'py>,
    ts_ns: &Bound<'py, PyAny>,
    price: &Bound<'py, PyAny>,
    qty: &Bound<'py, PyAny>,
    timeframe_s: Int,
    symbol: Option<&Bound<'py, PyAny>>,
    session_start: Option<String>,
    session_end: Option<String>,
    utc_offset_minutes: Int,
    volume_mode: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let session = Session::try_new(&session_spec(
        timeframe_s.0,
        session_start,
        session_end,
        utc_offset_minutes.0,
    ))?;
    let mode = VolumeMode::parse(volume_mode)?;
    let t = i64_array("ts_ns", ts_ns)?;
    let p = f64_array("price", price)?;
    let q = f64_array("qty", qty)?;
    let s = symbol.map(|o| i64_array("symbol", o)).transpose()?;
    let (ts, ps, qs) = (slice("ts_ns", &t)?, slice("price", &p)?, slice("qty", &q)?);
    let ss = s.as_ref().map(|a| slice("symbol", a)).transpose()?;
    let table = detached(py, || {
        bars::build_bars_batch(ts, ps, qs, ss, &session, mode).map(BatchBars::into_table)
    })?;
    table_to_dict(py, table, ss.is_some())
}

/// Finer bars -> coarser bars (see `_core.pyi`).
#[pyfunction(name = "resample_bars")]
#[pyo3(signature = (
    bars, timeframe_s, *, session_start = Some("09:15".to_owned()),
    session_end = Some("15:30".to_owned()), utc_offset_minutes = Int(330)
), text_signature = "(bars, timeframe_s, *, session_start='09:15', session_end='15:30', utc_offset_minutes=330)")]
pub fn resample_bars_py<'py>(
    py: Python<'py>,
    bars: &Bound<'py, PyAny>,
    timeframe_s: Int,
    session_start: Option<String>,
    session_end: Option<String>,
    utc_offset_minutes: Int,
) -> PyResult<Bound<'py, PyDict>> {
    let coarse = Session::try_new(&session_spec(
        timeframe_s.0,
        session_start,
        session_end,
        utc_offset_minutes.0,
    ))?;
    let arrays = BarArrays::extract(bars)?;
    let cols = arrays.columns()?;
    let has_symbol = cols.symbol.is_some();
    let table = detached(py, || {
        resample::resample_columns(&cols, &coarse).map(BatchBars::into_table)
    })?;
    table_to_dict(py, table, has_symbol)
}
