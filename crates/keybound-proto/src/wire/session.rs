//! Session states and the session summary, as the server's endpoints send them and
//! the SDK reads them.

#[allow(unused_imports)]
use crate::prelude::*;
use core::fmt;

use serde::{Deserialize, Serialize};

use super::{code, oauth};

/// The state of a session (DESIGN §4): `active`, then one of three terminal states
/// that no transition leaves. Serialised as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// The session may be used and refreshed.
    Active,
    /// The idle timeout or the absolute lifetime passed.
    Expired,
    /// Ended by the user, an admin, refresh-token reuse or a risk decision.
    Revoked,
    /// The user logged out.
    Closed,
}

impl SessionState {
    /// The state's name: `active`, `expired`, `revoked` or `closed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => SessionEnd::Expired.as_str(),
            Self::Revoked => SessionEnd::Revoked.as_str(),
            Self::Closed => SessionEnd::Closed.as_str(),
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "active" => Some(Self::Active),
            _ => SessionEnd::parse(name).map(Self::from),
        }
    }

    /// Whether the state is final (everything but `active`).
    pub const fn is_terminal(self) -> bool {
        !matches!(self, Self::Active)
    }

    /// How the session ended, for a terminal state.
    pub const fn end(self) -> Option<SessionEnd> {
        match self {
            Self::Active => None,
            Self::Expired => Some(SessionEnd::Expired),
            Self::Revoked => Some(SessionEnd::Revoked),
            Self::Closed => Some(SessionEnd::Closed),
        }
    }

    /// The error code of an operation refused because the session is in this state
    /// (`session_expired`, `session_revoked`, `session_closed`; `session_active` for an
    /// operation that needed an ended session).
    pub const fn error_code(self) -> &'static str {
        match self.end() {
            Some(end) => end.error_code(),
            None => code::SESSION_ACTIVE,
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<SessionEnd> for SessionState {
    fn from(end: SessionEnd) -> Self {
        match end {
            SessionEnd::Expired => Self::Expired,
            SessionEnd::Revoked => Self::Revoked,
            SessionEnd::Closed => Self::Closed,
        }
    }
}

/// How a session ended: the terminal [`SessionState`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    /// The idle timeout or the absolute lifetime passed.
    Expired,
    /// Revoked: by the user elsewhere, an admin, refresh-token reuse or a policy.
    Revoked,
    /// The user logged out.
    Closed,
}

impl SessionEnd {
    /// The state's name (`expired`, `revoked`, `closed`); also the SDK's event type.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Closed => "closed",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "expired" => Some(Self::Expired),
            "revoked" => Some(Self::Revoked),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }

    /// The error code of an operation refused because the session ended this way.
    pub const fn error_code(self) -> &'static str {
        match self {
            Self::Expired => code::SESSION_EXPIRED,
            Self::Revoked => code::SESSION_REVOKED,
            Self::Closed => code::SESSION_CLOSED,
        }
    }

    /// How the session ended, by the `error_code` of a server's answer, when the code
    /// says so. `refresh_token_reused` counts: presenting an old refresh token again
    /// revokes the session on the server.
    pub fn from_error_code(error_code: &str) -> Option<Self> {
        match error_code {
            code::SESSION_REVOKED | code::REFRESH_TOKEN_REUSED => Some(Self::Revoked),
            code::SESSION_CLOSED => Some(Self::Closed),
            code::SESSION_EXPIRED => Some(Self::Expired),
            _ => None,
        }
    }

    /// How the session ended, by the answer to a refused refresh: `invalid_grant` is
    /// definitive (the refresh token will never work again) and its `error_code` says
    /// how; without a more precise code the session counts as expired. Any other
    /// answer is `None`: not a reason to drop the session.
    pub fn from_refresh_refusal(error: Option<&str>, error_code: Option<&str>) -> Option<Self> {
        if let Some(end) = error_code.and_then(Self::from_error_code) {
            return Some(end);
        }
        (error == Some(oauth::INVALID_GRANT)).then_some(Self::Expired)
    }
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One session as the session endpoints show it (`GET …/sessions` lists them,
/// `POST …/extend` returns the caller's). Times are seconds since the epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The session's id.
    pub id: String,
    /// The label the application gave the device at login, if any.
    pub device_label: Option<String>,
    /// When the session was opened.
    pub created_at: i64,
    /// When the session was last refreshed or extended.
    pub last_seen_at: i64,
    /// When the session ends if it is not used.
    pub idle_expires_at: i64,
    /// When the session ends at the latest (absolute lifetime).
    pub expires_at: i64,
    /// The session's state.
    pub state: SessionState,
    /// Why it ended, for an ended session (`logout`, `user_revoked`, …).
    pub reason: Option<String>,
    /// When it ended, for an ended session.
    pub ended_at: Option<i64>,
    /// Whether this is the session that made the request.
    pub current: bool,
    /// How the session is bound to its device: `dpop` (the SDK's key), `dbsc` (the
    /// browser's key) or `dbsc_pending` (signed in, the browser has not registered).
    #[serde(default = "dpop")]
    pub binding: String,
}

