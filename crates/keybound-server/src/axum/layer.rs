//! Middleware: protect a whole router, and send `DPoP-Nonce` on responses.

use ::axum::extract::{Request, State};
use ::axum::middleware::Next;
use ::axum::response::{IntoResponse, Response};
use http::HeaderValue;

use super::extract::signed_uri;
use super::{Keybound, Session};

/// Middleware that lets only verified callers through and hands the [`Session`] to the
/// handlers (as a request extension, so a `Session` argument does not verify again).
///
/// ```no_run
/// use axum::{Router, middleware, routing::get};
/// use keybound_server::axum::{Keybound, require_session};
///
/// fn api(kb: Keybound) -> Router {
///     Router::new()
///         .route("/api/orders", get(|| async { "orders" }))
///         .route_layer(middleware::from_fn_with_state(kb.clone(), require_session))
///         .with_state(kb)
/// }
/// ```
pub async fn require_session(State(kb): State<Keybound>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let verified = kb
        .verifier()
        .verify_headers(&parts.method, signed_uri(&parts), &parts.headers)
        .await;
    match verified {
        Ok(verified) => {
            parts.extensions.insert(Session::from_verified(verified));
            next.run(Request::from_parts(parts, body)).await
        }
        Err(rejection) => rejection.into_response(),
    }
}

/// Middleware that adds the current `DPoP-Nonce` header to every response when nonces
/// are on (RFC 9449 §8.2: the server may supply a new nonce on any response).
pub async fn nonce_header(State(kb): State<Keybound>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if !response.headers().contains_key("dpop-nonce") {
        if let Some(nonce) = kb
            .verifier()
            .nonce()
            .and_then(|n| HeaderValue::from_str(&n).ok())
        {
            response.headers_mut().insert("dpop-nonce", nonce);
        }
    }
    response
}
