//! The one error type of keybound's HTTP endpoints and extractors.

use ::axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection};
use ::axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use keybound_proto::wire::{code, oauth};
use keybound_proto::{ErrorBody, ProofAlgs};

use crate::{LifecycleError, Rejection, response};

/// Why a keybound endpoint or extractor refused a request. Renders as the JSON body
/// `{"error","error_description","error_code"}` with `Cache-Control: no-store`.
///
/// | variant | status | `error` | `error_code` |
/// |---|---|---|---|
/// | [`Verification`](ApiError::Verification) | 401, with `WWW-Authenticate: DPoP error=…, algs="…"` listing the verifier's proof algorithms (503 + `Retry-After` when a store is down) | `invalid_token`, `invalid_dpop_proof`, `use_dpop_nonce` (+ `DPoP-Nonce`), `temporarily_unavailable` | [`Rejection::code`] |
/// | [`Lifecycle`](ApiError::Lifecycle) | 400 `invalid_grant`/`invalid_request`, 404 `session_not_found`, 403 `access_denied`, 503 `temporarily_unavailable` (+ `Retry-After`), 500 `server_error` | the lifecycle's OAuth error | [`LifecycleError::code`] |
/// | [`BadRequest`](ApiError::BadRequest) | 400 | `invalid_request` | `invalid_json_body`, `missing_refresh_token`, `invalid_path`, … |
/// | [`UnsupportedMediaType`](ApiError::UnsupportedMediaType) | 415 | `invalid_request` | `unsupported_media_type` |
/// | [`PayloadTooLarge`](ApiError::PayloadTooLarge) | 413 | `invalid_request` | `payload_too_large` |
/// | [`RateLimited`](ApiError::RateLimited) | 429, with `Retry-After` | `rate_limited` | `rate_limited` |
///
/// Server faults (5xx) are described generically; the details go to the log
/// (`tracing`, level `warn`), never to the client.
///
/// Handlers that take a JSON body can turn axum's rejection into the same shape:
///
/// ```
/// use axum::Json;
/// use axum::extract::rejection::JsonRejection;
/// use keybound_server::axum::ApiError;
///
/// #[derive(serde::Deserialize)]
/// struct Order { item: u32 }
///
/// async fn order(body: Result<Json<Order>, JsonRejection>) -> Result<String, ApiError> {
///     let Json(order) = body?; // 400 invalid_json_body, 413 payload_too_large, 415 …
///     Ok(format!("item {}", order.item))
/// }
/// ```
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The DPoP proof or access token failed verification. Made by
    /// [`Keybound::refusal`](super::Keybound::refusal) or [`ApiError::verification`],
    /// so the challenge lists the algorithms the verifier accepts.
    #[error("{rejection}")]
    Verification {
        /// Why the request was refused.
        rejection: Rejection,
        /// The proof algorithms the verifier accepts: the challenge's `algs`.
        algs: ProofAlgs,
    },
    /// The session lifecycle refused the operation.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// The request body or a parameter is malformed.
    #[error("{description}")]
    BadRequest {
        /// Stable code (`invalid_json_body`, `missing_refresh_token`, …; one of
        /// [`keybound_proto::wire::code`]).
        code: &'static str,
        /// What is wrong, without echoing the input.
        description: &'static str,
    },
    /// The body is not `application/json`.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// A DBSC endpoint or a cookie-bound request refused (`dbsc_disabled`,
    /// `csrf_check_failed`, a DBSC proof's code, …).
    #[error("{description}")]
    Dbsc {
        /// The HTTP status.
        status: StatusCode,
        /// The `error_code`.
        code: &'static str,
        /// What went wrong.
        description: String,
    },
    /// The request body is larger than the endpoint accepts.
    #[error("{}", too_large(*.limit))]
    PayloadTooLarge {
        /// The limit in bytes, when known.
        limit: Option<usize>,
    },
    /// Too many attempts (a [`LoginLimiter`](super::LoginLimiter) budget is used up).
    #[error("too many attempts; retry in {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds until an attempt may pass (sent as `Retry-After`).
        retry_after_secs: u64,
    },
}

