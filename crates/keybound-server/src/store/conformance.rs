//! The conformance suite every [`SessionStore`] must pass, reusable by third-party
//! stores.
//!
//! Invoke [`store_conformance_tests!`](crate::store_conformance_tests) with an
//! expression that makes a fresh [`Fixture`] (a closure returning a future). It
//! expands to one `#[test]` per case, each running on its own tokio runtime, so the
//! calling crate needs no tokio set-up of its own:
//!
//! ```ignore
//! mod my_store_conformance {
//!     use keybound_server::store::conformance::Fixture;
//!     keybound_server::store_conformance_tests!(|| async {
//!         let dir = tempfile::tempdir().unwrap();
//!         let store = MyStore::open(dir.path()).await.unwrap();
//!         Fixture::new(store).with_guard(dir) // the guard lives as long as the test
//!     });
//! }
//! ```
//!
//! The cases use random session and user ids and look only at their own sessions, so
//! a factory may hand out stores that share one backend (one Redis database) — but
//! the sweeping cases (`sweep_*`, `purge_*`) sweep the whole store with fixed times,
//! so on a shared backend run the cases one after another (`--test-threads=1`, or
//! [`run_all`]). Every case is also listed in [`CASES`].
//!
//! What is covered: create and load, duplicates, every rotation outcome (rotation,
//! chained rotation, grace replay, reuse of the previous token after grace, of an
//! older token and from another key, key mismatch, unknown sessions and generations,
//! terminal and expired sessions, idle capping and absolute caps), token replacement
//! without grace, touch, ending (idempotence, ownership, expiry), ending a user's
//! sessions with and without an exception, listing, sweeping (expiry, purge, batch
//! limits, nothing left behind), the active count, concurrent rotations with one
//! winner, and DBSC binding (a pending session is bound once, atomically, and keeps
//! its key).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use super::{
    BindRequest, EndOutcome, EndRequest, EndState, EndUserRequest, PENDING_JKT,
    ReplaceTokensRequest, RotateOutcome, RotateRequest, SessionBinding, SessionRecord,
    SessionStore, SweepAction, SweepBatch, SweepRequest, TouchRequest, UpdateOutcome,
};
use crate::BoxFuture;
use crate::session::{Jkt, Reason, SessionId, SessionState, TokenHash};

/// A store under test, plus anything that must live as long as the test (a temporary
/// directory, a server process).
pub struct Fixture {
    store: Arc<dyn SessionStore>,
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").finish_non_exhaustive()
    }
}

impl Fixture {
    /// A fixture for `store`.
    pub fn new(store: impl SessionStore) -> Self {
        Self {
            store: Arc::new(store),
            _guard: None,
        }
    }

    /// Keeps `guard` alive until the case has finished.
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }
}

/// One conformance case.
pub type Case = fn(Arc<dyn SessionStore>) -> BoxFuture<'static, ()>;

/// Runs one case on a fresh fixture, on a new multi-threaded tokio runtime.
pub fn run<F, Fut>(factory: F, case: Case)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Fixture>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let fixture = factory().await;
        case(Arc::clone(&fixture.store)).await;
        drop(fixture);
    });
}

/// Runs every case, each on a fresh fixture.
pub fn run_all<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Fixture>,
{
    for (_, case) in CASES {
        run(&factory, *case);
    }
}

/// Expands to one `#[test]` per conformance case, on fixtures made by `$factory`
/// (an expression of type `Fn() -> impl Future<Output = Fixture>`). See
/// [`store::conformance`](crate::store::conformance).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::__store_conformance_cases!(
            $factory;
            create_then_load_round_trips,
            create_refuses_duplicates,
            rotate_current_token,
            rotate_chains_generations,
            previous_token_within_grace_replays,
            previous_token_after_grace_is_reuse,
            older_token_is_reuse,
            previous_token_from_another_key_is_reuse,
            current_token_from_another_key_is_refused,
            rotate_unknown_session,
            rotate_with_a_wrong_generation,
            rotate_terminal_session_changes_nothing,
            rotate_past_idle_deadline_expires,
            rotate_past_absolute_deadline_expires,
            rotate_caps_lifetimes,
            replace_tokens_allows_no_grace,
            replace_tokens_refusals,
            touch_extends_idle_deadline,
            touch_refusals,
            end_is_idempotent,
            end_checks_the_owner,
            end_unknown_session,
            end_past_deadline_expires_instead,
            end_user_sessions_revokes_all,
            end_user_sessions_with_exception,
            end_user_sessions_reports_expiries,
            list_user_returns_every_state,
            sweep_expires_and_purges,
            purge_leaves_nothing_behind,
            sweep_respects_the_batch_limit,
            count_active_follows_transitions,
            concurrent_rotations_have_one_winner,
            dbsc_pending_session_round_trips,
            bind_dbsc_binds_a_pending_session_once,
            bind_dbsc_refusals,
            an_unregistered_dbsc_session_expires_as_such,
            concurrent_registrations_have_one_winner,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_cases {
    ($factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::store::conformance::run($factory, $crate::store::conformance::cases::$case);
            }
        )*
    };
}

