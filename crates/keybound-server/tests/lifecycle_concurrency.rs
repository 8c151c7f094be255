//! Concurrent refreshes with one token: exactly one rotation, on every store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{harness, jkt};
use keybound_server::SessionService;
use keybound_server::lifecycle::{AuditEventKind, OpenRequest, RequestSignals, SessionId};
use keybound_server::proto::TokenResponse;
use keybound_server::store::{MemoryStore, SessionRecord, SessionStore};
use tokio::sync::Barrier;

const TASKS: usize = 64;

/// Runs the refreshes `calls` (a service and the refresh token it is given) at once,
/// released together by a barrier. Every refusal must be a clean `invalid_grant`;
/// returns the tokens the successful ones issued.
async fn race_refreshes(
    calls: impl IntoIterator<Item = (SessionService, String)>,
) -> Vec<TokenResponse> {
    let calls: Vec<_> = calls.into_iter().collect();
    let barrier = Arc::new(Barrier::new(calls.len()));
    let mut tasks = Vec::new();
    for (service, token) in calls {
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            service
                .refresh(&token, &jkt(1), &RequestSignals::new())
                .await
        }));
    }
    let mut issued = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(tokens) => issued.push(tokens),
            Err(e) => assert_eq!(e.oauth_error(), "invalid_grant", "{e}"),
        }
    }
    issued
}

/// The stored record of the session `session_id`.
async fn stored(service: &SessionService, session_id: &str) -> SessionRecord {
    service
        .store()
        .load(SessionId::parse(session_id).unwrap())
        .await
        .unwrap()
        .unwrap()
}

/// The distinct refresh tokens among `issued`.
fn distinct_refresh_tokens(issued: &[TokenResponse]) -> HashSet<&str> {
    issued.iter().map(|t| t.refresh_token.as_str()).collect()
}

async fn sixty_four_refreshes_with_one_token(store: impl SessionStore, advance_into_grace: u64) {
    let mut h = harness(store);
    let t0 = h
        .service
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap();
    h.advance(advance_into_grace);
    h.drain();
    let successors =
        race_refreshes((0..TASKS).map(|_| (h.service.clone(), t0.refresh_token.clone()))).await;
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
    let record = stored(&h.service, &t0.session_id).await;
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
    // Half present the stale token, half the current one.
    let issued = race_refreshes((0..TASKS).map(|i| {
        let token = if i % 2 == 0 { &t0 } else { &t1 };
        (h.service.clone(), token.refresh_token.clone())
    }))
    .await;
    let issued = distinct_refresh_tokens(&issued);
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
    let issued = race_refreshes((0..TASKS).map(|i| {
        let h = if i % 2 == 0 { &ha } else { &hb };
        (h.service.clone(), t0.refresh_token.clone())
    }))
    .await;
    assert_eq!(distinct_refresh_tokens(&issued).len(), 1);
    let record = stored(&ha.service, &t0.session_id).await;
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
