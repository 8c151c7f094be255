//! Criterion: raw ES256 (ECDSA P-256, SHA-256) verification by the three candidate
//! libraries, side by side on the same messages and signatures; then keybound's whole
//! check of an ES256 request (cached access token) and `dpop-verifier` 4.4's ES256 proof
//! check. Ratios belong to the interleaved `es256_paired` bench (one run, same load).
//!
//! Run: `cargo bench -p keybound-es256-bench --bench es256_verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keybound_es256_bench::{Corpus, Requests};

fn raw_verify(c: &mut Criterion) {
    let corpus = Corpus::new(1024);
    let mut group = c.benchmark_group("es256_raw_verify");
    let mut i = 0usize;
    group.bench_function("p256", |b| {
        b.iter(|| {
            i = (i + 1) % corpus.len();
            corpus.verify_p256(black_box(i));
        })
    });
    group.bench_function("ring", |b| {
        b.iter(|| {
            i = (i + 1) % corpus.len();
            corpus.verify_ring(black_box(i));
        })
    });
    group.bench_function("aws-lc-rs", |b| {
        b.iter(|| {
            i = (i + 1) % corpus.len();
            corpus.verify_aws_lc(black_box(i));
        })
    });
    group.bench_function("p256 key decode", |b| {
        b.iter(|| black_box(corpus.decode_p256()))
    });
    group.bench_function("aws-lc-rs key decode", |b| {
        b.iter(|| black_box(corpus.decode_aws_lc()))
    });
    group.finish();

    let requests = Requests::new();
    let mut group = c.benchmark_group("es256_request");
    group.bench_function("keybound full request, cached token", |b| {
        b.iter_batched(
            || requests.request(),
            |request| requests.keybound(&request),
            criterion::BatchSize::SmallInput,
        )
    });
    let requests = Requests::new();
    group.bench_function("dpop-verifier 4.4 proof check", |b| {
        b.iter_batched(
            || requests.proof(),
            |proof| requests.dpop_verifier(&proof),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, raw_verify);
criterion_main!(benches);
