//! The engine behind the JavaScript `Keybound` class: session state, signed requests,
//! refresh across tabs, timers and events.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use js_sys::{Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local};
use web_sys::{BroadcastChannel, EventTarget, MessageEvent, Request, Url};
use zeroize::Zeroizing;

use super::flight::{Flight, Wait};
use super::js;
use super::keys::{DeviceKey, KeyKind};
use super::lock::with_lock;
use super::net::{self, Reply};
use super::storage::{LiveRecord, Storage, Stored};
use crate::answer::Verdict;
use crate::schedule::{self, Action, EndReason, Inputs};
use crate::{
    Backoff, ClientError, NonceJar, ServerClock, SessionState, SessionTokens, Terminal, Transition,
};

type Outcome = Result<(), ClientError>;

/// Settings from `Keybound.init(options)`.
struct Config {
    /// Absolute URL of the session router, without a trailing slash.
    endpoint: String,
    storage_name: String,
    expiring_lead_ms: i64,
    force_wasm_keys: bool,
}

impl Config {
    fn from_js(options: &JsValue) -> Result<Self, ClientError> {
        let invalid = |reason| ClientError::InvalidOption { reason };
        let value = |key| {
            let v = js::get(options, key);
            (!v.is_undefined() && !v.is_null()).then_some(v)
        };
        let endpoint = match value("endpoint") {
            None => "/session".to_owned(),
            Some(v) => v.as_string().ok_or(invalid("endpoint must be a string"))?,
        };
        let base = js::get_str(&js::global("location"), "href");
        let url = match base {
            Some(base) => Url::new_with_base(&endpoint, &base),
            None => Url::new(&endpoint),
        }
        .map_err(|_| invalid("endpoint is not a valid URL"))?;
        url.set_search("");
        url.set_hash("");
        let endpoint = url.href().trim_end_matches('/').to_owned();
        if crate::origin_of(&endpoint).is_none() {
            return Err(invalid("endpoint must be an http(s) URL"));
        }
        let storage_name = match value("storageName") {
            None => "keybound".to_owned(),
            Some(v) => v
                .as_string()
                .filter(|s| !s.is_empty() && s.len() <= 100)
                .ok_or(invalid("storageName must be a non-empty string"))?,
        };
        let expiring_lead_ms = match value("expiringLeadSeconds") {
            None => 120_000,
            Some(v) => v
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
                .map(|s| (s * 1000.0) as i64)
                .ok_or(invalid(
                    "expiringLeadSeconds must be a number of seconds between 0 and 86400",
                ))?,
        };
        let force_wasm_keys = match value("forceWasmKeys") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or(invalid("forceWasmKeys must be a boolean"))?,
        };
        Ok(Self {
            endpoint,
            storage_name,
            expiring_lead_ms,
            force_wasm_keys,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint)
    }

    fn lock_name(&self) -> String {
        format!("keybound:{}:session", self.storage_name)
    }
}

/// The JavaScript callbacks: `emit(type, detail)` dispatches an event on the
/// `Keybound` object, `error(code, message, status)` makes a `KeyboundError`.
struct Hooks {
    emit: Function,
    error: Function,
}

impl Hooks {
    fn from_js(hooks: &JsValue) -> Option<Self> {
        Some(Self {
            emit: js::get_fn(hooks, "emit")?,
            error: js::get_fn(hooks, "error")?,
        })
    }

    fn emit(&self, kind: &str, detail: &JsValue) {
        // dispatchEvent reports listener exceptions itself; nothing to do here.
        let _ = self.emit.call2(&JsValue::NULL, &kind.into(), detail);
    }

    fn error(&self, error: &ClientError) -> JsValue {
        let status = error.status().map_or(JsValue::UNDEFINED, JsValue::from);
        self.error
            .call3(
                &JsValue::NULL,
                &error.code().into(),
                &error.to_string().into(),
                &status,
            )
            .unwrap_or_else(|thrown| thrown)
    }
}

/// The current tokens and the stamp of the storage record they came from.
#[derive(Clone)]
struct Live {
    tokens: SessionTokens,
    stamp: String,
}

/// Why a refresh is wanted.
#[derive(Clone)]
enum Why {
    /// The tokens with this stamp are due (or were refused): another tab's newer tokens
    /// do just as well.
    Stale(Option<String>),
    /// `extend()`: ask the server even if the tokens are fresh.
    Forced,
}

