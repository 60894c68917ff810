//! Black-76: price, greeks and implied volatility of European options on a forward, batch
//! over a chain.
//!
//! Conventions (those of the usual references, e.g. vollib's `black` module): `f` the
//! forward, `k` the strike, `t` years to expiry, `r` continuously compounded, `sigma` the
//! annual volatility; prices are discounted by `exp(-r t)`. Delta is with respect to the
//! forward, theta is per calendar day (the time derivative divided by 365), vega per one
//! volatility point (per 0.01).
//!
//! The implied-volatility solver works on the normalised out-of-the-money price
//! `b(s) = exp(-|x|/2) N(-|x|/s + s/2) - exp(|x|/2) N(-|x|/s - s/2)`, with `x = ln(f/k)` and
//! `s = sigma sqrt(t)`: an in-the-money price becomes its out-of-the-money twin by put-call
//! parity, so calls and puts share one monotone function of `s`. It takes Halley steps on
//! `ln b(s) - ln beta` (well scaled from deep out of the money to the money), inside a
//! bracket that falls back to bisection, and returns NaN rather than a number it could not
//! confirm: a price outside the no-arbitrage bounds, or a root whose price misses the input.

// `!(x > 0.0)` is meant: a NaN must fail these checks too.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use std::f64::consts::PI;

use crate::error::{CoreError, CoreResult};

const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
const SQRT_2PI: f64 = 2.506_628_274_631_000_7;
const DAYS_PER_YEAR: f64 = 365.0;
/// Halley/bisection steps before giving up (a bracket halves at least every other step).
const MAX_ITER: usize = 100;
/// Largest total volatility `s` searched: `b(s)` is within 1e-16 of its bound beyond it.
const S_MAX: f64 = 80.0;
/// Relative step at which the solver stops. The price itself is computed to ~1e-13
/// relative (less far out of the money), so steps below this only chase rounding.
const S_TOL: f64 = 1e-12;
/// A Halley step below this (relative) ends the search: the next error is ~its cube.
const HALLEY_DONE: f64 = 1e-5;
/// A time value below this fraction of the (undiscounted) price is rounding noise: its
/// relative error would exceed ~1e-4 (a few ulps of the price over the time value).
const TIME_VALUE_RESOLUTION: f64 = 1e-11;

/// The standard normal CDF at `d` from its density `pdf` = phi(d), without another `exp`:
/// W. J. Cody's rational Chebyshev approximations (Math. Comp. 1969; the algorithm of R's
/// `pnorm`), accurate to about 1e-16 relative over the whole range. For |d| > 0.674 they
/// give `N(-|d|) = exp(-d^2/2) R(|d|)`; the density a caller needs anyway supplies the
/// exponential (phi(d2) follows from phi(d1) by a product), so a Black-76 evaluation costs
/// one `exp` instead of three.
#[inline(always)]
fn norm_cdf_with_pdf(d: f64, pdf: f64) -> f64 {
    const A: [f64; 5] = [
        2.235_252_035_460_683_9,
        161.028_231_068_555_88,
        1_067.689_485_460_371,
        18_154.981_253_343_56,
        0.065_682_337_918_207_45,
    ];
    const B: [f64; 4] = [
        47.202_581_904_688_24,
        976.098_551_737_776_7,
        10_260.932_208_618_978,
        45_507.789_335_026_73,
    ];
    const C: [f64; 9] = [
        0.398_941_512_088_134_66,
        8.883_149_794_388_376,
        93.506_656_132_177_86,
        597.270_276_394_800_3,
        2_494.537_585_290_372_7,
        6_848.190_450_536_283,
        11_602.651_437_647_35,
        9_842.714_838_383_978,
        1.076_557_677_372_019_2e-8,
    ];
    const D: [f64; 8] = [
        22.266_688_044_328_117,
        235.387_901_782_625,
        1_519.377_599_407_554_8,
        6_485.558_298_266_761,
        18_615.571_640_885_1,
        34_900.952_721_145_98,
        38_912.003_286_093_27,
        19_685.429_676_859_99,
    ];
    const P: [f64; 6] = [
        0.215_898_534_057_957,
        0.127_401_161_160_247_36,
        0.022_235_277_870_649_807,
        0.001_421_619_193_227_893_5,
        2.911_287_495_116_879_2e-5,
        0.023_073_441_764_940_173,
    ];
    const Q: [f64; 5] = [
        1.284_260_096_144_911,
        0.468_238_212_480_865_1,
        0.065_988_137_868_928_55,
        0.003_782_396_332_027_582_4,
        7.297_515_550_839_662e-5,
    ];
    let y = d.abs();
    if y <= 0.674_489_75 {
        // N(d) = 1/2 + d R(d^2)
        let z = d * d;
        let (mut num, mut den) = (A[4] * z, z);
        for (a, b) in A.iter().zip(&B).take(3) {
            num = (num + a) * z;
            den = (den + b) * z;
        }
        return 0.5 + d * (num + A[3]) / (den + B[3]);
    }
    let ratio = if y <= 5.656_854_249_492_381 {
        // N(-y) = exp(-y^2/2) R(y), y up to sqrt(32)
        let (mut num, mut den) = (C[8] * y, y);
        for (c, e) in C.iter().zip(&D).take(7) {
            num = (num + c) * y;
            den = (den + e) * y;
        }
        (num + C[7]) / (den + D[7])
    } else {
        // N(-y) = exp(-y^2/2) (1/sqrt(2 pi) - R(1/y^2) / y^2) / y
        let z = 1.0 / (y * y);
        let (mut num, mut den) = (P[5] * z, z);
        for (p, q) in P.iter().zip(&Q).take(4) {
            num = (num + p) * z;
            den = (den + q) * z;
        }
        (INV_SQRT_2PI - z * (num + P[4]) / (den + Q[4])) / y
    };
    // exp(-y^2/2) = sqrt(2 pi) phi(d)
    let lower = SQRT_2PI * pdf * ratio;
    if d < 0.0 {
        lower
    } else {
        1.0 - lower
    }
}

