//! Creating sessions and rotating their refresh tokens: every rotation outcome, caps,
//! and concurrent rotations with one winner.

use super::*;

case!(
    /// A created session loads back unchanged; unknown ids load as `None`.
    create_then_load_round_trips, |store| {
        let r = created(store, &user("alice")).await;
        assert_eq!(load(store, r.id).await, r);
        let mut terminal = record(&user("bob"));
        terminal.device_label = None;
        terminal.user_agent_hash = None;
        terminal.previous_hash = Some(hash(3));
        terminal.grace_until = Some(T0 + 5);
        terminal.finish(SessionState::Closed, Reason::LOGOUT, T0 + 9);
        store.create(terminal.clone()).await.unwrap();
        assert_eq!(load(store, terminal.id).await, terminal);
        assert_eq!(store.load(SessionId::generate().unwrap()).await.unwrap(), None);
    }
);

case!(
    /// Creating an existing id fails with `Duplicate` and leaves the original.
    create_refuses_duplicates, |store| {
        let r = created(store, &user("alice")).await;
        let mut copy = record(&user("mallory"));
        copy.id = r.id;
        assert_eq!(store.create(copy.clone()).await, Err(crate::store::StoreError::Duplicate));
        assert_eq!(load(store, r.id).await, r);
        assert!(store.list_user(&copy.user_id).await.unwrap().is_empty());
        assert_eq!(store.list_user(&r.user_id).await.unwrap(), vec![r]);
    }
);

case!(
    /// The current token by the bound key rotates: generation +1, hashes moved,
    /// grace and idle deadline set, last seen updated.
    rotate_current_token, |store| {
        let r = created(store, &user("alice")).await;
        let now = T0 + 100;
        let after = rotated(store.rotate(rotate_req(&r, hash(100), 0, hash(101), now)).await.unwrap());
        assert_eq!(after.generation, 1);
        assert_eq!(after.current_hash, hash(101));
        assert_eq!(after.previous_hash, Some(hash(100)));
        assert_eq!(after.grace_until, Some(now + GRACE));
        assert_eq!(after.last_seen_at, now);
        assert_eq!(after.idle_expires_at, now + IDLE);
        assert_eq!(after.absolute_expires_at, r.absolute_expires_at);
        assert_eq!(after.state, SessionState::Active);
        assert_eq!(load(store, r.id).await, after);
    }
);

case!(
    /// Rotations chain: the successor rotates in turn.
    rotate_chains_generations, |store| {
        let r = created(store, &user("alice")).await;
        rotated(store.rotate(rotate_req(&r, hash(100), 0, hash(101), T0 + 10)).await.unwrap());
        let after = rotated(store.rotate(rotate_req(&r, hash(101), 1, hash(102), T0 + 20)).await.unwrap());
        assert_eq!(after.generation, 2);
        assert_eq!(after.previous_hash, Some(hash(101)));
        assert_eq!(after.current_hash, hash(102));
    }
);

case!(
    /// The previous token, same key, inside grace: `GraceReplay`, nothing changes.
    previous_token_within_grace_replays, |store| {
        let r = created(store, &user("alice")).await;
        let after = rotated(store.rotate(rotate_req(&r, hash(100), 0, hash(101), T0 + 10)).await.unwrap());
        let replay = store
            .rotate(rotate_req(&r, hash(100), 0, hash(101), T0 + 10 + GRACE - 1))
            .await
            .unwrap();
        assert_eq!(replay, RotateOutcome::GraceReplay(after.clone()));
        assert_eq!(load(store, r.id).await, after);
    }
);

