//! Session stores: the one async trait the lifecycle runs on, the records it keeps,
//! and the stores keybound ships ([`MemoryStore`], `SqliteStore` behind the `sqlite`
//! feature, `RedisStore` behind the `redis` feature).
//!
//! Every operation that must be atomic is one trait method, made atomic by the store
//! itself (a mutex, a SQL transaction, a Redis script), never a read-modify-write in
//! the caller. Stores take `now` from the caller and keep no clock of their own, so the
//! service's injected clock decides everything.
//!
//! A store is correct when it passes the shared suite in `conformance` (behind the
//! `conformance` feature; replay stores have theirs in `conformance::replay`):
//!
//! ```ignore
//! keybound_server::store_conformance_tests!(|| async {
//!     keybound_server::store::conformance::Fixture::new(MyStore::connect().await)
//! });
//! ```
//!
//! The decision rules shared by all stores are public ([`decide_rotation`],
//! [`SessionRecord::pending_expiry`]) so a third-party store needs to implement only
//! the storage, not the lifecycle.

use std::sync::Arc;

use keybound_proto::wire::code;

use crate::BoxFuture;
use crate::session::{Jkt, Reason, SessionId, SessionState, TokenHash};

#[cfg(feature = "conformance")]
pub mod conformance;
mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// Why a store operation failed. One error type for every store.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A session with this id already exists (ids are random, so this is a bug or an
    /// attack on the id generator).
    #[error("a session with this id already exists")]
    Duplicate,
    /// The store cannot be reached or is busy; requests should fail closed and retry later.
    #[error("the session store is unavailable: {reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
    },
    /// The stored data is damaged (not a database, a malformed row).
    #[error("the session store is corrupt: {reason}")]
    Corrupt {
        /// What went wrong.
        reason: String,
    },
    /// The store was written by something else, or by a newer keybound.
    #[error("the session store is incompatible: {reason}")]
    Incompatible {
        /// What went wrong.
        reason: String,
    },
    /// Any other failure of the store's backend.
    #[error("session store error: {reason}")]
    Backend {
        /// What went wrong.
        reason: String,
    },
}

impl StoreError {
    /// The stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Duplicate => code::STORE_DUPLICATE_SESSION,
            Self::Unavailable { .. } => code::STORE_UNAVAILABLE,
            Self::Corrupt { .. } => code::STORE_CORRUPT,
            Self::Incompatible { .. } => code::STORE_INCOMPATIBLE,
            Self::Backend { .. } => code::STORE_ERROR,
        }
    }
}

/// Everything a store keeps about one session. Times are seconds since the Unix epoch.
///
/// Invariants the service maintains: `idle_expires_at <= absolute_expires_at`;
/// `reason` and `ended_at` are set exactly when `state` is terminal; `grace_until` is
/// set only with `previous_hash`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session id.
    pub id: SessionId,
    /// The user the session belongs to.
    pub user_id: String,
    /// Thumbprint of the device key the session is bound to.
    pub jkt: Jkt,
    /// The label of the device, from the login request.
    pub device_label: Option<String>,
    /// A short hash of the login request's user agent, for risk policies.
    pub user_agent_hash: Option<[u8; 8]>,
    /// When the session was opened.
    pub created_at: i64,
    /// The last login, refresh, extend or sensitive-action rotation.
    pub last_seen_at: i64,
    /// When the session expires unless refreshed or extended.
    pub idle_expires_at: i64,
    /// When the session expires at the latest.
    pub absolute_expires_at: i64,
    /// The refresh-token generation: 0 at login, +1 per rotation.
    pub generation: u64,
    /// Hash of the current refresh token.
    pub current_hash: TokenHash,
    /// Hash of the immediately previous refresh token.
    pub previous_hash: Option<TokenHash>,
    /// Until when the previous token may be presented again (grace replay); `None`
    /// when the last rotation allowed no grace (sensitive actions).
    pub grace_until: Option<i64>,
    /// The stored state. A session past its deadline may still be stored as `active`
    /// until a read or the sweep makes the expiry durable: use
    /// [`effective_state`](Self::effective_state).
    pub state: SessionState,
    /// Why the session ended.
    pub reason: Option<Reason>,
    /// When the session ended (for an expiry: the deadline that passed).
    pub ended_at: Option<i64>,
    /// How the session is bound to its device.
    pub binding: SessionBinding,
}

