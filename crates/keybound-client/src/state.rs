//! The session state machine as the SDK sees it (`kb.state`).
//!
//! The server's lifecycle is `active → expired | revoked | closed`, terminal states
//! final. The browser adds `anonymous` (no session yet) and may start a new session
//! after a terminal one by logging in again: that is a new session, not a way out of
//! the old one's terminal state.

#[allow(unused_imports)]
use crate::prelude::*;
use core::fmt;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Terminal {
    /// The idle timeout or the absolute lifetime passed.
    Expired,
    /// Revoked: by the user elsewhere, an admin, refresh-token reuse or a policy.
    Revoked,
    /// The user logged out.
    Closed,
}

impl Terminal {
    /// The state name (`expired`, `revoked`, `closed`), also the event's type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Closed => "closed",
        }
    }

    /// The error code of an operation refused because the session ended this way.
    pub fn error_code(self) -> &'static str {
        match self {
            Self::Expired => "session_expired",
            Self::Revoked => "session_revoked",
            Self::Closed => "session_closed",
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

    /// The terminal state a server `error_code` reports, if it reports one.
    pub fn from_error_code(code: &str) -> Option<Self> {
        match code {
            // Presenting an old refresh token again revokes the session on the server.
            "session_revoked" | "refresh_token_reused" => Some(Self::Revoked),
            "session_closed" => Some(Self::Closed),
            "session_expired" => Some(Self::Expired),
            _ => None,
        }
    }

    /// The outcome of a refused refresh: `invalid_grant` is definitive (the refresh
    /// token will never work again), and its `error_code` says how the session ended;
    /// without a more precise code the session is treated as expired. Any other answer
    /// returns `None`: it is not a reason to drop the session.
    pub fn from_refresh_refusal(error: Option<&str>, error_code: Option<&str>) -> Option<Self> {
        if let Some(terminal) = error_code.and_then(Self::from_error_code) {
            return Some(terminal);
        }
        (error == Some("invalid_grant")).then_some(Self::Expired)
    }
}

impl fmt::Display for Terminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `kb.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// No session in this browser.
    Anonymous,
    /// A live session.
    Active,
    /// The session ended; see [`Terminal`].
    Ended(Terminal),
}

/// What happened to the session, as input to [`SessionState::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A login (here or in another tab) opened a new session.
    LoggedIn,
    /// The session ended.
    Ended(Terminal),
    /// The stored session was forgotten without an ending being observed (fresh load
    /// with nothing stored).
    Forgotten,
}

impl SessionState {
    /// The name JavaScript sees.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Active => "active",
            Self::Ended(terminal) => terminal.as_str(),
        }
    }

    /// Whether requests can be signed with a session.
    pub fn is_active(self) -> bool {
        self == Self::Active
    }

    /// Applies a transition and returns the new state, or `None` when nothing changes.
    ///
    /// Endings are idempotent and final for the session they end: a second ending
    /// (another tab's broadcast, a late server answer) changes nothing, so the event is
    /// fired once. Only a new login leaves a terminal state.
    pub fn apply(self, transition: Transition) -> Option<Self> {
        let next = match (self, transition) {
            (_, Transition::LoggedIn) => Self::Active,
            (Self::Active, Transition::Ended(terminal)) => Self::Ended(terminal),
            (Self::Anonymous | Self::Ended(_), Transition::Ended(_)) => self,
            (Self::Active, Transition::Forgotten) => Self::Anonymous,
            (Self::Anonymous | Self::Ended(_), Transition::Forgotten) => self,
        };
        (next != self || transition == Transition::LoggedIn).then_some(next)
    }

    /// The error for an operation that needs a session in this state, if any.
    pub fn require_active(self) -> Result<(), crate::ClientError> {
        match self {
            Self::Active => Ok(()),
            Self::Anonymous => Err(crate::ClientError::NotLoggedIn),
            Self::Ended(terminal) => Err(crate::ClientError::SessionEnded(terminal)),
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const ALL: [SessionState; 5] = [
        SessionState::Anonymous,
        SessionState::Active,
        SessionState::Ended(Terminal::Expired),
        SessionState::Ended(Terminal::Revoked),
        SessionState::Ended(Terminal::Closed),
    ];

    #[test]
    fn names() {
        let names: Vec<_> = ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            ["anonymous", "active", "expired", "revoked", "closed"]
        );
        for t in [Terminal::Expired, Terminal::Revoked, Terminal::Closed] {
            assert_eq!(Terminal::parse(t.as_str()), Some(t));
        }
        assert_eq!(Terminal::parse("active"), None);
    }

    #[test]
    fn endings_fire_once_and_are_final() {
        let s = SessionState::Active;
        let revoked = s.apply(Transition::Ended(Terminal::Revoked)).unwrap();
        assert_eq!(revoked, SessionState::Ended(Terminal::Revoked));
        // A second ending of any kind changes nothing (no second event).
        for t in [Terminal::Expired, Terminal::Revoked, Terminal::Closed] {
            assert_eq!(revoked.apply(Transition::Ended(t)), None);
        }
        assert_eq!(revoked.apply(Transition::Forgotten), None);
        assert_eq!(
            SessionState::Anonymous.apply(Transition::Ended(Terminal::Closed)),
            None
        );
    }

    #[test]
    fn login_starts_a_new_session_from_any_state() {
        for s in ALL {
            assert_eq!(s.apply(Transition::LoggedIn), Some(SessionState::Active));
        }
    }

    #[test]
    fn forgetting_an_active_session_makes_it_anonymous() {
        assert_eq!(
            SessionState::Active.apply(Transition::Forgotten),
            Some(SessionState::Anonymous)
        );
    }

    #[test]
    fn require_active_gives_the_right_code() {
        assert!(SessionState::Active.require_active().is_ok());
        let codes: Vec<_> = ALL
            .iter()
            .filter_map(|s| s.require_active().err())
            .map(|e| e.code().to_owned())
            .collect();
        assert_eq!(
            codes,
            [
                "not_logged_in",
                "session_expired",
                "session_revoked",
                "session_closed"
            ]
        );
    }

    #[test]
    fn server_codes_map_to_terminal_states() {
        assert_eq!(
            Terminal::from_error_code("session_revoked"),
            Some(Terminal::Revoked)
        );
        assert_eq!(
            Terminal::from_error_code("session_closed"),
            Some(Terminal::Closed)
        );
        assert_eq!(
            Terminal::from_error_code("session_expired"),
            Some(Terminal::Expired)
        );
        assert_eq!(
            Terminal::from_error_code("refresh_token_reused"),
            Some(Terminal::Revoked)
        );
        assert_eq!(Terminal::from_error_code("token_expired"), None);
    }

    #[test]
    fn only_invalid_grant_or_a_session_code_ends_a_refresh() {
        assert_eq!(
            Terminal::from_refresh_refusal(Some("invalid_grant"), Some("session_revoked")),
            Some(Terminal::Revoked)
        );
        assert_eq!(
            Terminal::from_refresh_refusal(Some("invalid_grant"), Some("unknown_token")),
            Some(Terminal::Expired)
        );
        assert_eq!(
            Terminal::from_refresh_refusal(Some("invalid_dpop_proof"), Some("iat_too_old")),
            None
        );
        assert_eq!(Terminal::from_refresh_refusal(None, None), None);
        assert_eq!(
            Terminal::from_refresh_refusal(Some("invalid_token"), Some("session_closed")),
            Some(Terminal::Closed)
        );
    }
}
