//! "Sign out everywhere" against logins racing it (issue: a login that passed the old
//! password and stored its session after the revocation survived it).
//!
//! 64 logins race one `revoke_user` (and, separately, one sensitive-action rotation
//! that revokes the other sessions) on every store, with two services on the store
//! (two nodes on one Redis, two processes on one SQLite file). Afterwards:
//! * every login that read the user's fence before the revocation was called, and
//!   every session opened before it was called, is refused by the session check on
//!   every node and by refresh (`session_revoked`), or was never opened
//!   (`login_superseded`);
//! * every login started after the revocation returned works;
//! * a login in between is one or the other, the same on every node, and fails with no
//!   other error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{T0_MS, builder, jkt};
use keybound_server::lifecycle::{Actor, OpenRequest, Reason, RequestSignals, SessionService};
use keybound_server::proto::TokenResponse;
use keybound_server::store::{MemoryStore, SessionStore};
use keybound_server::{LifecycleError, ManualClock, SessionCheck, SessionDenied};
use tokio::sync::Barrier;

const LOGINS: usize = 64;
const LATE_LOGINS: usize = 8;
const USER: &str = "alice";

/// One login of the race.
struct Login {
    key: u8,
    /// Whether it read its fence itself before opening (the other half lets
    /// `open_session` read it).
    explicit_fence: bool,
    started: Instant,
    fence_read: Instant,
    returned: Instant,
    result: Result<TokenResponse, LifecycleError>,
}

/// What ends the user's sessions in the race.
#[derive(Clone, Copy)]
enum Revocation {
    /// `revoke_user` by an administrator.
    RevokeUser,
    /// A sensitive action on a session opened beforehand, revoking the others.
    SensitiveAction,
}

async fn login(node: SessionService, key: u8, explicit_fence: bool, check: Duration) -> Login {
    let started = Instant::now();
    let mut request = OpenRequest::new();
    if explicit_fence {
        request = request.fence(node.login_fence(USER).await.unwrap());
    }
    let fence_read = Instant::now();
    // The application checks the password here.
    tokio::time::sleep(check).await;
    let result = node.open_session(USER, &jkt(key), request).await;
    Login {
        key,
        explicit_fence,
        started,
        fence_read,
        returned: Instant::now(),
        result,
    }
}

/// Whether the session works on every node (`true`) or is refused as revoked on every
/// node (`false`); panics on anything else.
async fn usable(nodes: &[SessionService], login: &Login) -> bool {
    let tokens = login.result.as_ref().unwrap();
    let key = jkt(login.key);
    let mut checks = Vec::new();
    for node in nodes {
        checks.push(node.check(&tokens.session_id, USER, &key).await);
    }
    let refresh = nodes[0]
        .refresh(&tokens.refresh_token, &key, &RequestSignals::new())
        .await;
    if checks.iter().all(Result::is_ok) {
        assert!(
            refresh.is_ok(),
            "key {}: checks pass, refresh fails",
            login.key
        );
        return true;
    }
    assert!(
        checks.iter().all(|c| *c == Err(SessionDenied::Revoked)),
        "key {}: the nodes disagree: {checks:?}",
        login.key
    );
    assert_eq!(
        refresh.unwrap_err().code(),
        "session_revoked",
        "key {}",
        login.key
    );
    false
}

/// Runs the race on `nodes` (services sharing one store) and checks the guarantee.
async fn race(nodes: Vec<SessionService>, revocation: Revocation) {
    // The session the sensitive action runs on; it must survive.
    let keeper = nodes[0]
        .open_session(USER, &jkt(200), OpenRequest::new())
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(LOGINS + 1));
    let mut tasks = Vec::new();
    for i in 0..LOGINS {
        let node = nodes[i % nodes.len()].clone();
        let barrier = Arc::clone(&barrier);
        // Starts spread over 4 ms, password checks of 0 to 3.75 ms: the revocation
        // at 2 ms lands among fence reads, checks and stores.
        let start = Duration::from_micros(250 * (i % 16) as u64);
        let check = Duration::from_micros(250 * ((i * 7) % 16) as u64);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            tokio::time::sleep(start).await;
            login(node, i as u8, i % 2 == 0, check).await
        }));
    }
    barrier.wait().await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let called = Instant::now();
    match revocation {
        Revocation::RevokeUser => {
            nodes[0]
                .revoke_user(USER, None, Reason::ADMIN_REVOKED, Actor::System)
                .await
                .unwrap();
        }
        Revocation::SensitiveAction => {
            nodes[0]
                .rotate_on_sensitive_action(&keeper.session_id, &jkt(200), true)
                .await
                .unwrap();
        }
    }
    let revoked = Instant::now();
    let mut logins = Vec::new();
    for task in tasks {
        logins.push(task.await.unwrap());
    }
    for i in 0..LATE_LOGINS {
        let node = nodes[i % nodes.len()].clone();
        logins.push(login(node, (100 + i) as u8, i % 2 == 0, Duration::ZERO).await);
    }

    let (mut refused, mut superseded, mut working) = (0, 0, 0);
    for login in &logins {
        let must_be_refused =
            (login.explicit_fence && login.fence_read < called) || login.returned < called;
        let must_work = login.started > revoked;
        match &login.result {
            Err(e) => {
                assert_eq!(e.code(), "login_superseded", "key {}", login.key);
                assert!(
                    !must_work,
                    "key {}: a login after the revocation failed",
                    login.key
                );
                superseded += 1;
            }
            Ok(_) if usable(&nodes, login).await => {
                assert!(
                    !must_be_refused,
                    "key {}: a login from before the revocation survived it",
                    login.key
                );
                working += 1;
            }
            Ok(_) => {
                assert!(
                    !must_work,
                    "key {}: a login after the revocation is refused",
                    login.key
                );
                refused += 1;
            }
        }
    }
    assert!(refused + superseded > 0, "the race revoked nothing");
    assert!(working >= LATE_LOGINS);
    // The session of the sensitive action itself stays; after `revoke_user` it is gone.
    let keeper_ok = nodes[1 % nodes.len()]
        .check(&keeper.session_id, USER, &jkt(200))
        .await;
    match revocation {
        Revocation::RevokeUser => assert_eq!(keeper_ok, Err(SessionDenied::Revoked)),
        Revocation::SensitiveAction => assert_eq!(keeper_ok, Ok(())),
    }
}