/// How a session is bound to its device (DESIGN §8): by the SDK's DPoP key, or by the
/// browser's DBSC key, which the browser registers after sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionBinding {
    /// Every request carries a DPoP proof by the key `jkt` names.
    Dpop,
    /// DBSC, registered: the browser's public key as JWK JSON (refresh proofs carry no
    /// key, so the server keeps it); `jkt` is its thumbprint.
    Dbsc {
        /// The public JWK, as JSON text.
        key: String,
    },
    /// DBSC, waiting for the browser to register its key: the session has no
    /// credential yet, and `jkt` is a placeholder no key has.
    DbscPending,
}

impl SessionBinding {
    /// `dpop`, `dbsc` or `dbsc_pending`: the name in listings, audit events and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dpop => "dpop",
            Self::Dbsc { .. } => "dbsc",
            Self::DbscPending => "dbsc_pending",
        }
    }

    /// The form every store keeps: `dpop`, `dbsc_pending` or `dbsc:` followed by the key.
    pub fn to_stored(&self) -> String {
        match self {
            Self::Dbsc { key } => format!("dbsc:{key}"),
            other => other.name().to_owned(),
        }
    }

    /// Reads [`to_stored`](Self::to_stored)'s form; `None` for anything else.
    pub fn from_stored(text: &str) -> Option<Self> {
        match text {
            "dpop" => Some(Self::Dpop),
            "dbsc_pending" => Some(Self::DbscPending),
            _ => text
                .strip_prefix("dbsc:")
                .filter(|key| !key.is_empty())
                .map(|key| Self::Dbsc {
                    key: key.to_owned(),
                }),
        }
    }
}

/// The thumbprint placeholder of a session waiting for its DBSC registration: all
/// zero bytes, the SHA-256 of no key anyone can make.
pub const PENDING_JKT: Jkt = Jkt::from_bytes([0; 32]);

impl SessionRecord {
    /// When the session expires if nothing happens: the earlier of the idle and the
    /// absolute deadline.
    pub fn deadline(&self) -> i64 {
        self.idle_expires_at.min(self.absolute_expires_at)
    }

    /// The state at `now`, counting a passed deadline as `expired`.
    pub fn effective_state(&self, now: i64) -> SessionState {
        match self.state {
            SessionState::Active if now >= self.deadline() => SessionState::Expired,
            state => state,
        }
    }

    /// For an `active` session whose deadline has passed at `now`: when it expired and
    /// why. `None` otherwise.
    pub fn pending_expiry(&self, now: i64) -> Option<(i64, Reason)> {
        (self.state == SessionState::Active && now >= self.deadline()).then(|| {
            (
                self.deadline(),
                Reason::for_expiry(self.idle_expires_at, self.absolute_expires_at),
            )
        })
    }

    /// Makes a pending expiry durable in this record; returns whether it did.
    pub fn expire_if_due(&mut self, now: i64) -> bool {
        match self.pending_expiry(now) {
            Some((at, reason)) => {
                self.finish(SessionState::Expired, reason, at);
                true
            }
            None => false,
        }
    }

    /// Moves the record into a terminal state.
    pub fn finish(&mut self, state: SessionState, reason: Reason, at: i64) {
        self.state = state;
        self.reason = Some(reason);
        self.ended_at = Some(at);
    }

    /// The facts [`decide_rotation`] needs.
    pub fn rotation_view(&self) -> RotationView {
        RotationView {
            state: self.state,
            idle_expires_at: self.idle_expires_at,
            absolute_expires_at: self.absolute_expires_at,
            generation: self.generation,
            current_hash: self.current_hash,
            previous_hash: self.previous_hash,
            grace_until: self.grace_until,
            jkt: self.jkt,
        }
    }

    /// Applies a [`RotationDecision::Rotate`] for `request`.
    pub fn apply_rotation(&mut self, request: &RotateRequest) {
        if let Some(cap) = request.absolute_cap {
            self.absolute_expires_at = self.absolute_expires_at.min(cap);
        }
        self.previous_hash = Some(self.current_hash);
        self.current_hash = request.next;
        self.generation += 1;
        self.grace_until = Some(request.grace_until);
        self.last_seen_at = request.now;
        self.idle_expires_at = request.idle_expires_at.min(self.absolute_expires_at);
    }

    /// Applies a successful [`ReplaceTokensRequest`].
    pub fn apply_replacement(&mut self, request: &ReplaceTokensRequest) {
        self.previous_hash = Some(self.current_hash);
        self.current_hash = request.next;
        self.generation += 1;
        self.grace_until = None;
        self.last_seen_at = request.now;
        self.idle_expires_at = request.idle_expires_at.min(self.absolute_expires_at);
    }

