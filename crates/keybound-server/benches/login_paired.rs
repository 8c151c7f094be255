//! What the per-user login fence costs a login, measured interleaved so the shared
//! machine's load hits every case alike: each round times a batch of every case back
//! to back, in an order shuffled afresh each round; ratios are taken per round
//! (reported: their median) and between the per-case minima.
//!
//! A login always carries the user's fence: read by `SessionService::login_fence`
//! before the password check and handed over in `OpenRequest::fence`, or read by
//! `open_session` itself; the store's `create` then compares it inside its atomic
//! step. So there is no login without the fence, and the cases set the read beside the
//! whole login, on the memory and the SQLite store:
//!
//! * a login whose fence was read beforehand, outside the timed part (the login
//!   without the extra read);
//! * a login that reads the fence itself (`open_session` without a fence);
//! * the recommended flow: `login_fence`, then `open_session` with it;
//! * `login_fence` alone;
//! * the store's `create` without and with the fence check (`CreateRequest::fence`),
//!   the check that runs inside the create's transaction.
//!
//! Service calls run on a current-thread tokio runtime, so the SQLite store's calls
//! take their usual hand-off to the blocking pool; a second SQLite store is polled
//! without a runtime, where it runs its statements inline (the SQL work alone). Logins cycle through 1,024 users,
//! every other one with a fence row (its sessions were once all revoked).
//!
//! Run: `cargo bench -p keybound-server --bench login_paired`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "support/paired.rs"]
mod paired;
#[path = "support/lifecycle.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use keybound_server::ManualClock;
use keybound_server::lifecycle::{
    Actor, Jkt, LoginFence, OpenRequest, Reason, RefreshSecret, SessionId, SessionState, TokenHash,
};
use keybound_server::proto::ed25519_dalek::SigningKey;
use keybound_server::store::{
    CreateRequest, MemoryStore, SessionBinding, SessionRecord, SessionStore, SqliteStore,
};
use keybound_server::{SessionService, proto::Signer};
use paired::{load_average, measuring, median, order, ready};
use support::{T0_MS, keys};
use tokio::runtime::Runtime;

const BATCH: usize = 16;
const USERS: usize = 1024;

const CASES: [&str; 6] = [
    "login, fence read beforehand (not timed)",
    "login, open_session reads the fence",
    "login_fence + open_session with it",
    "login_fence alone",
    "store create, no fence check",
    "store create, fence checked",
];

fn user(n: usize) -> String {
    format!("user-{:04}", n % USERS)
}

/// A new active session of `user_id`, as a login stores it.
fn active(user_id: String) -> SessionRecord {
    let t0 = T0_MS / 1000;
    SessionRecord {
        id: SessionId::generate().unwrap(),
        user_id,
        jkt: Jkt::from_bytes([7; 32]),
        device_label: Some("Firefox on Linux".into()),
        user_agent_hash: None,
        created_at: t0,
        last_seen_at: t0,
        idle_expires_at: t0 + 1800,
        absolute_expires_at: t0 + 43_200,
        generation: 0,
        current_hash: TokenHash::from_bytes([9; 32]),
        previous_hash: None,
        grace_until: None,
        state: SessionState::Active,
        reason: None,
        ended_at: None,
        binding: SessionBinding::Dpop,
    }
}

/// One store with its service and every user's fence, read once.
struct Logins {
    name: &'static str,
    /// Polled without a runtime (the SQLite store then runs inline).
    inline: bool,
    store: Arc<dyn SessionStore>,
    service: SessionService,
    fences: Vec<LoginFence>,
    values: Vec<u64>,
    times: Vec<Vec<f64>>,
}

impl Logins {
    fn new(rt: &Runtime, name: &'static str, inline: bool, store: Arc<dyn SessionStore>) -> Self {
        let service = SessionService::builder_shared(Arc::clone(&store), keys())
            .clock(ManualClock::new(T0_MS))
            .refresh_secret(RefreshSecret::from_bytes([5; 32]))
            .build()
            .unwrap();
        let (fences, values) = rt.block_on(async {
            let (mut fences, mut values) = (Vec::new(), Vec::new());
            for n in 0..USERS {
                if n % 2 == 1 {
                    service
                        .revoke_user(&user(n), None, Reason::USER_REVOKED, Actor::System)
                        .await
                        .unwrap();
                }
                fences.push(service.login_fence(&user(n)).await.unwrap());
                values.push(store.user_fence(&user(n)).await.unwrap());
            }
            (fences, values)
        });
        Self {
            name,
            inline,
            store,
            service,
            fences,
            values,
            times: vec![Vec::new(); CASES.len()],
        }
    }

