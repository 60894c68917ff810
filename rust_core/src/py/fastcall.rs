//! `Engine.on_tick` as a hand-written `METH_FASTCALL` method.
//!
//! A tick from a Python loop is the one call where PyO3's generic machinery (trampoline,
//! argument descriptor, per-argument error wrapping) costs more than the work itself: it was
//! ~500 of the ~680 instructions of a call (callgrind). This entry point converts four
//! positional arguments itself and calls the engine. Anything else (keywords, a wrong count or
//! type, an overflow, a borrowed engine) goes to the PyO3-generated `Engine._on_tick`, which
//! does the checking and raises the documented errors, so both paths behave identically.
//!
//! One of the crate's `unsafe` exceptions (with `cell.rs` and the FMA dispatch in `ema.rs`):
//! raw C-API calls with the thread attached (CPython calls a method with it attached).

#![allow(unsafe_code)]

use std::ffi::c_int;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

use super::engine::PyEngine;

/// Signature for `inspect` (and stubtest): the same parameters as `Engine._on_tick`.
const DOC: &std::ffi::CStr = c"on_tick($self, symbol, ts_ns, price, qty)\n--\n\n\
One tick: None when no bar closed, else the closed-bar events.";

/// Replace `Engine.on_tick` (the PyO3 method, still reachable as `_on_tick`) by the raw one.
pub fn install(ty: &Bound<'_, PyType>) -> PyResult<()> {
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
    let py = ty.py();
    // SAFETY: `ty` is a live type object, `def` lives forever; the result is a new reference.
    let descr =
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_type_ptr(), def)) }?;
    ty.setattr("on_tick", descr)
}

/// An int argument as i64, or None when it is not one or does not fit (error cleared).
#[inline(always)]
unsafe fn as_i64(obj: *mut ffi::PyObject) -> Option<i64> {
    let mut overflow: c_int = 0;
    let v = unsafe { ffi::PyLong_AsLongAndOverflow(obj, &raw mut overflow) };
    if overflow != 0 {
        return None;
    }
    if v == -1 && !unsafe { ffi::PyErr_Occurred() }.is_null() {
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    // c_long is i64 here; on Windows it is i32, and larger values overflow to the checked path.
    #[allow(clippy::useless_conversion)]
    Some(i64::from(v))
}

/// A float argument as f64, or None when it does not convert (error cleared).
#[inline(always)]
unsafe fn as_f64(obj: *mut ffi::PyObject) -> Option<f64> {
    let v = unsafe { ffi::PyFloat_AsDouble(obj) };
    if v == -1.0 && !unsafe { ffi::PyErr_Occurred() }.is_null() {
        unsafe { ffi::PyErr_Clear() };
        return None;
    }
    Some(v)
}

/// The fast path: the result (a new reference, or null with an exception set), or `None`
/// when the call must go to the checked path (nothing was changed then).
#[inline(always)]
unsafe fn fast(
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
    let symbol = unsafe { as_i64(a0) }?;
    let ts_ns = unsafe { as_i64(a1) }?;
    let price = unsafe { as_f64(a2) }?;
    let qty = unsafe { as_f64(a3) }?;
    // SAFETY: the thread is attached (we are inside a method call) and the method descriptor
    // only calls us with `slf` an instance of Engine (or a subclass).
    let py = unsafe { Python::assume_attached() };
    let obj = unsafe { pyo3::Borrowed::from_ptr(py, slf) };
    let engine = unsafe { obj.cast_unchecked::<PyEngine>() };
    let mut engine = engine.get().try_state(py)?;
    if engine.try_update(symbol, ts_ns, price, qty) {
        // SAFETY: the caller owns the new reference to None we return.
        return Some(unsafe { ffi::Py_NewRef(ffi::Py_None()) });
    }
    // A new bucket, a closed bar, a dropped tick or an error: the full engine call, with
    // PyO3's own bookkeeping of the attached thread since it may build objects or raise.
    Some(Python::attach(|py| {
        match engine.on_tick_checked(py, symbol, ts_ns, price, qty) {
            Ok(Some(events)) => events.into_ptr(),
            Ok(None) => py.None().into_ptr(),
            Err(err) => {
                err.restore(py);
                ptr::null_mut()
            }
        }
    }))
}

/// `METH_FASTCALL | METH_KEYWORDS` entry point.
unsafe extern "C" fn on_tick(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| unsafe {
        fast(slf, args, nargs, kwnames)
    }));
    match outcome {
        Ok(Some(result)) => result,
        Ok(None) => unsafe { checked(slf, args, nargs, kwnames) },
        Err(payload) => Python::attach(|py| {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic in Engine.on_tick".to_owned());
            PanicException::new_err(msg).restore(py);
            ptr::null_mut()
        }),
    }
}

/// The checked path: call `self._on_tick(*args, **kwargs)`, rebuilt from the vectorcall form.
unsafe fn checked(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        Python::attach(|py| -> PyResult<Py<PyAny>> {
            // SAFETY: as in `fast`; `args` holds `nargs` positional values followed by one
            // value per keyword name.
            let this = unsafe { Bound::from_borrowed_ptr(py, slf) };
            let kwnames = (!kwnames.is_null())
                .then(|| unsafe { Bound::from_borrowed_ptr(py, kwnames) })
                .map(Bound::cast_into::<PyTuple>)
                .transpose()
                .map_err(|_| PyTypeError::new_err("on_tick: bad keyword names"))?;
            let n_kw = kwnames.as_ref().map_or(0, PyTupleMethods::len);
            let n_pos = usize::try_from(nargs).unwrap_or(0);
            let values: Vec<Bound<'_, PyAny>> = (0..n_pos + n_kw)
                .map(|i| unsafe { Bound::from_borrowed_ptr(py, *args.add(i)) })
                .collect();
            let (pos, kw_values) = values.split_at(n_pos);
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
            let out = this.call_method("_on_tick", PyTuple::new(py, pos)?, kwargs.as_ref())?;
            Ok(out.unbind())
        })
    }));
    Python::attach(|py| match result {
        Ok(Ok(obj)) => obj.into_ptr(),
        Ok(Err(err)) => {
            err.restore(py);
            ptr::null_mut()
        }
        Err(_) => {
            PanicException::new_err("panic in Engine.on_tick").restore(py);
            ptr::null_mut()
        }
    })
}
