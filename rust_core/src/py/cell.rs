//! `GilCell`: exclusive access through `&self` for a frozen pyclass, without an atomic
//! read-modify-write per call.
//!
//! PyO3's own borrow flag for a mutable pyclass is a `lock cmpxchg` plus a reference-count
//! round trip on every method call; on `Engine.on_tick` that was half of the time the call
//! spent in our code (perf). Here the "in use" flag is a plain load and store, which is
//! enough because it is only tested and set by a thread holding the GIL (every borrow takes a
//! `Python` token), so no two threads can test it at once. The module is built for the stable
//! ABI (abi3), which free-threaded CPython does not load, so a GIL is always there; one that
//! builds the module from source keeps its GIL on for it (`gil_used` in `lib.rs`).
//! A borrow held across `Python::detach` keeps the flag set: another thread that tries to use
//! the value meanwhile gets a clean `RuntimeError` instead of a data race. A borrow that ends
//! in a panic poisons the cell: a half-updated engine is never used again.

#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// A value borrowed mutably by one caller at a time, checked under the GIL.
pub struct GilCell<T> {
    busy: AtomicBool,
    /// Set when a borrow ended in a panic: the value may be half-updated, so it is never
    /// handed out again.
    poisoned: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through `borrow_mut`, which hands out one guard at a time
// (the flag is tested and set by a thread holding the GIL); `T: Send` lets that guard's owner
// be any thread.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    pub fn new(value: T) -> Self {
        Self {
            busy: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, exclusively; `RuntimeError` if another call is using it (only possible from
    /// another thread while that call has released the GIL, or by re-entrancy).
    #[inline(always)]
    pub fn borrow_mut(&self, py: Python<'_>) -> PyResult<GilRefMut<'_, T>> {
        self.try_borrow_mut(py).ok_or_else(|| {
            if self.poisoned.load(Ordering::Acquire) {
                PyRuntimeError::new_err(
                    "Engine is unusable after an internal error (a panic) left it half-updated; \
                     rebuild it (Engine.from_snapshot of an earlier snapshot, or warm it up again)",
                )
            } else {
                PyRuntimeError::new_err("Engine is in use by another call (another thread?)")
            }
        })
    }

    /// Like `borrow_mut`, but `None` instead of an error.
    #[inline(always)]
    pub fn try_borrow_mut(&self, _py: Python<'_>) -> Option<GilRefMut<'_, T>> {
        // Acquire/Release pair the end of one borrow with the start of the next, whichever
        // threads they are on; on x86-64 both are plain moves.
        if self.busy.load(Ordering::Acquire) || self.poisoned.load(Ordering::Relaxed) {
            return None;
        }
        self.busy.store(true, Ordering::Relaxed);
        Some(GilRefMut {
            cell: self,
            _borrow: PhantomData,
        })
    }
}

/// The guard of a `GilCell` borrow; dropping it frees the value.
pub struct GilRefMut<'a, T> {
    cell: &'a GilCell<T>,
    /// Send and Sync exactly when `&mut T` is.
    _borrow: PhantomData<&'a mut T>,
}

impl<T> Deref for GilRefMut<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only live borrow (see `try_borrow_mut`).
        unsafe { &*self.cell.value.get() }
    }
}

impl<T> DerefMut for GilRefMut<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`.
        unsafe { &mut *self.cell.value.get() }
    }
}

impl<T> Drop for GilRefMut<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.cell.poisoned.store(true, Ordering::Relaxed);
        }
        self.cell.busy.store(false, Ordering::Release);
    }
}
