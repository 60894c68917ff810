//! Ticks -> session-anchored time bars.
//!
//! Rules (DESIGN.md section 3), kept by one per-symbol state machine, [`SymbolBars`], which
//! both the streaming [`BarBuilder`] and the batch [`build_bars`] loop:
//! - a bar is stamped with its bucket start; buckets come from [`Session`];
//! - out-of-session ticks are dropped and counted; no bar is made for an empty bucket;
//! - open/close are the first/last tick by arrival; ticks within the open bucket may arrive
//!   out of order;
//! - a tick whose bucket is older than (or equal to an already closed) bucket of its symbol is
//!   late: dropped and counted, it never changes a closed bar; so is a tick whose bucket the
//!   clock already closed (`on_time` passed its end plus the grace), even if it had no bar;
//! - a dropped tick changes nothing (closes no bar, leaves the cumulative baseline alone);
//! - volume `trade`: sum of quantities; `cumulative`: sum of increments of the day's
//!   cumulative volume, the baseline being 0 at the start of each local day and a decrease
//!   starting over from 0.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::session::{check_ts, Bucket, Session};

/// One OHLCV bar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub symbol: i64,
    /// Bucket start, ns UTC.
    pub ts: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub ticks: i64,
}

impl Bar {
    /// A placeholder for a symbol's state before its first bar (never emitted).
    pub fn empty(symbol: i64) -> Self {
        Self {
            symbol,
            ts: 0,
            open: f64::NAN,
            high: f64::NAN,
            low: f64::NAN,
            close: f64::NAN,
            volume: 0.0,
            ticks: 0,
        }
    }
}

impl Bar {
    /// Prices finite and > 0, with low <= high.
    pub fn has_valid_prices(&self) -> bool {
        [self.open, self.high, self.low, self.close]
            .iter()
            .all(|&p| p > 0.0 && p < f64::INFINITY)
            && self.low <= self.high
    }

    /// Volume finite and >= 0, ticks >= 0.
    pub fn has_valid_counts(&self) -> bool {
        (0.0..f64::INFINITY).contains(&self.volume) && self.ticks >= 0
    }
}

/// Bars as columns, the shape the batch functions return.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BarTable {
    pub ts: Vec<i64>,
    pub symbol: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
    pub ticks: Vec<i64>,
}

impl BarTable {
    /// Empty columns with room for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            ts: Vec::with_capacity(n),
            symbol: Vec::with_capacity(n),
            open: Vec::with_capacity(n),
            high: Vec::with_capacity(n),
            low: Vec::with_capacity(n),
            close: Vec::with_capacity(n),
            volume: Vec::with_capacity(n),
            ticks: Vec::with_capacity(n),
        }
    }

    /// Append one row.
    #[inline]
    pub fn push(&mut self, b: &Bar) {
        self.ts.push(b.ts);
        self.symbol.push(b.symbol);
        self.open.push(b.open);
        self.high.push(b.high);
        self.low.push(b.low);
        self.close.push(b.close);
        self.volume.push(b.volume);
        self.ticks.push(b.ticks);
    }

    /// Split bars into columns in one pass.
    pub fn from_bars(bars: &[Bar]) -> Self {
        let mut t = Self::with_capacity(bars.len());
        for b in bars {
            t.push(b);
        }
        t
    }
}

/// How a tick's quantity is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeMode {
    /// Each tick carries its traded quantity.
    Trade,
    /// Each tick carries the day's cumulative volume (Kite's `volume_traded`).
    Cumulative,
}

impl VolumeMode {
    /// Parse "trade" or "cumulative".
    ///
    /// # Errors
    /// Any other string.
    pub fn parse(text: &str) -> CoreResult<Self> {
        match text {
            "trade" => Ok(Self::Trade),
            "cumulative" => Ok(Self::Cumulative),
            other => Err(CoreError::invalid(format!(
                "volume_mode must be \"trade\" or \"cumulative\", got {other:?}"
            ))),
        }
    }
}

/// Bits of the largest finite f64.
const MAX_FINITE_BITS: u64 = 0x7FEF_FFFF_FFFF_FFFF;

/// True when price is finite and > 0 and qty is finite and >= 0 (+0.0; a -0.0 quantity takes
/// the slow path, where [`check_tick`] accepts it). Two integer compares, no float branches.
#[inline(always)]
pub fn is_valid_tick(price: f64, qty: f64) -> bool {
    (price.to_bits().wrapping_sub(1) < MAX_FINITE_BITS) & (qty.to_bits() <= MAX_FINITE_BITS)
}

