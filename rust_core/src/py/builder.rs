//! `BarBuilder`: streaming ticks -> bars for many symbols.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::arrays::{session_spec, Float, Int};
use super::types::PyBar;
use crate::bars::{BarBuilder, Dropped, VolumeMode};
use crate::session::{grace_ns, Session};

/// Dropped-tick counters as a dict.
pub fn dropped_dict(py: Python<'_>, d: Dropped) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("out_of_session", d.out_of_session)?;
    out.set_item("late", d.late)?;
    Ok(out)
}

/// Streaming tick -> bar aggregation (see `_core.pyi`).
#[pyclass(module = "mental_trader._core", name = "BarBuilder")]
pub struct PyBarBuilder {
    inner: BarBuilder,
    timeframe_s: i64,
}

fn wrap(bars: Vec<crate::bars::Bar>) -> Vec<PyBar> {
    bars.into_iter().map(PyBar).collect()
}

#[pymethods]
impl PyBarBuilder {
    #[new]
    #[pyo3(signature = (
        timeframe_s = Int(60), *, session_start = Some("09:15".to_owned()),
        session_end = Some("15:30".to_owned()), utc_offset_minutes = Int(330),
        volume_mode = "trade", grace_ms = Int(1000)
    ), text_signature = "(timeframe_s=60, *, session_start='09:15', session_end='15:30', utc_offset_minutes=330, volume_mode='trade', grace_ms=1000)")]
    fn new(
        timeframe_s: Int,
        session_start: Option<String>,
        session_end: Option<String>,
        utc_offset_minutes: Int,
        volume_mode: &str,
        grace_ms: Int,
    ) -> PyResult<Self> {
        let (timeframe_s, utc_offset_minutes, grace_ms) =
            (timeframe_s.0, utc_offset_minutes.0, grace_ms.0);
        let session = Session::try_new(&session_spec(
            timeframe_s,
            session_start,
            session_end,
            utc_offset_minutes,
        ))?;
        let mode = VolumeMode::parse(volume_mode)?;
        Ok(Self {
            inner: BarBuilder::try_new(session, mode, grace_ns(grace_ms)?)?,
            timeframe_s,
        })
    }

    #[getter]
    fn timeframe_s(&self) -> i64 {
        self.timeframe_s
    }

    #[getter]
    fn dropped<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dropped_dict(py, self.inner.dropped())
    }

    /// Consume one tick; the bar it closed, if any.
    fn on_tick(
        &mut self,
        symbol: Int,
        ts_ns: Int,
        price: Float,
        qty: Float,
    ) -> PyResult<Vec<PyBar>> {
        let (symbol, ts_ns, price, qty) = (symbol.0, ts_ns.0, price.0, qty.0);
        Ok(self
            .inner
            .on_tick(symbol, ts_ns, price, qty)?
            .map(PyBar)
            .into_iter()
            .collect())
    }

    /// Close bars whose bucket ended more than grace_ms before now_ns.
    fn on_time(&mut self, now_ns: Int) -> Vec<PyBar> {
        let now_ns = now_ns.0;
        wrap(self.inner.on_time(now_ns))
    }

    /// Close every open bar.
    fn flush(&mut self) -> Vec<PyBar> {
        wrap(self.inner.flush())
    }

    /// The symbol's open bar, if any.
    fn current(&self, symbol: Int) -> Option<PyBar> {
        let symbol = symbol.0;
        self.inner.current(symbol).map(PyBar)
    }
}