fn service(store: Arc<dyn SessionStore>) -> SessionService {
    let clock = ManualClock::new(T0_MS);
    let (builder, _sink) = builder(store, &clock);
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_logins_racing_revoke_user_never_survive_it() {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    race(
        vec![service(store.clone()), service(store)],
        Revocation::RevokeUser,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_logins_racing_a_sensitive_action_never_survive_it() {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
    race(
        vec![service(store.clone()), service(store)],
        Revocation::SensitiveAction,
    )
    .await;
}

#[tokio::test]
async fn a_fence_read_for_another_user_is_refused() {
    let node = service(Arc::new(MemoryStore::new()));
    let fence = node.login_fence("bob").await.unwrap();
    assert_eq!(fence.user_id(), "bob");
    let err = node
        .open_session(USER, &jkt(1), OpenRequest::new().fence(fence))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    // A fence read before a revocation of the user refuses the login afterwards
    // (`login_superseded`, 403 `access_denied`) and stores nothing.
    let fence = node.login_fence(USER).await.unwrap();
    node.revoke_others(USER, &"A".repeat(22)).await.unwrap();
    let err = node
        .open_session(USER, &jkt(1), OpenRequest::new().fence(fence))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.oauth_error(), err.status().as_u16()),
        ("login_superseded", "access_denied", 403)
    );
    assert!(node.list_sessions(USER, None).await.unwrap().is_empty());
    // A fresh fence works.
    let fence = node.login_fence(USER).await.unwrap();
    node.open_session(USER, &jkt(1), OpenRequest::new().fence(fence))
        .await
        .unwrap();
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use keybound_server::store::SqliteStore;

    /// Two stores on one file: two processes of one service.
    async fn nodes(dir: &tempfile::TempDir) -> Vec<SessionService> {
        let path = dir.path().join("sessions.db");
        let a = SqliteStore::open(&path).await.unwrap();
        let b = SqliteStore::open(&path).await.unwrap();
        vec![service(Arc::new(a)), service(Arc::new(b))]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_logins_racing_revoke_user_never_survive_it() {
        let dir = tempfile::tempdir().unwrap();
        race(nodes(&dir).await, Revocation::RevokeUser).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_logins_racing_a_sensitive_action_never_survive_it() {
        let dir = tempfile::tempdir().unwrap();
        race(nodes(&dir).await, Revocation::SensitiveAction).await;
    }
}

#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use keybound_server::store::redis::{RedisOptions, RedisStore};

    /// Two nodes on one Redis under one prefix.
    async fn nodes(server: &super::redis_server::RedisServer) -> Vec<SessionService> {
        let prefix = super::redis_server::unique_prefix();
        let mut nodes = Vec::new();
        for _ in 0..2 {
            let options = RedisOptions::default().prefix(prefix.clone());
            let store = RedisStore::connect_with(&server.url(), options)
                .await
                .unwrap();
            nodes.push(service(Arc::new(store)));
        }
        nodes
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_logins_racing_revoke_user_never_survive_it() {
        let server = super::redis_server::RedisServer::start();
        race(nodes(&server).await, Revocation::RevokeUser).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_logins_racing_a_sensitive_action_never_survive_it() {
        let server = super::redis_server::RedisServer::start();
        race(nodes(&server).await, Revocation::SensitiveAction).await;
    }
}