/// Check one tick's price and quantity.
///
/// # Errors
/// Price not finite and > 0; quantity negative or not finite.
#[inline(always)]
pub fn check_tick(price: f64, qty: f64) -> CoreResult<()> {
    if !(price > 0.0 && price < f64::INFINITY) {
        return Err(CoreError::OutOfRange(format!(
            "price must be finite and > 0, got {price}"
        )));
    }
    if !(0.0..f64::INFINITY).contains(&qty) {
        return Err(CoreError::OutOfRange(format!(
            "qty must be finite and >= 0, got {qty}"
        )));
    }
    Ok(())
}

/// What a tick did to its symbol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TickOutcome {
    /// Added to the open bar.
    Updated,
    /// Opened a new bar, closing the previous open one if there was one.
    Opened(Option<Bar>),
    /// Dropped: outside the session.
    OutOfSession,
    /// Dropped: older than the symbol's open or last closed bucket.
    Late,
}

/// The per-symbol bar state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolBars {
    bar: Bar,
    is_open: bool,
    /// Open bucket [start, end) in ns UTC; empty (MAX, MIN) when no bar is open, so the fast
    /// path's range test fails.
    open_start: i64,
    open_end: i64,
    /// Start and end of the open or last closed bucket (i64::MIN before the first tick).
    last_start: i64,
    last_end: i64,
    /// Where the day of the last bucket stops (see [`Bucket::close_ns`]).
    last_close: i64,
    /// Local day of `last_start`, and the last cumulative volume seen that day (NaN: not
    /// known, after a warm-up from history; the next tick of that day sets it).
    cum_day: i64,
    cum_last: f64,
}

impl SymbolBars {
    /// Empty state for `symbol`.
    pub fn new(symbol: i64) -> Self {
        Self {
            bar: Bar::empty(symbol),
            is_open: false,
            open_start: i64::MAX,
            open_end: i64::MIN,
            last_start: i64::MIN,
            last_end: i64::MIN,
            last_close: i64::MIN,
            cum_day: i64::MIN,
            cum_last: 0.0,
        }
    }

    /// State after a warm-up from history: `bucket` is closed (its ticks and older ones are
    /// late from now on) and no bar is open. The day's cumulative volume is unknown, so the
    /// first tick of that day only sets the baseline (adds 0 volume) instead of counting the
    /// whole day's volume into one bar.
    ///
    /// `day_volume`, when known (the volume of all of that day's bars so far), is the
    /// baseline instead: the first tick then counts exactly its increment.
    pub fn seed_closed(&mut self, bucket: &Bucket, day_volume: Option<f64>) {
        self.close();
        self.last_start = bucket.start_ns;
        self.last_end = bucket.end_ns;
        self.last_close = bucket.close_ns;
        self.cum_day = bucket.day;
        self.cum_last = day_volume.unwrap_or(f64::NAN);
    }

    /// The symbol id.
    pub fn symbol(&self) -> i64 {
        self.bar.symbol
    }

    /// The open bar, if any.
    pub fn current(&self) -> Option<Bar> {
        self.is_open.then_some(self.bar)
    }

    /// Start of the open or last closed bucket.
    pub fn last_start(&self) -> i64 {
        self.last_start
    }

    #[inline(always)]
    fn volume_of(&mut self, mode: VolumeMode, qty: f64) -> f64 {
        match mode {
            VolumeMode::Trade => qty,
            VolumeMode::Cumulative => {
                let inc = if qty < self.cum_last {
                    qty
                } else {
                    qty - self.cum_last
                };
                self.cum_last = qty;
                inc
            }
        }
    }

    /// The common case of [`SymbolBars::on_tick`]: a tick inside the open bucket updates the
    /// bar and returns true; anything else returns false and changes nothing.
    #[inline(always)]
    pub fn try_update(&mut self, mode: VolumeMode, ts_ns: i64, price: f64, qty: f64) -> bool {
        if ts_ns >= self.open_start && ts_ns < self.open_end {
            let vol = self.volume_of(mode, qty);
            let bar = &mut self.bar;
            bar.high = bar.high.max(price);
            bar.low = bar.low.min(price);
            bar.close = price;
            bar.volume += vol;
            bar.ticks = bar.ticks.saturating_add(1);
            return true;
        }
        false
    }

