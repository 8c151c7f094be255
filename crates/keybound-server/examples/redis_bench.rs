//! Measures keybound on Redis against the memory store, on loopback, with a private
//! `redis-server` (no persistence) started for the run:
//!
//! * revocation propagation: `revoke` on node B until node A (whose cache holds the
//!   session) refuses it, over 1,000 revocations: p50, p99, max;
//! * verification throughput (every check of a request, replay and session state
//!   included) with the Redis stores and with the memory stores, in the same run;
//! * refreshes per second on Redis and on memory;
//! * Redis memory per active session and per replay entry.
//!
//! ```text
//! cargo run --release -p keybound-server --features redis --example redis_bench
//! ```
//!
//! Environment: `BENCH_REVOCATIONS` (1000), `BENCH_REQUESTS` (20000),
//! `BENCH_REFRESHES` (6400), `BENCH_CONCURRENCY` (64), `BENCH_ROUNDS` (3: the
//! stores alternate, medians are reported).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::request::Parts;
use keybound_server::lifecycle::{Actor, OpenRequest, Reason, RequestSignals, SessionService};
use keybound_server::proto::ed25519_dalek::SigningKey;
use keybound_server::proto::{ProofBuilder, PublicJwk};
use keybound_server::store::redis::{RedisOptions, RedisStore};
use keybound_server::store::{MemoryStore, SessionStore};
use keybound_server::{
    Clock, KeyRing, MemoryReplayStore, ReplayStore, SessionCheck, SessionDenied, SharedKeyRing,
    SystemClock, Verifier,
};

const ORIGIN: &str = "https://api.example";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Audit events are not what is measured here.
struct Discard;

impl keybound_server::lifecycle::AuditSink for Discard {
    fn record(&self, _: &keybound_server::lifecycle::AuditEvent) {}
}

fn service(store: impl SessionStore, keys: &SharedKeyRing) -> SessionService {
    SessionService::builder(store, keys.clone())
        .issuer(ORIGIN)
        .audit_sink(Discard)
        .build()
        .unwrap()
}

async fn redis_store(url: &str, prefix: &str) -> RedisStore {
    RedisStore::connect_with(url, RedisOptions::default().prefix(prefix))
        .await
        .unwrap()
}

fn device(n: u32) -> (SigningKey, String) {
    let mut seed = [7u8; 32];
    seed[..4].copy_from_slice(&n.to_be_bytes());
    let key = SigningKey::from_bytes(&seed);
    let jkt = PublicJwk::from_verifying_key(&key.verifying_key()).thumbprint();
    (key, jkt)
}

