//! The conformance suites every [`SessionStore`] and every
//! [`ReplayStore`](crate::ReplayStore) must pass, reusable by third-party stores
//! (behind the `conformance` feature).
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
//! [`run_all`]). Every case is also listed in [`CASES`]; both the tests and [`CASES`]
//! come from one list of names.
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
//!
//! Replay stores have their own suite, [`replay`]
//! ([`replay_store_conformance_tests!`](crate::replay_store_conformance_tests)).
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

pub mod cases;
pub mod replay;

/// A store under test, of either suite, plus anything that must live as long as the
/// test (a temporary directory, a server process): [`Fixture`] for session stores,
/// [`replay::Fixture`] for replay stores.
pub struct StoreFixture<S: ?Sized> {
    store: Arc<S>,
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

/// A session store under test.
pub type Fixture = StoreFixture<dyn SessionStore>;

impl<S: ?Sized> std::fmt::Debug for StoreFixture<S> {
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
}

impl<S: ?Sized> StoreFixture<S> {
    /// Keeps `guard` alive until the case has finished.
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }
}

/// One conformance case.
pub type Case = fn(Arc<dyn SessionStore>) -> BoxFuture<'static, ()>;

/// Runs `case` on the store of the fixture `make` returns, on a new multi-threaded
/// tokio runtime; the fixture (with its guard) lives until the case has finished.
fn run_on_fresh_runtime<S, Fut>(
    make: impl FnOnce() -> Fut,
    case: impl FnOnce(Arc<S>) -> BoxFuture<'static, ()>,
) where
    S: ?Sized,
    Fut: Future<Output = StoreFixture<S>>,
{
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(async {
            let fixture = make().await;
            case(Arc::clone(&fixture.store)).await;
            drop(fixture);
        });
}

/// Runs one case on a fresh fixture, on a new multi-threaded tokio runtime.
pub fn run<F, Fut>(factory: F, case: Case)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Fixture>,
{
    run_on_fresh_runtime(factory, case);
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
        $crate::__store_conformance_cases!(__conformance_tests_of {
            $crate::store::conformance; $factory;
        });
    };
}

/// The one list of the session-store cases: calls the exported macro `$callback`
/// with `$($args)*` followed by every case's name.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_cases {
    ($callback:ident { $($args:tt)* }) => {
        $crate::$callback! { $($args)*
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
        }
    };
}

/// One `#[test]` per name, each running `$suite::run($factory, $suite::cases::NAME)`:
/// the tests of [`store_conformance_tests!`](crate::store_conformance_tests) and
/// [`replay_store_conformance_tests!`](crate::replay_store_conformance_tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests_of {
    ($suite:path; $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                use $suite as suite;
                suite::run($factory, suite::cases::$case);
            }
        )*
    };
}

/// `CASES` from the list of names, in the module of the suite that invokes it (its
/// `Case` type and `cases` module).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_table {
    ($($case:ident),* $(,)?) => {
        /// Every case, by name.
        pub const CASES: &[(&str, Case)] = &[$((stringify!($case), cases::$case)),*];
    };
}

crate::__store_conformance_cases!(__conformance_table {});
