//! Replacing tokens, touching, ending one session or a user's sessions, listing.

use super::*;

case!(
    /// Replacing tokens moves to a new generation and leaves no grace: the old
    /// token is reuse right away.
    replace_tokens_allows_no_grace, |store| {
        let r = created(store, &user("alice")).await;
        let outcome = store
            .replace_tokens(ReplaceTokensRequest {
                id: r.id,
                jkt: r.jkt,
                next: hash(150),
                now: T0 + 60,
                idle_expires_at: T0 + 60 + IDLE,
            })
            .await
            .unwrap();
        let after = match outcome {
            UpdateOutcome::Updated(after) => after,
            other => panic!("expected Updated, got {other:?}"),
        };
        assert_eq!(after.generation, 1);
        assert_eq!(after.current_hash, hash(150));
        assert_eq!(after.previous_hash, Some(hash(100)));
        assert_eq!(after.grace_until, None);
        assert_eq!(after.last_seen_at, T0 + 60);
        assert_eq!(after.idle_expires_at, T0 + 60 + IDLE);
        assert_eq!(load(store, r.id).await, after);
        assert!(matches!(
            store.rotate(rotate_req(&r, hash(100), 0, hash(101), T0 + 61)).await.unwrap(),
            RotateOutcome::ReuseDetected(_)
        ));
    }
);

case!(
    /// Replacing tokens: another key, a terminal session, an unknown session.
    replace_tokens_refusals, |store| {
        let r = created(store, &user("alice")).await;
        let req = |jkt, now| ReplaceTokensRequest {
            id: r.id,
            jkt,
            next: hash(150),
            now,
            idle_expires_at: now + IDLE,
        };
        assert_eq!(store.replace_tokens(req(key(2), T0 + 1)).await.unwrap(), UpdateOutcome::KeyMismatch);
        assert_eq!(load(store, r.id).await, r);
        store.end(end_req(r.id, EndState::Revoked, Reason::ADMIN_REVOKED, T0 + 2)).await.unwrap();
        assert!(matches!(
            store.replace_tokens(req(key(1), T0 + 3)).await.unwrap(),
            UpdateOutcome::NotActive { newly_expired: false, .. }
        ));
        let mut unknown = req(key(1), T0 + 3);
        unknown.id = SessionId::generate().unwrap();
        assert_eq!(store.replace_tokens(unknown).await.unwrap(), UpdateOutcome::NotFound);
    }
);

case!(
    /// Touch restarts the idle timeout, capped at the absolute deadline.
    touch_extends_idle_deadline, |store| {
        let r = created(store, &user("alice")).await;
        let touch = |now| TouchRequest { id: r.id, now, idle_expires_at: now + IDLE };
        match store.touch(touch(T0 + 1000)).await.unwrap() {
            UpdateOutcome::Updated(after) => {
                assert_eq!(after.last_seen_at, T0 + 1000);
                assert_eq!(after.idle_expires_at, T0 + 1000 + IDLE);
                assert_eq!(after.generation, 0);
                assert_eq!(after.current_hash, r.current_hash);
                assert_eq!(load(store, r.id).await, after);
            }
            other => panic!("expected Updated, got {other:?}"),
        }
        let near_end = r.absolute_expires_at - 10;
        let mut step = T0 + 1000;
        while step + IDLE - 1 < near_end {
            step += IDLE - 1;
            assert!(matches!(store.touch(touch(step)).await.unwrap(), UpdateOutcome::Updated(_)));
        }
        match store.touch(touch(near_end)).await.unwrap() {
            UpdateOutcome::Updated(after) => assert_eq!(after.idle_expires_at, r.absolute_expires_at),
            other => panic!("expected Updated, got {other:?}"),
        }
    }
);

