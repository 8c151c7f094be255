//! The server's clock as seen from the browser.
//!
//! Proofs carry `iat` in the server's time and every deadline (`exp`, idle and absolute
//! session ends) is in the server's time too, so the SDK keeps an offset learned from
//! `server_time` in token responses, or from the `Date` header when a proof was
//! refused for its `iat`.

#[allow(unused_imports)]
use crate::prelude::*;
/// Offsets closer to the current estimate than this are measurement noise
/// (`server_time` has one-second resolution) and are ignored.
const NOISE_MS: i64 = 1_000;

/// `server time = local time + offset`, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerClock {
    offset_ms: i64,
}

impl ServerClock {
    /// A clock with a known offset.
    pub fn with_offset(offset_ms: i64) -> Self {
        Self { offset_ms }
    }

    /// The current offset in milliseconds (server minus local).
    pub fn offset_ms(self) -> i64 {
        self.offset_ms
    }

    /// The server's time now, in milliseconds since the epoch.
    pub fn server_now_ms(self, local_now_ms: f64) -> i64 {
        (local_now_ms as i64).saturating_add(self.offset_ms)
    }

    /// The server's time now, in whole seconds (a proof's `iat`).
    pub fn server_now_secs(self, local_now_ms: f64) -> i64 {
        self.server_now_ms(local_now_ms).div_euclid(1000)
    }

    /// The local time at which the server's clock shows `server_ms`.
    pub fn to_local_ms(self, server_ms: i64) -> f64 {
        server_ms.saturating_sub(self.offset_ms) as f64
    }

    /// Learns from a server timestamp with one-second resolution (`server_time`, or the
    /// `Date` header), observed by a request sent at `sent_local_ms` whose answer arrived
    /// at `received_local_ms`.
    ///
    /// The server's clock read somewhere in `[secs, secs + 1)` during the exchange; the
    /// estimate takes the middle of that second at the middle of the exchange. Samples
    /// within the noise of the current offset keep it, so a well-synchronised browser
    /// keeps an offset of zero.
    pub fn learn(self, server_secs: i64, sent_local_ms: f64, received_local_ms: f64) -> Self {
        let midpoint = (sent_local_ms + received_local_ms.max(sent_local_ms)) / 2.0;
        let sample = server_secs
            .saturating_mul(1000)
            .saturating_add(500)
            .saturating_sub(midpoint as i64);
        if sample.abs_diff(self.offset_ms) <= NOISE_MS.unsigned_abs() {
            self
        } else {
            Self { offset_ms: sample }
        }
    }
}

/// Whole seconds since the epoch of a time the browser parsed (`Date.parse` of an
/// HTTP date: epoch milliseconds, `NaN` when the text was no date).
pub fn epoch_secs(ms: f64) -> Option<i64> {
    if !(-8.64e15..=8.64e15).contains(&ms) {
        return None;
    }
    // Rounded down (`f64::floor` is not in `core`).
    let secs = (ms / 1000.0) as i64;
    Some(if (secs as f64) * 1000.0 > ms {
        secs - 1
    } else {
        secs
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn a_synchronised_browser_keeps_offset_zero() {
        let clock = ServerClock::default();
        // Server said 1000 s; the exchange took 1000.100 .. 1000.300 s locally.
        let learned = clock.learn(1000, 1_000_100.0, 1_000_300.0);
        assert_eq!(learned.offset_ms(), 0);
    }

    #[test]
    fn a_skewed_browser_learns_the_offset() {
        // The local clock is 90 s behind the server.
        let learned = ServerClock::default().learn(1090, 1_000_000.0, 1_000_200.0);
        assert_eq!(learned.offset_ms(), 90_400);
        assert_eq!(learned.server_now_secs(1_000_000.0), 1090);
        assert_eq!(learned.to_local_ms(1_090_400), 1_000_000.0);
        // Noise around the learned offset does not move it.
        assert_eq!(learned.learn(1091, 1_000_900.0, 1_001_000.0), learned);
    }

    #[test]
    fn a_clock_ahead_gives_a_negative_offset() {
        let learned = ServerClock::default().learn(1000, 1_060_000.0, 1_060_000.0);
        assert_eq!(learned.offset_ms(), -59_500);
        assert_eq!(learned.server_now_secs(1_060_000.0), 1000);
    }

    #[test]
    fn browser_dates_become_whole_seconds() {
        // `Date.parse("Sun, 06 Nov 1994 08:49:37 GMT")`.
        assert_eq!(epoch_secs(784_111_777_000.0), Some(784_111_777));
        assert_eq!(epoch_secs(1_500.0), Some(1));
        assert_eq!(epoch_secs(-1.0), Some(-1));
        // `Date.parse` of something that is no date, and what no date can be.
        assert_eq!(epoch_secs(f64::NAN), None);
        assert_eq!(epoch_secs(f64::INFINITY), None);
        assert_eq!(epoch_secs(9.0e15), None);
    }
}
