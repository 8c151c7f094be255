//! The smallest complete keybound service. Copy it, then replace the demo users with
//! your own authentication.
//!
//! `POST /api/login` (JSON `{"username","password"}` + a `DPoP` proof) opens a session
//! bound to the proof's key; `GET /api/me` needs a valid session; the session endpoints
//! live under `/session`. Settings come from `KEYBOUND_*` variables
//! (`keybound_server::settings`); invalid ones stop start-up with exit code 2. For
//! several nodes sharing sessions, start each with the same `KEYBOUND_KEY_FILE` and
//! `KEYBOUND_STORE=redis://127.0.0.1:6379/`. With `KEYBOUND_TLS_CERT` and
//! `KEYBOUND_TLS_KEY` (PEM files) it serves HTTPS.

mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use http::StatusCode;
use keybound_server::axum::{
    ApiError, DEFAULT_BODY_LIMIT, Keybound, LoginLimiter, ProofOfPossession, Session, nonce_header,
    routes,
};
use keybound_server::lifecycle::OpenRequest;
use keybound_server::settings::Settings;
use serde::Deserialize;
use serde_json::json;

/// Demo users. A real service checks a password hash in its user store.
const USERS: [(&str, &str); 2] = [("alice", "wonderland"), ("bob", "builder")];

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// Verifies the proof first (the device key the session will be bound to), then the
/// attempt budgets of the client address and the username (`429 rate_limited`), then
/// the credentials.
async fn login(
    State(kb): State<Keybound>,
    Extension(limiter): Extension<Arc<LoginLimiter>>,
    proof: ProofOfPossession,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(creds) = body?;
    limiter.check(proof.signals.ip, &creds.username)?;
    let known = USERS
        .iter()
        .any(|(user, password)| *user == creds.username && *password == creds.password);
    if !known {
        let body = json!({"error": "invalid_credentials", "error_description": "unknown user or wrong password"});
        return Ok((StatusCode::UNAUTHORIZED, Json(body)).into_response());
    }
    let device = proof.user_agent().unwrap_or("unknown device").to_owned();
    let reply = kb
        .open_session(
            &proof,
            &creds.username,
            OpenRequest::new().device_label(device),
        )
        .await?;
    Ok(reply.into_response())
}

async fn me(session: Session) -> Json<serde_json::Value> {
    Json(json!({"user": session.user_id, "session_id": session.session_id}))
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let mut settings = Settings::from_env().unwrap_or_else(|err| fail(&err));
    let tls = tls::TlsFiles::from_lookup(|name| std::env::var(name).ok())
        .and_then(|files| files.map(|f| f.server_config()).transpose())
        .unwrap_or_else(|err| fail(&err));
    if tls.is_some() && std::env::var_os("KEYBOUND_PUBLIC_ORIGIN").is_none() {
        settings.public_origin = format!("https://{}", settings.listen);
    }
    let listen = settings.listen;
    let origin = settings.public_origin.clone();
    let limiter = Arc::new(LoginLimiter::new(&settings.login_limits));
    // The sweeper (periodic cleanup) and, with Redis, the revocation listener run
    // as long as `running` lives.
    let running = Keybound::setup(settings)
        .build()
        .await
        .unwrap_or_else(|err| fail(&err));
    let kb = running.keybound.clone();
    let app = Router::new()
        .route("/api/login", post(login))
        .route("/api/me", get(me))
        .merge(routes("/session"))
        .layer(DefaultBodyLimit::max(DEFAULT_BODY_LIMIT))
        .layer(Extension(limiter))
        .layer(middleware::from_fn_with_state(kb.clone(), nonce_header))
        .with_state(kb);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|err| fail(&format!("cannot listen on {listen}: {err}")));
    println!("keybound minimal example listening on {origin}");
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let served = match tls {
        None => axum::serve(listener, service).await,
        Some(config) => {
            let listener = listener.into_std().unwrap_or_else(|err| fail(&err));
            let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
            axum_server::from_tcp_rustls(listener, config)
                .unwrap_or_else(|err| fail(&err))
                .serve(service)
                .await
        }
    };
    if let Err(err) = served {
        fail(&err);
    }
}

fn fail(err: &dyn std::fmt::Display) -> ! {
    eprintln!("keybound-minimal: {err}");
    std::process::exit(2)
}
