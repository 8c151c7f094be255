//! [`SessionService`]: the application's entry point to the session lifecycle.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use keybound_proto::{AccessTokenClaims, TokenResponse, b64};
use serde::Serialize;
use zeroize::Zeroizing;

use super::audit::{AuditEvent, AuditEventKind, AuditSink, TracingSink};
use super::cache::{CachedSession, SessionCache};
use super::policy::secs;
use super::risk::{
    LifetimeLimits, RequestSignals, RiskContext, RiskDecision, RiskEvent, RiskPolicy,
};
use super::sweeper::SweepHook;
use super::tokens::{RefreshToken, hash_secret, random_secret};
use super::{
    Actor, Jkt, LifecycleError, Policy, Reason, RefreshSecret, SessionId, SessionState, metrics,
};
use crate::store::{
    EndOutcome, EndRequest, EndState, EndUserRequest, ReplaceTokensRequest, RotateOutcome,
    RotateRequest, SessionBinding, SessionRecord, SessionStore, SweptSession, TouchRequest,
    UpdateOutcome,
};
use crate::{
    BoxFuture, Clock, KeyRing, ReplayStore, SessionCheck, SessionDenied, SharedKeyRing, SystemClock,
};

const MAX_USER_ID_LEN: usize = 256;
const MAX_DEVICE_LABEL_LEN: usize = 128;

/// What the login request tells about the new session.
#[non_exhaustive]
#[derive(Clone, Debug, Default)]
pub struct OpenRequest {
    /// A label for the device ("Firefox on Linux"), shown in the session list. Control
    /// characters are dropped and it is cut to 128 bytes.
    pub device_label: Option<String>,
    /// The request's signals, for the risk policy.
    pub signals: RequestSignals,
}

impl OpenRequest {
    /// A request without label or signals.
    pub fn new() -> Self {
        Self::default()
    }

    /// With a device label.
    pub fn device_label(mut self, label: impl Into<String>) -> Self {
        self.device_label = Some(label.into());
        self
    }

    /// With the request's signals.
    pub fn signals(mut self, signals: RequestSignals) -> Self {
        self.signals = signals;
        self
    }
}

/// One session as its user sees it (`GET /session/sessions`).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The session id.
    pub session_id: String,
    /// The user.
    pub user_id: String,
    /// The device label from the login request.
    pub device_label: Option<String>,
    /// When the session was opened (seconds since the epoch).
    pub created_at: i64,
    /// The last login, refresh, extend or sensitive-action rotation.
    pub last_seen_at: i64,
    /// When the session expires unless used.
    pub idle_expires_at: i64,
    /// When the session expires at the latest.
    pub expires_at: i64,
    /// The state now (a passed deadline counts as `expired`).
    pub state: SessionState,
    /// Why it ended.
    pub reason: Option<Reason>,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// Whether this is the session making the request.
    pub current: bool,
    /// How the session is bound: `dpop`, `dbsc`, or `dbsc_pending` (signed in, the
    /// browser has not registered its DBSC key yet).
    pub binding: &'static str,
}

impl SessionInfo {
    pub(super) fn new(record: &SessionRecord, now: i64, current: Option<SessionId>) -> Self {
        let (reason, ended_at) = match record.pending_expiry(now) {
            Some((at, reason)) => (Some(reason), Some(at)),
            None => (record.reason.clone(), record.ended_at),
        };
        Self {
            session_id: record.id.to_string(),
            user_id: record.user_id.clone(),
            device_label: record.device_label.clone(),
            created_at: record.created_at,
            last_seen_at: record.last_seen_at,
            idle_expires_at: record.idle_expires_at,
            expires_at: record.absolute_expires_at,
            state: record.effective_state(now),
            reason,
            ended_at,
            current: Some(record.id) == current,
            binding: record.binding.name(),
        }
    }
}

/// The result of ending a session (close or revoke). Ending is idempotent: a session
/// that had already ended is a success with `changed == false`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndResult {
    /// The session.
    pub session_id: String,
    /// Its state now.
    pub state: SessionState,
    /// Why it ended.
    pub reason: Option<Reason>,
    /// Whether this call ended it.
    pub changed: bool,
}

