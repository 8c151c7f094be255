//! The verifier's session check, and reading sessions (one, or a user's list).

use super::super::cache::CachedSession;
use super::{SessionInfo, SessionService, check_user_id, parse_session_id};
use crate::lifecycle::LifecycleError;
use crate::session::{Jkt, SessionId, SessionState};
use crate::{BoxFuture, SessionCheck, SessionDenied};

/// The verifier's last check: the session of a verified request must be active, its
/// user the token's `sub` and its key the proof's.
impl SessionCheck for SessionService {
    fn check<'a>(
        &'a self,
        sid: &'a str,
        sub: &'a str,
        jkt: &'a str,
    ) -> BoxFuture<'a, Result<(), SessionDenied>> {
        Box::pin(self.check_session(sid, sub, jkt))
    }
}

impl SessionService {
    /// A user's sessions in every state not yet purged, most recently used first;
    /// `current` marks `current_session_id`.
    pub async fn list_sessions(
        &self,
        user_id: &str,
        current_session_id: Option<&str>,
    ) -> Result<Vec<SessionInfo>, LifecycleError> {
        check_user_id(user_id)?;
        let current = current_session_id.and_then(SessionId::parse);
        let now = self.now();
        let mut sessions: Vec<SessionInfo> = self
            .inner
            .store
            .list_user(user_id)
            .await?
            .iter()
            .map(|r| SessionInfo::new(r, now, current))
            .collect();
        sessions.sort_by(|a, b| {
            b.last_seen_at
                .cmp(&a.last_seen_at)
                .then_with(|| a.session_id.cmp(&b.session_id))
        });
        Ok(sessions)
    }

    /// One session, in any state not yet purged.
    pub async fn session(&self, session_id: &str) -> Result<SessionInfo, LifecycleError> {
        let id = parse_session_id(session_id)?;
        let record = self
            .inner
            .store
            .load(id)
            .await?
            .ok_or(LifecycleError::SessionNotFound)?;
        Ok(SessionInfo::new(&record, self.now(), Some(id)))
    }

    async fn check_session(&self, sid: &str, sub: &str, jkt: &str) -> Result<(), SessionDenied> {
        let id = SessionId::parse(sid).ok_or(SessionDenied::Unknown)?;
        let jkt = Jkt::parse(jkt).ok_or(SessionDenied::KeyMismatch)?;
        let now = self.now();
        let cache = self.inner.cache.as_ref();
        if let Some(entry) = cache.and_then(|c| c.get(&id, now)) {
            return match (&*entry.user_id == sub, entry.jkt == jkt) {
                (false, _) => Err(SessionDenied::Unknown),
                (true, false) => Err(SessionDenied::KeyMismatch),
                (true, true) => Ok(()),
            };
        }
        let ticket = cache.map(|c| c.ticket(&id));
        let record = self
            .inner
            .store
            .load(id)
            .await
            .map_err(|_| SessionDenied::Unavailable)?
            .ok_or(SessionDenied::Unknown)?;
        match record.effective_state(now) {
            SessionState::Active => {}
            SessionState::Expired => return Err(SessionDenied::Expired),
            SessionState::Revoked => return Err(SessionDenied::Revoked),
            SessionState::Closed => return Err(SessionDenied::Closed),
        }
        if record.user_id != sub {
            return Err(SessionDenied::Unknown);
        }
        if record.jkt != jkt {
            return Err(SessionDenied::KeyMismatch);
        }
        if let (Some(cache), Some(ticket)) = (cache, ticket) {
            let entry = CachedSession {
                user_id: record.user_id.into_boxed_str(),
                jkt: record.jkt,
                valid_until: record.idle_expires_at.min(record.absolute_expires_at),
            };
            cache.fill(id, entry, now, ticket);
        }
        Ok(())
    }
}
