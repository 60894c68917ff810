//! `Engine.on_tick` as a hand-written `METH_FASTCALL` method.
//!
//! A tick from a Python loop is the one call where PyO3's generic machinery (trampoline,
//! argument descriptor, per-argument error wrapping) costs more than the work itself: it was
//! ~500 of the ~680 instructions of a call (callgrind). This entry point takes only the plain
//! case: four positional arguments of the exact types `int, int, float|int, float|int`, so
//! converting them runs no Python code and cannot fail except by overflow. Anything else
//! (keywords, a wrong count, other types such as numpy scalars or bools, an overflow, a busy
//! engine) goes untouched to the PyO3-generated method, kept on the type as
//! `Engine._on_tick`, which converts, checks and raises exactly as before; nothing has run
//! or changed by then.
//!
//! One of the crate's `unsafe` exceptions (with `cell.rs` and the FMA dispatch in `ema.rs`):
//! raw C-API calls, made with the thread attached (CPython calls a method with it attached).

#![allow(unsafe_code)]

use std::ffi::c_int;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use super::engine::PyEngine;

/// Signature for `inspect` (and stubtest): the same parameters as the checked method.
const DOC: &std::ffi::CStr = c"on_tick($self, symbol, ts_ns, price, qty)\n--\n\n\
One tick: None when no bar closed, else the closed-bar events.";

/// The PyO3-generated `on_tick` descriptor: the checked path.
static CHECKED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Replace `Engine.on_tick` (PyO3's method, kept as `_on_tick`) by the raw one.
pub fn install(ty: &Bound<'_, PyType>) -> PyResult<()> {
    let py = ty.py();
    let checked = ty.getattr("on_tick")?;
    CHECKED
        .set(py, checked.clone().unbind())
        .map_err(|_| PyTypeError::new_err("Engine.on_tick installed twice"))?;
    ty.setattr("_on_tick", checked)?;
    // The type keeps the descriptor, and the descriptor this definition, for the life of the
    // process: one leaked struct.
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: c"on_tick".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: on_tick,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: DOC.as_ptr(),
    }));
    // SAFETY: `ty` is a live type object, `def` lives forever; the result is a new reference.
    let descr =
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_type_ptr(), def)) }?;
    ty.setattr("on_tick", descr)
}

/// An exact `int` as i64; None for another type (no Python code runs) or an overflow.
#[inline(always)]
unsafe fn exact_i64(obj: *mut ffi::PyObject) -> Option<i64> {
    if unsafe { ffi::PyLong_CheckExact(obj) } == 0 {
        return None;
    }
    let mut overflow: c_int = 0;
    let v = unsafe { ffi::PyLong_AsLongLongAndOverflow(obj, &raw mut overflow) };
    // An exact int only fails by overflow, which sets no exception.
    (overflow == 0).then_some(v)
}

/// An exact `float` or `int` as f64; None for another type (no Python code runs) or an int
/// too large for a float (its OverflowError is cleared; the checked path raises its own).
#[inline(always)]
unsafe fn exact_f64(obj: *mut ffi::PyObject) -> Option<f64> {
    if unsafe { ffi::PyFloat_CheckExact(obj) } == 0 && unsafe { ffi::PyLong_CheckExact(obj) } == 0 {
        return None;
    }
    let v = unsafe { ffi::PyFloat_AsDouble(obj) };
    if v == -1.0 && !unsafe { ffi::PyErr_Occurred() }.is_null() {
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    Some(v)
}

/// The fast path: the result (a new reference, or null with an exception set), or `None`
/// when the call must go to the checked path (nothing has run or changed then).
#[inline(always)]
unsafe fn fast(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> Option<*mut ffi::PyObject> {
    if nargs != 4 || !kwnames.is_null() {
        return None;
    }
    // SAFETY: CPython passes `nargs` valid borrowed references.
    let (a0, a1, a2, a3) = unsafe { (*args, *args.add(1), *args.add(2), *args.add(3)) };
    let symbol = unsafe { exact_i64(a0) }?;
    let ts_ns = unsafe { exact_i64(a1) }?;
    let price = unsafe { exact_f64(a2) }?;
    let qty = unsafe { exact_f64(a3) }?;
    // SAFETY: the method descriptor only calls us with `slf` an instance of Engine (which
    // cannot be subclassed).
    let obj = unsafe { pyo3::Borrowed::from_ptr(py, slf) };
    let engine = unsafe { obj.cast_unchecked::<PyEngine>() };
    let mut engine = engine.get().try_state(py)?;
    if engine.try_update(symbol, ts_ns, price, qty) {
        // SAFETY: the caller owns the new reference to None we return.
        return Some(unsafe { ffi::Py_NewRef(ffi::Py_None()) });
    }
    // A new bucket, a closed bar, a dropped tick or an error: the full engine call.
    Some(
        match engine.on_tick_checked(py, symbol, ts_ns, price, qty) {
            Ok(Some(events)) => events.into_ptr(),
            Ok(None) => py.None().into_ptr(),
            Err(err) => {
                err.restore(py);
                ptr::null_mut()
            }
        },
    )
}

/// `METH_FASTCALL | METH_KEYWORDS` entry point. No panic crosses it, and it never asks
/// PyO3 to attach the thread (CPython already has; attaching again can fail at shutdown).
unsafe extern "C" fn on_tick(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls methods with the thread attached. PyO3 objects dropped under
    // this token are released at once (Bound) or deferred to PyO3's pool (Py), both sound.
    let py = unsafe { Python::assume_attached() };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| unsafe {
        match fast(py, slf, args, nargs, kwnames) {
            Some(result) => result,
            None => checked(py, slf, args, nargs, kwnames),
        }
    }));
    outcome.unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic in Engine.on_tick".to_owned());
        PanicException::new_err(msg).restore(py);
        ptr::null_mut()
    })
}

/// The checked path: the PyO3 method, called with the same arguments.
unsafe fn checked(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let call = || -> PyResult<Bound<'_, PyAny>> {
        let method = CHECKED
            .get(py)
            .ok_or_else(|| PyTypeError::new_err("Engine.on_tick is not installed"))?
            .bind(py);
        // SAFETY: `args` holds `nargs` positional values followed by one value per keyword
        // name, all borrowed references valid for this call.
        let kwnames = (!kwnames.is_null())
            .then(|| unsafe { Bound::from_borrowed_ptr(py, kwnames) })
            .map(Bound::cast_into::<PyTuple>)
            .transpose()
            .map_err(|_| PyTypeError::new_err("on_tick: bad keyword names"))?;
        let n_kw = kwnames.as_ref().map_or(0, PyTupleMethods::len);
        let n_pos = usize::try_from(nargs).unwrap_or(0);
        let this = unsafe { Bound::from_borrowed_ptr(py, slf) };
        let values: Vec<Bound<'_, PyAny>> = std::iter::once(this)
            .chain((0..n_pos + n_kw).map(|i| unsafe { Bound::from_borrowed_ptr(py, *args.add(i)) }))
            .collect();
        let (pos, kw_values) = values.split_at(n_pos + 1);
        let kwargs = match &kwnames {
            Some(names) => {
                let d = PyDict::new(py);
                for (name, value) in names.iter().zip(kw_values) {
                    d.set_item(name, value)?;
                }
                Some(d)
            }
            None => None,
        };
        method.call(PyTuple::new(py, pos)?, kwargs.as_ref())
    };
    match call() {
        Ok(obj) => obj.into_ptr(),
        Err(err) => {
            err.restore(py);
            ptr::null_mut()
        }
    }
}