impl EndResult {
    fn new(record: &SessionRecord, changed: bool) -> Self {
        Self {
            session_id: record.id.to_string(),
            state: record.state,
            reason: record.reason.clone(),
            changed,
        }
    }
}

pub(super) struct Inner {
    pub(super) store: Arc<dyn SessionStore>,
    pub(super) keys: SharedKeyRing,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) policy: Policy,
    pub(super) issuer: String,
    risk: Option<Arc<dyn RiskPolicy>>,
    audit: Vec<Arc<dyn AuditSink>>,
    pub(super) secret: RefreshSecret,
    cache: Option<SessionCache>,
    pub(super) replay_cleanup: Option<Arc<dyn SweepHook>>,
}

/// The session lifecycle (DESIGN §4): opens sessions bound to a device key, rotates
/// refresh tokens with reuse detection, extends, closes and revokes sessions, lists a
/// user's sessions, expires and purges them, and emits audit events and metrics.
///
/// Cheap to clone (clones share everything). It is also the verifier's
/// [`SessionCheck`]: a session revoked, closed or expired through any clone is refused
/// on the very next request.
///
/// Every operation is idempotent where the design asks for it and reads the injected
/// [`Clock`]. See the [module documentation](crate::lifecycle) for an example.
#[derive(Clone)]
pub struct SessionService {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService")
            .field("issuer", &self.inner.issuer)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

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

/// The identity fields of an audit event.
pub(super) struct Subject<'a> {
    id: &'a SessionId,
    user_id: &'a str,
    jkt: &'a Jkt,
    generation: u64,
}

impl<'a> From<&'a SessionRecord> for Subject<'a> {
    fn from(r: &'a SessionRecord) -> Self {
        Self {
            id: &r.id,
            user_id: &r.user_id,
            jkt: &r.jkt,
            generation: r.generation,
        }
    }
}

impl<'a> From<&'a SweptSession> for Subject<'a> {
    fn from(s: &'a SweptSession) -> Self {
        Self {
            id: &s.id,
            user_id: &s.user_id,
            jkt: &s.jkt,
            generation: s.generation,
        }
    }
}

/// A session just opened.
pub(super) struct Opened {
    pub(super) record: SessionRecord,
    secret: Zeroizing<[u8; 32]>,
    pub(super) access: i64,
    pub(super) now: i64,
}

/// Effective lifetimes of one issuance, in seconds.
pub(super) struct Lifetimes {
    pub(super) access: i64,
    idle: i64,
    absolute: i64,
    absolute_limited: bool,
}

impl Lifetimes {
    pub(super) fn new(policy: &Policy, limits: Option<&LifetimeLimits>) -> Self {
        let mut l = Self {
            access: secs(policy.access_token_lifetime()),
            idle: secs(policy.idle_timeout()),
            absolute: secs(policy.absolute_lifetime()),
            absolute_limited: false,
        };
        if let Some(limits) = limits {
            let lower = |current: i64, limit: Option<Duration>| {
                limit.map_or(current, |d| current.min(secs(d).max(1)))
            };
            l.access = lower(l.access, limits.access_token_lifetime);
            l.idle = lower(l.idle, limits.idle_timeout);
            l.absolute = lower(l.absolute, limits.absolute_lifetime);
            l.absolute_limited = limits.absolute_lifetime.is_some();
        }
        l
    }
}

pub(super) fn parse_session_id(text: &str) -> Result<SessionId, LifecycleError> {
    SessionId::parse(text).ok_or(LifecycleError::SessionNotFound)
}

fn parse_jkt(text: &str) -> Result<Jkt, LifecycleError> {
    Jkt::parse(text).ok_or(LifecycleError::InvalidInput {
        field: "jkt",
        reason: "not a base64url SHA-256 key thumbprint",
    })
}

fn check_user_id(user_id: &str) -> Result<(), LifecycleError> {
    let reason = if user_id.is_empty() {
        "empty"
    } else if user_id.len() > MAX_USER_ID_LEN {
        "longer than 256 bytes"
    } else if user_id.chars().any(char::is_control) {
        "contains control characters"
    } else {
        return Ok(());
    };
    Err(LifecycleError::InvalidInput {
        field: "user_id",
        reason,
    })
}

