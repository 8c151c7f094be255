//! What a server's answer means for the session: a nonce to retry with, a token to
//! refresh, a clock to correct, or an ended session.

use keybound_proto::wire::{code, oauth};

use crate::state::Terminal;

/// The facts of an HTTP answer the SDK looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answer<'a> {
    /// HTTP status.
    pub status: u16,
    /// The `error` parameter of the `DPoP` challenge in `WWW-Authenticate`, if any.
    pub challenge_error: Option<&'a str>,
    /// `error` of the JSON body, if any.
    pub error: Option<&'a str>,
    /// `error_code` of the JSON body, if any.
    pub error_code: Option<&'a str>,
    /// Whether the answer carries a `DPoP-Nonce` header.
    pub has_nonce: bool,
}

/// What to do with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the caller as it is.
    Pass,
    /// `use_dpop_nonce` with a new nonce: retry once with a fresh proof carrying it.
    NonceChallenge,
    /// The session is over; the answer says how.
    SessionEnded(Terminal),
    /// The access token was refused for another reason (expired, unknown key): refresh
    /// and retry once.
    TokenRejected,
    /// The proof's `iat` was outside the server's window: correct the clock from the
    /// `Date` header and retry once.
    ClockSkew,
}

impl Answer<'_> {
    /// The error a failed answer gives, whichever place named it.
    pub fn error_name(&self) -> Option<&str> {
        self.error.or(self.challenge_error)
    }

    /// Classifies the answer (RFC 9449 §7.1 and §8, keybound's error codes).
    pub fn verdict(&self) -> Verdict {
        if !matches!(self.status, 400 | 401 | 403) {
            return Verdict::Pass;
        }
        let error = self.error_name();
        if error == Some(oauth::USE_DPOP_NONCE) && self.has_nonce {
            return Verdict::NonceChallenge;
        }
        if let Some(terminal) = self.error_code.and_then(Terminal::from_error_code) {
            return Verdict::SessionEnded(terminal);
        }
        match (error, self.error_code) {
            // Resource servers answer 401; token endpoints (login, refresh) may say 400.
            (Some(oauth::INVALID_DPOP_PROOF), Some(code::IAT_TOO_OLD | code::IAT_IN_FUTURE))
                if self.status != 403 =>
            {
                Verdict::ClockSkew
            }
            (Some(oauth::INVALID_TOKEN), _) if self.status == 401 => Verdict::TokenRejected,
            _ => Verdict::Pass,
        }
    }
}

