//! What the interleaved benches (`replay_paired`, `login_paired`) share: whether this
//! run measures, the order of the cases in a round, medians, the load average and
//! polling a future without a runtime.
// Each bench compiles this module and uses a part of it.
#![allow(dead_code)]

use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Whether this run measures: `cargo bench` passes `--bench`; under
/// `cargo test --benches`, or `cargo bench -- --test`, a short run only checks that
/// everything still works.
pub(crate) fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// The order of `cases` cases in `round`: a fresh shuffle each round (a fixed
/// rotation would always run a case right after the same other one, whose traces in
/// the caches and the scheduler it would then always inherit).
pub(crate) fn order(round: usize, cases: usize) -> Vec<usize> {
    let mut state = (round as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut order: Vec<usize> = (0..cases).collect();
    for i in (1..cases).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// The median of `values` (sorted in place).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap()
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Polls a future that completes without waiting (memory stores; the SQLite store
/// outside a tokio runtime, which runs its statements inline).
pub(crate) fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}
