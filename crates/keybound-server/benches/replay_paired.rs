//! What the shared SQLite replay table costs a verified request, measured interleaved
//! beside the in-memory replay store so the shared machine's load hits every case
//! alike: each round times a batch of every case back to back, in an order shuffled
//! afresh each round, and the ratios are taken per round (reported: their median) and
//! between the per-case minima. Means are reported too: they include the WAL
//! checkpoints (and their `fsync`) that a few of the SQLite inserts pay for all.
//!
//! With a `sqlite:` store every verified request records its proof in the file's
//! `replay` table (`SqliteReplayStore`, one `BEGIN IMMEDIATE` transaction each). The
//! cases: the bare insert into each store (replay key included), then a whole verified
//! request (token cached, so only the proof's signature is checked) with each store.
//! The SQLite store runs its statements on tokio's blocking pool inside a runtime and
//! inline outside one, so both are measured: polled directly (the SQLite work alone)
//! and on a current-thread tokio runtime (the hand-off a server pays), each beside the
//! memory store polled the same way.
//!
//! Run: `cargo bench -p keybound-server --bench replay_paired`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "support/paired.rs"]
mod paired;
#[path = "support/verify.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use http::request::Parts;
use keybound_server::store::SqliteStore;
use keybound_server::{ManualClock, MemoryReplayStore, ReplayStore, Verifier, replay_key};
use paired::{load_average, measuring, median, order, ready};
use support::{Device, T0, verifier, verifier_with};
use tokio::runtime::Runtime;

const BATCH: usize = 16;

const CASES: [&str; 7] = [
    "insert: replay_key + MemoryReplayStore",
    "insert: replay_key + SqliteReplayStore, inline",
    "insert: replay_key + SqliteReplayStore, on tokio",
    "request, memory replay, polled",
    "request, SQLite replay, polled (inline)",
    "request, memory replay, on tokio",
    "request, SQLite replay, on tokio",
];

/// A verifier whose token cache already holds `device`'s access token.
fn primed(verifier: Verifier, device: &Device) -> Verifier {
    ready(verifier.verify(&device.request())).unwrap();
    verifier
}

fn main() {
    let rounds: usize = if measuring() { 1000 } else { 2 };
    println!("load average at start: {}", load_average());
    let rt: Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let clock = ManualClock::new(T0 * 1000);
    let device = Device::new();
    let dir = tempfile::tempdir().unwrap();
    let file = SqliteStore::open_blocking(dir.path().join("replay.db")).unwrap();
    let sqlite = Arc::new(
        file.replay_store(Arc::new(clock.clone()), 4_000_000)
            .unwrap(),
    );
    let memory = MemoryReplayStore::with_capacity(Arc::new(clock.clone()), 4_000_000);
    let with_memory = primed(verifier(&clock, 1024), &device);
    let with_memory_rt = primed(verifier(&clock, 1024), &device);
    let with_sqlite = primed(verifier_with(&clock, 1024, sqlite.clone()), &device);
    let expires = (T0 + 61) * 1000;

    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); CASES.len()];
    let mut n = 0u64;
    for round in 0..rounds {
        let requests: Vec<Vec<Parts>> = (0..4)
            .map(|_| (0..BATCH).map(|_| device.request()).collect())
            .collect();
        for case in order(round, CASES.len()) {
            let mut it = match case {
                3..=6 => requests[case - 3].iter(),
                _ => [].iter(),
            };
            let started = Instant::now();
            for _ in 0..BATCH {
                n += 1;
                match case {
                    0..=2 => {
                        let key = replay_key("bench-jkt", &n.to_string());
                        let fresh = match case {
                            0 => ready(memory.insert_once(&key, expires)),
                            1 => ready(sqlite.insert_once(&key, expires)),
                            _ => rt.block_on(sqlite.insert_once(&key, expires)),
                        };
                        assert!(fresh.unwrap());
                    }
                    3 => {
                        black_box(ready(with_memory.verify(it.next().unwrap())).unwrap());
                    }
                    4 => {
                        black_box(ready(with_sqlite.verify(it.next().unwrap())).unwrap());
                    }
                    5 => {
                        let request = it.next().unwrap();
                        black_box(rt.block_on(with_memory_rt.verify(request)).unwrap());
                    }
                    _ => {
                        let request = it.next().unwrap();
                        black_box(rt.block_on(with_sqlite.verify(request)).unwrap());
                    }
                }
            }
            times[case].push(started.elapsed().as_secs_f64() * 1e6 / BATCH as f64);
        }
    }

    println!("{rounds} rounds of {BATCH} operations per case, order shuffled per round");
    println!(
        "{:<48} {:>9} {:>10} {:>9}",
        "case", "min µs", "median µs", "mean µs"
    );
    let mut mins = Vec::new();
    for (case, name) in CASES.iter().enumerate() {
        let t = &times[case];
        let min = t.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        mins.push(min);
        println!(
            "{name:<48} {min:>9.2} {:>10.2} {mean:>9.2}",
            median(&mut t.clone())
        );
    }
    let ratio = |a: usize, b: usize| {
        let mut per_round: Vec<f64> = (0..rounds).map(|r| times[a][r] / times[b][r]).collect();
        (median(&mut per_round), mins[a] / mins[b])
    };
    println!();
    println!("ratios: median of per-round ratios; ratio of minima");
    for (name, a, b) in [
        ("SQLite insert inline / memory insert", 1, 0),
        ("SQLite insert on tokio / memory insert", 2, 0),
        ("request, SQLite / memory replay, polled", 4, 3),
        ("request, SQLite / memory replay, on tokio", 6, 5),
    ] {
        let (med, of_min) = ratio(a, b);
        println!("  {name:<44} {med:>7.3}; {of_min:.3}");
    }
    println!(
        "requests per second per core (from minima): memory {:.0}, SQLite {:.0} (on tokio)",
        1e6 / mins[5],
        1e6 / mins[6]
    );
    println!("load average at end: {}", load_average());
}
