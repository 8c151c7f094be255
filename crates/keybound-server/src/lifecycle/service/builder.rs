//! [`SessionServiceBuilder`]: configuring and building a [`SessionService`].

use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::super::audit::{AuditSink, TracingSink};
use super::super::cache::SessionCache;
use super::super::policy::secs;
use super::super::risk::RiskPolicy;
use super::super::sweeper::SweepHook;
use super::{Inner, SessionService};
use crate::lifecycle::{LifecycleError, Policy, RefreshSecret};
use crate::store::SessionStore;
use crate::{BoxFuture, Clock, KeyRing, ReplayStore, SharedKeyRing, SystemClock};

/// Configures a [`SessionService`].
#[must_use]
pub struct SessionServiceBuilder {
    store: Arc<dyn SessionStore>,
    keys: SharedKeyRing,
    clock: Arc<dyn Clock>,
    policy: Policy,
    issuer: String,
    risk: Option<Arc<dyn RiskPolicy>>,
    audit: Vec<Arc<dyn AuditSink>>,
    secret: Option<RefreshSecret>,
    cache: Option<(usize, Duration)>,
    max_sessions_per_user: Option<usize>,
    replay_cleanup: Option<Arc<dyn SweepHook>>,
}

impl std::fmt::Debug for SessionServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionServiceBuilder")
            .field("issuer", &self.issuer)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl SessionServiceBuilder {
    /// The default per-user limit of active sessions.
    pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 100;

    /// The `iss` of access tokens (default `keybound`); the verifier must expect the
    /// same.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The clock every decision reads (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The same, shared.
    pub fn shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The lifetimes and cleanup settings (default: [`Policy::default`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The risk policy consulted on login and refresh (default: none, allow all).
    pub fn risk_policy(mut self, risk: impl RiskPolicy) -> Self {
        self.risk = Some(Arc::new(risk));
        self
    }

    /// Adds an audit sink. Without any, events go to [`TracingSink`].
    pub fn audit_sink(mut self, sink: impl AuditSink) -> Self {
        self.audit.push(Arc::new(sink));
        self
    }

    /// The secret authenticating refresh tokens. Default: a random one, which is
    /// right for the memory store; a persistent store needs the same secret after
    /// every restart.
    pub fn refresh_secret(mut self, secret: RefreshSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Caches up to `capacity` active sessions for the session check, each for at
    /// most `ttl` (default: 100 000 sessions, 30 s). Every change made through the
    /// service drops the entry at once; `ttl` only bounds how long a change made by
    /// another process (another service on the same SQLite file) goes unseen. With
    /// the Redis store, other nodes' revocations drop entries at once too, and `ttl`
    /// is the worst case while a node's subscription is silently broken (see
    /// `RedisStore::spawn_invalidation_listener`).
    pub fn session_cache(mut self, capacity: usize, ttl: Duration) -> Self {
        self.cache = Some((capacity, ttl));
        self
    }

    /// At most `max` active sessions per user (default
    /// [`DEFAULT_MAX_SESSIONS_PER_USER`](Self::DEFAULT_MAX_SESSIONS_PER_USER), at least
    /// 1). A login beyond it revokes the user's least recently used active session
    /// (reason `session_limit`, actor `system`, audited and counted like any
    /// revocation), atomically with opening the new one, so a user is never locked
    /// out by sessions they forgot and never holds more than `max`.
    pub fn max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_sessions_per_user = Some(max.max(1));
        self
    }

    /// No per-user session limit.
    pub fn unlimited_sessions_per_user(mut self) -> Self {
        self.max_sessions_per_user = None;
        self
    }

    /// Reads the store on every session check.
    pub fn without_session_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// A hook run at the end of each sweep with the time in milliseconds, for a
    /// replay store's cleanup. Any `Fn(i64) + Send + Sync` closure works.
    pub fn replay_cleanup(mut self, hook: impl SweepHook) -> Self {
        self.replay_cleanup = Some(Arc::new(hook));
        self
    }

    /// Sweeps the verifier's replay store at the end of each sweep (the usual
    /// [`replay_cleanup`](Self::replay_cleanup)): pass `verifier.replay_store().clone()`.
    pub fn replay_store(self, store: Arc<dyn ReplayStore>) -> Self {
        self.replay_cleanup(ReplaySweep(store))
    }

    /// Validates the policy and builds the service.
    pub fn build(self) -> Result<SessionService, LifecycleError> {
        self.policy.validate()?;
        if self.issuer.is_empty() {
            return Err(LifecycleError::InvalidInput {
                field: "issuer",
                reason: "empty",
            });
        }
        let secret = match self.secret {
            Some(secret) => secret,
            None => RefreshSecret::generate()?,
        };
        let audit = if self.audit.is_empty() {
            vec![Arc::new(TracingSink) as Arc<dyn AuditSink>]
        } else {
            self.audit
        };
        let cache = self
            .cache
            .filter(|(capacity, ttl)| *capacity > 0 && ttl.as_secs() > 0)
            .map(|(capacity, ttl)| SessionCache::new(capacity, secs(ttl)));
        Ok(SessionService {
            inner: Arc::new(Inner {
                store: self.store,
                keys: self.keys,
                clock: self.clock,
                policy: self.policy,
                issuer: self.issuer,
                risk: self.risk,
                audit,
                secret,
                cache,
                max_sessions_per_user: self.max_sessions_per_user,
                replay_cleanup: self.replay_cleanup,
            }),
        })
    }
}

/// Sweeps a [`ReplayStore`] as a [`SweepHook`].
struct ReplaySweep(Arc<dyn ReplayStore>);

impl SweepHook for ReplaySweep {
    fn run(&self, _now_ms: i64) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            match self.0.sweep().await {
                Ok(removed) => {
                    tracing::debug!(target: "keybound::lifecycle", removed, "replay store swept");
                }
                Err(e) => {
                    tracing::warn!(target: "keybound::lifecycle", error = %e, "sweeping the replay store failed");
                }
            }
        })
    }
}

/// Lets a plain [`KeyRing`] be handed to [`SessionService::builder`].
impl From<KeyRing> for SharedKeyRing {
    fn from(keys: KeyRing) -> Self {
        Arc::new(RwLock::new(keys))
    }
}

impl SessionService {
    /// Starts configuring a service on `store`, signing access tokens with `keys`:
    /// a [`KeyRing`], or the verifier's [`SharedKeyRing`] (`verifier.key_ring().clone()`)
    /// so a key rotation applies to both.
    pub fn builder(
        store: impl SessionStore,
        keys: impl Into<SharedKeyRing>,
    ) -> SessionServiceBuilder {
        Self::builder_shared(Arc::new(store), keys)
    }

    /// [`builder`](Self::builder) with a store that is already shared.
    pub fn builder_shared(
        store: Arc<dyn SessionStore>,
        keys: impl Into<SharedKeyRing>,
    ) -> SessionServiceBuilder {
        SessionServiceBuilder {
            store,
            keys: keys.into(),
            clock: Arc::new(SystemClock),
            policy: Policy::default(),
            issuer: "keybound".into(),
            risk: None,
            audit: Vec::new(),
            secret: None,
            cache: Some((100_000, Duration::from_secs(30))),
            max_sessions_per_user: Some(SessionServiceBuilder::DEFAULT_MAX_SESSIONS_PER_USER),
            replay_cleanup: None,
        }
    }
}
