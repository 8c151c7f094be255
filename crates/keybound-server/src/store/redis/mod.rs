//! The Redis store: sessions, replay entries and revocation notices shared by every
//! node of a service (feature `redis`).
//!
//! * [`RedisStore`]: the [`SessionStore`]. Every operation that changes a session is
//!   one Lua script (atomic in Redis), run by `EVALSHA` and reloaded by itself after a
//!   Redis restart.
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
//! | `{prefix}active` | sorted set | active session ids by deadline (for expiry) |
//! | `{prefix}ended` | sorted set | terminal session ids by end time (for purge) |
//! | `{prefix}r:{replay key}` | string | one proof id, until its `iat` window closes |
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

mod listener;
mod replay;

use std::sync::Arc;
use std::time::Duration;

use keybound_proto::b64;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, IntoConnectionInfo, ProtocolVersion, RedisError, Script, Value};

pub use listener::{InvalidationListener, METRIC_INVALIDATIONS, METRIC_SUBSCRIBED};
pub use replay::RedisReplayStore;

use super::{
    BindRequest, EndOutcome, EndRequest, EndState, EndUserRequest, ReplaceTokensRequest,
    RotateOutcome, RotateRequest, SessionBinding, SessionRecord, SessionStore, StoreError,
    SweepAction, SweepBatch, SweepRequest, SweptSession, TouchRequest, UpdateOutcome,
};
use crate::BoxFuture;
use crate::lifecycle::{Jkt, Reason, SessionId, SessionService, SessionState, TokenHash};

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

/// Settings of a [`RedisStore`].
///
/// | setting | default |
/// |---|---|
/// | key prefix | `keybound:` |
/// | timeout of every call | 2 s |
/// | timeout of the first connection | 10 s |
/// | retention of ended sessions (use the policy's) | 7 days |
/// | TTL margin beyond the retention | 1 h |
/// | subscription liveness check | every 1 s |
///
/// ```
/// use std::time::Duration;
/// use keybound_server::store::redis::RedisOptions;
/// let options = RedisOptions::default()
///     .prefix("shop:sessions:")
///     .timeout(Duration::from_millis(500));
/// assert_eq!(options.key_prefix(), "shop:sessions:");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    retention: Duration,
    ttl_margin: Duration,
    liveness_interval: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "keybound:".into(),
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(10),
            retention: Duration::from_secs(7 * 24 * 3600),
            ttl_margin: Duration::from_secs(3600),
            liveness_interval: Duration::from_secs(1),
        }
    }
}

impl RedisOptions {
    /// The prefix of every key and of the channel, so several services (or tests)
    /// can share one Redis. Default `keybound:`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long any one Redis call may take before it fails with
    /// [`StoreError::Unavailable`] (default 2 s). Requests waiting on Redis fail
    /// closed after this long.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long [`RedisStore::connect_with`] waits for Redis (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long ended sessions are kept: give the policy's retention
    /// ([`Policy::retention`](crate::lifecycle::Policy::retention)); default 7 days.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How long past the retention Redis keeps a session before its TTL drops it
    /// (default 1 h): time for the sweeper to purge it first and emit its audit event.
    pub fn ttl_margin(mut self, margin: Duration) -> Self {
        self.ttl_margin = margin;
        self
    }

