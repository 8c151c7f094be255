//! axum integration: extractors, the session endpoints, and a login helper.
//!
//! * [`Keybound`] bundles a [`Verifier`] and a [`SessionService`]; put it in your state,
//!   or in a field of your state with [`FromRef`](::axum::extract::FromRef).
//!   [`Keybound::setup`] builds one from [`Settings`](crate::settings::Settings).
//! * [`Session`] / `Option<Session>`: handler arguments for verified callers;
//!   [`require_session`] protects a whole router.
//! * [`routes`]: the session endpoints under a prefix, and `GET /.well-known/jwks.json`.
//! * [`ProofOfPossession`] + [`Keybound::open_session`]: your login handler checks the
//!   user's credentials its own way, then opens a session bound to the key of the
//!   request's proof.
//! * [`nonce_header`]: with nonces on, sends the current `DPoP-Nonce` on every response.
//!
//! ```no_run
//! use axum::{Json, Router, routing::{get, post}};
//! use axum::extract::State;
//! use keybound_server::axum::{ApiError, Keybound, ProofOfPossession, Session, TokenReply, routes};
//! use keybound_server::lifecycle::OpenRequest;
//!
//! #[derive(serde::Deserialize)]
//! struct Credentials { username: String, password: String }
//!
//! async fn login(
//!     State(kb): State<Keybound>,
//!     proof: ProofOfPossession,
//!     Json(creds): Json<Credentials>,
//! ) -> Result<TokenReply, ApiError> {
//!     // ... check creds.username / creds.password against your user store ...
//!     let device = proof.user_agent().unwrap_or("unknown device").to_owned();
//!     kb.open_session(&proof, &creds.username, OpenRequest::new().device_label(device)).await
//! }
//!
//! async fn me(session: Session) -> String {
//!     session.user_id
//! }
//!
//! fn app(kb: Keybound) -> Router {
//!     Router::new()
//!         .route("/api/login", post(login))
//!         .route("/api/me", get(me))
//!         .merge(routes("/session"))
//!         .with_state(kb)
//! }
//! ```
//!
//! # Responses common to every protected route
//!
//! A [`Session`] extractor, a [`require_session`] layer, [`ProofOfPossession`] and the
//! endpoints below answer a request that fails verification with the exact DPoP error
//! response ([`Rejection`]): JSON
//! `{"error","error_description","error_code"}`, `Cache-Control: no-store`, and
//!
//! | status | `error` | headers | `error_code` (examples) |
//! |---|---|---|---|
//! | 401 | `invalid_dpop_proof` | `WWW-Authenticate: DPoP error="invalid_dpop_proof", error_description="…", algs="EdDSA ES256"` (`algs`: the accepted proof algorithms, `KEYBOUND_PROOF_ALGS`) | `missing_proof`, `htu_mismatch`, `iat_too_old`, `invalid_signature`, `replayed_jti`, … |
//! | 401 | `invalid_token` | `WWW-Authenticate: DPoP error="invalid_token", …` | `missing_token`, `invalid_auth_scheme` (`Bearer`), `ath_mismatch`, `token_expired`, `session_revoked`, `session_closed`, `session_expired`, … |
//! | 401 | `use_dpop_nonce` | `WWW-Authenticate: DPoP error="use_dpop_nonce", …` and `DPoP-Nonce` | `use_dpop_nonce` (no nonce), `invalid_nonce` (stale) |
//! | 503 | `temporarily_unavailable` | `Retry-After: 1` | `session_store_unavailable`, `replay_store_unavailable` |
//!
//! # Nonces
//!
//! With nonces on (`KEYBOUND_NONCE=on`, [`VerifierBuilder::nonces`](crate::VerifierBuilder::nonces)),
//! a proof without a valid nonce is answered `401 use_dpop_nonce` with the nonce to use in
//! `DPoP-Nonce`; the client retries once with a fresh proof carrying it. Every response
//! of keybound's endpoints, of [`Keybound::open_session`] and of routes behind
//! [`require_session`] also carries the current `DPoP-Nonce`, so a client that keeps the
//! latest one is never challenged again; add the [`nonce_header`] layer to send it on
//! every other response too.
//!
//! # Endpoints
//!
//! Mounted by [`routes`]`(prefix)`. Every response has `Cache-Control: no-store` (the
//! JWKS excepted) and, with nonces on, `DPoP-Nonce`. Besides the verification errors
//! above:
//!
//! **`POST {prefix}/refresh`** — a `DPoP` proof (no access token; an `Authorization`
//! header is ignored) and the JSON body `{"refresh_token": "…"}` (at most 4 KiB). The
//! proof must be signed by the session's key. `200` with the rotated token response
//! `{"access_token","token_type":"DPoP","expires_in","refresh_token","session_id",
//! "session_expires_at","idle_expires_at","server_time"}`. The previous refresh token
//! presented again by the same key within the grace period returns the current tokens
//! again; any older one revokes the session.
//!
//! | status | `error` | `error_code` |
//! |---|---|---|
//! | 413 | `invalid_request` | `payload_too_large` (body over 4 KiB) |
//! | 400 | `invalid_request` | `invalid_json_body`, `missing_refresh_token`, `invalid_body` |
//! | 400 | `invalid_grant` | `refresh_token_malformed`, `refresh_token_invalid`, `refresh_token_reused` (the session is now revoked), `refresh_key_mismatch` (proof by another key), `session_expired`, `session_revoked`, `session_closed`, `reauthentication_required` |
//! | 503 | `temporarily_unavailable` | `store_unavailable` |
//!
//! **`POST {prefix}/extend`** — access token + proof. "Stay signed in": restarts the
//! idle timeout. `200` with the session (as in the list below, `current: true`) and
//! `server_time`. `400 invalid_grant` `session_*` when the session ended meanwhile.
//!
//! **`POST {prefix}/logout`** — access token + proof. Closes the calling session:
//! `204`. Idempotent: the same request for a session that already ended (closed,
//! revoked, expired) is `204` too; the token and proof must still verify.
//!
//! **`GET {prefix}/sessions`** — access token + proof. `200 {"sessions": [{"id",
//! "device_label","created_at","last_seen_at","idle_expires_at","expires_at","state",
//! "reason","ended_at","current"}, …]}`, most recently used first, ended sessions
//! included until they are purged.
//!
//! **`DELETE {prefix}/sessions/{id}`** — access token + proof. Revokes one of the
//! caller's sessions (the current one too): `200 {"id","state","reason","changed"}`;
//! `changed` is `false` when it had already ended (idempotent).
//!
//! | status | `error` | `error_code` |
//! |---|---|---|
//! | 404 | `invalid_request` | `session_not_found` (unknown or malformed id) |
//! | 403 | `access_denied` | `session_not_owned` (another user's session; left alone) |
//!
//! **`POST {prefix}/sessions/revoke-others`** — access token + proof. Revokes every
//! other active session of the caller: `200 {"revoked": n}` (`0` when repeated).
//!
//! **`GET /.well-known/jwks.json`** — no authentication. `200 {"keys": [...]}`, the
//! access-token verification keys, with `Cache-Control: public, max-age=60` and an
//! `ETag` (`If-None-Match` → `304`).
//!
//! **Login** (your route, with [`ProofOfPossession`] and [`Keybound::open_session`]):
//! `200` token response; `403 access_denied login_denied` when the risk policy refuses,
//! `400 invalid_request invalid_input` for an unusable user id.
//!
//! # CORS
//!
//! A browser app on another origin must be allowed to send the `Authorization` and
//! `DPoP` request headers and to read the `DPoP-Nonce` and `WWW-Authenticate` response
//! headers: [`CORS_ALLOW_HEADERS`] and [`CORS_EXPOSE_HEADERS`]. With `tower-http`:
//!
//! ```
//! use http::{HeaderValue, Method};
//! use keybound_server::axum::{CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS};
//! use tower_http::cors::CorsLayer;
//!
//! let cors = CorsLayer::new()
//!     .allow_origin(HeaderValue::from_static("https://app.example.com"))
//!     .allow_methods([Method::GET, Method::POST, Method::DELETE])
//!     .allow_headers(CORS_ALLOW_HEADERS)
//!     .expose_headers(CORS_EXPOSE_HEADERS);
//! // Router::new()…​.layer(cors)
//! ```

