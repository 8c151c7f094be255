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

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use http::request::Parts;
use keybound_proto::{AccessTokenClaims, ProofBuilder, Signer};
use keybound_server::{KeyRing, ManualClock, MemoryReplayStore, ServerKey, Verifier, replay_key};

const T0: i64 = 1_700_000_000;
const URL: &str = "https://api.example.com/api/orders";

/// Polls a future that completes without waiting (memory stores, no I/O).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

struct Setup {
    device: SigningKey,
    token: String,
    authorization: String,
    next_jti: AtomicU64,
}

impl Setup {
    /// A request with a fresh proof for `GET /api/orders` and the access token.
    fn request(&self) -> Parts {
        let n = self.next_jti.fetch_add(1, Ordering::Relaxed);
        let mut jti = [0x5a; 16];
        jti[..8].copy_from_slice(&n.to_le_bytes());
        let proof = ProofBuilder::new(self.device.public_jwk(), "GET", URL, T0, jti)
            .unwrap()
            .access_token(&self.token)
            .sign(&self.device)
            .unwrap();
        http::Request::get("/api/orders?page=2")
            .header("host", "api.example.com")
            .header("authorization", &self.authorization)
            .header("dpop", proof)
            .header("accept", "application/json")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }
}

fn verifier(keys: KeyRing, clock: &ManualClock, cache: usize) -> Verifier {
    Verifier::builder()
        .public_origin("https://api.example.com")
        .keys(keys)
        .clock(Arc::new(clock.clone()))
        .replay_store(Arc::new(MemoryReplayStore::with_capacity(
            Arc::new(clock.clone()),
            4_000_000,
        )))
        .token_cache_capacity(cache)
        .danger_accept_any_session()
        .build()
        .unwrap()
}

fn verification(c: &mut Criterion) {
    let clock = ManualClock::new(T0 * 1000);
    let server = ServerKey::from_seed(&[1u8; 32]);
    let device = SigningKey::from_bytes(&[2u8; 32]);
    let keys = || KeyRing::new(ServerKey::from_seed(&[1u8; 32]));
    let token = keys()
        .sign(&AccessTokenClaims {
            iss: "https://api.example.com".into(),
            sub: "user-0001".into(),
            sid: "sess-7f3a2c9e4b1d".into(),
            jti: "at-4c1f0e8a9b7d6c5e".into(),
            iat: T0,
            exp: T0 + 300,
            jkt: device.public_jwk().thumbprint(),
        })
        .unwrap();
    let setup = Setup {
        authorization: format!("DPoP {token}"),
        device,
        token,
        next_jti: AtomicU64::new(0),
    };
    let cached = verifier(keys(), &clock, 1024);
    let cold = verifier(keys(), &clock, 0);
    // Prime the cache, and check both verifiers accept the requests.
    ready(cached.verify(&setup.request())).unwrap();
    ready(cold.verify(&setup.request())).unwrap();

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
    let fresh: Vec<([u8; 200], ed25519_dalek::Signature)> = (0..1024u32)
        .map(|i| {
            let mut m = [0x42u8; 200];
            m[..4].copy_from_slice(&i.to_le_bytes());
            (m, ed25519_dalek::Signer::sign(server.signing_key(), &m))
        })
        .collect();
    let mut fresh_it = fresh.iter().cycle();
    group.bench_function("raw_verify_strict_fresh", |b| {
        b.iter(|| {
            let (m, sig) = fresh_it.next().unwrap();
            public.verify_strict(black_box(m), black_box(sig)).unwrap()
        })
    });
    group.bench_function("verifier_cached", |b| {
        b.iter_batched(
            || setup.request(),
            |parts| ready(cached.verify(&parts)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("verifier_cold", |b| {
        b.iter_batched(
            || setup.request(),
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
