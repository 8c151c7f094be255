//! The DBSC HTTP headers: building the two the server sends, reading the two the
//! browser sends.

use super::{DbscAlg, DbscError, sf};
#[allow(unused_imports)]
use crate::prelude::*;

/// Response header starting a registration (an sf-list of inner lists of algorithms).
pub const REGISTRATION_HEADER: &str = "Secure-Session-Registration";
/// Response header carrying a challenge for a session (an sf-string with `id`).
pub const CHALLENGE_HEADER: &str = "Secure-Session-Challenge";
/// Request header carrying the signed proof (a `dbsc+jwt`).
pub const RESPONSE_HEADER: &str = "Secure-Session-Response";
/// Request header naming the session a refresh is for.
pub const SESSION_ID_HEADER: &str = "Sec-Secure-Session-Id";
/// The longest DBSC request header value keybound reads (an RSA-8192 registration
/// proof is about 1.8 KB).
pub const MAX_HEADER_LEN: usize = 8 * 1024;
/// The longest session identifier keybound reads.
pub const MAX_SESSION_ID_LEN: usize = 256;

/// A `Secure-Session-Registration` header value.
///
/// ```
/// use keybound_proto::dbsc::{DbscAlg, Registration};
/// let header = Registration::new("/session/dbsc/register", "c-1")
///     .authorization("s-1")
///     .header_value()?;
/// assert_eq!(header, r#"(ES256 RS256);path="/session/dbsc/register";challenge="c-1";authorization="s-1""#);
/// # Ok::<(), keybound_proto::dbsc::DbscError>(())
/// ```
///
/// The algorithms are listed in order of preference (Chromium takes the first it
/// supports, so the default `(ES256 RS256)` gets ES256 keys). A challenge is always
/// sent: without one Chromium posts the registration with no proof at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    algs: Vec<DbscAlg>,
    path: String,
    challenge: String,
    authorization: Option<String>,
}

impl Registration {
    /// A registration at `path` (absolute path or URL of the registration endpoint)
    /// signing `challenge`, offering ES256 then RS256.
    pub fn new(path: impl Into<String>, challenge: impl Into<String>) -> Self {
        Self {
            algs: DbscAlg::ALL.to_vec(),
            path: path.into(),
            challenge: challenge.into(),
            authorization: None,
        }
    }

    /// Offers only `algs`, in this order of preference.
    pub fn algs(mut self, algs: &[DbscAlg]) -> Self {
        self.algs = algs.to_vec();
        self
    }

    /// Asks the browser to copy `authorization` into the proof's `authorization` claim
    /// (keybound puts the session it is registering there).
    pub fn authorization(mut self, authorization: impl Into<String>) -> Self {
        self.authorization = Some(authorization.into());
        self
    }

    /// The header value: `(ES256 RS256);path="…";challenge="…"[;authorization="…"]`.
    /// Fails when no algorithm is offered, a value is empty or holds characters an
    /// sf-string cannot carry.
    pub fn header_value(&self) -> Result<String, DbscError> {
        if self.algs.is_empty() {
            return Err(DbscError::Unencodable {
                what: "algorithms",
                reason: "at least one algorithm must be offered",
            });
        }
        let mut out = String::from("(");
        for (i, alg) in self.algs.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(alg.as_str());
        }
        out.push_str(");path=");
        non_empty(&self.path, "path")?;
        sf::write_string(&mut out, &self.path, "path")?;
        out.push_str(";challenge=");
        non_empty(&self.challenge, "challenge")?;
        sf::write_string(&mut out, &self.challenge, "challenge")?;
        if let Some(authorization) = &self.authorization {
            out.push_str(";authorization=");
            sf::write_string(&mut out, authorization, "authorization")?;
        }
        Ok(out)
    }
}

/// A `Secure-Session-Challenge` header value: `"<challenge>";id="<session id>"`.
///
/// The `id` is required: Chromium ignores a challenge without it and then ends the
/// session.
pub fn challenge_header(challenge: &str, session_id: &str) -> Result<String, DbscError> {
    non_empty(challenge, "challenge")?;
    non_empty(session_id, "session id")?;
    let mut out = String::new();
    sf::write_string(&mut out, challenge, "challenge")?;
    out.push_str(";id=");
    sf::write_string(&mut out, session_id, "session id")?;
    Ok(out)
}

