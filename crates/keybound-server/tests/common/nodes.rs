//! Server nodes for multi-node tests: a complete keybound service built by
//! `Keybound::setup` from `KEYBOUND_*` settings, its router, and a device that signs
//! requests. Include with `#[path = "common/nodes.rs"] mod nodes;`.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{Request, StatusCode};
use keybound_server::axum::{ApiError, Keybound, ProofOfPossession, Running, Session, routes};
use keybound_server::lifecycle::OpenRequest;
use keybound_server::proto::ed25519_dalek::SigningKey;
use keybound_server::proto::{ProofBuilder, PublicJwk, TokenResponse};
use keybound_server::settings::Settings;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The origin every node serves (they sit behind one load balancer).
pub const ORIGIN: &str = "https://api.example";

/// One node: its running service and its router.
pub struct Node {
    pub running: Running,
    pub app: Router,
}

impl Node {
    pub fn kb(&self) -> &Keybound {
        &self.running.keybound
    }
}

async fn login(
    State(kb): State<Keybound>,
    proof: ProofOfPossession,
    Json(body): Json<Value>,
) -> Result<keybound_server::axum::TokenReply, ApiError> {
    let user = body["username"].as_str().unwrap_or("nobody").to_owned();
    kb.open_session(&proof, &user, OpenRequest::new()).await
}

async fn me(session: Session) -> Json<Value> {
    Json(json!({"user": session.user_id, "session_id": session.session_id}))
}

/// The settings of a node on `redis_url` under `prefix`; `key_file` holds the signing
/// key and refresh secret every node must share.
pub fn settings(
    redis_url: &str,
    prefix: &str,
    key_file: &Path,
    extra: &[(&str, &str)],
) -> Settings {
    let mut vars: HashMap<String, String> = [
        ("KEYBOUND_STORE", redis_url),
        ("KEYBOUND_PUBLIC_ORIGIN", ORIGIN),
        ("KEYBOUND_KEY_FILE", key_file.to_str().unwrap()),
        ("KEYBOUND_REDIS_PREFIX", prefix),
        ("KEYBOUND_REDIS_TIMEOUT_MS", "500"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::from_lookup(|name| vars.get(name).cloned()).unwrap()
}

/// A node built exactly as an application builds one.
pub async fn node(settings: Settings) -> Node {
    let running = Keybound::setup(settings).build().await.unwrap();
    let listener = running
        .invalidations
        .as_ref()
        .expect("a Redis node has a listener");
    assert!(listener.is_subscribed(), "the node subscribed at start-up");
    let app = Router::new()
        .route("/api/login", post(login))
        .route("/api/me", get(me))
        .merge(routes("/session"))
        .with_state(running.keybound.clone());
    Node { running, app }
}

/// A browser's device key.
pub struct Device {
    key: SigningKey,
    jti: AtomicU64,
}

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

impl Device {
    pub fn new(seed: u8) -> Self {
        let mut bytes = [seed; 32];
        getrandom::fill(&mut bytes[..16]).unwrap();
        Self {
            key: SigningKey::from_bytes(&bytes),
            jti: AtomicU64::new(0),
        }
    }

    pub fn jkt(&self) -> String {
        PublicJwk::from_verifying_key(&self.key.verifying_key()).thumbprint()
    }

    /// A fresh proof for `method path`, bound to `access_token` when given.
    pub fn proof(&self, method: &str, path: &str, access_token: Option<&str>) -> String {
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti[..8]).unwrap();
        jti[8..].copy_from_slice(&self.jti.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let jwk = PublicJwk::from_verifying_key(&self.key.verifying_key());
        let mut builder =
            ProofBuilder::new(jwk, method, &format!("{ORIGIN}{path}"), now_secs(), jti).unwrap();
        if let Some(token) = access_token {
            builder = builder.access_token(token);
        }
        builder.sign(&self.key).unwrap()
    }
}

/// Sends a request; returns the status and the JSON body (`null` if none).
pub async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

/// Logs `user` in from `device`.
pub async fn login_as(app: &Router, device: &Device, user: &str) -> TokenResponse {
    let request = Request::post("/api/login")
        .header("dpop", device.proof("POST", "/api/login", None))
        .header("content-type", "application/json")
        .body(Body::from(json!({"username": user}).to_string()))
        .unwrap();
    let (status, body) = send(app, request).await;
    assert_eq!(status, StatusCode::OK, "login failed: {body}");
    serde_json::from_value(body).unwrap()
}

/// `GET /api/me` with the access token.
pub async fn me_request(app: &Router, device: &Device, access_token: &str) -> (StatusCode, Value) {
    let request = Request::get("/api/me")
        .header("authorization", format!("DPoP {access_token}"))
        .header("dpop", device.proof("GET", "/api/me", Some(access_token)))
        .body(Body::empty())
        .unwrap();
    send(app, request).await
}

/// `POST /session/refresh`.
pub async fn refresh_request(
    app: &Router,
    device: &Device,
    refresh_token: &str,
) -> (StatusCode, Value) {
    let request = Request::post("/session/refresh")
        .header("dpop", device.proof("POST", "/session/refresh", None))
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"refresh_token": refresh_token}).to_string(),
        ))
        .unwrap();
    send(app, request).await
}

/// The `error_code` of an error body.
pub fn code(body: &Value) -> &str {
    body["error_code"].as_str().unwrap_or("")
}