case!(
    /// The previous token once grace is over: reuse, the session is revoked.
    previous_token_after_grace_is_reuse, |store| {
        let r = created(store, &user("alice")).await;
        rotated(store.rotate(rotate_req(&r, hash(100), 0, hash(101), T0 + 10)).await.unwrap());
        let now = T0 + 10 + GRACE;
        match store.rotate(rotate_req(&r, hash(100), 0, hash(101), now)).await.unwrap() {
            RotateOutcome::ReuseDetected(after) => {
                assert_eq!(after.state, SessionState::Revoked);
                assert_eq!(after.reason, Some(Reason::REFRESH_REUSE));
                assert_eq!(after.ended_at, Some(now));
                assert_eq!(load(store, r.id).await, after);
            }
            other => panic!("expected ReuseDetected, got {other:?}"),
        }
        // The current token no longer works either.
        assert!(matches!(
            store.rotate(rotate_req(&r, hash(101), 1, hash(102), now)).await.unwrap(),
            RotateOutcome::NotActive { newly_expired: false, .. }
        ));
    }
);

case!(
    /// A token two generations old is reuse even within grace.
    older_token_is_reuse, |store| {
        let r = created(store, &user("alice")).await;
        rotated(store.rotate(rotate_req(&r, hash(100), 0, hash(101), T0 + 10)).await.unwrap());
        rotated(store.rotate(rotate_req(&r, hash(101), 1, hash(102), T0 + 11)).await.unwrap());
        let outcome = store.rotate(rotate_req(&r, hash(100), 0, hash(101), T0 + 12)).await.unwrap();
        assert!(matches!(outcome, RotateOutcome::ReuseDetected(ref a) if a.state == SessionState::Revoked));
        // An authentic token of this session the store never saw is reuse too.
        let r2 = created(store, &user("bob")).await;
        let outcome = store.rotate(rotate_req(&r2, hash(55), 4, hash(56), T0 + 12)).await.unwrap();
        assert!(matches!(outcome, RotateOutcome::ReuseDetected(_)));
    }
);

case!(
    /// The previous token within grace but from another key is reuse.
    previous_token_from_another_key_is_reuse, |store| {
        let r = created(store, &user("alice")).await;
        rotated(store.rotate(rotate_req(&r, hash(100), 0, hash(101), T0 + 10)).await.unwrap());
        let mut req = rotate_req(&r, hash(100), 0, hash(101), T0 + 11);
        req.jkt = key(2);
        assert!(matches!(store.rotate(req).await.unwrap(), RotateOutcome::ReuseDetected(_)));
        assert_eq!(load(store, r.id).await.state, SessionState::Revoked);
    }
);

case!(
    /// The current token from another key is refused and changes nothing.
    current_token_from_another_key_is_refused, |store| {
        let r = created(store, &user("alice")).await;
        let mut req = rotate_req(&r, hash(100), 0, hash(101), T0 + 10);
        req.jkt = key(2);
        assert_eq!(store.rotate(req).await.unwrap(), RotateOutcome::KeyMismatch);
        assert_eq!(load(store, r.id).await, r);
    }
);

case!(
    /// An unknown session: `Unknown`.
    rotate_unknown_session, |store| {
        let r = record(&user("ghost"));
        assert_eq!(
            store.rotate(rotate_req(&r, hash(100), 0, hash(101), T0)).await.unwrap(),
            RotateOutcome::Unknown
        );
        assert_eq!(store.load(r.id).await.unwrap(), None);
    }
);

case!(
    /// The current hash with a generation that is not the session's: `Unknown`,
    /// nothing changes.
    rotate_with_a_wrong_generation, |store| {
        let r = created(store, &user("alice")).await;
        assert_eq!(
            store.rotate(rotate_req(&r, hash(100), 5, hash(101), T0 + 1)).await.unwrap(),
            RotateOutcome::Unknown
        );
        assert_eq!(load(store, r.id).await, r);
    }
);

case!(
    /// A terminal session does not rotate and stays as it is.
    rotate_terminal_session_changes_nothing, |store| {
        let r = created(store, &user("alice")).await;
        store.end(end_req(r.id, EndState::Closed, Reason::LOGOUT, T0 + 5)).await.unwrap();
        let before = load(store, r.id).await;
        match store.rotate(rotate_req(&r, hash(100), 0, hash(101), T0 + 6)).await.unwrap() {
            RotateOutcome::NotActive { record, newly_expired } => {
                assert!(!newly_expired);
                assert_eq!(record, before);
            }
            other => panic!("expected NotActive, got {other:?}"),
        }
        assert_eq!(load(store, r.id).await, before);
    }
);

