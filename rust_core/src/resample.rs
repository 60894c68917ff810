//! Finer bars -> coarser bars with the same session anchoring (e.g. 1m -> 5m confirm bars).
//!
//! One per-symbol state machine, [`Resampler`], serves the batch [`resample_bars`] and the
//! engine's live confirm timeframe. A coarse bar takes open from its first source bar, close
//! from its last, high/low as max/min, and sums volume and ticks. Live, a coarse bar closes as
//! soon as its last source bar closes (the source bar's bucket end reaches the coarse end), or
//! when a later bucket shows up, so a 5m bar is known the moment its 09:19 1m bar closes.

use serde::{Deserialize, Serialize};

use crate::bars::{Bar, BatchBars};
use crate::error::{CoreError, CoreResult};
use crate::session::{Bucket, Session};

/// Per-symbol resampling state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resampler {
    bar: Bar,
    is_open: bool,
    /// End (exclusive, ns UTC) of the open coarse bucket.
    open_end: i64,
    /// Start of the open or last closed coarse bucket.
    last_start: i64,
    /// `ts` of the last source bar consumed (source bars must ascend).
    last_src_ts: i64,
    /// Local day and where its buckets stop, for the last coarse bucket (see `Bucket`).
    last_day: i64,
    last_close: i64,
}

/// What one source bar did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pushed {
    /// A coarse bar closed because this source bar belongs to a later bucket.
    pub closed_before: Option<Bar>,
    /// The coarse bar closed because this source bar was its last.
    pub closed_after: Option<Bar>,
}

impl Resampler {
    /// Empty state for `symbol`.
    pub fn new(symbol: i64) -> Self {
        Self {
            bar: Bar::empty(symbol),
            is_open: false,
            open_end: i64::MIN,
            last_start: i64::MIN,
            last_src_ts: i64::MIN,
            last_day: i64::MIN,
            last_close: i64::MIN,
        }
    }

    /// The symbol id.
    pub fn symbol(&self) -> i64 {
        self.bar.symbol
    }

    /// The open coarse bar, if any.
    pub fn current(&self) -> Option<Bar> {
        self.is_open.then_some(self.bar)
    }

    /// Consume one closed source bar. `src_end_ns` is its bucket end when known (live), or
    /// `i64::MIN` to never close early (batch).
    ///
    /// # Errors
    /// The source bar is outside the session, or not after the previous source bar of this
    /// symbol. Nothing changes then.
    pub fn push(&mut self, coarse: &Session, src: &Bar, src_end_ns: i64) -> CoreResult<Pushed> {
        // Common case: the source bar falls in the open coarse bucket (no bucket arithmetic).
        if self.is_open
            && src.ts > self.last_src_ts
            && src.ts >= self.bar.ts
            && src.ts < self.open_end
        {
            self.last_src_ts = src.ts;
            self.absorb(src);
            let closed_after = if src_end_ns >= self.open_end {
                self.close()
            } else {
                None
            };
            return Ok(Pushed {
                closed_before: None,
                closed_after,
            });
        }
        if src.ts <= self.last_src_ts {
            return Err(CoreError::NotSorted(format!(
                "bars of symbol {} are not in ascending ts order: {} after {}",
                src.symbol, src.ts, self.last_src_ts
            )));
        }
        let prev = Bucket {
            start_ns: self.last_start,
            end_ns: self.open_end,
            day: self.last_day,
            close_ns: self.last_close,
        };
        let found = match coarse.next_bucket(&prev, src.ts) {
            Some(next) => Some(next),
            None => coarse.bucket(src.ts)?,
        };
        let Some(bucket) = found else {
            return Err(CoreError::OutOfRange(format!(
                "bar at ts {} (symbol {}) is outside the session",
                src.ts, src.symbol
            )));
        };
        if bucket.start_ns < self.last_start
            || (bucket.start_ns == self.last_start && !self.is_open)
        {
            return Err(CoreError::NotSorted(format!(
                "bar at ts {} (symbol {}) belongs to an already closed coarse bucket; is the \
                 target timeframe a multiple of the source timeframe?",
                src.ts, src.symbol
            )));
        }
        self.last_src_ts = src.ts;
        let mut pushed = Pushed::default();
        if self.is_open && bucket.start_ns == self.bar.ts {
            self.absorb(src);
        } else {
            pushed.closed_before = self.close();
            self.bar = Bar {
                ts: bucket.start_ns,
                ..*src
            };
            self.is_open = true;
            self.open_end = bucket.end_ns;
            self.last_start = bucket.start_ns;
            self.last_day = bucket.day;
            self.last_close = bucket.close_ns;
        }
        if src_end_ns >= self.open_end {
            pushed.closed_after = self.close();
        }
        Ok(pushed)
    }

