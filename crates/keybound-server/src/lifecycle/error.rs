//! The errors of the session lifecycle, with stable codes and their OAuth mapping.

use keybound_proto::ProtoError;

use super::SessionState;
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
            Self::Zero { .. } => "policy_zero_value",
            Self::TooLarge { .. } => "policy_value_too_large",
            Self::GraceNotBelowAccessLifetime => "policy_grace_too_long",
            Self::IdleExceedsAbsolute => "policy_idle_exceeds_absolute",
            Self::AccessExceedsIdle => "policy_access_exceeds_idle",
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
            Self::MalformedRefreshToken => "refresh_token_malformed",
            Self::InvalidRefreshToken => "refresh_token_invalid",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::RefreshKeyMismatch => "refresh_key_mismatch",
            Self::SessionEnded { state } => match state {
                SessionState::Expired => "session_expired",
                SessionState::Revoked => "session_revoked",
                SessionState::Closed => "session_closed",
                SessionState::Active => "session_active",
            },
            Self::SessionNotFound => "session_not_found",
            Self::NotSessionOwner => "session_not_owned",
            Self::SessionKeyMismatch => "session_key_mismatch",
            Self::ReauthenticationRequired => "reauthentication_required",
            Self::LoginDenied => "login_denied",
            Self::InvalidInput { .. } => "invalid_input",
            Self::InvalidPolicy(e) => e.code(),
            Self::Store(e) => e.code(),
            Self::Signing(_) => "signing_failed",
            Self::Randomness => "randomness_unavailable",
            Self::NoRuntime => "no_runtime",
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
            | Self::ReauthenticationRequired => "invalid_grant",
            Self::SessionNotFound | Self::InvalidInput { .. } => "invalid_request",
            Self::NotSessionOwner | Self::LoginDenied => "access_denied",
            Self::Store(StoreError::Unavailable { .. }) => "temporarily_unavailable",
            Self::InvalidPolicy(_)
            | Self::Store(_)
            | Self::Signing(_)
            | Self::Randomness
            | Self::NoRuntime => "server_error",
        }
    }
}
