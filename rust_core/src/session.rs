//! Exchange session and bucket anchoring.
//!
//! Every timestamp is i64 nanoseconds since the Unix epoch, UTC. The exchange's wall clock is
//! UTC + `utc_offset_minutes` (IST = +330, no DST), so no host time zone is ever consulted.
//!
//! Buckets are anchored at the session open (09:15 IST on NSE): a tick whose local time of day
//! is `tod` falls in `[open + k*tf, open + (k+1)*tf)`, and the last bucket of the day is cut at
//! the session close, so 60-minute bars run 09:15-10:15, ..., 15:15-15:30 as Kite and
//! TradingView draw them. Without a session (`session_start = None`) buckets are anchored at
//! local midnight, the last one cut at midnight, and no tick is out of session.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};

/// Nanoseconds per second.
pub const SECOND_NS: i64 = 1_000_000_000;
/// Nanoseconds per day.
pub const DAY_NS: i64 = 86_400 * SECOND_NS;
/// Largest accepted |timestamp| (about year 2116): keeps every bucket computation far from
/// i64 overflow.
pub const MAX_ABS_TS_NS: u64 = 1 << 62;

/// The bucket a timestamp falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Bucket start, ns UTC (the bar's `ts`).
    pub start_ns: i64,
    /// Bucket end (exclusive), ns UTC; cut at the session close.
    pub end_ns: i64,
    /// Local calendar day number (days since 1970-01-01 in exchange time).
    pub day: i64,
    /// Where that day's buckets stop (ns UTC): the session close, or the next local midnight
    /// without a session.
    pub close_ns: i64,
}

/// Raw session arguments exactly as the user gave them (kept for snapshots and reprs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSpec {
    pub timeframe_s: i64,
    pub session_start: Option<String>,
    pub session_end: Option<String>,
    pub utc_offset_minutes: i64,
}

/// A validated timeframe + session: maps timestamps to buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    timeframe_ns: i64,
    offset_ns: i64,
    /// Session open and close as local time of day (ns), or None for no session filter.
    window: Option<(i64, i64)>,
}

/// Parse "HH:MM" or "HH:MM:SS" into nanoseconds since local midnight. "24:00" is allowed
/// only as a close.
fn parse_time_of_day(name: &str, text: &str, allow_24: bool) -> CoreResult<i64> {
    let bad = || {
        CoreError::invalid(format!(
            "{name} must be \"HH:MM\" or \"HH:MM:SS\" local time, got {text:?}"
        ))
    };
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err(bad());
    }
    let mut fields = [0_i64; 3];
    for (slot, part) in fields.iter_mut().zip(&parts) {
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        *slot = part.parse::<i64>().map_err(|_| bad())?;
    }
    let [h, m, s] = fields;
    let valid = (h < 24 && m < 60 && s < 60) || (allow_24 && h == 24 && m == 0 && s == 0);
    if !valid {
        return Err(bad());
    }
    Ok(((h * 60 + m) * 60 + s) * SECOND_NS)
}

