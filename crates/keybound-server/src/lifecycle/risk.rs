//! The risk hook: consulted on login and on every refresh with the request's signals,
//! it may allow, shorten lifetimes, require re-authentication or revoke.

use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::BoxFuture;
use crate::session::Reason;
use crate::store::SessionRecord;

/// What the server knows about the request, beyond its proof: for risk policies.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestSignals {
    /// The client's IP address, as the application determines it (proxies!).
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
}

impl RequestSignals {
    /// No signals.
    pub fn new() -> Self {
        Self::default()
    }

    /// With the client's IP address.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// With the `User-Agent` header.
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// The short hash of the user agent that sessions keep from their login
    /// ([`SessionRecord::user_agent_hash`]).
    pub fn user_agent_hash(&self) -> Option<[u8; 8]> {
        self.user_agent.as_deref().map(|ua| {
            let digest = Sha256::digest(ua.as_bytes());
            let mut out = [0u8; 8];
            out.copy_from_slice(&digest[..8]);
            out
        })
    }
}

/// When the risk policy is consulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RiskEvent {
    /// Before a session is opened.
    Login,
    /// Before a session's refresh token is rotated.
    Refresh,
}

/// What a risk policy sees.
#[non_exhaustive]
#[derive(Clone, Copy, Debug)]
pub struct RiskContext<'a> {
    /// Login or refresh.
    pub event: RiskEvent,
    /// The user.
    pub user_id: &'a str,
    /// The session, on refresh.
    pub session: Option<&'a SessionRecord>,
    /// The device label of the login request, or of the session.
    pub device_label: Option<&'a str>,
    /// The request's signals.
    pub signals: &'a RequestSignals,
    /// The current time, seconds since the epoch.
    pub now: i64,
}

/// Shorter lifetimes for this login or refresh (longer values than the policy's are
/// ignored).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LifetimeLimits {
    /// A shorter access-token lifetime.
    pub access_token_lifetime: Option<Duration>,
    /// A shorter idle timeout.
    pub idle_timeout: Option<Duration>,
    /// The session ends at most this long from now.
    pub absolute_lifetime: Option<Duration>,
}

impl LifetimeLimits {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits the access-token lifetime.
    pub fn access_token_lifetime(mut self, d: Duration) -> Self {
        self.access_token_lifetime = Some(d);
        self
    }

    /// Limits the idle timeout.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = Some(d);
        self
    }

    /// Ends the session at most `d` from now.
    pub fn absolute_lifetime(mut self, d: Duration) -> Self {
        self.absolute_lifetime = Some(d);
        self
    }
}

/// A risk policy's answer.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RiskDecision {
    /// Go ahead.
    Allow,
    /// Go ahead with shorter lifetimes.
    Shorten(LifetimeLimits),
    /// Refuse; on refresh the session is revoked with
    /// [`Reason::REAUTHENTICATION_REQUIRED`] and the client is told to sign in again
    /// (`reauthentication_required`).
    RequireReauthentication,
    /// Refuse; on refresh the session is revoked with this reason (`session_revoked`),
    /// on login no session is opened (`login_denied`).
    Revoke(Reason),
}

/// A hook deciding on logins and refreshes from the request's signals.
///
/// Called once per login and once per refresh, before anything is written. Keep it
/// fast: it runs on the request path.
pub trait RiskPolicy: Send + Sync + 'static {
    /// Assesses one login or refresh.
    fn assess<'a>(&'a self, context: RiskContext<'a>) -> BoxFuture<'a, RiskDecision>;
}

/// An example policy: revoke a session whose refresh comes with another `User-Agent`
/// than its login (a token copied to another browser, even with its key, usually
/// shows up this way).
///
/// Refreshes without a `User-Agent`, and sessions opened without one, are allowed.
/// Browsers update themselves and change their user agent; with the default 12-hour
/// absolute lifetime this is rare, but a deployment with long sessions may prefer to
/// compare only the browser family.
///
/// ```
/// use keybound_server::lifecycle::{SessionService, UserAgentChangePolicy};
/// use keybound_server::{KeyRing, store::MemoryStore};
/// let service = SessionService::builder(MemoryStore::new(), KeyRing::generate().unwrap())
///     .risk_policy(UserAgentChangePolicy)
///     .build()
///     .unwrap();
/// # drop(service);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct UserAgentChangePolicy;

impl UserAgentChangePolicy {
    /// The reason sessions are revoked with: `user_agent_changed`.
    pub fn reason() -> Reason {
        Reason::new("user_agent_changed").unwrap_or(Reason::RISK_POLICY)
    }
}

impl RiskPolicy for UserAgentChangePolicy {
    fn assess<'a>(&'a self, context: RiskContext<'a>) -> BoxFuture<'a, RiskDecision> {
        let decision = match (context.event, context.session) {
            (RiskEvent::Refresh, Some(session)) => {
                match (session.user_agent_hash, context.signals.user_agent_hash()) {
                    (Some(at_login), Some(now)) if at_login != now => {
                        RiskDecision::Revoke(Self::reason())
                    }
                    _ => RiskDecision::Allow,
                }
            }
            _ => RiskDecision::Allow,
        };
        Box::pin(std::future::ready(decision))
    }
}