    /// Runs `future` on `rt`, or polls it without a runtime.
    fn block<F: std::future::Future>(&self, rt: &Runtime, future: F) -> F::Output {
        if self.inline {
            ready(future)
        } else {
            rt.block_on(future)
        }
    }

    /// Login `n` (of user `n % USERS`, named `user_id`) as `case`; `record` is the
    /// session the store cases create.
    fn run(
        &self,
        rt: &Runtime,
        case: usize,
        (n, user_id): (usize, &str),
        jkt: &str,
        record: Option<SessionRecord>,
    ) {
        match case {
            0 => {
                let request = OpenRequest::new().fence(self.fences[n % USERS].clone());
                black_box(
                    self.block(rt, self.service.open_session(user_id, jkt, request))
                        .unwrap(),
                );
            }
            1 => {
                black_box(
                    self.block(
                        rt,
                        self.service.open_session(user_id, jkt, OpenRequest::new()),
                    )
                    .unwrap(),
                );
            }
            2 => {
                black_box(
                    self.block(rt, async {
                        let fence = self.service.login_fence(user_id).await?;
                        self.service
                            .open_session(user_id, jkt, OpenRequest::new().fence(fence))
                            .await
                    })
                    .unwrap(),
                );
            }
            3 => {
                black_box(self.block(rt, self.service.login_fence(user_id)).unwrap());
            }
            _ => {
                let fence = (case == 5).then(|| self.values[n % USERS]);
                let request = CreateRequest {
                    record: record.unwrap(),
                    fence,
                    max_active: Some(100),
                };
                black_box(self.block(rt, self.store.create(request)).unwrap());
            }
        }
    }
}

fn main() {
    let rounds: usize = if measuring() { 400 } else { 2 };
    println!("load average at start: {}", load_average());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let jkt = SigningKey::from_bytes(&[7; 32]).public_jwk().thumbprint();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = rt
        .block_on(SqliteStore::open(dir.path().join("login.db")))
        .unwrap();
    let inline = SqliteStore::open_blocking(dir.path().join("inline.db")).unwrap();
    let mut stores = [
        Logins::new(&rt, "memory store", false, Arc::new(MemoryStore::new())),
        Logins::new(&rt, "SQLite store, on tokio", false, Arc::new(sqlite)),
        Logins::new(&rt, "SQLite store, polled (inline)", true, Arc::new(inline)),
    ];
    let cases = stores.len() * CASES.len();
    let users: Vec<String> = (0..USERS).map(user).collect();
    let mut n = 0usize;
    for round in 0..rounds {
        for slot in order(round, cases) {
            let (logins, case) = (&mut stores[slot / CASES.len()], slot % CASES.len());
            // Popped from the back: the store cases' records, in login order.
            let mut records: Vec<SessionRecord> = match case {
                4 | 5 => (0..BATCH).rev().map(|i| active(user(n + i))).collect(),
                _ => Vec::new(),
            };
            let started = Instant::now();
            for _ in 0..BATCH {
                let login = (n, users[n % USERS].as_str());
                logins.run(&rt, case, login, &jkt, records.pop());
                n += 1;
            }
            logins.times[case].push(started.elapsed().as_secs_f64() * 1e6 / BATCH as f64);
        }
    }

    println!("{rounds} rounds of {BATCH} operations per case, order shuffled per round");
    for logins in &stores {
        println!();
        println!(
            "{:<48} {:>9} {:>10} {:>9}",
            logins.name, "min µs", "median µs", "mean µs"
        );
        let mut mins = Vec::new();
        for (case, name) in CASES.iter().enumerate() {
            let t = &logins.times[case];
            let min = t.iter().copied().fold(f64::INFINITY, f64::min);
            let mean = t.iter().sum::<f64>() / t.len() as f64;
            mins.push(min);
            println!(
                "  {name:<46} {min:>9.2} {:>10.2} {mean:>9.2}",
                median(&mut t.clone())
            );
        }
        let ratio = |a: usize, b: usize| {
            let t = &logins.times;
            let mut per_round: Vec<f64> = (0..rounds).map(|r| t[a][r] / t[b][r]).collect();
            (median(&mut per_round), mins[a] / mins[b])
        };
        println!("  ratios: median of per-round ratios; ratio of minima");
        for (name, a, b) in [
            ("login reading the fence / without the read", 1, 0),
            ("login_fence + login / without the read", 2, 0),
            ("login_fence alone / login without the read", 3, 0),
            ("create with the fence check / without", 5, 4),
        ] {
            let (med, of_min) = ratio(a, b);
            println!("    {name:<46} {med:>7.3}; {of_min:.3}");
        }
    }
    println!("load average at end: {}", load_average());
}