fn clean_device_label(label: Option<&str>) -> Option<String> {
    let mut out = String::new();
    for c in label?.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_DEVICE_LABEL_LEN {
            break;
        }
        out.push(c);
    }
    let trimmed = out.trim_end();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
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
            replay_cleanup: None,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// Drops what this process caches about a session, so the next check reads the
    /// store. The service does this itself for every change it makes; stores that
    /// learn about changes made elsewhere (another node) call it.
    pub fn invalidate_cached(&self, session_id: &str) {
        if let Some(id) = SessionId::parse(session_id) {
            self.invalidate(&id);
        }
    }

    /// Drops everything this process caches about sessions.
    pub fn invalidate_all_cached(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.clear();
        }
    }

    /// Stops trusting the session cache: it is emptied and every session check reads
    /// the store until [`resume_session_cache`](Self::resume_session_cache). A
    /// cross-node store calls this while it cannot receive other nodes' change
    /// notifications (its subscription is down), so no node relies on a cache that
    /// may have missed a revocation.
    pub fn suspend_session_cache(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.set_suspended(true);
        }
    }

    /// Uses the session cache again (starting empty) after
    /// [`suspend_session_cache`](Self::suspend_session_cache).
    pub fn resume_session_cache(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.set_suspended(false);
        }
    }

    /// Whether the session cache is suspended (always `false` without a cache).
    pub fn is_session_cache_suspended(&self) -> bool {
        self.inner
            .cache
            .as_ref()
            .is_some_and(SessionCache::is_suspended)
    }

    pub(super) fn invalidate(&self, id: &SessionId) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate(id);
        }
    }

    pub(super) fn now(&self) -> i64 {
        self.inner.clock.now_secs()
    }

    pub(super) fn emit(
        &self,
        kind: AuditEventKind,
        subject: Subject<'_>,
        reason: Option<&Reason>,
        actor: &Actor,
    ) {
        if !self.inner.audit.iter().any(|sink| sink.enabled()) {
            return;
        }
        let event = AuditEvent {
            ts: self.inner.clock.now_ms(),
            event: kind,
            session_id: subject.id.to_string(),
            user_id: subject.user_id.to_owned(),
            jkt: subject.jkt.to_string(),
            reason: reason.map(|r| r.as_str().to_owned()),
            actor: actor.to_string(),
            generation: subject.generation,
        };
        for sink in &self.inner.audit {
            sink.record(&event);
        }
    }

    /// Audit, metrics and cache after a session became terminal.
    pub(super) fn ended(&self, record: &SessionRecord, actor: &Actor) {
        self.invalidate(&record.id);
        let reason = record.reason.clone().unwrap_or(Reason::RISK_POLICY);
        let kind = match record.state {
            SessionState::Expired => {
                metrics::expired(&reason);
                AuditEventKind::Expired
            }
            SessionState::Closed => {
                metrics::closed();
                AuditEventKind::Closed
            }
            SessionState::Revoked if reason == Reason::REFRESH_REUSE => {
                metrics::revoked(&reason);
                AuditEventKind::RefreshReuse
            }
            SessionState::Revoked | SessionState::Active => {
                metrics::revoked(&reason);
                AuditEventKind::Revoked
            }
        };
        self.emit(kind, record.into(), Some(&reason), actor);
    }

    pub(super) fn swept(&self, swept: &SweptSession, kind: AuditEventKind) {
        // Purged sessions ended long ago and are no longer cached.
        if kind == AuditEventKind::Expired {
            self.invalidate(&swept.id);
            metrics::expired(&swept.reason);
        }
        self.emit(kind, swept.into(), Some(&swept.reason), &Actor::System);
    }

    async fn assess(&self, context: RiskContext<'_>) -> RiskDecision {
        let Some(risk) = &self.inner.risk else {
            return RiskDecision::Allow;
        };
        let event = match context.event {
            RiskEvent::Login => "login",
            RiskEvent::Refresh => "refresh",
        };
        let decision = risk.assess(context).await;
        let label = match &decision {
            RiskDecision::Allow => "allow",
            RiskDecision::Shorten(_) => "shorten",
            RiskDecision::RequireReauthentication => "reauthenticate",
            RiskDecision::Revoke(_) => "revoke",
        };
        metrics::risk(event, label);
        decision
    }

    fn token_response(
        &self,
        record: &SessionRecord,
        secret: &[u8; 32],
        access_secs: i64,
        now: i64,
    ) -> Result<TokenResponse, LifecycleError> {
        let exp = now.saturating_add(access_secs).min(record.deadline());
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|_| LifecycleError::Randomness)?;
        let sid = record.id.to_string();
        let claims = AccessTokenClaims {
            iss: self.inner.issuer.clone(),
            sub: record.user_id.clone(),
            sid: sid.clone(),
            jti: b64::encode(jti),
            iat: now,
            exp,
            jkt: record.jkt.to_string(),
        };
        let access_token = self
            .inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .sign(&claims)
            .map_err(LifecycleError::Signing)?;
        Ok(TokenResponse {
            access_token,
            token_type: "DPoP".into(),
            expires_in: u64::try_from(exp - now).unwrap_or(0),
            refresh_token: self
                .inner
                .secret
                .issue(&record.id, record.generation, secret),
            session_id: sid,
            session_expires_at: record.absolute_expires_at,
            idle_expires_at: record.idle_expires_at,
            server_time: now,
        })
    }

    /// Opens a session for `user_id` (whom the application has just authenticated),
    /// bound to `jkt`, the thumbprint of the key that signed the login request's
    /// proof. Returns the token response of DESIGN §3.
    ///
    /// Errors: `invalid_input` (bad user id or thumbprint), `login_denied` /
    /// `reauthentication_required` (risk policy), store and signing failures.
    pub async fn open_session(
        &self,
        user_id: &str,
        jkt: &str,
        request: OpenRequest,
    ) -> Result<TokenResponse, LifecycleError> {
        let jkt = parse_jkt(jkt)?;
        let opened = self
            .open_record(user_id, jkt, SessionBinding::Dpop, request, None, None)
            .await?;
        self.token_response(&opened.record, &opened.secret, opened.access, opened.now)
    }

    /// Opens a session record bound as `binding` (checks, risk policy, store, audit,
    /// metrics). `idle_cap`: a shorter idle deadline (a DBSC session's registration
    /// window); `note`: the reason written into the `session.created` event.
    pub(super) async fn open_record(
        &self,
        user_id: &str,
        jkt: Jkt,
        binding: SessionBinding,
        request: OpenRequest,
        idle_cap: Option<i64>,
        note: Option<Reason>,
    ) -> Result<Opened, LifecycleError> {
        check_user_id(user_id)?;
        let device_label = clean_device_label(request.device_label.as_deref());
        let now = self.now();
        let decision = self
            .assess(RiskContext {
                event: RiskEvent::Login,
                user_id,
                session: None,
                device_label: device_label.as_deref(),
                signals: &request.signals,
                now,
            })
            .await;
        let limits = match decision {
            RiskDecision::Allow => None,
            RiskDecision::Shorten(limits) => Some(limits),
            RiskDecision::RequireReauthentication => {
                return Err(LifecycleError::ReauthenticationRequired);
            }
            RiskDecision::Revoke(_) => return Err(LifecycleError::LoginDenied),
        };
        let lifetimes = Lifetimes::new(&self.inner.policy, limits.as_ref());
        let id = SessionId::generate().map_err(|_| LifecycleError::Randomness)?;
        let secret = random_secret()?;
        let absolute_expires_at = now.saturating_add(lifetimes.absolute);
        let idle = idle_cap.map_or(lifetimes.idle, |cap| cap.min(lifetimes.idle));
        let record = SessionRecord {
            id,
            user_id: user_id.to_owned(),
            jkt,
            device_label,
            user_agent_hash: request.signals.user_agent_hash(),
            created_at: now,
            last_seen_at: now,
            idle_expires_at: now.saturating_add(idle).min(absolute_expires_at),
            absolute_expires_at,
            generation: 0,
            current_hash: hash_secret(&secret),
            previous_hash: None,
            grace_until: None,
            state: SessionState::Active,
            reason: None,
            ended_at: None,
            binding,
        };
        self.inner.store.create(record.clone()).await?;
        metrics::opened();
        self.emit(
            AuditEventKind::Created,
            (&record).into(),
            note.as_ref(),
            &Actor::User(user_id.to_owned()),
        );
        Ok(Opened {
            record,
            secret,
            access: lifetimes.access,
            now,
        })
    }

    /// Rotates a refresh token: `refresh_token` from the request body, `jkt` the
    /// thumbprint of the key that signed the request's (verified) proof.
    ///
    /// The current token gets a new generation; the previous token, by the same key,
    /// within the grace period, gets the current generation again (same refresh
    /// token, fresh access token); any other token of the session revokes it
    /// (`refresh_token_reused`). All failures are `invalid_grant`.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        jkt: &str,
        signals: &RequestSignals,
    ) -> Result<TokenResponse, LifecycleError> {
        let result = self.refresh_inner(refresh_token, jkt, signals).await;
        let label = match &result {
            Ok((_, label)) => label,
            Err(LifecycleError::RefreshTokenReused) => "reuse_detected",
            Err(LifecycleError::RefreshKeyMismatch) => "key_mismatch",
            Err(LifecycleError::SessionEnded { .. }) => "not_active",
            Err(LifecycleError::ReauthenticationRequired) => "denied",
            Err(
                LifecycleError::Store(_) | LifecycleError::Signing(_) | LifecycleError::Randomness,
            ) => "error",
            Err(_) => "invalid",
        };
        metrics::refresh(label);
        result.map(|(tokens, _)| tokens)
    }

    async fn refresh_inner(
        &self,
        refresh_token: &str,
        jkt: &str,
        signals: &RequestSignals,
    ) -> Result<(TokenResponse, &'static str), LifecycleError> {
        let token =
            RefreshToken::parse(refresh_token).ok_or(LifecycleError::MalformedRefreshToken)?;
        if !self.inner.secret.authenticates(&token) {
            return Err(LifecycleError::InvalidRefreshToken);
        }
        let jkt = Jkt::parse(jkt).ok_or(LifecycleError::RefreshKeyMismatch)?;
        let now = self.now();
        let mut limits = None;
        if self.inner.risk.is_some() {
            let record = self
                .inner
                .store
                .load(token.session_id)
                .await?
                .ok_or(LifecycleError::InvalidRefreshToken)?;
            if record.effective_state(now) == SessionState::Active && record.jkt == jkt {
                let decision = self
                    .assess(RiskContext {
                        event: RiskEvent::Refresh,
                        user_id: &record.user_id,
                        session: Some(&record),
                        device_label: record.device_label.as_deref(),
                        signals,
                        now,
                    })
                    .await;
                match decision {
                    RiskDecision::Allow => {}
                    RiskDecision::Shorten(l) => limits = Some(l),
                    RiskDecision::RequireReauthentication => {
                        self.end_one(
                            record.id,
                            None,
                            EndState::Revoked,
                            Reason::REAUTHENTICATION_REQUIRED,
                            Some(Actor::System),
                        )
                        .await?;
                        return Err(LifecycleError::ReauthenticationRequired);
                    }
                    RiskDecision::Revoke(reason) => {
                        let end = self
                            .end_one(
                                record.id,
                                None,
                                EndState::Revoked,
                                reason,
                                Some(Actor::System),
                            )
                            .await?;
                        return Err(LifecycleError::SessionEnded { state: end.state });
                    }
                }
            }
        }
        let lifetimes = Lifetimes::new(&self.inner.policy, limits.as_ref());
        let next = self
            .inner
            .secret
            .successor(&token.session_id, token.generation, &token.secret);
        let next_hash = hash_secret(&next);
        let outcome = self
            .inner
            .store
            .rotate(RotateRequest {
                id: token.session_id,
                presented: hash_secret(&token.secret),
                presented_generation: token.generation,
                jkt,
                next: next_hash,
                now,
                grace_until: now.saturating_add(secs(self.inner.policy.refresh_grace())),
                idle_expires_at: now.saturating_add(lifetimes.idle),
                absolute_cap: lifetimes
                    .absolute_limited
                    .then(|| now.saturating_add(lifetimes.absolute)),
            })
            .await?;
        match outcome {
            RotateOutcome::Rotated(record) => {
                self.invalidate(&record.id);
                self.emit(
                    AuditEventKind::Refreshed,
                    (&record).into(),
                    None,
                    &Actor::User(record.user_id.clone()),
                );
                let tokens = self.token_response(&record, &next, lifetimes.access, now)?;
                Ok((tokens, "rotated"))
            }
            RotateOutcome::GraceReplay(record) => {
                // The store matched the previous hash; the successor handed out again
                // must be exactly the one the rotation stored.
                if record.current_hash != next_hash
                    || Some(record.generation) != token.generation.checked_add(1)
                {
                    return Err(LifecycleError::InvalidRefreshToken);
                }
                let tokens = self.token_response(&record, &next, lifetimes.access, now)?;
                Ok((tokens, "grace_replay"))
            }
            RotateOutcome::ReuseDetected(record) => {
                tracing::warn!(
                    target: "keybound::lifecycle",
                    session_id = %record.id,
                    user_id = %record.user_id,
                    presented_generation = token.generation,
                    current_generation = record.generation,
                    "refresh token reuse: session revoked"
                );
                self.ended(&record, &Actor::System);
                Err(LifecycleError::RefreshTokenReused)
            }
            RotateOutcome::KeyMismatch => Err(LifecycleError::RefreshKeyMismatch),
            RotateOutcome::Unknown => Err(LifecycleError::InvalidRefreshToken),
            RotateOutcome::NotActive {
                record,
                newly_expired,
            } => {
                if newly_expired {
                    self.ended(&record, &Actor::System);
                }
                Err(LifecycleError::SessionEnded {
                    state: record.state,
                })
            }
        }
    }

    fn update_result(&self, outcome: UpdateOutcome) -> Result<SessionRecord, LifecycleError> {
        match outcome {
            UpdateOutcome::Updated(record) => {
                self.invalidate(&record.id);
                Ok(record)
            }
            UpdateOutcome::NotActive {
                record,
                newly_expired,
            } => {
                if newly_expired {
                    self.ended(&record, &Actor::System);
                }
                Err(LifecycleError::SessionEnded {
                    state: record.state,
                })
            }
            UpdateOutcome::KeyMismatch => Err(LifecycleError::SessionKeyMismatch),
            UpdateOutcome::NotFound => Err(LifecycleError::SessionNotFound),
        }
    }

    /// The user chose "stay signed in": restarts the idle timeout (never beyond the
    /// absolute lifetime). Returns the session as it is now.
    pub async fn extend(&self, session_id: &str) -> Result<SessionInfo, LifecycleError> {
        let id = parse_session_id(session_id)?;
        let now = self.now();
        let outcome = self
            .inner
            .store
            .touch(TouchRequest {
                id,
                now,
                idle_expires_at: now.saturating_add(secs(self.inner.policy.idle_timeout())),
            })
            .await?;
        let record = self.update_result(outcome)?;
        Ok(SessionInfo::new(&record, now, Some(id)))
    }

    /// Replaces the session's tokens after a sensitive action (password or privilege
    /// change): a new refresh token (generation +1, without grace for the old one)
    /// and a new access token. With `revoke_others`, every other session of the user
    /// is revoked (`sensitive_action`). `jkt` is the key of the request's proof.
    ///
    /// Access tokens already issued stay valid until they expire (at most the
    /// access-token lifetime).
    pub async fn rotate_on_sensitive_action(
        &self,
        session_id: &str,
        jkt: &str,
        revoke_others: bool,
    ) -> Result<TokenResponse, LifecycleError> {
        let id = parse_session_id(session_id)?;
        let jkt = parse_jkt(jkt)?;
        let now = self.now();
        let secret = random_secret()?;
        let outcome = self
            .inner
            .store
            .replace_tokens(ReplaceTokensRequest {
                id,
                jkt,
                next: hash_secret(&secret),
                now,
                idle_expires_at: now.saturating_add(secs(self.inner.policy.idle_timeout())),
            })
            .await?;
        let record = self.update_result(outcome)?;
        let actor = Actor::User(record.user_id.clone());
        self.emit(
            AuditEventKind::Rotated,
            (&record).into(),
            Some(&Reason::SENSITIVE_ACTION),
            &actor,
        );
        if revoke_others {
            self.revoke_user_inner(&record.user_id, Some(id), Reason::SENSITIVE_ACTION, actor)
                .await?;
        }
        let access = secs(self.inner.policy.access_token_lifetime());
        self.token_response(&record, &secret, access, now)
    }

    async fn end_one(
        &self,
        id: SessionId,
        owner: Option<&str>,
        state: EndState,
        reason: Reason,
        actor: Option<Actor>,
    ) -> Result<EndResult, LifecycleError> {
        let outcome = self
            .inner
            .store
            .end(EndRequest {
                id,
                owner: owner.map(str::to_owned),
                state,
                reason,
                now: self.now(),
            })
            .await?;
        match outcome {
            EndOutcome::Ended(record) => {
                let actor = actor.unwrap_or_else(|| Actor::User(record.user_id.clone()));
                self.ended(&record, &actor);
                Ok(EndResult::new(&record, true))
            }
            EndOutcome::Expired(record) => {
                self.ended(&record, &Actor::System);
                Ok(EndResult::new(&record, false))
            }
            EndOutcome::AlreadyEnded(record) => {
                self.invalidate(&record.id);
                Ok(EndResult::new(&record, false))
            }
            EndOutcome::NotOwner => Err(LifecycleError::NotSessionOwner),
            EndOutcome::NotFound => Err(LifecycleError::SessionNotFound),
        }
    }

    /// Logout: closes the session (idempotent; a session that already ended stays as
    /// it is).
    pub async fn close(&self, session_id: &str) -> Result<EndResult, LifecycleError> {
        let id = parse_session_id(session_id)?;
        self.end_one(id, None, EndState::Closed, Reason::LOGOUT, None)
            .await
    }

    /// Revokes one session, whoever owns it (an administrator's action, or the
    /// application's own decision). Idempotent.
    pub async fn revoke(
        &self,
        session_id: &str,
        reason: Reason,
        actor: Actor,
    ) -> Result<EndResult, LifecycleError> {
        let id = parse_session_id(session_id)?;
        self.end_one(id, None, EndState::Revoked, reason, Some(actor))
            .await
    }

    /// A user revokes one of their own sessions (`DELETE /session/sessions/{id}`).
    /// Another user's session is refused with `session_not_owned` and left alone.
    pub async fn revoke_for_user(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<EndResult, LifecycleError> {
        let id = parse_session_id(session_id)?;
        self.end_one(
            id,
            Some(user_id),
            EndState::Revoked,
            Reason::USER_REVOKED,
            Some(Actor::User(user_id.to_owned())),
        )
        .await
    }

    /// Revokes every active session of a user, but `except` if given. Returns how many
    /// sessions this call revoked. Idempotent.
    pub async fn revoke_user(
        &self,
        user_id: &str,
        except: Option<&str>,
        reason: Reason,
        actor: Actor,
    ) -> Result<usize, LifecycleError> {
        check_user_id(user_id)?;
        let except = except
            .map(|e| {
                SessionId::parse(e).ok_or(LifecycleError::InvalidInput {
                    field: "except",
                    reason: "not a session id",
                })
            })
            .transpose()?;
        self.revoke_user_inner(user_id, except, reason, actor).await
    }

    /// The user revokes all their other sessions
    /// (`POST /session/sessions/revoke-others`).
    pub async fn revoke_others(
        &self,
        user_id: &str,
        current_session_id: &str,
    ) -> Result<usize, LifecycleError> {
        self.revoke_user(
            user_id,
            Some(current_session_id),
            Reason::USER_REVOKED_OTHERS,
            Actor::User(user_id.to_owned()),
        )
        .await
    }

    async fn revoke_user_inner(
        &self,
        user_id: &str,
        except: Option<SessionId>,
        reason: Reason,
        actor: Actor,
    ) -> Result<usize, LifecycleError> {
        let changed = self
            .inner
            .store
            .end_user_sessions(EndUserRequest {
                user_id: user_id.to_owned(),
                except,
                state: EndState::Revoked,
                reason,
                now: self.now(),
            })
            .await?;
        let mut revoked = 0;
        for outcome in changed {
            match outcome {
                EndOutcome::Ended(record) => {
                    revoked += 1;
                    self.ended(&record, &actor);
                }
                EndOutcome::Expired(record) => self.ended(&record, &Actor::System),
                _ => {}
            }
        }
        Ok(revoked)
    }

    /// A user's sessions in every state not yet purged, most recently used first;
    /// `current` marks `current_session_id`.
    pub async fn list_sessions(
        &self,
        user_id: &str,
        current_session_id: Option<&str>,
    ) -> Result<Vec<SessionInfo>, LifecycleError> {
        check_user_id(user_id)?;
        let current = current_session_id.and_then(SessionId::parse);
        let now = self.now();
        let mut sessions: Vec<SessionInfo> = self
            .inner
            .store
            .list_user(user_id)
            .await?
            .iter()
            .map(|r| SessionInfo::new(r, now, current))
            .collect();
        sessions.sort_by(|a, b| {
            b.last_seen_at
                .cmp(&a.last_seen_at)
                .then_with(|| a.session_id.cmp(&b.session_id))
        });
        Ok(sessions)
    }

    /// One session, in any state not yet purged.
    pub async fn session(&self, session_id: &str) -> Result<SessionInfo, LifecycleError> {
        let id = parse_session_id(session_id)?;
        let record = self
            .inner
            .store
            .load(id)
            .await?
            .ok_or(LifecycleError::SessionNotFound)?;
        Ok(SessionInfo::new(&record, self.now(), Some(id)))
    }

    async fn check_session(&self, sid: &str, sub: &str, jkt: &str) -> Result<(), SessionDenied> {
        let id = SessionId::parse(sid).ok_or(SessionDenied::Unknown)?;
        let jkt = Jkt::parse(jkt).ok_or(SessionDenied::KeyMismatch)?;
        let now = self.now();
        let cache = self.inner.cache.as_ref();
        if let Some(entry) = cache.and_then(|c| c.get(&id, now)) {
            return match (&*entry.user_id == sub, entry.jkt == jkt) {
                (false, _) => Err(SessionDenied::Unknown),
                (true, false) => Err(SessionDenied::KeyMismatch),
                (true, true) => Ok(()),
            };
        }
        let ticket = cache.map(|c| c.ticket(&id));
        let record = self
            .inner
            .store
            .load(id)
            .await
            .map_err(|_| SessionDenied::Unavailable)?
            .ok_or(SessionDenied::Unknown)?;
        match record.effective_state(now) {
            SessionState::Active => {}
            SessionState::Expired => return Err(SessionDenied::Expired),
            SessionState::Revoked => return Err(SessionDenied::Revoked),
            SessionState::Closed => return Err(SessionDenied::Closed),
        }
        if record.user_id != sub {
            return Err(SessionDenied::Unknown);
        }
        if record.jkt != jkt {
            return Err(SessionDenied::KeyMismatch);
        }
        if let (Some(cache), Some(ticket)) = (cache, ticket) {
            let entry = CachedSession {
                user_id: record.user_id.into_boxed_str(),
                jkt: record.jkt,
                valid_until: record.idle_expires_at.min(record.absolute_expires_at),
            };
            cache.fill(id, entry, now, ticket);
        }
        Ok(())
    }
}

/// The verifier's last check: the session of a verified request must be active, its
/// user the token's `sub` and its key the proof's.
impl SessionCheck for SessionService {
    fn check<'a>(
        &'a self,
        sid: &'a str,
        sub: &'a str,
        jkt: &'a str,
    ) -> BoxFuture<'a, Result<(), SessionDenied>> {
        Box::pin(self.check_session(sid, sub, jkt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_labels_are_cleaned() {
        assert_eq!(clean_device_label(None), None);
        assert_eq!(clean_device_label(Some("  ")), None);
        assert_eq!(
            clean_device_label(Some(" Firefox\u{7}\non Linux ")).as_deref(),
            Some("Firefoxon Linux")
        );
        let long = "é".repeat(100);
        let cleaned = clean_device_label(Some(&long)).unwrap();
        assert_eq!(cleaned.len(), 128);
    }

    #[test]
    fn user_ids_are_checked() {
        assert!(check_user_id("alice").is_ok());
        for bad in ["", "a\u{0}b", &"x".repeat(257)] {
            assert_eq!(check_user_id(bad).unwrap_err().code(), "invalid_input");
        }
    }
}