struct Inner {
    config: Config,
    storage: Storage,
    hooks: Hooks,
    key: RefCell<Option<Rc<DeviceKey>>>,
    live: RefCell<Option<Live>>,
    /// The last session that ended here: its tokens are never taken up again.
    ended: RefCell<Option<String>>,
    state: Cell<SessionState>,
    clock: Cell<ServerClock>,
    nonces: RefCell<NonceJar>,
    last_activity: Cell<Option<i64>>,
    expiring_fired_for: Cell<Option<i64>>,
    retry_at: Cell<Option<i64>>,
    backoff: Cell<Backoff>,
    refresh: RefCell<Option<Flight<Outcome>>>,
    timer: RefCell<Option<Timeout>>,
    channel: RefCell<Option<BroadcastChannel>>,
    #[allow(clippy::type_complexity)]
    listeners: RefCell<Vec<(EventTarget, &'static str, Closure<dyn FnMut(JsValue)>)>>,
    disposed: Cell<bool>,
}

/// The SDK engine. JavaScript code uses it through the `Keybound` class of the npm
/// package, which adds events, error classes and types on top.
#[wasm_bindgen]
pub struct Core {
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl Core {
    /// Opens the storage, loads or creates the device key, resumes a stored session and
    /// starts listening to other tabs. `hooks` is `{emit(type, detail), error(code,
    /// message, status)}`.
    pub async fn create(options: JsValue, hooks: JsValue) -> Result<Core, JsValue> {
        let hooks = Hooks::from_js(&hooks)
            .ok_or_else(|| JsValue::from(js_sys::TypeError::new("keybound: invalid hooks")))?;
        let config = match Config::from_js(&options) {
            Ok(config) => config,
            Err(error) => return Err(hooks.error(&error)),
        };
        let resumed = match Resumed::load(&config).await {
            Ok(resumed) => resumed,
            Err(error) => return Err(hooks.error(&error)),
        };
        let inner = Rc::new(Inner {
            config,
            storage: resumed.storage,
            hooks,
            key: RefCell::new(Some(Rc::new(resumed.key))),
            live: RefCell::new(resumed.live),
            ended: RefCell::new(None),
            state: Cell::new(resumed.state),
            clock: Cell::new(resumed.clock),
            nonces: RefCell::default(),
            last_activity: Cell::new(None),
            expiring_fired_for: Cell::new(None),
            retry_at: Cell::new(None),
            backoff: Cell::default(),
            refresh: RefCell::new(None),
            timer: RefCell::new(None),
            channel: RefCell::new(None),
            listeners: RefCell::default(),
            disposed: Cell::new(false),
        });
        inner.listen();
        inner.reschedule();
        Ok(Core { inner })
    }

    /// `anonymous`, `active`, `expired`, `revoked` or `closed`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.inner.state.get().as_str().to_owned()
    }

    /// The device key's RFC 7638 thumbprint, `null` after logout until the next login.
    #[wasm_bindgen(getter)]
    pub fn thumbprint(&self) -> Option<String> {
        self.inner
            .key
            .borrow()
            .as_ref()
            .map(|k| k.thumbprint().to_owned())
    }

    /// `"webcrypto"` or `"wasm"`, `null` when there is no key.
    #[wasm_bindgen(getter, js_name = keyKind)]
    pub fn key_kind(&self) -> Option<String> {
        self.inner
            .key
            .borrow()
            .as_ref()
            .map(|k| k.kind().as_str().to_owned())
    }

    /// `{id, accessTokenExpiresAt, idleExpiresAt, expiresAt}` (local epoch
    /// milliseconds) of the live session, or `null`.
    #[wasm_bindgen(getter)]
    pub fn session(&self) -> JsValue {
        self.inner.info()
    }

    /// Logs in through the app's own route; see `Keybound.login`.
    pub fn login(&self, url: JsValue, init: JsValue) -> Promise {
        let inner = Rc::clone(&self.inner);
        self.run(Box::pin(async move { inner.login(url, init).await }))
    }

    /// `fetch` with the session's access token and a fresh proof.
    pub fn fetch(&self, input: JsValue, init: JsValue) -> Promise {
        let inner = Rc::clone(&self.inner);
        self.run(Box::pin(async move {
            let request = net::request(&input, &init)?;
            let reply = inner.send_signed(request).await?;
            Ok(reply.response.into())
        }))
    }

    /// Refreshes now, which also moves the idle deadline.
    pub fn extend(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        self.run(Box::pin(async move {
            inner.state.get().require_active()?;
            inner.mark_activity();
            inner.refresh(Why::Forced).await?;
            inner.reschedule();
            Ok(inner.info())
        }))
    }

    /// Tells the SDK the app is in use (user activity without requests).
    pub fn touch(&self) {
        if self.inner.state.get().is_active() {
            self.inner.mark_activity();
            self.inner.reschedule();
        }
    }

    /// The user's sessions, as the server lists them.
    pub fn sessions(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        self.run(Box::pin(async move {
            let request = net::internal("GET", &inner.config.url("/sessions"), None)?;
            let reply = inner.send_expecting_success(request).await?;
            let body = reply.json().await?;
            let list = js::get(&body, "sessions");
            if !Array::is_array(&list) {
                return Err(ClientError::InvalidResponse {
                    reason: "sessions is not a list",
                });
            }
            Ok(list)
        }))
    }