mod dbsc;
mod error;
mod extract;
mod layer;
#[cfg(feature = "login-limit")]
mod login_limit;
mod rotation;
mod routes;
mod setup;

use std::sync::Arc;

use ::axum::Json;
use ::axum::response::{IntoResponse, Response};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, header};
use keybound_proto::TokenResponse;

pub use dbsc::{DEFAULT_COOKIE_NAME, DbscOptions, DbscSignIn};
pub use error::ApiError;
pub use extract::{Binding, ProofOfPossession, Session};
pub use layer::{nonce_header, require_session};
#[cfg(feature = "login-limit")]
pub use login_limit::LoginLimiter;
pub use rotation::{CookieRotation, SensitiveRotation};
pub use routes::{DEFAULT_BODY_LIMIT, REFRESH_BODY_LIMIT, routes};
pub use setup::{Running, Setup, SetupError};

use crate::lifecycle::OpenRequest;
use crate::{Rejection, SessionService, Verifier};

/// The `DPoP-Nonce` response header.
pub const DPOP_NONCE: HeaderName = crate::response::DPOP_NONCE;

/// Request headers a cross-origin keybound client sends: `Authorization`, `DPoP`,
/// `Content-Type`.
pub const CORS_ALLOW_HEADERS: [HeaderName; 3] = [
    header::AUTHORIZATION,
    HeaderName::from_static("dpop"),
    header::CONTENT_TYPE,
];