    /// Applies a successful [`BindRequest`].
    pub fn apply_bind(&mut self, request: &BindRequest) {
        self.binding = SessionBinding::Dbsc {
            key: request.key.clone(),
        };
        self.jkt = request.jkt;
        self.last_seen_at = request.now;
        self.idle_expires_at = request.idle_expires_at.min(self.absolute_expires_at);
    }

    /// Applies a successful [`TouchRequest`].
    pub fn apply_touch(&mut self, request: &TouchRequest) {
        self.last_seen_at = request.now;
        self.idle_expires_at = request.idle_expires_at.min(self.absolute_expires_at);
    }
}

/// The facts about a session that decide a rotation.
#[derive(Clone, Copy, Debug)]
pub struct RotationView {
    /// Stored state.
    pub state: SessionState,
    /// Idle deadline.
    pub idle_expires_at: i64,
    /// Absolute deadline.
    pub absolute_expires_at: i64,
    /// Current generation.
    pub generation: u64,
    /// Hash of the current refresh token.
    pub current_hash: TokenHash,
    /// Hash of the previous refresh token.
    pub previous_hash: Option<TokenHash>,
    /// End of the previous token's grace period.
    pub grace_until: Option<i64>,
    /// The bound key.
    pub jkt: Jkt,
}

/// A refresh: rotate the session's refresh token if `presented` is its current one.
#[derive(Clone, Debug)]
pub struct RotateRequest {
    /// The session.
    pub id: SessionId,
    /// Hash of the presented refresh token.
    pub presented: TokenHash,
    /// The generation the presented token claims.
    pub presented_generation: u64,
    /// Thumbprint of the key that signed the refresh request's proof.
    pub jkt: Jkt,
    /// Hash of the successor token (generation `presented_generation + 1`).
    pub next: TokenHash,
    /// The current time.
    pub now: i64,
    /// Until when the presented token may be presented again after this rotation.
    pub grace_until: i64,
    /// The new idle deadline (the store caps it at the absolute deadline).
    pub idle_expires_at: i64,
    /// A new, earlier absolute deadline decided by a risk policy, if any.
    pub absolute_cap: Option<i64>,
}

/// What a rotation did. The records are the session after the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The presented token was the current one: generation +1, successor stored.
    Rotated(SessionRecord),
    /// The presented token was the previous one, from the same key, within grace:
    /// nothing changed; the caller hands out the current generation again.
    GraceReplay(SessionRecord),
    /// Any other token of this session: the session is now revoked (`refresh_reuse`).
    ReuseDetected(SessionRecord),
    /// The current token, presented with another key: refused, nothing changed.
    KeyMismatch,
    /// No such session, or a token this session never issued.
    Unknown,
    /// The session is not active. `newly_expired` when this operation found its
    /// deadline passed and made the expiry durable.
    NotActive {
        /// The session.
        record: SessionRecord,
        /// Whether this call expired it.
        newly_expired: bool,
    },
}

/// What [`decide_rotation`] says a store must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationDecision {
    /// Already terminal: change nothing, answer [`RotateOutcome::NotActive`].
    NotActive,
    /// Past its deadline: make the expiry durable, answer `NotActive`.
    Expire,
    /// Apply [`SessionRecord::apply_rotation`].
    Rotate,
    /// Change nothing, answer [`RotateOutcome::GraceReplay`].
    GraceReplay,
    /// Revoke with [`Reason::REFRESH_REUSE`] at `now`.
    Reuse,
    /// Change nothing, answer [`RotateOutcome::KeyMismatch`].
    KeyMismatch,
    /// Change nothing, answer [`RotateOutcome::Unknown`].
    Unknown,
}

/// The rotation rule of DESIGN §4, the same for every store: terminal or expired
/// sessions do not rotate; the current token by the bound key rotates; the previous
/// token by the bound key within grace replays; every other token of the session is
/// reuse.
pub fn decide_rotation(view: &RotationView, request: &RotateRequest) -> RotationDecision {
    if view.state.is_terminal() {
        return RotationDecision::NotActive;
    }
    if request.now >= view.idle_expires_at.min(view.absolute_expires_at) {
        return RotationDecision::Expire;
    }
    if request.presented == view.current_hash {
        if request.presented_generation != view.generation {
            return RotationDecision::Unknown;
        }
        if request.jkt != view.jkt {
            return RotationDecision::KeyMismatch;
        }
        return RotationDecision::Rotate;
    }
    let is_previous = view.previous_hash == Some(request.presented)
        && request.presented_generation.checked_add(1) == Some(view.generation);
    let in_grace = view.grace_until.is_some_and(|until| request.now < until);
    if is_previous && in_grace && request.jkt == view.jkt {
        return RotationDecision::GraceReplay;
    }
    RotationDecision::Reuse
}