    /// Consume one tick whose price and quantity were already checked. Buckets ending before
    /// `horizon_ns` were closed by the clock: their ticks are late.
    ///
    /// # Errors
    /// Timestamp out of range (nothing changed).
    #[inline(always)]
    pub fn on_tick(
        &mut self,
        session: &Session,
        mode: VolumeMode,
        ts_ns: i64,
        price: f64,
        qty: f64,
        horizon_ns: i64,
    ) -> CoreResult<TickOutcome> {
        if self.try_update(mode, ts_ns, price, qty) {
            return Ok(TickOutcome::Updated);
        }
        self.on_tick_slow(session, mode, ts_ns, price, qty, horizon_ns)
    }

    #[inline(never)]
    fn on_tick_slow(
        &mut self,
        session: &Session,
        mode: VolumeMode,
        ts_ns: i64,
        price: f64,
        qty: f64,
        horizon_ns: i64,
    ) -> CoreResult<TickOutcome> {
        let prev = Bucket {
            start_ns: self.last_start,
            end_ns: self.last_end,
            day: self.cum_day,
            close_ns: self.last_close,
        };
        let found = match session.next_bucket(&prev, ts_ns) {
            Some(next) => Some(next),
            None => session.bucket(ts_ns)?,
        };
        let Some(bucket) = found else {
            return Ok(TickOutcome::OutOfSession);
        };
        if bucket.start_ns <= self.last_start || bucket.end_ns < horizon_ns {
            return Ok(TickOutcome::Late);
        }
        let closed = self.close();
        if bucket.day != self.cum_day {
            self.cum_day = bucket.day;
            self.cum_last = 0.0;
        } else if self.cum_last.is_nan() {
            // First tick after a warm-up, same day: it sets the baseline (see seed_closed).
            self.cum_last = if mode == VolumeMode::Cumulative {
                qty
            } else {
                0.0
            };
        }
        let vol = self.volume_of(mode, qty);
        self.bar = Bar {
            symbol: self.bar.symbol,
            ts: bucket.start_ns,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: vol,
            ticks: 1,
        };
        self.is_open = true;
        self.open_start = bucket.start_ns;
        self.open_end = bucket.end_ns;
        self.last_start = bucket.start_ns;
        self.last_end = bucket.end_ns;
        self.last_close = bucket.close_ns;
        Ok(TickOutcome::Opened(closed))
    }

    /// Batch fast path: absorb the longest prefix of ticks that fall in the open bucket and
    /// are valid, exactly as [`SymbolBars::on_tick`] would, with the bar held in registers.
    /// Returns how many ticks were consumed; the caller runs the next one (a new bucket, a
    /// drop or an error) through `on_tick`.
    #[inline]
    pub fn absorb_run(
        &mut self,
        mode: VolumeMode,
        ts_ns: &[i64],
        price: &[f64],
        qty: &[f64],
    ) -> usize {
        match mode {
            VolumeMode::Trade => self.absorb_run_with::<false>(ts_ns, price, qty),
            VolumeMode::Cumulative => self.absorb_run_with::<true>(ts_ns, price, qty),
        }
    }

    #[inline(always)]
    fn absorb_run_with<const CUMULATIVE: bool>(
        &mut self,
        ts_ns: &[i64],
        price: &[f64],
        qty: &[f64],
    ) -> usize {
        let (start, end) = (self.open_start, self.open_end);
        let b = self.bar;
        let (mut high, mut low, mut close, mut volume) = (b.high, b.low, b.close, b.volume);
        let mut cum_last = self.cum_last;
        let mut consumed = 0_usize;
        for ((&t, &p), &q) in ts_ns.iter().zip(price).zip(qty) {
            if !(t >= start && t < end && is_valid_tick(p, q)) {
                break;
            }
            // p is finite here, so plain comparisons match f64::max/min exactly.
            if p > high {
                high = p;
            }
            if p < low {
                low = p;
            }
            close = p;
            if CUMULATIVE {
                volume += if q < cum_last { q } else { q - cum_last };
                cum_last = q;
            } else {
                volume += q;
            }
            consumed += 1;
        }
        let bar = &mut self.bar;
        bar.high = high;
        bar.low = low;
        bar.close = close;
        bar.volume = volume;
        bar.ticks = bar.ticks.saturating_add(consumed as i64);
        self.cum_last = cum_last;
        consumed
    }

