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
        if (sample - self.offset_ms).abs() <= NOISE_MS {
            self
        } else {
            Self { offset_ms: sample }
        }
    }
}

/// Parses an HTTP `Date` header (IMF-fixdate, RFC 9110 §5.6.7, e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`) into seconds since the epoch.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let mut parts = text.split_ascii_whitespace();
    let (_weekday, day, month, year, time, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if zone != "GMT" || parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = i64::try_from(MONTHS.iter().position(|m| *m == month)? + 1).ok()?;
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let mut hms = time.split(':').map(str::parse::<i64>);
    let (h, m, s) = (hms.next()?.ok()?, hms.next()?.ok()?, hms.next()?.ok()?);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || hms.next().is_some() {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(1_835_438_400)
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(""), None);
    }
}
