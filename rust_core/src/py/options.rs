//! Option math over a chain: `black76` and `implied_vol_black76`.

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::arrays::{array1, f64_array, slice};
use crate::options::{black76_into, implied_vol_into, GreekColumns};

/// Black-76 price and greeks of every option of a chain (see `_core.pyi`).
#[pyfunction(name = "black76")]
#[pyo3(signature = (F, K, T, r, sigma, is_call))]
#[allow(non_snake_case)]
pub fn black76_py<'py>(
    py: Python<'py>,
    F: &Bound<'py, PyAny>,
    K: &Bound<'py, PyAny>,
    T: &Bound<'py, PyAny>,
    r: &Bound<'py, PyAny>,
    sigma: &Bound<'py, PyAny>,
    is_call: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let (f, k, t) = (f64_array("F", F)?, f64_array("K", K)?, f64_array("T", T)?);
    let (r, sigma) = (f64_array("r", r)?, f64_array("sigma", sigma)?);
    let calls = array1::<bool>("is_call", "bool", is_call)?;
    let (fs, ks, ts) = (slice("F", &f)?, slice("K", &k)?, slice("T", &t)?);
    let (rs, ss, cs) = (
        slice("r", &r)?,
        slice("sigma", &sigma)?,
        slice("is_call", &calls)?,
    );
    let n = fs.len();
    let (mut price, mut delta, mut gamma) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let (mut theta, mut vega) = (vec![0.0; n], vec![0.0; n]);
    // A chain is a few hundred options (~10 µs): releasing the GIL would cost more.
    black76_into(
        fs,
        ks,
        ts,
        rs,
        ss,
        cs,
        GreekColumns {
            price: &mut price,
            delta: &mut delta,
            gamma: &mut gamma,
            theta: &mut theta,
            vega: &mut vega,
        },
    )?;
    let d = PyDict::new(py);
    d.set_item("price", PyArray1::from_vec(py, price))?;
    d.set_item("delta", PyArray1::from_vec(py, delta))?;
    d.set_item("gamma", PyArray1::from_vec(py, gamma))?;
    d.set_item("theta", PyArray1::from_vec(py, theta))?;
    d.set_item("vega", PyArray1::from_vec(py, vega))?;
    Ok(d)
}

/// Implied Black-76 volatility of every option of a chain (see `_core.pyi`).
#[pyfunction(name = "implied_vol_black76")]
#[pyo3(signature = (price, F, K, T, r, is_call))]
#[allow(non_snake_case)]
pub fn implied_vol_black76_py<'py>(
    py: Python<'py>,
    price: &Bound<'py, PyAny>,
    F: &Bound<'py, PyAny>,
    K: &Bound<'py, PyAny>,
    T: &Bound<'py, PyAny>,
    r: &Bound<'py, PyAny>,
    is_call: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let p = f64_array("price", price)?;
    let (f, k, t) = (f64_array("F", F)?, f64_array("K", K)?, f64_array("T", T)?);
    let r = f64_array("r", r)?;
    let calls = array1::<bool>("is_call", "bool", is_call)?;
    let (ps, fs, ks) = (slice("price", &p)?, slice("F", &f)?, slice("K", &k)?);
    let (ts, rs, cs) = (slice("T", &t)?, slice("r", &r)?, slice("is_call", &calls)?);
    let mut out = vec![0.0; ps.len()];
    implied_vol_into(ps, fs, ks, ts, rs, cs, &mut out)?;
    Ok(PyArray1::from_vec(py, out))
}
