//! Bytes of memory per active session in the memory store, measured as the growth of
//! the process's resident set (`VmRSS`) while `n` sessions are created. Each case runs
//! in a fresh child process so earlier cases' freed memory cannot hide later growth.
//!
//! `cargo bench -p keybound-server --bench session_memory`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::process::Command;

use keybound_server::lifecycle::{Jkt, SessionId, SessionState, TokenHash};
use keybound_server::store::{MemoryStore, SessionBinding, SessionRecord, SessionStore};

const CASE_VAR: &str = "KEYBOUND_MEMORY_CASE";

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A session after a few refreshes, as a browser would have it.
fn active(n: u64, per_user: u64, label: bool) -> SessionRecord {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_le_bytes());
    id[8..].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    let t0 = 1_700_000_000;
    SessionRecord {
        id: SessionId::from_bytes(id),
        user_id: format!("user-{:07}", n / per_user),
        jkt: Jkt::from_bytes([n as u8; 32]),
        device_label: label.then(|| "Firefox on Linux".to_owned()),
        user_agent_hash: Some([3; 8]),
        created_at: t0,
        last_seen_at: t0 + 600,
        idle_expires_at: t0 + 2400,
        absolute_expires_at: t0 + 43_200,
        generation: 2,
        current_hash: TokenHash::from_bytes([n as u8; 32]),
        previous_hash: Some(TokenHash::from_bytes([1; 32])),
        grace_until: Some(t0 + 630),
        state: SessionState::Active,
        reason: None,
        ended_at: None,
        binding: SessionBinding::Dpop,
    }
}

fn run_case(spec: &str) {
    let parts: Vec<u64> = spec.split(',').map(|p| p.parse().unwrap()).collect();
    let (n, per_user, label) = (parts[0], parts[1], parts[2] == 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let records: Vec<SessionRecord> = Vec::new();
    let store = MemoryStore::new();
    let before = rss_bytes();
    runtime.block_on(async {
        for i in 0..n {
            store
                .create(active(i, per_user, label).into())
                .await
                .unwrap();
        }
    });
    let after = rss_bytes();
    assert_eq!(store.len() as u64, n);
    drop(records);
    println!("{}", (after - before) as f64 / n as f64);
}

fn main() {
    if let Ok(spec) = std::env::var(CASE_VAR) {
        run_case(&spec);
        return;
    }
    let exe = std::env::current_exe().unwrap();
    println!("memory store: resident bytes per active session (VmRSS growth / sessions)");
    println!(
        "{:>10} {:>15} {:>13} {:>16}",
        "sessions", "sessions/user", "device label", "bytes/session"
    );
    for (n, per_user, label) in [
        (100_000u64, 1u64, 1u8),
        (200_000, 1, 1),
        (200_000, 4, 1),
        (200_000, 1, 0),
        (400_000, 1, 1),
        (1_000_000, 2, 1),
    ] {
        let out = Command::new(&exe)
            .env(CASE_VAR, format!("{n},{per_user},{label}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes: f64 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let label = if label == 1 { "16 chars" } else { "none" };
        println!("{n:>10} {per_user:>15} {label:>13} {bytes:>16.0}");
    }
}
