//! Stateless DBSC challenges: like keybound's DPoP nonces, an HMAC keyed by a secret
//! every node shares, so any node accepts any node's challenge and nothing is stored
//! to issue or check one.
//!
//! Unlike a nonce a challenge is unique: it carries 16 random bytes (the caller's) and
//! its issue time, and its MAC covers the session it was issued for and what it is for
//! (registration or refresh). A challenge for one session or purpose is worthless for
//! another. Uniqueness lets the server refuse a replayed challenge with its replay
//! store (each challenge is signed once), without ever refusing a fresh one: Chromium
//! asks for a new challenge after every refusal, and a deterministic challenge would
//! be refused again.

#[allow(unused_imports)]
use crate::prelude::*;
use core::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::DbscError;
use crate::b64;

/// Bytes of randomness in a challenge.
pub const CHALLENGE_RANDOM_BYTES: usize = 16;
const TIME_BYTES: usize = 8;
const MAC_BYTES: usize = 16;
const CHALLENGE_BYTES: usize = TIME_BYTES + CHALLENGE_RANDOM_BYTES + MAC_BYTES;

/// What a challenge may be signed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// The registration of a session's key (`Secure-Session-Registration`).
    Registration,
    /// A refresh of the bound cookie (`Secure-Session-Challenge`).
    Refresh,
}

impl ChallengePurpose {
    fn label(self) -> u8 {
        match self {
            Self::Registration => 1,
            Self::Refresh => 2,
        }
    }
}

/// Issues and checks DBSC challenges.
///
/// ```
/// use core::time::Duration;
/// use keybound_proto::dbsc::{ChallengePurpose, Challenges};
/// let challenges = Challenges::from_secret(&[7u8; 32], Duration::from_secs(60));
/// let now_ms = 1_700_000_000_000;
/// let c = challenges.issue(ChallengePurpose::Refresh, "session-1", now_ms, [9u8; 16]);
/// assert!(challenges.check(ChallengePurpose::Refresh, "session-1", &c, now_ms + 59_000).is_ok());
/// assert_eq!(challenges.check(ChallengePurpose::Refresh, "session-2", &c, now_ms).unwrap_err().code(), "invalid_challenge");
/// assert_eq!(challenges.check(ChallengePurpose::Refresh, "session-1", &c, now_ms + 61_000).unwrap_err().code(), "challenge_expired");
/// ```
pub struct Challenges {
    secret: Zeroizing<[u8; 32]>,
    lifetime_ms: i64,
    tolerance_ms: i64,
}

impl core::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Challenges")
            .field("lifetime_ms", &self.lifetime_ms)
            .field("tolerance_ms", &self.tolerance_ms)
            .finish_non_exhaustive()
    }
}

impl Challenges {
    /// The default lifetime: 60 seconds. A challenge is signed within milliseconds of
    /// its issue (Chromium answers a 403 at once); the margin is for slow devices.
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
    /// How far in the future an issue time may be (clock differences between nodes).
    pub const CLOCK_TOLERANCE: Duration = Duration::from_secs(5);

