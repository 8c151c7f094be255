//! The per-user session limit: a login beyond it revokes the user's least recently used
//! active session (reason `session_limit`, audited), atomically, on every store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{T0_MS, builder, jkt};
use keybound_server::lifecycle::{
    AuditEvent, AuditEventKind, OpenRequest, Policy, RequestSignals, SessionService,
};
use keybound_server::proto::TokenResponse;
use keybound_server::store::{MemoryStore, SessionStore};
use keybound_server::{ManualClock, SessionCheck, SessionDenied};
use tokio::sync::broadcast;

struct Limited {
    service: SessionService,
    clock: ManualClock,
    events: broadcast::Receiver<AuditEvent>,
}

fn limited(store: Arc<dyn SessionStore>, max: usize) -> Limited {
    let clock = ManualClock::new(T0_MS);
    let (builder, sink) = builder(store, &clock);
    let service = builder.max_sessions_per_user(max).build().unwrap();
    Limited {
        service,
        clock,
        events: sink.subscribe(),
    }
}

impl Limited {
    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    async fn login(&self, user: &str, key: u8) -> TokenResponse {
        self.service
            .open_session(user, &jkt(key), OpenRequest::new())
            .await
            .unwrap()
    }

    async fn check(&self, t: &TokenResponse, user: &str, key: u8) -> Result<(), SessionDenied> {
        self.service.check(&t.session_id, user, &jkt(key)).await
    }

    fn drain(&mut self) -> Vec<AuditEvent> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            out.push(event);
        }
        out
    }
}

/// Three sessions at the limit; the first is used again, so the second is the least
/// recently used: the fourth login revokes exactly that one.
async fn the_least_recently_used_session_makes_room(store: Arc<dyn SessionStore>) {
    let mut l = limited(store, 3);
    let first = l.login("alice", 1).await;
    l.advance(1);
    let second = l.login("alice", 2).await;
    l.advance(1);
    let third = l.login("alice", 3).await;
    let bob = l.login("bob", 9).await;
    l.advance(1);
    let first = l
        .service
        .refresh(&first.refresh_token, &jkt(1), &RequestSignals::new())
        .await
        .unwrap();
    l.drain();
    l.advance(1);
    let fourth = l.login("alice", 4).await;

    let events = l.drain();
    let revoked: Vec<_> = events
        .iter()
        .filter(|e| e.event == AuditEventKind::Revoked)
        .collect();
    assert_eq!(revoked.len(), 1, "{events:?}");
    let e = revoked[0];
    assert_eq!(
        (
            e.session_id.as_str(),
            e.user_id.as_str(),
            e.reason.as_deref(),
            e.actor.as_str()
        ),
        (
            second.session_id.as_str(),
            "alice",
            Some("session_limit"),
            "system"
        )
    );
    assert!(
        events
            .iter()
            .any(|e| e.event == AuditEventKind::Created && e.session_id == fourth.session_id)
    );

    assert_eq!(
        l.check(&second, "alice", 2).await,
        Err(SessionDenied::Revoked)
    );
    let refused = l
        .service
        .refresh(&second.refresh_token, &jkt(2), &RequestSignals::new())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "session_revoked");
    let info = l.service.session(&second.session_id).await.unwrap();
    assert_eq!(info.reason.unwrap().as_str(), "session_limit");
    for (t, key) in [(&first, 1), (&third, 3), (&fourth, 4)] {
        assert_eq!(l.check(t, "alice", key).await, Ok(()));
    }
    // Other users are not touched; the store holds three active sessions of alice's.
    assert_eq!(l.check(&bob, "bob", 9).await, Ok(()));
    let active = l
        .service
        .list_sessions("alice", None)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.state.as_str() == "active")
        .count();
    assert_eq!(active, 3);
    assert_eq!(l.service.store().count_active().await.unwrap(), 4);
}

/// Sessions past their deadline do not count towards the limit.
async fn expired_sessions_do_not_count(store: Arc<dyn SessionStore>) {
    let mut l = limited(store, 2);
    l.login("alice", 1).await;
    l.login("alice", 2).await;
    let idle = Policy::default().idle_timeout().as_secs();
    l.advance(idle);
    l.drain();
    let a = l.login("alice", 3).await;
    let b = l.login("alice", 4).await;
    assert!(
        l.drain().iter().all(|e| e.event == AuditEventKind::Created),
        "nothing revoked"
    );
    assert_eq!(l.check(&a, "alice", 3).await, Ok(()));
    assert_eq!(l.check(&b, "alice", 4).await, Ok(()));
}

/// Logins at once never leave more than the limit active: the count and the insert
/// are one atomic step.
async fn concurrent_logins_stay_within_the_limit(store: Arc<dyn SessionStore>) {
    let l = limited(store, 3);
    let mut tasks = Vec::new();
    for key in 0..24u8 {
        let service = l.service.clone();
        tasks.push(tokio::spawn(async move {
            service
                .open_session("alice", &jkt(key), OpenRequest::new())
                .await
                .unwrap()
        }));
    }
    let mut opened = Vec::new();
    for (key, task) in tasks.into_iter().enumerate() {
        opened.push((task.await.unwrap(), key as u8));
    }
    let mut working = 0;
    for (t, key) in &opened {
        match l.check(t, "alice", *key).await {
            Ok(()) => working += 1,
            Err(denied) => assert_eq!(denied, SessionDenied::Revoked),
        }
    }
    assert_eq!(working, 3);
    let sessions = l.service.list_sessions("alice", None).await.unwrap();
    assert_eq!(sessions.len(), 24);
    assert_eq!(
        sessions
            .iter()
            .filter(|s| s
                .reason
                .as_ref()
                .is_some_and(|r| r.as_str() == "session_limit"))
            .count(),
        21
    );
}

#[tokio::test]
async fn default_limit_is_100() {
    let clock = ManualClock::new(T0_MS);
    let (builder, _sink) = builder(MemoryStore::new(), &clock);
    let service = builder.build().unwrap();
    let mut opened = Vec::new();
    for key in 0..101u8 {
        clock.advance(Duration::from_secs(1));
        opened.push(
            service
                .open_session("alice", &jkt(key), OpenRequest::new())
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        service.check(&opened[0].session_id, "alice", &jkt(0)).await,
        Err(SessionDenied::Revoked)
    );
    assert_eq!(
        service.check(&opened[1].session_id, "alice", &jkt(1)).await,
        Ok(())
    );
}

macro_rules! on_each_store {
    ($($case:ident),*) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(Arc::new(MemoryStore::new())).await;
                }
            )*
        }

        #[cfg(feature = "sqlite")]
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = keybound_server::store::SqliteStore::open(dir.path().join("s.db"))
                        .await
                        .unwrap();
                    super::$case(Arc::new(store)).await;
                }
            )*
        }

        #[cfg(feature = "redis")]
        mod redis {
            use super::*;
            use keybound_server::store::redis::{RedisOptions, RedisStore};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let server = super::redis_server::shared();
                    let options = RedisOptions::default().prefix(super::redis_server::unique_prefix());
                    let store = RedisStore::connect_with(&server.url(), options).await.unwrap();
                    super::$case(Arc::new(store)).await;
                }
            )*
        }
    };
}

#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

on_each_store!(
    the_least_recently_used_session_makes_room,
    expired_sessions_do_not_count,
    concurrent_logins_stay_within_the_limit
);
