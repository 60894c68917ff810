//! Kite binary frames → pykiteconnect-shaped tick dicts, or columns for the live feed.
//!
//! The parsing and the framing rule live in `crate::kite`; this file only builds Python
//! objects. Dict keys are interned once per process, and datetimes are shared between
//! packets of a frame that carry the same second (a datetime is immutable).

use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyList, PyString};

use crate::kite::{DepthLevel, Frame, Packet, DEPTH_LEVELS};

/// The interned dict keys and mode names, plus `datetime.fromtimestamp` and the IST zone.
struct Names {
    tradable: Py<PyString>,
    mode: Py<PyString>,
    instrument_token: Py<PyString>,
    last_price: Py<PyString>,
    last_traded_quantity: Py<PyString>,
    average_traded_price: Py<PyString>,
    volume_traded: Py<PyString>,
    total_buy_quantity: Py<PyString>,
    total_sell_quantity: Py<PyString>,
    ohlc: Py<PyString>,
    open: Py<PyString>,
    high: Py<PyString>,
    low: Py<PyString>,
    close: Py<PyString>,
    change: Py<PyString>,
    last_trade_time: Py<PyString>,
    oi: Py<PyString>,
    oi_day_high: Py<PyString>,
    oi_day_low: Py<PyString>,
    exchange_timestamp: Py<PyString>,
    depth: Py<PyString>,
    buy: Py<PyString>,
    sell: Py<PyString>,
    quantity: Py<PyString>,
    price: Py<PyString>,
    orders: Py<PyString>,
    /// Indexed by `Mode as usize - 1`.
    modes: [Py<PyString>; 3],
    fromtimestamp: Py<PyAny>,
    ist: Py<PyAny>,
    /// Tick dicts with every key of a layout in pykiteconnect's order, values None, by
    /// `Layout as usize`: copying one (a memcpy of its table) beats growing a new dict.
    templates: [Py<PyDict>; 5],
    gc_isenabled: Py<PyAny>,
    gc_disable: Py<PyAny>,
    gc_enable: Py<PyAny>,
}

static NAMES: PyOnceLock<Names> = PyOnceLock::new();

impl Names {
    fn get(py: Python<'_>) -> PyResult<&Self> {
        NAMES.get_or_try_init(py, || {
            let s = |name: &str| PyString::intern(py, name).unbind();
            Ok::<_, PyErr>(Self {
                tradable: s("tradable"),
                mode: s("mode"),
                instrument_token: s("instrument_token"),
                last_price: s("last_price"),
                last_traded_quantity: s("last_traded_quantity"),
                average_traded_price: s("average_traded_price"),
                volume_traded: s("volume_traded"),
                total_buy_quantity: s("total_buy_quantity"),
                total_sell_quantity: s("total_sell_quantity"),
                ohlc: s("ohlc"),
                open: s("open"),
                high: s("high"),
                low: s("low"),
                close: s("close"),
                change: s("change"),
                last_trade_time: s("last_trade_time"),
                oi: s("oi"),
                oi_day_high: s("oi_day_high"),
                oi_day_low: s("oi_day_low"),
                exchange_timestamp: s("exchange_timestamp"),
                depth: s("depth"),
                buy: s("buy"),
                sell: s("sell"),
                quantity: s("quantity"),
                price: s("price"),
                orders: s("orders"),
                modes: [s("ltp"), s("quote"), s("full")],
                fromtimestamp: py
                    .import("datetime")?
                    .getattr("datetime")?
                    .getattr("fromtimestamp")?
                    .unbind(),
                // The project's one IST zone (a fixed +05:30, exact for Asia/Kolkata since 1945).
                ist: py
                    .import("mental_trader.calendar")?
                    .getattr("IST")?
                    .unbind(),
                templates: [
                    template(py, &[TRADABLE, MODE, TOKEN, LAST_PRICE])?,
                    template(py, &[TRADABLE, MODE, TOKEN, LAST_PRICE, OHLC, CHANGE])?,
                    template(
                        py,
                        &[TRADABLE, MODE, TOKEN, LAST_PRICE, OHLC, CHANGE, EXCHANGE_TS],
                    )?,
                    template(py, &[&QUOTE[..], &[OHLC, CHANGE]].concat())?,
                    template(py, &[&QUOTE[..], &FULL[..]].concat())?,
                ],
                gc_isenabled: py.import("gc")?.getattr("isenabled")?.unbind(),
                gc_disable: py.import("gc")?.getattr("disable")?.unbind(),
                gc_enable: py.import("gc")?.getattr("enable")?.unbind(),
            })
        })
    }
}

