//! Verification cost, side by side in one run:
//!
//! * `raw_verify_strict`: `VerifyingKey::verify_strict` of one 200-byte message, the
//!   floor any DPoP verifier pays per request (one proof signature);
//! * `raw_verify_strict_fresh`: the same over 1,024 different messages and signatures
//!   in turn, as a verifier sees them (a signature checked again and again lets the CPU
//!   predict the scalar multiplication's data-dependent branches);
//! * `verifier_cached`: `Verifier::verify` of a full request whose access token is
//!   already in the token cache (the proof's signature is the only one checked);
//! * `verifier_cold`: the same with the token cache off, so both signatures are checked.
//!
//! Every request carries a fresh proof (unique `jti`, made outside the timed part by
//! `iter_batched`), so replay protection stays on and records every proof. Time comes
//! from a `ManualClock`. The futures are polled directly (they complete without
//! waiting), so no async runtime is measured.
//!
//! A second group times 1,000,000 inserts into the `MemoryReplayStore`.
//!
//! Run: `cargo bench -p keybound-server --bench verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "support/verify.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use keybound_server::{ManualClock, MemoryReplayStore, replay_key};
use support::{Device, T0, fresh_signatures, ready, server_key, verifier};

fn verification(c: &mut Criterion) {
    let clock = ManualClock::new(T0 * 1000);
    let server = server_key();
    let device = Device::new();
    let cached = verifier(&clock, 1024);
    let cold = verifier(&clock, 0);
    // Prime the cache, and check both verifiers accept the requests.
    ready(cached.verify(&device.request())).unwrap();
    ready(cold.verify(&device.request())).unwrap();

    let message = [0x42u8; 200];
    let signature = ed25519_dalek::Signer::sign(server.signing_key(), &message);
    let public = server.verifying_key();

    let mut group = c.benchmark_group("verify");
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("raw_verify_strict", |b| {
        b.iter(|| {
            public
                .verify_strict(black_box(&message), black_box(&signature))
                .unwrap()
        })
    });
    // The same check on 1,024 different messages and signatures, cycled (a verifier
    // never sees one signature twice; a repeated one lets the CPU learn its branches).
    let fresh = fresh_signatures(&server);
    let mut fresh_it = fresh.iter().cycle();
    group.bench_function("raw_verify_strict_fresh", |b| {
        b.iter(|| {
            let (m, sig) = fresh_it.next().unwrap();
            public.verify_strict(black_box(m), black_box(sig)).unwrap()
        })
    });
    group.bench_function("verifier_cached", |b| {
        b.iter_batched(
            || device.request(),
            |parts| ready(cached.verify(&parts)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("verifier_cold", |b| {
        b.iter_batched(
            || device.request(),
            |parts| ready(cold.verify(&parts)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn replay_store(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let keys: Vec<[u8; 32]> = (0..N as u64)
        .map(|i| replay_key("bench-jkt", &format!("{i:022}")))
        .collect();
    let clock = ManualClock::new(T0 * 1000);
    let mut group = c.benchmark_group("replay_store");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("insert_1m", |b| {
        b.iter_batched(
            || MemoryReplayStore::with_capacity(Arc::new(clock.clone()), N),
            |store| {
                for key in &keys {
                    assert!(store.insert_once_now(key, (T0 + 61) * 1000).unwrap());
                }
                store
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, verification, replay_store);
criterion_main!(benches);
