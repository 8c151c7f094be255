//! The last check of request verification: is the caller's session still active?
//!
//! The verifier calls a [`SessionCheck`] after every cryptographic check passed; the
//! session lifecycle service implements it, so a revoked session's still-unexpired
//! access token is refused on the very next request.

use keybound_proto::wire::code;

use crate::BoxFuture;

/// Why a session may not be used any more.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionDenied {
    /// No such session (never existed, or purged).
    #[error("the session does not exist")]
    Unknown,
    /// The session was revoked.
    #[error("the session was revoked")]
    Revoked,
    /// The session expired (idle timeout or absolute lifetime).
    #[error("the session has expired")]
    Expired,
    /// The user logged out of the session.
    #[error("the session was closed")]
    Closed,
    /// The session is bound to another key than the request's proof.
    #[error("the session is bound to a different key")]
    KeyMismatch,
    /// A DBSC bound cookie of a generation the session has left behind (a sensitive
    /// action replaced it).
    #[error("the bound cookie was replaced; the session's current cookie must be used")]
    Superseded,
    /// The session store could not answer; requests fail closed.
    #[error("the session store is unavailable")]
    Unavailable,
}

impl SessionDenied {
    /// The stable machine code of this denial.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unknown => code::SESSION_UNKNOWN,
            Self::Revoked => code::SESSION_REVOKED,
            Self::Expired => code::SESSION_EXPIRED,
            Self::Closed => code::SESSION_CLOSED,
            Self::KeyMismatch => code::SESSION_KEY_MISMATCH,
            Self::Superseded => code::COOKIE_SUPERSEDED,
            Self::Unavailable => code::SESSION_STORE_UNAVAILABLE,
        }
    }
}

/// Decides whether the session `sid` of user `sub`, bound to key `jkt`, may be used now.
pub trait SessionCheck: Send + Sync + 'static {
    /// `Ok(())` when the session is active.
    fn check<'a>(
        &'a self,
        sid: &'a str,
        sub: &'a str,
        jkt: &'a str,
    ) -> BoxFuture<'a, Result<(), SessionDenied>>;
}

/// The check of [`VerifierBuilder::danger_accept_any_session`](crate::VerifierBuilder::danger_accept_any_session).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AcceptAnySession;

impl SessionCheck for AcceptAnySession {
    fn check<'a>(
        &'a self,
        _sid: &'a str,
        _sub: &'a str,
        _jkt: &'a str,
    ) -> BoxFuture<'a, Result<(), SessionDenied>> {
        Box::pin(async { Ok(()) })
    }
}
