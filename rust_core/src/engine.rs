//! The fused live path: one call per tick runs ticks -> primary bars -> confirm bars ->
//! fast/slow EMAs -> crossovers for every symbol (DESIGN.md section 2).
//!
//! Per symbol the engine holds a primary [`SymbolBars`], a confirm [`Resampler`], and a
//! fast/slow EMA pair with crossover state on each timeframe. Only closed bars drive the
//! EMAs. The batch twin [`Engine::on_ticks`] loops exactly the same per-tick code, and the
//! whole state can be snapshotted to bytes and restored to continue bit-identically.

use serde::{Deserialize, Serialize};

use crate::bars::{
    check_lengths, check_tick, is_valid_tick, Bar, Dropped, SymbolBars, SymbolIndex, TickOutcome,
    VolumeMode,
};
use crate::cross::Cross;
use crate::ema::{Ema, EmaState};
use crate::error::{CoreError, CoreResult};
use crate::resample::Resampler;
use crate::session::{check_ts, grace_ns, Session, SessionSpec};

/// Engine configuration, as given by the user (validated by [`Engine::try_new`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineConfig {
    pub timeframe_s: i64,
    pub confirm_timeframe_s: i64,
    pub fast: u64,
    pub slow: u64,
    pub session_start: Option<String>,
    pub session_end: Option<String>,
    pub utc_offset_minutes: i64,
    pub volume_mode: VolumeMode,
    pub grace_ms: i64,
}

/// A bar closed by the engine, with the EMAs and crossover it produced. Equality is exact
/// (undefined NaN EMAs compare equal).
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub bar: Bar,
    pub timeframe_s: i64,
    pub is_confirm: bool,
    /// NaN until warmed up.
    pub ema_fast: f64,
    /// NaN until warmed up.
    pub ema_slow: f64,
    pub cross: i8,
    /// When the bar closed: its bucket end (cut at the session close), ns UTC.
    pub end_ns: i64,
    /// The last confirm bar closed by `end_ns`, this event's own bar included: the trend
    /// a strategy filters a primary cross with. For a confirm event, that bar itself.
    pub confirm: Trend,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.bar == other.bar
            && self.timeframe_s == other.timeframe_s
            && self.is_confirm == other.is_confirm
            && self.ema_fast.to_bits() == other.ema_fast.to_bits()
            && self.ema_slow.to_bits() == other.ema_slow.to_bits()
            && self.cross == other.cross
            && self.end_ns == other.end_ns
            && self.confirm == other.confirm
    }
}

/// The EMAs of one timeframe as of its last closed bar. Equality is exact (NaN == NaN).
#[derive(Debug, Clone, Copy)]
pub struct Trend {
    /// `ts` of that bar; [`Trend::NO_BAR`] before the first.
    pub ts: i64,
    /// NaN until warmed up.
    pub fast: f64,
    /// NaN until warmed up.
    pub slow: f64,
}

impl Trend {
    /// `ts` of a timeframe that has closed no bar yet.
    pub const NO_BAR: i64 = i64::MIN;

    /// +1 when fast > slow, -1 when fast < slow, 0 when equal or undefined.
    pub fn sign(&self) -> i8 {
        if self.fast > self.slow {
            1
        } else if self.fast < self.slow {
            -1
        } else {
            0
        }
    }
}

impl PartialEq for Trend {
    fn eq(&self, other: &Self) -> bool {
        self.ts == other.ts
            && self.fast.to_bits() == other.fast.to_bits()
            && self.slow.to_bits() == other.slow.to_bits()
    }
}

/// Fast/slow EMAs and their crossover on one timeframe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Leg {
    fast: Ema,
    slow: Ema,
    cross: Cross,
    /// `ts` of the last bar through the EMAs ([`Trend::NO_BAR`] before the first).
    last_ts: i64,
}

impl Leg {
    fn new(fast: u64, slow: u64) -> CoreResult<Self> {
        Ok(Self {
            fast: Ema::try_new(fast)?,
            slow: Ema::try_new(slow)?,
            cross: Cross::default(),
            last_ts: Trend::NO_BAR,
        })
    }