/// A sensitive action: replace the current refresh token without grace for the old one.
#[derive(Clone, Debug)]
pub struct ReplaceTokensRequest {
    /// The session.
    pub id: SessionId,
    /// The key the caller proved; must be the session's.
    pub jkt: Jkt,
    /// Hash of the new refresh token.
    pub next: TokenHash,
    /// The current time.
    pub now: i64,
    /// The new idle deadline (capped at the absolute deadline).
    pub idle_expires_at: i64,
}

/// A DBSC registration: bind a session waiting for it ([`SessionBinding::DbscPending`])
/// to the browser's key. Succeeds once: a session bound already answers
/// [`UpdateOutcome::KeyMismatch`].
#[derive(Clone, Debug)]
pub struct BindRequest {
    /// The session.
    pub id: SessionId,
    /// Thumbprint of the browser's key.
    pub jkt: Jkt,
    /// The browser's public key as JWK JSON.
    pub key: String,
    /// The current time.
    pub now: i64,
    /// The new idle deadline (capped at the absolute deadline).
    pub idle_expires_at: i64,
}

/// `extend`: the user chose to stay signed in.
#[derive(Clone, Debug)]
pub struct TouchRequest {
    /// The session.
    pub id: SessionId,
    /// The current time.
    pub now: i64,
    /// The new idle deadline (capped at the absolute deadline).
    pub idle_expires_at: i64,
}

/// What an update of an active session did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Applied; the session after the update.
    Updated(SessionRecord),
    /// The session is not active (`newly_expired` as in [`RotateOutcome::NotActive`]).
    NotActive {
        /// The session.
        record: SessionRecord,
        /// Whether this call expired it.
        newly_expired: bool,
    },
    /// The session is bound to another key: nothing changed.
    KeyMismatch,
    /// No such session.
    NotFound,
}

/// A terminal state a caller may ask for (expiry happens only by time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndState {
    /// Revoked.
    Revoked,
    /// Closed (logout).
    Closed,
}

impl From<EndState> for SessionState {
    fn from(state: EndState) -> Self {
        match state {
            EndState::Revoked => Self::Revoked,
            EndState::Closed => Self::Closed,
        }
    }
}

/// End one session.
#[derive(Clone, Debug)]
pub struct EndRequest {
    /// The session.
    pub id: SessionId,
    /// When set, the session must belong to this user, or nothing happens.
    pub owner: Option<String>,
    /// The state to move to.
    pub state: EndState,
    /// Why.
    pub reason: Reason,
    /// The current time.
    pub now: i64,
}

/// End every active session of a user, optionally but one.
#[derive(Clone, Debug)]
pub struct EndUserRequest {
    /// The user.
    pub user_id: String,
    /// A session to leave alone.
    pub except: Option<SessionId>,
    /// The state to move to.
    pub state: EndState,
    /// Why.
    pub reason: Reason,
    /// The current time.
    pub now: i64,
}

/// What ending a session did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndOutcome {
    /// The session was active and is now in the requested state.
    Ended(SessionRecord),
    /// The session was already terminal; nothing changed.
    AlreadyEnded(SessionRecord),
    /// The session's deadline had passed: it is now durably `expired` instead.
    Expired(SessionRecord),
    /// The session belongs to another user; nothing changed.
    NotOwner,
    /// No such session.
    NotFound,
}

/// One bounded step of cleanup.
#[derive(Clone, Copy, Debug)]
pub struct SweepRequest {
    /// The current time: `active` sessions past their deadline become `expired`.
    pub now: i64,
    /// Terminal sessions that ended at or before this time are purged.
    pub purge_ended_before: i64,
    /// At most this many sessions are expired or purged by this call.
    pub limit: usize,
    /// Where to continue: 0 to start, then the cursor of the previous batch.
    pub cursor: u64,
}

/// What one sweep step did.
#[derive(Clone, Debug, Default)]
pub struct SweepBatch {
    /// The sessions expired or purged, in that order for a session that was both.
    pub swept: Vec<SweptSession>,
    /// Where the next step continues.
    pub cursor: u64,
    /// Whether the sweep is complete (no more work found).
    pub done: bool,
}

