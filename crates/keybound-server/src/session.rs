//! The session's own types: ids, key thumbprints, refresh-token hashes, states (the
//! wire vocabulary's [`SessionState`]), reasons and actors.
//!
//! They sit below both the [`store`](crate::store)s and the
//! [`lifecycle`](crate::lifecycle): a store keeps them, the lifecycle decides with them,
//! and neither reaches into the other for them. [`lifecycle`](crate::lifecycle)
//! re-exports them, so `keybound_server::lifecycle::Reason` and
//! `keybound_server::session::Reason` are the same type.

use std::borrow::Cow;
use std::fmt;

use keybound_proto::b64;
pub use keybound_proto::wire::SessionState;
use keybound_proto::wire::reason;
use serde::{Serialize, Serializer};

/// A session id: 128 random bits, written as 22 characters of base64url.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// A fresh random session id.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The session id with these bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses the 22-character base64url form; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 22 {
            return None;
        }
        b64::decode_array::<16>(text, "session_id").ok().map(Self)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&b64::encode(self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The RFC 7638 thumbprint of the device key a session is bound to (`cnf.jkt`):
/// 32 bytes, written as 43 characters of base64url.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Jkt([u8; 32]);

impl Jkt {
    /// The thumbprint with these bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the 43-character base64url form; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 43 {
            return None;
        }
        b64::decode_array::<32>(text, "jkt").ok().map(Self)
    }
}

impl fmt::Display for Jkt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&b64::encode(self.0))
    }
}

impl fmt::Debug for Jkt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jkt({self})")
    }
}

/// The SHA-256 hash of a refresh token's secret part: the only form in which a
/// refresh token is ever stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash with these bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// Why a session ended: a short snake_case code (`[a-z0-9_.:-]`, 1–64 bytes) that
/// goes into the store, the audit event and the metrics label.
///
/// The constants are the reasons keybound itself uses (spelled once, in
/// [`keybound_proto::wire::reason`]); applications pass their own
/// with [`Reason::new`] (e.g. `password_reset`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reason(Cow<'static, str>);

impl Reason {
    /// The user logged out (`closed`).
    pub const LOGOUT: Self = Self::from_static(reason::LOGOUT);
    /// The user revoked one of their sessions.
    pub const USER_REVOKED: Self = Self::from_static(reason::USER_REVOKED);
    /// The user revoked all their other sessions.
    pub const USER_REVOKED_OTHERS: Self = Self::from_static(reason::USER_REVOKED_OTHERS);
    /// An administrator revoked the session.
    pub const ADMIN_REVOKED: Self = Self::from_static(reason::ADMIN_REVOKED);
    /// A refresh token was presented again outside the grace rule (DESIGN §4).
    pub const REFRESH_REUSE: Self = Self::from_static(reason::REFRESH_REUSE);
    /// The user's other sessions were revoked on a sensitive action.
    pub const SENSITIVE_ACTION: Self = Self::from_static(reason::SENSITIVE_ACTION);
    /// A risk decision required the user to sign in again.
    pub const REAUTHENTICATION_REQUIRED: Self =
        Self::from_static(reason::REAUTHENTICATION_REQUIRED);
    /// A risk decision revoked the session.
    pub const RISK_POLICY: Self = Self::from_static(reason::RISK_POLICY);
    /// No refresh or `extend` within the idle timeout (`expired`).
    pub const IDLE_TIMEOUT: Self = Self::from_static(reason::IDLE_TIMEOUT);
    /// The absolute lifetime passed (`expired`).
    pub const ABSOLUTE_LIFETIME: Self = Self::from_static(reason::ABSOLUTE_LIFETIME);
    /// The user opened a session beyond the per-user limit: their least recently used
    /// session was revoked to make room.
    pub const SESSION_LIMIT: Self = Self::from_static(reason::SESSION_LIMIT);
    /// A DBSC session's browser never registered its key within the registration
    /// window (`expired`).
    pub const DBSC_REGISTRATION_TIMEOUT: Self =
        Self::from_static(reason::DBSC_REGISTRATION_TIMEOUT);
    /// A DBSC session opened waiting for its registration, with no credential until
    /// then (the note of `session.created`).
    pub const DBSC_REGISTRATION_PENDING: Self =
        Self::from_static(reason::DBSC_REGISTRATION_PENDING);
    /// A DBSC session opened waiting for its registration, with an unbound cookie
    /// meanwhile (the note of `session.created`).
    pub const DBSC_UNBOUND_COOKIE: Self = Self::from_static(reason::DBSC_UNBOUND_COOKIE);
    /// A terminal session was purged after the retention period.
    pub const RETENTION: Self = Self::from_static(reason::RETENTION);

    const fn from_static(code: &'static str) -> Self {
        Self(Cow::Borrowed(code))
    }

    /// A reason with an application-chosen code; `None` unless the code is 1–64 bytes
    /// of `a-z`, `0-9`, `_`, `.`, `:` or `-`.
    pub fn new(code: impl Into<Cow<'static, str>>) -> Option<Self> {
        let code = code.into();
        let valid = !code.is_empty()
            && code.len() <= 64
            && code
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b':' | b'-'));
        valid.then_some(Self(code))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The reason a session found past its deadline has expired with: a DBSC session
    /// whose browser never registered (`dbsc_pending`) for the registration window,
    /// else whichever deadline came first.
    pub(crate) fn for_expiry(
        idle_expires_at: i64,
        absolute_expires_at: i64,
        dbsc_pending: bool,
    ) -> Self {
        if dbsc_pending {
            Self::DBSC_REGISTRATION_TIMEOUT
        } else if absolute_expires_at <= idle_expires_at {
            Self::ABSOLUTE_LIFETIME
        } else {
            Self::IDLE_TIMEOUT
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reason({})", self.0)
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Who caused a transition; written into audit events as `user:<id>`, `admin:<id>`
/// or `system`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The session's user (logout, revoking their own sessions, sensitive actions).
    User(String),
    /// An administrator or back-office service, by its id.
    Admin(String),
    /// keybound itself: refresh, reuse detection, risk decisions, expiry, purge.
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Admin(id) => write!(f, "admin:{id}"),
            Self::System => f.write_str("system"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_round_trip_and_reject_other_text() {
        let id = SessionId::generate().unwrap();
        assert_eq!(SessionId::parse(&id.to_string()), Some(id));
        assert_eq!(SessionId::parse(""), None);
        assert_eq!(SessionId::parse("AAAAAAAAAAAAAAAAAAAAAA="), None);
        assert_eq!(SessionId::parse("AAAAAAAAAAAAAAAAAAAAA"), None);
        assert_eq!(SessionId::parse("AAAAAAAAAAAAAAAAAAAA+/"), None);
        // 22 characters whose trailing bits are not zero are not canonical.
        assert_eq!(SessionId::parse("AAAAAAAAAAAAAAAAAAAAAB"), None);
    }

    #[test]
    fn jkt_round_trips() {
        let jkt = Jkt::from_bytes([9; 32]);
        assert_eq!(Jkt::parse(&jkt.to_string()), Some(jkt));
        assert_eq!(Jkt::parse("short"), None);
    }

    #[test]
    fn reasons_are_validated() {
        assert_eq!(
            Reason::new("password_reset").unwrap().as_str(),
            "password_reset"
        );
        assert!(Reason::new("").is_none());
        assert!(Reason::new("Has Space").is_none());
        assert!(Reason::new("x".repeat(65)).is_none());
        assert!(Reason::new("ok:a.b-c_1").is_some());
    }
}
