//! The Redis store: sessions, replay entries and revocation notices shared by every
//! node of a service (feature `redis`).
//!
//! * [`RedisStore`]: the [`SessionStore`](super::SessionStore). Every operation that
//!   changes a session is one Lua script (atomic in Redis; `ops.rs`), run by `EVALSHA`
//!   and reloaded by itself after a Redis restart; `encoding.rs` is how a session is
//!   laid out in its hash.
//! * [`RedisReplayStore`]: the verifier's [`ReplayStore`](crate::ReplayStore), one
//!   `SET key 1 NX PX ttl` per proof.
//! * [`InvalidationListener`]: every revocation, logout and refresh-token reuse is
//!   published by the script that makes it, in the same atomic step; each node's
//!   listener drops the session from its service's cache at once.
//!
//! Keys (all under the configured prefix, default `keybound:`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}s:{session id}` | hash | one session (token hashes, never tokens) |
//! | `{prefix}u:{user id}` | set | the ids of a user's sessions |
//! | `{prefix}f:{user id}` | string | the user's fence, moved by ending all their sessions, checked by every login (no TTL) |
//! | `{prefix}active` | sorted set | active session ids by deadline (for expiry) |
//! | `{prefix}ended` | sorted set | terminal session ids by end time (for purge) |
//! | `{prefix}replay` | sorted set | proof ids (scored by expiry, ms), at most the replay capacity; each until its `iat` window closes |
//! | `{prefix}schema` | string | the layout version, `1` |
//! | `{prefix}events` | channel | notices `{"v":1,"event":"revoked","session_id":…}` (event `revoked`, `closed` or `changed`) |
//!
//! Every session key has a TTL: while active, its deadline plus the retention plus a
//! margin; once ended, its end plus the same. The sweeper expires and purges sessions
//! (and emits their audit events) well before that, so the TTLs only matter when no
//! sweeper runs; a session Redis dropped by TTL is simply unknown, which is refused.
//!
//! Failures: every call has a timeout ([`RedisOptions::timeout`], 2 s by default);
//! a Redis that is down, slow or loading answers [`StoreError::Unavailable`], which
//! the verifier and the endpoints turn into `503` (`session_store_unavailable`,
//! `replay_store_unavailable`, `store_unavailable`). Nothing fails open. The
//! connection manager reconnects by itself when Redis comes back.
//!
//! Deployment notes (persistence, TLS, eviction policy) are in `docs/redis.md`.

mod encoding;
mod listener;
mod ops;
mod options;
mod replay;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, IntoConnectionInfo, ProtocolVersion, RedisError, Script, Value};

pub use listener::{InvalidationListener, METRIC_INVALIDATIONS, METRIC_SUBSCRIBED};
pub use options::RedisOptions;
pub use replay::RedisReplayStore;

use super::{SessionCacheControl, StoreError};

/// The key layout this code reads and writes (`{prefix}schema`).
const SCHEMA_VERSION: &str = "1";

/// Most sessions one sweep script handles, whatever the batch size asked for: Redis
/// runs a script alone, so a long one would stall every other node's requests.
const MAX_SWEEP_SCRIPT_BATCH: usize = 1_000;

macro_rules! script {
    ($file:literal) => {
        concat!(include_str!("prelude.lua"), include_str!($file))
    };
}

struct Scripts {
    create: Script,
    rotate: Script,
    update: Script,
    end: Script,
    end_user: Script,
    list_user: Script,
    sweep: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            create: Script::new(script!("create.lua")),
            rotate: Script::new(script!("rotate.lua")),
            update: Script::new(script!("update.lua")),
            end: Script::new(script!("end.lua")),
            end_user: Script::new(script!("end_user.lua")),
            list_user: Script::new(script!("list_user.lua")),
            sweep: Script::new(script!("sweep.lua")),
        }
    }
}

struct Inner {
    /// For the invalidation listener's own connections.
    subscriber: redis::Client,
    conn: ConnectionManager,
    options: RedisOptions,
    keep: String,
    scripts: Scripts,
}