#[inline(always)]
fn norm_pdf(x: f64) -> f64 {
    INV_SQRT_2PI * (-0.5 * x * x).exp()
}

/// phi(d2) from phi(d1) and their ratio; directly where that product would lose the
/// value to underflow (phi(d1) near the bottom of the double range).
#[inline(always)]
fn pdf_pair(pdf1: f64, ratio: f64, d2: f64) -> f64 {
    if pdf1 > 1e-280 {
        pdf1 * ratio
    } else {
        norm_pdf(d2)
    }
}

/// Price and greeks of one option.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Greeks {
    pub price: f64,
    pub delta: f64,
    pub gamma: f64,
    pub theta: f64,
    pub vega: f64,
}

impl Greeks {
    const NAN: Self = Self {
        price: f64::NAN,
        delta: f64::NAN,
        gamma: f64::NAN,
        theta: f64::NAN,
        vega: f64::NAN,
    };
}

/// Black-76 price and greeks of one option; NaN everywhere when `sigma` is NaN (no
/// volatility, e.g. an implied volatility that could not be solved). Inputs are otherwise
/// assumed valid (see [`black76_into`]).
#[inline]
pub fn black76(f: f64, k: f64, t: f64, r: f64, sigma: f64, is_call: bool) -> Greeks {
    if sigma.is_nan() {
        return Greeks::NAN;
    }
    let sqrt_t = t.sqrt();
    let s = sigma * sqrt_t;
    let d1 = (f / k).ln() / s + 0.5 * s;
    let d2 = d1 - s;
    let df = (-r * t).exp();
    let pdf = norm_pdf(d1);
    // phi(d2) = phi(d1) f/k, since d1^2 - d2^2 = 2 ln(f/k)
    let pdf2 = pdf_pair(pdf, f / k, d2);
    let (price, delta) = if is_call {
        let n1 = norm_cdf_with_pdf(d1, pdf);
        (df * (f * n1 - k * norm_cdf_with_pdf(d2, pdf2)), df * n1)
    } else {
        let n1 = norm_cdf_with_pdf(-d1, pdf);
        (df * (k * norm_cdf_with_pdf(-d2, pdf2) - f * n1), -df * n1)
    };
    let decay = f * df * pdf * sigma / (2.0 * sqrt_t);
    Greeks {
        price,
        delta,
        gamma: df * pdf / (f * s),
        // -dV/dt per year is r V - decay (Black-76); per calendar day:
        theta: (r * price - decay) / DAYS_PER_YEAR,
        vega: f * df * pdf * sqrt_t * 0.01,
    }
}

/// Output columns of [`black76_into`], each as long as the inputs.
pub struct GreekColumns<'a> {
    pub price: &'a mut [f64],
    pub delta: &'a mut [f64],
    pub gamma: &'a mut [f64],
    pub theta: &'a mut [f64],
    pub vega: &'a mut [f64],
}

