//! Optional server nonces for DPoP proofs (RFC 9449 §8), stateless: a nonce is an HMAC
//! of the current time step, so every node that shares the secret accepts it and
//! nothing is stored.
//!
//! A nonce is valid during its own step and the next one, so it lives between one and
//! two steps. A request without a valid nonce gets `401 use_dpop_nonce` with the
//! current nonce in a `DPoP-Nonce` header, and the client retries once.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use keybound_proto::b64;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::KeyError;

/// Bytes of HMAC output kept in a nonce (22 base64url characters).
const NONCE_BYTES: usize = 16;

/// Issues and checks stateless HMAC-SHA256 nonces over time steps.
///
/// ```
/// use std::time::Duration;
/// use keybound_server::Nonces;
/// let nonces = Nonces::from_secret(&[42u8; 32], Duration::from_secs(60));
/// let now_ms = 1_700_000_000_000;
/// let nonce = nonces.issue(now_ms);
/// assert!(nonces.check(&nonce, now_ms + 60_000)); // the previous step is still accepted
/// assert!(!nonces.check(&nonce, now_ms + 120_000));
/// ```
pub struct Nonces {
    secret: Zeroizing<[u8; 32]>,
    step_ms: i64,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("step_ms", &self.step_ms)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    /// The default step: 60 seconds (a nonce lives 60 to 120 s, like the default
    /// `iat` window).
    pub const DEFAULT_STEP: Duration = Duration::from_secs(60);

    /// Nonces keyed by `secret` (share it between nodes), changing every `step`
    /// (at least one second).
    pub fn from_secret(secret: &[u8; 32], step: Duration) -> Self {
        let step_ms = i64::try_from(step.as_millis())
            .unwrap_or(i64::MAX)
            .max(1_000);
        Self {
            secret: Zeroizing::new(*secret),
            step_ms,
        }
    }

    /// Nonces with a fresh random secret (for a single node).
    pub fn generate(step: Duration) -> Result<Self, KeyError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_secret(&secret, step))
    }

    /// The step length.
    pub fn step(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.step_ms).unwrap_or(u64::MAX))
    }

    /// The nonce to hand out at `now_ms` (milliseconds since the epoch).
    pub fn issue(&self, now_ms: i64) -> String {
        b64::encode(self.mac(self.step_at(now_ms)))
    }

    /// Whether `nonce` belongs to the current or the previous step at `now_ms`. The
    /// comparison does not stop at the first differing byte.
    pub fn check(&self, nonce: &str, now_ms: i64) -> bool {
        let Ok(given) = b64::decode_array::<NONCE_BYTES>(nonce, "nonce") else {
            return false;
        };
        let step = self.step_at(now_ms);
        let current = ct_eq(&given, &self.mac(step));
        let previous = ct_eq(&given, &self.mac(step.saturating_sub(1)));
        current | previous
    }

    fn step_at(&self, now_ms: i64) -> i64 {
        now_ms.div_euclid(self.step_ms)
    }

    fn mac(&self, step: i64) -> [u8; NONCE_BYTES] {
        let mut out = [0u8; NONCE_BYTES];
        // HMAC accepts keys of any length, so this never fails.
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.secret.as_ref()) {
            mac.update(b"keybound-dpop-nonce-v1");
            mac.update(&step.to_be_bytes());
            out.copy_from_slice(&mac.finalize().into_bytes()[..NONCE_BYTES]);
        }
        out
    }
}

fn ct_eq(a: &[u8; NONCE_BYTES], b: &[u8; NONCE_BYTES]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn accepts_current_and_previous_step_only() {
        let nonces = Nonces::from_secret(&[1u8; 32], Duration::from_secs(10));
        let start = T0 - T0.rem_euclid(10_000);
        let nonce = nonces.issue(start);
        assert_eq!(nonce.len(), 22);
        assert!(nonces.check(&nonce, start));
        assert!(nonces.check(&nonce, start + 9_999));
        assert!(nonces.check(&nonce, start + 19_999));
        assert!(!nonces.check(&nonce, start + 20_000));
        assert!(!nonces.check(&nonce, start - 1));
        assert_eq!(nonces.issue(start + 9_999), nonce);
        assert_ne!(nonces.issue(start + 10_000), nonce);
    }

    #[test]
    fn other_secrets_and_garbage_are_rejected() {
        let a = Nonces::from_secret(&[1u8; 32], Nonces::DEFAULT_STEP);
        let b = Nonces::from_secret(&[2u8; 32], Nonces::DEFAULT_STEP);
        assert!(!b.check(&a.issue(T0), T0));
        assert!(!a.check("", T0));
        assert!(!a.check("not a nonce", T0));
        assert!(!a.check(&format!("{}A", a.issue(T0)), T0));
    }

    #[test]
    fn step_has_a_floor_and_debug_hides_the_secret() {
        let nonces = Nonces::from_secret(&[7u8; 32], Duration::from_millis(5));
        assert_eq!(nonces.step(), Duration::from_secs(1));
        assert!(!format!("{nonces:?}").contains('7'));
    }
}