/// The Redis [`SessionStore`](super::SessionStore), for a service running on several
/// nodes.
///
/// Cheap to clone (clones share one connection). Sessions, user indexes and replay
/// entries live in Redis under a key prefix, with TTLs that follow the policy; each
/// change is one Lua script, so it is atomic however many nodes race; revocations
/// are published so every node's cache drops the session at once (start the
/// listener with [`spawn_invalidation_listener`](Self::spawn_invalidation_listener)).
/// See the [module documentation](self) for the layout and failure behaviour.
///
/// ```no_run
/// use std::sync::Arc;
/// use keybound_server::{KeyRing, SessionService, SystemClock};
/// use keybound_server::store::redis::{RedisOptions, RedisStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect_with("redis://127.0.0.1:6379/", RedisOptions::default()).await?;
/// let replay = store.replay_store(Arc::new(SystemClock)); // for the verifier
/// let service = SessionService::builder(store.clone(), KeyRing::generate()?.into_shared()).build()?;
/// let listener = store.spawn_invalidation_listener(&service)?;
/// // ... serve requests; keep `listener` alive as long as `service` ...
/// # drop((replay, listener)); Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the options are shown.
        f.debug_struct("RedisStore")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// Maps a Redis failure to the store's error. Messages never contain the URL (it may
/// hold a password) or any session data.
fn map_err(error: &RedisError) -> StoreError {
    let reason = error.to_string();
    match error.kind() {
        ErrorKind::IoError
        | ErrorKind::BusyLoadingError
        | ErrorKind::TryAgain
        | ErrorKind::ClusterDown
        | ErrorKind::MasterDown
        | ErrorKind::ReadOnly
        | ErrorKind::ClusterConnectionNotFound => StoreError::Unavailable { reason },
        ErrorKind::TypeError | ErrorKind::ParseError => StoreError::Corrupt { reason },
        _ if error.code() == Some("WRONGTYPE") || reason.contains("WRONGTYPE") => {
            StoreError::Incompatible {
                reason: format!("a key under the prefix is not keybound's: {reason}"),
            }
        }
        _ => StoreError::Backend { reason },
    }
}

