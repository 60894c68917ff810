//! PyO3 bindings: argument checking and conversion only; every rule lives in the pure modules.

pub mod arrays;
pub mod builder;
pub mod cell;
pub mod engine;
pub mod fastcall;
pub mod funcs;
pub mod kite;
pub mod options;
pub mod types;