/// Response headers a cross-origin keybound client must be able to read: `DPoP-Nonce`,
/// `WWW-Authenticate`, and `Retry-After` (how long a `429` asks to wait).
pub const CORS_EXPOSE_HEADERS: [HeaderName; 3] =
    [DPOP_NONCE, header::WWW_AUTHENTICATE, header::RETRY_AFTER];

/// The state keybound's extractors and endpoints need: the request verifier and the
/// session service. Cheap to clone.
#[derive(Clone)]
pub struct Keybound {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: Verifier,
    service: SessionService,
    dbsc: Option<dbsc::Dbsc>,
}

impl std::fmt::Debug for Keybound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keybound")
            .field("public_origin", &self.inner.verifier.public_origin())
            .finish_non_exhaustive()
    }
}

impl Keybound {
    /// Bundles a verifier and a service. The verifier must use the service as its
    /// session check (`VerifierBuilder::session_check`) so that ended sessions are
    /// refused on their next request; [`Keybound::setup`] wires this up for you.
    pub fn new(verifier: Verifier, service: SessionService) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifier,
                service,
                dbsc: None,
            }),
        }
    }

    /// Turns DBSC on: [`start_dbsc_session`](Self::start_dbsc_session) signs browsers
    /// in, the routes under `prefix` (the one given to [`routes`]) register and refresh
    /// their bound cookies, and [`Session`] accepts the bound cookie. The challenge
    /// secret is derived from the refresh secret, so every node that shares it accepts
    /// every node's challenges.
    pub fn with_dbsc(self, options: DbscOptions, prefix: &str) -> Self {
        let secret = self.service().derived_secret("dbsc challenges");
        let dbsc = dbsc::Dbsc::new(options, &secret, prefix);
        Self {
            inner: Arc::new(Inner {
                verifier: self.inner.verifier.clone(),
                service: self.inner.service.clone(),
                dbsc: Some(dbsc),
            }),
        }
    }

    /// The request verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// The session service.
    pub fn service(&self) -> &SessionService {
        &self.inner.service
    }

    /// Opens a session for `user_id`, whom the application has just authenticated,
    /// bound to the key of the login request's verified proof. The proof's `jti` is
    /// recorded first (a replayed login request is refused with `replayed_jti`). The
    /// reply is the token response with `Cache-Control: no-store` (and `DPoP-Nonce`
    /// when nonces are on).
    ///
    /// Errors: `401 replayed_jti`, `403 access_denied login_denied` when the risk
    /// policy refuses, `400 invalid_request invalid_input` for an unusable user id,
    /// `503` when a store is down.
    pub async fn open_session(
        &self,
        proof: &ProofOfPossession,
        user_id: &str,
        request: OpenRequest,
    ) -> Result<TokenReply, ApiError> {
        self.consume_proof(proof).await?;
        let request = request.signals(proof.signals.clone());
        let tokens = self
            .service()
            .open_session(user_id, &proof.jkt, request)
            .await?;
        Ok(self.token_reply(tokens))
    }

    /// Records the `jti` of a login-type request's proof, for handlers that act on a
    /// [`ProofOfPossession`] without [`open_session`](Self::open_session) (which does
    /// this itself). Call it once the request is otherwise authenticated.
    pub async fn consume_proof(&self, proof: &ProofOfPossession) -> Result<(), ApiError> {
        self.verifier()
            .consume_proof(&proof.verified)
            .await
            .map_err(|rejection| self.refusal(rejection))
    }

    /// A verification failure as the endpoints' error, its challenge listing the
    /// proof algorithms this service's verifier accepts (`KEYBOUND_PROOF_ALGS`).
    pub fn refusal(&self, rejection: Rejection) -> ApiError {
        ApiError::verification(rejection, self.verifier().proof_algs())
    }

    /// Wraps a token response for sending, with the current nonce when nonces are on.
    pub fn token_reply(&self, tokens: TokenResponse) -> TokenReply {
        TokenReply {
            tokens,
            nonce: self.nonce_value(),
        }
    }

    fn nonce_value(&self) -> Option<HeaderValue> {
        self.verifier()
            .nonce()
            .and_then(|n| HeaderValue::from_str(&n).ok())
    }

    /// Adds the current `DPoP-Nonce` (when nonces are on and none is set yet).
    pub(crate) fn add_nonce(&self, headers: &mut HeaderMap) {
        if !headers.contains_key(DPOP_NONCE) {
            if let Some(nonce) = self.nonce_value() {
                headers.insert(DPOP_NONCE, nonce);
            }
        }
    }

    /// `response` with the current `DPoP-Nonce` added (when nonces are on).
    pub(crate) fn with_nonce(&self, mut response: Response) -> Response {
        self.add_nonce(response.headers_mut());
        response
    }
}

/// A token response ready to send: JSON with `Cache-Control: no-store`,
/// `Pragma: no-cache` (tokens must never be cached) and, when nonces are on, the
/// current `DPoP-Nonce`. Made by [`Keybound::open_session`] and
/// [`Keybound::token_reply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenReply {
    tokens: TokenResponse,
    nonce: Option<HeaderValue>,
}

impl TokenReply {
    /// A reply without a nonce header.
    pub fn new(tokens: TokenResponse) -> Self {
        Self {
            tokens,
            nonce: None,
        }
    }

    /// The token response.
    pub fn tokens(&self) -> &TokenResponse {
        &self.tokens
    }

    /// The token response, unwrapped.
    pub fn into_tokens(self) -> TokenResponse {
        self.tokens
    }
}

impl IntoResponse for TokenReply {
    fn into_response(self) -> Response {
        let mut response = Json(self.tokens).into_response();
        let headers = response.headers_mut();
        crate::response::no_store(headers);
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(nonce) = self.nonce {
            headers.insert(DPOP_NONCE, nonce);
        }
        response
    }
}
