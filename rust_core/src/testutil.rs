//! Shared fixtures of the inline unit tests: a fixed IST trading day and the NSE session.

#![allow(clippy::unwrap_used)]

use crate::session::{Session, SessionSpec, SECOND_NS};

/// One minute in ns.
pub const MIN: i64 = 60 * SECOND_NS;
/// 2026-11-23 00:00 IST in ns UTC.
pub const MIDNIGHT: i64 = 1_795_372_200 * SECOND_NS;

/// UTC ns of IST wall time `h:m:s` on 2026-11-23.
pub fn ist(h: i64, m: i64, s: i64) -> i64 {
    MIDNIGHT + (h * 60 + m) * MIN + s * SECOND_NS
}

/// The NSE session (09:15-15:30 IST) at `tf` seconds.
pub fn nse(tf: i64) -> Session {
    Session::try_new(&SessionSpec {
        timeframe_s: tf,
        session_start: Some("09:15".into()),
        session_end: Some("15:30".into()),
        utc_offset_minutes: 330,
    })
    .unwrap()
}
