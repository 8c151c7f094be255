//! Lifecycle benchmarks: refreshes per second on each store next to the crypto a
//! refresh needs, and large sweeps. `cargo bench -p keybound-server --bench lifecycle`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "support/lifecycle.rs"]
mod support;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use keybound_server::ManualClock;
use keybound_server::lifecycle::{OpenRequest, RefreshSecret, RequestSignals, SessionService};
use keybound_server::proto::PublicJwk;
use keybound_server::proto::ed25519_dalek::SigningKey;
use keybound_server::store::{MemoryStore, SessionStore};
use support::{T0_MS, keys, refresh_proof, refreshed_claims, terminal, verify_proof};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn service(store: impl SessionStore, clock: &ManualClock) -> SessionService {
    SessionService::builder(store, keys())
        .clock(clock.clone())
        .refresh_secret(RefreshSecret::from_bytes([5; 32]))
        .build()
        .unwrap()
}

/// The device's proof on a refresh request, and its key's thumbprint.
fn device_proof() -> (String, String) {
    let device = SigningKey::from_bytes(&[7; 32]);
    let jkt = PublicJwk::from_verifying_key(&device.verifying_key()).thumbprint();
    (refresh_proof(&device, [1; 16]), jkt)
}

fn bench_refresh(c: &mut Criterion) {
    let (proof, jkt) = device_proof();
    let mut group = c.benchmark_group("refresh");
    group.measurement_time(Duration::from_secs(10));

    let keys = keys();
    group.bench_function("crypto_only", |b| {
        b.iter(|| {
            let jkt = verify_proof(black_box(&proof));
            black_box(keys.sign(&refreshed_claims(jkt)).unwrap())
        });
    });

    let rt = runtime();
    let mut refresh_on = |name: &str, store: Arc<dyn SessionStore>| {
        let clock = ManualClock::new(T0_MS);
        let service = SessionService::builder_shared(store, self::keys())
            .clock(clock.clone())
            .refresh_secret(RefreshSecret::from_bytes([5; 32]))
            .build()
            .unwrap();
        let mut token = rt
            .block_on(service.open_session("alice", &jkt, OpenRequest::new()))
            .unwrap()
            .refresh_token;
        let signals = RequestSignals::new();
        group.bench_function(name, |b| {
            b.iter(|| {
                let jkt = verify_proof(black_box(&proof));
                let tokens = rt
                    .block_on(service.refresh(&token, &jkt, &signals))
                    .unwrap();
                token = tokens.refresh_token;
                black_box(tokens.access_token)
            });
        });
    };
    refresh_on("memory_store", Arc::new(MemoryStore::new()));
    let dir = tempfile::tempdir().unwrap();
    let sqlite_store = rt.block_on(sqlite(&dir.path().join("refresh.db")));
    refresh_on("sqlite_store", Arc::new(sqlite_store));
    group.finish();
}

async fn sqlite(path: &Path) -> keybound_server::store::SqliteStore {
    keybound_server::store::SqliteStore::open(path)
        .await
        .unwrap()
}

/// The clock eight days later: everything above is past retention.
fn later_clock() -> ManualClock {
    ManualClock::new(T0_MS + 8 * 24 * 3600 * 1000)
}

fn bench_sweep(c: &mut Criterion) {
    let mut group = c.benchmark_group("sweep");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(30));
    let rt = runtime();

    const MEMORY_SESSIONS: u64 = 1_000_000;
    group.bench_function("memory_purge_1m", |b| {
        b.iter_batched(
            || {
                let store = MemoryStore::new();
                rt.block_on(async {
                    for n in 0..MEMORY_SESSIONS {
                        store.create(terminal(n).into()).await.unwrap();
                    }
                });
                service(store, &later_clock())
            },
            |service| {
                let report = rt.block_on(service.sweep_once()).unwrap();
                assert_eq!(report.purged, MEMORY_SESSIONS);
                service
            },
            BatchSize::PerIteration,
        );
    });

    const SQLITE_SESSIONS: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template.db");
    rt.block_on(async {
        let store = sqlite(&template).await;
        for n in 0..SQLITE_SESSIONS {
            store.create(terminal(n).into()).await.unwrap();
        }
    });
    // The last connection closed: the WAL is checkpointed into the main file.
    let mut copies = 0u32;
    group.bench_function("sqlite_purge_100k", |b| {
        b.iter_batched(
            || {
                copies += 1;
                let path: PathBuf = dir.path().join(format!("copy{copies}.db"));
                std::fs::copy(&template, &path).unwrap();
                let store = rt.block_on(sqlite(&path));
                service(store, &later_clock())
            },
            |service| {
                let report = rt.block_on(service.sweep_once()).unwrap();
                assert_eq!(report.purged, SQLITE_SESSIONS);
                service
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench_refresh, bench_sweep);
criterion_main!(benches);