case!(
    /// Touch: past the deadline (expires durably), terminal, unknown.
    touch_refusals, |store| {
        let r = created(store, &user("alice")).await;
        let touch = |id, now| TouchRequest { id, now, idle_expires_at: now + IDLE };
        match store.touch(touch(r.id, r.idle_expires_at)).await.unwrap() {
            UpdateOutcome::NotActive { record, newly_expired: true } => {
                assert_eq!(record.state, SessionState::Expired);
            }
            other => panic!("expected NotActive, got {other:?}"),
        }
        assert!(matches!(
            store.touch(touch(r.id, r.idle_expires_at + 1)).await.unwrap(),
            UpdateOutcome::NotActive { newly_expired: false, .. }
        ));
        assert_eq!(
            store.touch(touch(SessionId::generate().unwrap(), T0)).await.unwrap(),
            UpdateOutcome::NotFound
        );
    }
);

case!(
    /// Ending is idempotent: the first terminal state and reason stay.
    end_is_idempotent, |store| {
        let r = created(store, &user("alice")).await;
        let reason = Reason::new("password_reset").unwrap();
        let ended = match store.end(end_req(r.id, EndState::Revoked, reason.clone(), T0 + 5)).await.unwrap() {
            EndOutcome::Ended(after) => after,
            other => panic!("expected Ended, got {other:?}"),
        };
        assert_eq!(ended.state, SessionState::Revoked);
        assert_eq!(ended.reason, Some(reason.clone()));
        assert_eq!(ended.ended_at, Some(T0 + 5));
        for (state, reason) in [(EndState::Revoked, Reason::ADMIN_REVOKED), (EndState::Closed, Reason::LOGOUT)] {
            assert_eq!(
                store.end(end_req(r.id, state, reason, T0 + 9)).await.unwrap(),
                EndOutcome::AlreadyEnded(ended.clone())
            );
        }
        assert_eq!(load(store, r.id).await, ended);
        // Even past the deadline, a revoked session stays revoked.
        assert_eq!(
            store.end(end_req(r.id, EndState::Closed, Reason::LOGOUT, r.absolute_expires_at + 1)).await.unwrap(),
            EndOutcome::AlreadyEnded(ended)
        );
    }
);

case!(
    /// With an owner, another user's session is refused and left alone.
    end_checks_the_owner, |store| {
        let r = created(store, &user("alice")).await;
        let mut req = end_req(r.id, EndState::Revoked, Reason::USER_REVOKED, T0 + 5);
        req.owner = Some(user("mallory"));
        assert_eq!(store.end(req.clone()).await.unwrap(), EndOutcome::NotOwner);
        assert_eq!(load(store, r.id).await, r);
        req.owner = Some(r.user_id.clone());
        assert!(matches!(store.end(req).await.unwrap(), EndOutcome::Ended(_)));
    }
);

case!(
    /// Ending an unknown session: `NotFound`.
    end_unknown_session, |store| {
        assert_eq!(
            store
                .end(end_req(SessionId::generate().unwrap(), EndState::Closed, Reason::LOGOUT, T0))
                .await
                .unwrap(),
            EndOutcome::NotFound
        );
    }
);

case!(
    /// Ending a session past its deadline expires it instead.
    end_past_deadline_expires_instead, |store| {
        let r = created(store, &user("alice")).await;
        match store
            .end(end_req(r.id, EndState::Revoked, Reason::ADMIN_REVOKED, r.idle_expires_at + 3))
            .await
            .unwrap()
        {
            EndOutcome::Expired(after) => {
                assert_eq!(after.state, SessionState::Expired);
                assert_eq!(after.reason, Some(Reason::IDLE_TIMEOUT));
                assert_eq!(after.ended_at, Some(r.idle_expires_at));
            }
            other => panic!("expected Expired, got {other:?}"),
        }
    }
);

fn ended_ids(outcomes: &[EndOutcome]) -> Vec<SessionId> {
    let mut ids: Vec<SessionId> = outcomes
        .iter()
        .map(|o| match o {
            EndOutcome::Ended(r) | EndOutcome::Expired(r) => r.id,
            other => panic!("unexpected outcome {other:?}"),
        })
        .collect();
    ids.sort();
    ids
}

