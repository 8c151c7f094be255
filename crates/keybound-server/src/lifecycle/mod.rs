//! The session lifecycle (DESIGN §4): rotation with reuse detection, immediate
//! revocation, expiry, cleanup, audit and metrics, on any [`SessionStore`].
//!
//! [`SessionService`] is the entry point. The application opens a session after
//! authenticating a user its own way, binding it to the key that signed the login
//! request's DPoP proof; from then on the client refreshes with rotation, and the
//! verifier asks the service (as its [`SessionCheck`](crate::SessionCheck)) whether
//! each request's session is still active.
//!
//! ```
//! use std::time::Duration;
//! use keybound_server::{KeyRing, ManualClock, SessionCheck};
//! use keybound_server::lifecycle::{Actor, OpenRequest, Reason, RequestSignals, SessionService};
//! use keybound_server::proto::{PublicJwk, ed25519_dalek::SigningKey};
//! use keybound_server::store::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new(1_700_000_000_000);
//! let service = SessionService::builder(MemoryStore::new(), KeyRing::generate()?)
//!     .issuer("https://api.example")
//!     .clock(clock.clone())
//!     .build()?;
//!
//! // The login request's proof was verified; its key's thumbprint binds the session.
//! let device_key = SigningKey::from_bytes(&[7; 32]);
//! let jkt = PublicJwk::from_verifying_key(&device_key.verifying_key()).thumbprint();
//! let login = service
//!     .open_session("alice", &jkt, OpenRequest::new().device_label("Firefox on Linux"))
//!     .await?;
//! assert_eq!(login.token_type, "DPoP");
//!
//! // Four minutes later the client refreshes, with a proof by the same key.
//! clock.advance(Duration::from_secs(240));
//! let refreshed = service.refresh(&login.refresh_token, &jkt, &RequestSignals::new()).await?;
//! assert_ne!(refreshed.refresh_token, login.refresh_token);
//!
//! // Requests of the session pass the verifier's session check ...
//! service.check(&refreshed.session_id, "alice", &jkt).await?;
//!
//! // ... until it is revoked: the very next request is refused.
//! service
//!     .revoke(&refreshed.session_id, Reason::ADMIN_REVOKED, Actor::Admin("ops".into()))
//!     .await?;
//! let denied = service.check(&refreshed.session_id, "alice", &jkt).await.unwrap_err();
//! assert_eq!(denied.code(), "session_revoked");
//!
//! // Its refresh token is dead too.
//! let err = service
//!     .refresh(&refreshed.refresh_token, &jkt, &RequestSignals::new())
//!     .await
//!     .unwrap_err();
//! assert_eq!((err.oauth_error(), err.code()), ("invalid_grant", "session_revoked"));
//! # Ok(())
//! # }
//! ```
//!
//! # Pieces
//!
//! * [`Policy`]: lifetimes (access token 300 s, idle 30 min, absolute 12 h), refresh
//!   grace (30 s), retention (7 days), sweeping; validated when the service is built.
//! * [`RiskPolicy`]: consulted on login and refresh with [`RequestSignals`]; may
//!   shorten lifetimes, require re-authentication or revoke. Example:
//!   [`UserAgentChangePolicy`].
//! * [`RefreshSecret`]: authenticates refresh tokens and derives their successors;
//!   stores keep only hashes (see the `tokens` format in [`RefreshSecret`]).
//! * Audit: [`AuditEvent`] through [`AuditSink`]s — [`TracingSink`],
//!   [`JsonLinesSink`], [`BroadcastSink`].
//! * Metrics: names in [`metrics`].
//! * Cleanup: [`SessionService::sweep_once`] and [`SessionService::spawn_sweeper`].
//!
//! # Errors
//!
//! [`LifecycleError`] has a stable [`code`](LifecycleError::code) per failure and an
//! OAuth error for the HTTP layer ([`oauth_error`](LifecycleError::oauth_error)):
//!
//! | code | when | OAuth |
//! |---|---|---|
//! | `refresh_token_malformed` | not a keybound refresh token | `invalid_grant` |
//! | `refresh_token_invalid` | not issued here, or its session is gone | `invalid_grant` |
//! | `refresh_token_reused` | an old token: the session is now revoked | `invalid_grant` |
//! | `refresh_key_mismatch` | the proof's key is not the session's | `invalid_grant` |
//! | `session_expired` / `session_revoked` / `session_closed` | the session ended | `invalid_grant` |
//! | `reauthentication_required` | the risk policy wants a new login | `invalid_grant` |
//! | `session_key_mismatch` | a sensitive action with another key | `invalid_grant` |
//! | `session_not_found` | unknown or malformed session id | `invalid_request` |
//! | `invalid_input` | a bad argument (user id, thumbprint, …) | `invalid_request` |
//! | `session_not_owned` | revoking another user's session | `access_denied` |
//! | `login_denied` | the risk policy refused the login | `access_denied` |
//! | `store_unavailable` | the store is down or busy | `temporarily_unavailable` |
//! | `store_*`, `signing_failed`, `randomness_unavailable`, `policy_*`, `no_runtime` | server faults | `server_error` |
//!
//! [`SessionStore`]: crate::store::SessionStore

mod audit;
mod cache;
mod error;
pub mod metrics;
mod policy;
mod risk;
mod service;
mod sweeper;
mod tokens;

pub use crate::session::{Actor, Jkt, Reason, SessionId, SessionState, TokenHash};
pub use audit::{AuditEvent, AuditEventKind, AuditSink, BroadcastSink, JsonLinesSink, TracingSink};
pub use error::{LifecycleError, PolicyError};
pub use policy::Policy;
pub use risk::{
    LifetimeLimits, RequestSignals, RiskContext, RiskDecision, RiskEvent, RiskPolicy,
    UserAgentChangePolicy,
};
#[cfg(feature = "axum")]
pub(crate) use service::dbsc_thumbprint;
pub use service::{BoundCookieValue, PendingDbsc};
pub use service::{
    EndResult, LoginFence, OpenRequest, PageCursor, SessionInfo, SessionPage, SessionService,
    SessionServiceBuilder,
};
pub use sweeper::{SweepHook, SweepReport, SweeperHandle};
pub use tokens::RefreshSecret;
#[cfg(feature = "fuzzing")]
pub(crate) use tokens::RefreshToken;
