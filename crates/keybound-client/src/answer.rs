//! What a server's answer means for the session: a nonce to retry with, a token to
//! refresh, a clock to correct, or an ended session.

#[allow(unused_imports)]
use crate::prelude::*;
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

/// The kinds of signed exchange the SDK makes; each reads answers its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// `kb.fetch`: the answer goes back to the caller whatever its status.
    Resource,
    /// The SDK's own session calls (list, revoke, logout): anything but 2xx is an error.
    Internal,
    /// The app's login route: a 2xx answer is a token response.
    Login,
    /// A sensitive action on an app route that answers with new tokens.
    Rotate,
    /// `POST {endpoint}/refresh`.
    Refresh,
}

impl Exchange {
    /// The kind with this number (the order above), as the JavaScript driver sends it.
    pub fn from_index(index: u32) -> Option<Self> {
        Some(match index {
            0 => Self::Resource,
            1 => Self::Internal,
            2 => Self::Login,
            3 => Self::Rotate,
            4 => Self::Refresh,
            _ => return None,
        })
    }

    /// Whether requests of this kind carry the access token.
    pub fn sends_access_token(self) -> bool {
        matches!(self, Self::Resource | Self::Internal | Self::Rotate)
    }

    fn answers_with_tokens(self) -> bool {
        matches!(self, Self::Login | Self::Rotate | Self::Refresh)
    }
}

/// What to do after an answer, within one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A token response to take up (login, rotation, refresh).
    TakeTokens,
    /// Hand the answer to the caller.
    Deliver,
    /// Send again with a fresh proof (the nonce or the clock was corrected).
    Retry,
    /// Refresh the tokens, then send again.
    RefreshThenRetry,
    /// The session is over. A resource request still hands the answer to the caller;
    /// every other exchange fails with the session's end.
    Ended(Terminal),
    /// The exchange failed with the server's error.
    Fail,
}

/// One exchange's retries: at most one each for a nonce challenge, a clock correction
/// and a refused access token, however the answers come.
///
/// ```
/// use keybound_client::answer::{Answer, Exchange, RetryBudget, Step};
/// let challenge = Answer { status: 401, challenge_error: Some("use_dpop_nonce"),
///                          has_nonce: true, ..Answer::default() };
/// let mut budget = RetryBudget::default();
/// assert_eq!(budget.step(Exchange::Resource, &challenge), Step::Retry);
/// // A second challenge in the same exchange goes back to the caller.
/// assert_eq!(budget.step(Exchange::Resource, &challenge), Step::Deliver);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryBudget {
    used: u8,
}

const NONCE: u8 = 1;
const CLOCK: u8 = 2;
const TOKEN: u8 = 4;

impl RetryBudget {
    /// The budget as a small number, to carry across an `await` in JavaScript.
    pub fn to_bits(self) -> u32 {
        u32::from(self.used)
    }

    /// The inverse of [`to_bits`](Self::to_bits) (unknown bits are dropped).
    pub fn from_bits(bits: u32) -> Self {
        Self {
            used: (bits & u32::from(NONCE | CLOCK | TOKEN)) as u8,
        }
    }

    fn take(&mut self, retry: u8) -> bool {
        let free = self.used & retry == 0;
        self.used |= retry;
        free
    }