    /// The common case of [`Resampler::push`] in batch: a source bar in the open coarse
    /// bucket is absorbed (no bucket arithmetic) and true returned; otherwise nothing changes.
    /// It never closes the bar early, so it is for batch use (`src_end_ns = i64::MIN`).
    #[inline]
    pub fn try_absorb(&mut self, src: &Bar) -> bool {
        if self.is_open
            && src.ts > self.last_src_ts
            && src.ts >= self.bar.ts
            && src.ts < self.open_end
        {
            self.last_src_ts = src.ts;
            self.absorb(src);
            return true;
        }
        false
    }

    #[inline]
    fn absorb(&mut self, src: &Bar) {
        let b = &mut self.bar;
        b.high = b.high.max(src.high);
        b.low = b.low.min(src.low);
        b.close = src.close;
        b.volume += src.volume;
        b.ticks = b.ticks.saturating_add(src.ticks);
    }

    /// Check the invariants of a state restored from a snapshot against `coarse`.
    ///
    /// # Errors
    /// The state could not have been produced by source bars of this session.
    pub fn validate(&self, coarse: &Session) -> CoreResult<()> {
        let bad = |what: &str| {
            Err(CoreError::invalid(format!(
                "corrupt engine snapshot: symbol {}: confirm {what}",
                self.bar.symbol
            )))
        };
        if self.last_start == i64::MIN {
            if self.is_open
                || self.open_end != i64::MIN
                || self.last_src_ts != i64::MIN
                || self.last_close != i64::MIN
            {
                return bad("fields without a first bucket");
            }
            return Ok(());
        }
        match coarse.bucket(self.last_start)? {
            Some(b)
                if (b.start_ns, b.end_ns, b.day, b.close_ns)
                    == (
                        self.last_start,
                        self.open_end,
                        self.last_day,
                        self.last_close,
                    ) => {}
            _ => return bad("bucket is not a bucket of the session"),
        }
        if self.last_src_ts < self.last_start || self.last_src_ts >= self.open_end {
            return bad("last source bar outside its bucket");
        }
        if self.is_open {
            let b = &self.bar;
            if b.ts != self.last_start || !b.has_valid_prices() || !b.has_valid_counts() {
                return bad("inconsistent open bar");
            }
        }
        Ok(())
    }

    /// End of the last coarse bucket if it is closed (source bars ending by then are too
    /// late for it), `i64::MIN` while a coarse bar is open or before the first.
    pub fn closed_end(&self) -> i64 {
        if self.is_open {
            i64::MIN
        } else {
            self.open_end
        }
    }

    /// Close the open coarse bar, if any.
    pub fn close(&mut self) -> Option<Bar> {
        if !self.is_open {
            return None;
        }
        self.is_open = false;
        Some(self.bar)
    }

    /// Close the open coarse bar if its bucket ends at or before `ts_ns` (a later source
    /// bucket has opened, so no more source bars can join it).
    pub fn close_if_ended_by(&mut self, ts_ns: i64) -> Option<Bar> {
        if self.is_open && self.open_end <= ts_ns {
            self.close()
        } else {
            None
        }
    }

    /// Close the open coarse bar if its bucket ended more than `grace_ns` before `now_ns`.
    pub fn close_if_due(&mut self, now_ns: i64, grace_ns: i64) -> Option<Bar> {
        if self.is_open && self.open_end.saturating_add(grace_ns) < now_ns {
            self.close()
        } else {
            None
        }
    }
}

