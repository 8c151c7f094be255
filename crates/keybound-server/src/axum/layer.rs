//! Middleware: protect a whole router, and send `DPoP-Nonce` on responses.

use ::axum::extract::{Request, State};
use ::axum::middleware::Next;
use ::axum::response::{IntoResponse, Response};

use super::Keybound;
use super::extract::authenticate;

/// Middleware that lets only verified callers through and hands the [`Session`](super::Session) to the
/// handlers (as a request extension: a `Session` argument or
/// `Extension<Session>` behind it does not verify again). Refused requests get the
/// DPoP error response; with nonces on, every response carries `DPoP-Nonce`.
///
/// Use it with [`route_layer`](::axum::Router::route_layer), so that unknown paths stay
/// `404` instead of `401`. The state passed to `from_fn_with_state` is the
/// [`Keybound`] itself, whatever your router's state is:
///
/// ```no_run
/// use axum::{Router, middleware, routing::get};
/// use keybound_server::axum::{Keybound, Session, require_session};
///
/// async fn orders(session: Session) -> String {
///     format!("orders of {}", session.user_id)
/// }
///
/// fn api(kb: Keybound) -> Router {
///     Router::new()
///         .route("/api/orders", get(orders))
///         .route("/api/health", get(|| async { "ok" }))
///         .route_layer(middleware::from_fn_with_state(kb.clone(), require_session))
///         .with_state(kb)
/// }
/// ```
pub async fn require_session(State(kb): State<Keybound>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match authenticate(&kb, &parts).await {
        Ok(session) => {
            parts.extensions.insert(session);
            let response = next.run(Request::from_parts(parts, body)).await;
            kb.with_nonce(response)
        }
        Err(error) => error.into_response(),
    }
}

/// Middleware that adds the current `DPoP-Nonce` header to every response when nonces
/// are on (RFC 9449 §8.2: a server may supply a new nonce on any response), so clients
/// that keep the latest nonce are not challenged again. Does nothing with nonces off.
///
/// ```no_run
/// use axum::{Router, middleware};
/// use keybound_server::axum::{Keybound, nonce_header, routes};
///
/// fn app(kb: Keybound) -> Router {
///     Router::new()
///         .merge(routes("/session"))
///         .layer(middleware::from_fn_with_state(kb.clone(), nonce_header))
///         .with_state(kb)
/// }
/// ```
pub async fn nonce_header(State(kb): State<Keybound>, request: Request, next: Next) -> Response {
    kb.with_nonce(next.run(request).await)
}
