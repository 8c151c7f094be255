//! The one error type of the SDK, with the stable codes JavaScript sees as `err.code`.

#[allow(unused_imports)]
use crate::prelude::*;
use core::fmt;

use keybound_proto::wire::code;

use crate::state::Terminal;

/// Why an SDK operation failed.
///
/// Every variant has a stable snake_case [`code`](ClientError::code). Server answers keep
/// the server's own `error_code` (for example `invalid_credentials` or `iat_too_old`), so
/// JavaScript code can branch on `err.code` whichever side detected the problem.
/// Messages never contain token or key material.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// There is no session: log in first.
    NotLoggedIn,
    /// The session has ended (revoked, closed or expired); log in again.
    SessionEnded(Terminal),
    /// The request did not reach the server or no answer came back.
    Network {
        /// What the browser reported (never contains request headers).
        detail: String,
    },
    /// The request was aborted by its `AbortSignal`.
    Aborted,
    /// The arguments do not make a valid request (what `fetch` rejects with a
    /// `TypeError`: a body on a GET, an unusable URL, a used body, …).
    InvalidInput {
        /// What the browser reported.
        detail: String,
    },
    /// The server answered with an error.
    Server {
        /// HTTP status.
        status: u16,
        /// The server's `error_code`, else its `error`, else a code derived from the status.
        code: String,
        /// The server's `error_description` (servers never put tokens there).
        description: String,
        /// For `429`: the seconds its `Retry-After` asks to wait, when it says.
        retry_after: Option<u64>,
    },
    /// The server's answer could not be understood (not a token response, bad JSON, …).
    InvalidResponse {
        /// What was wrong.
        reason: &'static str,
    },
    /// The browser's crypto failed (key generation, signing, encryption).
    Crypto {
        /// Which operation failed.
        op: &'static str,
    },
    /// IndexedDB failed or holds data the SDK cannot read.
    Storage {
        /// Which operation failed.
        op: &'static str,
    },
    /// The browser lacks something the SDK cannot work without (IndexedDB, WebCrypto).
    Unsupported {
        /// The missing API.
        missing: &'static str,
    },
    /// The `Keybound` object was disposed.
    Disposed,
    /// An option passed to `Keybound.init` or to a method is invalid.
    InvalidOption {
        /// What was wrong.
        reason: &'static str,
    },
    /// A signed request was for an origin the app did not allow (`allowedOrigins`),
    /// or a signed request's answer came from one (after a redirect).
    OriginNotAllowed,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl core::error::Error for ClientError {}