    /// Check the invariants of a state restored from a snapshot against `session`.
    ///
    /// # Errors
    /// The state could not have been produced by this session's ticks.
    pub fn validate(&self, session: &Session) -> CoreResult<()> {
        let bad = |what: &str| {
            Err(CoreError::invalid(format!(
                "corrupt engine snapshot: symbol {}: {what}",
                self.bar.symbol
            )))
        };
        if self.last_start != i64::MIN {
            let Some(b) = session.bucket(self.last_start)? else {
                return bad("last bucket outside the session");
            };
            let expected = (
                self.last_start,
                self.last_end,
                self.last_close,
                self.cum_day,
            );
            if (b.start_ns, b.end_ns, b.close_ns, b.day) != expected {
                return bad("last bucket is not a bucket of the session");
            }
        } else if self.is_open || self.last_end != i64::MIN || self.last_close != i64::MIN {
            return bad("bucket fields without a first bucket");
        }
        // NaN (baseline unknown) only exists between a warm-up and the first tick after it.
        let warm = self.cum_last.is_nan() && !self.is_open;
        if !(warm || (0.0..f64::INFINITY).contains(&self.cum_last)) {
            return bad("cumulative volume out of range");
        }
        if self.is_open {
            let b = &self.bar;
            // A tick-built bar also has open and close inside [low, high] and a tick.
            let prices_ok = b.has_valid_prices()
                && b.low <= b.open.min(b.close)
                && b.high >= b.open.max(b.close);
            if (self.open_start, self.open_end) != (self.last_start, self.last_end)
                || b.ts != self.open_start
                || !prices_ok
                || !b.has_valid_counts()
                || b.ticks < 1
            {
                return bad("inconsistent open bar");
            }
        } else if (self.open_start, self.open_end) != (i64::MAX, i64::MIN) {
            return bad("open range without an open bar");
        }
        Ok(())
    }

    /// Close the open bar, if any, and return it.
    pub fn close(&mut self) -> Option<Bar> {
        if !self.is_open {
            return None;
        }
        self.is_open = false;
        self.open_start = i64::MAX;
        self.open_end = i64::MIN;
        Some(self.bar)
    }

    /// Close the open bar if its bucket ended more than `grace_ns` before `now_ns`.
    pub fn close_if_due(&mut self, now_ns: i64, grace_ns: i64) -> Option<Bar> {
        if self.is_open && self.open_end.saturating_add(grace_ns) < now_ns {
            self.close()
        } else {
            None
        }
    }
}

/// Counters of dropped ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    pub out_of_session: u64,
    pub late: u64,
}

impl Dropped {
    /// Count a tick outcome.
    #[inline(always)]
    pub fn count(&mut self, outcome: &TickOutcome) {
        match outcome {
            TickOutcome::OutOfSession => {
                self.out_of_session = self.out_of_session.saturating_add(1);
            }
            TickOutcome::Late => {
                self.late = self.late.saturating_add(1);
            }
            TickOutcome::Updated | TickOutcome::Opened(_) => {}
        }
    }
}

/// Symbol ids below this use a direct table (`DIRECT_LIMIT` u32 slots at most, 256 KiB);
/// larger or negative ids (raw exchange tokens) go through a hash map.
const DIRECT_LIMIT: usize = 1 << 16;
const ABSENT: u32 = u32::MAX;

/// Maps symbol ids to dense indices. Small non-negative ids (the service maps instruments
/// to 0..N) are a single table load; any other id is a hash lookup.
#[derive(Debug, Clone, Default)]
pub struct SymbolIndex {
    direct: Vec<u32>,
    map: FxHashMap<i64, usize>,
}

impl SymbolIndex {
    /// Index of `symbol`, and whether it is new (then it gets `next`).
    #[inline(always)]
    pub fn get_or_insert(&mut self, symbol: i64, next: usize) -> (usize, bool) {
        if let Some(idx) = self.get(symbol) {
            return (idx, false);
        }
        match usize::try_from(symbol) {
            Ok(slot) if slot < DIRECT_LIMIT && next < ABSENT as usize => {
                if slot >= self.direct.len() {
                    self.direct
                        .resize((slot + 1).next_power_of_two().min(DIRECT_LIMIT), ABSENT);
                }
                if let Some(cell) = self.direct.get_mut(slot) {
                    *cell = next as u32;
                }
            }
            _ => {
                self.map.insert(symbol, next);
            }
        }
        (next, true)
    }

