//! [`LoginLimiter`]: login attempts limited per client address and per username
//! (GCRA, by the `governor` crate), answered `429 rate_limited` with `Retry-After`.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use super::ApiError;
use crate::settings::LoginLimits;

/// How many checks pass between two clean-ups of keys whose budget is full again.
const CLEANUP_EVERY: u32 = 1024;

/// Limits login attempts per client address and per username, so that guessing
/// passwords is slow: from one address across many accounts, and on one account from
/// many addresses.
///
/// Every attempt counts, successful or not, and is checked before the credentials
/// (an attacker learns nothing from a refused attempt). A client address is the
/// connection's address (IPv6 addresses by their /64 prefix, which one host usually
/// holds whole); behind a proxy, pass the address the proxy reports, and only when
/// the proxy is trusted. Each budget refills continuously (`per_minute` attempts per
/// minute, as a burst of as many); a refused attempt gets [`ApiError::RateLimited`]:
/// `429` with `Retry-After` (whole seconds until the next attempt may pass) and
/// `error_code` `rate_limited`.
///
/// Memory is bounded: at most `max_tracked_keys` addresses and as many usernames are
/// tracked. Keys whose budget is full again are forgotten regularly; while the table
/// is still full of recent keys, attempts from new keys are refused too (fail closed).
///
/// A per-username limit lets anyone slow down one user's logins by failing on
/// purpose; the per-address limit keeps that to a few attackers' addresses' worth.
///
/// ```
/// use keybound_server::axum::LoginLimiter;
/// use keybound_server::settings::LoginLimits;
///
/// let limiter = LoginLimiter::new(&LoginLimits { per_ip_per_minute: 2, per_user_per_minute: 5, max_tracked_keys: 1000 });
/// let ip = "203.0.113.7".parse().ok();
/// assert!(limiter.check(ip, "alice").is_ok());
/// assert!(limiter.check(ip, "bob").is_ok());
/// let refused = limiter.check(ip, "carol").unwrap_err();
/// assert_eq!(refused.code(), "rate_limited");
/// ```
#[derive(Debug)]
pub struct LoginLimiter {
    per_ip: Option<DefaultKeyedRateLimiter<IpKey>>,
    per_user: Option<DefaultKeyedRateLimiter<[u8; 16]>>,
    max_tracked_keys: usize,
    checks: AtomicU32,
}

/// A client address as limited: IPv4 whole, IPv6 by its /64 prefix.
type IpKey = [u8; 16];

fn ip_key(ip: IpAddr) -> IpKey {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.to_ipv6_mapped().octets();
            }
            let mut key = v6.octets();
            key[8..].fill(0);
            key
        }
    }
}

/// Usernames are kept as a short hash: a fixed size whatever their length, and no
/// usernames in memory.
fn user_key(username: &str) -> [u8; 16] {
    let digest = Sha256::digest(username.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

fn limiter<K: Clone + Hash + Eq>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

impl LoginLimiter {
    /// A limiter with these budgets (`0` turns a limit off).
    pub fn new(limits: &LoginLimits) -> Self {
        Self {
            per_ip: limiter(limits.per_ip_per_minute),
            per_user: limiter(limits.per_user_per_minute),
            max_tracked_keys: limits.max_tracked_keys.max(1),
            checks: AtomicU32::new(0),
        }
    }

    /// Counts one login attempt by `ip` (when known) for `username`: `Ok` when both
    /// budgets allow it, [`ApiError::RateLimited`] otherwise. The address is checked
    /// first, so a refused address does not use up the username's budget.
    pub fn check(&self, ip: Option<IpAddr>, username: &str) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == 0 {
            self.clean_up();
        }
        if let (Some(limiter), Some(ip)) = (&self.per_ip, ip) {
            self.check_key(limiter, &ip_key(ip))?;
        }
        if let Some(limiter) = &self.per_user {
            self.check_key(limiter, &user_key(username))?;
        }
        Ok(())
    }

    fn check_key<K: Clone + Hash + Eq>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), ApiError> {
        if limiter.len() >= self.max_tracked_keys {
            limiter.retain_recent();
            if limiter.len() >= self.max_tracked_keys {
                return Err(ApiError::RateLimited {
                    retry_after_secs: 60,
                });
            }
        }
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after_secs: whole_secs(wait),
            }
        })
    }

    /// Forgets the keys whose budget is full again.
    fn clean_up(&self) {
        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_user {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Seconds to wait, rounded up, at least one.
fn whole_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_ip: u32, per_user: u32) -> LoginLimits {
        LoginLimits {
            per_ip_per_minute: per_ip,
            per_user_per_minute: per_user,
            max_tracked_keys: 100,
        }
    }

    #[test]
    fn address_budget_spans_usernames() {
        let limiter = LoginLimiter::new(&limits(3, 100));
        let ip = "198.51.100.1".parse().ok();
        for user in ["a", "b", "c"] {
            limiter.check(ip, user).unwrap();
        }
        match limiter.check(ip, "d") {
            Err(ApiError::RateLimited { retry_after_secs }) => {
                assert!((1..=20).contains(&retry_after_secs), "{retry_after_secs}");
            }
            other => panic!("{other:?}"),
        }
        limiter.check("198.51.100.2".parse().ok(), "d").unwrap();
    }

    #[test]
    fn username_budget_spans_addresses() {
        let limiter = LoginLimiter::new(&limits(100, 2));
        limiter.check("192.0.2.1".parse().ok(), "alice").unwrap();
        limiter.check("192.0.2.2".parse().ok(), "alice").unwrap();
        let err = limiter
            .check("192.0.2.3".parse().ok(), "alice")
            .unwrap_err();
        assert_eq!(err.code(), "rate_limited");
        limiter.check("192.0.2.3".parse().ok(), "bob").unwrap();
    }

    #[test]
    fn ipv6_hosts_count_by_their_64_prefix() {
        let limiter = LoginLimiter::new(&limits(2, 100));
        limiter.check("2001:db8:1:2::1".parse().ok(), "a").unwrap();
        limiter
            .check("2001:db8:1:2::ffff".parse().ok(), "b")
            .unwrap();
        assert!(
            limiter
                .check("2001:db8:1:2:abcd::9".parse().ok(), "c")
                .is_err()
        );
        limiter.check("2001:db8:1:3::1".parse().ok(), "c").unwrap();
        // An IPv4-mapped address is the IPv4 address.
        limiter.check("192.0.2.9".parse().ok(), "d").unwrap();
        limiter.check("::ffff:192.0.2.9".parse().ok(), "e").unwrap();
        assert!(limiter.check("192.0.2.9".parse().ok(), "f").is_err());
    }

    #[test]
    fn tracked_keys_are_bounded() {
        let limiter = LoginLimiter::new(&LoginLimits {
            per_ip_per_minute: 0,
            per_user_per_minute: 1,
            max_tracked_keys: 10,
        });
        for i in 0..10 {
            limiter.check(None, &format!("user{i}")).unwrap();
        }
        // Every tracked key is recent: a new one is refused, not tracked.
        assert_eq!(
            limiter.check(None, "user10").unwrap_err().code(),
            "rate_limited"
        );
        assert_eq!(limiter.per_user.as_ref().unwrap().len(), 10);
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limiter = LoginLimiter::new(&limits(0, 0));
        for _ in 0..100 {
            limiter.check("192.0.2.1".parse().ok(), "alice").unwrap();
        }
    }
}