/// What the sweep did to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepAction {
    /// Moved from `active` to `expired`.
    Expired,
    /// Removed from the store.
    Purged,
}

/// One session touched by a sweep, for the audit event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweptSession {
    /// What happened.
    pub action: SweepAction,
    /// The session.
    pub id: SessionId,
    /// Its user.
    pub user_id: Arc<str>,
    /// Its key.
    pub jkt: Jkt,
    /// Its last generation.
    pub generation: u64,
    /// Why it expired, or [`Reason::RETENTION`] for a purge.
    pub reason: Reason,
}

/// A node's cache of active sessions, as a cross-node store's invalidation listener
/// sees it: the listener drops what other nodes changed and suspends the cache while
/// it cannot hear them. [`SessionService`](crate::SessionService) implements it.
pub trait SessionCacheControl: Send + Sync + 'static {
    /// Drops one session from the cache, so its next check reads the store.
    fn invalidate(&self, id: &SessionId);
    /// Drops every session from the cache.
    fn invalidate_all(&self);
    /// Stops using the cache (emptied) until [`resume`](Self::resume): every check
    /// reads the store.
    fn suspend(&self);
    /// Uses the cache again, starting empty.
    fn resume(&self);
}

/// The storage behind the session lifecycle. Object-safe (held as
/// `Arc<dyn SessionStore>`); every method is one atomic operation.
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session; [`StoreError::Duplicate`] if the id exists.
    fn create(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The stored record, as is (expiry by time is the caller's to evaluate).
    fn load(&self, id: SessionId) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>>;

    /// Decides with [`decide_rotation`] and applies the decision, atomically.
    fn rotate(&self, request: RotateRequest) -> BoxFuture<'_, Result<RotateOutcome, StoreError>>;

    /// Replaces the refresh token of an active session bound to `request.jkt`.
    fn replace_tokens(
        &self,
        request: ReplaceTokensRequest,
    ) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>>;

    /// Extends the idle deadline of an active session.
    fn touch(&self, request: TouchRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>>;

    /// Binds an active session waiting for its DBSC registration to the browser's
    /// key, atomically: of two registrations at once exactly one succeeds.
    fn bind_dbsc(&self, request: BindRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>>;

    /// Ends one session (idempotent: a terminal session stays as it is).
    fn end(&self, request: EndRequest) -> BoxFuture<'_, Result<EndOutcome, StoreError>>;

    /// Ends every active session of a user but `except`. Returns only the sessions
    /// this call changed ([`EndOutcome::Ended`] or [`EndOutcome::Expired`]).
    fn end_user_sessions(
        &self,
        request: EndUserRequest,
    ) -> BoxFuture<'_, Result<Vec<EndOutcome>, StoreError>>;

    /// Every stored session of a user, in any state (purged ones are gone).
    fn list_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>>;

    /// One bounded cleanup step: expire `active` sessions past their deadline, purge
    /// terminal sessions that ended at or before `purge_ended_before`, at most
    /// `limit` of them, holding the store for no longer than that batch.
    fn sweep(&self, request: SweepRequest) -> BoxFuture<'_, Result<SweepBatch, StoreError>>;

    /// How many sessions are stored as `active` (including any past their deadline
    /// that the next sweep will expire).
    fn count_active(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
}

impl<S: SessionStore + ?Sized> SessionStore for Arc<S> {
    fn create(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).create(record)
    }
    fn load(&self, id: SessionId) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>> {
        (**self).load(id)
    }
    fn rotate(&self, request: RotateRequest) -> BoxFuture<'_, Result<RotateOutcome, StoreError>> {
        (**self).rotate(request)
    }
    fn replace_tokens(
        &self,
        request: ReplaceTokensRequest,
    ) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        (**self).replace_tokens(request)
    }
    fn touch(&self, request: TouchRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        (**self).touch(request)
    }
    fn bind_dbsc(&self, request: BindRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        (**self).bind_dbsc(request)
    }
    fn end(&self, request: EndRequest) -> BoxFuture<'_, Result<EndOutcome, StoreError>> {
        (**self).end(request)
    }
    fn end_user_sessions(
        &self,
        request: EndUserRequest,
    ) -> BoxFuture<'_, Result<Vec<EndOutcome>, StoreError>> {
        (**self).end_user_sessions(request)
    }
    fn list_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
        (**self).list_user(user_id)
    }
    fn sweep(&self, request: SweepRequest) -> BoxFuture<'_, Result<SweepBatch, StoreError>> {
        (**self).sweep(request)
    }
    fn count_active(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        (**self).count_active()
    }
}
