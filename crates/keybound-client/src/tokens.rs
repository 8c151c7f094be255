//! The tokens of a live session, checked when they arrive and wiped when dropped.

#[allow(unused_imports)]
use crate::prelude::*;
use core::fmt;

use keybound_proto::TokenResponse;
use zeroize::Zeroizing;

use crate::ClientError;
use crate::schedule::Timeline;

/// The limit on a token's length: anything longer is not from a keybound server.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Token characters: base64url, JWS dots and the rest of RFC 6750's `b64token`. Keeping
/// to them means tokens need no escaping in JSON bodies or headers.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
}

/// A session's tokens and deadlines. `Debug` never shows the tokens; memory holding
/// them is zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionTokens {
    access_token: Zeroizing<String>,
    refresh_token: Zeroizing<String>,
    session_id: String,
    timeline: Timeline,
}

impl fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTokens")
            .field("session_id", &self.session_id)
            .field("timeline", &self.timeline)
            .finish_non_exhaustive()
    }
}

impl SessionTokens {
    /// Checks a token response (`token_type` `DPoP`, non-empty tokens of sane length, a
    /// positive lifetime, deadlines not before `server_time`) and keeps what it holds.
    pub fn from_response(response: TokenResponse) -> Result<Self, ClientError> {
        let bad = |reason| Err(ClientError::InvalidResponse { reason });
        if !response.token_type.eq_ignore_ascii_case("DPoP") {
            return bad("token_type is not DPoP");
        }
        let sane =
            |t: &str| !t.is_empty() && t.len() <= MAX_TOKEN_LEN && t.bytes().all(is_token_char);
        if !sane(&response.access_token) || !sane(&response.refresh_token) {
            return bad("missing or malformed token");
        }
        if response.session_id.is_empty() || response.session_id.len() > 256 {
            return bad("missing or malformed session_id");
        }
        if response.expires_in == 0 {
            return bad("expires_in is zero");
        }
        if response.idle_expires_at < response.server_time
            || response.session_expires_at < response.server_time
        {
            return bad("session deadlines before server_time");
        }
        let timeline = Timeline::from_token_response(
            response.server_time,
            response.expires_in,
            response.idle_expires_at,
            response.session_expires_at,
        );
        Ok(Self {
            access_token: Zeroizing::new(response.access_token),
            refresh_token: Zeroizing::new(response.refresh_token),
            session_id: response.session_id,
            timeline,
        })
    }

    /// Rebuilds tokens read back from storage.
    pub fn from_parts(
        access_token: String,
        refresh_token: String,
        session_id: String,
        timeline: Timeline,
    ) -> Self {
        Self {
            access_token: Zeroizing::new(access_token),
            refresh_token: Zeroizing::new(refresh_token),
            session_id,
            timeline,
        }
    }

    /// The access token (sent as `Authorization: DPoP …`).
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// The refresh token.
    pub fn refresh_token(&self) -> &str {
        &self.refresh_token
    }

    /// The session's id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The deadlines.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// The two tokens as one byte string for encryption at rest (`access \n refresh`;
    /// neither can contain a newline).
    pub fn sealable(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Vec::with_capacity(self.access_token.len() + self.refresh_token.len() + 1);
        out.extend_from_slice(self.access_token.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(self.refresh_token.as_bytes());
        Zeroizing::new(out)
    }

    /// The inverse of [`sealable`](Self::sealable), checking the token characters.
    pub fn from_sealed(
        plain: &[u8],
        session_id: String,
        timeline: Timeline,
    ) -> Result<Self, ClientError> {
        let bad = ClientError::Storage {
            op: "stored tokens are malformed",
        };
        let mut parts = plain.split(|b| *b == b'\n');
        let (Some(at), Some(rt), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad);
        };
        let ok = |t: &[u8]| {
            !t.is_empty() && t.len() <= MAX_TOKEN_LEN && t.iter().all(|b| is_token_char(*b))
        };
        if !ok(at) || !ok(rt) {
            return Err(bad);
        }
        // Only token characters (ASCII) are left, so these conversions cannot fail.
        let text = |t: &[u8]| t.iter().map(|b| char::from(*b)).collect::<String>();
        Ok(Self::from_parts(text(at), text(rt), session_id, timeline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn response() -> TokenResponse {
        TokenResponse {
            access_token: "at.at.at".into(),
            token_type: "DPoP".into(),
            expires_in: 300,
            refresh_token: "rt".into(),
            session_id: "s1".into(),
            session_expires_at: 44_200,
            idle_expires_at: 2800,
            server_time: 1000,
        }
    }

    #[test]
    fn accepts_a_token_response() {
        let t = SessionTokens::from_response(response()).unwrap();
        assert_eq!(t.access_token(), "at.at.at");
        assert_eq!(t.refresh_token(), "rt");
        assert_eq!(t.session_id(), "s1");
        assert_eq!(t.timeline().access_expires_at, 1_300_000);
        let debug = format!("{t:?}");
        assert!(!debug.contains("at.at.at") && !debug.contains("\"rt\""));
    }

    #[test]
    fn sealing_round_trip() {
        let t = SessionTokens::from_response(response()).unwrap();
        let plain = t.sealable();
        assert_eq!(&plain[..], b"at.at.at\nrt");
        let back = SessionTokens::from_sealed(&plain, "s1".into(), *t.timeline()).unwrap();
        assert_eq!(back, t);
        for bad in [&b"only-one"[..], b"a\nb\nc", b"\nrt", b"a t\nrt"] {
            let err = SessionTokens::from_sealed(bad, "s1".into(), *t.timeline()).unwrap_err();
            assert_eq!(err.code(), "storage_error");
        }
    }

    #[test]
    fn rejects_bad_token_responses() {
        let cases: Vec<fn(&mut TokenResponse)> = vec![
            |r| r.token_type = "Bearer".into(),
            |r| r.access_token.clear(),
            |r| r.refresh_token = "x".repeat(MAX_TOKEN_LEN + 1),
            |r| r.access_token = "tökén".into(),
            |r| r.refresh_token = "a\"b".into(),
            |r| r.access_token = "a b".into(),
            |r| r.session_id.clear(),
            |r| r.expires_in = 0,
            |r| r.idle_expires_at = 999,
            |r| r.session_expires_at = 0,
        ];
        for (i, break_it) in cases.into_iter().enumerate() {
            let mut r = response();
            break_it(&mut r);
            let err = SessionTokens::from_response(r).unwrap_err();
            assert_eq!(err.code(), "invalid_response", "case {i}");
        }
        let mut lower = response();
        lower.token_type = "dpop".into();
        assert!(SessionTokens::from_response(lower).is_ok());
    }
}