    /// Decides what `answer` means for an exchange of kind `exchange`, spending the
    /// retry it uses.
    pub fn step(&mut self, exchange: Exchange, answer: &Answer<'_>) -> Step {
        let ok = (200..300).contains(&answer.status);
        if ok && exchange.answers_with_tokens() {
            return Step::TakeTokens;
        }
        if ok {
            return Step::Deliver;
        }
        let verdict = answer.verdict();
        match verdict {
            Verdict::NonceChallenge if self.take(NONCE) => return Step::Retry,
            Verdict::ClockSkew if self.take(CLOCK) => return Step::Retry,
            _ => {}
        }
        match exchange {
            Exchange::Resource | Exchange::Internal => match verdict {
                Verdict::TokenRejected if self.take(TOKEN) => Step::RefreshThenRetry,
                Verdict::SessionEnded(terminal) => Step::Ended(terminal),
                _ if exchange == Exchange::Resource => Step::Deliver,
                _ => Step::Fail,
            },
            Exchange::Login => Step::Fail,
            Exchange::Rotate => match verdict {
                Verdict::SessionEnded(terminal) => Step::Ended(terminal),
                _ => Step::Fail,
            },
            Exchange::Refresh => {
                match Terminal::from_refresh_refusal(answer.error_name(), answer.error_code) {
                    Some(terminal) => Step::Ended(terminal),
                    None => Step::Fail,
                }
            }
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
        // Only ASCII delimiters end a token, so it is whole UTF-8.
        (self.pos > start)
            .then(|| String::from_utf8(self.bytes.get(start..self.pos)?.to_vec()).ok())
            .flatten()
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
                    // Escapes copy whole bytes, so the text stays UTF-8.
                    return String::from_utf8(out).ok();
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

    fn nonce_challenge() -> Answer<'static> {
        Answer {
            status: 401,
            challenge_error: Some("use_dpop_nonce"),
            has_nonce: true,
            ..Answer::default()
        }
    }

    #[test]
    fn one_budget_per_exchange() {
        let skew = answer(401, Some("invalid_dpop_proof"), Some("iat_too_old"));
        let refused = answer(401, Some("invalid_token"), Some("token_expired"));
        let mut budget = RetryBudget::default();
        assert_eq!(
            budget.step(Exchange::Resource, &nonce_challenge()),
            Step::Retry
        );
        assert_eq!(budget.step(Exchange::Resource, &skew), Step::Retry);
        assert_eq!(
            budget.step(Exchange::Resource, &refused),
            Step::RefreshThenRetry
        );
        // Every retry is spent: the answers go back to the caller.
        for a in [nonce_challenge(), skew, refused] {
            assert_eq!(budget.step(Exchange::Resource, &a), Step::Deliver);
        }
        // The budget survives the trip through JavaScript.
        assert_eq!(RetryBudget::from_bits(budget.to_bits()), budget);
        // The SDK's own calls fail instead.
        assert_eq!(budget.step(Exchange::Internal, &refused), Step::Fail);
    }

    #[test]
    fn each_exchange_reads_success_its_own_way() {
        let ok = answer(200, None, None);
        let mut b = RetryBudget::default();
        assert_eq!(b.step(Exchange::Resource, &ok), Step::Deliver);
        assert_eq!(b.step(Exchange::Internal, &ok), Step::Deliver);
        for kind in [Exchange::Login, Exchange::Rotate, Exchange::Refresh] {
            assert_eq!(b.step(kind, &ok), Step::TakeTokens);
        }
        let not_found = answer(404, None, None);
        assert_eq!(b.step(Exchange::Resource, &not_found), Step::Deliver);
        assert_eq!(b.step(Exchange::Internal, &not_found), Step::Fail);
    }

    #[test]
    fn ended_sessions_and_refused_refreshes() {
        let revoked = answer(401, Some("invalid_token"), Some("session_revoked"));
        let mut b = RetryBudget::default();
        for kind in [Exchange::Resource, Exchange::Internal, Exchange::Rotate] {
            assert_eq!(b.step(kind, &revoked), Step::Ended(Terminal::Revoked));
        }
        // A login route's refusal is the app's answer, whatever it says.
        assert_eq!(b.step(Exchange::Login, &revoked), Step::Fail);
        let grant = answer(400, Some("invalid_grant"), None);
        assert_eq!(
            b.step(Exchange::Refresh, &grant),
            Step::Ended(Terminal::Expired)
        );
        let busy = answer(503, Some("server_error"), None);
        assert_eq!(b.step(Exchange::Refresh, &busy), Step::Fail);
        // A refused token is not refreshed inside a refresh or a rotation.
        let refused = answer(401, Some("invalid_token"), Some("token_expired"));
        assert_eq!(b.step(Exchange::Rotate, &refused), Step::Fail);
        assert_eq!(Exchange::from_index(4), Some(Exchange::Refresh));
        assert_eq!(Exchange::from_index(5), None);
    }
}
