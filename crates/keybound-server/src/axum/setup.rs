//! One call from [`Settings`] to a running [`Keybound`]: store, keys, verifier with the
//! session check wired in, nonces, replay store, sweeper and (with Redis) the
//! revocation listener.

use std::sync::Arc;

use super::Keybound;
use crate::lifecycle::{SessionServiceBuilder, SweeperHandle};
use crate::settings::{Settings, SettingsError, StoreSpec};
use crate::store::{MemoryStore, SessionStore, StoreError};
use crate::{
    Clock, LifecycleError, MemoryReplayStore, Nonces, ReplayStore, SessionService, SystemClock,
    Verifier, VerifierConfigError,
};

/// Why a keybound service could not be set up.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The settings are unusable.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The session store could not be opened.
    #[error("session store: {0}")]
    Store(#[from] StoreError),
    /// The lifecycle configuration was refused.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// The verifier configuration was refused.
    #[error(transparent)]
    Verifier(#[from] VerifierConfigError),
    /// The settings ask for a store this build does not include.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// A configured keybound service and its background tasks: the sweeper (stopped when
/// dropped or through [`SweeperHandle`]) and, with the Redis store, the listener that
/// applies other nodes' revocations to this node's cache. Keep it alive as long as
/// the service runs.
#[derive(Debug)]
pub struct Running {
    /// The state for your router.
    pub keybound: Keybound,
    /// The periodic cleanup task.
    pub sweeper: SweeperHandle,
    /// The Redis revocation listener (with `KEYBOUND_STORE=redis://…`). Dropping it
    /// leaves the session cache suspended: correct, one Redis read per request.
    #[cfg(feature = "redis")]
    pub invalidations: Option<crate::store::redis::InvalidationListener>,
}

/// Builder returned by [`Keybound::setup`].
pub struct Setup {
    settings: Settings,
    clock: Arc<dyn Clock>,
    configure: Vec<Box<dyn FnOnce(SessionServiceBuilder) -> SessionServiceBuilder + Send>>,
}

impl Keybound {
    /// Starts setting up a complete service from `settings`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use keybound_server::axum::Keybound;
    /// use keybound_server::settings::Settings;
    ///
    /// let running = Keybound::setup(Settings::from_env()?).build().await?;
    /// let kb = running.keybound;
    /// # Ok(()) }
    /// ```
    pub fn setup(settings: Settings) -> Setup {
        Setup {
            settings,
            clock: Arc::new(SystemClock),
            configure: Vec::new(),
        }
    }
}

impl Setup {
    /// Reads time from `clock` (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Further configures the session service (audit sinks, risk policy, …).
    pub fn configure_service(
        mut self,
        f: impl FnOnce(SessionServiceBuilder) -> SessionServiceBuilder + Send + 'static,
    ) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// Opens the store, loads or creates the secrets, builds the service and the
    /// verifier, and starts the sweeper. Needs a tokio runtime.
    pub async fn build(self) -> Result<Running, SetupError> {
        let settings = self.settings;
        let capacity = settings.replay_capacity;
        let replay_memory = || -> Arc<dyn ReplayStore> {
            Arc::new(MemoryReplayStore::with_capacity(
                self.clock.clone(),
                capacity,
            ))
        };
        #[cfg(feature = "redis")]
        let mut redis_store = None;
        let (store, replay): (Arc<dyn SessionStore>, Arc<dyn ReplayStore>) = match &settings.store {
            StoreSpec::Memory => (Arc::new(MemoryStore::new()), replay_memory()),
            #[cfg(feature = "sqlite")]
            StoreSpec::Sqlite(path) => {
                // The file is created on first use, and its directory with it.
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|err| SettingsError::Invalid {
                        name: "KEYBOUND_STORE",
                        reason: format!("cannot create {}: {err}", dir.display()),
                    })?;
                }
                let store = crate::store::SqliteStore::open(path).await?;
                // Replay records live in the file, so every process serving it refuses
                // a proof another one accepted.
                let replay = Arc::new(store.replay_store(self.clock.clone(), capacity)?);
                (Arc::new(store), replay)
            }
            #[cfg(not(feature = "sqlite"))]
            StoreSpec::Sqlite(_) => {
                return Err(SetupError::Unsupported(
                    "KEYBOUND_STORE=sqlite: needs keybound-server's `sqlite` feature",
                ));
            }
            #[cfg(feature = "redis")]
            StoreSpec::Redis(url) => {
                let options = crate::store::redis::RedisOptions::default()
                    .prefix(settings.redis_prefix.clone())
                    .timeout(settings.redis_timeout)
                    .retention(settings.policy.retention())
                    .replay_capacity(settings.replay_capacity);
                let store = crate::store::RedisStore::connect_with(url, options).await?;
                let replay = Arc::new(store.replay_store(self.clock.clone()));
                redis_store = Some(store.clone());
                (Arc::new(store), replay)
            }
            #[cfg(not(feature = "redis"))]
            StoreSpec::Redis(_) => {
                return Err(SetupError::Unsupported(
                    "KEYBOUND_STORE=redis://: needs keybound-server's `redis` feature",
                ));
            }
        };
        let (keys, secret) = settings.load_secrets()?;
        let nonce_secret = settings.nonce_secret_for(&secret);
        let keys = keys.into_shared();
        let replay_for_sweep = replay.clone();
        let mut builder = SessionService::builder_shared(store, keys.clone())
            .issuer(settings.public_origin.clone())
            .shared_clock(self.clock.clone())
            .policy(settings.policy.clone())
            .max_sessions_per_user(settings.max_sessions_per_user)
            .refresh_secret(secret)
            .replay_cleanup(ReplaySweep(replay_for_sweep));
        for f in self.configure {
            builder = f(builder);
        }
        let service = builder.build()?;
        let mut verifier = Verifier::builder()
            .public_origin(settings.public_origin.clone())
            .issuer(settings.public_origin.clone())
            .key_ring(keys)
            .clock(self.clock.clone())
            .replay_store(replay)
            .session_check(Arc::new(service.clone()))
            .proof_algs(settings.proof_algs);
        if settings.nonce {
            verifier = verifier.nonces(Nonces::from_secret(
                nonce_secret.as_bytes(),
                Nonces::DEFAULT_STEP,
            ));
        }
        let verifier = verifier.build()?;
        #[cfg(feature = "redis")]
        let invalidations = match &redis_store {
            Some(store) => {
                let listener = store.spawn_invalidation_listener(&service)?;
                // Not required for correctness (the cache stays suspended until the
                // subscription is up), but a node starts at full speed this way.
                listener.wait_subscribed(settings.redis_timeout).await;
                Some(listener)
            }
            None => None,
        };
        let sweeper = service.spawn_sweeper()?;
        Ok(Running {
            keybound: Keybound::new(verifier, service),
            sweeper,
            #[cfg(feature = "redis")]
            invalidations,
        })
    }
}

/// Runs the replay store's sweep at the end of every session sweep.
struct ReplaySweep(Arc<dyn ReplayStore>);

impl crate::lifecycle::SweepHook for ReplaySweep {
    fn run(&self, _now_ms: i64) -> crate::BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(err) = self.0.sweep().await {
                tracing::warn!(code = err.code(), "replay store sweep failed: {err}");
            }
        })
    }
}
