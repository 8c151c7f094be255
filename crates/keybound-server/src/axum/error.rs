//! The one error type of keybound's HTTP endpoints and extractors.

use ::axum::Json;
use ::axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use keybound_proto::ErrorBody;

use crate::{LifecycleError, Rejection};

/// Why a keybound endpoint or extractor refused a request. Renders as the JSON body
/// `{"error","error_description","error_code"}` with `Cache-Control: no-store`.
///
/// | variant | status | `error` |
/// |---|---|---|
/// | [`Verification`](ApiError::Verification) | 401 (503 when a store is down) | `invalid_token`, `invalid_dpop_proof`, `use_dpop_nonce` + `WWW-Authenticate: DPoP …` |
/// | [`Lifecycle`](ApiError::Lifecycle) | 400 (`invalid_grant`, `invalid_request`), 403 (`access_denied`), 503, 500 | the lifecycle's OAuth error |
/// | [`BadRequest`](ApiError::BadRequest) | 400 | `invalid_request` |
/// | [`PayloadTooLarge`](ApiError::PayloadTooLarge) | 413 | `invalid_request` |
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The DPoP proof or access token failed verification.
    #[error(transparent)]
    Verification(#[from] Rejection),
    /// The session lifecycle refused the operation.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// The request body or a parameter is malformed.
    #[error("{description}")]
    BadRequest {
        /// Stable code (`invalid_json`, `missing_refresh_token`, …).
        code: &'static str,
        /// What is wrong, without echoing secrets.
        description: &'static str,
    },
    /// The request body is larger than the endpoint accepts.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl ApiError {
    /// The stable fine code (`error_code` in the body).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Verification(r) => r.code(),
            Self::Lifecycle(e) => e.code(),
            Self::BadRequest { code, .. } => code,
            Self::PayloadTooLarge { .. } => "payload_too_large",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Verification(r) => r.status(),
            Self::Lifecycle(e) => match e.oauth_error() {
                "invalid_grant" | "invalid_request" => StatusCode::BAD_REQUEST,
                "access_denied" => StatusCode::FORBIDDEN,
                "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        match self {
            Self::Verification(r) => r.body(),
            Self::Lifecycle(e) => ErrorBody {
                error: e.oauth_error().to_owned(),
                error_description: e.to_string(),
                error_code: e.code().to_owned(),
            },
            other => ErrorBody {
                error: "invalid_request".to_owned(),
                error_description: other.to_string(),
                error_code: other.code().to_owned(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Verification(rejection) => rejection.into_response(),
            other => {
                if other.status().is_server_error() {
                    tracing::warn!(code = other.code(), "keybound request failed: {other}");
                }
                let mut response = (other.status(), Json(other.body())).into_response();
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if other.status() == StatusCode::SERVICE_UNAVAILABLE {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                }
                response
            }
        }
    }
}