/// The inputs of one option: forward, strike, years, rate.
#[derive(Debug, Clone, Copy)]
pub struct Contract {
    pub f: f64,
    pub k: f64,
    pub t: f64,
    pub r: f64,
}

fn check_len(n: usize, len: usize) -> CoreResult<()> {
    if len == n {
        Ok(())
    } else {
        Err(CoreError::LengthMismatch {
            left: n,
            right: len,
        })
    }
}

/// Check one contract: forward and strike finite and > 0, years finite and > 0, rate finite.
fn check_contract(i: usize, c: Contract) -> CoreResult<()> {
    let positive = |what: &'static str, v: f64| -> CoreResult<()> {
        if !v.is_finite() {
            return Err(CoreError::NonFinite {
                what,
                index: i,
                value: v,
            });
        }
        if v <= 0.0 {
            return Err(CoreError::OutOfRange(format!(
                "{what} must be > 0, got {v} at index {i}"
            )));
        }
        Ok(())
    };
    positive("F", c.f)?;
    positive("K", c.k)?;
    positive("T", c.t)?;
    if !c.r.is_finite() {
        return Err(CoreError::NonFinite {
            what: "r",
            index: i,
            value: c.r,
        });
    }
    Ok(())
}

/// The contract at `i` of equal-length columns.
#[inline(always)]
fn contract_at(i: usize, f: &[f64], k: &[f64], t: &[f64], r: &[f64]) -> Contract {
    let at = |xs: &[f64]| xs.get(i).copied().unwrap_or(f64::NAN);
    Contract {
        f: at(f),
        k: at(k),
        t: at(t),
        r: at(r),
    }
}

/// Black-76 over a chain: equal-length columns in, the five output columns filled.
///
/// # Errors
/// Unequal lengths; a forward, strike or expiry not finite and > 0; a rate not finite; a
/// volatility that is not NaN and not finite and > 0. Nothing is written before the checks
/// pass.
pub fn black76_into(
    f: &[f64],
    k: &[f64],
    t: &[f64],
    r: &[f64],
    sigma: &[f64],
    is_call: &[bool],
    out: GreekColumns<'_>,
) -> CoreResult<()> {
    let n = f.len();
    for len in [k.len(), t.len(), r.len(), sigma.len(), is_call.len()] {
        check_len(n, len)?;
    }
    for len in [
        out.price.len(),
        out.delta.len(),
        out.gamma.len(),
        out.theta.len(),
        out.vega.len(),
    ] {
        check_len(n, len)?;
    }
    for (i, &v) in sigma.iter().enumerate() {
        check_contract(i, contract_at(i, f, k, t, r))?;
        if !(v.is_nan() || v.is_finite() && v > 0.0) {
            return Err(CoreError::OutOfRange(format!(
                "sigma must be > 0 and finite (or NaN for none), got {v} at index {i}"
            )));
        }
    }
    let rows = sigma.iter().zip(is_call).enumerate();
    let cols = out
        .price
        .iter_mut()
        .zip(out.delta.iter_mut())
        .zip(out.gamma.iter_mut())
        .zip(out.theta.iter_mut())
        .zip(out.vega.iter_mut());
    for ((i, (&sigma, &is_call)), ((((p, d), g), th), v)) in rows.zip(cols) {
        let c = contract_at(i, f, k, t, r);
        let x = black76(c.f, c.k, c.t, c.r, sigma, is_call);
        (*p, *d, *g, *th, *v) = (x.price, x.delta, x.gamma, x.theta, x.vega);
    }
    Ok(())
}

/// The normalised out-of-the-money price `b(s)` and its first two derivatives in `s`.
#[inline(always)]
fn otm_price(ax: f64, eh: f64, emh: f64, s: f64) -> (f64, f64, f64) {
    let u = ax / s;
    let d1 = -u + 0.5 * s;
    let d2 = -u - 0.5 * s;
    // exp(-h) N(d1) - exp(h) N(d2), h = |x|/2; phi(d2) = phi(d1) exp(-|x|), since
    // d2^2 - d1^2 = 2|x| (computed apart only where the product would underflow)
    let pdf1 = norm_pdf(d1);
    let pdf2 = pdf_pair(pdf1, emh * emh, d2);
    let b = emh * norm_cdf_with_pdf(d1, pdf1) - eh * norm_cdf_with_pdf(d2, pdf2);
    let db = emh * pdf1;
    let d2b = db * (u * u / s - 0.25 * s);
    (b, db, d2b)
}