/// Revocation on B until A refuses, `count` times.
async fn propagation(url: &str, keys: &SharedKeyRing, count: usize) -> Vec<Duration> {
    let prefix = redis_server::unique_prefix();
    let (store_a, store_b) = (
        redis_store(url, &prefix).await,
        redis_store(url, &prefix).await,
    );
    let (a, b) = (
        service(store_a.clone(), keys),
        service(store_b.clone(), keys),
    );
    let listener_a = store_a.spawn_invalidation_listener(&a).unwrap();
    let listener_b = store_b.spawn_invalidation_listener(&b).unwrap();
    assert!(listener_a.wait_subscribed(Duration::from_secs(5)).await);
    assert!(listener_b.wait_subscribed(Duration::from_secs(5)).await);
    let (_, jkt) = device(1);
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let session = b
            .open_session("alice", &jkt, OpenRequest::new())
            .await
            .unwrap();
        // A has the session in its cache: only the notice can make it refuse.
        a.check(&session.session_id, "alice", &jkt).await.unwrap();
        a.check(&session.session_id, "alice", &jkt).await.unwrap();
        let started = Instant::now();
        b.revoke(
            &session.session_id,
            Reason::ADMIN_REVOKED,
            Actor::Admin("bench".into()),
        )
        .await
        .unwrap();
        loop {
            match a.check(&session.session_id, "alice", &jkt).await {
                Err(SessionDenied::Revoked) => break,
                Ok(()) => tokio::task::yield_now().await,
                Err(other) => panic!("unexpected {other:?}"),
            }
            assert!(started.elapsed() < Duration::from_secs(5), "never refused");
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

/// A verifier and `sessions` open sessions with their devices.
async fn verifier_with(
    service: SessionService,
    replay: Arc<dyn ReplayStore>,
    keys: &SharedKeyRing,
    sessions: u32,
) -> (Verifier, Vec<(SigningKey, String)>) {
    let verifier = Verifier::builder()
        .public_origin(ORIGIN)
        .key_ring(keys.clone())
        .replay_store(replay)
        .session_check(Arc::new(service.clone()))
        .build()
        .unwrap();
    let mut tokens = Vec::new();
    for n in 0..sessions {
        let (key, jkt) = device(n);
        let login = service
            .open_session(&format!("user{n}"), &jkt, OpenRequest::new())
            .await
            .unwrap();
        tokens.push((key, login.access_token));
    }
    (verifier, tokens)
}

/// `count` signed requests spread over the sessions.
fn requests(tokens: &[(SigningKey, String)], count: usize) -> Vec<Parts> {
    let now = SystemClock.now_secs();
    (0..count)
        .map(|i| {
            let (key, token) = &tokens[i % tokens.len()];
            let mut jti = [0u8; 16];
            jti[..8].copy_from_slice(&(i as u64).to_be_bytes());
            jti[8..].copy_from_slice(&now.to_be_bytes());
            let proof = ProofBuilder::new(
                PublicJwk::from_verifying_key(&key.verifying_key()),
                "GET",
                &format!("{ORIGIN}/api/orders"),
                now,
                jti,
            )
            .unwrap()
            .access_token(token)
            .sign(key)
            .unwrap();
            http::Request::get("/api/orders")
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof)
                .body(())
                .unwrap()
                .into_parts()
                .0
        })
        .collect()
}

/// Verifications per second with `concurrency` tasks.
async fn throughput(verifier: Verifier, requests: Vec<Parts>, concurrency: usize) -> f64 {
    let total = requests.len();
    let verifier = Arc::new(verifier);
    let requests = Arc::new(requests);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (verifier, requests, next) = (verifier.clone(), requests.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(parts) = requests.get(i) else { break };
                verifier.verify(parts).await.expect("a valid request");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Refreshes per second: `concurrency` sessions refreshing one after another.
async fn refreshes(service: SessionService, total: usize, concurrency: usize) -> f64 {
    let per_session = total / concurrency;
    let mut chains = Vec::new();
    for n in 0..concurrency {
        let (_, jkt) = device(n as u32);
        let login = service
            .open_session(&format!("user{n}"), &jkt, OpenRequest::new())
            .await
            .unwrap();
        chains.push((jkt, login.refresh_token));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (jkt, mut token) in chains {
        let service = service.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_session {
                token = service
                    .refresh(&token, &jkt, &RequestSignals::new())
                    .await
                    .unwrap()
                    .refresh_token;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (per_session * concurrency) as f64 / started.elapsed().as_secs_f64()
}

fn used_memory(server: &redis_server::RedisServer) -> i64 {
    let info = server.command(&["INFO", "memory"]);
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO memory has used_memory")
}

/// Bytes of Redis memory per active session (with a device label, as the demo opens
/// them) and per replay entry.
async fn memory(server: &redis_server::RedisServer, keys: &SharedKeyRing) -> (f64, f64) {
    const N: usize = 10_000;
    let store = redis_store(&server.url(), &redis_server::unique_prefix()).await;
    let service = service(store.clone(), keys);
    let (_, jkt) = device(1);
    let before = used_memory(server);
    for n in 0..N {
        service
            .open_session(
                &format!("user-{n:08}@example.com"),
                &jkt,
                OpenRequest::new().device_label("Firefox on Linux"),
            )
            .await
            .unwrap();
    }
    let per_session = (used_memory(server) - before) as f64 / N as f64;
    let replay = store.replay_store(Arc::new(SystemClock));
    let before = used_memory(server);
    let expires = SystemClock.now_ms() + 120_000;
    for n in 0..N {
        let key = keybound_server::replay_key("jkt", &format!("jti-{n:016}"));
        assert!(replay.insert_once(&key, expires).await.unwrap());
    }
    let per_entry = (used_memory(server) - before) as f64 / N as f64;
    (per_session, per_entry)
}

#[tokio::main]
async fn main() {
    let revocations = env("BENCH_REVOCATIONS", 1000);
    let request_count = env("BENCH_REQUESTS", 20_000);
    let refresh_count = env("BENCH_REFRESHES", 6_400);
    let concurrency = env("BENCH_CONCURRENCY", 64);
    let rounds = env("BENCH_ROUNDS", 3).max(1);
    let server = redis_server::RedisServer::start();
    let url = server.url();
    let keys = KeyRing::generate().unwrap().into_shared();
    println!("redis-server on {url} (no persistence), tokio multi-thread runtime\n");

    // First, while nothing else is stored or expiring.
    let (per_session, per_entry) = memory(&server, &keys).await;
    println!(
        "Redis memory: {per_session:.0} B per active session, {per_entry:.0} B per replay entry"
    );

    let latencies = propagation(&url, &keys, revocations).await;
    println!(
        "revocation propagation, revoke on B until A refuses ({} revocations): p50 {}, p99 {}, max {}",
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(*latencies.last().unwrap()),
    );

    // Verification and refreshes: the two stores alternate, round after round, so a
    // machine whose load changes (other builds) favours neither; medians reported.
    let memory_service = service(MemoryStore::new(), &keys);
    let memory_replay: Arc<dyn ReplayStore> =
        Arc::new(MemoryReplayStore::new(Arc::new(SystemClock)));
    let (memory_verifier, memory_tokens) =
        verifier_with(memory_service, memory_replay, &keys, 100).await;
    let store = redis_store(&url, &redis_server::unique_prefix()).await;
    let redis_service = service(store.clone(), &keys);
    let listener = store.spawn_invalidation_listener(&redis_service).unwrap();
    assert!(listener.wait_subscribed(Duration::from_secs(5)).await);
    let redis_replay: Arc<dyn ReplayStore> = Arc::new(store.replay_store(Arc::new(SystemClock)));
    let (redis_verifier, redis_tokens) =
        verifier_with(redis_service.clone(), redis_replay, &keys, 100).await;
    let (mut memory_rates, mut redis_rates) = (Vec::new(), Vec::new());
    let (mut memory_refreshes, mut redis_refreshes) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let batch = requests(&memory_tokens, request_count);
        memory_rates.push(throughput(memory_verifier.clone(), batch, concurrency).await);
        let batch = requests(&redis_tokens, request_count);
        redis_rates.push(throughput(redis_verifier.clone(), batch, concurrency).await);
        memory_refreshes.push(
            refreshes(
                service(MemoryStore::new(), &keys),
                refresh_count,
                concurrency,
            )
            .await,
        );
        redis_refreshes.push(refreshes(redis_service.clone(), refresh_count, concurrency).await);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (memory_rate, redis_rate) = (median(memory_rates), median(redis_rates));
    println!(
        "verifications/s ({request_count} requests, {concurrency} concurrent, median of {rounds}): memory {memory_rate:.0}, redis {redis_rate:.0} ({:.2}x)",
        redis_rate / memory_rate
    );
    println!(
        "refreshes/s ({refresh_count} refreshes, {concurrency} sessions at once, median of {rounds}): memory {:.0}, redis {:.0}",
        median(memory_refreshes),
        median(redis_refreshes)
    );
    drop(listener);
}