const TRADABLE: &str = "tradable";
const MODE: &str = "mode";
const TOKEN: &str = "instrument_token";
const LAST_PRICE: &str = "last_price";
const OHLC: &str = "ohlc";
const CHANGE: &str = "change";
const EXCHANGE_TS: &str = "exchange_timestamp";
const QUOTE: [&str; 9] = [
    TRADABLE,
    MODE,
    TOKEN,
    LAST_PRICE,
    "last_traded_quantity",
    "average_traded_price",
    "volume_traded",
    "total_buy_quantity",
    "total_sell_quantity",
];
const FULL: [&str; 8] = [
    OHLC,
    CHANGE,
    "last_trade_time",
    "oi",
    "oi_day_high",
    "oi_day_low",
    EXCHANGE_TS,
    "depth",
];

fn template(py: Python<'_>, keys: &[&str]) -> PyResult<Py<PyDict>> {
    let d = PyDict::new(py);
    for k in keys {
        d.set_item(PyString::intern(py, k), py.None())?;
    }
    Ok(d.unbind())
}

/// Aware IST datetimes of Unix seconds, memoised per frame: the packets of one frame mostly
/// share a handful of seconds, and `fromtimestamp` costs more than the rest of a tick.
struct Datetimes<'py> {
    slots: [Option<(u32, Bound<'py, PyAny>)>; 8],
}

impl<'py> Datetimes<'py> {
    fn new() -> Self {
        Self {
            slots: Default::default(),
        }
    }

    fn get(&mut self, py: Python<'py>, names: &Names, s: u32) -> PyResult<Bound<'py, PyAny>> {
        let slot = self.slots.get_mut((s & 7) as usize);
        if let Some(Some((cached, dt))) = slot.as_deref() {
            if *cached == s {
                return Ok(dt.clone());
            }
        }
        let dt = names
            .fromtimestamp
            .bind(py)
            .call1((s, names.ist.bind(py)))?;
        if let Some(slot) = slot {
            *slot = Some((s, dt.clone()));
        }
        Ok(dt)
    }
}

fn level_dict<'py>(py: Python<'py>, n: &Names, l: &DepthLevel) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(n.quantity.bind(py), l.quantity)?;
    d.set_item(n.price.bind(py), l.price)?;
    d.set_item(n.orders.bind(py), l.orders)?;
    Ok(d)
}

fn side_list<'py>(
    py: Python<'py>,
    n: &Names,
    side: &[DepthLevel; DEPTH_LEVELS],
) -> PyResult<Bound<'py, PyList>> {
    let [a, b, c, d, e] = side;
    PyList::new(
        py,
        [
            level_dict(py, n, a)?,
            level_dict(py, n, b)?,
            level_dict(py, n, c)?,
            level_dict(py, n, d)?,
            level_dict(py, n, e)?,
        ],
    )
}

/// One tick dict with pykiteconnect's keys, in its insertion order.
fn packet_dict<'py>(
    py: Python<'py>,
    n: &Names,
    p: &Packet,
    dts: &mut Datetimes<'py>,
) -> PyResult<Bound<'py, PyDict>> {
    let layout = p.layout;
    let mode = layout.mode() as usize - 1;
    let d = match n.templates.get(layout as usize) {
        Some(t) => t.bind(py).copy()?,
        None => PyDict::new(py),
    };
    d.set_item(n.tradable.bind(py), PyBool::new(py, p.is_tradable()))?;
    if let Some(m) = n.modes.get(mode) {
        d.set_item(n.mode.bind(py), m.bind(py))?;
    }
    d.set_item(n.instrument_token.bind(py), p.instrument_token)?;
    d.set_item(n.last_price.bind(py), p.last_price)?;
    if !layout.has_ohlc() {
        return Ok(d);
    }
    let ohlc = PyDict::new(py);
    if layout.is_index() {
        // pykiteconnect's key order follows the wire: high, low, open, close.
        ohlc.set_item(n.high.bind(py), p.high)?;
        ohlc.set_item(n.low.bind(py), p.low)?;
        ohlc.set_item(n.open.bind(py), p.open)?;
        ohlc.set_item(n.close.bind(py), p.close)?;
    } else {
        d.set_item(n.last_traded_quantity.bind(py), p.last_traded_quantity)?;
        d.set_item(n.average_traded_price.bind(py), p.average_traded_price)?;
        d.set_item(n.volume_traded.bind(py), p.volume_traded)?;
        d.set_item(n.total_buy_quantity.bind(py), p.total_buy_quantity)?;
        d.set_item(n.total_sell_quantity.bind(py), p.total_sell_quantity)?;
        ohlc.set_item(n.open.bind(py), p.open)?;
        ohlc.set_item(n.high.bind(py), p.high)?;
        ohlc.set_item(n.low.bind(py), p.low)?;
        ohlc.set_item(n.close.bind(py), p.close)?;
    }
    d.set_item(n.ohlc.bind(py), ohlc)?;
    d.set_item(n.change.bind(py), p.change())?;
    if layout.has_depth() {
        d.set_item(
            n.last_trade_time.bind(py),
            dts.get(py, n, p.last_trade_time_s)?,
        )?;
        d.set_item(n.oi.bind(py), p.oi)?;
        d.set_item(n.oi_day_high.bind(py), p.oi_day_high)?;
        d.set_item(n.oi_day_low.bind(py), p.oi_day_low)?;
    }
    if layout.has_exchange_timestamp() {
        d.set_item(
            n.exchange_timestamp.bind(py),
            dts.get(py, n, p.exchange_timestamp_s)?,
        )?;
    }
    if layout.has_depth() {
        let depth = PyDict::new(py);
        depth.set_item(n.buy.bind(py), side_list(py, n, &p.buy)?)?;
        depth.set_item(n.sell.bind(py), side_list(py, n, &p.sell)?)?;
        d.set_item(n.depth.bind(py), depth)?;
    }
    Ok(d)
}

