//! The lifecycle of a session bound by DBSC (DESIGN §8): opened waiting for the
//! browser's registration, bound once to the browser's key, refreshed (a generation
//! per refresh) by the bound cookie's refreshes, and otherwise the same session as a
//! DPoP one: listed, revoked, closed, rotated, expired, swept and audited alike.
//!
//! The HTTP side (headers, proofs, challenges, the cookie) is in
//! [`crate::axum`]; this is what it asks of the lifecycle.

use std::sync::PoisonError;
use std::time::Duration;

use keybound_proto::dbsc::DbscKey;
use keybound_proto::{AccessTokenClaims, b64, sign_bound_cookie};
use zeroize::Zeroizing;

use super::super::audit::AuditEventKind;
use super::super::policy::secs;
use super::super::tokens::{hash_secret, random_secret};
use super::{OpenRequest, SessionService, parse_session_id};
use crate::lifecycle::LifecycleError;
use crate::session::{Actor, Jkt, Reason};
use crate::store::{
    BindRequest, PENDING_JKT, ReplaceTokensRequest, SessionBinding, SessionRecord, UpdateOutcome,
};

/// A DBSC session just opened: it has no credential until its browser registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingDbsc {
    /// The session id (the registration's `authorization`).
    pub session_id: String,
    /// Until when the browser may register (seconds since the epoch); the session
    /// expires then if it has not.
    pub registration_deadline: i64,
}

/// A bound cookie's value and how long it lives.
#[derive(Clone, Debug)]
pub struct BoundCookieValue {
    /// The signed value (`kb-dbsc+jwt`).
    pub value: String,
    /// Its lifetime in seconds (`Max-Age`).
    pub max_age: u64,
}

impl SessionService {
    /// Opens a session for `user_id` (whom the application has just authenticated)
    /// that its browser will bind with DBSC. Until the browser registers its key,
    /// within `registration_window`, the session has no credential at all; if it does
    /// not, the session expires at the deadline (and the sweep records it).
    /// `unbound_cookie`: the service's policy lets the browser use an unbound cookie
    /// meanwhile (recorded as the reason of `session.created`: `dbsc_unbound_cookie`,
    /// else `dbsc_registration_pending`).
    ///
    /// Errors as [`open_session`](Self::open_session).
    pub async fn open_dbsc_session(
        &self,
        user_id: &str,
        request: OpenRequest,
        registration_window: Duration,
        unbound_cookie: bool,
    ) -> Result<PendingDbsc, LifecycleError> {
        let window = secs(registration_window).max(1);
        let note = if unbound_cookie {
            Reason::DBSC_UNBOUND_COOKIE
        } else {
            Reason::DBSC_REGISTRATION_PENDING
        };
        let opened = self
            .open_record(
                user_id,
                PENDING_JKT,
                SessionBinding::DbscPending,
                request,
                Some(window),
                Some(note),
            )
            .await?;
        Ok(PendingDbsc {
            session_id: opened.record.id.to_string(),
            registration_deadline: opened.record.idle_expires_at,
        })
    }

    /// The stored session, as is (`None` for an unknown or malformed id).
    pub async fn load_session(
        &self,
        session_id: &str,
    ) -> Result<Option<SessionRecord>, LifecycleError> {
        let Ok(id) = parse_session_id(session_id) else {
            return Ok(None);
        };
        Ok(self.inner.store.load(id).await?)
    }

    /// Binds a session waiting for its registration to the browser's verified key,
    /// once (atomically, on every store), and restarts its idle timeout. Emits
    /// `session.bound`.
    ///
    /// Errors: `session_not_found`, `session_*` (ended), `dbsc_already_registered`.
    pub async fn bind_dbsc(
        &self,
        session_id: &str,
        key: &DbscKey,
    ) -> Result<SessionRecord, LifecycleError> {
        let id = parse_session_id(session_id)?;
        let jkt = thumbprint(key)?;
        let now = self.now();
        let idle = secs(self.inner.policy.idle_timeout());
        let outcome = self
            .inner
            .store
            .bind_dbsc(BindRequest {
                id,
                jkt,
                key: key.to_json().to_string(),
                now,
                idle_expires_at: now.saturating_add(idle),
            })
            .await?;
        let record = self.updated(outcome, LifecycleError::DbscAlreadyRegistered)?;
        self.drop_cached(&record.id);
        let actor = Actor::User(record.user_id.clone());
        self.emit(AuditEventKind::Bound, (&record).into(), None, &actor);
        Ok(record)
    }

