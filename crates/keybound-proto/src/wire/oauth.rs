//! The OAuth 2.0 / RFC 9449 errors: the `error` member of every error body and the
//! `error` parameter of a `DPoP` challenge. Coarse and standard; the precise reason is
//! the body's `error_code` ([`code`](super::code)).

use super::Code;
#[allow(unused_imports)]
use crate::prelude::*;

codes! {
    INVALID_TOKEN = "invalid_token":
        "The access token (or the session behind it) is not valid (401).";
    INVALID_DPOP_PROOF = "invalid_dpop_proof": "The DPoP proof is not valid (401).";
    USE_DPOP_NONCE = "use_dpop_nonce":
        "The server requires a nonce in the proof; retry with the `DPoP-Nonce` sent (401).";
    INVALID_GRANT = "invalid_grant":
        "The refresh token or the session's grant is no longer valid; definitive (400).";
    INVALID_REQUEST = "invalid_request":
        "The request is malformed (400, or 404 for an unknown session).";
    ACCESS_DENIED = "access_denied": "The caller may not do this (403).";
    TEMPORARILY_UNAVAILABLE = "temporarily_unavailable":
        "A store cannot answer right now; retry after `Retry-After` (503).";
    SERVER_ERROR = "server_error": "The server failed; the details are in its log (500).";
}
