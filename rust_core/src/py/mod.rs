//! PyO3 bindings: argument checking and conversion only; every rule lives in the pure modules.

pub mod arrays;
pub mod builder;
pub mod engine;
pub mod funcs;
pub mod types;