    /// A bound cookie refreshed through a verified DBSC proof by the key `jkt` names:
    /// a new generation (the DBSC session's refresh counter), a restarted idle
    /// timeout, `session.refreshed`. The previous generation's cookie stays accepted
    /// for the refresh grace period (requests the browser sent while it refreshed).
    ///
    /// Errors: `session_not_found`, `session_*` (ended), `session_key_mismatch`.
    pub async fn refresh_dbsc(
        &self,
        session_id: &str,
        jkt: &Jkt,
    ) -> Result<SessionRecord, LifecycleError> {
        let id = parse_session_id(session_id)?;
        let now = self.now();
        let idle = secs(self.inner.policy.idle_timeout());
        let grace = secs(self.inner.policy.refresh_grace());
        let secret = random_secret()?;
        let outcome = self
            .inner
            .store
            .replace_tokens(ReplaceTokensRequest {
                id,
                jkt: *jkt,
                next: hash_secret(&secret),
                now,
                idle_expires_at: now.saturating_add(idle),
                grace_until: Some(now.saturating_add(grace)),
            })
            .await?;
        let record = self.updated(outcome, LifecycleError::SessionKeyMismatch)?;
        self.drop_cached(&record.id);
        let actor = Actor::User(record.user_id.clone());
        self.emit(AuditEventKind::Refreshed, (&record).into(), None, &actor);
        Ok(record)
    }

    /// The value of a session's bound cookie: the claims of an access token (`sid`,
    /// `sub`, `cnf.jkt` the DBSC key's thumbprint, `exp` one access-token lifetime
    /// ahead but not past the session's deadline) and `gen`, the session's generation,
    /// typed `kb-dbsc+jwt`, signed with the current server key.
    pub fn bound_cookie(&self, record: &SessionRecord) -> Result<BoundCookieValue, LifecycleError> {
        let now = self.now();
        let access = secs(self.inner.policy.access_token_lifetime());
        let exp = now.saturating_add(access).min(record.deadline());
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|_| LifecycleError::Randomness)?;
        let claims = AccessTokenClaims {
            iss: self.inner.issuer.clone(),
            sub: record.user_id.clone(),
            sid: record.id.to_string(),
            jti: b64::encode(jti),
            iat: now,
            exp,
            jkt: record.jkt.to_string(),
        };
        let ring = self
            .inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let current = ring.current();
        let value = sign_bound_cookie(
            &claims,
            record.generation,
            current.kid(),
            current.signing_key(),
        )
        .map_err(LifecycleError::Signing)?;
        Ok(BoundCookieValue {
            value,
            max_age: u64::try_from(exp - now).unwrap_or(0),
        })
    }

    /// The issuer written into access tokens and bound cookies.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// A secret derived from the refresh secret for `label`: the same on every node
    /// that shares the refresh secret (DBSC challenges use one).
    pub fn derived_secret(&self, label: &str) -> Zeroizing<[u8; 32]> {
        self.inner.secret.derive(label.as_bytes())
    }

    /// The record after an update, or the error it stands for (audit of a newly
    /// made expiry included).
    fn updated(
        &self,
        outcome: UpdateOutcome,
        mismatch: LifecycleError,
    ) -> Result<SessionRecord, LifecycleError> {
        match outcome {
            UpdateOutcome::Updated(record) => Ok(record),
            UpdateOutcome::NotActive {
                record,
                newly_expired,
            } => {
                if newly_expired {
                    self.ended(&record, &Actor::System);
                }
                Err(LifecycleError::SessionEnded {
                    state: record.state,
                })
            }
            UpdateOutcome::KeyMismatch => Err(mismatch),
            UpdateOutcome::NotFound => Err(LifecycleError::SessionNotFound),
        }
    }
}

/// The RFC 7638 thumbprint of a DBSC key as a [`Jkt`].
pub(crate) fn thumbprint(key: &DbscKey) -> Result<Jkt, LifecycleError> {
    Jkt::parse(&key.thumbprint()).ok_or(LifecycleError::InvalidInput {
        field: "jkt",
        reason: "not a base64url SHA-256 key thumbprint",
    })
}
