//! The keybound demo server: a single-page app and an axum API that show device-bound
//! sessions end to end. `keybound-server` is used only through its public API.
//!
//! | route | does |
//! |---|---|
//! | `GET /` and `/assets/…` | the web app (`examples/demo/web/dist`) |
//! | `GET /api/config` | lifetimes, demo users, and whether DBSC is on (`dbsc`), for the sign-in page |
//! | `POST /api/login` | `{"username","password"}` + DPoP proof → token response; with DBSC on and no `DPoP` header, starts a DBSC session instead (`Secure-Session-Registration`; the browser registers and gets the bound cookie); `401 invalid_credentials`; `429 rate_limited` with `Retry-After` past the attempt budgets (per client address and per username) |
//! | `GET /api/me`, `GET /api/orders` | protected data |
//! | `GET /api/notes`, `POST /api/notes` | the user's notes (`{"text"}`), kept in memory |
//! | `POST /api/change-password` | `{"current_password","new_password"}`: sets the new password, then rotates this session's tokens and revokes every other session of the user (including logins racing the change), answers with the new token response (a DBSC session: its new bound cookie); counts against the username's attempt budget |
//! | `GET /api/events` | the user's audit events as server-sent events (see the `events` module docs) |
//! | `POST /api/admin/users/{user}/revoke` | operator: revokes every session of a user |
//! | `GET /metrics` | operator: Prometheus text |
//! | `/session/…`, `/.well-known/jwks.json` | keybound's session endpoints |
//!
//! Operator routes need `Authorization: Bearer <KEYBOUND_DEMO_ADMIN_TOKEN>` when that
//! variable is set, and otherwise answer only same-site callers on a loopback address.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use keybound_demo::Demo;
//! use keybound_server::axum::Keybound;
//! use keybound_server::lifecycle::BroadcastSink;
//! use keybound_server::settings::Settings;
//!
//! let audit = BroadcastSink::new(1024);
//! let sink = audit.clone();
//! let running = Keybound::setup(Settings::from_env()?)
//!     .configure_service(move |service| service.audit_sink(sink))
//!     .build()
//!     .await?;
//! let app = Demo::new(running.keybound, audit).web_dir("examples/demo/web/dist").router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(
//!     listener,
//!     app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
//! )
//! .await?;
//! # Ok(()) }
//! ```

mod admin;
mod api;
mod device;
mod events;
pub mod users;
mod web;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::middleware;
use axum::routing::{any, get, post};
use keybound_server::axum::{Keybound, LoginLimiter, routes};
use keybound_server::lifecycle::BroadcastSink;
use keybound_server::settings::LoginLimits;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;
use tower_http::services::ServeDir;
use zeroize::Zeroizing;

pub use device::device_label;
pub use users::Users;

/// The largest request body the demo's own routes accept.
const BODY_LIMIT: usize = 16 * 1024;

/// The demo application, ready to become an axum [`Router`].
pub struct Demo {
    kb: Keybound,
    audit: BroadcastSink,
    users: Arc<Users>,
    web_dir: PathBuf,
    admin_token: Option<Zeroizing<String>>,
    metrics: Option<PrometheusHandle>,
    shutdown: Option<watch::Receiver<bool>>,
    store_label: String,
    login_limits: LoginLimits,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("web_dir", &self.web_dir)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("store", &self.store_label)
            .finish_non_exhaustive()
    }
}

impl Demo {
    /// The demo on `kb`. `audit` must be a sink of `kb`'s session service (added with
    /// `Setup::configure_service`): `GET /api/events` subscribes to it.
    pub fn new(kb: Keybound, audit: BroadcastSink) -> Self {
        Self {
            kb,
            audit,
            users: Arc::new(Users::demo()),
            web_dir: PathBuf::from("examples/demo/web/dist"),
            admin_token: None,
            metrics: None,
            shutdown: None,
            store_label: "memory".to_owned(),
            login_limits: LoginLimits::default(),
        }
    }

    /// Login attempt budgets (default [`LoginLimits::default`]; the server passes
    /// `Settings::login_limits`).
    pub fn login_limits(mut self, limits: LoginLimits) -> Self {
        self.login_limits = limits;
        self
    }

    /// Where the built web app is (default `examples/demo/web/dist`).
    pub fn web_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.web_dir = dir.into();
        self
    }

    /// The token operator routes require; `None` (the default) limits them to loopback
    /// callers.
    pub fn admin_token(mut self, token: Option<Zeroizing<String>>) -> Self {
        self.admin_token = token;
        self
    }

    /// Serves `GET /metrics` from this Prometheus recorder (install it once per process).
    pub fn metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// Ends open event streams when `signal` turns `true` (or its sender is dropped), so
    /// a graceful shutdown does not wait for them.
    pub fn shutdown(mut self, signal: watch::Receiver<bool>) -> Self {
        self.shutdown = Some(signal);
        self
    }

    /// How the store is described to the app (`GET /api/config`), e.g. `sqlite`.
    pub fn store_label(mut self, label: impl Into<String>) -> Self {
        self.store_label = label.into();
        self
    }

    /// The router. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()`: the operator routes look
    /// at the caller's address.
    pub fn router(self) -> Router {
        let public_origin = self.kb.verifier().public_origin().to_owned();
        let state = AppState {
            admin: admin::AdminGuard::new(self.admin_token, &public_origin),
            kb: self.kb,
            audit: self.audit,
            users: self.users,
            notes: Arc::default(),
            web_dir: Arc::new(self.web_dir.clone()),
            metrics: self.metrics,
            shutdown: self.shutdown,
            store_label: Arc::new(self.store_label),
            login_limiter: Arc::new(LoginLimiter::new(&self.login_limits)),
        };
        let api = Router::new()
            .route("/api/config", get(api::config))
            .route("/api/login", post(api::login))
            .route("/api/me", get(api::me))
            .route("/api/orders", get(api::orders))
            .route("/api/notes", get(api::notes).post(api::add_note))
            .route("/api/change-password", post(api::change_password))
            .route("/api/events", get(events::events))
            .route(
                "/api/admin/users/{user}/revoke",
                post(api::admin_revoke_user),
            )
            .route("/api/{*rest}", any(api::api_not_found))
            .route("/metrics", get(api::metrics))
            .layer(DefaultBodyLimit::max(BODY_LIMIT));
        Router::new()
            .merge(api)
            .merge(routes::<AppState>("/session"))
            .route("/", get(web::index))
            .fallback_service(ServeDir::new(self.web_dir))
            .layer(middleware::from_fn(web::security_headers))
            .with_state(state)
    }
}

/// What every handler can reach.
#[derive(Clone)]
struct AppState {
    kb: Keybound,
    audit: BroadcastSink,
    users: Arc<Users>,
    notes: Arc<api::Notes>,
    admin: admin::AdminGuard,
    web_dir: Arc<PathBuf>,
    metrics: Option<PrometheusHandle>,
    shutdown: Option<watch::Receiver<bool>>,
    store_label: Arc<String>,
    login_limiter: Arc<LoginLimiter>,
}

impl FromRef<AppState> for Keybound {
    fn from_ref(state: &AppState) -> Self {
        state.kb.clone()
    }
}