impl Session {
    /// Validate the arguments and build a session.
    ///
    /// # Errors
    /// `timeframe_s` outside 1..=86400, `|utc_offset_minutes| >= 1440`, a malformed session
    /// time, `session_end` missing while `session_start` is set, or start >= end.
    pub fn try_new(spec: &SessionSpec) -> CoreResult<Self> {
        if !(1..=86_400).contains(&spec.timeframe_s) {
            return Err(CoreError::OutOfRange(format!(
                "timeframe_s must be between 1 and 86400 seconds, got {}",
                spec.timeframe_s
            )));
        }
        if spec.utc_offset_minutes.unsigned_abs() >= 24 * 60 {
            return Err(CoreError::OutOfRange(format!(
                "utc_offset_minutes must be within +/-1439, got {}",
                spec.utc_offset_minutes
            )));
        }
        let window = match (&spec.session_start, &spec.session_end) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(CoreError::invalid(
                    "session_end is required when session_start is set",
                ))
            }
            (Some(start), Some(end)) => {
                let open = parse_time_of_day("session_start", start, false)?;
                let close = parse_time_of_day("session_end", end, true)?;
                if open >= close {
                    return Err(CoreError::invalid(format!(
                        "session_start ({start}) must be before session_end ({end})"
                    )));
                }
                Some((open, close))
            }
        };
        Ok(Self {
            timeframe_ns: spec.timeframe_s * SECOND_NS,
            offset_ns: spec.utc_offset_minutes * 60 * SECOND_NS,
            window,
        })
    }

    /// Bar length in nanoseconds.
    pub fn timeframe_ns(&self) -> i64 {
        self.timeframe_ns
    }

    /// The same session with another timeframe (for resampling).
    ///
    /// # Errors
    /// `timeframe_s` outside 1..=86400.
    pub fn with_timeframe(&self, timeframe_s: i64) -> CoreResult<Self> {
        if !(1..=86_400).contains(&timeframe_s) {
            return Err(CoreError::OutOfRange(format!(
                "timeframe_s must be between 1 and 86400 seconds, got {timeframe_s}"
            )));
        }
        Ok(Self {
            timeframe_ns: timeframe_s * SECOND_NS,
            ..*self
        })
    }

    /// The bucket of `ts_ns`, or None when it is outside the session.
    ///
    /// # Errors
    /// `|ts_ns| > 2^62`.
    #[inline]
    pub fn bucket(&self, ts_ns: i64) -> CoreResult<Option<Bucket>> {
        check_ts(ts_ns)?;
        let local = ts_ns + self.offset_ns;
        let day = local.div_euclid(DAY_NS);
        let tod = local.rem_euclid(DAY_NS);
        let (start_tod, end_tod) = match self.window {
            None => {
                let start = tod - tod % self.timeframe_ns;
                (start, (start + self.timeframe_ns).min(DAY_NS))
            }
            Some((open, close)) => {
                if tod < open || tod >= close {
                    return Ok(None);
                }
                let start = open + (tod - open) / self.timeframe_ns * self.timeframe_ns;
                (start, (start + self.timeframe_ns).min(close))
            }
        };
        let midnight_utc = day * DAY_NS - self.offset_ns;
        let close_tod = self.window.map_or(DAY_NS, |(_, close)| close);
        Ok(Some(Bucket {
            start_ns: midnight_utc + start_tod,
            end_ns: midnight_utc + end_tod,
            day,
            close_ns: midnight_utc + close_tod,
        }))
    }

    /// The bucket right after `prev` when `ts_ns` falls in it, found without division (the
    /// common case of a bar change); None when `ts_ns` is anywhere else or `prev` was the
    /// day's last bucket. Equal to [`Session::bucket`] whenever it returns Some.
    #[inline]
    pub fn next_bucket(&self, prev: &Bucket, ts_ns: i64) -> Option<Bucket> {
        if ts_ns < prev.end_ns || prev.end_ns >= prev.close_ns {
            return None;
        }
        let end_ns = prev
            .end_ns
            .saturating_add(self.timeframe_ns)
            .min(prev.close_ns);
        (ts_ns < end_ns).then_some(Bucket {
            start_ns: prev.end_ns,
            end_ns,
            day: prev.day,
            close_ns: prev.close_ns,
        })
    }
}

/// The bar-close grace in ns from milliseconds, checked to be within 0..=1 day.
///
/// # Errors
/// `grace_ms` outside 0..=86400000.
pub fn grace_ns(grace_ms: i64) -> CoreResult<i64> {
    if !(0..=86_400_000).contains(&grace_ms) {
        return Err(CoreError::OutOfRange(format!(
            "grace_ms must be between 0 and 86400000, got {grace_ms}"
        )));
    }
    Ok(grace_ms * (SECOND_NS / 1000))
}

