//! Paired measurement of verification cost, robust to a busy machine.
//!
//! The criterion bench (`benches/verify.rs`) runs its three cases one after the other,
//! so load from other processes can land on one case and not another. This program
//! interleaves them instead: each round times a batch of every case back to back (in a
//! rotating order), and the ratios are taken per round, then summarised by their
//! median. It also times the pieces of the pipeline, to show what the overhead over a
//! bare signature check is made of.
//!
//! Run: `cargo bench -p keybound-server --bench verify_paired`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "support/verify.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use http::request::Parts;
use keybound_proto::{
    AccessToken, CheckHooks, DecodeEveryTime, DpopProof, KeyDecoder, ProofKey, ProtoError,
    PublicJwk, RequestContext, access_token_hash, check_request, normalize_htu,
};
use keybound_server::{ManualClock, MemoryReplayStore, TokenCache, replay_key};
use support::{Device, T0, URL, fresh_signatures, ready, server_key, verifier};

const BATCH: usize = 16;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Nanoseconds per call of `f`, over `n` calls.
fn per_op(n: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --benches` one short round
    // only checks that everything still runs.
    let measuring = std::env::args().any(|a| a == "--bench");
    let rounds: usize = if measuring { 600 } else { 2 };
    let clock = ManualClock::new(T0 * 1000);
    let server = server_key();
    let device = Device::new();
    let token = device.token().to_owned();
    let cached = verifier(&clock, 1024);
    let cold = verifier(&clock, 0);
    ready(cached.verify(&device.request())).unwrap();

    let message = [0x42u8; 200];
    let signature = ed25519_dalek::Signer::sign(server.signing_key(), &message);
    let public = server.verifying_key();
    let sample_proof = device.proof();
    println!(
        "proof {} bytes, access token {} bytes",
        sample_proof.len(),
        token.len()
    );

    // The same check on 1,024 different messages and signatures, cycled: a verifier
    // never sees the same signature twice, and the scalar multiplication takes
    // data-dependent branches that a repeated signature trains the CPU to predict.
    let fresh = fresh_signatures(&server);
    let mut fresh_it = fresh.iter().cycle();
    let mut raw_fresh = Vec::new();
    let mut ratio_hot_fresh = Vec::new();
    let mut ratio_cold_fresh = Vec::new();
    let mut raw = Vec::new();
    let mut hot = Vec::new();
    let mut cool = Vec::new();
    let mut ratio_hot = Vec::new();
    let mut ratio_cold = Vec::new();
    for round in 0..rounds {
        let hot_requests: Vec<Parts> = (0..BATCH).map(|_| device.request()).collect();
        let cold_requests: Vec<Parts> = (0..BATCH).map(|_| device.request()).collect();
        let mut t = [0.0f64; 4];
        for k in 0..4 {
            match (round + k) % 4 {
                3 => {
                    t[3] = per_op(BATCH, || {
                        let (m, sig) = fresh_it.next().unwrap();
                        public.verify_strict(black_box(m), black_box(sig)).unwrap()
                    })
                }
                0 => {
                    t[0] = per_op(BATCH, || {
                        public
                            .verify_strict(black_box(&message), black_box(&signature))
                            .unwrap()
                    })
                }
                1 => {
                    let mut it = hot_requests.iter();
                    t[1] = per_op(BATCH, || {
                        black_box(ready(cached.verify(it.next().unwrap())).unwrap());
                    })
                }
                _ => {
                    let mut it = cold_requests.iter();
                    t[2] = per_op(BATCH, || {
                        black_box(ready(cold.verify(it.next().unwrap())).unwrap());
                    })
                }
            }
        }
        raw.push(t[0]);
        hot.push(t[1]);
        cool.push(t[2]);
        ratio_hot.push(t[1] / t[0]);
        ratio_cold.push(t[2] / t[0]);
        raw_fresh.push(t[3]);
        ratio_hot_fresh.push(t[1] / t[3]);
        ratio_cold_fresh.push(t[2] / t[3]);
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (raw_min, hot_min, cold_min) = (min(&raw), min(&hot), min(&cool));
    let fresh_min = min(&raw_fresh);
    println!("{rounds} rounds of {BATCH} operations each, interleaved");
    println!(
        "raw verify_strict      median {:>8.1} µs   min {:>8.1} µs",
        median(&mut raw) / 1e3,
        raw_min / 1e3
    );
    println!(
        "raw, fresh signatures median {:>8.1} µs   min {:>8.1} µs",
        median(&mut raw_fresh) / 1e3,
        fresh_min / 1e3
    );
    println!(
        "verifier, cached       median {:>8.1} µs   min {:>8.1} µs",
        median(&mut hot) / 1e3,
        hot_min / 1e3
    );
    println!(
        "verifier, cold         median {:>8.1} µs   min {:>8.1} µs",
        median(&mut cool) / 1e3,
        cold_min / 1e3
    );
    println!(
        "cached / raw: median of per-round ratios {:.3}, ratio of minima {:.3}",
        median(&mut ratio_hot),
        hot_min / raw_min
    );
    println!(
        "cold / raw:   median of per-round ratios {:.3}, ratio of minima {:.3}",
        median(&mut ratio_cold),
        cold_min / raw_min
    );

    println!(
        "against fresh signatures: cached {:.3} (minima {:.3}), cold {:.3} (minima {:.3})",
        median(&mut ratio_hot_fresh),
        hot_min / fresh_min,
        median(&mut ratio_cold_fresh),
        cold_min / fresh_min
    );

    // The pieces, each the minimum over rounds of a batch average.
    println!("pieces (min over {rounds} rounds, ns per call):");
    let proofs: Vec<String> = (0..BATCH * 4).map(|_| device.proof()).collect();
    let parsed = DpopProof::parse(&sample_proof).unwrap();
    let device_x = *parsed.jwk().ed25519_bytes().unwrap();
    let ctx = RequestContext {
        method: "GET",
        url: URL,
        now: T0,
        max_skew_secs: 60,
        max_jws_len: 8192,
    };
    let mut remembered = Remembered(parsed.jwk().decode().unwrap());
    let mut it = proofs.iter().cycle();
    let store = MemoryReplayStore::with_capacity(Arc::new(clock.clone()), 4_000_000);
    let mut n = 0u64;
    let pieces: Vec<(&str, Piece<'_>)> = vec![
        (
            "DpopProof::parse (base64, JSON, jwk point decoding)",
            Box::new(|| {
                black_box(DpopProof::parse(black_box(&sample_proof)).unwrap());
            }),
        ),
        (
            "  of which: jwk point decoding (VerifyingKey::from_bytes)",
            Box::new(|| {
                black_box(ed25519_dalek::VerifyingKey::from_bytes(black_box(&device_x)).unwrap());
            }),
        ),
        (
            "AccessToken::parse",
            Box::new(|| {
                black_box(AccessToken::parse(black_box(&token)).unwrap());
            }),
        ),
        (
            "proof jwk thumbprint",
            Box::new(|| {
                black_box(parsed.thumbprint());
            }),
        ),
        (
            "ath (SHA-256 of the token)",
            Box::new(|| {
                black_box(access_token_hash(black_box(&token)));
            }),
        ),
        (
            "token cache key (SHA-256 of the token)",
            Box::new(|| {
                black_box(TokenCache::hash(black_box(&token)));
            }),
        ),
        (
            "normalize_htu",
            Box::new(|| {
                black_box(normalize_htu(black_box(URL)).unwrap());
            }),
        ),
        (
            "replay_key + MemoryReplayStore insert",
            Box::new(|| {
                n += 1;
                let key = replay_key("jkt", &n.to_string());
                black_box(store.insert_once_now(&key, (T0 + 61) * 1000).unwrap());
            }),
        ),
        (
            "check_request (key remembered, token signature skipped)",
            Box::new(|| {
                let proof = it.next().unwrap();
                black_box(check_request(&ctx, proof, Some(&token), &mut remembered).unwrap());
            }),
        ),
        (
            "proof signature check (DpopProof::verify_signature)",
            Box::new(|| parsed.verify_signature().unwrap()),
        ),
    ];
    for (name, mut f) in pieces {
        let best = (0..rounds)
            .map(|_| per_op(BATCH, &mut f))
            .fold(f64::INFINITY, f64::min);
        println!("  {best:>9.0}  {name}");
    }
}

/// One timed piece of the pipeline.
type Piece<'a> = Box<dyn FnMut() + 'a>;

/// Hooks that know the one device key of this benchmark and skip the token signature.
struct Remembered(ProofKey);

impl CheckHooks for Remembered {
    fn verify_token(&mut self, _token: &AccessToken) -> Result<(), ProtoError> {
        Ok(())
    }

    fn decoder(&self) -> &dyn KeyDecoder {
        self
    }
}

impl KeyDecoder for Remembered {
    fn decode(&self, jwk: &PublicJwk) -> Result<ProofKey, ProtoError> {
        if jwk == self.0.jwk() {
            Ok(self.0.clone())
        } else {
            DecodeEveryTime.decode(jwk)
        }
    }
}
