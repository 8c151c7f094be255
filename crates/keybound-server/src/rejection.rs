//! Why a request was refused, and the exact HTTP response that says so (DESIGN §3).
//!
//! Every [`Rejection`] has a fixed status, an OAuth / RFC 9449 error (`invalid_token`,
//! `invalid_dpop_proof`, `use_dpop_nonce`, or `temporarily_unavailable` for a store that
//! cannot answer) and a stable fine [`code`](Rejection::code) that clients, logs and
//! metrics can rely on. [`Verifier::response`](crate::Verifier::response) (or
//! [`Rejection::into_http_response`] with the verifier's algorithms) renders it for any
//! `http`-based framework.

use http::StatusCode;
use keybound_proto::wire::{code, oauth};
use keybound_proto::{CheckError, Credential, ErrorBody, ProofAlgs, ProtoError};

use crate::replay::ReplayError;
use crate::response;
use crate::session_check::SessionDenied;

/// A refused request: one variant per failure, each with a stable code.
///
/// | code | status | `error` |
/// |---|---|---|
/// | [`ProtoError::code`] of a proof check | 401 | `invalid_dpop_proof` |
/// | [`ProtoError::code`] of an access-token check | 401 | `invalid_token` |
/// | `missing_proof`, `multiple_dpop_headers`, `replayed_jti` | 401 | `invalid_dpop_proof` |
/// | `header_too_large` | 401 | `invalid_dpop_proof` or `invalid_token` (by header) |
/// | `missing_token`, `multiple_authorization_headers`, `invalid_auth_scheme` | 401 | `invalid_token` |
/// | `use_dpop_nonce`, `invalid_nonce` | 401 | `use_dpop_nonce` (with a `DPoP-Nonce` header) |
/// | [`SessionDenied::code`] (`session_revoked`, …) | 401 | `invalid_token` |
/// | `session_store_unavailable`, `replay_store_unavailable` | 503 | `temporarily_unavailable` |
///
/// ```
/// use keybound_server::Rejection;
/// use keybound_server::proto::{ProofAlg, ProofAlgs};
/// let rejection = Rejection::InvalidAuthScheme;
/// assert_eq!(rejection.status(), 401);
/// assert_eq!(rejection.oauth_error(), "invalid_token");
/// // A verifier that accepts only ES256 proofs says so in its challenges.
/// let response = rejection.into_http_response(ProofAlgs::only(ProofAlg::ES256));
/// assert_eq!(
///     response.headers()["www-authenticate"],
///     r#"DPoP error="invalid_token", error_description="the Authorization scheme must be DPoP", algs="ES256""#
/// );
/// assert!(response.body().contains(r#""error_code":"invalid_auth_scheme""#));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A proof or access token failed a protocol check (parsing, binding, time,
    /// signature); the code is the [`ProtoError::code`].
    #[error("{error}")]
    Proto {
        /// The credential that failed.
        credential: Credential,
        /// The precise failure.
        error: ProtoError,
    },
    /// The request has no `DPoP` header.
    #[error("the request has no DPoP proof")]
    MissingProof,
    /// The request has more than one `DPoP` header (RFC 9449 §4.3 allows exactly one).
    #[error("the request has more than one DPoP header")]
    MultipleDpopHeaders,
    /// The `DPoP` or `Authorization` header is larger than the configured limit.
    #[error("the {} header is larger than {limit} bytes", header_name(*credential))]
    HeaderTooLarge {
        /// Which header: [`Credential::Proof`] for `DPoP`, [`Credential::AccessToken`]
        /// for `Authorization`.
        credential: Credential,
        /// The limit in bytes.
        limit: usize,
    },
    /// A protected request has no `Authorization` header (or an empty token).
    #[error("the request has no access token")]
    MissingToken,
    /// The request has more than one `Authorization` header.
    #[error("the request has more than one Authorization header")]
    MultipleAuthorizationHeaders,
    /// The `Authorization` scheme is not `DPoP` (for example `Bearer`): keybound's
    /// access tokens are bound to a key and are never accepted as bearer tokens.
    #[error("the Authorization scheme must be DPoP")]
    InvalidAuthScheme,
    /// The proof's `jti` was seen before within the proof's lifetime.
    #[error("the proof was already used")]
    ReplayedJti,
    /// The request target is not in normal form (a `.` or `..` segment, or not an
    /// absolute path): the router would dispatch on another path than the proof names.
    #[error("the request path is not in normal form")]
    RequestTargetNotNormal,
    /// The access token's `iss` is not this service's issuer.
    #[error("the access token was issued by another issuer")]
    InvalidIssuer,
    /// Nonces are on and the proof carries none; retry with the nonce in
    /// [`Rejection::nonce`] (sent as the `DPoP-Nonce` header).
    #[error("the server requires a nonce in the DPoP proof")]
    UseDpopNonce {
        /// The nonce to use.
        nonce: String,
    },
    /// Nonces are on and the proof's nonce is wrong or stale; retry with the nonce in
    /// [`Rejection::nonce`].
    #[error("the DPoP proof's nonce is invalid or stale")]
    InvalidNonce {
        /// The nonce to use.
        nonce: String,
    },
    /// The session may not be used (revoked, expired, closed, unknown, other key) or its
    /// store could not answer; the code is the [`SessionDenied::code`].
    #[error("{0}")]
    Session(SessionDenied),
    /// The replay store could not record the proof (full under a flood, or
    /// unreachable): the request fails closed rather than risk accepting a replay.
    #[error("{0}")]
    ReplayStoreUnavailable(ReplayError),
}