/// Reads a `Secure-Session-Response` value: the compact JWS, quoted (the spec) or bare
/// (Chromium 156).
pub fn read_session_response(value: &[u8]) -> Result<String, DbscError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(DbscError::InvalidHeader {
            name: RESPONSE_HEADER,
            reason: "longer than 8 KiB",
        });
    }
    sf::read_string_or_bare(value, RESPONSE_HEADER)
}

/// Reads a `Sec-Secure-Session-Id` value: the session identifier, quoted (the spec) or
/// bare (Chromium 156).
pub fn read_session_id(value: &[u8]) -> Result<String, DbscError> {
    let too_long = DbscError::InvalidHeader {
        name: SESSION_ID_HEADER,
        reason: "longer than 256 characters",
    };
    // A quoted id may escape every character: twice the length plus the quotes.
    if value.len() > 2 * MAX_SESSION_ID_LEN + 2 {
        return Err(too_long);
    }
    let id = sf::read_string_or_bare(value, SESSION_ID_HEADER)?;
    if id.len() > MAX_SESSION_ID_LEN {
        return Err(too_long);
    }
    Ok(id)
}

fn non_empty(value: &str, what: &'static str) -> Result<(), DbscError> {
    if value.is_empty() {
        return Err(DbscError::Unencodable {
            what,
            reason: "it is empty",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_forms() {
        let r = Registration::new("/reg", "cv");
        assert_eq!(
            r.header_value().unwrap(),
            r#"(ES256 RS256);path="/reg";challenge="cv""#
        );
        let r = r.clone().algs(&[DbscAlg::Rs256]).authorization(r#"a"c"#);
        assert_eq!(
            r.header_value().unwrap(),
            r#"(RS256);path="/reg";challenge="cv";authorization="a\"c""#
        );
    }

    #[test]
    fn registration_refusals() {
        let code = |r: Registration| r.header_value().unwrap_err().code();
        assert_eq!(
            code(Registration::new("/reg", "cv").algs(&[])),
            "unencodable_value"
        );
        assert_eq!(code(Registration::new("", "cv")), "unencodable_value");
        assert_eq!(code(Registration::new("/reg", "")), "unencodable_value");
        assert_eq!(code(Registration::new("/rég", "cv")), "unencodable_value");
        assert_eq!(
            code(Registration::new("/reg", "c\r\nX: y")),
            "unencodable_value"
        );
        assert_eq!(
            code(Registration::new("/reg", "cv").authorization("\u{7f}")),
            "unencodable_value"
        );
    }

    #[test]
    fn challenge_forms() {
        assert_eq!(challenge_header("c1", "s1").unwrap(), r#""c1";id="s1""#);
        assert_eq!(
            challenge_header("", "s1").unwrap_err().code(),
            "unencodable_value"
        );
        assert_eq!(
            challenge_header("c1", "").unwrap_err().code(),
            "unencodable_value"
        );
    }

    #[test]
    fn request_headers_both_forms_and_limits() {
        assert_eq!(read_session_response(b"a.b.c").unwrap(), "a.b.c");
        assert_eq!(read_session_response(br#""a.b.c""#).unwrap(), "a.b.c");
        assert_eq!(read_session_id(b"sess-1").unwrap(), "sess-1");
        assert_eq!(read_session_id(br#""sess-1""#).unwrap(), "sess-1");
        let long = vec![b'a'; MAX_HEADER_LEN + 1];
        assert_eq!(
            read_session_response(&long).unwrap_err().code(),
            "invalid_header"
        );
        let long = vec![b'a'; MAX_SESSION_ID_LEN + 1];
        assert_eq!(read_session_id(&long).unwrap_err().code(), "invalid_header");
        assert!(read_session_id(&long[1..]).is_ok());
        assert_eq!(read_session_id(b"").unwrap_err().code(), "invalid_header");
    }
}