fn too_large(limit: Option<usize>) -> String {
    match limit {
        Some(limit) => format!("the request body is larger than {limit} bytes"),
        None => "the request body is too large".to_owned(),
    }
}

impl ApiError {
    /// A verification failure whose challenge advertises `algs` (the verifier's
    /// [`proof_algs`](crate::Verifier::proof_algs)).
    pub fn verification(rejection: Rejection, algs: ProofAlgs) -> Self {
        Self::Verification { rejection, algs }
    }

    /// The stable fine code (`error_code` in the body).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Verification { rejection: r, .. } => r.code(),
            Self::Lifecycle(e) => e.code(),
            Self::BadRequest { code, .. } | Self::Dbsc { code, .. } => code,
            Self::UnsupportedMediaType => code::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => code::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => code::RATE_LIMITED,
        }
    }

    /// The OAuth error (`error` in the body).
    pub fn oauth_error(&self) -> &'static str {
        match self {
            Self::Verification { rejection: r, .. } => r.oauth_error(),
            Self::Lifecycle(e) => e.oauth_error(),
            Self::Dbsc { status, .. } => match *status {
                StatusCode::UNAUTHORIZED => oauth::INVALID_TOKEN,
                StatusCode::FORBIDDEN => oauth::ACCESS_DENIED,
                StatusCode::SERVICE_UNAVAILABLE => oauth::TEMPORARILY_UNAVAILABLE,
                s if s.is_server_error() => oauth::SERVER_ERROR,
                _ => oauth::INVALID_REQUEST,
            },
            Self::BadRequest { .. } | Self::UnsupportedMediaType | Self::PayloadTooLarge { .. } => {
                oauth::INVALID_REQUEST
            }
            Self::RateLimited { .. } => oauth::RATE_LIMITED,
        }
    }

    /// The HTTP status: each error's own ([`Rejection::status`],
    /// [`LifecycleError::status`]), `400`, `415` or `413` for the request itself.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Verification { rejection: r, .. } => r.status(),
            Self::Lifecycle(e) => e.status(),
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Dbsc { status, .. } => *status,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The human-readable description: the error's own ([`Rejection::description`],
    /// [`LifecycleError::description`], which never details a server fault), or the
    /// request's fault.
    pub fn description(&self) -> String {
        match self {
            Self::Verification { rejection: r, .. } => r.description(),
            Self::Lifecycle(e) => e.description(),
            other => other.to_string(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.oauth_error().to_owned(),
            error_description: self.description(),
            error_code: self.code().to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let response = match self {
            Self::Verification { rejection, algs } => rejection.into_http_response(algs),
            Self::Lifecycle(error) => error.into_http_response(),
            other => {
                let mut response = response::error(other.status(), &other.body(), None, None);
                if let Self::RateLimited { retry_after_secs } = &other {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
                }
                response
            }
        };
        let (parts, body) = response.into_parts();
        Response::from_parts(parts, body.into())
    }
}

/// axum's JSON rejections: `413` for a body over the limit, `415` without a JSON
/// content type, `400 invalid_json_body` otherwise.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge { limit: None },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            _ => Self::BadRequest {
                code: code::INVALID_JSON_BODY,
                description: "the request body is not the expected JSON object",
            },
        }
    }
}

/// axum's body rejections: `413` for a body over the limit, `400` otherwise.
impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge { limit: None },
            _ => Self::BadRequest {
                code: code::INVALID_BODY,
                description: "the request body could not be read",
            },
        }
    }
}

/// axum's path rejections: `400 invalid_path`.
impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        Self::BadRequest {
            code: code::INVALID_PATH,
            description: "a path parameter is malformed",
        }
    }
}