/// A first guess of `s` for [`solve_s`]: the larger of two one-sided approximations.
///
/// Far out of the money `ln b ~ -x^2/(2 s^2) + 3 ln s - 2 ln|x| - ln sqrt(2 pi)` (the tail
/// expansion of N, with `exp(-h) pdf(d1) = exp(h) pdf(d2)`), solved for `s` by a few
/// fixed-point steps; it undershoots near the money. There `b ~ s / sqrt(2 pi)`, which
/// undershoots far out. Their maximum is within a few percent over most of the chain, so
/// two or three Halley steps finish.
#[inline]
fn initial_s(ax: f64, beta: f64, log_beta: f64) -> f64 {
    let mut s = (2.0 * PI).sqrt() * beta;
    if ax > 0.0 {
        let c = -log_beta - 2.0 * ax.ln() - 0.5 * (2.0 * PI).ln();
        if c > 0.0 {
            let mut tail = ax / (2.0 * c).sqrt();
            for _ in 0..1 {
                let denom = 2.0 * (c + 3.0 * tail.ln());
                if !(denom > 0.0) {
                    break;
                }
                tail = ax / denom.sqrt();
            }
            s = s.max(tail);
        }
    }
    s.clamp(1e-12, S_MAX)
}

/// Whether `s` gives back `beta`, to within what a 1e-9 relative change of `s` would move
/// it (far out of the money the price is computed to ~1e-9 while `s` is pinned tighter).
fn verified(ax: f64, eh: f64, emh: f64, beta: f64, s: f64) -> bool {
    let (b, db, _) = otm_price(ax, eh, emh, s);
    (b - beta).abs() <= 1e-9 * beta || (b - beta).abs() <= 1e-9 * s * db
}

/// One root search for `s = sigma sqrt(t)`: `b(s) = beta` for the normalised OTM price.
#[derive(Debug, Clone, Copy)]
struct Search {
    /// `|ln(f/k)|`, `exp(ax/2)`, `exp(-ax/2)`
    ax: f64,
    eh: f64,
    emh: f64,
    beta: f64,
    log_beta: f64,
    /// Far out of the money b(s) spans many orders of magnitude: solve for ln b, nearly
    /// linear in 1/s there. Near the money b is nearly linear in s, and the plain objective
    /// saves a logarithm per step.
    log_objective: bool,
    s: f64,
    lo: f64,
    hi: f64,
    /// The root (NaN: none) once the search is over.
    root: Option<f64>,
    steps: usize,
}

impl Search {
    fn new(ax: f64, eh: f64, beta: f64) -> Self {
        let log_beta = beta.ln();
        let s = initial_s(ax, beta, log_beta);
        Self {
            ax,
            eh,
            emh: 1.0 / eh,
            beta,
            log_beta,
            log_objective: ax > s,
            s,
            lo: 0.0,
            hi: S_MAX,
            root: None,
            steps: 0,
        }
    }

    /// One Halley step (inside a bracket that falls back to bisection); sets `root` when
    /// the search is over.
    #[inline(always)]
    fn step(&mut self) {
        self.steps += 1;
        let s = self.s;
        let (b, db, d2b) = otm_price(self.ax, self.eh, self.emh, s);
        if !(b > 0.0) {
            // below the representable range: the root is to the right
            self.lo = s;
            self.s = 0.5 * (s + self.hi);
            return;
        }
        // Halley on g(s) = ln b(s) - ln beta (g' = b'/b, g'' = b''/b - g'^2) or b(s) - beta.
        let (g, g1, g2) = if self.log_objective {
            let g1 = db / b;
            (b.ln() - self.log_beta, g1, d2b / b - g1 * g1)
        } else {
            (b - self.beta, db, d2b)
        };
        if g == 0.0 {
            self.root = Some(s);
            return;
        }
        if g > 0.0 {
            self.hi = s;
        } else {
            self.lo = s;
        }
        let denom = 2.0 * g1 * g1 - g * g2;
        let next = s - 2.0 * g * g1 / denom;
        let halley = denom > 0.0 && g1 > 0.0;
        if halley && (next - s).abs() <= HALLEY_DONE * s {
            // Halley's error cubes each step: after a step this small, `next` is exact to
            // rounding (it may sit on the bracket's edge by that rounding).
            self.root = Some(next);
            return;
        }
        let (lo, hi) = (self.lo, self.hi);
        self.s = if halley && next > lo && next < hi {
            next
        } else if lo > 0.0 && hi < 4.0 * lo {
            0.5 * (lo + hi)
        } else {
            // a bracket spanning orders of magnitude: halve it in log space
            (lo.max(1e-3 * hi) * hi).sqrt()
        };
        if hi - lo <= S_TOL * self.s {
            let ok = verified(self.ax, self.eh, self.emh, self.beta, self.s);
            self.root = Some(if ok { self.s } else { f64::NAN });
        }
    }
}