/// Reject timestamps so far from the epoch that bucket arithmetic could overflow.
///
/// # Errors
/// `|ts_ns| > 2^62`.
#[inline]
pub fn check_ts(ts_ns: i64) -> CoreResult<()> {
    if ts_ns.unsigned_abs() > MAX_ABS_TS_NS {
        return Err(CoreError::OutOfRange(format!(
            "timestamp {ts_ns} ns is out of range (|ts| must be <= 2^62)"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    use crate::testutil::{ist, MIN};

    fn spec(tf: i64, start: Option<&str>, end: Option<&str>) -> SessionSpec {
        SessionSpec {
            timeframe_s: tf,
            session_start: start.map(str::to_owned),
            session_end: end.map(str::to_owned),
            utc_offset_minutes: 330,
        }
    }

    #[test]
    fn nse_hourly_buckets_are_anchored_at_open_and_cut_at_close() {
        let s = Session::try_new(&spec(3600, Some("09:15"), Some("15:30"))).unwrap();
        let b = s.bucket(ist(9, 15, 0)).unwrap().unwrap();
        assert_eq!((b.start_ns, b.end_ns), (ist(9, 15, 0), ist(10, 15, 0)));
        let b = s.bucket(ist(15, 29, 0)).unwrap().unwrap();
        assert_eq!((b.start_ns, b.end_ns), (ist(15, 15, 0), ist(15, 30, 0)));
        assert_eq!(s.bucket(ist(15, 30, 0)).unwrap(), None);
        assert_eq!(s.bucket(ist(9, 15, 0) - 1).unwrap(), None);
    }

    #[test]
    fn minute_bucket_and_day_number() {
        let s = Session::try_new(&spec(60, Some("09:15"), Some("15:30"))).unwrap();
        let b = s.bucket(ist(10, 3, 0) + 59 * SECOND_NS).unwrap().unwrap();
        assert_eq!((b.start_ns, b.end_ns), (ist(10, 3, 0), ist(10, 4, 0)));
        assert_eq!(b.day, 20_780); // 2026-11-23
    }

    #[test]
    fn no_session_anchors_at_local_midnight() {
        let s = Session::try_new(&spec(7 * 3600, None, Some("15:30"))).unwrap();
        let b = s.bucket(ist(23, 59, 0)).unwrap().unwrap();
        // 21:00-24:00 local: the last bucket is cut at midnight.
        assert_eq!((b.start_ns, b.end_ns), (ist(21, 0, 0), ist(24, 0, 0)));
        let b = s.bucket(ist(0, 0, 0)).unwrap().unwrap();
        assert_eq!(b.start_ns, ist(0, 0, 0));
    }

    #[test]
    fn negative_timestamps_floor_correctly() {
        let s = Session::try_new(&SessionSpec {
            timeframe_s: 60,
            session_start: None,
            session_end: None,
            utc_offset_minutes: 0,
        })
        .unwrap();
        let b = s.bucket(-1).unwrap().unwrap();
        assert_eq!((b.start_ns, b.end_ns, b.day), (-MIN, 0, -1));
    }

    #[test]
    fn bad_arguments_are_rejected() {
        for (tf, start, end) in [
            (0, Some("09:15"), Some("15:30")),
            (86_401, Some("09:15"), Some("15:30")),
            (60, Some("9:15"), Some("15:30")),
            (60, Some("09:15x"), Some("15:30")),
            (60, Some("25:00"), Some("15:30")),
            (60, Some(""), Some("15:30")),
            (60, Some("24:00"), Some("24:00")),
            (60, Some("15:30"), Some("09:15")),
            (60, Some("09:15"), Some("09:15")),
            (60, Some("09:15"), None),
            (60, Some("09:60"), Some("15:30")),
        ] {
            assert!(
                Session::try_new(&spec(tf, start, end)).is_err(),
                "{tf} {start:?} {end:?}"
            );
        }
        let mut s = spec(60, None, None);
        for offset in [1440, -1440, i64::MIN, i64::MAX] {
            s.utc_offset_minutes = offset;
            assert!(Session::try_new(&s).is_err());
        }
        assert!(Session::try_new(&spec(60, Some("00:00"), Some("24:00"))).is_ok());
        assert!(Session::try_new(&spec(60, Some("09:15:30"), Some("15:30:00"))).is_ok());
    }

    #[test]
    fn next_bucket_matches_bucket() {
        for (tf, start, end) in [
            (60, Some("09:15"), Some("15:30")),
            (3600, Some("09:15"), Some("15:30")),
            (420, None, None),
        ] {
            let s = Session::try_new(&spec(tf, start, end)).unwrap();
            let mut ts = ist(0, 0, 0) - 3 * DAY_NS;
            let mut prev: Option<Bucket> = None;
            while ts < ist(0, 0, 0) + 2 * DAY_NS {
                let full = s.bucket(ts).unwrap();
                if let (Some(p), Some(f)) = (prev, full) {
                    if let Some(n) = s.next_bucket(&p, ts) {
                        assert_eq!(n, f, "tf={tf} ts={ts}");
                    }
                }
                if full.is_some() {
                    prev = full;
                }
                ts += 17 * SECOND_NS + 123;
            }
        }
    }

    #[test]
    fn out_of_range_timestamps_are_errors() {
        let s = Session::try_new(&spec(60, Some("09:15"), Some("15:30"))).unwrap();
        assert!(s.bucket(i64::MAX).is_err());
        assert!(s.bucket(i64::MIN).is_err());
    }
}
