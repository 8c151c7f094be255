//! The SQLite store: restarts, damaged or foreign files, and what purge leaves behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg(feature = "sqlite")]

mod common;

use common::{T0_MS, jkt};
use keybound_server::lifecycle::{
    Actor, OpenRequest, Reason, RefreshSecret, RequestSignals, SessionService, SessionState,
};
use keybound_server::store::{SessionStore, SqliteStore};
use keybound_server::{ManualClock, SessionCheck, SessionDenied};

async fn service(path: &std::path::Path, clock: &ManualClock) -> SessionService {
    let store = SqliteStore::open(path).await.unwrap();
    SessionService::builder(store, common::keys())
        .clock(clock.clone())
        .refresh_secret(RefreshSecret::from_bytes([5; 32]))
        .build()
        .unwrap()
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let clock = ManualClock::new(T0_MS);
    let (live, revoked, closed, rotated) = {
        let s = service(&path, &clock).await;
        let live = s
            .open_session("alice", &jkt(1), OpenRequest::new().device_label("Laptop"))
            .await
            .unwrap();
        let live = s
            .refresh(&live.refresh_token, &jkt(1), &RequestSignals::new())
            .await
            .unwrap();
        let revoked = s
            .open_session("alice", &jkt(2), OpenRequest::new())
            .await
            .unwrap();
        s.revoke(&revoked.session_id, Reason::ADMIN_REVOKED, Actor::System)
            .await
            .unwrap();
        let closed = s
            .open_session("bob", &jkt(3), OpenRequest::new())
            .await
            .unwrap();
        s.close(&closed.session_id).await.unwrap();
        let old = s
            .open_session("carol", &jkt(4), OpenRequest::new())
            .await
            .unwrap();
        let rotated = s
            .refresh(&old.refresh_token, &jkt(4), &RequestSignals::new())
            .await
            .unwrap();
        (live, revoked, closed, (old, rotated))
        // The service and its store are dropped here.
    };
    clock.advance(std::time::Duration::from_secs(10));
    let s = service(&path, &clock).await;
    // Active sessions still refresh and pass the check.
    s.check(&live.session_id, "alice", &jkt(1)).await.unwrap();
    let next = s
        .refresh(&live.refresh_token, &jkt(1), &RequestSignals::new())
        .await
        .unwrap();
    assert_eq!(next.session_id, live.session_id);
    // The grace replay still works after a restart (the successor is derived).
    let (old, rotated) = rotated;
    let replay = s
        .refresh(&old.refresh_token, &jkt(4), &RequestSignals::new())
        .await
        .unwrap();
    assert_eq!(replay.refresh_token, rotated.refresh_token);
    // Ended sessions stay ended.
    assert_eq!(
        s.check(&revoked.session_id, "alice", &jkt(2)).await,
        Err(SessionDenied::Revoked)
    );
    let err = s
        .refresh(&revoked.refresh_token, &jkt(2), &RequestSignals::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "session_revoked");
    assert_eq!(
        s.check(&closed.session_id, "bob", &jkt(3)).await,
        Err(SessionDenied::Closed)
    );
    let list = s
        .list_sessions("alice", Some(&live.session_id))
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    let mine = list.iter().find(|i| i.current).unwrap();
    assert_eq!(mine.device_label.as_deref(), Some("Laptop"));
    assert_eq!(mine.state, SessionState::Active);
}

#[tokio::test]
async fn a_restart_with_another_secret_invalidates_but_does_not_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let clock = ManualClock::new(T0_MS);
    let t = service(&path, &clock)
        .await
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap();
    let store = SqliteStore::open(&path).await.unwrap();
    let other = SessionService::builder(store, common::keys())
        .clock(clock.clone())
        .build()
        .unwrap();
    let err = other
        .refresh(&t.refresh_token, &jkt(1), &RequestSignals::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "refresh_token_invalid");
    other.check(&t.session_id, "alice", &jkt(1)).await.unwrap();
}