/// A frame → one dict per packet, as pykiteconnect's `KiteTicker._parse_binary` (see `_core.pyi`).
#[pyfunction(name = "decode_kite_frame")]
pub fn decode_kite_frame_py<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let frame = Frame::parse(data)?;
    let names = Names::get(py)?;
    let _pause = GcPause::new(py, names, frame.len())?;
    let list = PyList::empty(py);
    let mut dts = Datetimes::new();
    for p in frame.packets() {
        list.append(packet_dict(py, names, &p, &mut dts)?)?;
    }
    Ok(list)
}

/// Keeps the cyclic GC off while a big frame's dicts are built, and back on (if it was) on
/// drop. The dicts cannot form cycles, but every allocation counts towards a collection,
/// and each collection would walk the growing result: a 3,000-packet frame triggered
/// dozens, which cost more than building the dicts. The deferred count is paid once, by the
/// next allocation after the frame.
struct GcPause<'a, 'py> {
    py: Python<'py>,
    names: Option<&'a Names>,
}

impl<'a, 'py> GcPause<'a, 'py> {
    /// Frames with fewer packets are not worth the two calls.
    const MIN_PACKETS: usize = 64;

    fn new(py: Python<'py>, names: &'a Names, packets: usize) -> PyResult<Self> {
        if packets < Self::MIN_PACKETS || !names.gc_isenabled.bind(py).call0()?.is_truthy()? {
            return Ok(Self { py, names: None });
        }
        names.gc_disable.bind(py).call0()?;
        Ok(Self {
            py,
            names: Some(names),
        })
    }
}

impl Drop for GcPause<'_, '_> {
    fn drop(&mut self) {
        if let Some(names) = self.names {
            // gc.enable() cannot fail; if it somehow did, the next call would find the GC
            // off and leave it so, which is the caller's own state, not a crash.
            let _ = names.gc_enable.bind(self.py).call0();
        }
    }
}

/// Columns of [`decode_kite_ticks_py`].
type TickColumns<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<u8>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
);

/// A price of a depth level, NaN for an empty level.
fn touch(l: &DepthLevel) -> f64 {
    if l.quantity == 0 || l.price == 0.0 {
        f64::NAN
    } else {
        l.price
    }
}

/// A frame → columns for the live feed (see `_core.pyi`): one pass, no per-packet allocation.
#[pyfunction(name = "decode_kite_ticks")]
pub fn decode_kite_ticks_py<'py>(py: Python<'py>, data: &[u8]) -> PyResult<TickColumns<'py>> {
    const NS: i64 = 1_000_000_000;
    let frame = Frame::parse(data)?;
    let n = frame.len();
    let mut token = Vec::with_capacity(n);
    let mut mode = Vec::with_capacity(n);
    let mut last_price = Vec::with_capacity(n);
    let mut volume = Vec::with_capacity(n);
    let mut exchange_ts_ns = Vec::with_capacity(n);
    let mut last_trade_ns = Vec::with_capacity(n);
    let mut bid = Vec::with_capacity(n);
    let mut ask = Vec::with_capacity(n);
    let mut oi = Vec::with_capacity(n);
    for p in frame.packets() {
        let layout = p.layout;
        token.push(i64::from(p.instrument_token));
        mode.push(layout.mode() as u8);
        last_price.push(p.last_price);
        volume.push(f64::from(p.volume_traded));
        exchange_ts_ns.push(i64::from(p.exchange_timestamp_s) * NS);
        last_trade_ns.push(i64::from(p.last_trade_time_s) * NS);
        if layout.has_depth() {
            bid.push(touch(&p.buy[0]));
            ask.push(touch(&p.sell[0]));
            oi.push(f64::from(p.oi));
        } else {
            bid.push(f64::NAN);
            ask.push(f64::NAN);
            oi.push(f64::NAN);
        }
    }
    Ok((
        token.into_pyarray(py),
        mode.into_pyarray(py),
        last_price.into_pyarray(py),
        volume.into_pyarray(py),
        exchange_ts_ns.into_pyarray(py),
        last_trade_ns.into_pyarray(py),
        bid.into_pyarray(py),
        ask.into_pyarray(py),
        oi.into_pyarray(py),
    ))
}