macro_rules! case_list {
    ($($case:ident),* $(,)?) => {
        /// Every case, by name.
        pub const CASES: &[(&str, Case)] = &[$((stringify!($case), cases::$case)),*];
    };
}

case_list!(
    create_then_load_round_trips,
    create_refuses_duplicates,
    rotate_current_token,
    rotate_chains_generations,
    previous_token_within_grace_replays,
    previous_token_after_grace_is_reuse,
    older_token_is_reuse,
    previous_token_from_another_key_is_reuse,
    current_token_from_another_key_is_refused,
    rotate_unknown_session,
    rotate_with_a_wrong_generation,
    rotate_terminal_session_changes_nothing,
    rotate_past_idle_deadline_expires,
    rotate_past_absolute_deadline_expires,
    rotate_caps_lifetimes,
    replace_tokens_allows_no_grace,
    replace_tokens_refusals,
    touch_extends_idle_deadline,
    touch_refusals,
    end_is_idempotent,
    end_checks_the_owner,
    end_unknown_session,
    end_past_deadline_expires_instead,
    end_user_sessions_revokes_all,
    end_user_sessions_with_exception,
    end_user_sessions_reports_expiries,
    list_user_returns_every_state,
    sweep_expires_and_purges,
    purge_leaves_nothing_behind,
    sweep_respects_the_batch_limit,
    count_active_follows_transitions,
    concurrent_rotations_have_one_winner,
    dbsc_pending_session_round_trips,
    bind_dbsc_binds_a_pending_session_once,
    bind_dbsc_refusals,
    an_unregistered_dbsc_session_expires_as_such,
    concurrent_registrations_have_one_winner,
);

/// The cases, one function each.
pub mod cases {
    use super::*;

    const T0: i64 = 1_700_000_000;
    const IDLE: i64 = 1800;
    const ABSOLUTE: i64 = 43_200;
    const GRACE: i64 = 30;

    fn user(name: &str) -> String {
        let suffix = SessionId::generate().unwrap();
        format!("{name}-{suffix}")
    }

    fn key(n: u8) -> Jkt {
        Jkt::from_bytes([n; 32])
    }

    fn hash(n: u8) -> TokenHash {
        TokenHash::from_bytes([n; 32])
    }

    fn record(user_id: &str) -> SessionRecord {
        SessionRecord {
            id: SessionId::generate().unwrap(),
            user_id: user_id.to_owned(),
            jkt: key(1),
            device_label: Some("Firefox on Linux".into()),
            user_agent_hash: Some([7; 8]),
            created_at: T0,
            last_seen_at: T0,
            idle_expires_at: T0 + IDLE,
            absolute_expires_at: T0 + ABSOLUTE,
            generation: 0,
            current_hash: hash(100),
            previous_hash: None,
            grace_until: None,
            state: SessionState::Active,
            reason: None,
            ended_at: None,
            binding: SessionBinding::Dpop,
        }
    }

    async fn created(store: &dyn SessionStore, user_id: &str) -> SessionRecord {
        let r = record(user_id);
        store.create(r.clone()).await.unwrap();
        r
    }

    fn rotate_req(
        r: &SessionRecord,
        presented: TokenHash,
        generation: u64,
        next: TokenHash,
        now: i64,
    ) -> RotateRequest {
        RotateRequest {
            id: r.id,
            presented,
            presented_generation: generation,
            jkt: r.jkt,
            next,
            now,
            grace_until: now + GRACE,
            idle_expires_at: now + IDLE,
            absolute_cap: None,
        }
    }

    fn rotated(outcome: RotateOutcome) -> SessionRecord {
        match outcome {
            RotateOutcome::Rotated(r) => r,
            other => panic!("expected Rotated, got {other:?}"),
        }
    }

