//! Time and memory of the in-memory replay store under load.
//!
//! 1. First, in a fresh process, inserts 600,000 live entries into a store of default
//!    capacity and reports how much the process's memory grew: resident set (`VmRSS`)
//!    and its peak (`VmHWM`, which includes the moment a table grows and old and new
//!    tables coexist) from `/proc/self/status`, read before and after. The keys are
//!    derived on the fly, so only the store's own memory is counted.
//! 2. Inserts 1,000,000 distinct proof keys and reports the time, then the time to
//!    detect all of them as replays.
//! 3. Floods a store capped at 600,000 entries with 1,000,000 more proofs while every
//!    entry is still live: the store refuses them (fails closed) and memory stays put.
//!
//! Run: `cargo run --release -p keybound-server --example replay_memory` (Linux).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use keybound_server::{ManualClock, MemoryReplayStore, ReplayError, replay_key};

const T0_MS: i64 = 1_700_000_000_000;
/// Every entry lives for the default proof window (iat + 60 s).
const EXPIRES_MS: i64 = T0_MS + 61_000;

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn key(i: u64) -> [u8; 32] {
    replay_key("device-key-thumbprint", &format!("{i:022}"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let clock = ManualClock::new(T0_MS);

    // 1. Memory for 600,000 live entries, in a fresh store.
    let (rss0, hwm0) = memory_kib();
    let store = MemoryReplayStore::new(Arc::new(clock.clone()));
    for i in 0..600_000 {
        assert!(store.insert_once_now(&key(i), EXPIRES_MS).unwrap());
    }
    let (rss1, hwm1) = memory_kib();
    println!(
        "600,000 live entries: VmRSS {:.1} -> {:.1} MiB (+{:.1} MiB), VmHWM {:.1} -> {:.1} MiB (+{:.1} MiB)",
        mib(rss0),
        mib(rss1),
        mib(rss1.saturating_sub(rss0)),
        mib(hwm0),
        mib(hwm1),
        mib(hwm1.saturating_sub(hwm0))
    );
    drop(store);

    // 2. One million inserts.
    let keys: Vec<[u8; 32]> = (0..1_000_000).map(key).collect();
    let store = MemoryReplayStore::with_capacity(Arc::new(clock.clone()), 1_000_000);
    let (rss_before, _) = memory_kib();
    let start = Instant::now();
    for k in &keys {
        assert!(store.insert_once_now(k, EXPIRES_MS).unwrap());
    }
    let elapsed = start.elapsed();
    let (rss_after, _) = memory_kib();
    println!(
        "1,000,000 inserts: {:.3} s ({:.0} ns per insert), {} entries, VmRSS +{:.1} MiB",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / 1e6,
        store.len(),
        mib(rss_after.saturating_sub(rss_before))
    );
    let start = Instant::now();
    for k in &keys {
        assert!(!store.insert_once_now(k, EXPIRES_MS).unwrap());
    }
    println!(
        "1,000,000 replays detected: {:.3} s",
        start.elapsed().as_secs_f64()
    );
    drop(store);
    drop(keys);

    // 3. A flood against a store capped at 600,000 live entries.
    let store = MemoryReplayStore::with_capacity(Arc::new(clock.clone()), 600_000);
    for i in 0..600_000 {
        store.insert_once_now(&key(i), EXPIRES_MS).unwrap();
    }
    let (rss_full, _) = memory_kib();
    let mut refused = 0;
    for i in 600_000..1_600_000 {
        match store.insert_once_now(&key(i), EXPIRES_MS) {
            Err(ReplayError::Full { .. }) => refused += 1,
            other => panic!("a full store must refuse, got {other:?}"),
        }
    }
    let (rss_flood, _) = memory_kib();
    println!(
        "flood of 1,000,000 more while full: {refused} refused (fail closed), entries {}, VmRSS {:.1} -> {:.1} MiB",
        store.len(),
        mib(rss_full),
        mib(rss_flood)
    );
    clock.advance(std::time::Duration::from_secs(61));
    assert!(
        store
            .insert_once_now(&key(2_000_000), T0_MS + 122_000)
            .unwrap()
    );
    println!("after the window passed: inserts accepted again");
}
