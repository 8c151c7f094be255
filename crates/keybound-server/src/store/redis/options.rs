//! [`RedisOptions`]: key prefix, timeouts, retention and liveness of a [`RedisStore`](super::RedisStore).

use std::time::Duration;

use super::StoreError;

/// Settings of a [`RedisStore`](super::RedisStore).
///
/// | setting | default |
/// |---|---|
/// | key prefix | `keybound:` |
/// | timeout of every call | 2 s |
/// | timeout of the first connection | 10 s |
/// | retention of ended sessions (use the policy's) | 7 days |
/// | TTL margin beyond the retention | 1 h |
/// | subscription liveness check | every 1 s |
///
/// ```
/// use std::time::Duration;
/// use keybound_server::store::redis::RedisOptions;
/// let options = RedisOptions::default()
///     .prefix("shop:sessions:")
///     .timeout(Duration::from_millis(500));
/// assert_eq!(options.key_prefix(), "shop:sessions:");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    pub(super) prefix: String,
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) retention: Duration,
    pub(super) ttl_margin: Duration,
    pub(super) liveness_interval: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "keybound:".into(),
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(10),
            retention: Duration::from_secs(7 * 24 * 3600),
            ttl_margin: Duration::from_secs(3600),
            liveness_interval: Duration::from_secs(1),
        }
    }
}

impl RedisOptions {
    /// The prefix of every key and of the channel, so several services (or tests)
    /// can share one Redis. Default `keybound:`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long any one Redis call may take before it fails with
    /// [`StoreError::Unavailable`] (default 2 s). Requests waiting on Redis fail
    /// closed after this long.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long [`RedisStore::connect_with`](super::RedisStore::connect_with) waits for Redis (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long ended sessions are kept: give the policy's retention
    /// ([`Policy::retention`](crate::lifecycle::Policy::retention)); default 7 days.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long past the retention Redis keeps a session before its TTL drops it
    /// (default 1 h): time for the sweeper to purge it first and emit its audit event.
    pub fn ttl_margin(mut self, margin: Duration) -> Self {
        self.ttl_margin = margin;
        self
    }

    /// How often the invalidation listener checks that its subscription is alive
    /// (default 1 s). A subscription that does not answer within
    /// [`timeout`](Self::timeout) counts as lost: the node stops trusting its cache
    /// until it has subscribed again.
    pub fn liveness_interval(mut self, interval: Duration) -> Self {
        self.liveness_interval = interval;
        self
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The timeout of every call.
    pub fn call_timeout(&self) -> Duration {
        self.timeout
    }

    /// The longest a node may trust its session cache after its subscription broke
    /// without Redis closing the connection: one liveness interval plus one timeout.
    /// (A closed connection is noticed at once.) The session cache's own TTL bounds
    /// it too.
    pub fn staleness_bound(&self) -> Duration {
        self.liveness_interval + self.timeout
    }

    /// The channel revocations are published on: `{prefix}events`.
    pub fn channel(&self) -> String {
        format!("{}events", self.prefix)
    }

    pub(super) fn validate(&self) -> Result<(), StoreError> {
        let invalid = |reason: &str| {
            Err(StoreError::Backend {
                reason: format!("invalid Redis options: {reason}"),
            })
        };
        if self.prefix.chars().any(char::is_control) {
            return invalid("the key prefix contains control characters");
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return invalid("timeouts must be positive");
        }
        if self.retention.as_secs() == 0 || self.liveness_interval.is_zero() {
            return invalid("the retention and the liveness interval must be positive");
        }
        Ok(())
    }

    /// Seconds a session is kept after its end (retention + margin).
    pub(super) fn keep_secs(&self) -> u64 {
        self.retention
            .as_secs()
            .saturating_add(self.ttl_margin.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        assert!(RedisOptions::default().validate().is_ok());
        assert!(RedisOptions::default().prefix("a\nb").validate().is_err());
        assert!(
            RedisOptions::default()
                .timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
        let o = RedisOptions::default();
        assert_eq!(o.channel(), "keybound:events");
        assert_eq!(o.staleness_bound(), Duration::from_secs(3));
        assert_eq!(o.keep_secs(), 7 * 24 * 3600 + 3600);
    }
}
