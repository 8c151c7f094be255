//! axum integration: extractors, the session endpoints, and a login helper.
//!
//! * [`Keybound`] bundles a [`Verifier`] and a [`SessionService`]; put it in your state
//!   (or make it reachable with [`FromRef`](::axum::extract::FromRef)).
//! * [`Session`] / `Option<Session>`: handler arguments for verified callers;
//!   [`require_session`] protects a whole router.
//! * [`routes`]: `POST {prefix}/refresh`, `POST {prefix}/extend`,
//!   `POST {prefix}/logout`, `GET {prefix}/sessions`,
//!   `DELETE {prefix}/sessions/{id}`, `POST {prefix}/sessions/revoke-others`,
//!   `GET /.well-known/jwks.json`.
//! * [`ProofOfPossession`] + [`Keybound::open_session`]: your login handler checks the
//!   user's credentials its own way, then opens a session bound to the key of the
//!   request's proof.
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
//! # CORS
//!
//! A browser app on another origin must be allowed to send the `Authorization` and
//! `DPoP` request headers and to read the `DPoP-Nonce` and `WWW-Authenticate` response
//! headers; see [`CORS_ALLOW_HEADERS`] and [`CORS_EXPOSE_HEADERS`]. With `tower-http`:
//!
//! ```ignore
//! CorsLayer::new()
//!     .allow_origin("https://app.example.com".parse::<HeaderValue>()?)
//!     .allow_methods([Method::GET, Method::POST, Method::DELETE])
//!     .allow_headers(keybound_server::axum::CORS_ALLOW_HEADERS.map(HeaderName::from_static))
//!     .expose_headers(keybound_server::axum::CORS_EXPOSE_HEADERS.map(HeaderName::from_static))
//! ```

mod error;
mod extract;
mod layer;
mod routes;
mod setup;

use std::sync::Arc;

use ::axum::Json;
use ::axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use keybound_proto::TokenResponse;

pub use error::ApiError;
pub use extract::{ProofOfPossession, Session};
pub use layer::{nonce_header, require_session};
pub use routes::{DEFAULT_BODY_LIMIT, routes};
pub use setup::{Running, Setup, SetupError};

use crate::lifecycle::OpenRequest;
use crate::{SessionService, Verifier};

/// Request headers a cross-origin keybound client sends.
pub const CORS_ALLOW_HEADERS: [&str; 3] = ["authorization", "dpop", "content-type"];
/// Response headers a cross-origin keybound client must be able to read.
pub const CORS_EXPOSE_HEADERS: [&str; 2] = ["dpop-nonce", "www-authenticate"];

/// The state keybound's extractors and endpoints need: the request verifier and the
/// session service. Cheap to clone.
#[derive(Clone)]
pub struct Keybound {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: Verifier,
    service: SessionService,
}

impl std::fmt::Debug for Keybound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keybound")
            .field("public_origin", &self.inner.verifier.public_origin())
            .finish_non_exhaustive()
    }
}

impl Keybound {
    /// Bundles a verifier and a service. The verifier should use the service as its
    /// session check (`VerifierBuilder::session_check`) so that ended sessions are
    /// refused on their next request.
    pub fn new(verifier: Verifier, service: SessionService) -> Self {
        Self {
            inner: Arc::new(Inner { verifier, service }),
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
    /// bound to the key of the login request's verified proof. The reply is the token
    /// response with `Cache-Control: no-store`.
    pub async fn open_session(
        &self,
        proof: &ProofOfPossession,
        user_id: &str,
        request: OpenRequest,
    ) -> Result<TokenReply, ApiError> {
        let request = request.signals(proof.signals.clone());
        let tokens = self
            .service()
            .open_session(user_id, &proof.jkt, request)
            .await?;
        Ok(TokenReply(tokens))
    }
}

/// A token response, rendered as JSON with `Cache-Control: no-store` and
/// `Pragma: no-cache` (tokens must never be cached).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenReply(pub TokenResponse);

impl IntoResponse for TokenReply {
    fn into_response(self) -> Response {
        let mut response = Json(self.0).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}