fn dpop() -> String {
    "dpop".to_owned()
}

/// The body of `GET …/sessions?limit=N&cursor=C`: one page of the caller's sessions,
/// `{"sessions": […], "next_cursor": "…" | null}`.
///
/// Pages are in a stable order, newest session first (by `created_at`, ties by `id`),
/// so following `next_cursor` until it is `null` lists every session exactly once,
/// whatever is refreshed meanwhile (sessions opened meanwhile are on the first page,
/// purged ones drop out). `limit` is 1 to [`MAX_LIMIT`](Self::MAX_LIMIT), by default
/// [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT); the cursor is opaque.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionList {
    /// The caller's sessions on this page.
    pub sessions: Vec<SessionSummary>,
    /// The `cursor` of the next page; `null` on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

impl SessionList {
    /// Sessions per page when the request names no `limit`.
    pub const DEFAULT_LIMIT: usize = 50;
    /// The largest `limit` a request may name.
    pub const MAX_LIMIT: usize = 200;
}

/// The body of `POST …/extend`: the caller's session and the server's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendResponse {
    /// The extended session.
    #[serde(flatten)]
    pub session: SessionSummary,
    /// The server's clock when the response was made, seconds since the epoch.
    pub server_time: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in [
            SessionState::Active,
            SessionState::Expired,
            SessionState::Revoked,
            SessionState::Closed,
        ] {
            assert_eq!(SessionState::parse(state.as_str()), Some(state));
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{state}\"")
            );
            assert_eq!(
                state.end().map(SessionState::from),
                state.is_terminal().then_some(state)
            );
        }
        assert_eq!(SessionState::parse("Active"), None);
        assert_eq!(SessionEnd::parse("active"), None);
    }

    #[test]
    fn error_codes_map_to_ends() {
        for end in [SessionEnd::Expired, SessionEnd::Revoked, SessionEnd::Closed] {
            assert_eq!(SessionEnd::from_error_code(end.error_code()), Some(end));
            assert_eq!(SessionState::from(end).error_code(), end.error_code());
        }
        assert_eq!(SessionState::Active.error_code(), "session_active");
        assert_eq!(
            SessionEnd::from_error_code("refresh_token_reused"),
            Some(SessionEnd::Revoked)
        );
        assert_eq!(SessionEnd::from_error_code("token_expired"), None);
    }

    #[test]
    fn only_invalid_grant_or_a_session_code_ends_a_refresh() {
        assert_eq!(
            SessionEnd::from_refresh_refusal(Some("invalid_grant"), Some("session_revoked")),
            Some(SessionEnd::Revoked)
        );
        assert_eq!(
            SessionEnd::from_refresh_refusal(Some("invalid_grant"), Some("unknown_token")),
            Some(SessionEnd::Expired)
        );
        assert_eq!(
            SessionEnd::from_refresh_refusal(Some("invalid_dpop_proof"), Some("iat_too_old")),
            None
        );
        assert_eq!(SessionEnd::from_refresh_refusal(None, None), None);
        assert_eq!(
            SessionEnd::from_refresh_refusal(Some("invalid_token"), Some("session_closed")),
            Some(SessionEnd::Closed)
        );
    }

    #[test]
    fn a_page_always_says_whether_another_follows() {
        let page = SessionList {
            sessions: Vec::new(),
            next_cursor: None,
        };
        assert_eq!(
            serde_json::to_string(&page).unwrap(),
            r#"{"sessions":[],"next_cursor":null}"#
        );
        let old: SessionList = serde_json::from_str(r#"{"sessions":[]}"#).unwrap();
        assert_eq!(old, page);
    }

    #[test]
    fn extend_response_is_the_summary_plus_server_time() {
        let summary = SessionSummary {
            id: "s".into(),
            device_label: None,
            created_at: 1,
            last_seen_at: 2,
            idle_expires_at: 3,
            expires_at: 4,
            state: SessionState::Active,
            reason: None,
            ended_at: None,
            current: true,
            binding: "dpop".into(),
        };
        let value = serde_json::to_value(ExtendResponse {
            session: summary.clone(),
            server_time: 5,
        })
        .unwrap();
        assert_eq!(value["state"], "active");
        assert_eq!(value["server_time"], 5);
        assert_eq!(value["id"], "s");
        let back: ExtendResponse = serde_json::from_value(value).unwrap();
        assert_eq!(back.session, summary);
    }
}