    /// How often the invalidation listener checks that its subscription is alive
    /// (default 1 s). A subscription that does not answer within
    /// [`timeout`](Self::timeout) counts as lost: the node stops trusting its cache
    /// until it has subscribed again.
    pub fn liveness_interval(mut self, interval: Duration) -> Self {
        self.liveness_interval = interval;
        self
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The timeout of every call.
    pub fn call_timeout(&self) -> Duration {
        self.timeout
    }

    /// The longest a node may trust its session cache after its subscription broke
    /// without Redis closing the connection: one liveness interval plus one timeout.
    /// (A closed connection is noticed at once.) The session cache's own TTL bounds
    /// it too.
    pub fn staleness_bound(&self) -> Duration {
        self.liveness_interval + self.timeout
    }

    /// The channel revocations are published on: `{prefix}events`.
    pub fn channel(&self) -> String {
        format!("{}events", self.prefix)
    }

    fn validate(&self) -> Result<(), StoreError> {
        let invalid = |reason: &str| {
            Err(StoreError::Backend {
                reason: format!("invalid Redis options: {reason}"),
            })
        };
        if self.prefix.chars().any(char::is_control) {
            return invalid("the key prefix contains control characters");
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return invalid("timeouts must be positive");
        }
        if self.retention.as_secs() == 0 || self.liveness_interval.is_zero() {
            return invalid("the retention and the liveness interval must be positive");
        }
        Ok(())
    }

    /// Seconds a session is kept after its end (retention + margin).
    fn keep_secs(&self) -> u64 {
        self.retention
            .as_secs()
            .saturating_add(self.ttl_margin.as_secs())
    }
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

/// The Redis [`SessionStore`], for a service running on several nodes.
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
        service: &SessionService,
    ) -> Result<InvalidationListener, StoreError> {
        InvalidationListener::spawn(
            self.inner.subscriber.clone(),
            self.inner.options.clone(),
            service.clone(),
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

// ---- encoding -------------------------------------------------------------------

fn state_name(state: SessionState) -> &'static str {
    state.as_str()
}

fn parse_state(text: &str) -> Option<SessionState> {
    SessionState::parse(text)
}

/// The record as the field/value pairs of its hash (absent options are left out).
fn encode_record(record: &SessionRecord) -> Vec<(&'static str, Vec<u8>)> {
    let mut fields: Vec<(&'static str, Vec<u8>)> = vec![
        ("user", record.user_id.clone().into_bytes()),
        ("jkt", record.jkt.to_string().into_bytes()),
        ("created", record.created_at.to_string().into_bytes()),
        ("seen", record.last_seen_at.to_string().into_bytes()),
        ("idle", record.idle_expires_at.to_string().into_bytes()),
        ("abs", record.absolute_expires_at.to_string().into_bytes()),
        ("gen", record.generation.to_string().into_bytes()),
        (
            "cur",
            b64::encode(record.current_hash.as_bytes()).into_bytes(),
        ),
        ("state", state_name(record.state).as_bytes().to_vec()),
    ];
    if let Some(label) = &record.device_label {
        fields.push(("label", label.clone().into_bytes()));
    }
    if let Some(ua) = &record.user_agent_hash {
        fields.push(("ua", b64::encode(ua).into_bytes()));
    }
    if let Some(prev) = &record.previous_hash {
        fields.push(("prev", b64::encode(prev.as_bytes()).into_bytes()));
    }
    if let Some(grace) = record.grace_until {
        fields.push(("grace", grace.to_string().into_bytes()));
    }
    if let Some(reason) = &record.reason {
        fields.push(("reason", reason.as_str().as_bytes().to_vec()));
    }
    if let Some(ended) = record.ended_at {
        fields.push(("ended", ended.to_string().into_bytes()));
    }
    if record.binding != SessionBinding::Dpop {
        fields.push(("bind", record.binding.to_stored().into_bytes()));
    }
    fields
}

/// The fields of a stored record, by name.
#[derive(Default)]
struct Fields {
    id: Option<String>,
    user: Option<String>,
    jkt: Option<String>,
    label: Option<String>,
    ua: Option<String>,
    created: Option<String>,
    seen: Option<String>,
    idle: Option<String>,
    abs: Option<String>,
    generation: Option<String>,
    cur: Option<String>,
    prev: Option<String>,
    grace: Option<String>,
    state: Option<String>,
    reason: Option<String>,
    ended: Option<String>,
    bind: Option<String>,
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn array(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

impl Fields {
    fn from_pairs(pairs: &[Value]) -> Result<Self, StoreError> {
        if pairs.len() % 2 != 0 {
            return Err(corrupt("field list"));
        }
        let mut f = Self::default();
        for pair in pairs.chunks_exact(2) {
            let name = text(&pair[0]).ok_or_else(|| corrupt("field name"))?;
            let value = text(&pair[1]).ok_or_else(|| corrupt(&name))?;
            let slot = match name.as_str() {
                "id" => &mut f.id,
                "user" => &mut f.user,
                "jkt" => &mut f.jkt,
                "label" => &mut f.label,
                "ua" => &mut f.ua,
                "created" => &mut f.created,
                "seen" => &mut f.seen,
                "idle" => &mut f.idle,
                "abs" => &mut f.abs,
                "gen" => &mut f.generation,
                "cur" => &mut f.cur,
                "prev" => &mut f.prev,
                "grace" => &mut f.grace,
                "state" => &mut f.state,
                "reason" => &mut f.reason,
                "ended" => &mut f.ended,
                "bind" => &mut f.bind,
                // Fields a newer keybound may add are ignored.
                _ => continue,
            };
            *slot = Some(value);
        }
        Ok(f)
    }

    fn into_record(self, id: Option<SessionId>) -> Result<SessionRecord, StoreError> {
        fn required(value: Option<String>, what: &str) -> Result<String, StoreError> {
            value.ok_or_else(|| corrupt(what))
        }
        fn int(value: Option<String>, what: &str) -> Result<i64, StoreError> {
            required(value, what)?.parse().map_err(|_| corrupt(what))
        }
        fn opt_int(value: Option<String>, what: &str) -> Result<Option<i64>, StoreError> {
            value
                .map(|v| v.parse().map_err(|_| corrupt(what)))
                .transpose()
        }
        fn hash(value: &str, what: &str) -> Result<TokenHash, StoreError> {
            b64::decode_array::<32>(value, "hash")
                .map(TokenHash::from_bytes)
                .map_err(|_| corrupt(what))
        }
        let id = match (id, self.id) {
            (Some(id), _) => id,
            (None, Some(text)) => SessionId::parse(&text).ok_or_else(|| corrupt("id"))?,
            (None, None) => return Err(corrupt("id")),
        };
        let state = parse_state(&required(self.state, "state")?).ok_or_else(|| corrupt("state"))?;
        let reason = self
            .reason
            .map(|r| Reason::new(r).ok_or_else(|| corrupt("reason")))
            .transpose()?;
        let user_agent_hash = self
            .ua
            .map(|ua| b64::decode_array::<8>(&ua, "ua").map_err(|_| corrupt("user agent hash")))
            .transpose()?;
        Ok(SessionRecord {
            id,
            user_id: required(self.user, "user id")?,
            jkt: Jkt::parse(&required(self.jkt, "key thumbprint")?)
                .ok_or_else(|| corrupt("key thumbprint"))?,
            device_label: self.label,
            user_agent_hash,
            created_at: int(self.created, "creation time")?,
            last_seen_at: int(self.seen, "last-seen time")?,
            idle_expires_at: int(self.idle, "idle deadline")?,
            absolute_expires_at: int(self.abs, "absolute deadline")?,
            generation: required(self.generation, "generation")?
                .parse()
                .map_err(|_| corrupt("generation"))?,
            current_hash: hash(&required(self.cur, "current hash")?, "current hash")?,
            previous_hash: self.prev.map(|p| hash(&p, "previous hash")).transpose()?,
            grace_until: opt_int(self.grace, "grace period")?,
            state,
            reason,
            ended_at: opt_int(self.ended, "end time")?,
            binding: match self.bind {
                None => SessionBinding::Dpop,
                Some(text) => {
                    SessionBinding::from_stored(&text).ok_or_else(|| corrupt("binding"))?
                }
            },
        })
    }
}

/// A record the scripts returned (field/value pairs, the id first).
fn record(value: Value) -> Result<SessionRecord, StoreError> {
    let pairs = array(value).ok_or_else(|| corrupt("record"))?;
    Fields::from_pairs(&pairs)?.into_record(None)
}

/// A script's reply: its kind, then the rest.
fn reply(value: Value, script: &str) -> Result<(String, std::vec::IntoIter<Value>), StoreError> {
    let mut items = array(value).ok_or_else(|| unexpected(script))?.into_iter();
    let kind = items
        .next()
        .as_ref()
        .and_then(text)
        .ok_or_else(|| unexpected(script))?;
    Ok((kind, items))
}

fn next_record(
    items: &mut std::vec::IntoIter<Value>,
    script: &str,
) -> Result<SessionRecord, StoreError> {
    record(items.next().ok_or_else(|| unexpected(script))?)
}

fn newly_expired(items: &mut std::vec::IntoIter<Value>, script: &str) -> Result<bool, StoreError> {
    match items.next() {
        Some(Value::Int(n)) => Ok(n == 1),
        _ => Err(unexpected(script)),
    }
}

fn end_state_name(state: EndState) -> &'static str {
    SessionState::from(state).as_str()
}

fn update_outcome(value: Value) -> Result<UpdateOutcome, StoreError> {
    const SCRIPT: &str = "update";
    let (kind, mut items) = reply(value, SCRIPT)?;
    match kind.as_str() {
        "not_found" => Ok(UpdateOutcome::NotFound),
        "key_mismatch" => Ok(UpdateOutcome::KeyMismatch),
        "updated" => Ok(UpdateOutcome::Updated(next_record(&mut items, SCRIPT)?)),
        "not_active" => {
            let newly_expired = newly_expired(&mut items, SCRIPT)?;
            Ok(UpdateOutcome::NotActive {
                record: next_record(&mut items, SCRIPT)?,
                newly_expired,
            })
        }
        _ => Err(unexpected(SCRIPT)),
    }
}

impl SessionStore for RedisStore {
    fn create(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let id = record.id.to_string();
            let fields = encode_record(&record);
            let mut args: Vec<&[u8]> = vec![id.as_bytes()];
            for (name, value) in &fields {
                args.push(name.as_bytes());
                args.push(value);
            }
            match self.invoke(&self.inner.scripts.create, &args).await? {
                Value::Int(1) => Ok(()),
                Value::Int(0) => Err(StoreError::Duplicate),
                _ => Err(unexpected("create")),
            }
        })
    }

    fn load(&self, id: SessionId) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(async move {
            let key = self.key("s:", &id.to_string());
            let mut conn = self.conn();
            let value: Value = self
                .call(redis::cmd("HGETALL").arg(&key).query_async(&mut conn))
                .await?;
            let pairs: Vec<Value> = match value {
                Value::Map(map) => map.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                other => array(other).ok_or_else(|| corrupt("record"))?,
            };
            if pairs.is_empty() {
                return Ok(None);
            }
            Fields::from_pairs(&pairs)?.into_record(Some(id)).map(Some)
        })
    }

