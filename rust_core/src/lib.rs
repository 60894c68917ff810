//! Mental Trader's hot path, compiled with PyO3 into `mental_trader._core`.
//!
//! The pure modules (`session`, `bars`, `resample`, `ema`, `cross`, `engine`) know nothing of
//! Python: no I/O, clock reads or randomness. `py` holds the thin bindings. This file is the
//! registry: module declarations and the export list of the Python module.

pub mod bars;
pub mod cross;
pub mod ema;
pub mod engine;
pub mod error;
pub mod kite;
pub mod options;
pub mod resample;
pub mod session;

mod py;
#[cfg(test)]
mod testutil;

pub use error::{CoreError, CoreResult};

/// The Python extension module `mental_trader._core`.
// `gil_used`: a free-threaded CPython that builds this from source (not as abi3) must keep
// its GIL on while the module is loaded: `py/cell.rs` relies on it.
#[pyo3::pymodule(name = "_core", gil_used = true)]
mod core_module {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::py::builder::PyBarBuilder;
    #[pymodule_export]
    use crate::py::engine::{PyBarEvent, PyEngine};
    #[pymodule_export]
    use crate::py::funcs::{build_bars_py, crossovers_py, ema_py, resample_bars_py};
    #[pymodule_export]
    use crate::py::kite::{decode_kite_frame_py, decode_kite_ticks_py};
    #[pymodule_export]
    use crate::py::options::{black76_py, implied_vol_black76_py};
    #[pymodule_export]
    use crate::py::types::{PyBar, PyEma};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        crate::py::fastcall::install(&m.py().get_type::<PyEngine>())?;
        m.add(
            "PanicException",
            m.py().get_type::<pyo3::panic::PanicException>(),
        )?;
        Ok(())
    }
}
