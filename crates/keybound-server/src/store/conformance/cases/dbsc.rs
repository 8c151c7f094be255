//! DBSC binding: a pending session is bound once, atomically, and keeps its key.

use super::*;

async fn pending(store: &dyn SessionStore, user_id: &str) -> SessionRecord {
    let mut r = record(user_id);
    r.jkt = PENDING_JKT;
    r.binding = SessionBinding::DbscPending;
    store.create(r.clone()).await.unwrap();
    r
}

const DBSC_KEY: &str = r#"{"crv":"P-256","kty":"EC","x":"a","y":"b"}"#;

fn bind_req(r: &SessionRecord, jkt: Jkt, now: i64) -> BindRequest {
    BindRequest {
        id: r.id,
        jkt,
        key: DBSC_KEY.into(),
        now,
        idle_expires_at: now + IDLE,
    }
}

/// A session waiting for its DBSC registration is stored and read back as such;
/// a DPoP session stays DPoP through every update.
pub fn dbsc_pending_session_round_trips(store: Arc<dyn SessionStore>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let r = pending(&*store, &user("alice")).await;
        assert_eq!(load(&*store, r.id).await, r);
        let d = created(&*store, &user("bob")).await;
        let touched = store
            .touch(TouchRequest {
                id: d.id,
                now: T0 + 5,
                idle_expires_at: T0 + 5 + IDLE,
            })
            .await
            .unwrap();
        let UpdateOutcome::Updated(after) = touched else {
            panic!("{touched:?}")
        };
        assert_eq!(after.binding, SessionBinding::Dpop);
        assert_eq!(load(&*store, d.id).await.binding, SessionBinding::Dpop);
    })
}

/// `bind_dbsc` binds a pending session to the key (thumbprint and JWK), extends
/// its idle deadline, and refuses a second registration; the binding survives
/// later updates and the end of the session.
pub fn bind_dbsc_binds_a_pending_session_once(
    store: Arc<dyn SessionStore>,
) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let r = pending(&*store, &user("alice")).await;
        let outcome = store
            .bind_dbsc(bind_req(&r, key(9), T0 + 10))
            .await
            .unwrap();
        let UpdateOutcome::Updated(after) = outcome else {
            panic!("{outcome:?}")
        };
        let bound = SessionBinding::Dbsc {
            key: DBSC_KEY.into(),
        };
        assert_eq!(after.binding, bound);
        assert_eq!(after.jkt, key(9));
        assert_eq!(after.last_seen_at, T0 + 10);
        assert_eq!(after.idle_expires_at, T0 + 10 + IDLE);
        assert_eq!(load(&*store, r.id).await, after);
        let again = store
            .bind_dbsc(bind_req(&r, key(8), T0 + 11))
            .await
            .unwrap();
        assert_eq!(again, UpdateOutcome::KeyMismatch);
        let replaced = store
            .replace_tokens(ReplaceTokensRequest {
                id: r.id,
                jkt: key(9),
                next: hash(102),
                now: T0 + 12,
                idle_expires_at: T0 + 12 + IDLE,
            })
            .await
            .unwrap();
        let UpdateOutcome::Updated(replaced) = replaced else {
            panic!("{replaced:?}")
        };
        assert_eq!(
            (replaced.binding.clone(), replaced.generation),
            (bound.clone(), 1)
        );
        let ended = store
            .end(EndRequest {
                id: r.id,
                owner: None,
                state: EndState::Revoked,
                reason: Reason::ADMIN_REVOKED,
                now: T0 + 13,
            })
            .await
            .unwrap();
        let EndOutcome::Ended(ended) = ended else {
            panic!("{ended:?}")
        };
        assert_eq!((ended.binding, ended.jkt), (bound, key(9)));
    })
}

/// `bind_dbsc` refuses a DPoP session, an unknown one, an ended one, and expires
/// a pending session past its deadline instead of binding it.
pub fn bind_dbsc_refusals(store: Arc<dyn SessionStore>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let dpop = created(&*store, &user("alice")).await;
        assert_eq!(
            store
                .bind_dbsc(bind_req(&dpop, key(9), T0 + 1))
                .await
                .unwrap(),
            UpdateOutcome::KeyMismatch
        );
        assert_eq!(load(&*store, dpop.id).await.binding, SessionBinding::Dpop);
        let mut unknown = record(&user("bob"));
        unknown.id = SessionId::generate().unwrap();
        assert_eq!(
            store
                .bind_dbsc(bind_req(&unknown, key(9), T0 + 1))
                .await
                .unwrap(),
            UpdateOutcome::NotFound
        );
        let late = pending(&*store, &user("carol")).await;
        let outcome = store
            .bind_dbsc(bind_req(&late, key(9), late.idle_expires_at))
            .await
            .unwrap();
        let UpdateOutcome::NotActive {
            record,
            newly_expired: true,
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!(record.state, SessionState::Expired);
        assert_eq!(record.binding, SessionBinding::DbscPending);
        let ended = pending(&*store, &user("dave")).await;
        store
            .end(EndRequest {
                id: ended.id,
                owner: None,
                state: EndState::Closed,
                reason: Reason::LOGOUT,
                now: T0 + 1,
            })
            .await
            .unwrap();
        let outcome = store
            .bind_dbsc(bind_req(&ended, key(9), T0 + 2))
            .await
            .unwrap();
        assert!(
            matches!(
                outcome,
                UpdateOutcome::NotActive {
                    newly_expired: false,
                    ..
                }
            ),
            "{outcome:?}"
        );
    })
}

/// Of many registrations of one pending session at once, exactly one binds it.
pub fn concurrent_registrations_have_one_winner(
    store: Arc<dyn SessionStore>,
) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let r = pending(&*store, &user("alice")).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let mut tasks = Vec::new();
        for n in 0..16u8 {
            let barrier = Arc::clone(&barrier);
            let store = Arc::clone(&store);
            let req = bind_req(&r, key(n + 1), T0 + 10);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.bind_dbsc(req).await.unwrap()
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                UpdateOutcome::Updated(after) => winners.push(after.jkt),
                UpdateOutcome::KeyMismatch => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1);
        assert_eq!(load(&*store, r.id).await.jkt, winners[0]);
    })
}
