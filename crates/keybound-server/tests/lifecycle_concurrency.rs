//! Concurrent refreshes with one token: exactly one rotation, on every store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{harness, jkt};
use keybound_server::lifecycle::{AuditEventKind, OpenRequest, RequestSignals, SessionId};
use keybound_server::store::{MemoryStore, SessionStore};
use tokio::sync::Barrier;

const TASKS: usize = 64;

async fn sixty_four_refreshes_with_one_token(store: impl SessionStore, advance_into_grace: u64) {
    let mut h = harness(store);
    let t0 = h
        .service
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap();
    h.advance(advance_into_grace);
    h.drain();
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let service = h.service.clone();
        let barrier = Arc::clone(&barrier);
        let token = t0.refresh_token.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            service
                .refresh(&token, &jkt(1), &RequestSignals::new())
                .await
        }));
    }
    let mut successors = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(tokens) => successors.push(tokens),
            Err(e) => assert_eq!(e.oauth_error(), "invalid_grant", "{e}"),
        }
    }
    // Within grace every caller gets the one successor.
    assert_eq!(successors.len(), TASKS);
    assert!(
        successors
            .iter()
            .all(|t| t.refresh_token == successors[0].refresh_token)
    );
    let refreshed: Vec<_> = h
        .drain()
        .into_iter()
        .filter(|e| e.event == AuditEventKind::Refreshed)
        .collect();
    assert_eq!(refreshed.len(), 1, "exactly one rotation");
    let record = h
        .service
        .store()
        .load(SessionId::parse(&t0.session_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.generation, 1);
    assert!(!record.state.is_terminal());
    // The store is consistent: the successor rotates on, the session stays usable.
    let t2 = h
        .service
        .refresh(
            &successors[0].refresh_token,
            &jkt(1),
            &RequestSignals::new(),
        )
        .await
        .unwrap();
    keybound_server::SessionCheck::check(&h.service, &t2.session_id, "alice", &jkt(1))
        .await
        .unwrap();
}

/// Two waves racing over a grace boundary: the first wave rotates, a second wave of
/// the same token after grace is reuse; every answer is a success with the one
/// successor or a clean `invalid_grant`, and the session never has two live
/// generations.
async fn racing_past_grace(store: impl SessionStore) {
    let h = harness(store);
    let t0 = h
        .service
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap();
    let t1 = h
        .service
        .refresh(&t0.refresh_token, &jkt(1), &RequestSignals::new())
        .await
        .unwrap();
    h.advance(31);
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let service = h.service.clone();
        let barrier = Arc::clone(&barrier);
        // Half present the stale token, half the current one.
        let token = if i % 2 == 0 { &t0 } else { &t1 }.refresh_token.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            service
                .refresh(&token, &jkt(1), &RequestSignals::new())
                .await
        }));
    }
    let mut issued = std::collections::HashSet::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(t) => {
                issued.insert(t.refresh_token);
            }
            Err(e) => assert_eq!(e.oauth_error(), "invalid_grant", "{e}"),
        }
    }
    assert!(issued.len() <= 1, "two live generations: {}", issued.len());
    // The stale token was seen, so the session ends revoked however the race went.
    let info = h.service.session(&t0.session_id).await.unwrap();
    assert_eq!(
        info.state,
        keybound_server::lifecycle::SessionState::Revoked
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_rotates_once() {
    sixty_four_refreshes_with_one_token(MemoryStore::new(), 0).await;
    sixty_four_refreshes_with_one_token(MemoryStore::with_shards(1), 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_races_past_grace() {
    for _ in 0..10 {
        racing_past_grace(MemoryStore::new()).await;
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_rotates_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = keybound_server::store::SqliteStore::open(dir.path().join("s.db"))
        .await
        .unwrap();
    sixty_four_refreshes_with_one_token(store, 100).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_rotates_once_across_connections() {
    // Two stores (two connections) on one file: BEGIN IMMEDIATE still serialises.
    use keybound_server::store::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let a = SqliteStore::open(&path).await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    let ha = harness(a);
    let hb = harness(b);
    let t0 = ha
        .service
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let service = if i % 2 == 0 { &ha } else { &hb }.service.clone();
        let barrier = Arc::clone(&barrier);
        let token = t0.refresh_token.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            service
                .refresh(&token, &jkt(1), &RequestSignals::new())
                .await
        }));
    }
    let mut issued = std::collections::HashSet::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(t) => {
                issued.insert(t.refresh_token);
            }
            Err(e) => assert_eq!(e.oauth_error(), "invalid_grant", "{e}"),
        }
    }
    assert_eq!(issued.len(), 1);
    let record = ha
        .service
        .store()
        .load(SessionId::parse(&t0.session_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.generation, 1);
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_races_past_grace() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let store = keybound_server::store::SqliteStore::open(dir.path().join("s.db"))
            .await
            .unwrap();
        racing_past_grace(store).await;
    }
}