/// Bar columns as borrowed slices (all the same length; `symbol` optional).
#[derive(Debug, Clone, Copy)]
pub struct BarColumns<'a> {
    pub ts: &'a [i64],
    pub symbol: Option<&'a [i64]>,
    pub open: &'a [f64],
    pub high: &'a [f64],
    pub low: &'a [f64],
    pub close: &'a [f64],
    pub volume: &'a [f64],
    pub ticks: &'a [i64],
}

impl BarColumns<'_> {
    /// Number of rows.
    ///
    /// # Errors
    /// The columns differ in length.
    pub fn checked_len(&self) -> CoreResult<usize> {
        let n = self.ts.len();
        let lens = [
            self.open.len(),
            self.high.len(),
            self.low.len(),
            self.close.len(),
            self.volume.len(),
            self.ticks.len(),
        ];
        for len in lens.into_iter().chain(self.symbol.map(<[i64]>::len)) {
            if len != n {
                return Err(CoreError::LengthMismatch {
                    left: n,
                    right: len,
                });
            }
        }
        Ok(n)
    }

    /// The rows in order, all as bars of `symbol` (the `symbol` column is ignored).
    pub fn rows_as(&self, symbol: i64) -> impl Iterator<Item = Bar> + '_ {
        self.rows_with(std::iter::repeat(symbol))
    }

    /// The rows in order, as bars with the given symbols. Zipped slices, so the loop carries
    /// no per-column bounds checks; generic so each symbol source gets its own tight loop.
    fn rows_with<'s, S>(&'s self, symbols: S) -> impl Iterator<Item = Bar> + 's
    where
        S: Iterator<Item = i64> + 's,
    {
        self.ts
            .iter()
            .zip(symbols)
            .zip(self.open.iter().zip(self.high))
            .zip(self.low.iter().zip(self.close))
            .zip(self.volume.iter().zip(self.ticks))
            .map(
                |((((&ts, symbol), (&open, &high)), (&low, &close)), (&volume, &ticks))| Bar {
                    symbol,
                    ts,
                    open,
                    high,
                    low,
                    close,
                    volume,
                    ticks,
                },
            )
    }
}

/// Reject a source bar no tick stream could have made.
#[inline]
fn check_bar(b: &Bar, index: usize) -> CoreResult<()> {
    if !b.has_valid_prices() {
        return Err(CoreError::OutOfRange(format!(
            "bar at index {index}: prices must be finite and > 0 with low <= high, got \
             open={} high={} low={} close={}",
            b.open, b.high, b.low, b.close
        )));
    }
    if !b.has_valid_counts() {
        return Err(CoreError::OutOfRange(format!(
            "bar at index {index}: volume must be finite and >= 0 and ticks >= 0, got \
             volume={} ticks={}",
            b.volume, b.ticks
        )));
    }
    Ok(())
}

/// Batch resampling of bar columns; output ordered by (ts, symbol).
///
/// # Errors
/// Columns of different lengths, a bar outside the session, or bars of a symbol out of order.
pub fn resample_columns(cols: &BarColumns<'_>, coarse: &Session) -> CoreResult<BatchBars> {
    let n = cols.checked_len()?;
    let mut index = crate::bars::SymbolIndex::default();
    let mut states: Vec<Resampler> = Vec::new();
    let Some(symbols) = cols.symbol else {
        let mut single = Resampler::new(0);
        let mut out = Vec::with_capacity(n / 2 + 16);
        for (i, src) in cols.rows_with(std::iter::repeat(0)).enumerate() {
            check_bar(&src, i)?;
            if !single.try_absorb(&src) {
                let pushed = single.push(coarse, &src, i64::MIN)?;
                out.extend(pushed.closed_before);
                out.extend(pushed.closed_after);
            }
        }
        out.extend(single.close());
        return Ok(BatchBars::Ordered(out));
    };
    // Closed bars per symbol (same index as `states`), merged into (ts, symbol) order.
    let mut per_symbol: Vec<Vec<Bar>> = Vec::new();
    for (i, src) in cols.rows_with(symbols.iter().copied()).enumerate() {
        check_bar(&src, i)?;
        let (idx, is_new) = index.get_or_insert(src.symbol, states.len());
        if is_new {
            states.push(Resampler::new(src.symbol));
            per_symbol.push(Vec::new());
        }
        let (Some(state), Some(out)) = (states.get_mut(idx), per_symbol.get_mut(idx)) else {
            return Err(CoreError::invalid("internal: symbol index out of range"));
        };
        if !state.try_absorb(&src) {
            let pushed = state.push(coarse, &src, i64::MIN)?;
            out.extend(pushed.closed_before);
            out.extend(pushed.closed_after);
        }
    }
    for (out, state) in per_symbol.iter_mut().zip(states.iter_mut()) {
        out.extend(state.close());
    }
    Ok(BatchBars::PerSymbol(per_symbol))
}