fn timed_out(after: Duration) -> StoreError {
    StoreError::Unavailable {
        reason: format!("Redis did not answer within {} ms", after.as_millis()),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt {
        reason: format!("a stored session has an invalid {what}"),
    }
}

fn unexpected(script: &str) -> StoreError {
    StoreError::Corrupt {
        reason: format!("unexpected reply from the {script} script"),
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://…` with the `redis-tls` feature) with default options.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, RedisOptions::default()).await
    }

    /// Connects with `options`, and checks the key layout under the prefix: a prefix
    /// written by an incompatible keybound is refused with
    /// [`StoreError::Incompatible`].
    pub async fn connect_with(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        options.validate()?;
        let mut info = url.into_connection_info().map_err(|e| {
            let reason = if url.starts_with("rediss://") && !cfg!(feature = "redis-tls") {
                "rediss:// URLs need keybound-server's `redis-tls` feature".to_owned()
            } else {
                format!("invalid Redis URL: {e}")
            };
            StoreError::Backend { reason }
        })?;
        // The listener's subscription speaks RESP2 (a connection of its own); the
        // commands use RESP3, whose connection notices a closed socket at once and
        // reconnects before the next call needs it.
        info.redis.protocol = ProtocolVersion::RESP2;
        let subscriber = redis::Client::open(info.clone()).map_err(|e| map_err(&e))?;
        info.redis.protocol = ProtocolVersion::RESP3;
        let client = redis::Client::open(info).map_err(|e| map_err(&e))?;
        // The connection's own response timeout fires a little before ours, so a
        // dead connection is noticed (and replaced) by the manager.
        let response_timeout = options.timeout.mul_f64(0.75).max(Duration::from_millis(1));
        // Reconnection never gives up: after the first retry (1–2 s) it tries every
        // 250–500 ms until Redis answers, while calls fail fast on their own timeout.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(options.timeout)
            .set_response_timeout(response_timeout)
            .set_max_delay(250)
            .set_number_of_retries(usize::MAX);
        let conn = tokio::time::timeout(
            options.connect_timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::Unavailable {
            reason: format!(
                "cannot reach Redis within {} ms",
                options.connect_timeout.as_millis()
            ),
        })?
        .map_err(|e| map_err(&e))?;
        let keep = options.keep_secs().to_string();
        let store = Self {
            inner: Arc::new(Inner {
                subscriber,
                conn,
                options,
                keep,
                scripts: Scripts::new(),
            }),
        };
        store.check_schema().await?;
        store.warn_about_eviction().await;
        Ok(store)
    }

    /// The options in force.
    pub fn options(&self) -> &RedisOptions {
        &self.inner.options
    }

    /// The replay store on the same connection and prefix, with expiries computed
    /// from `clock` (the verifier's).
    pub fn replay_store(&self, clock: Arc<dyn crate::Clock>) -> RedisReplayStore {
        RedisReplayStore::new(
            self.inner.conn.clone(),
            &self.inner.options.prefix,
            self.inner.options.timeout,
            self.inner.options.replay_capacity,
            clock,
        )
    }

    /// Starts the task that keeps `service`'s session cache in step with every other
    /// node: it subscribes to `{prefix}events` on its own connection and drops each
    /// revoked, closed or changed session from the cache as the notice arrives.
    ///
    /// While it is not subscribed (before the first subscription, and from the moment
    /// the subscription is lost until it is back), the service's cache is suspended:
    /// every session check reads Redis, so a revocation missed in the meantime cannot
    /// be served from the cache. A subscription that breaks without its connection
    /// closing is noticed by a `PING` every
    /// [`liveness_interval`](RedisOptions::liveness_interval) that must answer within
    /// the [`timeout`](RedisOptions::timeout); that sum is the staleness bound. The
    /// listener reconnects by itself (backoff up to 1 s).
    ///
    /// Dropping or stopping the listener leaves the cache suspended. Needs a tokio
    /// runtime (`store_error` otherwise).
    pub fn spawn_invalidation_listener(
        &self,
        service: &(impl SessionCacheControl + Clone),
    ) -> Result<InvalidationListener, StoreError> {
        InvalidationListener::spawn(
            self.inner.subscriber.clone(),
            self.inner.options.clone(),
            Arc::new(service.clone()),
        )
    }

    /// Runs one Redis call with the configured timeout.
    async fn call<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>> + Send,
    ) -> Result<T, StoreError> {
        let timeout = self.inner.options.timeout;
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result.map_err(|e| map_err(&e)),
            Err(_) => Err(timed_out(timeout)),
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}{kind}{rest}", self.inner.options.prefix)
    }

    async fn check_schema(&self) -> Result<(), StoreError> {
        let key = self.key("schema", "");
        let mut conn = self.conn();
        let (stored,): (Option<String>,) = self
            .call(
                redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(SCHEMA_VERSION)
                    .arg("NX")
                    .ignore()
                    .cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn),
            )
            .await?;
        match stored.as_deref() {
            Some(SCHEMA_VERSION) => Ok(()),
            Some(other) => Err(StoreError::Incompatible {
                reason: format!(
                    "the keys under {:?} have layout {other:?}, this keybound reads {SCHEMA_VERSION}",
                    self.inner.options.prefix
                ),
            }),
            None => Err(StoreError::Backend {
                reason: "Redis did not keep the schema marker".into(),
            }),
        }
    }

    /// Replay entries that Redis evicts early would let a proof be replayed, and
    /// evicted sessions vanish: keybound needs `maxmemory-policy noeviction`. Managed
    /// Redis services often refuse `CONFIG`; then nothing is said.
    async fn warn_about_eviction(&self) {
        let mut conn = self.conn();
        let policy: Result<std::collections::HashMap<String, String>, StoreError> = self
            .call(
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .query_async(&mut conn),
            )
            .await;
        if let Ok(config) = policy
            && let Some(policy) = config.get("maxmemory-policy")
            && policy != "noeviction"
        {
            tracing::warn!(
                target: "keybound::redis",
                policy = %policy,
                "Redis evicts keys under memory pressure (maxmemory-policy is not noeviction): \
                 evicted replay entries would let a proof be replayed; set noeviction"
            );
        }
    }

    async fn invoke(&self, script: &Script, args: &[&[u8]]) -> Result<Value, StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation
            .arg(self.inner.options.prefix.as_bytes())
            .arg(self.inner.keep.as_bytes());
        for arg in args {
            invocation.arg(*arg);
        }
        let mut conn = self.conn();
        self.call(invocation.invoke_async::<Value>(&mut conn)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_redis_maps_to_unavailable() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(map_err(&io).code(), "store_unavailable");
        let loading = RedisError::from((ErrorKind::BusyLoadingError, "loading"));
        assert_eq!(map_err(&loading).code(), "store_unavailable");
        assert_eq!(
            timed_out(Duration::from_secs(2)).code(),
            "store_unavailable"
        );
    }
}
