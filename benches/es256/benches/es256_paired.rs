//! Interleaved measurement of ES256 verification, robust to a busy machine.
//!
//! Each round times a batch of every case back to back, in a rotating order, and the
//! ratios are taken per round, then summarised by their median (as
//! `crates/keybound-server/benches/verify_paired.rs` does for Ed25519). Cases: raw
//! ES256 verification by the three candidate libraries, keybound's whole check of a
//! request with a cached access token, and `dpop-verifier` 4.4's ES256 proof check.
//!
//! Run: `cargo bench -p keybound-es256-bench --bench es256_paired`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use keybound_es256_bench::{Corpus, Requests};

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
    let rounds: usize = if measuring { 400 } else { 2 };
    let corpus = Corpus::new(1024);
    let requests = Requests::new();
    let counter = |start: usize| {
        let mut next = start;
        move || {
            next = (next + 1) % 1024;
            next
        }
    };
    let (mut a, mut b, mut c, mut d) = (counter(0), counter(1), counter(2), counter(3));
    // Case names; the batches of keybound and dpop-verifier are made before each round.
    let names = [
        "p256 verify",
        "ring verify (parses the key)",
        "aws-lc-rs verify",
        "aws-lc-rs verify, parsing the key",
        "keybound full request, cached token",
        "dpop-verifier 4.4 proof check",
    ];
    let n = names.len();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); n];
    for round in 0..rounds {
        let batch: Vec<http::request::Parts> = (0..BATCH).map(|_| requests.request()).collect();
        let proofs: Vec<String> = (0..BATCH).map(|_| requests.proof()).collect();
        for k in 0..n {
            let i = (round + k) % n;
            let t = match i {
                0 => per_op(BATCH, || corpus.verify_p256(black_box(a()))),
                1 => per_op(BATCH, || corpus.verify_ring(black_box(b()))),
                2 => per_op(BATCH, || corpus.verify_aws_lc(black_box(c()))),
                3 => per_op(BATCH, || corpus.verify_aws_lc_unparsed(black_box(d()))),
                4 => {
                    let mut it = batch.iter();
                    per_op(BATCH, || requests.keybound(black_box(it.next().unwrap())))
                }
                _ => {
                    let mut it = proofs.iter();
                    per_op(BATCH, || {
                        requests.dpop_verifier(black_box(it.next().unwrap()))
                    })
                }
            };
            times[i].push(t);
        }
    }
    println!("{rounds} rounds of {BATCH} operations each, interleaved");
    let ratio = |x: usize, y: usize| {
        let mut r: Vec<f64> = times[x].iter().zip(&times[y]).map(|(a, b)| a / b).collect();
        median(&mut r)
    };
    for (i, name) in names.iter().enumerate() {
        let min = times[i].iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{name:<40} median {:>8.1} µs   min {:>8.1} µs   / aws-lc-rs verify: {:.3}",
            median(&mut times[i].clone()) / 1e3,
            min / 1e3,
            ratio(i, 2)
        );
    }
    println!(
        "keybound full request / aws-lc-rs raw verify: median of per-round ratios {:.3}",
        ratio(4, 2)
    );
    println!(
        "dpop-verifier 4.4 / keybound full request:    median of per-round ratios {:.3}",
        ratio(5, 4)
    );
}
