//! Retry delays for transient refresh failures: exponential with jitter, so that many
//! browsers that lost the server at the same moment do not come back in lockstep.

#[allow(unused_imports)]
use crate::prelude::*;
/// Exponential backoff with "equal jitter": the `n`-th delay is uniformly drawn from
/// `[d/2, d]` where `d = min(cap, base · 2ⁿ)`.
///
/// ```
/// use keybound_client::Backoff;
/// let mut backoff = Backoff::new(1_000, 30_000);
/// let first = backoff.next_delay_ms(u32::MAX);
/// assert!((500..=1_000).contains(&first));
/// let second = backoff.next_delay_ms(0);
/// assert_eq!(second, 1_000);
/// backoff.reset();
/// assert_eq!(backoff.attempts(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base_ms: u64,
    cap_ms: u64,
    attempt: u32,
}

impl Default for Backoff {
    /// One second doubling up to thirty seconds.
    fn default() -> Self {
        Self::new(1_000, 30_000)
    }
}

impl Backoff {
    /// A backoff starting around `base_ms` and never above `cap_ms`.
    pub fn new(base_ms: u64, cap_ms: u64) -> Self {
        Self {
            base_ms: base_ms.max(1),
            cap_ms: cap_ms.max(base_ms.max(1)),
            attempt: 0,
        }
    }

    /// How many delays were handed out since the last [`reset`](Self::reset).
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The next delay, using `random` (any uniformly random `u32`) for the jitter.
    pub fn next_delay_ms(&mut self, random: u32) -> u64 {
        let exponent = self.attempt.min(20);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = self.base_ms.saturating_mul(1 << exponent).min(self.cap_ms);
        let floor = ceiling / 2;
        let span = ceiling - floor;
        floor + (u64::from(random) * span) / u64::from(u32::MAX)
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(not(target_arch = "wasm32"))]
    use proptest::prelude::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn grows_then_caps() {
        let mut b = Backoff::new(1_000, 30_000);
        let maxima: Vec<u64> = (0..8).map(|_| b.next_delay_ms(u32::MAX)).collect();
        assert_eq!(
            maxima,
            [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(b.attempts(), 8);
        b.reset();
        assert_eq!(b.next_delay_ms(0), 500);
    }

    #[test]
    fn survives_many_attempts() {
        let mut b = Backoff::new(1_000, 30_000);
        for _ in 0..10_000 {
            assert!(b.next_delay_ms(7) <= 30_000);
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest! {
        #[test]
        fn delays_stay_within_half_and_full_ceiling(attempts in 0u32..40, random: u32) {
            let mut b = Backoff::new(1_000, 30_000);
            for _ in 0..attempts {
                b.next_delay_ms(random);
            }
            let ceiling = (1_000u64 << attempts.min(20)).min(30_000);
            let d = b.next_delay_ms(random);
            prop_assert!(d >= ceiling / 2 && d <= ceiling);
        }
    }
}
