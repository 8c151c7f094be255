//! The session state machine as the SDK sees it (`kb.state`).
//!
//! The server's lifecycle is `active → expired | revoked | closed`, terminal states
//! final. The browser adds `anonymous` (no session yet) and may start a new session
//! after a terminal one by logging in again: that is a new session, not a way out of
//! the old one's terminal state.

#[allow(unused_imports)]
use crate::prelude::*;
use core::fmt;

/// How a session ended: the wire vocabulary's [`SessionEnd`](keybound_proto::SessionEnd)
/// (`expired`, `revoked`, `closed`, the same names and codes as the server's).
pub use keybound_proto::SessionEnd as Terminal;

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
            Self::Active => keybound_proto::SessionState::Active.as_str(),
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
}
