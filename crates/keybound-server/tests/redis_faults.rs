//! Redis faults under two nodes: killed mid-load (only 503s, nothing accepted that
//! should not be), restarted (the nodes recover by themselves), and with append-only
//! persistence nothing written before the crash is lost.
#![cfg(all(feature = "redis", feature = "axum"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/nodes.rs"]
mod nodes;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use keybound_server::lifecycle::{Actor, Reason};
use nodes::{Device, Node, code, login_as, me_request, node, refresh_request, settings};
use redis_server::{Persistence, RedisServer};

const BEFORE: u8 = 0;
const DOWN: u8 = 1;
const RESTARTED: u8 = 2;

async fn two_nodes(server: &RedisServer, key_file: &std::path::Path) -> (Node, Node) {
    let prefix = redis_server::unique_prefix();
    let a = node(settings(&server.url(), &prefix, key_file, &[])).await;
    let b = node(settings(&server.url(), &prefix, key_file, &[])).await;
    (a, b)
}

async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[derive(Debug)]
struct Sample {
    started: u8,
    ended: u8,
    revoked_session: bool,
    status: StatusCode,
    code: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_load_fails_closed_and_the_nodes_recover() {
    let mut server = RedisServer::start();
    let key_dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&server, &key_dir.path().join("keys.json")).await;
    let (a, b) = (Arc::new(a), Arc::new(b));

    let alice = Arc::new(Device::new(1));
    let bob = Arc::new(Device::new(2));
    let alive = login_as(&a.app, &alice, "alice").await;
    let revoked = login_as(&b.app, &bob, "bob").await;
    for node in [&a, &b] {
        assert_eq!(
            me_request(&node.app, &alice, &alive.access_token).await.0,
            StatusCode::OK
        );
        assert_eq!(
            me_request(&node.app, &bob, &revoked.access_token).await.0,
            StatusCode::OK
        );
    }
    b.kb()
        .service()
        .revoke(
            &revoked.session_id,
            Reason::ADMIN_REVOKED,
            Actor::Admin("ops".into()),
        )
        .await
        .unwrap();
    for node in [&a, &b] {
        wait_for(
            "the revocation reaching every node",
            Duration::from_secs(2),
            async || {
                me_request(&node.app, &bob, &revoked.access_token).await.0
                    == StatusCode::UNAUTHORIZED
            },
        )
        .await;
    }