/// The `error` parameter of the `DPoP` challenge in a `WWW-Authenticate` header value
/// (RFC 9110 §11.6.1), which may hold several challenges.
///
/// ```
/// use keybound_client::answer::dpop_challenge_error;
/// let header = r#"Bearer realm="x", DPoP error="use_dpop_nonce", algs="EdDSA""#;
/// assert_eq!(dpop_challenge_error(header).as_deref(), Some("use_dpop_nonce"));
/// ```
pub fn dpop_challenge_error(header: &str) -> Option<String> {
    let mut scan = Scanner {
        bytes: header.as_bytes(),
        pos: 0,
    };
    let mut in_dpop = false;
    loop {
        scan.skip(|b| b == b' ' || b == b'\t' || b == b',');
        let name = scan.token()?;
        scan.skip(|b| b == b' ' || b == b'\t');
        if scan.peek() == Some(b'=') {
            scan.pos += 1;
            if matches!(scan.peek(), Some(b'=') | Some(b',') | None) {
                // token68 padding, not an auth-param.
                scan.skip(|b| b == b'=');
                continue;
            }
            scan.skip(|b| b == b' ' || b == b'\t');
            let value = scan.value()?;
            if in_dpop && name.eq_ignore_ascii_case("error") {
                return Some(value);
            }
        } else {
            in_dpop = name.eq_ignore_ascii_case("DPoP");
        }
    }
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip(&mut self, what: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&what) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        self.skip(|b| !matches!(b, b' ' | b'\t' | b',' | b'=' | b'"'));
        (self.pos > start).then(|| String::from_utf8_lossy(&self.bytes[start..self.pos]).into())
    }

    fn value(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return self.token();
        }
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(String::from_utf8_lossy(&out).into());
                }
                b'\\' => {
                    self.pos += 1;
                    out.push(self.peek()?);
                }
                b => out.push(b),
            }
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn finds_the_dpop_error_among_challenges() {
        let cases = [
            (r#"DPoP error="use_dpop_nonce""#, Some("use_dpop_nonce")),
            (
                r#"DPoP algs="EdDSA", error="invalid_token", error_description="a, \"b\"""#,
                Some("invalid_token"),
            ),
            (
                r#"Basic realm="r", dpop error=invalid_dpop_proof"#,
                Some("invalid_dpop_proof"),
            ),
            (r#"Bearer error="invalid_token""#, None),
            (r#"Negotiate abc123==, DPoP error="x""#, Some("x")),
            (r#"DPoP algs="EdDSA""#, None),
            ("", None),
            (r#"DPoP error="unterminated"#, None),
        ];
        for (header, expected) in cases {
            assert_eq!(
                dpop_challenge_error(header).as_deref(),
                expected,
                "header {header}"
            );
        }
    }

    fn answer(
        status: u16,
        error: Option<&'static str>,
        code: Option<&'static str>,
    ) -> Answer<'static> {
        Answer {
            status,
            error,
            error_code: code,
            ..Answer::default()
        }
    }

    #[test]
    fn nonce_challenges_need_a_nonce() {
        let resource = Answer {
            status: 401,
            challenge_error: Some("use_dpop_nonce"),
            has_nonce: true,
            ..Answer::default()
        };
        assert_eq!(resource.verdict(), Verdict::NonceChallenge);
        // The authorisation-server form: 400 with the error in the body.
        let token_endpoint = Answer {
            has_nonce: true,
            ..answer(400, Some("use_dpop_nonce"), None)
        };
        assert_eq!(token_endpoint.verdict(), Verdict::NonceChallenge);
        let without_nonce = Answer {
            has_nonce: false,
            ..resource
        };
        assert_eq!(without_nonce.verdict(), Verdict::Pass);
    }

    #[test]
    fn session_codes_end_the_session() {
        let revoked = answer(401, Some("invalid_token"), Some("session_revoked"));
        assert_eq!(revoked.verdict(), Verdict::SessionEnded(Terminal::Revoked));
        let closed = answer(400, Some("invalid_grant"), Some("session_closed"));
        assert_eq!(closed.verdict(), Verdict::SessionEnded(Terminal::Closed));
        let expired = answer(403, Some("access_denied"), Some("session_expired"));
        assert_eq!(expired.verdict(), Verdict::SessionEnded(Terminal::Expired));
    }

    #[test]
    fn token_and_clock_problems_are_retried() {
        assert_eq!(
            answer(401, Some("invalid_token"), Some("token_expired")).verdict(),
            Verdict::TokenRejected
        );
        let challenge_only = Answer {
            status: 401,
            challenge_error: Some("invalid_token"),
            ..Answer::default()
        };
        assert_eq!(challenge_only.verdict(), Verdict::TokenRejected);
        assert_eq!(
            answer(401, Some("invalid_dpop_proof"), Some("iat_too_old")).verdict(),
            Verdict::ClockSkew
        );
        assert_eq!(
            answer(401, Some("invalid_dpop_proof"), Some("iat_in_future")).verdict(),
            Verdict::ClockSkew
        );
        assert_eq!(
            answer(400, Some("invalid_dpop_proof"), Some("iat_too_old")).verdict(),
            Verdict::ClockSkew
        );
        assert_eq!(
            answer(403, Some("invalid_dpop_proof"), Some("iat_too_old")).verdict(),
            Verdict::Pass
        );
    }

    #[test]
    fn everything_else_passes_through() {
        assert_eq!(answer(200, None, None).verdict(), Verdict::Pass);
        assert_eq!(
            answer(500, Some("server_error"), None).verdict(),
            Verdict::Pass
        );
        assert_eq!(
            answer(401, Some("invalid_dpop_proof"), Some("jti_replayed")).verdict(),
            Verdict::Pass
        );
        assert_eq!(
            answer(400, Some("invalid_token"), Some("token_expired")).verdict(),
            Verdict::Pass
        );
        assert_eq!(
            answer(401, Some("invalid_credentials"), None).verdict(),
            Verdict::Pass
        );
    }
}
