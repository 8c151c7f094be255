//! The session-store cases, one function each (grouped by operation in the
//! submodules), and what they share: fixed times, records, requests.

use super::*;

/// Defines one case: a function of the store, as [`Case`] expects.
macro_rules! case {
    ($(#[$doc:meta])* $name:ident, |$store:ident| $body:block) => {
        $(#[$doc])*
        pub fn $name(store: Arc<dyn SessionStore>) -> BoxFuture<'static, ()> {
            Box::pin(async move {
                let $store: &dyn SessionStore = &*store;
                $body
            })
        }
    };
}

mod dbsc;
mod rotation;
mod sweep;
mod updates;

pub use dbsc::*;
pub use rotation::*;
pub use sweep::*;
pub use updates::*;

const T0: i64 = 1_700_000_000;
const IDLE: i64 = 1800;
const ABSOLUTE: i64 = 43_200;
const GRACE: i64 = 30;

fn user(name: &str) -> String {
    let suffix = SessionId::generate().unwrap();
    format!("{name}-{suffix}")
}

fn key(n: u8) -> Jkt {
    Jkt::from_bytes([n; 32])
}

fn hash(n: u8) -> TokenHash {
    TokenHash::from_bytes([n; 32])
}

fn record(user_id: &str) -> SessionRecord {
    SessionRecord {
        id: SessionId::generate().unwrap(),
        user_id: user_id.to_owned(),
        jkt: key(1),
        device_label: Some("Firefox on Linux".into()),
        user_agent_hash: Some([7; 8]),
        created_at: T0,
        last_seen_at: T0,
        idle_expires_at: T0 + IDLE,
        absolute_expires_at: T0 + ABSOLUTE,
        generation: 0,
        current_hash: hash(100),
        previous_hash: None,
        grace_until: None,
        state: SessionState::Active,
        reason: None,
        ended_at: None,
        binding: SessionBinding::Dpop,
    }
}

async fn created(store: &dyn SessionStore, user_id: &str) -> SessionRecord {
    let r = record(user_id);
    store.create(r.clone()).await.unwrap();
    r
}

fn rotate_req(
    r: &SessionRecord,
    presented: TokenHash,
    generation: u64,
    next: TokenHash,
    now: i64,
) -> RotateRequest {
    RotateRequest {
        id: r.id,
        presented,
        presented_generation: generation,
        jkt: r.jkt,
        next,
        now,
        grace_until: now + GRACE,
        idle_expires_at: now + IDLE,
        absolute_cap: None,
    }
}

fn rotated(outcome: RotateOutcome) -> SessionRecord {
    match outcome {
        RotateOutcome::Rotated(r) => r,
        other => panic!("expected Rotated, got {other:?}"),
    }
}

async fn load(store: &dyn SessionStore, id: SessionId) -> SessionRecord {
    store
        .load(id)
        .await
        .unwrap()
        .expect("the session is stored")
}

fn end_req(id: SessionId, state: EndState, reason: Reason, now: i64) -> EndRequest {
    EndRequest {
        id,
        owner: None,
        state,
        reason,
        now,
    }
}

async fn sweep_all(
    store: &dyn SessionStore,
    now: i64,
    purge_before: i64,
    limit: usize,
) -> Vec<SweepBatch> {
    let mut batches = Vec::new();
    let mut cursor = 0;
    for _ in 0..10_000 {
        let batch = store
            .sweep(SweepRequest {
                now,
                purge_ended_before: purge_before,
                limit,
                cursor,
            })
            .await
            .unwrap();
        assert!(batch.swept.len() <= limit * 2, "a batch exceeded its limit");
        cursor = batch.cursor;
        let done = batch.done;
        batches.push(batch);
        if done {
            return batches;
        }
    }
    panic!("the sweep never finished");
}