    /// Index of an existing symbol.
    #[inline(always)]
    pub fn get(&self, symbol: i64) -> Option<usize> {
        match usize::try_from(symbol) {
            Ok(slot) if slot < DIRECT_LIMIT => match self.direct.get(slot) {
                Some(&idx) if idx != ABSENT => Some(idx as usize),
                _ => None,
            },
            _ => self.map.get(&symbol).copied(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod index_tests {
    use super::SymbolIndex;

    #[test]
    fn small_large_and_negative_ids() {
        let mut ix = SymbolIndex::default();
        for (n, sym) in [5_i64, 738_561, -3, 0, 65_535, 65_536]
            .into_iter()
            .enumerate()
        {
            assert_eq!(ix.get_or_insert(sym, n), (n, true));
        }
        for (n, sym) in [5_i64, 738_561, -3, 0, 65_535, 65_536]
            .into_iter()
            .enumerate()
        {
            assert_eq!(ix.get(sym), Some(n));
            assert_eq!(ix.get_or_insert(sym, 99), (n, false));
        }
        assert_eq!(ix.get(6), None);
        assert_eq!(ix.get(i64::MIN), None);
    }
}

/// Streaming bars for many symbols.
#[derive(Debug, Clone)]
pub struct BarBuilder {
    session: Session,
    mode: VolumeMode,
    grace_ns: i64,
    index: SymbolIndex,
    states: Vec<SymbolBars>,
    dropped: Dropped,
    /// `now - grace` of the latest `on_time`: buckets ending before it are closed.
    horizon_ns: i64,
}

impl BarBuilder {
    /// A builder with no symbols yet.
    ///
    /// # Errors
    /// Negative grace.
    pub fn try_new(session: Session, mode: VolumeMode, grace_ns: i64) -> CoreResult<Self> {
        if grace_ns < 0 {
            return Err(CoreError::OutOfRange(format!(
                "grace must be >= 0, got {grace_ns} ns"
            )));
        }
        Ok(Self {
            session,
            mode,
            grace_ns,
            index: SymbolIndex::default(),
            states: Vec::new(),
            dropped: Dropped::default(),
            horizon_ns: i64::MIN,
        })
    }

    /// Dropped-tick counters.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// Consume one tick; return the bar it closed, if any.
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
    ) -> CoreResult<Option<Bar>> {
        // The common tick (valid, known symbol, inside its open bucket) stays on this short
        // path; everything else is out of line.
        if is_valid_tick(price, qty) {
            if let Some(st) = self.index.get(symbol).and_then(|k| self.states.get_mut(k)) {
                if st.try_update(self.mode, ts_ns, price, qty) {
                    return Ok(None);
                }
            }
        }
        self.on_tick_slow(symbol, ts_ns, price, qty)
    }

    #[inline(never)]
    fn on_tick_slow(
        &mut self,
        symbol: i64,
        ts_ns: i64,
        price: f64,
        qty: f64,
    ) -> CoreResult<Option<Bar>> {
        check_tick(price, qty)?;
        check_ts(ts_ns)?;
        let (idx, is_new) = self.index.get_or_insert(symbol, self.states.len());
        if is_new {
            self.states.push(SymbolBars::new(symbol));
        }
        let state = self
            .states
            .get_mut(idx)
            .ok_or_else(|| CoreError::invalid("internal: symbol index out of range"))?;
        let outcome =
            state.on_tick(&self.session, self.mode, ts_ns, price, qty, self.horizon_ns)?;
        self.dropped.count(&outcome);
        Ok(match outcome {
            TickOutcome::Opened(closed) => closed,
            _ => None,
        })
    }

    /// Close the bars whose bucket ended more than the grace before `now_ns`.
    pub fn on_time(&mut self, now_ns: i64) -> Vec<Bar> {
        let grace = self.grace_ns;
        self.horizon_ns = self.horizon_ns.max(now_ns.saturating_sub(grace));
        let mut out: Vec<Bar> = self
            .states
            .iter_mut()
            .filter_map(|s| s.close_if_due(now_ns, grace))
            .collect();
        sort_bars(&mut out);
        out
    }

    /// Close every open bar.
    pub fn flush(&mut self) -> Vec<Bar> {
        let mut out: Vec<Bar> = self
            .states
            .iter_mut()
            .filter_map(SymbolBars::close)
            .collect();
        sort_bars(&mut out);
        out
    }

    /// The open bar of `symbol`, if any.
    pub fn current(&self, symbol: i64) -> Option<Bar> {
        let idx = self.index.get(symbol)?;
        self.states.get(idx)?.current()
    }
}

/// Order bars by (ts, symbol).
pub fn sort_bars(bars: &mut [Bar]) {
    bars.sort_unstable_by_key(|b| (b.ts, b.symbol));
}

/// Closed bars of a batch run, before their final (ts, symbol) order is materialised.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchBars {
    /// Already in (ts, symbol) order.
    Ordered(Vec<Bar>),
    /// One ts-ordered sequence per symbol.
    PerSymbol(Vec<Vec<Bar>>),
}

impl BatchBars {
    /// The bars in (ts, symbol) order.
    pub fn into_vec(self) -> Vec<Bar> {
        match self {
            Self::Ordered(bars) => bars,
            Self::PerSymbol(lists) => {
                let mut out = Vec::new();
                merge_by_symbol(lists, |b| out.push(*b));
                out
            }
        }
    }

    /// The bars in (ts, symbol) order, as columns (no intermediate row vector).
    pub fn into_table(self) -> BarTable {
        match self {
            Self::Ordered(bars) => BarTable::from_bars(&bars),
            Self::PerSymbol(lists) => {
                let total = lists.iter().map(Vec::len).sum();
                let mut table = BarTable::with_capacity(total);
                merge_by_symbol(lists, |b| table.push(b));
                table
            }
        }
    }
}

/// Visit per-symbol bar sequences (each already in ts order) in (ts, symbol) order.
///
/// Sorting 64-byte bars moves a lot of memory, so the merge sorts 16-byte keys instead:
/// (ts, rank of the symbol, position) packed in a u128 whose order is the wanted order.
/// Built list by list, the keys form one ascending run per symbol, which the stable sort
/// detects and merges (O(n log k) for k symbols); each bar is then visited once.
pub fn merge_by_symbol(mut per_symbol: Vec<Vec<Bar>>, mut visit: impl FnMut(&Bar)) {
    per_symbol.retain(|v| !v.is_empty());
    if per_symbol.len() <= 1 {
        per_symbol.iter().flatten().for_each(visit);
        return;
    }
    per_symbol.sort_unstable_by_key(|v| v.first().map_or(i64::MIN, |b| b.symbol));
    let total: usize = per_symbol.iter().map(Vec::len).sum();
    let mut keys: Vec<u128> = Vec::with_capacity(total);
    for (rank, bars) in per_symbol.iter().enumerate() {
        for (pos, b) in bars.iter().enumerate() {
            // Flipping the sign bit makes i64 order equal unsigned order.
            let ts = u128::from((b.ts as u64) ^ (1 << 63));
            keys.push(ts << 64 | (rank as u128) << 32 | pos as u128);
        }
    }
    // Stable on purpose: it finds the per-symbol runs and merges them.
    #[allow(clippy::stable_sort_primitive)]
    keys.sort();
    for k in &keys {
        let (rank, pos) = ((k >> 32) as u32 as usize, *k as u32 as usize);
        if let Some(b) = per_symbol.get(rank).and_then(|v| v.get(pos)) {
            visit(b);
        }
    }
}

/// The common length of tick columns.
///
/// # Errors
/// The columns differ in length.
pub fn check_lengths(
    ts_ns: &[i64],
    price: &[f64],
    qty: &[f64],
    symbol: Option<&[i64]>,
) -> CoreResult<usize> {
    let n = ts_ns.len();
    for len in [price.len(), qty.len()]
        .into_iter()
        .chain(symbol.map(<[i64]>::len))
    {
        if len != n {
            return Err(CoreError::LengthMismatch {
                left: n,
                right: len,
            });
        }
    }
    Ok(n)
}

/// Add ` (tick index i)` to an error from the per-tick path.
fn at_index(e: CoreError, i: usize) -> CoreError {
    match e {
        CoreError::OutOfRange(m) => CoreError::OutOfRange(format!("{m} (tick index {i})")),
        other => other,
    }
}

/// Batch: aggregate ticks in array order; rows ordered by (ts, symbol).
///
/// # Errors
/// Different lengths; a bad price, quantity or timestamp (with its index).
pub fn build_bars(
    ts_ns: &[i64],
    price: &[f64],
    qty: &[f64],
    symbol: Option<&[i64]>,
    session: &Session,
    mode: VolumeMode,
) -> CoreResult<Vec<Bar>> {
    build_bars_batch(ts_ns, price, qty, symbol, session, mode).map(BatchBars::into_vec)
}

/// [`build_bars`] before the final ordering, so callers can take columns directly.
///
/// # Errors
/// As [`build_bars`].
pub fn build_bars_batch(
    ts_ns: &[i64],
    price: &[f64],
    qty: &[f64],
    symbol: Option<&[i64]>,
    session: &Session,
    mode: VolumeMode,
) -> CoreResult<BatchBars> {
    let n = check_lengths(ts_ns, price, qty, symbol)?;
    let mut bars = Vec::with_capacity(n / 64 + 16);
    if let Some(symbol) = symbol {
        let mut builder = BarBuilder::try_new(*session, mode, 0)?;
        // Closed bars per symbol (same index as the builder's states), merged at the end.
        let mut per_symbol: Vec<Vec<Bar>> = Vec::new();
        for (i, (((&t, &p), &q), &s)) in ts_ns.iter().zip(price).zip(qty).zip(symbol).enumerate() {
            if let Some(bar) = builder.on_tick(s, t, p, q).map_err(|e| at_index(e, i))? {
                per_symbol.resize_with(builder.states.len(), Vec::new);
                let out = builder
                    .index
                    .get(bar.symbol)
                    .and_then(|k| per_symbol.get_mut(k));
                out.ok_or_else(|| CoreError::invalid("internal: symbol index out of range"))?
                    .push(bar);
            }
        }
        per_symbol.resize_with(builder.states.len(), Vec::new);
        for (v, st) in per_symbol.iter_mut().zip(builder.states.iter_mut()) {
            v.extend(st.close());
        }
        return Ok(BatchBars::PerSymbol(per_symbol));
    }
    // One symbol: drive the per-symbol machine directly (no lookup).
    // Runs of ticks in the open bucket go through `absorb_run`, the rest through
    // `on_tick`: the same rules, specialised because this loop is the backtest hot path.
    let mut state = SymbolBars::new(0);
    let mut i = 0;
    while i < n {
        let (Some(ts), Some(ps), Some(qs)) = (ts_ns.get(i..), price.get(i..), qty.get(i..)) else {
            break;
        };
        i += state.absorb_run(mode, ts, ps, qs);
        let (Some(&t), Some(&p), Some(&q)) = (ts_ns.get(i), price.get(i), qty.get(i)) else {
            break;
        };
        check_tick(p, q).map_err(|e| at_index(e, i))?;
        check_ts(t).map_err(|e| at_index(e, i))?;
        if let TickOutcome::Opened(Some(bar)) = state.on_tick(session, mode, t, p, q, i64::MIN)? {
            bars.push(bar);
        }
        i += 1;
    }
    bars.extend(state.close());
    Ok(BatchBars::Ordered(bars))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::session::SECOND_NS;
    use crate::testutil::{ist, nse as session};

    #[test]
    fn one_minute_bars_with_drops() {
        let ts = [
            ist(9, 14, 59), // out of session
            ist(9, 15, 0),
            ist(9, 15, 30),
            ist(9, 15, 10), // out of order within the bucket
            ist(9, 16, 5),
            ist(9, 15, 59), // late
            ist(15, 30, 0), // out of session
        ];
        let px = [1.0, 10.0, 12.0, 9.0, 11.0, 50.0, 2.0];
        let q = [5.0, 1.0, 2.0, 3.0, 4.0, 6.0, 7.0];
        let bars = build_bars(&ts, &px, &q, None, &session(60), VolumeMode::Trade).unwrap();
        assert_eq!(bars.len(), 2);
        let b = bars[0];
        assert_eq!(b.ts, ist(9, 15, 0));
        assert_eq!((b.open, b.high, b.low, b.close), (10.0, 12.0, 9.0, 9.0));
        assert_eq!((b.volume, b.ticks), (6.0, 3));
        assert_eq!(
            (bars[1].ts, bars[1].close, bars[1].volume),
            (ist(9, 16, 0), 11.0, 4.0)
        );
    }

    #[test]
    fn cumulative_volume_across_days_and_resets() {
        let next_day = 86_400 * SECOND_NS;
        let ts = [
            ist(9, 15, 0),
            ist(9, 15, 1),
            ist(9, 16, 0),
            ist(9, 16, 1), // reset: 5 < 250
            ist(9, 17, 0),
            ist(9, 14, 0) + next_day, // out of session: baseline untouched
            ist(9, 15, 0) + next_day,
        ];
        let px = [1.0; 7];
        let q = [100.0, 150.0, 250.0, 5.0, 30.0, 9999.0, 40.0];
        let bars = build_bars(&ts, &px, &q, None, &session(60), VolumeMode::Cumulative).unwrap();
        let vols: Vec<f64> = bars.iter().map(|b| b.volume).collect();
        assert_eq!(vols, vec![150.0, 100.0 + 5.0, 25.0, 40.0]);
    }

    #[test]
    fn builder_timer_close_makes_same_bucket_late() {
        let mut b = BarBuilder::try_new(session(60), VolumeMode::Trade, SECOND_NS).unwrap();
        assert_eq!(b.on_tick(7, ist(9, 15, 0), 10.0, 1.0).unwrap(), None);
        assert!(b.on_time(ist(9, 16, 1)).is_empty()); // end + grace == now: not yet
        let closed = b.on_time(ist(9, 16, 1) + 1);
        assert_eq!(closed.len(), 1);
        assert_eq!(b.on_tick(7, ist(9, 15, 59), 11.0, 1.0).unwrap(), None);
        assert_eq!(b.dropped().late, 1);
        assert!(b.current(7).is_none());
        b.on_tick(7, ist(9, 16, 2), 12.0, 1.0).unwrap();
        assert_eq!(b.current(7).unwrap().open, 12.0);
    }

    #[test]
    fn multi_symbol_rows_sorted_by_ts_then_symbol() {
        let ts = [ist(9, 15, 0), ist(9, 15, 0), ist(9, 16, 0), ist(9, 16, 0)];
        let sym = [9, 3, 3, 9];
        let px = [1.0, 2.0, 3.0, 4.0];
        let q = [1.0; 4];
        let bars = build_bars(&ts, &px, &q, Some(&sym), &session(60), VolumeMode::Trade).unwrap();
        let keys: Vec<(i64, i64)> = bars.iter().map(|b| (b.ts, b.symbol)).collect();
        assert_eq!(
            keys,
            vec![
                (ist(9, 15, 0), 3),
                (ist(9, 15, 0), 9),
                (ist(9, 16, 0), 3),
                (ist(9, 16, 0), 9)
            ]
        );
    }

    #[test]
    fn validate_rejects_states_no_tick_stream_makes() {
        let s = session(60);
        let mut good = SymbolBars::new(1);
        good.on_tick(&s, VolumeMode::Trade, ist(9, 15, 0), 10.0, 1.0, i64::MIN)
            .unwrap();
        assert!(good.validate(&s).is_ok());
        assert!(SymbolBars::new(1).validate(&s).is_ok());
        let mut closed = good.clone();
        closed.close();
        assert!(closed.validate(&s).is_ok());

        let mut bad = good.clone();
        bad.is_open = false; // open range left behind
        assert!(bad.validate(&s).is_err());
        let mut bad = good.clone();
        bad.open_start = i64::MIN;
        bad.open_end = i64::MAX;
        assert!(bad.validate(&s).is_err());
        let mut bad = good.clone();
        bad.bar.ticks = 0;
        assert!(bad.validate(&s).is_err());
        let mut bad = good.clone();
        bad.bar.low = 11.0; // low above open/close
        assert!(bad.validate(&s).is_err());
        let mut bad = good.clone();
        bad.last_end += 1; // not a bucket of the session
        bad.open_end += 1;
        assert!(bad.validate(&s).is_err());
        let mut bad = good;
        bad.cum_last = f64::NAN;
        assert!(bad.validate(&s).is_err());
    }

    #[test]
    fn counters_saturate_instead_of_overflowing() {
        let mut d = Dropped {
            out_of_session: u64::MAX,
            late: u64::MAX,
        };
        d.count(&TickOutcome::Late);
        d.count(&TickOutcome::OutOfSession);
        assert_eq!((d.late, d.out_of_session), (u64::MAX, u64::MAX));
    }

    #[test]
    fn bad_ticks_are_errors_and_change_nothing() {
        let mut b = BarBuilder::try_new(session(60), VolumeMode::Trade, 0).unwrap();
        for (p, q) in [
            (f64::NAN, 1.0),
            (0.0, 1.0),
            (-1.0, 1.0),
            (f64::INFINITY, 1.0),
            (1.0, -1.0),
            (1.0, f64::NAN),
        ] {
            assert!(b.on_tick(1, ist(9, 15, 0), p, q).is_err());
        }
        assert!(b.on_tick(1, i64::MAX, 1.0, 1.0).is_err());
        assert!(b.flush().is_empty());
        assert_eq!(b.dropped(), Dropped::default());
        assert!(VolumeMode::parse("shares").is_err());
        let err = build_bars(
            &[ist(9, 15, 0)],
            &[1.0, 2.0],
            &[1.0],
            None,
            &session(60),
            VolumeMode::Trade,
        );
        assert!(err.is_err());
    }
}
