//! [`SessionService`]: the application's entry point to the session lifecycle.
//!
//! One file per job: [`builder`] configures the service, [`open`] opens sessions and
//! issues tokens, [`refresh`] rotates refresh tokens (with the risk policy's say),
//! [`update`] extends sessions and rotates them on sensitive actions, [`end`] closes and
//! revokes, [`check`] answers the verifier's session check and lists sessions, [`page`]
//! pages that list. This file holds the service itself and what they share (audit,
//! cache, input checks).

mod builder;
mod check;
mod dbsc;
mod end;
mod open;
mod page;
mod refresh;
mod update;

use std::sync::Arc;

use serde::Serialize;

use super::audit::{AuditEvent, AuditEventKind, AuditSink};
use super::cache::SessionCache;
use super::risk::RiskPolicy;
use super::sweeper::SweepHook;
use super::{LifecycleError, Policy, RefreshSecret, metrics};
use crate::session::{Actor, Jkt, Reason, SessionId, SessionState};
use crate::store::{SessionCacheControl, SessionRecord, SessionStore, SweptSession};
use crate::{Clock, SharedKeyRing};

pub use builder::SessionServiceBuilder;
#[cfg(feature = "axum")]
pub(crate) use dbsc::thumbprint as dbsc_thumbprint;
pub use dbsc::{BoundCookieValue, PendingDbsc};
pub use open::{LoginFence, OpenRequest};
pub use page::{PageCursor, SessionPage};

const MAX_USER_ID_LEN: usize = 256;

/// One session as its user sees it (`GET /session/sessions`).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The session id.
    pub session_id: String,
    /// The user.
    pub user_id: String,
    /// The device label from the login request.
    pub device_label: Option<String>,
    /// When the session was opened (seconds since the epoch).
    pub created_at: i64,
    /// The last login, refresh, extend or sensitive-action rotation.
    pub last_seen_at: i64,
    /// When the session expires unless used.
    pub idle_expires_at: i64,
    /// When the session expires at the latest.
    pub expires_at: i64,
    /// The state now (a passed deadline counts as `expired`).
    pub state: SessionState,
    /// Why it ended.
    pub reason: Option<Reason>,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// Whether this is the session making the request.
    pub current: bool,
    /// How the session is bound: `dpop`, `dbsc`, or `dbsc_pending` (signed in, the
    /// browser has not registered its DBSC key yet).
    pub binding: &'static str,
}

impl SessionInfo {
    pub(crate) fn new(record: &SessionRecord, now: i64, current: Option<SessionId>) -> Self {
        let (reason, ended_at) = match record.pending_expiry(now) {
            Some((at, reason)) => (Some(reason), Some(at)),
            None => (record.reason.clone(), record.ended_at),
        };
        Self {
            session_id: record.id.to_string(),
            user_id: record.user_id.clone(),
            device_label: record.device_label.clone(),
            created_at: record.created_at,
            last_seen_at: record.last_seen_at,
            idle_expires_at: record.idle_expires_at,
            expires_at: record.absolute_expires_at,
            state: record.effective_state(now),
            reason,
            ended_at,
            current: Some(record.id) == current,
            binding: record.binding.name(),
        }
    }
}

/// The result of ending a session (close or revoke). Ending is idempotent: a session
/// that had already ended is a success with `changed == false`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndResult {
    /// The session.
    pub session_id: String,
    /// Its state now.
    pub state: SessionState,
    /// Why it ended.
    pub reason: Option<Reason>,
    /// Whether this call ended it.
    pub changed: bool,
}

impl EndResult {
    fn new(record: &SessionRecord, changed: bool) -> Self {
        Self {
            session_id: record.id.to_string(),
            state: record.state,
            reason: record.reason.clone(),
            changed,
        }
    }
}

pub(super) struct Inner {
    pub(super) store: Arc<dyn SessionStore>,
    keys: SharedKeyRing,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) policy: Policy,
    issuer: String,
    risk: Option<Arc<dyn RiskPolicy>>,
    audit: Vec<Arc<dyn AuditSink>>,
    secret: RefreshSecret,
    cache: Option<SessionCache>,
    max_sessions_per_user: Option<usize>,
    pub(super) replay_cleanup: Option<Arc<dyn SweepHook>>,
}

/// The session lifecycle (DESIGN §4): opens sessions bound to a device key, rotates
/// refresh tokens with reuse detection, extends, closes and revokes sessions, lists a
/// user's sessions, expires and purges them, and emits audit events and metrics.
///
/// Cheap to clone (clones share everything). It is also the verifier's
/// [`SessionCheck`](crate::SessionCheck): a session revoked, closed or expired through any clone is refused
/// on the very next request.
///
/// Every operation is idempotent where the design asks for it and reads the injected
/// [`Clock`]. See the [module documentation](crate::lifecycle) for an example.
#[derive(Clone)]
pub struct SessionService {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("issuer", &self.inner.issuer)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

/// The identity fields of an audit event.
struct Subject<'a> {
    id: &'a SessionId,
    user_id: &'a str,
    jkt: &'a Jkt,
    generation: u64,
}

impl<'a> From<&'a SessionRecord> for Subject<'a> {
    fn from(r: &'a SessionRecord) -> Self {
        Self {
            id: &r.id,
            user_id: &r.user_id,
            jkt: &r.jkt,
            generation: r.generation,
        }
    }
}

