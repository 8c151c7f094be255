//! keybound's stable error codes: the `error_code` member of every error body the
//! server sends, and `err.code` of every error the browser SDK throws.
//!
//! Each code is defined once, here; the server's and the SDK's error types name these
//! constants, and [`ALL`] lists them with their meaning (`docs/codes.md` is the same
//! list for readers). A code never changes its meaning; new ones may be added.

use super::Code;
#[allow(unused_imports)]
use crate::prelude::*;

codes! {
    // The protocol core's checks of a proof or an access token (`ProtoError`).

    TOO_LARGE = "too_large": "The JWS is larger than the configured limit.";
    MALFORMED_JWS = "malformed_jws": "Not a compact JWS of three non-empty base64url parts.";
    INVALID_BASE64 = "invalid_base64":
        "A JWS part or JWK member is not canonical unpadded base64url.";
    INVALID_JSON = "invalid_json":
        "A JWS part (header or payload) does not decode to a JSON object.";
    DUPLICATE_JSON_MEMBER = "duplicate_json_member":
        "A JWS part contains the same JSON member twice.";
    UNSUPPORTED_ALG = "unsupported_alg":
        "The `alg` header is missing or not an accepted algorithm.";
    ALG_KEY_MISMATCH = "alg_key_mismatch":
        "The `alg` header and the key's type disagree (`ES256` with `OKP`, `EdDSA` with `EC`, …).";
    INVALID_TYP = "invalid_typ": "The `typ` header is missing or wrong for this kind of JWT.";
    UNKNOWN_CRIT = "unknown_crit":
        "The header has a `crit` member naming extensions keybound does not understand.";
    INVALID_JWK = "invalid_jwk": "The `jwk` header is missing or not an accepted public key.";
    PRIVATE_KEY_IN_JWK = "private_key_in_jwk": "The `jwk` header carries private key material.";
    WEAK_KEY = "weak_key": "The public key is weak (Ed25519 of small order, the P-256 identity).";
    MISSING_CLAIM = "missing_claim": "A required claim or header member is absent.";
    INVALID_CLAIM = "invalid_claim": "A claim has the wrong type or an unusable value.";
    HTM_MISMATCH = "htm_mismatch": "The proof's `htm` does not match the request method.";
    HTU_MISMATCH = "htu_mismatch": "The proof's `htu` does not match the request URL.";
    INVALID_URL = "invalid_url": "A URL is not an absolute http(s) URL keybound can normalise.";
    IAT_TOO_OLD = "iat_too_old": "The proof's `iat` is older than the allowed window.";
    IAT_IN_FUTURE = "iat_in_future":
        "The proof's `iat` is further in the future than the allowed window.";
    ATH_MISSING = "ath_missing": "An access token was sent but the proof has no `ath`.";
    ATH_MISMATCH = "ath_mismatch": "The proof's `ath` is not the hash of the access token sent.";
    JKT_MISMATCH = "jkt_mismatch": "The access token is bound to another key than the proof's.";
    NON_CANONICAL_SIGNATURE = "non_canonical_signature":
        "The signature's S component is not below the group order.";
    MALFORMED_SIGNATURE = "malformed_signature":
        "The signature is not of the form its `alg` requires (ES256: the 64-byte `r || s`, not DER).";
    SIGNATURE_OUT_OF_RANGE = "signature_out_of_range":
        "An ES256 signature's `r` or `s` is zero or not below the group order.";
    INVALID_SIGNATURE = "invalid_signature": "The signature does not verify.";
    UNKNOWN_KID = "unknown_kid": "The access token names a key id the server does not know.";
    TOKEN_EXPIRED = "token_expired": "The access token has expired.";
    TOKEN_NOT_YET_VALID = "token_not_yet_valid": "The access token was issued in the future.";
    SIGNING_FAILED = "signing_failed": "Producing a signature failed.";

    // DBSC headers, proofs, keys and challenges (`DbscError`; the JOSE-level failures
    // and `unsupported_alg`, `invalid_jwk`, `weak_key`, `invalid_signature` are the ones
    // above).
    MISSING_HEADER = "missing_header": "A DBSC request header the check needs is absent.";
    INVALID_HEADER = "invalid_header": "A DBSC header is present but not of its syntax.";
    UNENCODABLE_VALUE = "unencodable_value": "A value cannot be sent in a header.";
    MISSING_KEY = "missing_key": "The DBSC registration proof carries no key.";
    KEY_MISMATCH = "key_mismatch": "The DBSC proof's key is not the session's key.";
    INVALID_CHALLENGE = "invalid_challenge": "The DBSC challenge was not issued for this session.";
    CHALLENGE_EXPIRED = "challenge_expired": "The DBSC challenge has expired.";
    AUTHORIZATION_MISMATCH = "authorization_mismatch":
        "The DBSC proof's `authorization` does not match the registration.";
    SESSION_MISMATCH = "session_mismatch": "The DBSC proof is for another session.";

    // The request around the credentials (the server's `Rejection`).

    MISSING_PROOF = "missing_proof": "The request has no `DPoP` header.";
    MULTIPLE_DPOP_HEADERS = "multiple_dpop_headers": "The request has more than one `DPoP` header.";
    HEADER_TOO_LARGE = "header_too_large":
        "The `DPoP` or `Authorization` header is larger than the configured limit.";
    MISSING_TOKEN = "missing_token": "A protected request has no access token.";
    MULTIPLE_AUTHORIZATION_HEADERS = "multiple_authorization_headers":
        "The request has more than one `Authorization` header.";
    INVALID_AUTH_SCHEME = "invalid_auth_scheme":
        "The `Authorization` scheme is not `DPoP` (for example `Bearer`).";
    REPLAYED_JTI = "replayed_jti": "The proof's `jti` was seen before within the proof's lifetime.";
    REQUEST_TARGET_NOT_NORMAL = "request_target_not_normal":
        "The request path has `.` or `..` segments (or is not absolute): refused, not normalised.";
    INVALID_ISSUER = "invalid_issuer": "The access token's `iss` is not this service's issuer.";
    USE_DPOP_NONCE = "use_dpop_nonce":
        "Nonces are on and the proof carries none; retry with the `DPoP-Nonce` sent.";
    INVALID_NONCE = "invalid_nonce":
        "Nonces are on and the proof's nonce is wrong or stale; retry with the one sent.";
    REPLAY_STORE_UNAVAILABLE = "replay_store_unavailable":
        "The replay store cannot record proofs (unreachable); requests fail closed.";
    REPLAY_STORE_FULL = "replay_store_full":
        "The replay store is full under a flood of fresh proofs; requests fail closed.";

    // The session a request or a refresh belongs to.

    SESSION_UNKNOWN = "session_unknown": "No such session (never existed, or purged).";
    SESSION_REVOKED = "session_revoked": "The session was revoked.";
    SESSION_EXPIRED = "session_expired": "The session expired (idle timeout or absolute lifetime).";
    SESSION_CLOSED = "session_closed": "The user logged out of the session.";
    SESSION_ACTIVE = "session_active":
        "An operation that needs an ended session found it still active.";
    SESSION_KEY_MISMATCH = "session_key_mismatch":
        "The session is bound to another key than the request's proof.";
    SESSION_STORE_UNAVAILABLE = "session_store_unavailable":
        "The session store could not answer; requests fail closed.";
    SESSION_NOT_FOUND = "session_not_found":
        "No session with this id belongs to the caller (unknown, malformed or purged).";
    SESSION_NOT_OWNED = "session_not_owned": "The session belongs to another user.";

    // Refresh and login (the server's `LifecycleError`).

    REFRESH_TOKEN_MALFORMED = "refresh_token_malformed":
        "The refresh token is not of keybound's form.";
    REFRESH_TOKEN_INVALID = "refresh_token_invalid":
        "The refresh token was not issued by this server, or its session is gone.";
    REFRESH_TOKEN_REUSED = "refresh_token_reused":
        "An old refresh token was presented again: the session has been revoked.";
    REFRESH_KEY_MISMATCH = "refresh_key_mismatch":
        "The refresh request's proof was signed by another key than the session's.";
    REAUTHENTICATION_REQUIRED = "reauthentication_required":
        "The risk policy requires the user to sign in again; the session was revoked.";
    LOGIN_DENIED = "login_denied": "The risk policy refused to open a session.";
    LOGIN_SUPERSEDED = "login_superseded":
        "The user's sessions were all revoked while this login was in progress; sign in again.";
    INVALID_INPUT = "invalid_input":
        "An argument is unusable (user id, thumbprint, option value, …).";

    // Server faults: the details are in the server's log, never in the answer.

    POLICY_ZERO_VALUE = "policy_zero_value": "A lifecycle duration or count is zero.";
    POLICY_VALUE_TOO_LARGE = "policy_value_too_large":
        "A lifecycle duration is unreasonably large.";
    POLICY_GRACE_TOO_LONG = "policy_grace_too_long":
        "The refresh grace period is not shorter than the access-token lifetime.";
    POLICY_IDLE_EXCEEDS_ABSOLUTE = "policy_idle_exceeds_absolute":
        "The idle timeout exceeds the absolute session lifetime.";
    POLICY_ACCESS_EXCEEDS_IDLE = "policy_access_exceeds_idle":
        "The access-token lifetime exceeds the idle timeout.";
    STORE_DUPLICATE_SESSION = "store_duplicate_session":
        "The session store already holds a session with this id.";
    STORE_UNAVAILABLE = "store_unavailable": "The session store is down or busy.";
    STORE_CORRUPT = "store_corrupt": "The session store holds data keybound cannot read.";
    STORE_INCOMPATIBLE = "store_incompatible":
        "The session store was written by an incompatible keybound version.";
    STORE_ERROR = "store_error": "The session store failed otherwise.";
    RANDOMNESS_UNAVAILABLE = "randomness_unavailable":
        "The operating system's randomness was unavailable.";
    NO_RUNTIME = "no_runtime": "A background task was started outside a tokio runtime.";

    // The HTTP request itself (the server's `ApiError`).

    INVALID_JSON_BODY = "invalid_json_body":
        "The request body is not the JSON object the endpoint expects.";
    MISSING_REFRESH_TOKEN = "missing_refresh_token":
        "The refresh request's body has no `refresh_token`.";
    INVALID_BODY = "invalid_body": "The request body could not be read.";
    INVALID_PATH = "invalid_path": "A path parameter is malformed.";
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type":
        "The request body is not `application/json`.";
    PAYLOAD_TOO_LARGE = "payload_too_large":
        "The request body is larger than the endpoint accepts.";
    RATE_LIMITED = "rate_limited":
        "Too many attempts (logins per address or per username); retry after `Retry-After` (the SDK's code for every 429).";
    INVALID_PAGE_LIMIT = "invalid_page_limit":
        "The session list's `limit` is not a whole number from 1 to 200.";
    INVALID_CURSOR = "invalid_cursor":
        "The session list's `cursor` is not one the server gave as `next_cursor`.";

    // The DBSC endpoints and cookie-bound requests (the server's `ApiError`).

    DBSC_DISABLED = "dbsc_disabled": "DBSC is not enabled on this server.";
    DBSC_ALREADY_REGISTERED = "dbsc_already_registered":
        "The session is not waiting for a DBSC registration (registered already, or DPoP).";
    REPLAYED_CHALLENGE = "replayed_challenge": "A DBSC challenge was signed and presented before.";
    COOKIE_SUPERSEDED = "cookie_superseded":
        "The DBSC bound cookie is of a session generation a sensitive action replaced; the new cookie must be used.";
    CSRF_CHECK_FAILED = "csrf_check_failed":
        "A cookie-bound unsafe request did not come from the service's own origin.";

    // The browser SDK's own failures (`err.code` in JavaScript).

    NOT_LOGGED_IN = "not_logged_in": "The operation needs a session and there is none.";
    NETWORK_ERROR = "network_error": "The request did not reach the server or its answer was lost.";
    ABORTED = "aborted": "The caller aborted the request.";
    INVALID_RESPONSE = "invalid_response": "The server's answer is not what keybound expects.";
    CRYPTO_ERROR = "crypto_error": "A WebCrypto operation failed.";
    STORAGE_ERROR = "storage_error": "IndexedDB failed or holds data the SDK cannot read.";
    UNSUPPORTED_BROWSER = "unsupported_browser":
        "The browser lacks an API the SDK cannot work without.";
    DISPOSED = "disposed": "The `Keybound` object was disposed.";
    INVALID_OPTION = "invalid_option":
        "An option passed to `Keybound.init` or to a method is invalid.";
    ORIGIN_NOT_ALLOWED = "origin_not_allowed":
        "A signed request was for an origin not in `allowedOrigins`; nothing was sent.";
    BAD_REQUEST = "bad_request": "The server answered 400 without a code.";
    UNAUTHORIZED = "unauthorized": "The server answered 401 without a code.";
    FORBIDDEN = "forbidden": "The server answered 403 without a code.";
    NOT_FOUND = "not_found": "The server answered 404 without a code.";
    REQUEST_TIMEOUT = "request_timeout": "The server answered 408 without a code.";
    SERVER_ERROR = "server_error": "The server answered 5xx without a code.";
    UNEXPECTED_STATUS = "unexpected_status":
        "The server answered an unexpected status without a code.";
}