/// Where one option's volatility comes from: known without a search, or a search.
enum Start {
    Done(f64),
    Search(Search),
}

/// Bounds, parity and normalisation of one discounted price (see [`implied_vol`]).
#[inline]
fn start(price: f64, f: f64, k: f64, t: f64, r: f64, is_call: bool) -> Start {
    let df = (-r * t).exp();
    let p = price / df;
    let intrinsic = if is_call { f - k } else { k - f }.max(0.0);
    let upper = if is_call { f } else { k };
    if !(p > intrinsic && p < upper) {
        return Start::Done(f64::NAN);
    }
    // An in-the-money price minus its intrinsic value is the out-of-the-money twin's price
    // (put-call parity), so one function of s serves both.
    let q = p - intrinsic;
    if q <= TIME_VALUE_RESOLUTION * p {
        // The time value is lost in the rounding of the price: no volatility to find.
        return Start::Done(f64::NAN);
    }
    let beta = q / (f * k).sqrt();
    if !(beta > 0.0) {
        return Start::Done(f64::NAN);
    }
    // |x| = |ln(f/k)|, and exp(|x|/2) is the square root of the larger over the smaller.
    let ratio = f.max(k) / f.min(k);
    Start::Search(Search::new(ratio.ln(), ratio.sqrt(), beta))
}

/// Implied Black-76 volatility of one discounted option price; NaN when the price is NaN,
/// outside the no-arbitrage bounds (at or below the discounted intrinsic value, at or above
/// the discounted forward for a call or strike for a put), when its time value is lost in
/// the rounding of the price, or when no volatility reproduces it. Contract inputs are
/// assumed valid (see [`implied_vol_into`]).
pub fn implied_vol(price: f64, f: f64, k: f64, t: f64, r: f64, is_call: bool) -> f64 {
    match start(price, f, k, t, r, is_call) {
        Start::Done(v) => v,
        Start::Search(mut search) => {
            for _ in 0..MAX_ITER {
                search.step();
                if let Some(s) = search.root {
                    return s / t.sqrt();
                }
            }
            f64::NAN
        }
    }
}

/// How many searches run side by side: each step waits on `erfc`, `exp` and divisions of
/// the one before, so independent searches interleaved keep the core busy (1.3x here).
const LANES: usize = 8;