case!(
    /// Ending a user's sessions ends all of theirs, no one else's; again, nothing.
    end_user_sessions_revokes_all, |store| {
        let alice = user("alice");
        let mut mine = Vec::new();
        for _ in 0..3 {
            mine.push(created(store, &alice).await.id);
        }
        let closed = created(store, &alice).await;
        store.end(end_req(closed.id, EndState::Closed, Reason::LOGOUT, T0 + 1)).await.unwrap();
        let bob = created(store, &user("bob")).await;
        let req = EndUserRequest {
            user_id: alice.clone(),
            except: None,
            state: EndState::Revoked,
            reason: Reason::ADMIN_REVOKED,
            now: T0 + 10,
        };
        let outcomes = store.end_user_sessions(req.clone()).await.unwrap();
        assert!(outcomes.iter().all(|o| matches!(o, EndOutcome::Ended(r) if r.state == SessionState::Revoked && r.reason == Some(Reason::ADMIN_REVOKED))));
        mine.sort();
        assert_eq!(ended_ids(&outcomes), mine);
        assert_eq!(load(store, closed.id).await.state, SessionState::Closed);
        assert_eq!(load(store, bob.id).await, bob);
        assert!(store.end_user_sessions(req).await.unwrap().is_empty());
    }
);

case!(
    /// The exception stays active.
    end_user_sessions_with_exception, |store| {
        let alice = user("alice");
        let keep = created(store, &alice).await;
        let other = created(store, &alice).await;
        let outcomes = store
            .end_user_sessions(EndUserRequest {
                user_id: alice,
                except: Some(keep.id),
                state: EndState::Revoked,
                reason: Reason::USER_REVOKED_OTHERS,
                now: T0 + 10,
            })
            .await
            .unwrap();
        assert_eq!(ended_ids(&outcomes), vec![other.id]);
        assert_eq!(load(store, keep.id).await, keep);
        assert_eq!(load(store, other.id).await.state, SessionState::Revoked);
    }
);

case!(
    /// A session found past its deadline is reported as expired, not revoked.
    end_user_sessions_reports_expiries, |store| {
        let alice = user("alice");
        let mut short = record(&alice);
        short.idle_expires_at = T0 + 5;
        store.create(short.clone()).await.unwrap();
        let long = created(store, &alice).await;
        let outcomes = store
            .end_user_sessions(EndUserRequest {
                user_id: alice,
                except: None,
                state: EndState::Revoked,
                reason: Reason::ADMIN_REVOKED,
                now: T0 + 10,
            })
            .await
            .unwrap();
        assert_eq!(outcomes.len(), 2);
        for outcome in outcomes {
            match outcome {
                EndOutcome::Expired(r) => assert_eq!(r.id, short.id),
                EndOutcome::Ended(r) => assert_eq!(r.id, long.id),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
);

case!(
    /// Listing returns the user's sessions in every state, and only theirs.
    list_user_returns_every_state, |store| {
        let alice = user("alice");
        let a = created(store, &alice).await;
        let b = created(store, &alice).await;
        let c = created(store, &alice).await;
        store.end(end_req(b.id, EndState::Revoked, Reason::USER_REVOKED, T0 + 1)).await.unwrap();
        store.end(end_req(c.id, EndState::Closed, Reason::LOGOUT, T0 + 2)).await.unwrap();
        created(store, &user("bob")).await;
        let mut listed = store.list_user(&alice).await.unwrap();
        listed.sort_by_key(|r| r.id);
        let mut expected = vec![a, load(store, b.id).await, load(store, c.id).await];
        expected.sort_by_key(|r| r.id);
        assert_eq!(listed, expected);
        assert!(store.list_user(&user("nobody")).await.unwrap().is_empty());
    }
);
