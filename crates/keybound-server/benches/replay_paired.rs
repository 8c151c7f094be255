//! What recording a proof costs per replay store, measured interleaved so the shared
//! machine's load hits every case alike: each round times a batch of fresh inserts on
//! every store back to back, in rotating order; ratios are taken per round. The SQLite
//! store writes one `BEGIN IMMEDIATE` transaction per proof into the file every process
//! shares (WAL, `synchronous = NORMAL`), next to the proof signature check
//! (`verify_strict`) every request pays anyway.
//!
//! `cargo bench -p keybound-server --bench replay_paired`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use keybound_server::proto::ed25519_dalek::{Signer, SigningKey};
use keybound_server::store::SqliteStore;
use keybound_server::{ManualClock, MemoryReplayStore, ReplayStore, replay_key};
use tokio::runtime::Runtime;

const T0_MS: i64 = 1_700_000_000_000;
const ROUNDS: usize = 200;
const BATCH: usize = 64;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let runtime = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0_MS);
    let memory: Arc<dyn ReplayStore> = Arc::new(MemoryReplayStore::with_capacity(
        Arc::new(clock.clone()),
        10_000_000,
    ));
    let sqlite: Arc<dyn ReplayStore> = runtime.block_on(async {
        let store = SqliteStore::open(dir.path().join("s.db")).await.unwrap();
        Arc::new(
            store
                .replay_store(Arc::new(clock.clone()), 10_000_000)
                .unwrap(),
        )
    });
    let key = SigningKey::from_bytes(&[7; 32]);
    let message = [1u8; 200];
    let signature = key.sign(&message);
    let verifying = key.verifying_key();

    let stores = [("memory", &memory), ("sqlite", &sqlite)];
    let mut per_case: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut ratios = Vec::new();
    let mut counter = 0u64;
    for round in 0..ROUNDS {
        let mut times = [0.0f64; 3];
        for step in 0..3 {
            let case = (round + step) % 3;
            let started = Instant::now();
            if case == 2 {
                for _ in 0..BATCH {
                    verifying.verify_strict(&message, &signature).unwrap();
                }
            } else {
                let store = stores[case].1;
                runtime.block_on(async {
                    for _ in 0..BATCH {
                        counter += 1;
                        let k = replay_key("jkt", &format!("jti-{counter:020}"));
                        assert!(store.insert_once(&k, T0_MS + 60_000).await.unwrap());
                    }
                });
            }
            times[case] = started.elapsed().as_secs_f64() * 1e6 / BATCH as f64;
        }
        for (case, t) in times.iter().enumerate() {
            per_case[case].push(*t);
        }
        ratios.push(times[1] / times[2]);
    }
    let names = ["memory insert_once", "sqlite insert_once", "verify_strict"];
    for (name, values) in names.iter().zip(per_case) {
        println!("{name}: median {:.1} µs", median(values));
    }
    println!(
        "sqlite insert / verify_strict, median of per-round ratios: {:.2}",
        median(ratios)
    );
}
