//! Helpers of the HTTP tests: a device that signs DPoP proofs with `keybound-proto`,
//! the test application, and keybound set up on a manual clock.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use keybound_server::axum::{ApiError, Keybound, ProofOfPossession, Running, Session, routes};
use keybound_server::lifecycle::OpenRequest;
use keybound_server::proto::ed25519_dalek::SigningKey;
use keybound_server::proto::{ProofBuilder, Signer};
use keybound_server::settings::Settings;
use keybound_server::{Clock, ManualClock};
use serde_json::{Value, json};

/// 2023-11-14T22:13:20Z.
pub use super::T0_MS;

/// A browser's device key.
pub struct Device {
    key: SigningKey,
}

impl Device {
    pub fn new(seed: u8) -> Self {
        Self {
            key: SigningKey::from_bytes(&[seed; 32]),
        }
    }

    pub fn jkt(&self) -> String {
        self.key.public_jwk().thumbprint()
    }

    /// A fresh proof (random `jti`) for `method url` at `iat`.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        iat: i64,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).unwrap();
        let mut builder = ProofBuilder::new(self.key.public_jwk(), method, url, iat, jti).unwrap();
        if let Some(at) = access_token {
            builder = builder.access_token(at);
        }
        if let Some(nonce) = nonce {
            builder = builder.nonce(nonce);
        }
        builder.sign(&self.key).unwrap()
    }
}

/// Demo users, as in `examples/minimal`.
const USERS: [(&str, &str); 3] = [
    ("alice", "wonderland"),
    ("bob", "builder"),
    ("carol", "christmas"),
];

#[derive(serde::Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn login(
    State(kb): State<Keybound>,
    proof: ProofOfPossession,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(creds) = body?;
    if !USERS.contains(&(creds.username.as_str(), creds.password.as_str())) {
        let body = json!({"error": "invalid_credentials"});
        return Ok((StatusCode::UNAUTHORIZED, Json(body)).into_response());
    }
    let label = proof.user_agent().unwrap_or("test device").to_owned();
    let reply = kb
        .open_session(
            &proof,
            &creds.username,
            OpenRequest::new().device_label(label),
        )
        .await?;
    Ok(reply.into_response())
}

async fn me(session: Session) -> Json<Value> {
    Json(json!({"user": session.user_id, "session_id": session.session_id}))
}

async fn maybe(session: Option<Session>) -> Json<Value> {
    Json(json!({"user": session.map(|s| s.user_id)}))
}

/// The application of the tests: login, `/api/me` (`Session`), `/api/maybe`
/// (`Option<Session>`) and the session routes under `/session`.
pub fn app(kb: Keybound) -> Router {
    app_routes().with_state(kb)
}

/// [`app`] before its state is given.
pub fn app_routes() -> Router<Keybound> {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/me", get(me))
        .route("/api/maybe", get(maybe))
        .merge(routes("/session"))
}

/// Settings from `vars`, with the public origin defaulting to `https://api.example`.
pub fn settings(vars: &[(&str, &str)]) -> Settings {
    let mut map: HashMap<String, String> = HashMap::from([(
        "KEYBOUND_PUBLIC_ORIGIN".to_owned(),
        "https://api.example".to_owned(),
    )]);
    for (k, v) in vars {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::from_lookup(|name| map.get(name).cloned()).unwrap()
}

/// keybound set up from `settings` on a manual clock standing at [`T0_MS`].
pub async fn keybound(settings: Settings) -> (Running, ManualClock) {
    let clock = ManualClock::new(T0_MS);
    let running = Keybound::setup(settings)
        .clock(Arc::new(clock.clone()))
        .build()
        .await
        .unwrap();
    (running, clock)
}

pub fn now(clock: &ManualClock) -> i64 {
    clock.now_secs()
}