    /// Revokes one of the user's sessions (this one too, if `id` is this session's).
    #[wasm_bindgen(js_name = revokeSession)]
    pub fn revoke_session(&self, id: String) -> Promise {
        let inner = Rc::clone(&self.inner);
        self.run(Box::pin(async move {
            let path = format!(
                "/sessions/{}",
                String::from(js_sys::encode_uri_component(&id))
            );
            let request = net::internal("DELETE", &inner.config.url(&path), None)?;
            inner.send_expecting_success(request).await?;
            if inner.session_id().as_deref() == Some(id.as_str()) {
                inner.end(Terminal::Revoked, None).await;
            }
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// Revokes every other session of the user; resolves to the server's answer body.
    #[wasm_bindgen(js_name = revokeOthers)]
    pub fn revoke_others(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        self.run(Box::pin(async move {
            let url = inner.config.url("/sessions/revoke-others");
            let request = net::internal("POST", &url, None)?;
            let reply = inner.send_expecting_success(request).await?;
            Ok(reply.json().await.unwrap_or(JsValue::UNDEFINED))
        }))
    }

    /// Calls an app route that replaces this session's tokens (a sensitive action such
    /// as a password change, answered by the server's `rotate_on_sensitive_action`) and
    /// takes up the token response; see `Keybound.rotate`.
    pub fn rotate(&self, url: JsValue, init: JsValue) -> Promise {
        let inner = Rc::clone(&self.inner);
        self.run(Box::pin(async move {
            let request = net::login(&url, &init)?;
            inner.rotate(request).await
        }))
    }

    /// Closes the session on the server (best effort) and deletes key and tokens.
    pub fn logout(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        self.run(Box::pin(async move {
            inner.logout().await;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// A DPoP proof for `method` and `url` with this device key, for transports
    /// `fetch` does not cover. `accessToken` adds `ath`; `nonce` a server nonce (by
    /// default the last one the server gave for that origin).
    #[wasm_bindgen(js_name = createProof)]
    pub fn create_proof(
        &self,
        method: String,
        url: String,
        access_token: Option<String>,
        nonce: Option<String>,
    ) -> Promise {
        let inner = Rc::clone(&self.inner);
        self.run(Box::pin(async move {
            let key = inner.ensure_key().await?;
            let nonce = nonce.or_else(|| inner.nonces.borrow().get(&url).map(str::to_owned));
            let iat = inner.clock.get().server_now_secs(js::now_ms());
            let proof = key
                .proof(
                    &method,
                    &url,
                    iat,
                    access_token.as_deref(),
                    nonce.as_deref(),
                )
                .await?;
            Ok(proof.into())
        }))
    }

    /// Stops timers and listeners; the object is unusable afterwards.
    pub fn dispose(&self) {
        self.inner.dispose();
    }
}

type Job = Pin<Box<dyn Future<Output = Result<JsValue, ClientError>>>>;

impl Core {
    /// Runs a method's work as a promise. Every method goes through this one
    /// non-generic path, which keeps one copy of the promise plumbing in the module.
    fn run(&self, job: Job) -> Promise {
        let inner = Rc::clone(&self.inner);
        let work: Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>> = Box::pin(async move {
            if inner.disposed.get() {
                return Err(inner.hooks.error(&ClientError::Disposed));
            }
            job.await.map_err(|error| inner.hooks.error(&error))
        });
        future_to_promise(work)
    }
}

/// What `create` finds in storage.
struct Resumed {
    storage: Storage,
    key: DeviceKey,
    live: Option<Live>,
    clock: ServerClock,
    state: SessionState,
}

impl Resumed {
    async fn load(config: &Config) -> Result<Self, ClientError> {
        let storage = Storage::open(&config.storage_name).await?;
        let stored = storage.load_session().await?;
        let mut key = storage.load_key().await?;
        let bound_to =
            |k: &DeviceKey| matches!(&stored, Stored::Live(r) if r.jkt == k.thumbprint());
        if let Some(k) = &key {
            // A test or app asking for module keys gets one, unless a live session is
            // bound to the stored key.
            if config.force_wasm_keys && k.kind() != KeyKind::Wasm && !bound_to(k) {
                storage.delete_key().await?;
                key = None;
            }
        }
        let key = match key {
            Some(key) => key,
            None => storage.create_key(config.force_wasm_keys).await?,
        };
        let mut resumed = Self {
            storage,
            key,
            live: None,
            clock: ServerClock::default(),
            state: SessionState::Anonymous,
        };
        if let Stored::Live(record) = stored {
            if record.jkt == resumed.key.thumbprint() {
                resumed.clock = ServerClock::with_offset(record.offset_ms);
                let now = resumed.clock.server_now_ms(js::now_ms());
                if record.tokens.timeline().ended(now).is_some() {
                    // It ran out while no page was open: say so once, then forget it.
                    resumed.state = SessionState::Ended(Terminal::Expired);
                    resumed
                        .storage
                        .end_session(Terminal::Expired, record.tokens.session_id())
                        .await?;
                } else {
                    resumed.state = SessionState::Active;
                    resumed.live = Some(live_of(record));
                }
            }
        }
        Ok(resumed)
    }
}

impl Inner {
    // ---- small accessors -------------------------------------------------------------

    fn now(&self) -> i64 {
        self.clock.get().server_now_ms(js::now_ms())
    }

    fn stamp(&self) -> Option<String> {
        self.live.borrow().as_ref().map(|l| l.stamp.clone())
    }

    fn session_id(&self) -> Option<String> {
        self.live
            .borrow()
            .as_ref()
            .map(|l| l.tokens.session_id().to_owned())
    }

    fn key(&self) -> Result<Rc<DeviceKey>, ClientError> {
        self.key.borrow().clone().ok_or(ClientError::NotLoggedIn)
    }

    fn mark_activity(&self) {
        self.last_activity.set(Some(self.now()));
    }

    fn info(&self) -> JsValue {
        let live = self.live.borrow();
        let Some(live) = live.as_ref() else {
            return JsValue::NULL;
        };
        let clock = self.clock.get();
        let t = live.tokens.timeline();
        js::object(&[
            ("id", live.tokens.session_id().into()),
            (
                "accessTokenExpiresAt",
                clock.to_local_ms(t.access_expires_at).into(),
            ),
            ("idleExpiresAt", clock.to_local_ms(t.idle_expires_at).into()),
            ("expiresAt", clock.to_local_ms(t.session_expires_at).into()),
        ])
        .into()
    }

    fn emit_error(&self, error: &ClientError) {
        let error = self.hooks.error(error);
        self.hooks.emit("error", &error);
    }

    async fn ensure_key(&self) -> Result<Rc<DeviceKey>, ClientError> {
        if let Some(key) = self.key.borrow().clone() {
            return Ok(key);
        }
        let key = match self.storage.load_key().await? {
            Some(key) => key,
            None => self.storage.create_key(self.config.force_wasm_keys).await?,
        };
        let key = Rc::new(key);
        *self.key.borrow_mut() = Some(Rc::clone(&key));
        Ok(key)
    }

    async fn proof(
        &self,
        key: &DeviceKey,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<String, ClientError> {
        let nonce = self.nonces.borrow().get(url).map(str::to_owned);
        let iat = self.clock.get().server_now_secs(js::now_ms());
        key.proof(method, url, iat, access_token, nonce.as_deref())
            .await
    }

    fn note_nonce(&self, url: &str, reply: &Reply) {
        if let Some(nonce) = &reply.nonce {
            self.nonces.borrow_mut().remember(url, nonce);
        }
    }

    // ---- session changes -------------------------------------------------------------

    /// Takes over tokens (from a login, a refresh here, or another tab's storage record)
    /// and fires `login` or `refreshed`.
    fn adopt(self: &Rc<Self>, live: Live, offset_ms: Option<i64>) {
        let (same_session, same_stamp) = match self.live.borrow().as_ref() {
            Some(current) => (
                current.tokens.session_id() == live.tokens.session_id(),
                current.stamp == live.stamp,
            ),
            None => (false, false),
        };
        let ended_here = self.ended.borrow().as_deref() == Some(live.tokens.session_id());
        if same_stamp || ended_here {
            // Nothing new, or late tokens of a session that already ended.
            return;
        }
        let state = self.state.get();
        if let Some(offset) = offset_ms {
            self.clock.set(ServerClock::with_offset(offset));
        }
        *self.live.borrow_mut() = Some(live);
        let kind = if same_session { "refreshed" } else { "login" };
        if !same_session {
            if let Some(next) = state.apply(Transition::LoggedIn) {
                self.state.set(next);
            }
            self.expiring_fired_for.set(None);
            self.last_activity.set(None);
        }
        self.retry_at.set(None);
        let mut backoff = self.backoff.get();
        backoff.reset();
        self.backoff.set(backoff);
        self.hooks.emit(kind, &self.info());
        self.reschedule();
    }

    /// Applies an ending locally (no storage, no broadcast): fires the event once.
    fn end_local(self: &Rc<Self>, terminal: Terminal, reason: Option<EndReason>) {
        let Some(next) = self.state.get().apply(Transition::Ended(terminal)) else {
            return;
        };
        let session_id = self.session_id();
        self.state.set(next);
        self.live.borrow_mut().take();
        self.ended.replace(session_id.clone());
        self.timer.borrow_mut().take();
        if terminal == Terminal::Closed {
            // Logging out (here or in another tab) deleted the shared device key.
            self.key.borrow_mut().take();
        }
        let mut detail = vec![("sessionId", session_id.map_or(JsValue::NULL, JsValue::from))];
        if let Some(reason) = reason {
            detail.push(("reason", reason.as_str().into()));
        }
        self.hooks.emit(terminal.as_str(), &js::object(&detail));
    }

    /// Ends the session everywhere; the caller holds the session lock.
    async fn end_locked(self: &Rc<Self>, terminal: Terminal, reason: Option<EndReason>) {
        let Some(session_id) = self.session_id() else {
            return;
        };
        if let Err(error) = self.storage.end_session(terminal, &session_id).await {
            self.emit_error(&error);
        }
        self.broadcast("ended", Some(terminal), &session_id);
        self.end_local(terminal, reason);
    }

    /// Ends the session everywhere.
    async fn end(self: &Rc<Self>, terminal: Terminal, reason: Option<EndReason>) {
        let me = Rc::clone(self);
        let work = async move { me.end_locked(terminal, reason).await };
        with_lock(&self.config.lock_name(), Box::pin(work)).await;
    }

    /// The local deadline passed: unless another tab kept the session going, it expired.
    async fn expire(self: Rc<Self>, reason: EndReason) {
        let me = Rc::clone(&self);
        let work = async move {
            if let Ok(Stored::Live(record)) = me.storage.load_session().await {
                let newer = Some(&record.stamp) != me.stamp().as_ref();
                let alive = record.tokens.timeline().ended(me.now()).is_none();
                if newer && alive && me.bound_to_key(&record) {
                    let offset = record.offset_ms;
                    me.adopt(live_of(record), Some(offset));
                    return;
                }
            }
            me.end_locked(Terminal::Expired, Some(reason)).await;
        };
        with_lock(&self.config.lock_name(), Box::pin(work)).await;
    }

    fn bound_to_key(&self, record: &LiveRecord) -> bool {
        self.key
            .borrow()
            .as_ref()
            .is_some_and(|k| k.thumbprint() == record.jkt)
    }

    // ---- refresh ---------------------------------------------------------------------

    /// Refreshes once per tab at a time (callers share the flight) and once across tabs
    /// (Web Locks, then re-reading storage: another tab may have just refreshed).
    fn refresh(self: &Rc<Self>, why: Why) -> Wait<Outcome> {
        if let Some(flight) = self.refresh.borrow().as_ref() {
            return flight.wait();
        }
        let me = Rc::clone(self);
        let flight = Flight::start(async move {
            let worker = Rc::clone(&me);
            let work = async move { worker.refresh_locked(why).await };
            let result = with_lock(&me.config.lock_name(), Box::pin(work)).await;
            me.refresh.borrow_mut().take();
            match &result {
                Ok(()) | Err(ClientError::SessionEnded(_) | ClientError::NotLoggedIn) => {}
                Err(_) => {
                    let mut backoff = me.backoff.get();
                    let random = (js_sys::Math::random() * f64::from(u32::MAX)) as u32;
                    let delay = backoff.next_delay_ms(random);
                    me.backoff.set(backoff);
                    me.retry_at
                        .set(Some(me.now() + i64::try_from(delay).unwrap_or(i64::MAX)));
                }
            }
            result
        });
        let wait = flight.wait();
        *self.refresh.borrow_mut() = Some(flight);
        wait
    }

    async fn refresh_locked(self: &Rc<Self>, why: Why) -> Result<(), ClientError> {
        let key = self.key()?;
        let record = match self.storage.load_session().await? {
            Stored::Live(record) if record.jkt == key.thumbprint() => record,
            Stored::Ended { terminal, .. } => {
                self.end_local(terminal, None);
                return Err(ClientError::SessionEnded(terminal));
            }
            Stored::Live(_) | Stored::Nothing => {
                if let Some(next) = self.state.get().apply(Transition::Forgotten) {
                    self.state.set(next);
                    self.live.borrow_mut().take();
                }
                return Err(ClientError::NotLoggedIn);
            }
        };
        let fresh_elsewhere = match &why {
            Why::Stale(seen) => {
                seen.as_ref() != Some(&record.stamp)
                    && !record.tokens.timeline().refresh_before_request(self.now())
            }
            Why::Forced => false,
        };
        let tokens = record.tokens.clone();
        let offset = record.offset_ms;
        self.adopt(live_of(record), Some(offset));
        if fresh_elsewhere {
            return Ok(());
        }
        self.call_refresh(&key, &tokens).await
    }

    /// `POST {endpoint}/refresh` with the stored refresh token; stores, adopts and
    /// announces the new tokens. The caller holds the session lock.
    async fn call_refresh(
        self: &Rc<Self>,
        key: &DeviceKey,
        tokens: &SessionTokens,
    ) -> Result<(), ClientError> {
        let url = self.config.url("/refresh");
        let body = Zeroizing::new(format!(
            r#"{{"refresh_token":"{}"}}"#,
            tokens.refresh_token()
        ));
        let (mut nonce_retried, mut clock_retried) = (false, false);
        loop {
            let proof = self.proof(key, "POST", &url, None).await?;
            let request = net::internal("POST", &url, Some(&body))?;
            net::sign(&request, &proof, None)?;
            let reply = net::send(&request).await?;
            self.note_nonce(&url, &reply);
            if reply.ok() {
                return self.take_tokens(key, &reply).await.map(drop);
            }
            match reply.answer().verdict() {
                Verdict::NonceChallenge if !nonce_retried => {
                    nonce_retried = true;
                    continue;
                }
                Verdict::ClockSkew if !clock_retried => {
                    clock_retried = true;
                    if let Some(clock) = reply.clock_from_date(self.clock.get()) {
                        self.clock.set(clock);
                    }
                    continue;
                }
                _ => {}
            }
            if let Some(terminal) =
                Terminal::from_refresh_refusal(reply.error_name(), reply.error_code())
            {
                self.end_locked(terminal, None).await;
                return Err(ClientError::SessionEnded(terminal));
            }
            return Err(reply.to_error());
        }
    }

    /// Reads a token response, learns the clock, stores and adopts the tokens and tells
    /// the other tabs. Returns the session id.
    async fn take_tokens(
        self: &Rc<Self>,
        key: &DeviceKey,
        reply: &Reply,
    ) -> Result<String, ClientError> {
        let response = reply.token_response().await?;
        let server_time = response.server_time;
        let tokens = SessionTokens::from_response(response)?;
        let clock = reply.clock_from_server_time(self.clock.get(), server_time);
        self.clock.set(clock);
        let session_id = tokens.session_id().to_owned();
        let stamp = match self
            .storage
            .save_session(&tokens, key.thumbprint(), clock.offset_ms())
            .await
        {
            Ok(stamp) => stamp,
            Err(error) => {
                // The server rotated the tokens: keep them in memory regardless, so
                // this tab goes on working; other tabs will ask again.
                self.emit_error(&error);
                keybound_proto::b64::encode(js::now_ms().to_be_bytes())
            }
        };
        let is_new = self.session_id().as_deref() != Some(session_id.as_str());
        self.adopt(Live { tokens, stamp }, None);
        self.broadcast(if is_new { "login" } else { "sync" }, None, &session_id);
        Ok(session_id)
    }

    /// A refresh started by the timer.
    async fn background_refresh(self: Rc<Self>) {
        let stamp = self.stamp();
        match self.refresh(Why::Stale(stamp)).await {
            Ok(()) | Err(ClientError::SessionEnded(_) | ClientError::NotLoggedIn) => {}
            Err(error) => self.emit_error(&error),
        }
        self.reschedule();
    }

    // ---- the timer -------------------------------------------------------------------

    /// Asks the schedule what to do, does it, and sets the one timer for next time.
    fn reschedule(self: &Rc<Self>) {
        self.timer.borrow_mut().take();
        if self.disposed.get() {
            return;
        }
        // Each pass either returns or records an `expiring` warning, so three passes
        // are always enough; the bound only guards against a listener loop.
        for _ in 0..3 {
            if !self.state.get().is_active() {
                return;
            }
            let Some(timeline) = self.live.borrow().as_ref().map(|l| *l.tokens.timeline()) else {
                return;
            };
            let inputs = Inputs {
                now: self.now(),
                last_activity: self.last_activity.get(),
                expiring_lead_ms: self.config.expiring_lead_ms,
                expiring_fired_for: self.expiring_fired_for.get(),
                retry_at: self.retry_at.get(),
            };
            let plan = schedule::plan(&timeline, &inputs);
            match plan.action {
                Action::Wait => {
                    if let Some(at) = plan.wake_at {
                        self.set_timer(at);
                    }
                    return;
                }
                Action::Refresh => {
                    spawn_local(Rc::clone(self).background_refresh());
                    return;
                }
                Action::Expiring {
                    reason,
                    seconds_left,
                    end,
                } => {
                    self.expiring_fired_for.set(Some(end));
                    let detail = js::object(&[
                        ("secondsLeft", (seconds_left as f64).into()),
                        ("reason", reason.as_str().into()),
                    ]);
                    self.hooks.emit("expiring", &detail);
                }
                Action::Expired(reason) => {
                    spawn_local(Rc::clone(self).expire(reason));
                    return;
                }
            }
        }
    }

    fn set_timer(self: &Rc<Self>, at: i64) {
        // A little late rather than early: browsers may fire timers a millisecond
        // early, which would only cause an extra wake-up.
        let delay = (at - self.now() + 5).clamp(0, i64::from(i32::MAX));
        let weak: Weak<Self> = Rc::downgrade(self);
        let timeout = Timeout::new(u32::try_from(delay).unwrap_or(0), move || {
            if let Some(me) = weak.upgrade() {
                me.reschedule();
            }
        });
        *self.timer.borrow_mut() = Some(timeout);
    }

    // ---- requests --------------------------------------------------------------------

    /// Sends `request` with the access token and a fresh proof; handles a nonce
    /// challenge, a clock correction and a refused token with one retry each, and
    /// notices an ended session. The answer goes back to the caller whatever its status.
    async fn send_signed(self: &Rc<Self>, request: Request) -> Result<Reply, ClientError> {
        self.state.get().require_active()?;
        self.mark_activity();
        self.ensure_fresh_token().await?;
        let key = self.key()?;
        let url = request.url();
        let method = request.method();
        let (mut nonce_retried, mut clock_retried, mut token_retried) = (false, false, false);
        loop {
            let current = self.live.borrow().as_ref().map(|live| {
                let token = Zeroizing::new(live.tokens.access_token().to_owned());
                (token, live.stamp.clone())
            });
            let Some((access_token, stamp)) = current else {
                // The session ended while this request was retried.
                self.state.get().require_active()?;
                return Err(ClientError::NotLoggedIn);
            };
            // Each attempt sends a copy, so the original body stays unread for a retry.
            let attempt = request.clone().map_err(|e| ClientError::InvalidInput {
                detail: js::error_message(&e),
            })?;
            let proof = self.proof(&key, &method, &url, Some(&access_token)).await?;
            net::sign(&attempt, &proof, Some(&access_token))?;
            let reply = net::send(&attempt).await?;
            self.note_nonce(&url, &reply);
            match reply.answer().verdict() {
                Verdict::NonceChallenge if !nonce_retried => nonce_retried = true,
                Verdict::ClockSkew if !clock_retried => {
                    clock_retried = true;
                    if let Some(clock) = reply.clock_from_date(self.clock.get()) {
                        self.clock.set(clock);
                    }
                }
                Verdict::TokenRejected if !token_retried => {
                    token_retried = true;
                    if self.refresh(Why::Stale(Some(stamp))).await.is_err() {
                        return Ok(reply);
                    }
                }
                Verdict::SessionEnded(terminal) => {
                    self.end(terminal, None).await;
                    return Ok(reply);
                }
                _ => {
                    self.reschedule();
                    return Ok(reply);
                }
            }
        }
    }

    /// Refreshes first when the access token is due. A transient failure still lets
    /// the request go out while the current token is valid.
    async fn ensure_fresh_token(self: &Rc<Self>) -> Result<(), ClientError> {
        let Some((timeline, stamp)) = self
            .live
            .borrow()
            .as_ref()
            .map(|l| (*l.tokens.timeline(), l.stamp.clone()))
        else {
            return Err(ClientError::NotLoggedIn);
        };
        if !timeline.refresh_before_request(self.now()) {
            return Ok(());
        }
        let result = self.refresh(Why::Stale(Some(stamp))).await;
        self.reschedule();
        match result {
            Ok(()) => Ok(()),
            Err(error) if error.is_transient() && timeline.access_token_valid(self.now()) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// [`send_signed`](Self::send_signed) for the SDK's own calls: anything but 2xx is
    /// an error.
    async fn send_expecting_success(
        self: &Rc<Self>,
        request: Request,
    ) -> Result<Reply, ClientError> {
        let reply = self.send_signed(request).await?;
        if reply.ok() {
            return Ok(reply);
        }
        Err(match reply.answer().verdict() {
            Verdict::SessionEnded(terminal) => ClientError::SessionEnded(terminal),
            _ => reply.to_error(),
        })
    }

    async fn login(self: &Rc<Self>, url: JsValue, init: JsValue) -> Result<JsValue, ClientError> {
        let key = self.ensure_key().await?;
        let request = net::login(&url, &init)?;
        let target = request.url();
        let method = request.method();
        let (mut nonce_retried, mut clock_retried) = (false, false);
        loop {
            let attempt = request.clone().map_err(|e| ClientError::InvalidInput {
                detail: js::error_message(&e),
            })?;
            let proof = self.proof(&key, &method, &target, None).await?;
            net::sign(&attempt, &proof, None)?;
            let reply = net::send(&attempt).await?;
            self.note_nonce(&target, &reply);
            if reply.ok() {
                let me = Rc::clone(self);
                let work = async move { me.take_tokens(&key, &reply).await };
                with_lock(&self.config.lock_name(), Box::pin(work)).await?;
                return Ok(self.info());
            }
            match reply.answer().verdict() {
                Verdict::NonceChallenge if !nonce_retried => nonce_retried = true,
                Verdict::ClockSkew if !clock_retried => {
                    clock_retried = true;
                    if let Some(clock) = reply.clock_from_date(self.clock.get()) {
                        self.clock.set(clock);
                    }
                }
                _ => return Err(reply.to_error()),
            }
        }
    }

    /// A sensitive action: `request` goes, signed with the session's access token, to
    /// a route that replaces the session's tokens, and the token response is taken up.
    /// The session lock is held from sending to storing, so no refresh (here or in
    /// another tab) presents the refresh token the route just replaced: that would be
    /// refresh-token reuse, which revokes the session.
    async fn rotate(self: &Rc<Self>, request: Request) -> Result<JsValue, ClientError> {
        self.state.get().require_active()?;
        self.mark_activity();
        self.ensure_fresh_token().await?;
        let key = self.key()?;
        let me = Rc::clone(self);
        let work = async move { me.rotate_locked(&key, request).await };
        with_lock(&self.config.lock_name(), Box::pin(work)).await?;
        self.reschedule();
        Ok(self.info())
    }

    async fn rotate_locked(
        self: &Rc<Self>,
        key: &DeviceKey,
        request: Request,
    ) -> Result<(), ClientError> {
        let url = request.url();
        let method = request.method();
        let (mut nonce_retried, mut clock_retried) = (false, false);
        loop {
            let access_token = self
                .live
                .borrow()
                .as_ref()
                .map(|live| Zeroizing::new(live.tokens.access_token().to_owned()));
            let Some(access_token) = access_token else {
                self.state.get().require_active()?;
                return Err(ClientError::NotLoggedIn);
            };
            let attempt = request.clone().map_err(|e| ClientError::InvalidInput {
                detail: js::error_message(&e),
            })?;
            let proof = self.proof(key, &method, &url, Some(&access_token)).await?;
            net::sign(&attempt, &proof, Some(&access_token))?;
            let reply = net::send(&attempt).await?;
            self.note_nonce(&url, &reply);
            if reply.ok() {
                return self.take_tokens(key, &reply).await.map(drop);
            }
            match reply.answer().verdict() {
                Verdict::NonceChallenge if !nonce_retried => nonce_retried = true,
                Verdict::ClockSkew if !clock_retried => {
                    clock_retried = true;
                    if let Some(clock) = reply.clock_from_date(self.clock.get()) {
                        self.clock.set(clock);
                    }
                }
                Verdict::SessionEnded(terminal) => {
                    self.end_locked(terminal, None).await;
                    return Err(ClientError::SessionEnded(terminal));
                }
                _ => return Err(reply.to_error()),
            }
        }
    }

    async fn logout(self: &Rc<Self>) {
        if self.state.get().is_active() {
            let sent = match net::internal("POST", &self.config.url("/logout"), None) {
                Ok(request) => self.send_signed(request).await,
                Err(error) => Err(error),
            };
            match sent {
                Ok(reply) if reply.ok() => {}
                // The session was over anyway; `send_signed` already said how.
                Ok(reply) if matches!(reply.answer().verdict(), Verdict::SessionEnded(_)) => {}
                Ok(reply) => self.emit_error(&reply.to_error()),
                Err(error) => self.emit_error(&error),
            }
        }
        // Whatever the server said, this browser forgets key and tokens: without the
        // key, a session the server still holds can never be used again.
        let session_id = self.session_id();
        let me = Rc::clone(self);
        let sid = session_id.clone();
        let work = async move { me.storage.forget(sid.as_deref()).await };
        if let Err(error) = with_lock(&self.config.lock_name(), Box::pin(work)).await {
            self.emit_error(&error);
        }
        self.key.borrow_mut().take();
        self.broadcast(
            "ended",
            Some(Terminal::Closed),
            session_id.as_deref().unwrap_or(""),
        );
        self.end_local(Terminal::Closed, None);
    }

    // ---- other tabs ------------------------------------------------------------------

    fn broadcast(&self, kind: &str, terminal: Option<Terminal>, session_id: &str) {
        if let Some(channel) = self.channel.borrow().as_ref() {
            let message = js::object(&[
                ("kind", kind.into()),
                (
                    "state",
                    terminal.map_or(JsValue::NULL, |t| t.as_str().into()),
                ),
                ("sid", session_id.into()),
            ]);
            let _ = channel.post_message(&message);
        }
    }

    fn on_message(self: &Rc<Self>, data: &JsValue) {
        match js::get_str(data, "kind").as_deref() {
            Some("sync") => spawn_local(Rc::clone(self).reload(false)),
            Some("login") => spawn_local(Rc::clone(self).reload(true)),
            Some("ended") => {
                let Some(terminal) = js::get_str(data, "state")
                    .as_deref()
                    .and_then(Terminal::parse)
                else {
                    return;
                };
                if terminal == Terminal::Closed {
                    // Another tab logged out and deleted the shared device key.
                    self.key.borrow_mut().take();
                }
                let sid = js::get_str(data, "sid").filter(|s| !s.is_empty());
                if sid.is_none() || sid == self.session_id() {
                    self.end_local(terminal, None);
                }
            }
            _ => {}
        }
    }

    /// Re-reads storage after another tab changed it (or this one woke up).
    async fn reload(self: Rc<Self>, key_too: bool) {
        if key_too || self.key.borrow().is_none() {
            match self.storage.load_key().await {
                Ok(Some(key)) => *self.key.borrow_mut() = Some(Rc::new(key)),
                Ok(None) => {}
                Err(error) => self.emit_error(&error),
            }
        }
        match self.storage.load_session().await {
            Ok(Stored::Live(record)) if self.bound_to_key(&record) => {
                let offset = record.offset_ms;
                self.adopt(live_of(record), Some(offset));
            }
            Ok(Stored::Ended {
                terminal,
                session_id,
            }) => {
                if session_id.is_some() && session_id == self.session_id() {
                    self.end_local(terminal, None);
                }
            }
            Ok(_) => {}
            Err(error) => self.emit_error(&error),
        }
        self.reschedule();
    }

    /// Listens to other tabs, to the tab becoming visible and to the network coming
    /// back: timers may have been throttled meanwhile.
    fn listen(self: &Rc<Self>) {
        let channel_name = format!("keybound:{}", self.config.storage_name);
        if let Ok(channel) = BroadcastChannel::new(&channel_name) {
            let weak = Rc::downgrade(self);
            let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                if let Some(me) = weak.upgrade() {
                    let event: MessageEvent = event.unchecked_into();
                    me.on_message(&event.data());
                }
            });
            let target: EventTarget = channel.clone().into();
            self.add_listener(target, "message", on_message);
            *self.channel.borrow_mut() = Some(channel);
        }
        let wake = |me: &Rc<Self>| {
            let weak = Rc::downgrade(me);
            Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
                if let Some(me) = weak.upgrade() {
                    if js::get_str(&js::global("document"), "visibilityState")
                        .is_none_or(|v| v != "hidden")
                        && me.state.get().is_active()
                    {
                        spawn_local(Rc::clone(&me).reload(false));
                    }
                }
            })
        };
        let document = js::global("document");
        if document.is_object() {
            self.add_listener(document.unchecked_into(), "visibilitychange", wake(self));
        }
        self.add_listener(js_sys::global().unchecked_into(), "online", wake(self));
    }

    fn add_listener(
        &self,
        target: EventTarget,
        kind: &'static str,
        callback: Closure<dyn FnMut(JsValue)>,
    ) {
        if target
            .add_event_listener_with_callback(kind, callback.as_ref().unchecked_ref())
            .is_ok()
        {
            self.listeners.borrow_mut().push((target, kind, callback));
        }
    }

    fn dispose(&self) {
        self.disposed.set(true);
        self.timer.borrow_mut().take();
        for (target, kind, callback) in self.listeners.borrow_mut().drain(..) {
            let _ =
                target.remove_event_listener_with_callback(kind, callback.as_ref().unchecked_ref());
        }
        if let Some(channel) = self.channel.borrow_mut().take() {
            channel.close();
        }
    }
}

fn live_of(record: LiveRecord) -> Live {
    Live {
        tokens: record.tokens,
        stamp: record.stamp,
    }
}
