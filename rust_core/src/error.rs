//! Errors of the pure core. No pyo3 here: `lib.rs` maps every variant to
//! `mental_trader.errors.InvalidInputError` (a `ValueError`) in one place.

use thiserror::Error;

/// Every way an input to the core can be rejected. Messages are lowercase and carry the
/// offending values so a user can fix the call without reading the source.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// An EMA period below 1, or fast >= slow.
    #[error("invalid period: {0}")]
    InvalidPeriod(String),
    /// Two arrays that must have equal lengths do not.
    #[error("length mismatch: {left} != {right}")]
    LengthMismatch { left: usize, right: usize },
    /// An array is not C-contiguous.
    #[error("{0}: array is not C-contiguous (pass np.ascontiguousarray(x))")]
    NonContiguous(String),
    /// Rows that must be ascending are not.
    #[error("{0}")]
    NotSorted(String),
    /// A NaN or infinity where a finite value is required.
    #[error("{what} is not finite at index {index}: {value}")]
    NonFinite {
        what: &'static str,
        index: usize,
        value: f64,
    },
    /// A value out of its allowed range (price <= 0, negative quantity, ...).
    #[error("{0}")]
    OutOfRange(String),
    /// A malformed argument (session string, volume mode, snapshot bytes, ...).
    #[error("{0}")]
    Invalid(String),
}

impl CoreError {
    /// Shorthand for [`CoreError::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}

/// Result alias of the core.
pub type CoreResult<T> = Result<T, CoreError>;