case!(
    /// At the idle deadline a rotation expires the session durably
    /// (`idle_timeout`, ended at the deadline).
    rotate_past_idle_deadline_expires, |store| {
        let r = created(store, &user("alice")).await;
        let now = r.idle_expires_at;
        match store.rotate(rotate_req(&r, hash(100), 0, hash(101), now)).await.unwrap() {
            RotateOutcome::NotActive { record, newly_expired } => {
                assert!(newly_expired);
                assert_eq!(record.state, SessionState::Expired);
                assert_eq!(record.reason, Some(Reason::IDLE_TIMEOUT));
                assert_eq!(record.ended_at, Some(r.idle_expires_at));
            }
            other => panic!("expected NotActive, got {other:?}"),
        }
        assert_eq!(load(store, r.id).await.state, SessionState::Expired);
        assert!(matches!(
            store.rotate(rotate_req(&r, hash(100), 0, hash(101), now + 1)).await.unwrap(),
            RotateOutcome::NotActive { newly_expired: false, .. }
        ));
    }
);

case!(
    /// When the absolute deadline comes first, the reason is `absolute_lifetime`.
    rotate_past_absolute_deadline_expires, |store| {
        let mut r = record(&user("alice"));
        r.absolute_expires_at = T0 + 600;
        r.idle_expires_at = T0 + 600;
        store.create(r.clone()).await.unwrap();
        match store.rotate(rotate_req(&r, hash(100), 0, hash(101), T0 + 600)).await.unwrap() {
            RotateOutcome::NotActive { record, newly_expired: true } => {
                assert_eq!(record.reason, Some(Reason::ABSOLUTE_LIFETIME));
                assert_eq!(record.ended_at, Some(T0 + 600));
            }
            other => panic!("expected NotActive, got {other:?}"),
        }
    }
);

case!(
    /// The idle deadline never passes the absolute one; an absolute cap only
    /// shortens.
    rotate_caps_lifetimes, |store| {
        let mut r = record(&user("alice"));
        r.idle_expires_at = r.absolute_expires_at - 50;
        store.create(r.clone()).await.unwrap();
        let now = r.absolute_expires_at - 100;
        let after = rotated(store.rotate(rotate_req(&r, hash(100), 0, hash(101), now)).await.unwrap());
        assert_eq!(after.idle_expires_at, r.absolute_expires_at);
        let mut req = rotate_req(&after, hash(101), 1, hash(102), now + 1);
        req.absolute_cap = Some(now + 50);
        let capped = rotated(store.rotate(req).await.unwrap());
        assert_eq!(capped.absolute_expires_at, now + 50);
        assert_eq!(capped.idle_expires_at, now + 50);
        let mut req = rotate_req(&capped, hash(102), 2, hash(103), now + 2);
        req.absolute_cap = Some(now + 10_000);
        let later = rotated(store.rotate(req).await.unwrap());
        assert_eq!(later.absolute_expires_at, now + 50);
    }
);

/// 32 concurrent rotations with the same token: one rotates, the others
/// replay the same generation; the session ends at generation 1.
pub fn concurrent_rotations_have_one_winner(
    store: Arc<dyn SessionStore>,
) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let r = created(&*store, &user("alice")).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let barrier = Arc::clone(&barrier);
            let store = Arc::clone(&store);
            let req = rotate_req(&r, hash(100), 0, hash(101), T0 + 10);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.rotate(req).await.unwrap()
            }));
        }
        let (mut rotations, mut replays) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                RotateOutcome::Rotated(after) => {
                    rotations += 1;
                    assert_eq!(after.generation, 1);
                }
                RotateOutcome::GraceReplay(after) => {
                    replays += 1;
                    assert_eq!(after.generation, 1);
                    assert_eq!(after.current_hash, hash(101));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((rotations, replays), (1, 31));
        let after = load(&*store, r.id).await;
        assert_eq!(after.generation, 1);
        assert_eq!(after.state, SessionState::Active);
    })
}
