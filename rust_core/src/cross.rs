//! Crossover detection (TradingView `ta.crossover` / `ta.crossunder`).
//!
//! Bullish (+1) at i when fast[i] > slow[i] and fast[i-1] <= slow[i-1]; bearish (-1) when
//! fast[i] < slow[i] and fast[i-1] >= slow[i-1]; 0 otherwise. Every comparison with NaN is
//! false, so undefined (warming-up) inputs give 0, and the first output is always 0.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};

/// Streaming crossover state: the previous (fast, slow) pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cross {
    prev_fast: f64,
    prev_slow: f64,
}

impl Default for Cross {
    fn default() -> Self {
        Self {
            prev_fast: f64::NAN,
            prev_slow: f64::NAN,
        }
    }
}

impl Cross {
    /// State as if `(fast, slow)` was the last pair seen (restoring EMAs from storage).
    pub fn primed(fast: f64, slow: f64) -> Self {
        Self {
            prev_fast: fast,
            prev_slow: slow,
        }
    }

    /// Consume one (fast, slow) pair and return +1, -1 or 0.
    #[inline]
    pub fn update(&mut self, fast: f64, slow: f64) -> i8 {
        let (pf, ps) = (self.prev_fast, self.prev_slow);
        self.prev_fast = fast;
        self.prev_slow = slow;
        if fast > slow && pf <= ps {
            1
        } else if fast < slow && pf >= ps {
            -1
        } else {
            0
        }
    }
}

/// Batch crossovers of `fast` over `slow` into `out`.
///
/// # Errors
/// The three slices differ in length.
pub fn crossovers_into(fast: &[f64], slow: &[f64], out: &mut [i8]) -> CoreResult<()> {
    if fast.len() != slow.len() {
        return Err(CoreError::LengthMismatch {
            left: fast.len(),
            right: slow.len(),
        });
    }
    if fast.len() != out.len() {
        return Err(CoreError::LengthMismatch {
            left: fast.len(),
            right: out.len(),
        });
    }
    let mut state = Cross::default();
    for ((f, s), o) in fast.iter().zip(slow).zip(out.iter_mut()) {
        *o = state.update(*f, *s);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(fast: &[f64], slow: &[f64]) -> Vec<i8> {
        let mut out = vec![9; fast.len()];
        crossovers_into(fast, slow, &mut out).unwrap();
        out
    }

    #[test]
    fn crosses_touches_and_nans() {
        let nan = f64::NAN;
        let fast = [1.0, 2.0, 2.0, 3.0, 1.0, nan, 5.0, 0.0];
        let slow = [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0];
        // i=1 touch (not a cross), i=3 up after touch, i=4 down, i=5 NaN, i=6 after NaN: 0,
        // i=7 down.
        assert_eq!(run(&fast, &slow), vec![0, 0, 0, 1, -1, 0, 0, -1]);
    }

    #[test]
    fn empty_and_mismatch() {
        assert!(run(&[], &[]).is_empty());
        let mut out = [0_i8; 1];
        assert!(crossovers_into(&[1.0], &[1.0, 2.0], &mut out).is_err());
    }
}
