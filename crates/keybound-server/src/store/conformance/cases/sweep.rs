//! Sweeping (expiry, purge, batch limits, nothing left behind) and the active count.

use super::*;

/// The swept sessions of one user (cases may share a backend).
fn own(batches: &[SweepBatch], user_id: &str) -> Vec<crate::store::SweptSession> {
    batches
        .iter()
        .flat_map(|b| b.swept.iter())
        .filter(|s| &*s.user_id == user_id)
        .cloned()
        .collect()
}

case!(
    /// A sweep expires sessions past their deadline and purges terminal sessions
    /// that ended before the cut-off; nothing else changes.
    sweep_expires_and_purges, |store| {
        let alice = user("alice");
        let mut idle = record(&alice);
        idle.idle_expires_at = T0 + 100;
        store.create(idle.clone()).await.unwrap();
        let fresh = created(store, &alice).await;
        let old = created(store, &alice).await;
        store.end(end_req(old.id, EndState::Revoked, Reason::ADMIN_REVOKED, T0 + 10)).await.unwrap();
        let recent = created(store, &alice).await;
        store.end(end_req(recent.id, EndState::Closed, Reason::LOGOUT, T0 + 500)).await.unwrap();
        let recent = load(store, recent.id).await;

        let now = T0 + 1000;
        let batches = sweep_all(store, now, T0 + 50, 100).await;
        let swept: Vec<_> = own(&batches, &alice);
        let expired: Vec<_> = swept.iter().filter(|s| s.action == SweepAction::Expired).collect();
        let purged: Vec<_> = swept.iter().filter(|s| s.action == SweepAction::Purged).collect();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].id, idle.id);
        assert_eq!(expired[0].reason, Reason::IDLE_TIMEOUT);
        assert_eq!(&*expired[0].user_id, alice.as_str());
        assert_eq!(expired[0].jkt, idle.jkt);
        assert_eq!(purged.len(), 1);
        assert_eq!(purged[0].id, old.id);
        assert_eq!(purged[0].reason, Reason::RETENTION);

        let idle_after = load(store, idle.id).await;
        assert_eq!(idle_after.state, SessionState::Expired);
        assert_eq!(idle_after.ended_at, Some(T0 + 100));
        assert_eq!(load(store, fresh.id).await, fresh);
        assert_eq!(load(store, recent.id).await, recent);
        assert_eq!(store.load(old.id).await.unwrap(), None);

        // A second sweep at the same time finds nothing.
        let again = sweep_all(store, now, T0 + 50, 100).await;
        assert!(own(&again, &alice).is_empty());
        // Later, the expired session is purged too (it ended at its deadline).
        let later = sweep_all(store, now, T0 + 100, 100).await;
        let purged: Vec<_> = own(&later, &alice).iter().map(|s| (s.action, s.id)).collect();
        assert_eq!(purged, vec![(SweepAction::Purged, idle.id)]);
    }
);

case!(
    /// Purged sessions leave nothing: not loadable, not listed, their id reusable.
    purge_leaves_nothing_behind, |store| {
        let alice = user("alice");
        let mut ids = Vec::new();
        for _ in 0..3 {
            let r = created(store, &alice).await;
            store.end(end_req(r.id, EndState::Revoked, Reason::ADMIN_REVOKED, T0 + 1)).await.unwrap();
            ids.push(r.id);
        }
        // One never swept while active: expired and purged in the same sweep.
        let mut stale = record(&alice);
        stale.idle_expires_at = T0 + 2;
        store.create(stale.clone()).await.unwrap();
        let batches = sweep_all(store, T0 + 100_000, T0 + 50_000, 100).await;
        let actions: Vec<_> = batches
            .iter()
            .flat_map(|b| b.swept.iter())
            .filter(|s| s.id == stale.id)
            .map(|s| s.action)
            .collect();
        assert_eq!(actions, vec![SweepAction::Expired, SweepAction::Purged]);
        ids.push(stale.id);
        for id in &ids {
            assert_eq!(store.load(*id).await.unwrap(), None);
            assert_eq!(
                store.end(end_req(*id, EndState::Closed, Reason::LOGOUT, T0 + 100_001)).await.unwrap(),
                EndOutcome::NotFound
            );
        }
        assert!(store.list_user(&alice).await.unwrap().is_empty());
        let mut again = record(&alice);
        again.id = ids[0];
        store.create(again.clone()).await.unwrap();
        assert_eq!(store.list_user(&alice).await.unwrap(), vec![again]);
    }
);

case!(
    /// No batch handles more than its limit; the sweep still finishes.
    sweep_respects_the_batch_limit, |store| {
        let alice = user("alice");
        for _ in 0..25 {
            let r = created(store, &alice).await;
            store.end(end_req(r.id, EndState::Revoked, Reason::ADMIN_REVOKED, T0 + 1)).await.unwrap();
        }
        let batches = sweep_all(store, T0 + 10, T0 + 5, 10).await;
        for batch in &batches {
            assert!(batch.swept.len() <= 10, "a batch swept {}", batch.swept.len());
        }
        assert!(batches.len() >= 3);
        assert_eq!(own(&batches, &alice).len(), 25);
        assert!(store.list_user(&alice).await.unwrap().is_empty());
    }
);

case!(
    /// The active count follows creation, ending, expiry and purge.
    count_active_follows_transitions, |store| {
        let base = store.count_active().await.unwrap();
        let alice = user("alice");
        let a = created(store, &alice).await;
        let b = created(store, &alice).await;
        let mut c = record(&alice);
        c.idle_expires_at = T0 + 10;
        store.create(c.clone()).await.unwrap();
        assert_eq!(store.count_active().await.unwrap(), base + 3);
        store.end(end_req(a.id, EndState::Closed, Reason::LOGOUT, T0 + 1)).await.unwrap();
        store.end(end_req(a.id, EndState::Closed, Reason::LOGOUT, T0 + 2)).await.unwrap();
        assert_eq!(store.count_active().await.unwrap(), base + 2);
        rotated(store.rotate(rotate_req(&b, hash(100), 0, hash(101), T0 + 3)).await.unwrap());
        assert_eq!(store.count_active().await.unwrap(), base + 2);
        assert!(matches!(
            store.end(end_req(c.id, EndState::Closed, Reason::LOGOUT, T0 + 20)).await.unwrap(),
            EndOutcome::Expired(_)
        ));
        assert_eq!(store.count_active().await.unwrap(), base + 1);
        let mut reuse = rotate_req(&b, hash(100), 0, hash(101), T0 + 1000);
        reuse.jkt = key(9);
        assert!(matches!(store.rotate(reuse).await.unwrap(), RotateOutcome::ReuseDetected(_)));
        assert_eq!(store.count_active().await.unwrap(), base);
    }
);
