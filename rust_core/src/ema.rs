//! Exponential moving average: a streaming state machine and its batch loop.
//!
//! alpha = 2/(n+1). The first n-1 outputs are undefined (None / NaN); output n-1 is the SMA of
//! the first n inputs (the TA-Lib / TradingView seed); after that
//! `ema = ema + alpha*(x - ema)`, exactly this form: on a flat price `x - ema` becomes 0 and
//! the EMA stops moving, while the algebraically equal `(1 - alpha)*ema + alpha*x` keeps
//! wobbling by an ulp and makes fast and slow "cross" on a flat market. Batch and streaming
//! run the very same `step` (a fused multiply-add where the CPU has FMA, detected at run
//! time), so they are bit-identical on a machine.
//!
//! Non-finite input is an error, never silently absorbed.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};

/// Exact, exportable state of an [`Ema`] (what `to_state` / `from_state` carry).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmaState {
    pub period: u64,
    pub count: u64,
    pub seed_sum: f64,
    pub value: f64,
}

/// Streaming EMA. Equality is exact state equality (NaN warm-up values compare equal).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(try_from = "EmaState", into = "EmaState")]
pub struct Ema {
    period: u64,
    alpha: f64,
    count: u64,
    seed_sum: f64,
    value: f64,
}

impl PartialEq for Ema {
    fn eq(&self, other: &Self) -> bool {
        self.period == other.period
            && self.count == other.count
            && self.seed_sum.to_bits() == other.seed_sum.to_bits()
            && self.value.to_bits() == other.value.to_bits()
    }
}

#[inline(always)]
fn step_with<const FMA: bool>(value: f64, x: f64, alpha: f64) -> f64 {
    if FMA {
        alpha.mul_add(x - value, value)
    } else {
        value + alpha * (x - value)
    }
}

/// The steady-state loop: consumes values until the end or the first non-finite one and
/// returns the last EMA and how many values it consumed.
#[inline(always)]
fn steady_with<const FMA: bool>(
    mut value: f64,
    alpha: f64,
    x: &[f64],
    out: &mut [f64],
) -> (f64, usize) {
    let mut consumed = 0;
    for (&v, o) in x.iter().zip(out.iter_mut()) {
        if !v.is_finite() {
            break;
        }
        value = step_with::<FMA>(value, v, alpha);
        *o = value;
        consumed += 1;
    }
    (value, consumed)
}

/// Run-time CPU dispatch: the wheel is built for baseline x86-64, and where the CPU has FMA
/// the step `ema + alpha*(x - ema)` runs as one fused multiply-add, which shortens the
/// loop-carried dependency from three operations to two (as TA-Lib's compiled C does).
/// Batch and streaming dispatch alike, so they stay bit-identical on a machine; between an
/// FMA and a non-FMA machine results can differ in the last bits.
#[cfg(target_arch = "x86_64")]
mod fma {
    #[target_feature(enable = "fma")]
    pub(super) fn step(value: f64, x: f64, alpha: f64) -> f64 {
        super::step_with::<true>(value, x, alpha)
    }

    #[target_feature(enable = "fma")]
    pub(super) fn steady(value: f64, alpha: f64, x: &[f64], out: &mut [f64]) -> (f64, usize) {
        super::steady_with::<true>(value, alpha, x, out)
    }

    /// Whether this CPU has FMA (std caches the detection).
    #[inline]
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("fma")
    }
}

#[inline]
fn step(value: f64, x: f64, alpha: f64) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if fma::available() {
        // SAFETY: the only precondition of a `target_feature(enable = "fma")` function is
        // that the CPU supports FMA, which was detected at run time just above.
        #[allow(unsafe_code)]
        return unsafe { fma::step(value, x, alpha) };
    }
    step_with::<false>(value, x, alpha)
}

fn steady(value: f64, alpha: f64, x: &[f64], out: &mut [f64]) -> (f64, usize) {
    #[cfg(target_arch = "x86_64")]
    if fma::available() {
        // SAFETY: as in `step`: FMA support was detected at run time just above.
        #[allow(unsafe_code)]
        return unsafe { fma::steady(value, alpha, x, out) };
    }
    steady_with::<false>(value, alpha, x, out)
}

fn check_period(period: u64) -> CoreResult<()> {
    if period == 0 || period > (1 << 32) {
        return Err(CoreError::InvalidPeriod(format!(
            "period must be between 1 and 2^32, got {period}"
        )));
    }
    Ok(())
}