/// Appends `n` in decimal (the browser build carries no formatting machinery).
pub(crate) fn push_decimal(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

impl ClientError {
    /// The human-readable message (`err.message` in JavaScript). Built by plain string
    /// concatenation: the browser build carries no formatting machinery.
    pub fn message(&self) -> String {
        let (head, tail): (&str, &str) = match self {
            Self::NotLoggedIn => ("not logged in", ""),
            Self::SessionEnded(terminal) => ("the session has ended: ", terminal.as_str()),
            Self::Network { detail } => ("network error: ", detail),
            Self::Aborted => ("the request was aborted", ""),
            Self::InvalidInput { detail } => ("invalid request: ", detail),
            Self::Server {
                status,
                code,
                description,
                ..
            } => {
                let mut out = String::new();
                push_decimal(&mut out, u64::from(*status));
                out.push(' ');
                out.push_str(code);
                out.push_str(": ");
                out.push_str(description);
                return out;
            }
            Self::InvalidResponse { reason } => ("invalid response from the server: ", reason),
            Self::Crypto { op } => ("crypto operation failed: ", op),
            Self::Storage { op } => ("storage error: ", op),
            Self::Unsupported { missing } => {
                let mut out = String::from("unsupported browser: ");
                out.push_str(missing);
                out.push_str(" is not available");
                return out;
            }
            Self::Disposed => ("this Keybound instance was disposed", ""),
            Self::InvalidOption { reason } => ("invalid option: ", reason),
            Self::OriginNotAllowed => ("origin not in allowedOrigins", ""),
        };
        let mut out = String::with_capacity(head.len() + tail.len());
        out.push_str(head);
        out.push_str(tail);
        out
    }

    /// The stable machine code (`err.code` in JavaScript).
    pub fn code(&self) -> &str {
        match self {
            Self::NotLoggedIn => code::NOT_LOGGED_IN,
            Self::SessionEnded(terminal) => terminal.error_code(),
            Self::Network { .. } => code::NETWORK_ERROR,
            Self::Aborted => code::ABORTED,
            Self::InvalidInput { .. } => code::INVALID_INPUT,
            Self::Server { code, .. } => code,
            Self::InvalidResponse { .. } => code::INVALID_RESPONSE,
            Self::Crypto { .. } => code::CRYPTO_ERROR,
            Self::Storage { .. } => code::STORAGE_ERROR,
            Self::Unsupported { .. } => code::UNSUPPORTED_BROWSER,
            Self::Disposed => code::DISPOSED,
            Self::InvalidOption { .. } => code::INVALID_OPTION,
            Self::OriginNotAllowed => code::ORIGIN_NOT_ALLOWED,
        }
    }

    /// The HTTP status, for errors that are a server's answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// For a `429` answer, the seconds its `Retry-After` asks to wait.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether retrying later may succeed (network trouble, 5xx, 408, 429): such
    /// failures keep the session.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network { .. } => true,
            Self::Server { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }

    /// Builds the error for a server's JSON error answer, preferring `error_code` over
    /// `error` and falling back to a code derived from the status.
    pub fn from_server(
        status: u16,
        error: Option<&str>,
        error_code: Option<&str>,
        description: Option<&str>,
    ) -> Self {
        let code = error_code
            .filter(|c| is_code(c))
            .or(error.filter(|c| is_code(c)))
            .map_or_else(|| status_code(status).to_owned(), str::to_owned);
        Self::Server {
            status,
            code,
            description: description.unwrap_or_default().chars().take(200).collect(),
            retry_after: None,
        }
    }
}

/// A code fit to pass through: short snake_case ASCII (anything else is replaced).
fn is_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The code used when the server gave none.
fn status_code(status: u16) -> &'static str {
    match status {
        400 => code::BAD_REQUEST,
        401 => code::UNAUTHORIZED,
        403 => code::FORBIDDEN,
        404 => code::NOT_FOUND,
        408 => code::REQUEST_TIMEOUT,
        429 => code::RATE_LIMITED,
        500..=599 => code::SERVER_ERROR,
        _ => code::UNEXPECTED_STATUS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn server_codes_prefer_error_code_then_error_then_status() {
        let e = ClientError::from_server(401, Some("invalid_token"), Some("token_expired"), None);
        assert_eq!(e.code(), "token_expired");
        assert_eq!(e.status(), Some(401));
        let e = ClientError::from_server(400, Some("invalid_grant"), None, Some("no"));
        assert_eq!(e.code(), "invalid_grant");
        let e = ClientError::from_server(503, None, None, None);
        assert_eq!(e.code(), "server_error");
        assert!(e.is_transient());
        let e = ClientError::from_server(429, None, None, None);
        assert_eq!(e.code(), "rate_limited");
        assert!(e.is_transient());
        let e = ClientError::from_server(418, None, None, None);
        assert_eq!(e.code(), "unexpected_status");
        assert!(!e.is_transient());
    }

    #[test]
    fn odd_server_codes_are_not_passed_through() {
        let e = ClientError::from_server(400, Some("Bad Thing <script>"), None, None);
        assert_eq!(e.code(), "bad_request");
        let long = "a".repeat(65);
        let e = ClientError::from_server(401, None, Some(&long), None);
        assert_eq!(e.code(), "unauthorized");
    }

    #[test]
    fn messages_name_what_failed() {
        assert_eq!(
            ClientError::Storage { op: "open" }.to_string(),
            "storage error: open"
        );
        let e = ClientError::from_server(401, Some("invalid_token"), None, Some("no"));
        assert_eq!(e.message(), "401 invalid_token: no");
        assert_eq!(
            ClientError::SessionEnded(Terminal::Revoked).message(),
            "the session has ended: revoked"
        );
        let mut out = String::new();
        for n in [0, 7, 10, 65_535, u64::MAX] {
            out.clear();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn client_codes_are_stable() {
        assert_eq!(ClientError::NotLoggedIn.code(), "not_logged_in");
        assert_eq!(
            ClientError::SessionEnded(Terminal::Revoked).code(),
            "session_revoked"
        );
        assert_eq!(
            ClientError::Network { detail: "x".into() }.code(),
            "network_error"
        );
        assert!(ClientError::Network { detail: "x".into() }.is_transient());
        assert_eq!(ClientError::Crypto { op: "sign" }.code(), "crypto_error");
        assert_eq!(ClientError::Aborted.code(), "aborted");
        assert_eq!(ClientError::Disposed.code(), "disposed");
        assert_eq!(ClientError::OriginNotAllowed.code(), "origin_not_allowed");
        assert!(!ClientError::Aborted.is_transient());
        assert_eq!(
            ClientError::InvalidInput { detail: "x".into() }.code(),
            "invalid_input"
        );
        assert_eq!(
            ClientError::Unsupported { missing: "x" }.code(),
            "unsupported_browser"
        );
    }
}