    /// Replace both EMAs; the crossover continues from their values.
    fn restore(&mut self, fast: Ema, slow: Ema) -> CoreResult<()> {
        if (fast.period(), slow.period()) != (self.fast.period(), self.slow.period()) {
            return Err(CoreError::InvalidPeriod(format!(
                "EMA state periods ({}, {}) differ from the engine's ({}, {})",
                fast.period(),
                slow.period(),
                self.fast.period(),
                self.slow.period()
            )));
        }
        self.cross = Cross::primed(fast.value_or_nan(), slow.value_or_nan());
        self.fast = fast;
        self.slow = slow;
        Ok(())
    }

    /// Where the EMAs stand after the last bar.
    fn trend(&self) -> Trend {
        Trend {
            ts: self.last_ts,
            fast: self.fast.value_or_nan(),
            slow: self.slow.value_or_nan(),
        }
    }

    /// A closed bar through the EMAs. The event's `confirm` is this leg's own trend; the
    /// primary leg's caller replaces it with the confirm leg's.
    fn on_bar(
        &mut self,
        bar: Bar,
        end_ns: i64,
        timeframe_s: i64,
        is_confirm: bool,
    ) -> CoreResult<Event> {
        self.fast.update(bar.close)?;
        self.slow.update(bar.close)?;
        self.last_ts = bar.ts;
        let trend = self.trend();
        Ok(Event {
            bar,
            timeframe_s,
            is_confirm,
            ema_fast: trend.fast,
            ema_slow: trend.slow,
            cross: self.cross.update(trend.fast, trend.slow),
            end_ns,
            confirm: trend,
        })
    }
}

/// Everything the engine keeps for one symbol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SymbolEngine {
    bars: SymbolBars,
    confirm: Resampler,
    primary_leg: Leg,
    confirm_leg: Leg,
}

/// Sessions and settings shared by every symbol (derived from the config).
#[derive(Debug, Clone, Copy)]
struct Shared {
    primary: Session,
    confirm: Session,
    mode: VolumeMode,
    grace_ns: i64,
    timeframe_s: i64,
    confirm_timeframe_s: i64,
}

impl SymbolEngine {
    /// A primary bar closed: EMAs, then the confirm resampler. The primary event carries
    /// the confirm trend after the resampler, so a confirm bar closing with this bar counts.
    fn primary_closed(&mut self, sh: &Shared, bar: Bar, out: &mut Vec<Event>) -> CoreResult<()> {
        let end = end_ns(&sh.primary, &bar)?;
        let at = out.len();
        out.push(self.primary_leg.on_bar(bar, end, sh.timeframe_s, false)?);
        let pushed = self.confirm.push(&sh.confirm, &bar, end)?;
        for cb in [pushed.closed_before, pushed.closed_after] {
            self.confirm_closed(sh, cb, out)?;
        }
        if let Some(primary) = out.get_mut(at) {
            primary.confirm = self.confirm_leg.trend();
        }
        Ok(())
    }

    fn confirm_closed(
        &mut self,
        sh: &Shared,
        bar: Option<Bar>,
        out: &mut Vec<Event>,
    ) -> CoreResult<()> {
        if let Some(cb) = bar {
            let end = end_ns(&sh.confirm, &cb)?;
            out.push(
                self.confirm_leg
                    .on_bar(cb, end, sh.confirm_timeframe_s, true)?,
            );
        }
        Ok(())
    }
}

/// When a closed bar of `session`'s timeframe ends (its bucket end, cut at the close).
fn end_ns(session: &Session, bar: &Bar) -> CoreResult<i64> {
    session.bucket(bar.ts)?.map(|b| b.end_ns).ok_or_else(|| {
        CoreError::invalid(format!("internal: bar at {} outside the session", bar.ts))
    })
}

/// The fused multi-symbol engine.
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    shared: Shared,
    index: SymbolIndex,
    syms: Vec<SymbolEngine>,
    dropped: Dropped,
    /// `now - grace` of the latest `on_time`: buckets ending before it are closed.
    horizon_ns: i64,
}