/// Batch resampling of bars; output ordered by (ts, symbol).
///
/// # Errors
/// A bar outside the session, or bars of a symbol out of order.
pub fn resample_bars(bars: &[Bar], coarse: &Session) -> CoreResult<Vec<Bar>> {
    let col_i = |f: fn(&Bar) -> i64| bars.iter().map(f).collect::<Vec<i64>>();
    let col_f = |f: fn(&Bar) -> f64| bars.iter().map(f).collect::<Vec<f64>>();
    let (ts, symbol, ticks) = (col_i(|b| b.ts), col_i(|b| b.symbol), col_i(|b| b.ticks));
    let (open, high, low, close, volume) = (
        col_f(|b| b.open),
        col_f(|b| b.high),
        col_f(|b| b.low),
        col_f(|b| b.close),
        col_f(|b| b.volume),
    );
    let cols = BarColumns {
        ts: &ts,
        symbol: Some(&symbol),
        open: &open,
        high: &high,
        low: &low,
        close: &close,
        volume: &volume,
        ticks: &ticks,
    };
    resample_columns(&cols, coarse).map(BatchBars::into_vec)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::testutil::{ist, nse as session};

    fn bar(ts: i64, o: f64, h: f64, l: f64, c: f64) -> Bar {
        Bar {
            symbol: 1,
            ts,
            open: o,
            high: h,
            low: l,
            close: c,
            volume: 10.0,
            ticks: 2,
        }
    }

    #[test]
    fn five_minute_from_one_minute() {
        let src = [
            bar(ist(9, 15, 0), 10.0, 11.0, 9.0, 10.5),
            bar(ist(9, 17, 0), 10.5, 13.0, 10.0, 12.0),
            bar(ist(9, 20, 0), 12.0, 12.5, 11.5, 12.2),
        ];
        let out = resample_bars(&src, &session(300)).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0],
            Bar {
                volume: 20.0,
                ticks: 4,
                ..bar(ist(9, 15, 0), 10.0, 13.0, 9.0, 12.0)
            }
        );
        assert_eq!(out[1].ts, ist(9, 20, 0));
    }

    #[test]
    fn live_close_on_last_source_bar() {
        let coarse = session(300);
        let mut r = Resampler::new(1);
        let p = r
            .push(
                &coarse,
                &bar(ist(9, 18, 0), 1.0, 1.0, 1.0, 1.0),
                ist(9, 19, 0),
            )
            .unwrap();
        assert_eq!(p, Pushed::default());
        let p = r
            .push(
                &coarse,
                &bar(ist(9, 19, 0), 2.0, 2.0, 2.0, 2.0),
                ist(9, 20, 0),
            )
            .unwrap();
        assert_eq!(p.closed_after.unwrap().close, 2.0);
        assert!(r.current().is_none());
    }

    #[test]
    fn unsorted_and_out_of_session_are_errors() {
        let src = [
            bar(ist(9, 20, 0), 1.0, 1.0, 1.0, 1.0),
            bar(ist(9, 15, 0), 1.0, 1.0, 1.0, 1.0),
        ];
        assert!(matches!(
            resample_bars(&src, &session(300)),
            Err(CoreError::NotSorted(_))
        ));
        let src = [bar(ist(8, 0, 0), 1.0, 1.0, 1.0, 1.0)];
        assert!(resample_bars(&src, &session(300)).is_err());
    }
}
