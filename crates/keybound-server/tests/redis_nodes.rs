//! Two server nodes sharing one Redis: sessions, refreshes and revocations cross nodes.
#![cfg(all(feature = "redis", feature = "axum"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/nodes.rs"]
mod nodes;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, StatusCode};
use keybound_server::lifecycle::{Actor, Reason};
use nodes::{Device, Node, code, login_as, me_request, node, refresh_request, send, settings};
use redis_server::RedisServer;

struct Cluster {
    a: Node,
    b: Node,
    _key_dir: tempfile::TempDir,
    _server: RedisServer,
}

async fn cluster() -> Cluster {
    let server = RedisServer::start();
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("keys.json");
    let prefix = redis_server::unique_prefix();
    let a = node(settings(&server.url(), &prefix, &key_file, &[])).await;
    let b = node(settings(&server.url(), &prefix, &key_file, &[])).await;
    Cluster {
        a,
        b,
        _key_dir: key_dir,
        _server: server,
    }
}

/// Waits until `node` has received more than `before` notices (at most 2 s).
async fn notice_after(node: &Node, before: u64) {
    let listener = node.running.invalidations.as_ref().unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while listener.notices() <= before {
        assert!(Instant::now() < deadline, "no revocation notice arrived");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn notices(node: &Node) -> u64 {
    node.running.invalidations.as_ref().unwrap().notices()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_on_a_works_on_b_and_refreshes_anywhere() {
    let c = cluster().await;
    let device = Device::new(1);
    let login = login_as(&c.a.app, &device, "alice").await;

    let (status, body) = me_request(&c.b.app, &device, &login.access_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"], "alice");

    let (status, refreshed) = refresh_request(&c.b.app, &device, &login.refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(
        me_request(&c.a.app, &device, access).await.0,
        StatusCode::OK
    );

    // The session list is the same on both nodes.
    let list = || {
        Request::get("/session/sessions")
            .header("authorization", format!("DPoP {access}"))
            .header(
                "dpop",
                device.proof("GET", "/session/sessions", Some(access)),
            )
            .body(Body::empty())
            .unwrap()
    };
    let (status, on_a) = send(&c.a.app, list()).await;
    assert_eq!(status, StatusCode::OK, "{on_a}");
    let (_, on_b) = send(&c.b.app, list()).await;
    assert_eq!(on_a, on_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_on_b_is_rejected_on_a() {
    let c = cluster().await;
    let laptop = Device::new(1);
    let phone = Device::new(2);
    let session = login_as(&c.a.app, &laptop, "alice").await;
    // Node A has the session in its cache now.
    assert_eq!(
        me_request(&c.a.app, &laptop, &session.access_token).await.0,
        StatusCode::OK
    );

    // From her phone, through node B, Alice revokes the laptop's session.
    let phone_session = login_as(&c.b.app, &phone, "alice").await;
    let before = notices(&c.a);
    let path = format!("/session/sessions/{}", session.session_id);
    let request = Request::delete(path.as_str())
        .header(
            "authorization",
            format!("DPoP {}", phone_session.access_token),
        )
        .header(
            "dpop",
            phone.proof("DELETE", &path, Some(&phone_session.access_token)),
        )
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&c.b.app, request).await;
    assert!(status.is_success(), "{status} {body}");

    notice_after(&c.a, before).await;
    let (status, body) = me_request(&c.a.app, &laptop, &session.access_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "session_revoked");
    // The phone's own session is untouched on both nodes.
    assert_eq!(
        me_request(&c.a.app, &phone, &phone_session.access_token)
            .await
            .0,
        StatusCode::OK
    );

    // An administrator on B revokes the phone's session too: A refuses it.
    assert_eq!(
        me_request(&c.a.app, &phone, &phone_session.access_token)
            .await
            .0,
        StatusCode::OK
    );
    let before = notices(&c.a);
    c.b.kb()
        .service()
        .revoke(
            &phone_session.session_id,
            Reason::ADMIN_REVOKED,
            Actor::Admin("ops".into()),
        )
        .await
        .unwrap();
    notice_after(&c.a, before).await;
    let (status, body) = me_request(&c.a.app, &phone, &phone_session.access_token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "session_revoked")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_reuse_detected_on_a_revokes_on_b() {
    let c = cluster().await;
    let device = Device::new(1);
    let thief = Device::new(9);
    let login = login_as(&c.a.app, &device, "alice").await;
    let (status, refreshed) = refresh_request(&c.a.app, &device, &login.refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        me_request(&c.b.app, &device, &access).await.0,
        StatusCode::OK
    );

    // The old refresh token shows up again, from another key: reuse, detected on A.
    let before = notices(&c.b);
    let (status, body) = refresh_request(&c.a.app, &thief, &login.refresh_token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "refresh_token_reused")
    );

    notice_after(&c.b, before).await;
    let (status, body) = me_request(&c.b.app, &device, &access).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "session_revoked")
    );
    // The current refresh token is dead on every node.
    let current = refreshed["refresh_token"].as_str().unwrap();
    let (status, body) = refresh_request(&c.b.app, &device, current).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "session_revoked")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_simultaneous_refreshes_on_two_nodes_have_one_winner() {
    let c = Arc::new(cluster().await);
    let device = Arc::new(Device::new(1));
    let login = login_as(&c.a.app, &device, "alice").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (c, device, barrier) = (Arc::clone(&c), Arc::clone(&device), Arc::clone(&barrier));
        let token = login.refresh_token.clone();
        tasks.push(tokio::spawn(async move {
            let app = if i % 2 == 0 { &c.a.app } else { &c.b.app };
            barrier.wait().await;
            refresh_request(app, &device, &token).await
        }));
    }
    let mut refresh_tokens = std::collections::HashSet::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        refresh_tokens.insert(body["refresh_token"].as_str().unwrap().to_owned());
    }
    // One rotation; the 63 others got the same successor again (grace replay).
    assert_eq!(refresh_tokens.len(), 1);
    let successor = refresh_tokens.into_iter().next().unwrap();
    let (status, body) = refresh_request(&c.b.app, &device, &successor).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let info = c.a.kb().service().session(&login.session_id).await.unwrap();
    assert_eq!(info.state.as_str(), "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensitive_action_on_a_supersedes_the_dbsc_cookie_on_b_at_once() {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use keybound_server::lifecycle::OpenRequest;
    use keybound_server::proto::b64;
    use keybound_server::proto::dbsc::DbscKey;
    use keybound_server::{SessionCheck, SessionDenied};

    let c = cluster().await;
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let key = DbscKey::from_json(&serde_json::json!({"kty": "EC", "crv": "P-256",
        "x": b64::encode(&point[1..33]), "y": b64::encode(&point[33..])}))
    .unwrap();
    let (a, b) = (c.a.kb().service(), c.b.kb().service());
    let pending = a
        .open_dbsc_session("alice", OpenRequest::new(), Duration::from_secs(60), false)
        .await
        .unwrap();
    let id = pending.session_id;
    let bound = a.bind_dbsc(&id, &key).await.unwrap();
    let jkt = bound.jkt.to_string();
    // Node B checks the cookie of generation 0, and caches the session.
    assert_eq!(b.check_bound_cookie(&id, "alice", &jkt, 0).await, Ok(()));
    assert_eq!(b.check_bound_cookie(&id, "alice", &jkt, 0).await, Ok(()));
    assert_eq!(b.check(&id, "alice", &jkt).await, Ok(()));

    let before = notices(&c.b);
    let rotated = a
        .rotate_dbsc_on_sensitive_action(&id, &jkt, false)
        .await
        .unwrap();
    assert_eq!(rotated.generation, 1);
    notice_after(&c.b, before).await;
    assert_eq!(
        b.check_bound_cookie(&id, "alice", &jkt, 0).await,
        Err(SessionDenied::Superseded)
    );
    assert_eq!(b.check_bound_cookie(&id, "alice", &jkt, 1).await, Ok(()));
}
