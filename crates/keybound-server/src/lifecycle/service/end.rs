//! Ending sessions: logout (`closed`) and revocation, one session or a user's.

use super::{EndResult, SessionService, check_user_id, parse_session_id};
use crate::lifecycle::LifecycleError;
use crate::session::{Actor, Reason, SessionId};
use crate::store::{EndOutcome, EndRequest, EndState, EndUserRequest};

impl SessionService {
    /// Ends one session through the store and reports it (audit, cache).
    pub(super) async fn end_one(
        &self,
        id: SessionId,
        owner: Option<&str>,
        state: EndState,
        reason: Reason,
        actor: Option<Actor>,
    ) -> Result<EndResult, LifecycleError> {
        let outcome = self
            .inner
            .store
            .end(EndRequest {
                id,
                owner: owner.map(str::to_owned),
                state,
                reason,
                now: self.now(),
            })
            .await?;
        match outcome {
            EndOutcome::Ended(record) => {
                let actor = actor.unwrap_or_else(|| Actor::User(record.user_id.clone()));
                self.ended(&record, &actor);
                Ok(EndResult::new(&record, true))
            }
            EndOutcome::Expired(record) => {
                self.ended(&record, &Actor::System);
                Ok(EndResult::new(&record, false))
            }
            EndOutcome::AlreadyEnded(record) => {
                self.drop_cached(&record.id);
                Ok(EndResult::new(&record, false))
            }
            EndOutcome::NotOwner => Err(LifecycleError::NotSessionOwner),
            EndOutcome::NotFound => Err(LifecycleError::SessionNotFound),
        }
    }

    /// Logout: closes the session (idempotent; a session that already ended stays as
    /// it is).
    pub async fn close(&self, session_id: &str) -> Result<EndResult, LifecycleError> {
        let id = parse_session_id(session_id)?;
        self.end_one(id, None, EndState::Closed, Reason::LOGOUT, None)
            .await
    }

    /// Revokes one session, whoever owns it (an administrator's action, or the
    /// application's own decision). Idempotent.
    pub async fn revoke(
        &self,
        session_id: &str,
        reason: Reason,
        actor: Actor,
    ) -> Result<EndResult, LifecycleError> {
        let id = parse_session_id(session_id)?;
        self.end_one(id, None, EndState::Revoked, reason, Some(actor))
            .await
    }

    /// A user revokes one of their own sessions (`DELETE /session/sessions/{id}`).
    /// Another user's session is refused with `session_not_owned` and left alone.
    pub async fn revoke_for_user(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<EndResult, LifecycleError> {
        let id = parse_session_id(session_id)?;
        self.end_one(
            id,
            Some(user_id),
            EndState::Revoked,
            Reason::USER_REVOKED,
            Some(Actor::User(user_id.to_owned())),
        )
        .await
    }

    /// Revokes every active session of a user, but `except` if given. Returns how many
    /// sessions this call revoked. Idempotent.
    ///
    /// The user's fence moves in the same atomic store step: once this returns, no
    /// session opened before it can be used on any node, and a login that read the
    /// fence before it ([`login_fence`](Self::login_fence), or `open_session` reading
    /// it itself) cannot open one any more (`login_superseded`).
    pub async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&str>,
        reason: Reason,
        actor: Actor,
    ) -> Result<usize, LifecycleError> {
        check_user_id(user_id)?;
        let except = except
            .map(|e| {
                SessionId::parse(e).ok_or(LifecycleError::InvalidInput {
                    field: "except",
                    reason: "not a session id",
                })
            })
            .transpose()?;
        self.revoke_user_inner(user_id, except, reason, actor).await
    }

    /// The user revokes all their other sessions
    /// (`POST /session/sessions/revoke-others`).
    pub async fn revoke_others(
        &self,
        user_id: &str,
        current_session_id: &str,
    ) -> Result<usize, LifecycleError> {
        self.revoke_user(
            user_id,
            Some(current_session_id),
            Reason::USER_REVOKED_OTHERS,
            Actor::User(user_id.to_owned()),
        )
        .await
    }

    /// Revokes a user's active sessions but `except`; returns how many.
    pub(super) async fn revoke_user_inner(
        &self,
        user_id: &str,
        except: Option<SessionId>,
        reason: Reason,
        actor: Actor,
    ) -> Result<usize, LifecycleError> {
        let changed = self
            .inner
            .store
            .end_user_sessions(EndUserRequest {
                user_id: user_id.to_owned(),
                except,
                state: EndState::Revoked,
                reason,
                now: self.now(),
            })
            .await?;
        let mut revoked = 0;
        for outcome in changed {
            match outcome {
                EndOutcome::Ended(record) => {
                    revoked += 1;
                    self.ended(&record, &actor);
                }
                EndOutcome::Expired(record) => self.ended(&record, &Actor::System),
                _ => {}
            }
        }
        Ok(revoked)
    }
}
