//! The errors of the session lifecycle, with stable codes and their OAuth mapping.

use http::StatusCode;
use keybound_proto::wire::{code, oauth};
use keybound_proto::{ErrorBody, ProtoError};

use crate::response;
use crate::session::SessionState;
use crate::store::StoreError;

/// Why a lifecycle policy was refused at start-up.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A duration or count is zero (or below one second).
    #[error("{setting} must be at least one second (or one, for counts)")]
    Zero {
        /// The setting's name.
        setting: &'static str,
    },
    /// A duration is beyond 100 years.
    #[error("{setting} is unreasonably large (more than 100 years)")]
    TooLarge {
        /// The setting's name.
        setting: &'static str,
    },
    /// The refresh grace period is not shorter than the access-token lifetime: a
    /// replayed refresh token would stay useful for as long as an access token.
    #[error("the refresh grace period must be shorter than the access-token lifetime")]
    GraceNotBelowAccessLifetime,
    /// The idle timeout exceeds the absolute lifetime, so it could never apply.
    #[error("the idle timeout must not exceed the absolute session lifetime")]
    IdleExceedsAbsolute,
    /// The access-token lifetime exceeds the idle timeout: a client refreshing only
    /// when its token runs out would always hit the idle timeout first.
    #[error("the access-token lifetime must not exceed the idle timeout")]
    AccessExceedsIdle,
}

impl PolicyError {
    /// The stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Zero { .. } => code::POLICY_ZERO_VALUE,
            Self::TooLarge { .. } => code::POLICY_VALUE_TOO_LARGE,
            Self::GraceNotBelowAccessLifetime => code::POLICY_GRACE_TOO_LONG,
            Self::IdleExceedsAbsolute => code::POLICY_IDLE_EXCEEDS_ABSOLUTE,
            Self::AccessExceedsIdle => code::POLICY_ACCESS_EXCEEDS_IDLE,
        }
    }
}

/// Why a lifecycle operation failed.
///
/// Every variant has a stable snake_case [`code`](Self::code) (sent as `error_code`)
/// and an OAuth error ([`oauth_error`](Self::oauth_error), sent as `error`): refresh
/// failures are `invalid_grant`. Descriptions never contain token text.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The refresh token is not of keybound's form.
    #[error("the refresh token is malformed")]
    MalformedRefreshToken,
    /// The refresh token was not issued by this server, or its session is gone.
    #[error("the refresh token is not valid")]
    InvalidRefreshToken,
    /// An old refresh token was presented again: the session has been revoked.
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    /// The refresh request's proof was signed by another key than the session's.
    #[error("the refresh request was not signed by the session's key")]
    RefreshKeyMismatch,
    /// The session is no longer active.
    #[error("the session has ended ({state})")]
    SessionEnded {
        /// The session's state.
        state: SessionState,
    },
    /// No session with this id (never existed, malformed id, or purged).
    #[error("the session does not exist")]
    SessionNotFound,
    /// The session belongs to another user.
    #[error("the session belongs to another user")]
    NotSessionOwner,
    /// The request was signed by another key than the session's.
    #[error("the request was not signed by the session's key")]
    SessionKeyMismatch,
    /// The risk policy requires the user to sign in again; the session was revoked.
    #[error("the user must sign in again")]
    ReauthenticationRequired,
    /// The risk policy refused to open a session.
    #[error("the login was refused by the risk policy")]
    LoginDenied,
    /// The user's sessions were all revoked after this login read its
    /// [`LoginFence`](crate::lifecycle::LoginFence): no session was opened; the user
    /// signs in again.
    #[error("the user's sessions were revoked while this login was in progress; sign in again")]
    LoginSuperseded,
    /// A DBSC registration for a session that is not waiting for one (bound by DPoP,
    /// or registered already).
    #[error("the session is not waiting for a DBSC registration")]
    DbscAlreadyRegistered,
    /// An argument is unusable.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The lifecycle policy is inconsistent.
    #[error("invalid lifecycle policy: {0}")]
    InvalidPolicy(#[from] PolicyError),
    /// The session store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing the access token failed.
    #[error("signing the access token failed: {0}")]
    Signing(ProtoError),
    /// The operating system's randomness was unavailable.
    #[error("no randomness available")]
    Randomness,
    /// A background task was started outside a tokio runtime.
    #[error("no tokio runtime is running")]
    NoRuntime,
}

