//! The one builder of keybound's error responses, and the header every answer that
//! carries tokens or session facts gets.
//!
//! Each error type knows its own status, body and challenge ([`Rejection`](crate::Rejection),
//! [`LifecycleError::status`](crate::LifecycleError::status), the axum `ApiError`);
//! this module turns them into a response the same way: JSON body, `Cache-Control:
//! no-store`, `Retry-After` on a `503`, `WWW-Authenticate` on a challenge and
//! `DPoP-Nonce` when a nonce is to be used.

use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use keybound_proto::ErrorBody;

/// The `DPoP-Nonce` response header.
pub(crate) const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// How long a client should wait before retrying a `503`, in seconds.
const RETRY_AFTER_SECS: &str = "1";

/// Marks a response as never to be stored by a cache: tokens, session lists and
/// errors about them are for this request only.
pub(crate) fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// An error response: `status`, the JSON `body`, `Cache-Control: no-store`,
/// `Retry-After` for a `503`, the `WWW-Authenticate` `challenge` and the `DPoP-Nonce`
/// `nonce` when given (a value that is not a valid header value is left out).
pub(crate) fn error(
    status: StatusCode,
    body: &ErrorBody,
    challenge: Option<&str>,
    nonce: Option<&str>,
) -> http::Response<String> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| {
        // An ErrorBody of three strings always serialises; keep a valid body anyway.
        format!(r#"{{"error":"{}"}}"#, body.error)
    });
    let mut response = http::Response::new(text);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    no_store(headers);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    if let Some(challenge) = challenge.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert(header::WWW_AUTHENTICATE, challenge);
    }
    if let Some(nonce) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
        headers.insert(DPOP_NONCE, nonce);
    }
    response
}