    async fn load(store: &dyn SessionStore, id: SessionId) -> SessionRecord {
        store
            .load(id)
            .await
            .unwrap()
            .expect("the session is stored")
    }

    fn end_req(id: SessionId, state: EndState, reason: Reason, now: i64) -> EndRequest {
        EndRequest {
            id,
            owner: None,
            state,
            reason,
            now,
        }
    }

    async fn sweep_all(
        store: &dyn SessionStore,
        now: i64,
        purge_before: i64,
        limit: usize,
    ) -> Vec<SweepBatch> {
        let mut batches = Vec::new();
        let mut cursor = 0;
        for _ in 0..10_000 {
            let batch = store
                .sweep(SweepRequest {
                    now,
                    purge_ended_before: purge_before,
                    limit,
                    cursor,
                })
                .await
                .unwrap();
            assert!(batch.swept.len() <= limit * 2, "a batch exceeded its limit");
            cursor = batch.cursor;
            let done = batch.done;
            batches.push(batch);
            if done {
                return batches;
            }
        }
        panic!("the sweep never finished");
    }

    macro_rules! case {
        ($(#[$doc:meta])* $name:ident, |$store:ident| $body:block) => {
            $(#[$doc])*
            pub fn $name(store: Arc<dyn SessionStore>) -> BoxFuture<'static, ()> {
                Box::pin(async move {
                    let $store: &dyn SessionStore = &*store;
                    $body
                })
            }
        };
    }

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
            assert_eq!(store.create(copy.clone()).await, Err(super::super::StoreError::Duplicate));
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
                    grace_until: None,
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
            // With a grace (a DBSC cookie refresh), the grace is kept.
            let other = created(store, &user("alice")).await;
            let outcome = store
                .replace_tokens(ReplaceTokensRequest {
                    id: other.id,
                    jkt: other.jkt,
                    next: hash(160),
                    now: T0 + 60,
                    idle_expires_at: T0 + 60 + IDLE,
                    grace_until: Some(T0 + 90),
                })
                .await
                .unwrap();
            let UpdateOutcome::Updated(after) = outcome else { panic!("{outcome:?}") };
            assert_eq!((after.generation, after.grace_until), (1, Some(T0 + 90)));
            assert_eq!(load(store, other.id).await, after);
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
                grace_until: None,
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

    /// The swept sessions of one user (cases may share a backend).
    fn own(batches: &[SweepBatch], user_id: &str) -> Vec<super::super::SweptSession> {
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
    pub fn dbsc_pending_session_round_trips(
        store: Arc<dyn SessionStore>,
    ) -> BoxFuture<'static, ()> {
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
                    grace_until: Some(T0 + 40),
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
            assert_eq!(record.reason, Some(Reason::DBSC_REGISTRATION_TIMEOUT));
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

    /// A session whose browser never registered expires at its deadline with its own
    /// reason (`dbsc_registration_timeout`), through the sweep as through any update;
    /// a bound DBSC session expires as any other.
    pub fn an_unregistered_dbsc_session_expires_as_such(
        store: Arc<dyn SessionStore>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let erin = user("erin");
            let late = pending(&*store, &erin).await;
            let bound = pending(&*store, &erin).await;
            let now = T0 + 1;
            let UpdateOutcome::Updated(bound) = store
                .bind_dbsc(bind_req(&bound, key(9), now))
                .await
                .unwrap()
            else {
                panic!("not bound")
            };
            let after = bound.idle_expires_at.max(late.idle_expires_at) + 1;
            let batches = sweep_all(&*store, after, T0, 100).await;
            let mut expired: Vec<_> = own(&batches, &erin)
                .into_iter()
                .filter(|s| s.action == SweepAction::Expired)
                .map(|s| (s.id, s.reason))
                .collect();
            expired.sort_by_key(|(id, _)| *id == bound.id);
            assert_eq!(
                expired,
                vec![
                    (late.id, Reason::DBSC_REGISTRATION_TIMEOUT),
                    (bound.id, Reason::IDLE_TIMEOUT)
                ]
            );
            let record = load(&*store, late.id).await;
            assert_eq!(record.state, SessionState::Expired);
            assert_eq!(record.reason, Some(Reason::DBSC_REGISTRATION_TIMEOUT));
            assert_eq!(record.ended_at, Some(late.idle_expires_at));
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
}