impl<'a> From<&'a SweptSession> for Subject<'a> {
    fn from(s: &'a SweptSession) -> Self {
        Self {
            id: &s.id,
            user_id: &s.user_id,
            jkt: &s.jkt,
            generation: s.generation,
        }
    }
}

fn parse_session_id(text: &str) -> Result<SessionId, LifecycleError> {
    SessionId::parse(text).ok_or(LifecycleError::SessionNotFound)
}

fn parse_jkt(text: &str) -> Result<Jkt, LifecycleError> {
    Jkt::parse(text).ok_or(LifecycleError::InvalidInput {
        field: "jkt",
        reason: "not a base64url SHA-256 key thumbprint",
    })
}

fn check_user_id(user_id: &str) -> Result<(), LifecycleError> {
    let reason = if user_id.is_empty() {
        "empty"
    } else if user_id.len() > MAX_USER_ID_LEN {
        "longer than 256 bytes"
    } else if user_id.chars().any(char::is_control) {
        "contains control characters"
    } else {
        return Ok(());
    };
    Err(LifecycleError::InvalidInput {
        field: "user_id",
        reason,
    })
}

impl SessionService {
    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// Drops what this process caches about a session, so the next check reads the
    /// store. The service does this itself for every change it makes; stores that
    /// learn about changes made elsewhere (another node) call it.
    pub fn invalidate_cached(&self, session_id: &str) {
        if let Some(id) = SessionId::parse(session_id) {
            self.drop_cached(&id);
        }
    }

    /// Drops everything this process caches about sessions.
    pub fn invalidate_all_cached(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.clear();
        }
    }

    /// Stops trusting the session cache: it is emptied and every session check reads
    /// the store until [`resume_session_cache`](Self::resume_session_cache). A
    /// cross-node store calls this while it cannot receive other nodes' change
    /// notifications (its subscription is down), so no node relies on a cache that
    /// may have missed a revocation.
    pub fn suspend_session_cache(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.set_suspended(true);
        }
    }

    /// Uses the session cache again (starting empty) after
    /// [`suspend_session_cache`](Self::suspend_session_cache).
    pub fn resume_session_cache(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.set_suspended(false);
        }
    }

    /// Whether the session cache is suspended (always `false` without a cache).
    pub fn is_session_cache_suspended(&self) -> bool {
        self.inner
            .cache
            .as_ref()
            .is_some_and(SessionCache::is_suspended)
    }

    pub(super) fn drop_cached(&self, id: &SessionId) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate(id);
        }
    }

    pub(super) fn now(&self) -> i64 {
        self.inner.clock.now_secs()
    }

    fn emit(
        &self,
        kind: AuditEventKind,
        subject: Subject<'_>,
        reason: Option<&Reason>,
        actor: &Actor,
    ) {
        if !self.inner.audit.iter().any(|sink| sink.enabled()) {
            return;
        }
        let event = AuditEvent {
            ts: self.inner.clock.now_ms(),
            event: kind,
            session_id: subject.id.to_string(),
            user_id: subject.user_id.to_owned(),
            jkt: subject.jkt.to_string(),
            reason: reason.map(|r| r.as_str().to_owned()),
            actor: actor.to_string(),
            generation: subject.generation,
        };
        for sink in &self.inner.audit {
            sink.record(&event);
        }
    }

    /// Audit, metrics and cache after a session became terminal.
    fn ended(&self, record: &SessionRecord, actor: &Actor) {
        self.drop_cached(&record.id);
        let reason = record.reason.clone().unwrap_or(Reason::RISK_POLICY);
        let kind = match record.state {
            SessionState::Expired => {
                metrics::expired(&reason);
                AuditEventKind::Expired
            }
            SessionState::Closed => {
                metrics::closed();
                AuditEventKind::Closed
            }
            SessionState::Revoked if reason == Reason::REFRESH_REUSE => {
                metrics::revoked(&reason);
                AuditEventKind::RefreshReuse
            }
            SessionState::Revoked | SessionState::Active => {
                metrics::revoked(&reason);
                AuditEventKind::Revoked
            }
        };
        self.emit(kind, record.into(), Some(&reason), actor);
    }

    pub(super) fn swept(&self, swept: &SweptSession, kind: AuditEventKind) {
        // Purged sessions ended long ago and are no longer cached.
        if kind == AuditEventKind::Expired {
            self.drop_cached(&swept.id);
            metrics::expired(&swept.reason);
        }
        self.emit(kind, swept.into(), Some(&swept.reason), &Actor::System);
    }
}

/// What a cross-node store's invalidation listener does to this service's cache.
impl SessionCacheControl for SessionService {
    fn invalidate(&self, id: &SessionId) {
        self.drop_cached(id);
    }

    fn invalidate_all(&self) {
        self.invalidate_all_cached();
    }

    fn suspend(&self) {
        self.suspend_session_cache();
    }

    fn resume(&self) {
        self.resume_session_cache();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_checked() {
        assert!(check_user_id("alice").is_ok());
        for bad in ["", "a\u{0}b", &"x".repeat(257)] {
            assert_eq!(check_user_id(bad).unwrap_err().code(), "invalid_input");
        }
    }
}