    // Load: four workers, each sending both sessions' requests to both nodes.
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (a, b, alice, bob) = (a.clone(), b.clone(), alice.clone(), bob.clone());
        let (phase, stop) = (phase.clone(), stop.clone());
        let (alive_token, revoked_token) =
            (alive.access_token.clone(), revoked.access_token.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Acquire) {
                for node in [&a, &b] {
                    for (device, token, is_revoked) in
                        [(&alice, &alive_token, false), (&bob, &revoked_token, true)]
                    {
                        let started = phase.load(Ordering::Acquire);
                        let (status, body) = me_request(&node.app, device, token).await;
                        samples.push(Sample {
                            started,
                            ended: phase.load(Ordering::Acquire),
                            revoked_session: is_revoked,
                            status,
                            code: code(&body).to_owned(),
                        });
                    }
                }
            }
            samples
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    phase.store(DOWN, Ordering::Release);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // While Redis is down, nobody can log in either.
    let carol = Device::new(3);
    let request = http::Request::post("/api/login")
        .header("dpop", carol.proof("POST", "/api/login", None))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"username":"carol"}"#))
        .unwrap();
    let (status, _) = nodes::send(&a.app, request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    server.restart();
    phase.store(RESTARTED, Ordering::Release);
    // Without persistence the restarted Redis is empty: alice's session is unknown
    // now, which the nodes must say (401) instead of 503 once they have reconnected.
    let recovery = wait_for("the nodes' recovery", Duration::from_secs(10), async || {
        let (status_a, _) = me_request(&a.app, &alice, &alive.access_token).await;
        let (status_b, _) = me_request(&b.app, &alice, &alive.access_token).await;
        status_a == StatusCode::UNAUTHORIZED && status_b == StatusCode::UNAUTHORIZED
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Release);
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await.expect("no worker panicked"));
    }

    let count = |f: &dyn Fn(&Sample) -> bool| samples.iter().filter(|s| f(s)).count();
    eprintln!(
        "{} requests; {} while Redis was down; recovered {recovery:?} after the restart",
        samples.len(),
        count(&|s| s.started == DOWN && s.ended == DOWN)
    );
    // The revoked session is never accepted, before, during or after the outage.
    for s in samples.iter().filter(|s| s.revoked_session) {
        assert_ne!(
            s.status,
            StatusCode::OK,
            "a revoked session was accepted: {s:?}"
        );
    }
    // While Redis is down, every request fails closed with 503 and a clear code.
    let down: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.started == DOWN && s.ended == DOWN)
        .collect();
    assert!(down.len() >= 4, "the load kept running during the outage");
    for s in &down {
        assert_eq!(s.status, StatusCode::SERVICE_UNAVAILABLE, "{s:?}");
        assert!(
            s.code == "replay_store_unavailable" || s.code == "session_store_unavailable",
            "{s:?}"
        );
    }
    // Before the outage the live session worked; after it, Redis lost it (no
    // persistence) and nothing was accepted from a stale cache.
    assert!(
        samples
            .iter()
            .any(|s| s.started == BEFORE && !s.revoked_session && s.status == StatusCode::OK)
    );
    for s in samples.iter().filter(|s| s.started == RESTARTED) {
        assert_ne!(s.status, StatusCode::OK, "{s:?}");
    }

    // Recovered without a restart of the nodes: new sessions work across nodes,
    // and revocations propagate again.
    for node in [&a, &b] {
        let listener = node.running.invalidations.as_ref().unwrap();
        assert!(listener.wait_subscribed(Duration::from_secs(5)).await);
        assert!(listener.subscriptions() >= 2);
    }
    let carol_session = login_as(&a.app, &carol, "carol").await;
    assert_eq!(
        me_request(&b.app, &carol, &carol_session.access_token)
            .await
            .0,
        StatusCode::OK
    );
    a.kb()
        .service()
        .revoke(
            &carol_session.session_id,
            Reason::ADMIN_REVOKED,
            Actor::Admin("ops".into()),
        )
        .await
        .unwrap();
    wait_for(
        "the revocation reaching node B",
        Duration::from_secs(2),
        async || {
            me_request(&b.app, &carol, &carol_session.access_token)
                .await
                .0
                == StatusCode::UNAUTHORIZED
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_append_only_persistence_no_session_is_lost_in_a_crash() {
    let mut server = RedisServer::start_with(Persistence::AppendOnlyAlways);
    let key_dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&server, &key_dir.path().join("keys.json")).await;

    let alice = Device::new(1);
    let bob = Device::new(2);
    let login = login_as(&a.app, &alice, "alice").await;
    let (status, refreshed) = refresh_request(&a.app, &alice, &login.refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    let refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let bob_session = login_as(&b.app, &bob, "bob").await;
    a.kb()
        .service()
        .revoke(
            &bob_session.session_id,
            Reason::ADMIN_REVOKED,
            Actor::Admin("ops".into()),
        )
        .await
        .unwrap();

    // Killed without warning: only what the append-only file holds survives.
    server.kill();
    let (status, body) = me_request(&b.app, &alice, &access).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // The refresh endpoint checks the token's binding before recording its proof:
    // the session store refuses.
    let (status, body) = refresh_request(&b.app, &alice, &refresh).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
    );
    server.restart();

    for node in [&a, &b] {
        let recovery = wait_for("the node's recovery", Duration::from_secs(10), async || {
            me_request(&node.app, &alice, &access).await.0 != StatusCode::SERVICE_UNAVAILABLE
        })
        .await;
        eprintln!("a node recovered {recovery:?} after the restart");
        assert_eq!(
            me_request(&node.app, &alice, &access).await.0,
            StatusCode::OK
        );
    }
    for node in [&a, &b] {
        let (status, body) = me_request(&node.app, &bob, &bob_session.access_token).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "session_revoked")
        );
    }
    // The rotation state survived too: the current token rotates, the first one is
    // recognised as reuse.
    let (status, body) = refresh_request(&b.app, &alice, &refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = refresh_request(&a.app, &alice, &login.refresh_token).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "refresh_token_reused")
    );
}
