//! Several processes on one SQLite file share their replay records through the file: a
//! proof one of them accepted is refused by the others with `replayed_jti`.
#![cfg(all(feature = "sqlite", feature = "axum"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/nodes.rs"]
mod nodes;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{Request, StatusCode};
use keybound_server::axum::{ApiError, Keybound, ProofOfPossession, Running, Session, routes};
use keybound_server::lifecycle::OpenRequest;
use keybound_server::store::SqliteStore;
use keybound_server::{ManualClock, ReplayError, ReplayStore, replay_key};
use nodes::{Device, code, send, settings};
use serde_json::{Value, json};

const T0_MS: i64 = 1_700_000_000_000;

async fn login(
    State(kb): State<Keybound>,
    proof: ProofOfPossession,
    Json(body): Json<Value>,
) -> Result<keybound_server::axum::TokenReply, ApiError> {
    let user = body["username"].as_str().unwrap_or("nobody").to_owned();
    kb.open_session(&proof, &user, OpenRequest::new()).await
}

async fn me(session: Session) -> Json<Value> {
    Json(json!({"user": session.user_id}))
}

/// One process serving the file: its service and router.
struct Process {
    _running: Running,
    app: Router,
}

async fn process(db: &Path, key_file: &Path) -> Process {
    let store = format!("sqlite:{}", db.display());
    let running = Keybound::setup(settings(&store, "unused:", key_file, &[]))
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/api/login", post(login))
        .route("/api/me", get(me))
        .merge(routes("/session"))
        .with_state(running.keybound.clone());
    Process {
        _running: running,
        app,
    }
}

fn login_request(proof: &str) -> Request<Body> {
    Request::post("/api/login")
        .header("dpop", proof)
        .header("content-type", "application/json")
        .body(Body::from(json!({"username": "alice"}).to_string()))
        .unwrap()
}

fn me_request(proof: &str, access: &str) -> Request<Body> {
    Request::get("/api/me")
        .header("authorization", format!("DPoP {access}"))
        .header("dpop", proof)
        .body(Body::empty())
        .unwrap()
}

fn refresh_request(proof: &str, refresh: &str) -> Request<Body> {
    Request::post("/session/refresh")
        .header("dpop", proof)
        .header("content-type", "application/json")
        .body(Body::from(json!({"refresh_token": refresh}).to_string()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_accepted_by_one_process_is_a_replay_for_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let key_file = dir.path().join("keys.json");
    let a = process(&db, &key_file).await;
    let b = process(&db, &key_file).await;
    let device = Device::new(1);

    // A login proof, replayed against the other process.
    let proof = device.proof("POST", "/api/login", None);
    let (status, tokens) = send(&a.app, login_request(&proof)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, body) = send(&b.app, login_request(&proof)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "replayed_jti")
    );
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    // A request proof, captured and replayed against the other process.
    let proof = device.proof("GET", "/api/me", Some(access));
    assert_eq!(
        send(&b.app, me_request(&proof, access)).await.0,
        StatusCode::OK
    );
    let (status, body) = send(&a.app, me_request(&proof, access)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "replayed_jti")
    );

    // A refresh proof likewise.
    let proof = device.proof("POST", "/session/refresh", None);
    let (status, body) = send(&a.app, refresh_request(&proof, refresh)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(&b.app, refresh_request(&proof, refresh)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "replayed_jti")
    );

    // Fresh proofs keep working on both.
    for app in [&a.app, &b.app] {
        let proof = device.proof("GET", "/api/me", Some(access));
        assert_eq!(
            send(app, me_request(&proof, access)).await.0,
            StatusCode::OK
        );
    }
}

fn key(i: u32) -> [u8; 32] {
    replay_key("jkt", &format!("jti-{i:016}"))
}

