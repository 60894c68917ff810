//! `Engine` and `BarEvent`: the fused live path.

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use super::arrays::{detached, f64_array, i64_array, invalid, slice, BarArrays, Float, Int};
use super::builder::dropped_dict;
use super::cell::{GilCell, GilRefMut};
use super::types::{ema_state_dict, ema_state_from, PyBar};
use crate::bars::{Bar, VolumeMode};
use crate::engine::{Engine, EngineConfig, Event, Trend};

/// A bar closed by the engine with its EMAs and crossover (frozen value).
#[pyclass(
    frozen,
    eq,
    skip_from_py_object,
    module = "mental_trader._core",
    name = "BarEvent"
)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PyBarEvent(Event);

fn opt(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

/// A float as Python's repr shows it; NaN (undefined) as None.
fn py_float(v: f64) -> String {
    opt(v).map_or_else(|| "None".to_owned(), |v| format!("{v:?}"))
}

#[pymethods]
impl PyBarEvent {
    #[getter]
    fn symbol(&self) -> i64 {
        self.0.bar.symbol
    }
    #[getter]
    fn timeframe_s(&self) -> i64 {
        self.0.timeframe_s
    }
    #[getter]
    fn is_confirm(&self) -> bool {
        self.0.is_confirm
    }
    #[getter]
    fn bar(&self) -> PyBar {
        PyBar(self.0.bar)
    }
    #[getter]
    fn ema_fast(&self) -> Option<f64> {
        opt(self.0.ema_fast)
    }
    #[getter]
    fn ema_slow(&self) -> Option<f64> {
        opt(self.0.ema_slow)
    }
    #[getter]
    fn cross(&self) -> i8 {
        self.0.cross
    }
    #[getter]
    fn end_ns(&self) -> i64 {
        self.0.end_ns
    }
    #[getter]
    fn confirm_ts(&self) -> Option<i64> {
        let ts = self.0.confirm.ts;
        (ts != Trend::NO_BAR).then_some(ts)
    }
    #[getter]
    fn confirm_ema_fast(&self) -> Option<f64> {
        opt(self.0.confirm.fast)
    }
    #[getter]
    fn confirm_ema_slow(&self) -> Option<f64> {
        opt(self.0.confirm.slow)
    }
    #[getter]
    fn confirm_trend(&self) -> i8 {
        self.0.confirm.sign()
    }

    fn __repr__(&self) -> String {
        let e = &self.0;
        format!(
            "BarEvent(symbol={}, timeframe_s={}, is_confirm={}, ts={}, close={:?}, ema_fast={}, \
             ema_slow={}, cross={}, confirm_trend={})",
            e.bar.symbol,
            e.timeframe_s,
            if e.is_confirm { "True" } else { "False" },
            e.bar.ts,
            e.bar.close,
            py_float(e.ema_fast),
            py_float(e.ema_slow),
            e.cross,
            e.confirm.sign()
        )
    }
}

/// The fused multi-symbol engine (see `_core.pyi`). Frozen, with its state in a `GilCell`:
/// one borrow check per call without PyO3's atomic flag (see `cell.rs`).
#[pyclass(frozen, module = "mental_trader._core", name = "Engine")]
pub struct PyEngine {
    state: GilCell<EngineState>,
}

/// What a `PyEngine` owns.
pub struct EngineState {
    inner: Engine,
    /// Reused per call so the common path allocates nothing.
    buf: Vec<Event>,
}

impl PyEngine {
    fn wrap(inner: Engine) -> Self {
        Self {
            state: GilCell::new(EngineState {
                inner,
                buf: Vec::with_capacity(8),
            }),
        }
    }

    /// The state, exclusively (see `GilCell`).
    #[inline(always)]
    pub fn state(&self, py: Python<'_>) -> PyResult<GilRefMut<'_, EngineState>> {
        self.state.borrow_mut(py)
    }

    /// The state, or None when another call holds it.
    #[inline(always)]
    pub fn try_state(&self, py: Python<'_>) -> Option<GilRefMut<'_, EngineState>> {
        self.state.try_borrow_mut(py)
    }
}

impl EngineState {
    /// The common tick of `on_tick` (see `fastcall.rs`): true when it updated an open bar;
    /// false changes nothing.
    #[inline(always)]
    pub fn try_update(&mut self, symbol: i64, ts_ns: i64, price: f64, qty: f64) -> bool {
        self.inner.try_update(symbol, ts_ns, price, qty)
    }

    /// One tick with checked values: None when no bar closed, else the closed-bar events.
    pub fn on_tick_checked<'py>(
        &mut self,
        py: Python<'py>,
        symbol: i64,
        ts_ns: i64,
        price: f64,
        qty: f64,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        let res = self.inner.on_tick(symbol, ts_ns, price, qty, &mut self.buf);
        if let Err(e) = res {
            self.buf.clear();
            return Err(e.into());
        }
        self.take_events(py)
    }

    fn take_events<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let list = PyList::new(py, self.buf.drain(..).map(PyBarEvent))?;
        Ok(Some(list))
    }
}

/// Event columns (bar columns + symbol, ema_fast, ema_slow, cross, end_ns, confirm_trend).
fn events_to_dict<'py>(py: Python<'py>, evs: &[&Event]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let col_i = |f: fn(&Event) -> i64| PyArray1::from_vec(py, evs.iter().map(|e| f(e)).collect());
    let col_f = |f: fn(&Event) -> f64| PyArray1::from_vec(py, evs.iter().map(|e| f(e)).collect());
    d.set_item("ts", col_i(|e| e.bar.ts))?;
    d.set_item("symbol", col_i(|e| e.bar.symbol))?;
    d.set_item("open", col_f(|e| e.bar.open))?;
    d.set_item("high", col_f(|e| e.bar.high))?;
    d.set_item("low", col_f(|e| e.bar.low))?;
    d.set_item("close", col_f(|e| e.bar.close))?;
    d.set_item("volume", col_f(|e| e.bar.volume))?;
    d.set_item("ticks", col_i(|e| e.bar.ticks))?;
    d.set_item("ema_fast", col_f(|e| e.ema_fast))?;
    d.set_item("ema_slow", col_f(|e| e.ema_slow))?;
    d.set_item(
        "cross",
        PyArray1::from_vec(py, evs.iter().map(|e| e.cross).collect()),
    )?;
    d.set_item("end_ns", col_i(|e| e.end_ns))?;
    d.set_item(
        "confirm_trend",
        PyArray1::from_vec(py, evs.iter().map(|e| e.confirm.sign()).collect()),
    )?;
    Ok(d)
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (
        timeframe_s = Int(60), confirm_timeframe_s = Int(300), fast = Int(8), slow = Int(21), *,
        session_start = Some("09:15".to_owned()), session_end = Some("15:30".to_owned()),
        utc_offset_minutes = Int(330), volume_mode = "trade", grace_ms = Int(1000)
    ), text_signature = "(timeframe_s=60, confirm_timeframe_s=300, fast=8, slow=21, *, session_start='09:15', session_end='15:30', utc_offset_minutes=330, volume_mode='trade', grace_ms=1000)")]
    fn new(
        timeframe_s: Int,
        confirm_timeframe_s: Int,
        fast: Int,
        slow: Int,
        session_start: Option<String>,
        session_end: Option<String>,
        utc_offset_minutes: Int,
        volume_mode: &str,
        grace_ms: Int,
    ) -> PyResult<Self> {
        let (timeframe_s, confirm_timeframe_s, fast, slow) =
            (timeframe_s.0, confirm_timeframe_s.0, fast.0, slow.0);
        let (utc_offset_minutes, grace_ms) = (utc_offset_minutes.0, grace_ms.0);
        let period = |name: &str, v: i64| {
            u64::try_from(v)
                .map_err(|_| invalid(format!("invalid period: {name} must be >= 1, got {v}")))
        };
        let config = EngineConfig {
            timeframe_s,
            confirm_timeframe_s,
            fast: period("fast", fast)?,
            slow: period("slow", slow)?,
            session_start,
            session_end,
            utc_offset_minutes,
            volume_mode: VolumeMode::parse(volume_mode)?,
            grace_ms,
        };
        Ok(Self::wrap(Engine::try_new(config)?))
    }

    #[getter]
    fn timeframe_s(&self, py: Python<'_>) -> PyResult<i64> {
        Ok(self.state(py)?.inner.config().timeframe_s)
    }
    #[getter]
    fn confirm_timeframe_s(&self, py: Python<'_>) -> PyResult<i64> {
        Ok(self.state(py)?.inner.config().confirm_timeframe_s)
    }
    #[getter]
    fn fast(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.state(py)?.inner.config().fast)
    }
    #[getter]
    fn slow(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.state(py)?.inner.config().slow)
    }
    #[getter]
    fn dropped<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dropped_dict(py, self.state(py)?.inner.dropped())
    }
    #[getter]
    fn symbols(&self, py: Python<'_>) -> PyResult<Vec<i64>> {
        Ok(self.state(py)?.inner.symbols())
    }

    /// The checked `on_tick`: `fastcall.rs` installs the public one over it, keeps this as
    /// `_on_tick`, and calls it for anything but the plain case.
    fn on_tick<'py>(
        &self,
        py: Python<'py>,
        symbol: Int,
        ts_ns: Int,
        price: Float,
        qty: Float,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        self.state(py)?
            .on_tick_checked(py, symbol.0, ts_ns.0, price.0, qty.0)
    }

    /// Close bars whose bucket ended more than grace_ms before now_ns.
    fn on_time<'py>(&self, py: Python<'py>, now_ns: Int) -> PyResult<Option<Bound<'py, PyList>>> {
        let mut st = self.state(py)?;
        let st = &mut *st;
        let res = st.inner.on_time(now_ns.0, &mut st.buf);
        if let Err(e) = res {
            st.buf.clear();
            return Err(e.into());
        }
        st.take_events(py)
    }

    /// Close every open bar.
    fn flush<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut st = self.state(py)?;
        let st = &mut *st;
        let res = st.inner.flush(&mut st.buf);
        if let Err(e) = res {
            st.buf.clear();
            return Err(e.into());
        }
        Ok(st.take_events(py)?.unwrap_or_else(|| PyList::empty(py)))
    }

    /// Batch twin of on_tick (see `_core.pyi`).
    #[pyo3(signature = (ts_ns, price, qty, symbol = None, *, flush = false))]
    fn on_ticks<'py>(
        &self,
        py: Python<'py>,
        ts_ns: &Bound<'py, PyAny>,
        price: &Bound<'py, PyAny>,
        qty: &Bound<'py, PyAny>,
        symbol: Option<&Bound<'py, PyAny>>,
        flush: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let t = i64_array("ts_ns", ts_ns)?;
        let p = f64_array("price", price)?;
        let q = f64_array("qty", qty)?;
        let s = symbol.map(|o| i64_array("symbol", o)).transpose()?;
        let (ts, ps, qs) = (slice("ts_ns", &t)?, slice("price", &p)?, slice("qty", &q)?);
        let ss = s.as_ref().map(|a| slice("symbol", a)).transpose()?;
        let mut events = Vec::with_capacity(ts.len() / 64 + 16);
        let mut st = self.state(py)?;
        let inner = &mut st.inner;
        detached(py, || inner.on_ticks(ts, ps, qs, ss, flush, &mut events))?;
        let (confirm, primary): (Vec<&Event>, Vec<&Event>) =
            events.iter().partition(|e| e.is_confirm);
        let d = PyDict::new(py);
        d.set_item("primary", events_to_dict(py, &primary)?)?;
        d.set_item("confirm", events_to_dict(py, &confirm)?)?;
        Ok(d)
    }

    /// The ticks of one feed frame at once (see `_core.pyi`): events like on_tick.
    #[pyo3(signature = (ts_ns, price, qty, symbol))]
    fn on_frame<'py>(
        &self,
        py: Python<'py>,
        ts_ns: &Bound<'py, PyAny>,
        price: &Bound<'py, PyAny>,
        qty: &Bound<'py, PyAny>,
        symbol: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        let t = i64_array("ts_ns", ts_ns)?;
        let p = f64_array("price", price)?;
        let q = f64_array("qty", qty)?;
        let s = i64_array("symbol", symbol)?;
        let (ts, ps, qs) = (slice("ts_ns", &t)?, slice("price", &p)?, slice("qty", &q)?);
        let ss = slice("symbol", &s)?;
        // A frame is small: no GIL release (it would cost more than the work).
        let mut st = self.state(py)?;
        let st = &mut *st;
        let res = st.inner.on_ticks(ts, ps, qs, Some(ss), false, &mut st.buf);
        if let Err(e) = res {
            st.buf.clear();
            return Err(e.into());
        }
        st.take_events(py)
    }

    /// Warm a new symbol up from its closed primary bars (see `_core.pyi`).
    #[pyo3(signature = (symbol, bars, *, day_volume = None))]
    fn warm_up<'py>(
        &self,
        py: Python<'py>,
        symbol: Int,
        bars: &Bound<'py, PyAny>,
        day_volume: Option<Float>,
    ) -> PyResult<Bound<'py, PyList>> {
        let arrays = BarArrays::extract(bars)?;
        let cols = arrays.columns()?;
        cols.checked_len()?;
        let rows: Vec<Bar> = cols.rows_as(symbol.0).collect();
        let mut events = Vec::new();
        self.state(py)?
            .inner
            .warm_up(symbol.0, &rows, day_volume.map(|v| v.0), &mut events)?;
        PyList::new(py, events.into_iter().map(PyBarEvent))
    }

    /// Replace a symbol's EMAs on one timeframe with stored states (see `_core.pyi`).
    #[pyo3(signature = (symbol, *, confirm, fast, slow))]
    fn restore_emas(
        &self,
        py: Python<'_>,
        symbol: Int,
        confirm: bool,
        fast: &Bound<'_, PyAny>,
        slow: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (fast, slow) = (ema_state_from(fast)?, ema_state_from(slow)?);
        Ok(self
            .state(py)?
            .inner
            .restore_emas(symbol.0, confirm, fast, slow)?)
    }

    /// The (fast, slow) EMA states of a symbol on one timeframe (see `_core.pyi`).
    #[pyo3(signature = (symbol, *, confirm))]
    fn ema_states<'py>(
        &self,
        py: Python<'py>,
        symbol: Int,
        confirm: bool,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
        let (fast, slow) = self.state(py)?.inner.ema_states(symbol.0, confirm)?;
        Ok((ema_state_dict(py, &fast)?, ema_state_dict(py, &slow)?))
    }

    /// The whole state as versioned bytes.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.state(py)?.inner.snapshot()?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Rebuild an engine from `snapshot()` bytes.
    #[staticmethod]
    fn from_snapshot(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let bytes: Vec<u8> = if let Ok(b) = data.cast::<PyBytes>() {
            b.as_bytes().to_vec()
        } else {
            return Err(invalid("snapshot must be bytes"));
        };
        Ok(Self::wrap(Engine::from_snapshot(&bytes)?))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let st = self.state(py)?;
        let c = st.inner.config();
        Ok(format!(
            "Engine(timeframe_s={}, confirm_timeframe_s={}, fast={}, slow={}, symbols={})",
            c.timeframe_s,
            c.confirm_timeframe_s,
            c.fast,
            c.slow,
            st.inner.symbols().len()
        ))
    }
}
