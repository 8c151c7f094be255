//! The smallest complete keybound service. Copy it, then replace the demo users with
//! your own authentication.
//!
//! `POST /api/login` (JSON `{"username","password"}` + a `DPoP` proof) opens a session
//! bound to the proof's key; `GET /api/me` needs a valid session; the session endpoints
//! live under `/session`. Settings come from `KEYBOUND_*` variables
//! (`keybound_server::settings`); for several nodes sharing sessions, start each with
//! the same `KEYBOUND_KEY_FILE` and `KEYBOUND_STORE=redis://127.0.0.1:6379/`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use keybound_server::axum::{ApiError, Keybound, ProofOfPossession, Session, routes};
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

async fn login(
    State(kb): State<Keybound>,
    proof: ProofOfPossession,
    Json(creds): Json<Credentials>,
) -> Result<Response, ApiError> {
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
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => fail(&err),
    };
    let listen = settings.listen;
    let origin = settings.public_origin.clone();
    let running = match Keybound::setup(settings).build().await {
        Ok(running) => running,
        Err(err) => fail(&err),
    };
    let app = Router::new()
        .route("/api/login", post(login))
        .route("/api/me", get(me))
        .merge(routes("/session"))
        .with_state(running.keybound);
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(err) => fail(&format!("cannot listen on {listen}: {err}")),
    };
    println!("keybound minimal example listening on {origin}");
    if let Err(err) = axum::serve(listener, app).await {
        fail(&err);
    }
}

fn fail(err: &dyn std::fmt::Display) -> ! {
    eprintln!("keybound-minimal: {err}");
    std::process::exit(2)
}