    fn rotate(&self, request: RotateRequest) -> BoxFuture<'_, Result<RotateOutcome, StoreError>> {
        Box::pin(async move {
            const SCRIPT: &str = "rotate";
            let id = request.id.to_string();
            let presented = b64::encode(request.presented.as_bytes());
            let generation = request.presented_generation.to_string();
            let generation_plus_one = request
                .presented_generation
                .checked_add(1)
                .map(|g| g.to_string())
                .unwrap_or_default();
            let jkt = request.jkt.to_string();
            let next = b64::encode(request.next.as_bytes());
            let now = request.now.to_string();
            let grace = request.grace_until.to_string();
            let idle = request.idle_expires_at.to_string();
            let cap = request
                .absolute_cap
                .map(|c| c.to_string())
                .unwrap_or_default();
            let value = self
                .invoke(
                    &self.inner.scripts.rotate,
                    &[
                        id.as_bytes(),
                        presented.as_bytes(),
                        generation.as_bytes(),
                        generation_plus_one.as_bytes(),
                        jkt.as_bytes(),
                        next.as_bytes(),
                        now.as_bytes(),
                        grace.as_bytes(),
                        idle.as_bytes(),
                        cap.as_bytes(),
                    ],
                )
                .await?;
            let (kind, mut items) = reply(value, SCRIPT)?;
            match kind.as_str() {
                "unknown" => Ok(RotateOutcome::Unknown),
                "key_mismatch" => Ok(RotateOutcome::KeyMismatch),
                "rotated" => Ok(RotateOutcome::Rotated(next_record(&mut items, SCRIPT)?)),
                "grace_replay" => Ok(RotateOutcome::GraceReplay(next_record(&mut items, SCRIPT)?)),
                "reuse" => Ok(RotateOutcome::ReuseDetected(next_record(
                    &mut items, SCRIPT,
                )?)),
                "not_active" => {
                    let newly_expired = newly_expired(&mut items, SCRIPT)?;
                    Ok(RotateOutcome::NotActive {
                        record: next_record(&mut items, SCRIPT)?,
                        newly_expired,
                    })
                }
                _ => Err(unexpected(SCRIPT)),
            }
        })
    }

    fn replace_tokens(
        &self,
        request: ReplaceTokensRequest,
    ) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        Box::pin(async move {
            let id = request.id.to_string();
            let jkt = request.jkt.to_string();
            let next = b64::encode(request.next.as_bytes());
            let now = request.now.to_string();
            let idle = request.idle_expires_at.to_string();
            let value = self
                .invoke(
                    &self.inner.scripts.update,
                    &[
                        id.as_bytes(),
                        jkt.as_bytes(),
                        next.as_bytes(),
                        now.as_bytes(),
                        idle.as_bytes(),
                        b"",
                        b"",
                    ],
                )
                .await?;
            update_outcome(value)
        })
    }

    fn touch(&self, request: TouchRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        Box::pin(async move {
            let id = request.id.to_string();
            let now = request.now.to_string();
            let idle = request.idle_expires_at.to_string();
            let value = self
                .invoke(
                    &self.inner.scripts.update,
                    &[
                        id.as_bytes(),
                        b"",
                        b"",
                        now.as_bytes(),
                        idle.as_bytes(),
                        b"",
                        b"",
                    ],
                )
                .await?;
            update_outcome(value)
        })
    }

    fn bind_dbsc(&self, request: BindRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        Box::pin(async move {
            let id = request.id.to_string();
            let jkt = request.jkt.to_string();
            let now = request.now.to_string();
            let idle = request.idle_expires_at.to_string();
            let binding = SessionBinding::Dbsc { key: request.key }.to_stored();
            let value = self
                .invoke(
                    &self.inner.scripts.update,
                    &[
                        id.as_bytes(),
                        b"",
                        b"",
                        now.as_bytes(),
                        idle.as_bytes(),
                        binding.as_bytes(),
                        jkt.as_bytes(),
                    ],
                )
                .await?;
            update_outcome(value)
        })
    }

    fn end(&self, request: EndRequest) -> BoxFuture<'_, Result<EndOutcome, StoreError>> {
        Box::pin(async move {
            const SCRIPT: &str = "end";
            let id = request.id.to_string();
            let (check_owner, owner): (&[u8], &[u8]) = match &request.owner {
                Some(owner) => (b"1", owner.as_bytes()),
                None => (b"0", b""),
            };
            let now = request.now.to_string();
            let value = self
                .invoke(
                    &self.inner.scripts.end,
                    &[
                        id.as_bytes(),
                        check_owner,
                        owner,
                        end_state_name(request.state).as_bytes(),
                        request.reason.as_str().as_bytes(),
                        now.as_bytes(),
                    ],
                )
                .await?;
            let (kind, mut items) = reply(value, SCRIPT)?;
            match kind.as_str() {
                "not_found" => Ok(EndOutcome::NotFound),
                "not_owner" => Ok(EndOutcome::NotOwner),
                "already_ended" => Ok(EndOutcome::AlreadyEnded(next_record(&mut items, SCRIPT)?)),
                "expired" => Ok(EndOutcome::Expired(next_record(&mut items, SCRIPT)?)),
                "ended" => Ok(EndOutcome::Ended(next_record(&mut items, SCRIPT)?)),
                _ => Err(unexpected(SCRIPT)),
            }
        })
    }

    fn end_user_sessions(
        &self,
        request: EndUserRequest,
    ) -> BoxFuture<'_, Result<Vec<EndOutcome>, StoreError>> {
        Box::pin(async move {
            const SCRIPT: &str = "end_user";
            let except = request.except.map(|e| e.to_string()).unwrap_or_default();
            let now = request.now.to_string();
            let value = self
                .invoke(
                    &self.inner.scripts.end_user,
                    &[
                        request.user_id.as_bytes(),
                        except.as_bytes(),
                        end_state_name(request.state).as_bytes(),
                        request.reason.as_str().as_bytes(),
                        now.as_bytes(),
                    ],
                )
                .await?;
            let items = array(value).ok_or_else(|| unexpected(SCRIPT))?;
            let mut outcomes = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let Some(kind) = items.next() {
                let record = next_record(&mut items, SCRIPT)?;
                outcomes.push(match text(&kind).as_deref() {
                    Some("ended") => EndOutcome::Ended(record),
                    Some("expired") => EndOutcome::Expired(record),
                    _ => return Err(unexpected(SCRIPT)),
                });
            }
            Ok(outcomes)
        })
    }

    fn list_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
        Box::pin(async move {
            let value = self
                .invoke(&self.inner.scripts.list_user, &[user_id.as_bytes()])
                .await?;
            array(value)
                .ok_or_else(|| unexpected("list_user"))?
                .into_iter()
                .map(record)
                .collect()
        })
    }

    fn sweep(&self, request: SweepRequest) -> BoxFuture<'_, Result<SweepBatch, StoreError>> {
        Box::pin(async move {
            const SCRIPT: &str = "sweep";
            let now = request.now.to_string();
            let purge_before = request.purge_ended_before.to_string();
            let limit = request.limit.min(MAX_SWEEP_SCRIPT_BATCH);
            let limit_text = limit.to_string();
            let value = self
                .invoke(
                    &self.inner.scripts.sweep,
                    &[
                        now.as_bytes(),
                        purge_before.as_bytes(),
                        limit_text.as_bytes(),
                    ],
                )
                .await?;
            let mut items = array(value).ok_or_else(|| unexpected(SCRIPT))?.into_iter();
            let done = match items.next() {
                Some(Value::Int(flag)) => flag == 1,
                _ => return Err(unexpected(SCRIPT)),
            };
            let mut swept = Vec::new();
            while let Some(kind) = items.next() {
                let record = next_record(&mut items, SCRIPT)?;
                let (action, reason) = match text(&kind).as_deref() {
                    Some("expired") => (
                        SweepAction::Expired,
                        record.reason.clone().ok_or_else(|| corrupt("reason"))?,
                    ),
                    Some("purged") => (SweepAction::Purged, Reason::RETENTION),
                    _ => return Err(unexpected(SCRIPT)),
                };
                swept.push(SweptSession {
                    action,
                    id: record.id,
                    user_id: record.user_id.into(),
                    jkt: record.jkt,
                    generation: record.generation,
                    reason,
                });
            }
            // Processed entries leave the indexes, so every batch starts from the
            // front: no cursor is needed.
            Ok(SweepBatch {
                swept,
                cursor: 0,
                done,
            })
        })
    }

    fn count_active(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let key = self.key("active", "");
            let mut conn = self.conn();
            self.call(redis::cmd("ZCARD").arg(&key).query_async(&mut conn))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_their_fields() {
        let mut original = SessionRecord {
            id: SessionId::from_bytes([9; 16]),
            user_id: "alice".into(),
            jkt: Jkt::from_bytes([1; 32]),
            device_label: Some("Firefox on Linux".into()),
            user_agent_hash: Some([3; 8]),
            created_at: 1_700_000_000,
            last_seen_at: 1_700_000_010,
            idle_expires_at: 1_700_001_800,
            absolute_expires_at: 1_700_043_200,
            generation: 4,
            current_hash: TokenHash::from_bytes([5; 32]),
            previous_hash: Some(TokenHash::from_bytes([6; 32])),
            grace_until: Some(1_700_000_040),
            state: SessionState::Active,
            reason: None,
            ended_at: None,
            binding: SessionBinding::Dpop,
        };
        let round_trip = |r: &SessionRecord| {
            let mut pairs = vec![
                Value::BulkString(b"id".to_vec()),
                Value::BulkString(r.id.to_string().into_bytes()),
            ];
            for (name, value) in encode_record(r) {
                pairs.push(Value::BulkString(name.as_bytes().to_vec()));
                pairs.push(Value::BulkString(value));
            }
            record(Value::Array(pairs)).unwrap()
        };
        assert_eq!(round_trip(&original), original);
        original.finish(SessionState::Revoked, Reason::ADMIN_REVOKED, 1_700_000_020);
        original.device_label = None;
        original.user_agent_hash = None;
        assert_eq!(round_trip(&original), original);
    }

    #[test]
    fn damaged_records_are_corrupt_not_panics() {
        let pairs = |items: &[&str]| {
            Value::Array(
                items
                    .iter()
                    .map(|s| Value::BulkString(s.as_bytes().to_vec()))
                    .collect(),
            )
        };
        for bad in [
            pairs(&["id"]),
            pairs(&["id", "not-an-id"]),
            pairs(&["id", "CQkJCQkJCQkJCQkJCQkJCQ", "state", "active"]),
            Value::Int(3),
        ] {
            assert_eq!(record(bad).unwrap_err().code(), "store_corrupt");
        }
    }

    #[test]
    fn options_are_checked() {
        assert!(RedisOptions::default().validate().is_ok());
        assert!(RedisOptions::default().prefix("a\nb").validate().is_err());
        assert!(
            RedisOptions::default()
                .timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
        let o = RedisOptions::default();
        assert_eq!(o.channel(), "keybound:events");
        assert_eq!(o.staleness_bound(), Duration::from_secs(3));
        assert_eq!(o.keep_secs(), 7 * 24 * 3600 + 3600);
    }

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