fn header_name(credential: Credential) -> &'static str {
    match credential {
        Credential::Proof => "DPoP",
        Credential::AccessToken => "Authorization",
    }
}

impl From<CheckError> for Rejection {
    fn from(err: CheckError) -> Self {
        Self::Proto {
            credential: err.credential,
            error: err.error,
        }
    }
}

impl From<SessionDenied> for Rejection {
    fn from(denied: SessionDenied) -> Self {
        Self::Session(denied)
    }
}

impl From<ReplayError> for Rejection {
    fn from(err: ReplayError) -> Self {
        Self::ReplayStoreUnavailable(err)
    }
}

impl Rejection {
    /// The stable fine code (`iat_too_old`, `replayed_jti`, `session_revoked`, …); the
    /// JSON body's `error_code` and the `result` label of keybound's metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Proto { error, .. } => error.code(),
            Self::MissingProof => code::MISSING_PROOF,
            Self::MultipleDpopHeaders => code::MULTIPLE_DPOP_HEADERS,
            Self::HeaderTooLarge { .. } => code::HEADER_TOO_LARGE,
            Self::MissingToken => code::MISSING_TOKEN,
            Self::MultipleAuthorizationHeaders => code::MULTIPLE_AUTHORIZATION_HEADERS,
            Self::InvalidAuthScheme => code::INVALID_AUTH_SCHEME,
            Self::ReplayedJti => code::REPLAYED_JTI,
            Self::RequestTargetNotNormal => code::REQUEST_TARGET_NOT_NORMAL,
            Self::InvalidIssuer => code::INVALID_ISSUER,
            Self::UseDpopNonce { .. } => code::USE_DPOP_NONCE,
            Self::InvalidNonce { .. } => code::INVALID_NONCE,
            Self::Session(denied) => denied.code(),
            Self::ReplayStoreUnavailable(_) => code::REPLAY_STORE_UNAVAILABLE,
        }
    }

    /// Whether the failure is the server's (a store that cannot answer, `503`) rather
    /// than the request's (`401`).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::ReplayStoreUnavailable(_) | Self::Session(SessionDenied::Unavailable)
        )
    }

    /// The HTTP status: `401 Unauthorized`, or `503 Service Unavailable` when a store
    /// could not answer.
    pub fn status(&self) -> StatusCode {
        if self.is_unavailable() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::UNAUTHORIZED
        }
    }

    /// The OAuth / RFC 9449 error: `invalid_token`, `invalid_dpop_proof`,
    /// `use_dpop_nonce`, or `temporarily_unavailable` (503).
    pub fn oauth_error(&self) -> &'static str {
        match self {
            _ if self.is_unavailable() => oauth::TEMPORARILY_UNAVAILABLE,
            Self::Proto {
                credential: Credential::Proof,
                ..
            }
            | Self::HeaderTooLarge {
                credential: Credential::Proof,
                ..
            }
            | Self::MissingProof
            | Self::MultipleDpopHeaders
            | Self::RequestTargetNotNormal
            | Self::ReplayedJti => oauth::INVALID_DPOP_PROOF,
            Self::UseDpopNonce { .. } | Self::InvalidNonce { .. } => oauth::USE_DPOP_NONCE,
            _ => oauth::INVALID_TOKEN,
        }
    }

    /// The nonce the client must use, for a nonce challenge.
    pub fn nonce(&self) -> Option<&str> {
        match self {
            Self::UseDpopNonce { nonce } | Self::InvalidNonce { nonce } => Some(nonce),
            _ => None,
        }
    }

    /// The human-readable description: fixed text about the failed check, never any part
    /// of a token or proof.
    pub fn description(&self) -> String {
        self.to_string()
    }

    /// The JSON error body `{error, error_description, error_code}`.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.oauth_error().to_owned(),
            error_description: self.description(),
            error_code: self.code().to_owned(),
        }
    }

    /// The `WWW-Authenticate` challenge of a `401`:
    /// `DPoP error="…", error_description="…", algs="…"`, where `algs` lists the proof
    /// algorithms the verifier accepts (RFC 9449 §7.1, space-separated: the verifier's
    /// [`proof_algs`](crate::Verifier::proof_algs)). `None` for a `503`, which is no
    /// authentication challenge.
    pub fn www_authenticate(&self, algs: ProofAlgs) -> Option<String> {
        if self.is_unavailable() {
            return None;
        }
        Some(format!(
            r#"DPoP error="{}", error_description="{}", algs="{algs}""#,
            self.oauth_error(),
            quoted_string_safe(&self.description()),
        ))
    }

    /// The complete response: status, `WWW-Authenticate` (401) advertising `algs`, or
    /// `Retry-After: 1` (503), `DPoP-Nonce` for a nonce challenge, `Cache-Control:
    /// no-store`, and the JSON [`body`](Self::body) as `application/json`.
    /// [`Verifier::response`](crate::Verifier::response) renders a rejection with its
    /// verifier's algorithms.
    pub fn into_http_response(self, algs: ProofAlgs) -> http::Response<String> {
        response::error(
            self.status(),
            &self.body(),
            self.www_authenticate(algs).as_deref(),
            self.nonce(),
        )
    }
}

