//! The lifecycle policy: lifetimes, grace, retention and sweeping, with defaults and
//! start-up validation.

use std::time::Duration;

use super::PolicyError;

const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Lifetimes and cleanup settings of sessions. All durations count in whole seconds
/// (fractions are dropped).
///
/// | setting | default |
/// |---|---|
/// | access-token lifetime | 300 s |
/// | idle timeout (no refresh or `extend`) | 30 min |
/// | absolute session lifetime | 12 h |
/// | refresh grace (previous token replays) | 30 s |
/// | retention of terminal sessions before purge | 7 days |
/// | sweep interval | 60 s |
/// | sweep batch size | 10 000 sessions |
///
/// [`validate`](Self::validate) (called when the service is built) refuses zero
/// values, a grace period not shorter than the access-token lifetime, an access-token
/// lifetime longer than the idle timeout and an idle timeout longer than the absolute
/// lifetime.
///
/// ```
/// use std::time::Duration;
/// use keybound_server::lifecycle::Policy;
/// let policy = Policy::default().with_idle_timeout(Duration::from_secs(15 * 60));
/// policy.validate().unwrap();
/// let bad = Policy::default().with_refresh_grace(Duration::from_secs(300));
/// assert_eq!(bad.validate().unwrap_err().code(), "policy_grace_too_long");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    access_token_lifetime: Duration,
    idle_timeout: Duration,
    absolute_lifetime: Duration,
    refresh_grace: Duration,
    retention: Duration,
    sweep_interval: Duration,
    sweep_batch_size: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            access_token_lifetime: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_lifetime: Duration::from_secs(12 * 3600),
            refresh_grace: Duration::from_secs(30),
            retention: Duration::from_secs(7 * 24 * 3600),
            sweep_interval: Duration::from_secs(60),
            sweep_batch_size: 10_000,
        }
    }
}

pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl Policy {
    /// Sets the access-token lifetime.
    pub fn with_access_token_lifetime(mut self, d: Duration) -> Self {
        self.access_token_lifetime = d;
        self
    }

    /// Sets the idle timeout: how long a session lives without a refresh or `extend`.
    pub fn with_idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Sets the absolute lifetime: how long a session lives at most.
    pub fn with_absolute_lifetime(mut self, d: Duration) -> Self {
        self.absolute_lifetime = d;
        self
    }

    /// Sets the grace period in which the previous refresh token, presented again by
    /// the same key, gets the current tokens again.
    pub fn with_refresh_grace(mut self, d: Duration) -> Self {
        self.refresh_grace = d;
        self
    }

    /// Sets how long terminal sessions are kept (for listing and audit) before purge.
    pub fn with_retention(mut self, d: Duration) -> Self {
        self.retention = d;
        self
    }

    /// Sets the period of the background sweeper.
    pub fn with_sweep_interval(mut self, d: Duration) -> Self {
        self.sweep_interval = d;
        self
    }

    /// Sets how many sessions one sweep step handles while holding the store.
    pub fn with_sweep_batch_size(mut self, n: usize) -> Self {
        self.sweep_batch_size = n;
        self
    }

    /// The access-token lifetime.
    pub fn access_token_lifetime(&self) -> Duration {
        self.access_token_lifetime
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The absolute lifetime.
    pub fn absolute_lifetime(&self) -> Duration {
        self.absolute_lifetime
    }

    /// The refresh grace period.
    pub fn refresh_grace(&self) -> Duration {
        self.refresh_grace
    }

    /// The retention of terminal sessions.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// The sweep interval.
    pub fn sweep_interval(&self) -> Duration {
        self.sweep_interval
    }

    /// The sweep batch size.
    pub fn sweep_batch_size(&self) -> usize {
        self.sweep_batch_size
    }

    /// Checks the policy for nonsense; see the type's documentation.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let durations = [
            ("access_token_lifetime", self.access_token_lifetime),
            ("idle_timeout", self.idle_timeout),
            ("absolute_lifetime", self.absolute_lifetime),
            ("refresh_grace", self.refresh_grace),
            ("retention", self.retention),
            ("sweep_interval", self.sweep_interval),
        ];
        for (setting, d) in durations {
            if d.as_secs() == 0 {
                return Err(PolicyError::Zero { setting });
            }
            if d > MAX_DURATION {
                return Err(PolicyError::TooLarge { setting });
            }
        }
        if self.sweep_batch_size == 0 {
            return Err(PolicyError::Zero {
                setting: "sweep_batch_size",
            });
        }
        if self.refresh_grace.as_secs() >= self.access_token_lifetime.as_secs() {
            return Err(PolicyError::GraceNotBelowAccessLifetime);
        }
        if self.idle_timeout.as_secs() > self.absolute_lifetime.as_secs() {
            return Err(PolicyError::IdleExceedsAbsolute);
        }
        if self.access_token_lifetime.as_secs() > self.idle_timeout.as_secs() {
            return Err(PolicyError::AccessExceedsIdle);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(p: Policy) -> &'static str {
        p.validate().unwrap_err().code()
    }

    #[test]
    fn defaults_are_documented_and_valid() {
        let p = Policy::default();
        p.validate().unwrap();
        assert_eq!(p.access_token_lifetime(), Duration::from_secs(300));
        assert_eq!(p.idle_timeout(), Duration::from_secs(1800));
        assert_eq!(p.absolute_lifetime(), Duration::from_secs(43_200));
        assert_eq!(p.refresh_grace(), Duration::from_secs(30));
        assert_eq!(p.retention(), Duration::from_secs(604_800));
    }

    #[test]
    fn nonsense_is_refused_with_its_code() {
        let d = Policy::default();
        assert_eq!(
            code(d.clone().with_refresh_grace(Duration::from_secs(300))),
            "policy_grace_too_long"
        );
        assert_eq!(
            code(d.clone().with_refresh_grace(Duration::from_secs(301))),
            "policy_grace_too_long"
        );
        assert_eq!(
            code(d.clone().with_idle_timeout(Duration::from_secs(13 * 3600))),
            "policy_idle_exceeds_absolute"
        );
        assert_eq!(
            code(
                d.clone()
                    .with_access_token_lifetime(Duration::from_secs(3600))
            ),
            "policy_access_exceeds_idle"
        );
        assert_eq!(
            code(d.clone().with_retention(Duration::ZERO)),
            "policy_zero_value"
        );
        assert_eq!(
            code(d.clone().with_refresh_grace(Duration::from_millis(500))),
            "policy_zero_value"
        );
        assert_eq!(
            code(d.clone().with_sweep_batch_size(0)),
            "policy_zero_value"
        );
        assert_eq!(
            code(d.with_absolute_lifetime(Duration::from_secs(u64::MAX))),
            "policy_value_too_large"
        );
    }
}