impl Ema {
    /// A fresh EMA.
    ///
    /// # Errors
    /// `period` < 1 (or absurdly large).
    pub fn try_new(period: u64) -> CoreResult<Self> {
        check_period(period)?;
        let alpha = 2.0 / (period as f64 + 1.0);
        Ok(Self {
            period,
            alpha,
            count: 0,
            seed_sum: 0.0,
            value: f64::NAN,
        })
    }

    /// The period n.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// Values consumed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// True once `period` values have been consumed.
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.count >= self.period
    }

    /// The current EMA, or None while warming up.
    #[inline]
    pub fn value(&self) -> Option<f64> {
        self.is_ready().then_some(self.value)
    }

    /// The current EMA, NaN while warming up.
    #[inline]
    pub fn value_or_nan(&self) -> f64 {
        self.value
    }

    /// Consume one value.
    ///
    /// # Errors
    /// `x` is NaN or infinite; the state is unchanged.
    #[inline]
    pub fn update(&mut self, x: f64) -> CoreResult<Option<f64>> {
        if !x.is_finite() {
            return Err(CoreError::NonFinite {
                what: "value",
                index: self.count as usize,
                value: x,
            });
        }
        Ok(self.update_finite(x))
    }

    /// Consume one value already known to be finite.
    #[inline(always)]
    fn update_finite(&mut self, x: f64) -> Option<f64> {
        if self.count >= self.period {
            self.value = step(self.value, x, self.alpha);
            self.count = self.count.saturating_add(1);
            return Some(self.value);
        }
        self.seed_sum += x;
        self.count += 1;
        if self.count == self.period {
            self.value = self.seed_sum / self.period as f64;
            return Some(self.value);
        }
        None
    }

    /// Forget everything consumed.
    pub fn reset(&mut self) {
        self.count = 0;
        self.seed_sum = 0.0;
        self.value = f64::NAN;
    }

    /// The exact state.
    pub fn state(&self) -> EmaState {
        EmaState {
            period: self.period,
            count: self.count,
            seed_sum: self.seed_sum,
            value: self.value,
        }
    }

    /// Rebuild from [`Ema::state`], validating consistency.
    ///
    /// # Errors
    /// Bad period; a non-finite seed sum; a value that is not NaN during warm-up or not finite
    /// once ready.
    pub fn from_state(s: EmaState) -> CoreResult<Self> {
        let mut ema = Self::try_new(s.period)?;
        if !s.seed_sum.is_finite() {
            return Err(CoreError::invalid(format!(
                "ema state: seed_sum must be finite, got {}",
                s.seed_sum
            )));
        }
        let ready = s.count >= s.period;
        if ready && !s.value.is_finite() {
            return Err(CoreError::invalid(format!(
                "ema state: value must be finite once count >= period, got {}",
                s.value
            )));
        }
        if !ready && !s.value.is_nan() {
            return Err(CoreError::invalid(format!(
                "ema state: value must be NaN while count < period, got {}",
                s.value
            )));
        }
        ema.count = s.count;
        ema.seed_sum = s.seed_sum;
        ema.value = s.value;
        Ok(ema)
    }

    /// Run the whole slice through this state, writing one output per input (NaN while
    /// warming up).
    ///
    /// # Errors
    /// Different lengths, or a non-finite value (the index is reported; `out` is then
    /// partially written and the state is where the bad value was met).
    pub fn run_into(&mut self, x: &[f64], out: &mut [f64]) -> CoreResult<()> {
        if x.len() != out.len() {
            return Err(CoreError::LengthMismatch {
                left: x.len(),
                right: out.len(),
            });
        }
        // Warm-up: at most `period` values through the general path.
        let mut i = 0;
        while !self.is_ready() {
            let (Some(&v), Some(o)) = (x.get(i), out.get_mut(i)) else {
                return Ok(());
            };
            check_finite(v, i)?;
            *o = self.update_finite(v).unwrap_or(f64::NAN);
            i += 1;
        }
        // Steady state: the same step with the state held in registers.
        let (Some(xs), Some(os)) = (x.get(i..), out.get_mut(i..)) else {
            return Ok(());
        };
        let (value, consumed) = steady(self.value, self.alpha, xs, os);
        self.value = value;
        self.count = self.count.saturating_add(consumed as u64);
        match xs.get(consumed) {
            Some(&bad) => Err(CoreError::NonFinite {
                what: "value",
                index: i + consumed,
                value: bad,
            }),
            None => Ok(()),
        }
    }
}

