//! The Redis store beyond the conformance suite: TTLs, the replay store, failing
//! closed within the timeout, the layout marker, TTL-dropped sessions, and the
//! invalidation listener's liveness.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keybound_server::lifecycle::{
    Actor, Jkt, OpenRequest, Reason, SessionId, SessionService, SessionState, TokenHash,
};
use keybound_server::store::redis::{RedisOptions, RedisStore};
use keybound_server::store::{
    EndRequest, EndState, SessionBinding, SessionRecord, SessionStore, SweepAction, SweepRequest,
};
use keybound_server::{Clock, KeyRing, ReplayStore, SessionCheck, SystemClock, replay_key};
use redis_server::{Persistence, RedisServer};

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn record(user: &str, at: i64) -> SessionRecord {
    SessionRecord {
        id: SessionId::generate().unwrap(),
        user_id: user.into(),
        jkt: Jkt::from_bytes([1; 32]),
        device_label: None,
        user_agent_hash: None,
        created_at: at,
        last_seen_at: at,
        idle_expires_at: at + 1800,
        absolute_expires_at: at + 43_200,
        generation: 0,
        current_hash: TokenHash::from_bytes([2; 32]),
        previous_hash: None,
        grace_until: None,
        state: SessionState::Active,
        reason: None,
        ended_at: None,
        binding: SessionBinding::Dpop,
    }
}

/// The integer reply of a command, from its RESP text.
fn int(reply: &str) -> i64 {
    reply.trim().trim_start_matches(':').parse().unwrap()
}

async fn store(server: &RedisServer, prefix: &str, options: RedisOptions) -> RedisStore {
    RedisStore::connect_with(&server.url(), options.prefix(prefix))
        .await
        .unwrap()
}

#[tokio::test]
async fn ttls_follow_the_policy() {
    let server = RedisServer::start();
    let prefix = redis_server::unique_prefix();
    let options = RedisOptions::default()
        .retention(Duration::from_secs(100))
        .ttl_margin(Duration::from_secs(10));
    let store = store(&server, &prefix, options).await;
    let t = now();
    let r = record("alice", t);
    store.create(r.clone().into()).await.unwrap();
    let key = format!("{prefix}s:{}", r.id);
    // Active: until the deadline (idle, 1800 s) plus retention and margin.
    let ttl = int(&server.command(&["TTL", &key]));
    assert!((1909..=1910).contains(&ttl), "{ttl}");
    let user_ttl = int(&server.command(&["TTL", &format!("{prefix}u:alice")]));
    assert!(user_ttl >= ttl, "{user_ttl} < {ttl}");

    // Ended: retention and margin from the end.
    store
        .end(EndRequest {
            id: r.id,
            owner: None,
            state: EndState::Revoked,
            reason: Reason::ADMIN_REVOKED,
            now: t + 10,
        })
        .await
        .unwrap();
    let ttl = int(&server.command(&["TTL", &key]));
    assert!((109..=110).contains(&ttl), "{ttl}");
    // No token, hash or thumbprint is stored in the clear beyond the hashes.
    let dump = server.command(&["HGETALL", &key]);
    assert!(!dump.contains("refresh"), "{dump}");
}

#[tokio::test]
async fn the_replay_store_accepts_each_proof_once_and_forgets_it_after_its_window() {
    let server = RedisServer::start();
    let prefix = redis_server::unique_prefix();
    let store = store(&server, &prefix, RedisOptions::default()).await;
    let replay = store.replay_store(Arc::new(SystemClock));
    let now_ms = SystemClock.now_ms();
    let key = replay_key("jkt", "jti-0123456789abcdef");
    assert!(replay.insert_once(&key, now_ms + 300).await.unwrap());
    assert!(!replay.insert_once(&key, now_ms + 300).await.unwrap());
    let other = replay_key("jkt", "jti-fedcba9876543210");
    assert!(replay.insert_once(&other, now_ms + 60_000).await.unwrap());
    // An expiry already passed is fresh and not stored.
    let old = replay_key("jkt", "jti-old");
    assert!(replay.insert_once(&old, now_ms - 1).await.unwrap());
    assert!(replay.insert_once(&old, now_ms - 1).await.unwrap());
    // Redis forgets the entry when its window closes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        replay
            .insert_once(&key, SystemClock.now_ms() + 60_000)
            .await
            .unwrap()
    );
    assert_eq!(replay.sweep().await, Ok(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_fails_every_call_within_the_timeout_and_the_store_recovers() {
    let mut server = RedisServer::start();
    let prefix = redis_server::unique_prefix();
    let timeout = Duration::from_millis(300);
    let store = store(&server, &prefix, RedisOptions::default().timeout(timeout)).await;
    let replay = store.replay_store(Arc::new(SystemClock));
    let r = record("alice", now());
    store.create(r.clone().into()).await.unwrap();

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.load(r.id).await.unwrap_err();
        assert_eq!(err.code(), "store_unavailable");
        let err = replay
            .insert_once(&replay_key("k", "j"), now() * 1000 + 60_000)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "replay_store_unavailable");
        assert!(started.elapsed() < timeout * 2 + Duration::from_millis(200));
    }
    let err = store.count_active().await.unwrap_err();
    assert_eq!(err.code(), "store_unavailable");

    server.restart();
    let started = Instant::now();
    loop {
        match store.count_active().await {
            Ok(n) => {
                assert_eq!(n, 0, "the restarted Redis has no persistence");
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), "store_unavailable");
                assert!(started.elapsed() < Duration::from_secs(10), "no recovery");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    // Scripts are loaded again by themselves (the restarted Redis has none).
    store.create(record("alice", now()).into()).await.unwrap();
    assert_eq!(store.list_user("alice").await.unwrap().len(), 1);
}

#[tokio::test]
async fn connecting_to_nothing_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let options = RedisOptions::default().connect_timeout(Duration::from_millis(300));
    let err = RedisStore::connect_with(&format!("redis://127.0.0.1:{port}/"), options)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "store_unavailable");
    let err = RedisStore::connect("http://127.0.0.1/").await.unwrap_err();
    assert_eq!(err.code(), "store_error");
    assert!(!err.to_string().contains("127.0.0.1"), "{err}");
}