impl LifecycleError {
    /// The stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedRefreshToken => code::REFRESH_TOKEN_MALFORMED,
            Self::InvalidRefreshToken => code::REFRESH_TOKEN_INVALID,
            Self::RefreshTokenReused => code::REFRESH_TOKEN_REUSED,
            Self::RefreshKeyMismatch => code::REFRESH_KEY_MISMATCH,
            Self::SessionEnded { state } => state.error_code(),
            Self::SessionNotFound => code::SESSION_NOT_FOUND,
            Self::NotSessionOwner => code::SESSION_NOT_OWNED,
            Self::SessionKeyMismatch => code::SESSION_KEY_MISMATCH,
            Self::ReauthenticationRequired => code::REAUTHENTICATION_REQUIRED,
            Self::LoginDenied => code::LOGIN_DENIED,
            Self::LoginSuperseded => code::LOGIN_SUPERSEDED,
            Self::DbscAlreadyRegistered => code::DBSC_ALREADY_REGISTERED,
            Self::InvalidInput { .. } => code::INVALID_INPUT,
            Self::InvalidPolicy(e) => e.code(),
            Self::Store(e) => e.code(),
            Self::Signing(_) => code::SIGNING_FAILED,
            Self::Randomness => code::RANDOMNESS_UNAVAILABLE,
            Self::NoRuntime => code::NO_RUNTIME,
        }
    }

    /// The HTTP status: `400` for `invalid_grant` and `invalid_request`, `404` for an
    /// unknown session, `403` for `access_denied`, `503` when the store is
    /// unavailable, `500` for server faults.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::SessionNotFound => StatusCode::NOT_FOUND,
            Self::MalformedRefreshToken
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused
            | Self::RefreshKeyMismatch
            | Self::SessionEnded { .. }
            | Self::SessionKeyMismatch
            | Self::ReauthenticationRequired
            | Self::DbscAlreadyRegistered
            | Self::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            Self::NotSessionOwner | Self::LoginDenied | Self::LoginSuperseded => {
                StatusCode::FORBIDDEN
            }
            Self::Store(StoreError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Self::InvalidPolicy(_)
            | Self::Store(_)
            | Self::Signing(_)
            | Self::Randomness
            | Self::NoRuntime => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OAuth 2.0 error for the HTTP layer: `invalid_grant` for every refresh and
    /// session-state failure, `invalid_request` for bad arguments and unknown sessions,
    /// `access_denied` for ownership and login refusals, `temporarily_unavailable`
    /// when the store is unavailable, `server_error` otherwise.
    pub fn oauth_error(&self) -> &'static str {
        match self {
            Self::MalformedRefreshToken
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused
            | Self::RefreshKeyMismatch
            | Self::SessionEnded { .. }
            | Self::SessionKeyMismatch
            | Self::ReauthenticationRequired => oauth::INVALID_GRANT,
            Self::SessionNotFound | Self::InvalidInput { .. } | Self::DbscAlreadyRegistered => {
                oauth::INVALID_REQUEST
            }
            Self::NotSessionOwner | Self::LoginDenied | Self::LoginSuperseded => {
                oauth::ACCESS_DENIED
            }
            Self::Store(StoreError::Unavailable { .. }) => oauth::TEMPORARILY_UNAVAILABLE,
            Self::InvalidPolicy(_)
            | Self::Store(_)
            | Self::Signing(_)
            | Self::Randomness
            | Self::NoRuntime => oauth::SERVER_ERROR,
        }
    }

    /// The human-readable description: the error's own text, or fixed text for a
    /// server fault (its details go to the log, never to the client).
    pub fn description(&self) -> String {
        match self.status() {
            StatusCode::SERVICE_UNAVAILABLE => {
                "the service is temporarily unavailable; retry later".to_owned()
            }
            status if status.is_server_error() => "internal server error".to_owned(),
            _ => self.to_string(),
        }
    }

    /// The JSON error body `{error, error_description, error_code}`.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.oauth_error().to_owned(),
            error_description: self.description(),
            error_code: self.code().to_owned(),
        }
    }

    /// The complete response: [`status`](Self::status), the JSON [`body`](Self::body),
    /// `Cache-Control: no-store` and, for a `503`, `Retry-After: 1`. A server fault is
    /// logged (`tracing`, level `warn`) with its details.
    pub fn into_http_response(self) -> http::Response<String> {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), "keybound request failed: {self}");
        }
        response::error(status, &self.body(), None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_the_status_of_its_oauth_error() {
        let errors = [
            LifecycleError::MalformedRefreshToken,
            LifecycleError::InvalidRefreshToken,
            LifecycleError::RefreshTokenReused,
            LifecycleError::RefreshKeyMismatch,
            LifecycleError::SessionEnded {
                state: SessionState::Revoked,
            },
            LifecycleError::SessionNotFound,
            LifecycleError::NotSessionOwner,
            LifecycleError::SessionKeyMismatch,
            LifecycleError::ReauthenticationRequired,
            LifecycleError::LoginDenied,
            LifecycleError::LoginSuperseded,
            LifecycleError::InvalidInput {
                field: "user_id",
                reason: "empty",
            },
            LifecycleError::InvalidPolicy(PolicyError::IdleExceedsAbsolute),
            LifecycleError::Store(StoreError::Unavailable { reason: "x".into() }),
            LifecycleError::Store(StoreError::Corrupt { reason: "x".into() }),
            LifecycleError::Signing(ProtoError::InvalidSignature),
            LifecycleError::Randomness,
            LifecycleError::NoRuntime,
        ];
        for error in errors {
            let expected = match (error.oauth_error(), &error) {
                (_, LifecycleError::SessionNotFound) => StatusCode::NOT_FOUND,
                (oauth::INVALID_GRANT | oauth::INVALID_REQUEST, _) => StatusCode::BAD_REQUEST,
                (oauth::ACCESS_DENIED, _) => StatusCode::FORBIDDEN,
                (oauth::TEMPORARILY_UNAVAILABLE, _) => StatusCode::SERVICE_UNAVAILABLE,
                (oauth::SERVER_ERROR, _) => StatusCode::INTERNAL_SERVER_ERROR,
                (other, _) => panic!("unexpected OAuth error {other}"),
            };
            assert_eq!(error.status(), expected, "{}", error.code());
        }
    }
}
