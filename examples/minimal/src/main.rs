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
//!
//! With `KEYBOUND_DBSC=on`, a `POST /api/login` without a `DPoP` header starts a DBSC
//! session instead: the browser registers its own key and is served by a short-lived
//! bound cookie (it lives `KEYBOUND_ACCESS_TTL_SECS`), which `GET /api/me` and the
//! session endpoints accept as they accept DPoP credentials (DBSC needs HTTPS).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, FromRequestParts, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use http::{HeaderMap, StatusCode};
use keybound_server::axum::{
    ApiError, DEFAULT_BODY_LIMIT, DbscOptions, Keybound, LoginLimiter, ProofOfPossession, Session,
    nonce_header, routes,
};
use keybound_server::lifecycle::OpenRequest;
use keybound_server::settings::Settings;
use keybound_server::tls::TlsFiles;
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
/// the credentials. With DBSC on, a request without a `DPoP` header is a browser's sign-in:
/// the session is bound by the browser's DBSC key instead.
async fn login(
    State(kb): State<Keybound>,
    Extension(limiter): Extension<Arc<LoginLimiter>>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let dbsc = kb.dbsc_enabled() && !parts.headers.contains_key("dpop");
    let proof = if dbsc {
        None
    } else {
        Some(ProofOfPossession::from_request_parts(&mut parts, &kb).await?)
    };
    let headers = parts.headers.clone();
    let client_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let request = axum::extract::Request::from_parts(parts, body);
    let body: Result<Json<Credentials>, JsonRejection> =
        <Json<Credentials> as axum::extract::FromRequest<Keybound>>::from_request(request, &kb)
            .await;
    let Json(creds) = body?;
    let ip = match &proof {
        Some(proof) => proof.signals.ip,
        None => client_ip,
    };
    limiter.check(ip, &creds.username)?;
    let known = USERS
        .iter()
        .any(|(user, password)| *user == creds.username && *password == creds.password);
    if !known {
        let body = json!({"error": "invalid_credentials", "error_description": "unknown user or wrong password"});
        return Ok((StatusCode::UNAUTHORIZED, Json(body)).into_response());
    }
    let Some(proof) = proof else {
        let device = user_agent(&headers).unwrap_or("browser");
        let started = kb
            .start_dbsc_session(
                &creds.username,
                OpenRequest::new().device_label(device),
                &headers,
            )
            .await?;
        return Ok(started.into_response());
    };
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

fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers.get(http::header::USER_AGENT)?.to_str().ok()
}

async fn me(session: Session) -> Json<serde_json::Value> {
    Json(json!({
        "user": session.user_id,
        "session_id": session.session_id,
        "binding": session.binding.as_str(),
    }))
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let mut settings = Settings::from_env().unwrap_or_else(|err| fail(&err));
    let tls = TlsFiles::from_env()
        .and_then(|files| files.map(|f| f.server_config()).transpose())
        .unwrap_or_else(|err| fail(&err));
    if tls.is_some() && std::env::var_os("KEYBOUND_PUBLIC_ORIGIN").is_none() {
        settings.public_origin = format!("https://{}", settings.listen);
    }
    let listen = settings.listen;
    let dbsc = settings.dbsc.then(|| DbscOptions {
        unbound_cookie: settings.dbsc_unbound_cookie,
        ..DbscOptions::default()
    });
    let origin = settings.public_origin.clone();
    let limiter = Arc::new(LoginLimiter::new(&settings.login_limits));
    // The sweeper (periodic cleanup) and, with Redis, the revocation listener run
    // as long as `running` lives.
    let running = Keybound::setup(settings)
        .build()
        .await
        .unwrap_or_else(|err| fail(&err));
    let kb = match dbsc {
        Some(options) => running.keybound.clone().with_dbsc(options, "/session"),
        None => running.keybound.clone(),
    };
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