#[tokio::test]
async fn a_corrupt_file_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    let mut bytes = vec![0u8; 8192];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i * 131 % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert_eq!(err.code(), "store_corrupt", "{err}");
    assert!(err.to_string().contains("garbage.db"), "{err}");
    // A truncated real database.
    let good = dir.path().join("good.db");
    {
        let store = SqliteStore::open(&good).await.unwrap();
        let s = SessionService::builder(store, common::keys())
            .build()
            .unwrap();
        for i in 0..200 {
            s.open_session(&format!("user{i}"), &jkt(1), OpenRequest::new())
                .await
                .unwrap();
        }
    }
    let mut data = std::fs::read(&good).unwrap();
    // Checkpointed data lives in the main file once the last connection closed.
    data.truncate(100);
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, &data).unwrap();
    let err = SqliteStore::open(&damaged).await.unwrap_err();
    assert!(
        matches!(err.code(), "store_corrupt" | "store_incompatible"),
        "{err}"
    );
    // Blocking open reports the same.
    assert_eq!(
        SqliteStore::open_blocking(&path).unwrap_err().code(),
        "store_corrupt"
    );
}

#[tokio::test]
async fn foreign_and_newer_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("foreign.db");
    {
        let conn = rusqlite::Connection::open(&foreign).unwrap();
        conn.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY);")
            .unwrap();
    }
    let err = SqliteStore::open(&foreign).await.unwrap_err();
    assert_eq!(err.code(), "store_incompatible", "{err}");

    let other_app = dir.path().join("other.db");
    {
        let conn = rusqlite::Connection::open(&other_app).unwrap();
        conn.execute_batch("PRAGMA application_id = 1234;").unwrap();
    }
    assert_eq!(
        SqliteStore::open(&other_app).await.unwrap_err().code(),
        "store_incompatible"
    );

    let newer = dir.path().join("newer.db");
    drop(SqliteStore::open(&newer).await.unwrap());
    {
        let conn = rusqlite::Connection::open(&newer).unwrap();
        conn.execute_batch("PRAGMA user_version = 99;").unwrap();
    }
    let err = SqliteStore::open(&newer).await.unwrap_err();
    assert_eq!(err.code(), "store_incompatible");
    assert!(err.to_string().contains("99"), "{err}");

    let missing_dir = dir.path().join("no/such/dir/s.db");
    assert_eq!(
        SqliteStore::open(&missing_dir).await.unwrap_err().code(),
        "store_unavailable"
    );
}

#[tokio::test]
async fn the_schema_is_created_once_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(SqliteStore::open(&path).await.unwrap());
    drop(SqliteStore::open(&path).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
}

#[tokio::test]
async fn purged_sessions_leave_no_row_and_no_token_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let clock = ManualClock::new(T0_MS);
    let s = service(&path, &clock).await;
    let t = s
        .open_session("alice", &jkt(1), OpenRequest::new().device_label("Laptop"))
        .await
        .unwrap();
    let t = s
        .refresh(&t.refresh_token, &jkt(1), &RequestSignals::new())
        .await
        .unwrap();
    s.close(&t.session_id).await.unwrap();
    let keep = s
        .open_session("bob", &jkt(2), OpenRequest::new())
        .await
        .unwrap();
    clock.advance(std::time::Duration::from_secs(7 * 24 * 3600 + 1));
    // The extend finds bob's session idle and makes the expiry durable itself.
    assert_eq!(
        s.extend(&keep.session_id).await.unwrap_err().code(),
        "session_expired"
    );
    let report = s.sweep_once().await.unwrap();
    assert_eq!((report.purged, report.expired), (1, 0));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
    let labels: i64 = conn
        .query_row(
            "SELECT count(*) FROM sessions WHERE device_label IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(labels, 0);
    assert_eq!(s.store().count_active().await.unwrap(), 0);
}