#[inline]
fn check_finite(v: f64, index: usize) -> CoreResult<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(CoreError::NonFinite {
            what: "value",
            index,
            value: v,
        })
    }
}

impl TryFrom<EmaState> for Ema {
    type Error = CoreError;
    fn try_from(s: EmaState) -> CoreResult<Self> {
        Self::from_state(s)
    }
}

impl From<Ema> for EmaState {
    fn from(e: Ema) -> Self {
        e.state()
    }
}

/// Batch EMA of `x` into `out` (TA-Lib `EMA` semantics).
///
/// # Errors
/// `period` < 1, different lengths, a non-finite value.
pub fn ema_into(x: &[f64], period: u64, out: &mut [f64]) -> CoreResult<()> {
    Ema::try_new(period)?.run_into(x, out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn batch(x: &[f64], n: u64) -> Vec<f64> {
        let mut out = vec![0.0; x.len()];
        ema_into(x, n, &mut out).unwrap();
        out
    }

    #[test]
    fn seed_is_sma_then_recursive() {
        let out = batch(&[1.0, 2.0, 3.0, 4.0, 5.0], 3);
        assert!(out[0].is_nan() && out[1].is_nan());
        assert_eq!(out[2], 2.0);
        // alpha = 0.5: 2 + 0.5*(4 - 2) = 3, then 3 + 0.5*(5 - 3) = 4
        assert_eq!(&out[3..], &[3.0, 4.0]);
    }

    #[test]
    fn period_one_is_identity() {
        let x = [3.5, -1.0, 7.25];
        assert_eq!(batch(&x, 1), x.to_vec());
    }

    #[test]
    fn empty_and_short_inputs() {
        assert!(batch(&[], 3).is_empty());
        assert!(batch(&[1.0, 2.0], 3).iter().all(|v| v.is_nan()));
    }

    #[test]
    fn streaming_equals_batch_bitwise() {
        let x: Vec<f64> = (0..500)
            .map(|i| 100.0 + (f64::from(i) * 0.37).sin())
            .collect();
        let out = batch(&x, 21);
        let mut e = Ema::try_new(21).unwrap();
        for (v, o) in x.iter().zip(&out) {
            let got = e.update(*v).unwrap().unwrap_or(f64::NAN);
            assert_eq!(got.to_bits(), o.to_bits());
        }
    }

    #[test]
    fn state_roundtrip_continues_identically() {
        let x: Vec<f64> = (0..60).map(|i| f64::from(i).sqrt()).collect();
        for split in 0..x.len() {
            let mut a = Ema::try_new(8).unwrap();
            for v in &x[..split] {
                a.update(*v).unwrap();
            }
            let mut b = Ema::from_state(a.state()).unwrap();
            for v in &x[split..] {
                assert_eq!(a.update(*v).unwrap(), b.update(*v).unwrap());
            }
        }
    }

    #[test]
    fn flat_price_is_a_fixed_point() {
        // Seeded away from a flat price, the EMA settles (within an ulp of it, as TA-Lib
        // does) and then stops moving, so fast and slow cannot cross on a flat market.
        let mut x = vec![3862.32];
        x.extend(std::iter::repeat_n(3844.9, 2000));
        let (fast, slow) = (batch(&x, 8), batch(&x, 21));
        for out in [&fast, &slow] {
            let tail = &out[1500..];
            assert!(tail.iter().all(|v| v.to_bits() == tail[0].to_bits()));
            assert!((tail[0] - 3844.9).abs() < 1e-9);
        }
        let mut flags = vec![0_i8; x.len()];
        crate::cross::crossovers_into(&fast, &slow, &mut flags).unwrap();
        assert!(flags.iter().all(|&f| f == 0));
    }

    #[test]
    fn bad_inputs() {
        assert!(Ema::try_new(0).is_err());
        let mut e = Ema::try_new(2).unwrap();
        e.update(1.0).unwrap();
        let before = e;
        assert!(e.update(f64::NAN).is_err());
        assert!(e.update(f64::INFINITY).is_err());
        assert_eq!(e, before);
        let mut out = vec![0.0; 3];
        assert!(ema_into(&[1.0, f64::NAN, 2.0], 1, &mut out).is_err());
        assert!(ema_into(&[1.0], 1, &mut out).is_err());
        let bad = EmaState {
            period: 3,
            count: 1,
            seed_sum: 1.0,
            value: 2.0,
        };
        assert!(Ema::from_state(bad).is_err());
    }
}
