//! One page of a user's session list: a stable order and an opaque cursor, over the
//! store's whole list (the store trait stays as it is).

use keybound_proto::b64;
use keybound_proto::wire::SessionList;

use super::{SessionInfo, SessionService};
use crate::lifecycle::LifecycleError;
use crate::session::SessionId;

/// Where a page of the session list ends: the position of its last session, in the
/// list's order (newest first by `created_at`, ties by id in text order). Travels as an opaque
/// base64url string ([`PageCursor::parse`], [`Display`](std::fmt::Display)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageCursor {
    created_at: i64,
    /// A valid session id, compared as the text clients see.
    session_id: String,
}

impl PageCursor {
    /// Reads a cursor the server gave as `next_cursor`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = b64::decode(text, "cursor").ok()?;
        let (time, id) = bytes.split_first_chunk::<8>()?;
        let id = core::str::from_utf8(id).ok()?;
        SessionId::parse(id)?;
        Some(Self {
            created_at: i64::from_be_bytes(*time),
            session_id: id.to_owned(),
        })
    }

    fn after(info: &SessionInfo) -> Self {
        Self {
            created_at: info.created_at,
            session_id: info.session_id.clone(),
        }
    }

    /// Whether `info` comes after this position in the list's order.
    fn precedes(&self, info: &SessionInfo) -> bool {
        match info.created_at.cmp(&self.created_at) {
            core::cmp::Ordering::Less => true,
            core::cmp::Ordering::Greater => false,
            core::cmp::Ordering::Equal => info.session_id > self.session_id,
        }
    }
}

impl std::fmt::Display for PageCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut bytes = self.created_at.to_be_bytes().to_vec();
        bytes.extend_from_slice(self.session_id.as_bytes());
        f.write_str(&b64::encode(bytes))
    }
}

/// One page of a user's sessions ([`SessionService::list_sessions_page`]).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionPage {
    /// The sessions on this page, newest first (by `created_at`, ties by id).
    pub sessions: Vec<SessionInfo>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<PageCursor>,
}

impl SessionService {
    /// One page of a user's sessions (every state not yet purged): at most `limit`
    /// of them (clamped to 1 ..= [`SessionList::MAX_LIMIT`]), newest first by
    /// `created_at` with ties by id, starting after `after` (the previous page's
    /// `next_cursor`; `None` for the first page). The order never changes for a
    /// session, so following the cursors lists each session exactly once; sessions
    /// opened meanwhile appear on the first page only. `current` marks
    /// `current_session_id`.
    pub async fn list_sessions_page(
        &self,
        user_id: &str,
        current_session_id: Option<&str>,
        limit: usize,
        after: Option<PageCursor>,
    ) -> Result<SessionPage, LifecycleError> {
        let limit = limit.clamp(1, SessionList::MAX_LIMIT);
        let mut sessions = self.list_sessions(user_id, current_session_id).await?;
        sessions.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.session_id.cmp(&b.session_id))
        });
        let mut sessions: Vec<SessionInfo> = sessions
            .into_iter()
            .filter(|info| after.as_ref().is_none_or(|cursor| cursor.precedes(info)))
            .collect();
        let next_cursor = if sessions.len() > limit {
            sessions.truncate(limit);
            sessions.last().map(PageCursor::after)
        } else {
            None
        };
        Ok(SessionPage {
            sessions,
            next_cursor,
        })
    }
}