#[tokio::test]
async fn the_layout_marker_and_foreign_keys_are_refused() {
    let server = RedisServer::start();
    let prefix = redis_server::unique_prefix();
    server.command(&["SET", &format!("{prefix}schema"), "2"]);
    let err = RedisStore::connect_with(&server.url(), RedisOptions::default().prefix(&prefix))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "store_incompatible");

    let prefix = redis_server::unique_prefix();
    let store = store(&server, &prefix, RedisOptions::default()).await;
    server.command(&["SET", &format!("{prefix}active"), "not a sorted set"]);
    assert_eq!(
        store.count_active().await.unwrap_err().code(),
        "store_incompatible"
    );
    assert_eq!(
        store
            .create(record("alice", now()).into())
            .await
            .unwrap_err()
            .code(),
        "store_incompatible"
    );
}

#[tokio::test]
async fn sessions_redis_dropped_by_ttl_are_unknown_and_leave_the_indexes() {
    let server = RedisServer::start();
    let prefix = redis_server::unique_prefix();
    let store = store(&server, &prefix, RedisOptions::default()).await;
    let t = now();
    let gone = record("alice", t);
    let kept = record("alice", t);
    store.create(gone.clone().into()).await.unwrap();
    store.create(kept.clone().into()).await.unwrap();
    // What Redis does when a TTL passes.
    server.command(&["DEL", &format!("{prefix}s:{}", gone.id)]);
    assert_eq!(store.load(gone.id).await.unwrap(), None);
    assert_eq!(store.list_user("alice").await.unwrap(), vec![kept.clone()]);
    let batch = store
        .sweep(SweepRequest {
            now: t + 1_000_000,
            purge_ended_before: t,
            limit: 100,
            cursor: 0,
        })
        .await
        .unwrap();
    let swept: Vec<_> = batch.swept.iter().map(|s| (s.action, s.id)).collect();
    assert_eq!(swept, vec![(SweepAction::Expired, kept.id)]);
    assert_eq!(store.count_active().await.unwrap(), 0);
    assert_eq!(
        int(&server.command(&["ZCARD", &format!("{prefix}active")])),
        0
    );
}

fn service(store: &RedisStore) -> SessionService {
    SessionService::builder(store.clone(), KeyRing::generate().unwrap().into_shared())
        .build()
        .unwrap()
}

