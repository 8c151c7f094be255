//! Refresh cost next to the crypto a refresh needs, measured interleaved so the shared
//! machine's load hits every case alike: each round times a batch of every case back
//! to back, in rotating order; ratios are taken per round. Then large sweeps, timed
//! by the wall clock and by the process's CPU time (which other processes' load
//! inflates much less).
//!
//! `cargo bench -p keybound-server --bench lifecycle_paired`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "support/lifecycle.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use keybound_server::ManualClock;
use keybound_server::lifecycle::{OpenRequest, RefreshSecret, RequestSignals, SessionService};
use keybound_server::proto::Signer;
use keybound_server::proto::ed25519_dalek::SigningKey;
use keybound_server::store::{MemoryStore, SessionStore, SqliteStore};
use support::{T0_MS, keys, refresh_proof, refreshed_claims, terminal, verify_proof};
use tokio::runtime::Runtime;

const ROUNDS: usize = 400;
const BATCH: usize = 16;
const PROOFS: usize = 1024;

/// Refresh-request proofs with distinct `jti`s: a verifier never sees the same
/// signature twice.
fn proofs(device: &SigningKey) -> Vec<String> {
    (0..PROOFS)
        .map(|i| {
            let mut jti = [0u8; 16];
            jti[..8].copy_from_slice(&(i as u64).to_le_bytes());
            refresh_proof(device, jti)
        })
        .collect()
}

struct Refresher {
    service: SessionService,
    token: String,
}

impl Refresher {
    fn new(rt: &Runtime, store: Arc<dyn SessionStore>, jkt: &str) -> Self {
        let service = SessionService::builder_shared(store, keys())
            .clock(ManualClock::new(T0_MS))
            .refresh_secret(RefreshSecret::from_bytes([5; 32]))
            .build()
            .unwrap();
        let token = rt
            .block_on(service.open_session("alice", jkt, OpenRequest::new()))
            .unwrap()
            .refresh_token;
        Self { service, token }
    }

    fn refresh(&mut self, rt: &Runtime, proof: &str) {
        let jkt = verify_proof(proof);
        let tokens = rt
            .block_on(
                self.service
                    .refresh(&self.token, &jkt, &RequestSignals::new()),
            )
            .unwrap();
        self.token = tokens.refresh_token;
        black_box(tokens.access_token);
    }
}

/// CPU time of the whole process (all threads), seconds; 10 ms resolution.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

/// Fills `store` with `n` terminal sessions, then times one `sweep_once` purging them.
fn timed_sweep(rt: &Runtime, store: Arc<dyn SessionStore>, n: u64) -> (f64, f64) {
    rt.block_on(async {
        for i in 0..n {
            store.create(terminal(i).into()).await.unwrap();
        }
    });
    let service = SessionService::builder_shared(store, keys())
        .clock(ManualClock::new(T0_MS + 8 * 24 * 3600 * 1000))
        .build()
        .unwrap();
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    let report = rt.block_on(service.sweep_once()).unwrap();
    let times = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    assert_eq!(report.purged, n);
    times
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let device = SigningKey::from_bytes(&[7; 32]);
    let jkt = device.public_jwk().thumbprint();
    let proofs = proofs(&device);
    let signing = keys();
    let claims = refreshed_claims(jkt.clone());
    let mut memory = Refresher::new(&rt, Arc::new(MemoryStore::new()), &jkt);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = rt
        .block_on(SqliteStore::open(dir.path().join("paired.db")))
        .unwrap();
    let mut sqlite = Refresher::new(&rt, Arc::new(sqlite), &jkt);

    const CASES: [&str; 5] = [
        "crypto: proof verify + token sign",
        "  proof verify alone",
        "  token sign alone",
        "refresh, memory store (incl. proof verify)",
        "refresh, SQLite store (incl. proof verify)",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); CASES.len()];
    let mut next = 0usize;
    for round in 0..ROUNDS {
        for k in 0..CASES.len() {
            let case = (round + k) % CASES.len();
            let started = Instant::now();
            for _ in 0..BATCH {
                let proof = &proofs[next % PROOFS];
                next += 1;
                match case {
                    0 => {
                        let mut c = claims.clone();
                        c.jkt = verify_proof(proof);
                        black_box(signing.sign(&c).unwrap());
                    }
                    1 => {
                        black_box(verify_proof(proof));
                    }
                    2 => {
                        black_box(signing.sign(&claims).unwrap());
                    }
                    3 => memory.refresh(&rt, proof),
                    _ => sqlite.refresh(&rt, proof),
                }
            }
            times[case].push(started.elapsed().as_secs_f64() * 1e6 / BATCH as f64);
        }
    }
    println!("{ROUNDS} rounds of {BATCH} operations per case, rotating order");
    println!("{:<46} {:>10} {:>10}", "case", "min µs", "median µs");
    let mut mins = Vec::new();
    for (case, name) in CASES.iter().enumerate() {
        let min = times[case].iter().copied().fold(f64::INFINITY, f64::min);
        mins.push(min);
        let med = median(&mut times[case].clone());
        println!("{name:<46} {min:>10.1} {med:>10.1}");
    }
    let per_round = |store: usize| {
        let mut ratios: Vec<f64> = (0..ROUNDS).map(|r| times[0][r] / times[store][r]).collect();
        median(&mut ratios)
    };
    println!();
    println!("refresh rate / crypto-only rate (goal for memory: >= 0.8)");
    println!(
        "  memory: median of rounds {:.3}, of minima {:.3}",
        per_round(3),
        mins[0] / mins[3]
    );
    println!(
        "  sqlite: median of rounds {:.3}, of minima {:.3}",
        per_round(4),
        mins[0] / mins[4]
    );
    println!(
        "refreshes per second per core (from minima): crypto-only {:.0}, memory {:.0}, sqlite {:.0}",
        1e6 / mins[0],
        1e6 / mins[3],
        1e6 / mins[4]
    );

    println!();
    println!("one sweep_once purging every session (batches of 10,000)");
    println!(
        "{:<34} {:>8} {:>8} {:>6}",
        "case", "wall s", "CPU s", "load"
    );
    for run in 1..=3 {
        let (wall, cpu) = timed_sweep(&rt, Arc::new(MemoryStore::new()), 1_000_000);
        println!(
            "{:<34} {wall:>8.3} {cpu:>8.2} {:>6}",
            format!("memory, 1,000,000 (run {run})"),
            load_average()
        );
    }
    for run in 1..=3 {
        let path = dir.path().join(format!("sweep{run}.db"));
        let store = rt.block_on(SqliteStore::open(&path)).unwrap();
        let (wall, cpu) = timed_sweep(&rt, Arc::new(store), 100_000);
        println!(
            "{:<34} {wall:>8.3} {cpu:>8.2} {:>6}",
            format!("SQLite, 100,000 (run {run})"),
            load_average()
        );
    }
}
