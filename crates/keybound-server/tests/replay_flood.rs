//! A flood of unauthenticated proofs cannot take a signed-in user's requests down.
//!
//! With a replay store of capacity 1,000, 5,000 login and refresh requests, each with
//! a valid proof from a fresh self-made key but no valid credentials or refresh token,
//! are refused for what they lack (never `503`) and record nothing; the signed-in
//! user's calls and refresh, and a fresh login, all succeed during and after the flood.
//! The same against Redis (a private `redis-server`).
#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

use axum::Router;
use axum::body::{Body, to_bytes};
use common::T0_MS;
use common::http::Device;
use http::{Request, StatusCode};
use keybound_server::axum::Running;
use keybound_server::proto::TokenResponse;
use serde_json::{Value, json};
use tower::ServiceExt;

const ORIGIN: &str = "https://api.example";
const FLOOD: usize = 5_000;

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(device: &Device, path: &str, body: &Value) -> Request<Body> {
    let proof = device.proof("POST", &format!("{ORIGIN}{path}"), T0_MS / 1000, None, None);
    Request::post(path)
        .header("dpop", proof)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn me(device: &Device, at: &str) -> Request<Body> {
    let proof = device.proof(
        "GET",
        &format!("{ORIGIN}/api/me"),
        T0_MS / 1000,
        Some(at),
        None,
    );
    Request::get("/api/me")
        .header("dpop", proof)
        .header("authorization", format!("DPoP {at}"))
        .body(Body::empty())
        .unwrap()
}

/// A device key nobody has seen: a random seed.
fn fresh_device() -> Device {
    Device::random()
}

async fn login(app: &Router, device: &Device, password: &str) -> (StatusCode, Value) {
    let body = json!({"username": "alice", "password": password});
    send(app, post(device, "/api/login", &body)).await
}

async fn refresh(app: &Router, device: &Device, token: &str) -> (StatusCode, Value) {
    send(
        app,
        post(device, "/session/refresh", &json!({"refresh_token": token})),
    )
    .await
}

/// The flood and the user's requests around it, on a service set up with a replay
/// capacity of 1,000.
async fn flood_then_use(running: &Running) {
    let app = common::http::app(running.keybound.clone());
    let user = Device::new(1);
    let (status, body) = login(&app, &user, "wonderland").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tokens: TokenResponse = serde_json::from_value(body).unwrap();
    // A refresh token the server issued, for the flood to present with other keys.
    let stolen = tokens.refresh_token.clone();

    for i in 0..FLOOD {
        let attacker = fresh_device();
        let (status, body) = match i % 3 {
            0 => login(&app, &attacker, "guess").await,
            1 => refresh(&app, &attacker, "not-a-refresh-token").await,
            _ => refresh(&app, &attacker, &stolen).await,
        };
        let expected = match i % 3 {
            0 => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            1 => (StatusCode::BAD_REQUEST, "refresh_token_malformed"),
            _ => (StatusCode::BAD_REQUEST, "refresh_key_mismatch"),
        };
        let got = body["error_code"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap_or_default();
        assert_eq!((status, got), expected, "flood request {i}: {body}");
        if i % 1000 == 999 {
            // During the flood: the user's calls go through.
            let (status, body) = send(&app, me(&user, &tokens.access_token)).await;
            assert_eq!(status, StatusCode::OK, "during the flood: {body}");
        }
    }
    // Recorded: the user's login and five calls, nothing of the flood.
    if let Some(len) = running.keybound.verifier().replay_store().approximate_len() {
        assert_eq!(len, 6, "the flood reached the replay store");
    }

    // After the flood: calls, a refresh (from the flood's address, which these tests
    // do not distinguish) and a new login all succeed.
    for _ in 0..20 {
        let (status, body) = send(&app, me(&user, &tokens.access_token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = refresh(&app, &user, &tokens.refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rotated: TokenResponse = serde_json::from_value(body).unwrap();
    let (status, body) = send(&app, me(&user, &rotated.access_token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = login(&app, &Device::new(2), "wonderland").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_flood_of_unauthenticated_proofs_leaves_the_memory_replay_store_alone() {
    let (running, _clock) = common::http::keybound(common::http::settings(&[(
        "KEYBOUND_REPLAY_CAPACITY",
        "1000",
    )]))
    .await;
    flood_then_use(&running).await;
}

#[tokio::test]
async fn a_replayed_login_or_refresh_request_is_still_refused() {
    let (running, _clock) = common::http::keybound(common::http::settings(&[(
        "KEYBOUND_REPLAY_CAPACITY",
        "1000",
    )]))
    .await;
    let app = common::http::app(running.keybound.clone());
    let user = Device::new(3);
    let body = json!({"username": "alice", "password": "wonderland"});
    let request = || post(&user, "/api/login", &body);
    let first = request();
    let (parts, _) = first.into_parts();
    let replay = |parts: &http::request::Parts| {
        let mut builder = Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone());
        for (name, value) in &parts.headers {
            builder = builder.header(name, value);
        }
        builder.body(Body::from(body.to_string())).unwrap()
    };
    let (status, login) = send(&app, replay(&parts)).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let (status, again) = send(&app, replay(&parts)).await;
    assert_eq!(
        (status, again["error_code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("replayed_jti"))
    );

    let token = login["refresh_token"].as_str().unwrap();
    let (parts, _) = post(&user, "/session/refresh", &json!({"refresh_token": token})).into_parts();
    let refresh_again = |parts: &http::request::Parts| {
        let mut builder = Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone());
        for (name, value) in &parts.headers {
            builder = builder.header(name, value);
        }
        builder
            .body(Body::from(json!({"refresh_token": token}).to_string()))
            .unwrap()
    };
    let (status, body) = send(&app, refresh_again(&parts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(&app, refresh_again(&parts)).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("replayed_jti"))
    );
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;

    #[tokio::test]
    async fn a_flood_of_unauthenticated_proofs_leaves_the_redis_replay_store_alone() {
        let server = redis_server::RedisServer::start();
        let prefix = redis_server::unique_prefix();
        let url = server.url();
        let (running, _clock) = common::http::keybound(common::http::settings(&[
            ("KEYBOUND_STORE", url.as_str()),
            ("KEYBOUND_REDIS_PREFIX", prefix.as_str()),
            ("KEYBOUND_REPLAY_CAPACITY", "1000"),
        ]))
        .await;
        flood_then_use(&running).await;
        let client = ::redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let entries: usize = ::redis::cmd("ZCARD")
            .arg(format!("{prefix}replay"))
            .query_async(&mut conn)
            .await
            .unwrap();
        // The user's two logins, one refresh and 26 calls; nothing of the flood.
        assert_eq!(entries, 29, "the flood reached Redis");
    }

    #[tokio::test]
    async fn the_redis_replay_store_is_bounded_and_fails_closed_when_full() {
        use keybound_server::{ManualClock, ReplayError, ReplayStore, replay_key};
        let server = redis_server::RedisServer::start();
        let prefix = redis_server::unique_prefix();
        let store = keybound_server::store::RedisStore::connect_with(
            &server.url(),
            keybound_server::store::redis::RedisOptions::default()
                .prefix(prefix)
                .replay_capacity(3),
        )
        .await
        .unwrap();
        let clock = ManualClock::new(T0_MS);
        let replay = store.replay_store(std::sync::Arc::new(clock.clone()));
        let key = |i: u32| replay_key("jkt", &format!("jti-{i}"));
        for i in 0..3 {
            assert_eq!(replay.insert_once(&key(i), T0_MS + 2_000).await, Ok(true));
        }
        assert_eq!(replay.insert_once(&key(1), T0_MS + 2_000).await, Ok(false));
        assert_eq!(
            replay.insert_once(&key(3), T0_MS + 2_000).await,
            Err(ReplayError::Full { capacity: 3 })
        );
        // Live entries were kept; once they expire there is room again.
        assert_eq!(replay.insert_once(&key(2), T0_MS + 2_000).await, Ok(false));
        clock.advance(std::time::Duration::from_secs(2));
        assert_eq!(replay.insert_once(&key(3), T0_MS + 4_000).await, Ok(true));
        assert_eq!(replay.insert_once(&key(1), T0_MS + 4_000).await, Ok(true));
        clock.advance(std::time::Duration::from_secs(2));
        assert_eq!(replay.sweep().await, Ok(2));
    }
}