/// Implied volatility over a chain into `out` (see [`implied_vol`] for the NaN cases).
///
/// # Errors
/// Unequal lengths; a forward, strike or expiry not finite and > 0; a rate not finite.
pub fn implied_vol_into(
    price: &[f64],
    f: &[f64],
    k: &[f64],
    t: &[f64],
    r: &[f64],
    is_call: &[bool],
    out: &mut [f64],
) -> CoreResult<()> {
    let n = price.len();
    for len in [f.len(), k.len(), t.len(), r.len(), is_call.len(), out.len()] {
        check_len(n, len)?;
    }
    for i in 0..n {
        check_contract(i, contract_at(i, f, k, t, r))?;
    }
    // Searches in flight: (index into out, search).
    let mut lanes: Vec<(usize, Search)> = Vec::with_capacity(LANES);
    let mut next = 0;
    loop {
        // Fill the free lanes.
        while lanes.len() < LANES && next < n {
            let i = next;
            next += 1;
            let c = contract_at(i, f, k, t, r);
            let p = price.get(i).copied().unwrap_or(f64::NAN);
            let call = is_call.get(i).copied().unwrap_or(true);
            match start(p, c.f, c.k, c.t, c.r, call) {
                Start::Done(v) => {
                    if let Some(o) = out.get_mut(i) {
                        *o = v;
                    }
                }
                Start::Search(search) => lanes.push((i, search)),
            }
        }
        if lanes.is_empty() {
            return Ok(());
        }
        for (_, search) in &mut lanes {
            search.step();
        }
        // Retire finished (or exhausted) searches.
        let mut j = 0;
        while let Some(&(i, search)) = lanes.get(j) {
            match search
                .root
                .or((search.steps >= MAX_ITER).then_some(f64::NAN))
            {
                Some(s) => {
                    if let (Some(o), Some(&years)) = (out.get_mut(i), t.get(i)) {
                        *o = s / years.sqrt();
                    }
                    lanes.swap_remove(j);
                }
                None => j += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn textbook_values() {
        // vollib's doctest values: F=49, K=50, r=.05, t=.3846, sigma=.2
        let g = black76(49.0, 50.0, 0.3846, 0.05, 0.2, true);
        assert!((g.vega - 0.118_317_785_624).abs() < 1e-9);
        assert!((g.theta - -0.008_162_368_774_62).abs() < 1e-9);
        let p = black76(49.0, 50.0, 0.3846, 0.05, 0.2, false);
        assert!((p.theta - -0.008_027_991_553_12).abs() < 1e-9);
    }

    #[test]
    fn put_call_parity_and_greek_relations() {
        for &(f, k, t, r, s) in &[
            (100.0, 90.0, 0.5, 0.05, 0.3),
            (24_000.0, 25_000.0, 2.0 / 365.0, 0.065, 0.12),
            (10.0, 10.0, 3.0, 0.0, 0.8),
        ] {
            let c = black76(f, k, t, r, s, true);
            let p = black76(f, k, t, r, s, false);
            let df = f64::exp(-r * t);
            assert!(close(c.price - p.price, df * (f - k), 1e-12) || (f - k).abs() < 1e-12);
            assert!(close(c.delta - p.delta, df, 1e-12));
            assert!(close(c.gamma, p.gamma, 1e-12));
            assert!(close(c.vega, p.vega, 1e-12));
        }
    }

    #[test]
    fn implied_vol_round_trips() {
        for &f in &[100.0, 24_000.0] {
            for &m in &[0.5, 0.8, 0.95, 1.0, 1.05, 1.3, 2.0] {
                for &t in &[1.0 / 365.0, 7.0 / 365.0, 0.25, 2.0] {
                    for &sigma in &[0.05, 0.15, 0.4, 1.5] {
                        for &call in &[true, false] {
                            let k = f * m;
                            let price = black76(f, k, t, 0.06, sigma, call).price;
                            let iv = implied_vol(price, f, k, t, 0.06, call);
                            let intrinsic =
                                f64::exp(-0.06 * t) * if call { f - k } else { k - f }.max(0.0);
                            // A time value lost below the rounding of the price has no
                            // volatility to find: NaN is the right answer there.
                            if price - intrinsic > 1e-9 * price && price > 1e-250 {
                                assert!(
                                    close(iv, sigma, 1e-7),
                                    "f={f} k={k} t={t} sigma={sigma} call={call}: {iv}"
                                );
                            } else {
                                assert!(iv.is_nan() || close(iv, sigma, 1e-2), "f={f} k={k} t={t} sigma={sigma} call={call}: {iv} price={price} intrinsic={intrinsic}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn implied_vol_outside_bounds_is_nan() {
        let df = f64::exp(-0.05);
        assert!(implied_vol(f64::NAN, 100.0, 100.0, 1.0, 0.05, true).is_nan());
        assert!(implied_vol(0.0, 100.0, 110.0, 1.0, 0.05, true).is_nan());
        assert!(implied_vol(-1.0, 100.0, 110.0, 1.0, 0.05, true).is_nan());
        assert!(implied_vol(10.0 * df, 100.0, 90.0, 1.0, 0.05, true).is_nan()); // = intrinsic
        assert!(implied_vol(100.0 * df, 100.0, 90.0, 1.0, 0.05, true).is_nan()); // = forward
        assert!(implied_vol(90.0 * df, 100.0, 90.0, 1.0, 0.05, false).is_nan()); // = strike
        assert!(implied_vol(f64::INFINITY, 100.0, 90.0, 1.0, 0.05, false).is_nan());
    }

    #[test]
    fn batch_checks_inputs_before_writing() {
        let mut out = [7.0; 2];
        let err = implied_vol_into(
            &[1.0, 1.0],
            &[100.0, -1.0],
            &[100.0, 100.0],
            &[0.1, 0.1],
            &[0.0, 0.0],
            &[true, true],
            &mut out,
        );
        assert!(matches!(err, Err(CoreError::OutOfRange(_))));
        assert_eq!(out, [7.0; 2]);
    }
}
