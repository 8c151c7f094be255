//! Changing an active session: "stay signed in", and new tokens after a sensitive
//! action.

use super::super::audit::AuditEventKind;
use super::super::policy::secs;
use super::super::tokens::{hash_secret, random_secret};
use super::{SessionInfo, SessionService, parse_jkt, parse_session_id};
use crate::lifecycle::LifecycleError;
use crate::session::{Actor, Reason};
use crate::store::{ReplaceTokensRequest, SessionRecord, TouchRequest, UpdateOutcome};
use keybound_proto::TokenResponse;
use zeroize::Zeroizing;

impl SessionService {
    /// The record of an update, or why the session could not be updated.
    fn update_result(&self, outcome: UpdateOutcome) -> Result<SessionRecord, LifecycleError> {
        match outcome {
            UpdateOutcome::Updated(record) => {
                self.drop_cached(&record.id);
                Ok(record)
            }
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
            UpdateOutcome::KeyMismatch => Err(LifecycleError::SessionKeyMismatch),
            UpdateOutcome::NotFound => Err(LifecycleError::SessionNotFound),
        }
    }

    /// The user chose "stay signed in": restarts the idle timeout (never beyond the
    /// absolute lifetime). Returns the session as it is now.
    pub async fn extend(&self, session_id: &str) -> Result<SessionInfo, LifecycleError> {
        let id = parse_session_id(session_id)?;
        let now = self.now();
        let outcome = self
            .inner
            .store
            .touch(TouchRequest {
                id,
                now,
                idle_expires_at: now.saturating_add(secs(self.inner.policy.idle_timeout())),
            })
            .await?;
        let record = self.update_result(outcome)?;
        Ok(SessionInfo::new(&record, now, Some(id)))
    }

    /// Replaces the session's tokens after a sensitive action (password or privilege
    /// change): a new refresh token (generation +1, without grace for the old one)
    /// and a new access token. With `revoke_others`, every other session of the user
    /// is revoked (`sensitive_action`). `jkt` is the key of the request's proof.
    ///
    /// Access tokens already issued stay valid until they expire (at most the
    /// access-token lifetime). For a session bound by DBSC, use
    /// [`rotate_dbsc_on_sensitive_action`](Self::rotate_dbsc_on_sensitive_action).
    pub async fn rotate_on_sensitive_action(
        &self,
        session_id: &str,
        jkt: &str,
        revoke_others: bool,
    ) -> Result<TokenResponse, LifecycleError> {
        let now = self.now();
        let (record, secret) = self
            .replace_on_sensitive_action(session_id, jkt, revoke_others)
            .await?;
        let access = secs(self.inner.policy.access_token_lifetime());
        self.token_response(&record, &secret, access, now)
    }

    /// A sensitive action (password or privilege change) in a session bound by DBSC:
    /// the session moves to a new generation without grace, so every bound cookie
    /// issued before is refused from now on (on other nodes as soon as they hear of
    /// it); hand the browser [`bound_cookie`](Self::bound_cookie) of the returned
    /// session. With `revoke_others`, every other session of the user is revoked
    /// (`sensitive_action`). `jkt` is the thumbprint of the session's DBSC key.
    ///
    /// Errors as [`rotate_on_sensitive_action`](Self::rotate_on_sensitive_action).
    pub async fn rotate_dbsc_on_sensitive_action(
        &self,
        session_id: &str,
        jkt: &str,
        revoke_others: bool,
    ) -> Result<SessionRecord, LifecycleError> {
        let (record, _) = self
            .replace_on_sensitive_action(session_id, jkt, revoke_others)
            .await?;
        Ok(record)
    }

    async fn replace_on_sensitive_action(
        &self,
        session_id: &str,
        jkt: &str,
        revoke_others: bool,
    ) -> Result<(SessionRecord, Zeroizing<[u8; 32]>), LifecycleError> {
        let id = parse_session_id(session_id)?;
        let jkt = parse_jkt(jkt)?;
        let now = self.now();
        let secret = random_secret()?;
        let outcome = self
            .inner
            .store
            .replace_tokens(ReplaceTokensRequest {
                id,
                jkt,
                next: hash_secret(&secret),
                now,
                idle_expires_at: now.saturating_add(secs(self.inner.policy.idle_timeout())),
                grace_until: None,
            })
            .await?;
        let record = self.update_result(outcome)?;
        let actor = Actor::User(record.user_id.clone());
        self.emit(
            AuditEventKind::Rotated,
            (&record).into(),
            Some(&Reason::SENSITIVE_ACTION),
            &actor,
        );
        if revoke_others {
            self.revoke_user_inner(&record.user_id, Some(id), Reason::SENSITIVE_ACTION, actor)
                .await?;
        }
        Ok((record, secret))
    }
}