async fn replay_store(db: &Path, clock: &ManualClock, capacity: usize) -> Arc<dyn ReplayStore> {
    let store = SqliteStore::open(db).await.unwrap();
    Arc::new(
        store
            .replay_store(Arc::new(clock.clone()), capacity)
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_replay_table_is_bounded_and_swept() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let clock = ManualClock::new(T0_MS);
    let a = replay_store(&db, &clock, 3).await;
    let b = replay_store(&db, &clock, 3).await;
    assert!(a.insert_once(&key(1), T0_MS + 1_000).await.unwrap());
    assert!(!b.insert_once(&key(1), T0_MS + 1_000).await.unwrap());
    assert!(b.insert_once(&key(2), T0_MS + 60_000).await.unwrap());
    assert!(a.insert_once(&key(3), T0_MS + 60_000).await.unwrap());
    // Full: refused (fail closed), nothing live forgotten.
    assert_eq!(
        b.insert_once(&key(4), T0_MS + 60_000).await,
        Err(ReplayError::Full { capacity: 3 })
    );
    assert!(!a.insert_once(&key(2), T0_MS + 60_000).await.unwrap());
    // Past the first entry's expiry, a full table makes room by dropping it.
    clock.advance(Duration::from_secs(1));
    assert!(b.insert_once(&key(4), T0_MS + 60_000).await.unwrap());
    // The expired entry is gone: its key is fresh again, but three live ones fill it.
    assert_eq!(
        a.insert_once(&key(1), T0_MS + 60_000).await,
        Err(ReplayError::Full { capacity: 3 })
    );
    // The sweep forgets what expired, on the file, for every process.
    clock.advance(Duration::from_secs(60));
    assert_eq!(a.sweep().await, Ok(3));
    assert_eq!(b.sweep().await, Ok(0));
    assert!(b.insert_once(&key(2), T0_MS + 120_000).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_proof_recorded_by_many_processes_at_once_is_fresh_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let clock = ManualClock::new(T0_MS);
    let stores = [
        replay_store(&db, &clock, 1_000).await,
        replay_store(&db, &clock, 1_000).await,
        replay_store(&db, &clock, 1_000).await,
    ];
    for round in 0..20 {
        let mut tasks = Vec::new();
        for store in &stores {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                store
                    .insert_once(&key(round), T0_MS + 60_000)
                    .await
                    .unwrap()
            }));
        }
        let mut fresh = 0;
        for task in tasks {
            fresh += usize::from(task.await.unwrap());
        }
        assert_eq!(fresh, 1, "round {round}");
    }
}

/// A file written by the previous layout (version 2: sessions only) gains the fence
/// and replay tables on open and keeps its sessions.
#[tokio::test]
async fn a_version_2_file_is_migrated() {
    use keybound_server::store::SessionStore;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE sessions (
                sid BLOB NOT NULL PRIMARY KEY, user_id TEXT NOT NULL, jkt BLOB NOT NULL,
                device_label TEXT, user_agent_hash BLOB, created_at INTEGER NOT NULL,
                last_seen_at INTEGER NOT NULL, idle_expires_at INTEGER NOT NULL,
                absolute_expires_at INTEGER NOT NULL, generation INTEGER NOT NULL,
                current_hash BLOB NOT NULL, previous_hash BLOB, grace_until INTEGER,
                state INTEGER NOT NULL, reason TEXT, ended_at INTEGER, binding TEXT
             ) WITHOUT ROWID;
             CREATE INDEX sessions_by_user ON sessions (user_id);
             INSERT INTO sessions VALUES (zeroblob(16), 'alice', zeroblob(32), NULL, NULL,
                1700000000, 1700000000, 1700001800, 1700043200, 0, zeroblob(32), NULL, NULL,
                0, NULL, NULL, NULL);
             PRAGMA application_id = 1801614129;
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&db).await.unwrap();
    assert_eq!(store.list_user("alice").await.unwrap().len(), 1);
    assert_eq!(store.user_fence("alice").await.unwrap(), 0);
    let clock = ManualClock::new(T0_MS);
    let replay = store.replay_store(Arc::new(clock), 10).unwrap();
    assert!(replay.insert_once(&key(1), T0_MS + 1_000).await.unwrap());
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
}
