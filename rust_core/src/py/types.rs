//! Value and small state classes: `Bar` (frozen) and `Ema` (streaming).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping};

use super::arrays::{invalid, Float, Int};
use crate::bars::Bar;
use crate::ema::{Ema, EmaState};

/// One OHLCV bar (frozen value).
#[pyclass(
    frozen,
    eq,
    skip_from_py_object,
    module = "mental_trader._core",
    name = "Bar"
)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PyBar(pub Bar);

#[pymethods]
impl PyBar {
    #[new]
    #[allow(clippy::similar_names)]
    fn new(
        symbol: i64,
        ts: i64,
        open: f64,
        high: f64,
        low: f64,
        close: f64,
        volume: f64,
        ticks: i64,
    ) -> Self {
        Self(Bar {
            symbol,
            ts,
            open,
            high,
            low,
            close,
            volume,
            ticks,
        })
    }

    #[getter]
    fn symbol(&self) -> i64 {
        self.0.symbol
    }
    #[getter]
    fn ts(&self) -> i64 {
        self.0.ts
    }
    #[getter]
    fn open(&self) -> f64 {
        self.0.open
    }
    #[getter]
    fn high(&self) -> f64 {
        self.0.high
    }
    #[getter]
    fn low(&self) -> f64 {
        self.0.low
    }
    #[getter]
    fn close(&self) -> f64 {
        self.0.close
    }
    #[getter]
    fn volume(&self) -> f64 {
        self.0.volume
    }
    #[getter]
    fn ticks(&self) -> i64 {
        self.0.ticks
    }

    /// The bar as a dict with the same keys as `build_bars` columns.
    #[allow(clippy::wrong_self_convention)] // pymethods take &self
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let b = &self.0;
        let d = PyDict::new(py);
        d.set_item("symbol", b.symbol)?;
        d.set_item("ts", b.ts)?;
        d.set_item("open", b.open)?;
        d.set_item("high", b.high)?;
        d.set_item("low", b.low)?;
        d.set_item("close", b.close)?;
        d.set_item("volume", b.volume)?;
        d.set_item("ticks", b.ticks)?;
        Ok(d)
    }

    fn __hash__(&self) -> u64 {
        let b = &self.0;
        let mut h = DefaultHasher::new();
        (b.symbol, b.ts, b.ticks).hash(&mut h);
        for v in [b.open, b.high, b.low, b.close, b.volume] {
            v.to_bits().hash(&mut h);
        }
        h.finish()
    }

    fn __repr__(&self) -> String {
        let b = &self.0;
        format!(
            "Bar(symbol={}, ts={}, open={:?}, high={:?}, low={:?}, close={:?}, volume={:?}, ticks={})",
            b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume, b.ticks
        )
    }
}

/// Streaming EMA (see `_core.pyi`).
#[pyclass(eq, skip_from_py_object, module = "mental_trader._core", name = "Ema")]
#[derive(Debug, Clone, PartialEq)]
pub struct PyEma(Ema);

fn state_field<T: for<'a, 'py> FromPyObject<'a, 'py>>(
    state: &Bound<'_, PyMapping>,
    key: &str,
) -> PyResult<T> {
    let value = state
        .get_item(key)
        .map_err(|_| invalid(format!("ema state: missing key {key:?}")))?;
    value
        .extract::<T>()
        .map_err(|_| invalid(format!("ema state: bad value for {key:?}: {value}")))
}

/// An EMA state as the dict `Ema.to_state()` returns.
pub fn ema_state_dict<'py>(py: Python<'py>, s: &EmaState) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("period", s.period)?;
    d.set_item("count", s.count)?;
    d.set_item("seed_sum", s.seed_sum)?;
    d.set_item("value", s.value)?;
    Ok(d)
}

/// An EMA state from a `to_state()` dict (validated later by `Ema::from_state`).
pub fn ema_state_from(state: &Bound<'_, PyAny>) -> PyResult<EmaState> {
    let state = state
        .cast::<PyMapping>()
        .map_err(|_| invalid("ema state must be a mapping (the dict from to_state())"))?;
    Ok(EmaState {
        period: state_field(state, "period")?,
        count: state_field(state, "count")?,
        seed_sum: state_field(state, "seed_sum")?,
        value: state_field(state, "value")?,
    })
}

#[pymethods]
impl PyEma {
    #[new]
    fn new(period: Int) -> PyResult<Self> {
        let period = period.0;
        let period = u64::try_from(period)
            .map_err(|_| invalid(format!("invalid period: period must be >= 1, got {period}")))?;
        Ok(Self(Ema::try_new(period)?))
    }

    #[getter]
    fn period(&self) -> u64 {
        self.0.period()
    }
    #[getter]
    fn count(&self) -> u64 {
        self.0.count()
    }
    #[getter]
    fn value(&self) -> Option<f64> {
        self.0.value()
    }
    #[getter]
    fn is_ready(&self) -> bool {
        self.0.is_ready()
    }

    /// Consume one value; the EMA, or None while warming up.
    fn update(&mut self, x: Float) -> PyResult<Option<f64>> {
        Ok(self.0.update(x.0)?)
    }

    /// Forget every value consumed.
    fn reset(&mut self) {
        self.0.reset();
    }

    /// Exact state: period, count, seed_sum, value.
    fn to_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        ema_state_dict(py, &self.0.state())
    }

    /// Rebuild from `to_state()`.
    #[staticmethod]
    fn from_state(state: &Bound<'_, PyAny>) -> PyResult<Self> {
        let s = ema_state_from(state)?;
        Ok(Self(Ema::from_state(s)?))
    }

    fn __repr__(&self) -> String {
        format!(
            "Ema(period={}, count={}, value={:?})",
            self.0.period(),
            self.0.count(),
            self.0.value()
        )
    }
}
