//! Interleaved measurement of ES256 verification, robust to a busy machine.
//!
//! Each round times a batch of every case back to back, in a rotating order, and the
//! ratios are taken per round, then summarised by their median (as
//! `crates/keybound-server/benches/verify_paired.rs` does for Ed25519).
//!
//! Run: `cargo bench -p keybound-es256-bench --bench es256_paired`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use keybound_es256_bench::Corpus;

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

/// One timed case: a name and the call to time.
type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>);

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --benches` one short round
    // only checks that everything still runs.
    let measuring = std::env::args().any(|a| a == "--bench");
    let rounds: usize = if measuring { 400 } else { 2 };
    let corpus = Corpus::new(1024);
    let mut next = 0usize;
    let mut step = move || {
        next = (next + 1) % 1024;
        next
    };
    let (mut a, mut b, mut c, mut d) = (step.clone(), step.clone(), step.clone(), step.clone());
    let _ = step();
    let mut cases: Vec<Case<'_>> = vec![
        ("p256 verify", Box::new(|| corpus.verify_p256(black_box(a())))),
        ("ring verify (parses the key)", Box::new(|| corpus.verify_ring(black_box(b())))),
        ("aws-lc-rs verify", Box::new(|| corpus.verify_aws_lc(black_box(c())))),
        (
            "aws-lc-rs verify, parsing the key",
            Box::new(|| corpus.verify_aws_lc_unparsed(black_box(d()))),
        ),
    ];
    let n = cases.len();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let t = per_op(BATCH, &mut cases[i].1);
            times[i].push(t);
        }
    }
    println!("{rounds} rounds of {BATCH} operations each, interleaved");
    let base: Vec<f64> = times[0].clone();
    for (i, (name, _)) in cases.iter().enumerate() {
        let mut ratios: Vec<f64> = times[i].iter().zip(&base).map(|(t, b)| t / b).collect();
        let min = times[i].iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{name:<40} median {:>8.1} µs   min {:>8.1} µs   / p256: {:.3}",
            median(&mut times[i].clone()) / 1e3,
            min / 1e3,
            median(&mut ratios)
        );
    }
}
