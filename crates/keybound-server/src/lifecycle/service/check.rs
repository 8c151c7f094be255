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

    /// The session check of a request authenticated by a DBSC bound cookie issued
    /// for session generation `generation`: as the verifier's check, and the cookie
    /// must be of the session's current generation, or of the one before while the
    /// grace of a cookie refresh lasts. A sensitive action moves the session on
    /// without grace: the cookies issued before it are refused (`cookie_superseded`).
    pub async fn check_bound_cookie(
        &self,
        sid: &str,
        sub: &str,
        jkt: &str,
        generation: u64,
    ) -> Result<(), SessionDenied> {
        self.check_inner(sid, sub, jkt, Some(generation)).await
    }

    async fn check_session(&self, sid: &str, sub: &str, jkt: &str) -> Result<(), SessionDenied> {
        self.check_inner(sid, sub, jkt, None).await
    }

    async fn check_inner(
        &self,
        sid: &str,
        sub: &str,
        jkt: &str,
        generation: Option<u64>,
    ) -> Result<(), SessionDenied> {
        let id = SessionId::parse(sid).ok_or(SessionDenied::Unknown)?;
        let jkt = Jkt::parse(jkt).ok_or(SessionDenied::KeyMismatch)?;
        let now = self.now();
        let cache = self.inner.cache.as_ref();
        // A cookie newer than the cached generation means the cache is behind a
        // change made on another node: ask the store.
        let cached = cache
            .and_then(|c| c.get(&id, now))
            .filter(|entry| generation.is_none_or(|g| g <= entry.generation));
        if let Some(entry) = cached {
            return match (&*entry.user_id == sub, entry.jkt == jkt) {
                (false, _) => Err(SessionDenied::Unknown),
                (true, false) => Err(SessionDenied::KeyMismatch),
                (true, true) => {
                    check_generation(generation, entry.generation, entry.grace_until, now)
                }
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
        let checked = check_generation(generation, record.generation, record.grace_until, now);
        if let (Some(cache), Some(ticket)) = (cache, ticket) {
            let entry = CachedSession {
                user_id: record.user_id.into_boxed_str(),
                jkt: record.jkt,
                generation: record.generation,
                grace_until: record.grace_until,
                valid_until: record.idle_expires_at.min(record.absolute_expires_at),
            };
            cache.fill(id, entry, now, ticket);
        }
        checked
    }
}

/// A bound cookie of generation `cookie` in a session at generation `current`: the
/// current one, or the previous one within the grace. Requests without a generation
/// (DPoP) pass.
fn check_generation(
    cookie: Option<u64>,
    current: u64,
    grace_until: Option<i64>,
    now: i64,
) -> Result<(), SessionDenied> {
    let Some(cookie) = cookie else {
        return Ok(());
    };
    let in_grace = grace_until.is_some_and(|until| now < until);
    if cookie == current || (in_grace && cookie.checked_add(1) == Some(current)) {
        Ok(())
    } else {
        Err(SessionDenied::Superseded)
    }
}