fn jkt() -> String {
    Jkt::from_bytes([3; 32]).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_suspends_the_cache_while_redis_is_gone_and_resubscribes() {
    let mut server = RedisServer::start_with(Persistence::AppendOnlyAlways);
    let prefix = redis_server::unique_prefix();
    let options = RedisOptions::default()
        .timeout(Duration::from_millis(300))
        .liveness_interval(Duration::from_millis(100));
    let store_a = store(&server, &prefix, options.clone()).await;
    let store_b = store(&server, &prefix, options).await;
    let (a, b) = (service(&store_a), service(&store_b));
    let listener = store_a.spawn_invalidation_listener(&a).unwrap();
    // Until the subscription is up, the cache is not trusted.
    assert!(a.is_session_cache_suspended() || listener.is_subscribed());
    assert!(listener.wait_subscribed(Duration::from_secs(5)).await);
    assert!(!a.is_session_cache_suspended());

    let session = b
        .open_session("alice", &jkt(), OpenRequest::new())
        .await
        .unwrap();
    a.check(&session.session_id, "alice", &jkt()).await.unwrap();

    server.kill();
    let started = Instant::now();
    while listener.is_subscribed() || !a.is_session_cache_suspended() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the loss went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let denied = a
        .check(&session.session_id, "alice", &jkt())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), "session_store_unavailable");

    server.restart();
    assert!(listener.wait_subscribed(Duration::from_secs(10)).await);
    assert!(!a.is_session_cache_suspended());
    assert_eq!(listener.subscriptions(), 2);
    // The store's own connection comes back on its own schedule.
    let started = Instant::now();
    while let Err(denied) = a.check(&session.session_id, "alice", &jkt()).await {
        assert_eq!(denied.code(), "session_store_unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the store did not recover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = listener.notices();
    // B's connection too (revoking is idempotent, so B may simply try again).
    let started = Instant::now();
    while let Err(e) = b
        .revoke(
            &session.session_id,
            Reason::ADMIN_REVOKED,
            Actor::Admin("ops".into()),
        )
        .await
    {
        assert_eq!(e.code(), "store_unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the store did not recover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    while listener.notices() == before {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no notice after resubscribing"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let denied = a
        .check(&session.session_id, "alice", &jkt())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), "session_revoked");

    listener.stop().await;
    assert!(
        a.is_session_cache_suspended(),
        "a stopped listener leaves the cache suspended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_that_stops_answering_is_noticed_within_the_bound() {
    let server = RedisServer::start();
    let prefix = redis_server::unique_prefix();
    let options = RedisOptions::default()
        .timeout(Duration::from_millis(300))
        .liveness_interval(Duration::from_millis(100));
    let bound = options.staleness_bound();
    let store = store(&server, &prefix, options).await;
    let a = service(&store);
    let listener = store.spawn_invalidation_listener(&a).unwrap();
    assert!(listener.wait_subscribed(Duration::from_secs(5)).await);

    // Redis keeps the connection open but answers nothing: only the PING notices.
    server.command(&["CLIENT", "PAUSE", "1500", "ALL"]);
    let paused = Instant::now();
    while !a.is_session_cache_suspended() {
        assert!(
            paused.elapsed() < bound + Duration::from_millis(200),
            "the cache was trusted past the staleness bound"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "silent subscription loss noticed after {:?} (bound {bound:?})",
        paused.elapsed()
    );
    assert!(listener.wait_subscribed(Duration::from_secs(10)).await);
    assert!(listener.subscriptions() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_in_the_documentation_is_enough() {
    let server = RedisServer::start();
    let prefix = redis_server::unique_prefix();
    // docs/redis.md, with this test's prefix.
    let reply = server.command(&[
        "ACL",
        "SETUSER",
        "keybound",
        "on",
        ">s3cret",
        &format!("~{prefix}*"),
        &format!("&{prefix}events"),
        "+@read",
        "+@write",
        "+@scripting",
        "+@pubsub",
        "+@connection",
        "+config|get",
    ]);
    assert_eq!(reply.trim(), "+OK");
    let url = format!("redis://keybound:s3cret@127.0.0.1:{}/", server.port());
    let options = RedisOptions::default().prefix(&prefix);
    let store_a = RedisStore::connect_with(&url, options.clone())
        .await
        .unwrap();
    let store_b = RedisStore::connect_with(&url, options).await.unwrap();
    let (a, b) = (service(&store_a), service(&store_b));
    let listener = store_a.spawn_invalidation_listener(&a).unwrap();
    assert!(listener.wait_subscribed(Duration::from_secs(5)).await);
    let session = b
        .open_session("alice", &jkt(), OpenRequest::new())
        .await
        .unwrap();
    let refreshed = b
        .refresh(&session.refresh_token, &jkt(), &Default::default())
        .await
        .unwrap();
    a.check(&refreshed.session_id, "alice", &jkt())
        .await
        .unwrap();
    assert_eq!(a.list_sessions("alice", None).await.unwrap().len(), 1);
    b.revoke_user(
        "alice",
        None,
        Reason::ADMIN_REVOKED,
        Actor::Admin("ops".into()),
    )
    .await
    .unwrap();
    let started = Instant::now();
    while listener.notices() == 0 {
        assert!(started.elapsed() < Duration::from_secs(2), "no notice");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        a.check(&refreshed.session_id, "alice", &jkt())
            .await
            .unwrap_err()
            .code(),
        "session_revoked"
    );
    a.sweep_once().await.unwrap();
    let replay = store_a.replay_store(Arc::new(SystemClock));
    assert!(
        replay
            .insert_once(&replay_key("k", "jti-acl"), SystemClock.now_ms() + 60_000)
            .await
            .unwrap()
    );
    // Another prefix is out of bounds for this user.
    let other = RedisStore::connect_with(&url, RedisOptions::default().prefix("other:")).await;
    assert!(other.is_err());
}
