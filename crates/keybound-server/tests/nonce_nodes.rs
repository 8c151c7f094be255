//! Nonces across nodes: two keybound instances behind one load balancer accept each
//! other's nonces when they share the nonce secret (`KEYBOUND_NONCE_SECRET`, or a key
//! file they derive it from), and refuse them otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::Router;
use axum::body::{Body, to_bytes};
use common::T0_MS;
use common::http::Device;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

const LOGIN: &str = "https://api.example/api/login";

async fn node(vars: &[(&str, &str)]) -> (keybound_server::axum::Running, Router) {
    let mut vars = vars.to_vec();
    vars.push(("KEYBOUND_NONCE", "on"));
    let (running, _clock) = common::http::keybound(common::http::settings(&vars)).await;
    let app = common::http::app(running.keybound.clone());
    (running, app)
}

/// A login on `app` with `nonce`: the status, the `DPoP-Nonce` answered and the body.
async fn login(app: &Router, device: &Device, nonce: Option<&str>) -> (StatusCode, String, Value) {
    let proof = device.proof("POST", LOGIN, T0_MS / 1000, None, nonce);
    let request = Request::post("/api/login")
        .header("dpop", proof)
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"username": "alice", "password": "wonderland"}).to_string(),
        ))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let nonce = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = to_bytes(response.into_body(), 1 << 16).await.unwrap();
    (status, nonce, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn nodes_with_one_nonce_secret_accept_each_others_nonces() {
    let secret = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";
    let (_a, node_a) = node(&[("KEYBOUND_NONCE_SECRET", secret)]).await;
    let (_b, node_b) = node(&[("KEYBOUND_NONCE_SECRET", secret)]).await;
    let (_c, node_c) = node(&[]).await;
    let device = Device::new(1);

    let (status, nonce, body) = login(&node_a, &device, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error_code"], "use_dpop_nonce");
    // Node B takes node A's nonce; node A its own.
    let (status, _, body) = login(&node_b, &device, Some(&nonce)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = login(&node_a, &device, Some(&nonce)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A node with another secret refuses it and hands out its own.
    let (status, own, body) = login(&node_c, &device, Some(&nonce)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error_code"], "invalid_nonce");
    assert_ne!(own, nonce);
}

#[tokio::test]
async fn nodes_sharing_a_key_file_share_nonces_without_more_settings() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys.json");
    let key_file = key_file.to_str().unwrap();
    let (_a, node_a) = node(&[("KEYBOUND_KEY_FILE", key_file)]).await;
    let (_b, node_b) = node(&[("KEYBOUND_KEY_FILE", key_file)]).await;
    let device = Device::new(2);
    let (_, nonce, _) = login(&node_a, &device, None).await;
    let (status, nonce_b, body) = login(&node_b, &device, Some(&nonce)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(nonce_b, nonce);
}