/// Makes text safe inside an RFC 9110 quoted-string and a header value: quotes and
/// backslashes become `'` and `/`, anything outside printable ASCII becomes `?`.
fn quoted_string_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_and_token_errors_map_to_their_oauth_errors() {
        let proof = Rejection::Proto {
            credential: Credential::Proof,
            error: ProtoError::IatTooOld,
        };
        assert_eq!(proof.code(), "iat_too_old");
        assert_eq!(proof.oauth_error(), "invalid_dpop_proof");
        assert_eq!(proof.status(), StatusCode::UNAUTHORIZED);
        let token = Rejection::Proto {
            credential: Credential::AccessToken,
            error: ProtoError::TokenExpired,
        };
        assert_eq!(token.code(), "token_expired");
        assert_eq!(token.oauth_error(), "invalid_token");
        let header = Rejection::HeaderTooLarge {
            credential: Credential::AccessToken,
            limit: 8192,
        };
        assert_eq!(header.oauth_error(), "invalid_token");
        assert_eq!(
            header.description(),
            "the Authorization header is larger than 8192 bytes"
        );
    }

    #[test]
    fn nonce_challenge_carries_the_nonce() {
        let rejection = Rejection::InvalidNonce {
            nonce: "abc".into(),
        };
        let response = rejection.into_http_response(ProofAlgs::ALL);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["dpop-nonce"], "abc");
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with(r#"DPoP error="use_dpop_nonce", "#)
        );
        let body: ErrorBody = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body.error, "use_dpop_nonce");
        assert_eq!(body.error_code, "invalid_nonce");
    }

    #[test]
    fn unavailable_stores_are_503_without_a_challenge() {
        for rejection in [
            Rejection::ReplayStoreUnavailable(ReplayError::Full { capacity: 1 }),
            Rejection::Session(SessionDenied::Unavailable),
        ] {
            let code = rejection.code();
            let response = rejection.into_http_response(ProofAlgs::ALL);
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().get("www-authenticate").is_none());
            assert_eq!(response.headers()["retry-after"], "1");
            let body: ErrorBody = serde_json::from_str(response.body()).unwrap();
            assert_eq!(body.error, "temporarily_unavailable");
            assert_eq!(body.error_code, code);
        }
    }

    #[test]
    fn session_denials_are_invalid_token() {
        let rejection = Rejection::Session(SessionDenied::Revoked);
        assert_eq!(rejection.code(), "session_revoked");
        assert_eq!(rejection.oauth_error(), "invalid_token");
        assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn descriptions_are_quoted_string_safe() {
        assert_eq!(quoted_string_safe("a\"b\\c\u{e9}\n"), "a'b/c??");
    }
}