/// Snapshot header: format name and version. postcard is positional, so bump the version
/// (and migrate or reject older ones explicitly) whenever ANY serialized struct changes:
/// `EngineConfig`, `SymbolEngine` and everything inside it (`SymbolBars`, `Resampler`, `Ema`,
/// `Cross`, `Bar`), `Dropped`. 001 was the first landed format; 002 added `Leg::last_ts`.
const SNAPSHOT_MAGIC: &[u8; 8] = b"MTENG002";

#[derive(Serialize, Deserialize)]
struct Snapshot {
    config: EngineConfig,
    syms: Vec<SymbolEngine>,
    dropped: Dropped,
    horizon_ns: i64,
}

impl Engine {
    /// Validate the configuration and build an empty engine.
    ///
    /// # Errors
    /// Bad timeframes (confirm not a multiple of primary), periods (need 1 <= fast < slow),
    /// session, or grace.
    pub fn try_new(config: EngineConfig) -> CoreResult<Self> {
        let spec = |tf| SessionSpec {
            timeframe_s: tf,
            session_start: config.session_start.clone(),
            session_end: config.session_end.clone(),
            utc_offset_minutes: config.utc_offset_minutes,
        };
        let primary = Session::try_new(&spec(config.timeframe_s))?;
        let confirm = Session::try_new(&spec(config.confirm_timeframe_s))?;
        if config.confirm_timeframe_s % config.timeframe_s != 0 {
            return Err(CoreError::invalid(format!(
                "confirm_timeframe_s ({}) must be a multiple of timeframe_s ({})",
                config.confirm_timeframe_s, config.timeframe_s
            )));
        }
        if config.fast < 1 || config.fast >= config.slow {
            return Err(CoreError::InvalidPeriod(format!(
                "need 1 <= fast < slow, got fast={} slow={}",
                config.fast, config.slow
            )));
        }
        Leg::new(config.fast, config.slow)?;
        let shared = Shared {
            primary,
            confirm,
            mode: config.volume_mode,
            grace_ns: grace_ns(config.grace_ms)?,
            timeframe_s: config.timeframe_s,
            confirm_timeframe_s: config.confirm_timeframe_s,
        };
        Ok(Self {
            config,
            shared,
            index: SymbolIndex::default(),
            syms: Vec::new(),
            dropped: Dropped::default(),
            horizon_ns: i64::MIN,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Dropped-tick counters.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// Symbols in order of first appearance.
    pub fn symbols(&self) -> Vec<i64> {
        self.syms.iter().map(|s| s.bars.symbol()).collect()
    }

    /// Consume one tick, appending the events of the bars it closed to `out`.
    ///
    /// # Errors
    /// Bad price, quantity or timestamp; the state is unchanged.
    #[inline]
    pub fn on_tick(
        &mut self,
        symbol: i64,
        ts_ns: i64,
        price: f64,
        qty: f64,
        out: &mut Vec<Event>,
    ) -> CoreResult<()> {
        // The common tick stays on this short path, small enough to inline into the Python
        // wrapper; everything else is out of line.
        if self.try_update(symbol, ts_ns, price, qty) {
            return Ok(());
        }
        self.on_tick_slow(symbol, ts_ns, price, qty, out)
    }

    /// The common tick: valid, of a known symbol, inside its open bucket. It updates that
    /// bar and returns true; anything else returns false and changes nothing (then
    /// [`Engine::on_tick`] handles it). Nothing closes on this path, so it has no events.
    #[inline(always)]
    pub fn try_update(&mut self, symbol: i64, ts_ns: i64, price: f64, qty: f64) -> bool {
        is_valid_tick(price, qty)
            && self
                .index
                .get(symbol)
                .and_then(|i| self.syms.get_mut(i))
                .is_some_and(|st| st.bars.try_update(self.shared.mode, ts_ns, price, qty))
    }

    #[inline(never)]
    fn on_tick_slow(
        &mut self,
        symbol: i64,
        ts_ns: i64,
        price: f64,
        qty: f64,
        out: &mut Vec<Event>,
    ) -> CoreResult<()> {
        check_tick(price, qty)?;
        check_ts(ts_ns)?;
        let (idx, is_new) = self.index.get_or_insert(symbol, self.syms.len());
        if is_new {
            let st = self.new_symbol(symbol)?;
            self.syms.push(st);
        }
        let sh = &self.shared;
        let st = self
            .syms
            .get_mut(idx)
            .ok_or_else(|| CoreError::invalid("internal: symbol index out of range"))?;
        // A primary bucket inside a confirm bucket already closed (by the clock or by flush)
        // is closed too: its ticks are late, so a closed confirm bar never changes.
        let horizon = self
            .horizon_ns
            .max(st.confirm.closed_end().saturating_add(1));
        match st
            .bars
            .on_tick(&sh.primary, sh.mode, ts_ns, price, qty, horizon)?
        {
            TickOutcome::Updated => Ok(()),
            outcome @ (TickOutcome::OutOfSession | TickOutcome::Late) => {
                self.dropped.count(&outcome);
                Ok(())
            }
            TickOutcome::Opened(closed) => {
                if let Some(bar) = closed {
                    st.primary_closed(sh, bar, out)?;
                }
                // A later primary bucket opened: a confirm bucket that ended by then is done.
                let cb = st.confirm.close_if_ended_by(st.bars.last_start());
                st.confirm_closed(sh, cb, out)
            }
        }
    }

    fn new_symbol(&self, symbol: i64) -> CoreResult<SymbolEngine> {
        Ok(SymbolEngine {
            bars: SymbolBars::new(symbol),
            confirm: Resampler::new(symbol),
            primary_leg: Leg::new(self.config.fast, self.config.slow)?,
            confirm_leg: Leg::new(self.config.fast, self.config.slow)?,
        })
    }

    fn symbol_mut(&mut self, symbol: i64) -> CoreResult<&mut SymbolEngine> {
        self.index
            .get(symbol)
            .and_then(|i| self.syms.get_mut(i))
            .ok_or_else(|| CoreError::invalid(format!("unknown symbol {symbol}")))
    }

    /// Warm a new symbol up from history: its closed primary bars, oldest first, run
    /// through the EMAs and the confirm resampler exactly as if they had closed live
    /// (their events are appended to `out`). Afterwards ticks in the last bar's bucket or
    /// earlier are late. In cumulative volume mode the day's cumulative volume continues
    /// from `day_volume` (the volume of that day's bars so far) when given; otherwise the
    /// first tick of that day only sets the baseline.
    ///
    /// # Errors
    /// The symbol already has state (ticks or a warm-up); a bar is not at a bucket start of
    /// the primary timeframe, not after the previous one, or has impossible prices or
    /// counts. Nothing changes on error.
    pub fn warm_up(
        &mut self,
        symbol: i64,
        bars: &[Bar],
        day_volume: Option<f64>,
        out: &mut Vec<Event>,
    ) -> CoreResult<()> {
        if self.index.get(symbol).is_some() {
            return Err(CoreError::invalid(format!(
                "symbol {symbol} already has state: warm up before its first tick"
            )));
        }
        if day_volume.is_some_and(|v| !(0.0..f64::INFINITY).contains(&v)) {
            return Err(CoreError::invalid(format!(
                "day_volume must be finite and >= 0, got {day_volume:?}"
            )));
        }
        let sh = self.shared;
        let mut last = None;
        for (i, bar) in bars.iter().enumerate() {
            check_ts(bar.ts)?;
            let bucket = sh.primary.bucket(bar.ts)?;
            let at_start = bucket.is_some_and(|b| b.start_ns == bar.ts);
            let after = last.is_none_or(|prev: crate::session::Bucket| bar.ts > prev.start_ns);
            if !at_start || !after || !bar.has_valid_prices() || !bar.has_valid_counts() {
                return Err(CoreError::invalid(format!(
                    "warm-up bar {i} (ts {}): not a closed {} s bar after the previous one",
                    bar.ts, sh.timeframe_s
                )));
            }
            last = bucket;
        }
        let mut st = self.new_symbol(symbol)?;
        let mut events = Vec::with_capacity(bars.len() + bars.len() / 2);
        for bar in bars {
            st.primary_closed(&sh, Bar { symbol, ..*bar }, &mut events)?;
        }
        if let Some(bucket) = last {
            st.bars.seed_closed(&bucket, day_volume);
        }
        let (idx, _) = self.index.get_or_insert(symbol, self.syms.len());
        debug_assert_eq!(idx, self.syms.len());
        self.syms.push(st);
        out.append(&mut events);
        Ok(())
    }

    /// Replace a symbol's EMAs on one timeframe with stored states (bit-identical
    /// continuation of a run that persisted them). The crossover continues from them.
    ///
    /// # Errors
    /// Unknown symbol, invalid state, or periods other than the engine's.
    pub fn restore_emas(
        &mut self,
        symbol: i64,
        confirm: bool,
        fast: EmaState,
        slow: EmaState,
    ) -> CoreResult<()> {
        let (fast, slow) = (Ema::from_state(fast)?, Ema::from_state(slow)?);
        let st = self.symbol_mut(symbol)?;
        let leg = if confirm {
            &mut st.confirm_leg
        } else {
            &mut st.primary_leg
        };
        leg.restore(fast, slow)
    }

    /// The (fast, slow) EMA states of a symbol on one timeframe, to persist with its bars.
    ///
    /// # Errors
    /// Unknown symbol.
    pub fn ema_states(&self, symbol: i64, confirm: bool) -> CoreResult<(EmaState, EmaState)> {
        let st = self
            .index
            .get(symbol)
            .and_then(|i| self.syms.get(i))
            .ok_or_else(|| CoreError::invalid(format!("unknown symbol {symbol}")))?;
        let leg = if confirm {
            &st.confirm_leg
        } else {
            &st.primary_leg
        };
        Ok((leg.fast.state(), leg.slow.state()))
    }

    /// Close the bars whose bucket ended more than `grace_ms` before `now_ns`.
    ///
    /// # Errors
    /// Only on an internal inconsistency (never for a valid engine).
    pub fn on_time(&mut self, now_ns: i64, out: &mut Vec<Event>) -> CoreResult<()> {
        let sh = &self.shared;
        self.horizon_ns = self.horizon_ns.max(now_ns.saturating_sub(sh.grace_ns));
        for st in &mut self.syms {
            if let Some(bar) = st.bars.close_if_due(now_ns, sh.grace_ns) {
                st.primary_closed(sh, bar, out)?;
            }
            let cb = st.confirm.close_if_due(now_ns, sh.grace_ns);
            st.confirm_closed(sh, cb, out)?;
        }
        Ok(())
    }

    /// Close every open primary and confirm bar.
    ///
    /// # Errors
    /// Only on an internal inconsistency (never for a valid engine).
    pub fn flush(&mut self, out: &mut Vec<Event>) -> CoreResult<()> {
        let sh = &self.shared;
        for st in &mut self.syms {
            if let Some(bar) = st.bars.close() {
                st.primary_closed(sh, bar, out)?;
            }
            let cb = st.confirm.close();
            st.confirm_closed(sh, cb, out)?;
        }
        Ok(())
    }

    /// Batch twin of [`Engine::on_tick`]: validates the whole batch first (so a bad input
    /// changes nothing), then runs every tick through the same code.
    ///
    /// # Errors
    /// Different lengths, or a bad tick (with its index).
    pub fn on_ticks(
        &mut self,
        ts_ns: &[i64],
        price: &[f64],
        qty: &[f64],
        symbol: Option<&[i64]>,
        flush: bool,
        out: &mut Vec<Event>,
    ) -> CoreResult<()> {
        check_lengths(ts_ns, price, qty, symbol)?;
        for (i, ((&t, &p), &q)) in ts_ns.iter().zip(price).zip(qty).enumerate() {
            check_tick(p, q)
                .and_then(|()| check_ts(t))
                .map_err(|e| CoreError::OutOfRange(format!("{e} (tick index {i})")))?;
        }
        match symbol {
            Some(symbol) => {
                for (((&t, &p), &q), &s) in ts_ns.iter().zip(price).zip(qty).zip(symbol) {
                    self.on_tick(s, t, p, q, out)?;
                }
            }
            None => {
                for ((&t, &p), &q) in ts_ns.iter().zip(price).zip(qty) {
                    self.on_tick(0, t, p, q, out)?;
                }
            }
        }
        if flush {
            self.flush(out)?;
        }
        Ok(())
    }

    /// The whole state as versioned bytes.
    ///
    /// # Errors
    /// Serialization failure (not expected).
    pub fn snapshot(&self) -> CoreResult<Vec<u8>> {
        let snap = Snapshot {
            config: self.config.clone(),
            syms: self.syms.clone(),
            dropped: self.dropped,
            horizon_ns: self.horizon_ns,
        };
        let mut bytes = SNAPSHOT_MAGIC.to_vec();
        let body = postcard::to_allocvec(&snap)
            .map_err(|e| CoreError::invalid(format!("snapshot failed: {e}")))?;
        bytes.extend_from_slice(&body);
        Ok(bytes)
    }

    /// Rebuild an engine from [`Engine::snapshot`] bytes.
    ///
    /// # Errors
    /// Wrong header or version, corrupt body, or a state inconsistent with its config.
    pub fn from_snapshot(data: &[u8]) -> CoreResult<Self> {
        if data.starts_with(b"MTENG001") {
            return Err(CoreError::invalid(
                "engine snapshot of format 001 (before the confirm trend was tracked): \
                 not readable by this version; rebuild the engine by warming it up from bars",
            ));
        }
        let body = data
            .strip_prefix(SNAPSHOT_MAGIC.as_slice())
            .ok_or_else(|| {
                CoreError::invalid("not an engine snapshot of this version (bad header)")
            })?;
        let (snap, rest): (Snapshot, &[u8]) = postcard::take_from_bytes(body)
            .map_err(|e| CoreError::invalid(format!("corrupt engine snapshot: {e}")))?;
        if !rest.is_empty() {
            return Err(CoreError::invalid(format!(
                "corrupt engine snapshot: {} unexpected trailing bytes",
                rest.len()
            )));
        }
        let mut engine = Self::try_new(snap.config)?;
        for st in snap.syms {
            let legs = [&st.primary_leg, &st.confirm_leg];
            if legs.iter().any(|l| {
                l.fast.period() != engine.config.fast || l.slow.period() != engine.config.slow
            }) {
                return Err(CoreError::invalid(
                    "corrupt engine snapshot: EMA periods differ from the config",
                ));
            }
            st.bars.validate(&engine.shared.primary)?;
            st.confirm.validate(&engine.shared.confirm)?;
            let symbol = st.bars.symbol();
            if st.confirm.symbol() != symbol {
                return Err(CoreError::invalid(
                    "corrupt engine snapshot: confirm state of another symbol",
                ));
            }
            let (_, is_new) = engine.index.get_or_insert(symbol, engine.syms.len());
            if !is_new {
                return Err(CoreError::invalid(format!(
                    "corrupt engine snapshot: symbol {symbol} appears twice"
                )));
            }
            engine.syms.push(st);
        }
        engine.dropped = snap.dropped;
        engine.horizon_ns = snap.horizon_ns;
        Ok(engine)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    use crate::testutil::ist;

    fn config() -> EngineConfig {
        EngineConfig {
            timeframe_s: 60,
            confirm_timeframe_s: 300,
            fast: 2,
            slow: 3,
            session_start: Some("09:15".into()),
            session_end: Some("15:30".into()),
            utc_offset_minutes: 330,
            volume_mode: VolumeMode::Trade,
            grace_ms: 1000,
        }
    }

    #[test]
    fn confirm_bar_closes_with_its_last_primary_bar() {
        let mut e = Engine::try_new(config()).unwrap();
        let mut out = Vec::new();
        for m in 15..20 {
            e.on_tick(1, ist(9, m, 0), 100.0 + m as f64, 1.0, &mut out)
                .unwrap();
        }
        assert_eq!(out.len(), 4); // 09:15..09:18 closed by the next tick
        out.clear();
        e.on_tick(1, ist(9, 20, 0), 200.0, 1.0, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert!(!out[0].is_confirm && out[0].bar.ts == ist(9, 19, 0));
        assert!(out[1].is_confirm && out[1].bar.ts == ist(9, 15, 0));
        assert_eq!(
            (out[1].bar.open, out[1].bar.close, out[1].bar.ticks),
            (115.0, 119.0, 5)
        );
        // Both close at 09:20, and the primary event already carries the confirm bar
        // closing with it: a strategy decides on the primary event alone.
        assert_eq!(
            (out[0].end_ns, out[1].end_ns),
            (ist(9, 20, 0), ist(9, 20, 0))
        );
        assert_eq!(out[0].confirm, out[1].confirm);
        assert_eq!(out[1].confirm.ts, ist(9, 15, 0));
    }

    #[test]
    fn primary_events_carry_the_last_closed_confirm_trend() {
        let mut e = Engine::try_new(config()).unwrap();
        let mut out = Vec::new();
        // closes 09:15..09:29 rising, then falling: fast 2 / slow 3 on 5m bars
        for m in 15..35 {
            let price = if m < 30 {
                100.0 + m as f64
            } else {
                200.0 - m as f64
            };
            e.on_tick(1, ist(9, m, 0), price, 1.0, &mut out).unwrap();
        }
        let primary: Vec<&Event> = out.iter().filter(|ev| !ev.is_confirm).collect();
        let confirm: Vec<&Event> = out.iter().filter(|ev| ev.is_confirm).collect();
        assert_eq!(confirm.len(), 3); // 09:15, 09:20, 09:25
        for ev in &primary {
            let last = confirm.iter().rev().find(|c| c.end_ns <= ev.end_ns);
            match last {
                Some(c) => {
                    assert_eq!(ev.confirm.ts, c.bar.ts);
                    assert_eq!(ev.confirm.fast.to_bits(), c.ema_fast.to_bits());
                    assert_eq!(ev.confirm.slow.to_bits(), c.ema_slow.to_bits());
                }
                None => assert_eq!(ev.confirm.ts, Trend::NO_BAR),
            }
        }
        // the third confirm bar warmed the slow EMA up: a rising trend
        assert!(confirm[1].confirm.sign() == 0 && confirm[2].confirm.sign() == 1);
        assert_eq!(primary.last().unwrap().confirm.sign(), 1);
    }

    #[test]
    fn end_ns_is_cut_at_the_session_close() {
        let cfg = EngineConfig {
            timeframe_s: 3600,
            confirm_timeframe_s: 7200,
            ..config()
        };
        let mut e = Engine::try_new(cfg).unwrap();
        let mut out = Vec::new();
        e.on_tick(1, ist(14, 20, 0), 100.0, 1.0, &mut out).unwrap();
        e.on_tick(1, ist(15, 20, 0), 101.0, 1.0, &mut out).unwrap();
        e.flush(&mut out).unwrap();
        let ends: Vec<(bool, i64, i64)> = out
            .iter()
            .map(|ev| (ev.is_confirm, ev.bar.ts, ev.end_ns))
            .collect();
        assert_eq!(
            ends,
            vec![
                (false, ist(14, 15, 0), ist(15, 15, 0)),
                (true, ist(13, 15, 0), ist(15, 15, 0)),
                (false, ist(15, 15, 0), ist(15, 30, 0)),
                (true, ist(15, 15, 0), ist(15, 30, 0)),
            ]
        );
    }

    #[test]
    fn confirm_closes_when_a_later_bucket_opens_after_a_gap() {
        let mut e = Engine::try_new(config()).unwrap();
        let mut out = Vec::new();
        e.on_tick(1, ist(9, 15, 0), 100.0, 1.0, &mut out).unwrap();
        e.on_tick(1, ist(9, 22, 0), 101.0, 1.0, &mut out).unwrap();
        let kinds: Vec<(bool, i64)> = out.iter().map(|ev| (ev.is_confirm, ev.bar.ts)).collect();
        assert_eq!(kinds, vec![(false, ist(9, 15, 0)), (true, ist(9, 15, 0))]);
    }

    #[test]
    fn emas_and_cross_on_primary_closes() {
        let mut e = Engine::try_new(config()).unwrap();
        let mut out = Vec::new();
        let closes = [10.0, 9.0, 8.0, 12.0, 13.0];
        for (i, c) in closes.iter().enumerate() {
            e.on_tick(1, ist(9, 15 + i as i64, 0), *c, 1.0, &mut out)
                .unwrap();
        }
        e.flush(&mut out).unwrap();
        let prim: Vec<&Event> = out.iter().filter(|ev| !ev.is_confirm).collect();
        assert!(prim[0].ema_fast.is_nan() && prim[1].ema_fast == 9.5);
        assert!(prim[2].ema_slow == 9.0);
        // fast: 9.5, 8.5, 10.8333.., slow: 9.0, 10.5 → fast crosses above slow at i=3.
        assert_eq!(
            prim.iter().map(|ev| ev.cross).collect::<Vec<_>>(),
            vec![0, 0, 0, 1, 0]
        );
    }

    #[test]
    fn snapshot_roundtrip_and_garbage() {
        let mut e = Engine::try_new(config()).unwrap();
        let mut out = Vec::new();
        e.on_tick(3, ist(9, 15, 0), 100.0, 1.0, &mut out).unwrap();
        let bytes = e.snapshot().unwrap();
        let mut r = Engine::from_snapshot(&bytes).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        e.on_tick(3, ist(9, 16, 0), 101.0, 1.0, &mut a).unwrap();
        r.on_tick(3, ist(9, 16, 0), 101.0, 1.0, &mut b).unwrap();
        assert_eq!(a, b);
        assert!(Engine::from_snapshot(b"junk").is_err());
        assert!(Engine::from_snapshot(&bytes[..bytes.len() - 3]).is_err());
        let mut old = bytes.clone();
        old[..8].copy_from_slice(b"MTENG001");
        let err = Engine::from_snapshot(&old).unwrap_err().to_string();
        assert!(err.contains("format 001"), "{err}");
        for cut in 0..bytes.len() {
            let _ = Engine::from_snapshot(&bytes[..cut]);
        }
    }

    #[test]
    fn tick_in_a_bucket_the_clock_closed_is_late() {
        let mut c = config();
        c.grace_ms = 0;
        let mut e = Engine::try_new(c).unwrap();
        let mut out = Vec::new();
        e.on_tick(0, ist(9, 15, 10), 10.0, 1.0, &mut out).unwrap();
        e.on_time(ist(9, 21, 0), &mut out).unwrap();
        assert_eq!(out.len(), 2); // 09:15 primary + 09:15-09:20 confirm
        out.clear();
        e.on_tick(0, ist(9, 17, 10), 11.0, 1.0, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(e.dropped().late, 1);
        e.on_tick(0, ist(9, 21, 10), 12.0, 1.0, &mut out).unwrap();
        e.flush(&mut out).unwrap();
        assert_eq!(out.len(), 2); // 09:21 primary + 09:20-09:25 confirm
    }

    #[test]
    fn ticks_after_flush_in_the_same_confirm_bucket_are_late() {
        let mut e = Engine::try_new(config()).unwrap();
        let mut out = Vec::new();
        e.on_tick(1, ist(9, 15, 0), 10.0, 1.0, &mut out).unwrap();
        e.flush(&mut out).unwrap();
        assert_eq!(out.len(), 2);
        out.clear();
        for m in 16..19 {
            e.on_tick(1, ist(9, m, 0), 11.0, 1.0, &mut out).unwrap();
        }
        assert!(out.is_empty());
        assert_eq!(e.dropped().late, 3);
        e.on_tick(1, ist(9, 20, 0), 12.0, 1.0, &mut out).unwrap();
        e.flush(&mut out).unwrap();
        let kinds: Vec<(bool, i64)> = out.iter().map(|ev| (ev.is_confirm, ev.bar.ts)).collect();
        assert_eq!(kinds, vec![(false, ist(9, 20, 0)), (true, ist(9, 20, 0))]);
    }

    #[test]
    fn bad_configs() {
        let mut c = config();
        c.confirm_timeframe_s = 90;
        assert!(Engine::try_new(c).is_err());
        let mut c = config();
        c.fast = 3;
        assert!(Engine::try_new(c).is_err());
        let mut c = config();
        c.grace_ms = -1;
        assert!(Engine::try_new(c).is_err());
    }
}