    /// Challenges keyed by `secret` (share it between nodes; keep it apart from the
    /// DPoP nonce secret), valid for `lifetime` (at least one second).
    pub fn from_secret(secret: &[u8; 32], lifetime: Duration) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            secret: Zeroizing::new(*secret),
            lifetime_ms: ms(lifetime).max(1_000),
            tolerance_ms: ms(Self::CLOCK_TOLERANCE),
        }
    }

    /// The lifetime of a challenge.
    pub fn lifetime(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.lifetime_ms).unwrap_or(u64::MAX))
    }

    /// A new challenge for `purpose` on `session_id` at `now_ms` (milliseconds since
    /// the epoch), made unique by `random` (fresh random bytes from the caller).
    /// 54 base64url characters.
    pub fn issue(
        &self,
        purpose: ChallengePurpose,
        session_id: &str,
        now_ms: i64,
        random: [u8; CHALLENGE_RANDOM_BYTES],
    ) -> String {
        let mut bytes = [0u8; CHALLENGE_BYTES];
        bytes[..TIME_BYTES].copy_from_slice(&now_ms.to_be_bytes());
        bytes[TIME_BYTES..TIME_BYTES + CHALLENGE_RANDOM_BYTES].copy_from_slice(&random);
        let mac = self.mac(
            purpose,
            session_id,
            &bytes[..TIME_BYTES + CHALLENGE_RANDOM_BYTES],
        );
        bytes[TIME_BYTES + CHALLENGE_RANDOM_BYTES..].copy_from_slice(&mac);
        b64::encode(bytes)
    }

    /// Checks that `challenge` was issued by this secret for `purpose` on `session_id`
    /// and is not older than the lifetime at `now_ms`. The MAC comparison does not stop
    /// at the first differing byte. Refusals: `invalid_challenge` (not ours, another
    /// session or purpose, malformed, issued in the future), `challenge_expired`.
    pub fn check(
        &self,
        purpose: ChallengePurpose,
        session_id: &str,
        challenge: &str,
        now_ms: i64,
    ) -> Result<(), DbscError> {
        let bytes = b64::decode_array::<CHALLENGE_BYTES>(challenge, "challenge")
            .map_err(|_| DbscError::InvalidChallenge)?;
        let (signed, given_mac) = bytes.split_at(TIME_BYTES + CHALLENGE_RANDOM_BYTES);
        let mac = self.mac(purpose, session_id, signed);
        let differ = mac
            .iter()
            .zip(given_mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differ != 0 {
            return Err(DbscError::InvalidChallenge);
        }
        let mut time = [0u8; TIME_BYTES];
        time.copy_from_slice(&signed[..TIME_BYTES]);
        let age = now_ms.saturating_sub(i64::from_be_bytes(time));
        if age < -self.tolerance_ms {
            return Err(DbscError::InvalidChallenge);
        }
        if age > self.lifetime_ms {
            return Err(DbscError::ChallengeExpired);
        }
        Ok(())
    }

    fn mac(&self, purpose: ChallengePurpose, session_id: &str, signed: &[u8]) -> [u8; MAC_BYTES] {
        let mut out = [0u8; MAC_BYTES];
        // HMAC accepts keys of any length, so this never fails.
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.secret.as_ref()) {
            mac.update(b"keybound-dbsc-challenge-v1");
            mac.update(&[purpose.label()]);
            let len = u32::try_from(session_id.len()).unwrap_or(u32::MAX);
            mac.update(&len.to_be_bytes());
            mac.update(session_id.as_bytes());
            mac.update(signed);
            out.copy_from_slice(&mac.finalize().into_bytes()[..MAC_BYTES]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    use ChallengePurpose::{Refresh, Registration};

    fn challenges() -> Challenges {
        Challenges::from_secret(&[1u8; 32], Duration::from_secs(60))
    }

    fn code(result: Result<(), DbscError>) -> &'static str {
        result.unwrap_err().code()
    }

    #[test]
    fn accepts_within_the_lifetime_only() {
        let c = challenges();
        let challenge = c.issue(Refresh, "s", T0, [3u8; 16]);
        assert_eq!(challenge.len(), 54);
        assert!(c.check(Refresh, "s", &challenge, T0).is_ok());
        assert!(c.check(Refresh, "s", &challenge, T0 + 60_000).is_ok());
        assert_eq!(
            code(c.check(Refresh, "s", &challenge, T0 + 60_001)),
            "challenge_expired"
        );
        assert!(c.check(Refresh, "s", &challenge, T0 - 5_000).is_ok());
        assert_eq!(
            code(c.check(Refresh, "s", &challenge, T0 - 5_001)),
            "invalid_challenge"
        );
    }

    #[test]
    fn bound_to_secret_session_and_purpose() {
        let c = challenges();
        let challenge = c.issue(Registration, "s", T0, [3u8; 16]);
        let other = Challenges::from_secret(&[2u8; 32], Duration::from_secs(60));
        assert_eq!(
            code(other.check(Registration, "s", &challenge, T0)),
            "invalid_challenge"
        );
        assert_eq!(
            code(c.check(Registration, "t", &challenge, T0)),
            "invalid_challenge"
        );
        assert_eq!(
            code(c.check(Refresh, "s", &challenge, T0)),
            "invalid_challenge"
        );
        // The length prefix keeps `ab`+`c…` and `a`+`bc…` apart.
        let a = c.issue(Refresh, "ab", T0, [0u8; 16]);
        assert_eq!(code(c.check(Refresh, "a", &a, T0)), "invalid_challenge");
    }

    #[test]
    fn unique_and_tamper_evident() {
        let c = challenges();
        let one = c.issue(Refresh, "s", T0, [1u8; 16]);
        let two = c.issue(Refresh, "s", T0, [2u8; 16]);
        assert_ne!(one, two);
        let mut bytes = b64::decode(&one, "c").unwrap();
        bytes[0] ^= 1; // move the issue time
        assert_eq!(
            code(c.check(Refresh, "s", &b64::encode(&bytes), T0)),
            "invalid_challenge"
        );
        for bad in [
            "",
            "kb-refresh-2",
            &one[..53],
            &format!("{one}A"),
            &format!("{}=", &one[..53]),
        ] {
            assert_eq!(
                code(c.check(Refresh, "s", bad, T0)),
                "invalid_challenge",
                "{bad}"
            );
        }
    }

    #[test]
    fn lifetime_floor_and_debug_hides_the_secret() {
        let c = Challenges::from_secret(&[7u8; 32], Duration::from_millis(1));
        assert_eq!(c.lifetime(), Duration::from_secs(1));
        assert!(!format!("{c:?}").contains('7'));
    }
}
