//! Criterion benchmarks of the pure Rust core (no Python): batch EMA, crossovers,
//! resampling and bar building at 1e5 and 1e6 rows, per-tick state updates, and Black-76
//! greeks and implied volatility over a 200-strike chain.
//! Run with `cargo bench --bench core`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mental_trader_core::bars::{build_bars, BarBuilder, VolumeMode};
use mental_trader_core::cross::{crossovers_into, Cross};
use mental_trader_core::ema::{ema_into, Ema};
use mental_trader_core::engine::{Engine, EngineConfig};
use mental_trader_core::options::{black76, black76_into, implied_vol_into, GreekColumns};
use mental_trader_core::resample::resample_bars;
use mental_trader_core::session::{Session, SessionSpec};

/// 2026-11-23 09:15 IST in ns UTC.
const OPEN_NS: i64 = 1_795_405_500_000_000_000;
const DAY_NS: i64 = 86_400_000_000_000;
const SESSION_NS: i64 = 375 * 60_000_000_000;

/// A deterministic xorshift generator (no external crate needed for fixed-seed data).
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1_u64 << 53) as f64
    }
}

fn walk(n: usize) -> Vec<f64> {
    let mut rng = Rng(42);
    let mut p = 1000.0;
    (0..n)
        .map(|_| {
            p += rng.next_f64() - 0.5;
            p
        })
        .collect()
}

/// `n` in-session ticks spread over as many sessions as needed, `per_s` ticks per second.
fn ticks(n: usize, per_s: i64) -> (Vec<i64>, Vec<f64>, Vec<f64>) {
    let step = 1_000_000_000 / per_s;
    let per_day = SESSION_NS / step;
    let ts = (0..n as i64)
        .map(|i| OPEN_NS + (i / per_day) * DAY_NS + (i % per_day) * step)
        .collect();
    (ts, walk(n), vec![1.0; n])
}

fn session(tf: i64) -> Session {
    Session::try_new(&SessionSpec {
        timeframe_s: tf,
        session_start: Some("09:15".into()),
        session_end: Some("15:30".into()),
        utc_offset_minutes: 330,
    })
    .unwrap()
}

fn batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch");
    for n in [100_000_usize, 1_000_000] {
        g.throughput(Throughput::Elements(n as u64));
        let x = walk(n);
        let y = walk(n).iter().map(|v| v + 0.1).collect::<Vec<_>>();
        let mut out = vec![0.0; n];
        g.bench_with_input(BenchmarkId::new("ema", n), &x, |b, x| {
            b.iter(|| ema_into(black_box(x), 21, &mut out).unwrap());
        });
        let mut flags = vec![0_i8; n];
        g.bench_with_input(BenchmarkId::new("crosses", n), &x, |b, x| {
            b.iter(|| crossovers_into(black_box(x), &y, &mut flags).unwrap());
        });
        let (ts, px, q) = ticks(n, 10);
        let s1 = session(60);
        g.bench_with_input(BenchmarkId::new("build_bars", n), &ts, |b, ts| {
            b.iter(|| build_bars(black_box(ts), &px, &q, None, &s1, VolumeMode::Trade).unwrap());
        });
        let (ts, px, q) = ticks(n, 1);
        let minute = build_bars(&ts, &px, &q, None, &session(1), VolumeMode::Trade).unwrap();
        let s5 = session(300);
        g.bench_with_input(BenchmarkId::new("resample", n), &minute, |b, m| {
            b.iter(|| resample_bars(black_box(m), &s5).unwrap());
        });
    }
    g.finish();
}

fn tick(c: &mut Criterion) {
    let mut g = c.benchmark_group("tick");
    let x = walk(4096);
    g.bench_function("ema_update", |b| {
        let mut e = Ema::try_new(21).unwrap();
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            e.update(black_box(x[i])).unwrap()
        });
    });
    g.bench_function("cross_update", |b| {
        let mut cr = Cross::default();
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            cr.update(black_box(x[i]), 1000.0)
        });
    });
    let (ts, px, q) = ticks(1 << 16, 10);
    g.bench_function("bar_builder_update", |b| {
        let mut bb = BarBuilder::try_new(session(60), VolumeMode::Trade, 0).unwrap();
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 0xFFFF;
            if i == 0 {
                bb = BarBuilder::try_new(session(60), VolumeMode::Trade, 0).unwrap();
            }
            bb.on_tick(7, ts[i], px[i], q[i]).unwrap()
        });
    });
    g.bench_function("engine_on_tick", |b| {
        let cfg = EngineConfig {
            timeframe_s: 60,
            confirm_timeframe_s: 300,
            fast: 8,
            slow: 21,
            session_start: Some("09:15".into()),
            session_end: Some("15:30".into()),
            utc_offset_minutes: 330,
            volume_mode: VolumeMode::Trade,
            grace_ms: 1000,
        };
        let mut e = Engine::try_new(cfg.clone()).unwrap();
        let mut out = Vec::new();
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 0xFFFF;
            if i == 0 {
                e = Engine::try_new(cfg.clone()).unwrap();
            }
            out.clear();
            e.on_tick(7, ts[i], px[i], q[i], &mut out).unwrap();
        });
    });
    g.finish();
}

/// A NIFTY-like chain: 200 strikes 50 apart around a 24,000 forward, 5 days out, a smile.
#[allow(clippy::type_complexity)]
fn chain() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<bool>) {
    let n = 200;
    let f = vec![24_000.0; n];
    let k: Vec<f64> = (0..n).map(|i| 19_000.0 + 50.0 * i as f64).collect();
    let t = vec![5.0 / 365.0; n];
    let r = vec![0.065; n];
    let call: Vec<bool> = k.iter().map(|&k| k >= 24_000.0).collect();
    let sigma: Vec<f64> = k
        .iter()
        .map(|&k| 0.13 + 0.6 * (k / 24_000.0_f64).ln().powi(2))
        .collect();
    (f, k, t, r, sigma, call)
}

fn options(c: &mut Criterion) {
    let (f, k, t, r, sigma, call) = chain();
    let n = f.len();
    let price: Vec<f64> = (0..n)
        .map(|i| black76(f[i], k[i], t[i], r[i], sigma[i], call[i]).price)
        .collect();
    let mut g = c.benchmark_group("options_chain200");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("implied_vol", |b| {
        let mut out = vec![0.0; n];
        b.iter(|| implied_vol_into(black_box(&price), &f, &k, &t, &r, &call, &mut out).unwrap());
    });
    g.bench_function("black76", |b| {
        let mut cols: Vec<Vec<f64>> = (0..5).map(|_| vec![0.0; n]).collect();
        b.iter(|| {
            let [p, d, ga, th, v] = &mut cols[..] else {
                unreachable!()
            };
            black76_into(
                black_box(&f),
                &k,
                &t,
                &r,
                &sigma,
                &call,
                GreekColumns {
                    price: p,
                    delta: d,
                    gamma: ga,
                    theta: th,
                    vega: v,
                },
            )
            .unwrap();
        });
    });
    g.finish();
}

criterion_group!(benches, batch, tick, options);
criterion_main!(benches);
