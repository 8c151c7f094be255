//! The conformance suite every [`ReplayStore`] must pass.
//!
//! Invoke [`replay_store_conformance_tests!`](crate::replay_store_conformance_tests)
//! with a closure that takes a [`Setup`] (the clock the store must read and the
//! capacity it must have) and returns a future of a [`Fixture`]. It expands to one
//! `#[test]` per case, each on its own tokio runtime:
//!
//! ```ignore
//! mod my_replay_store_conformance {
//!     use keybound_server::store::conformance::replay::{Fixture, Setup};
//!     keybound_server::replay_store_conformance_tests!(|setup: Setup| async move {
//!         Fixture::new(MyReplayStore::new(setup.clock(), setup.capacity()))
//!     });
//! }
//! ```
//!
//! Each case gets a fresh store and moves the clock itself, so stores must take every
//! time from the given clock. What is covered: a proof id is fresh once and a replay
//! until its expiry, then fresh again; an expiry already passed is fresh and not
//! remembered; sweeping forgets exactly the expired entries; a full store refuses new
//! ids with [`ReplayError::Full`] without forgetting a live one, and takes new ones
//! once entries expire; concurrent inserts of one id succeed once. Every case is also
//! listed in [`CASES`], from the same list of names as the tests.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::StoreFixture;
use crate::{BoxFuture, Clock, ManualClock, ReplayError, ReplayStore, replay_key};

/// The start of every case's clock, in milliseconds (a whole second).
const T0: i64 = 1_700_000_000_000;

/// The capacity every store under test is made with.
const CAPACITY: usize = 64;

/// What a factory makes its store with: the clock to read and the capacity to keep.
#[derive(Clone, Debug)]
pub struct Setup {
    clock: ManualClock,
}

impl Setup {
    /// The clock the store must read for every time it uses.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.clock.clone())
    }

    /// The most live entries the store may hold.
    pub fn capacity(&self) -> usize {
        CAPACITY
    }
}

/// A replay store under test, plus anything that must live as long as the test.
pub type Fixture = StoreFixture<dyn ReplayStore>;

impl Fixture {
    /// A fixture for `store`.
    pub fn new(store: impl ReplayStore) -> Self {
        Self {
            store: Arc::new(store),
            _guard: None,
        }
    }
}

/// One replay-store case: the store and the clock it reads.
pub type Case = fn(Arc<dyn ReplayStore>, ManualClock) -> BoxFuture<'static, ()>;

/// Runs one case on a fresh fixture, on a new multi-threaded tokio runtime.
pub fn run<F, Fut>(factory: F, case: Case)
where
    F: FnOnce(Setup) -> Fut,
    Fut: Future<Output = Fixture>,
{
    let clock = ManualClock::new(T0);
    let setup = Setup {
        clock: clock.clone(),
    };
    super::run_on_fresh_runtime(|| factory(setup), |store| case(store, clock));
}

/// Runs every case, each on a fresh fixture.
pub fn run_all<F, Fut>(factory: F)
where
    F: Fn(Setup) -> Fut,
    Fut: Future<Output = Fixture>,
{
    for (_, case) in CASES {
        run(&factory, *case);
    }
}

/// Expands to one `#[test]` per replay-store conformance case, on fixtures made by
/// `$factory` (an expression of type `Fn(Setup) -> impl Future<Output = Fixture>`).
/// See [`store::conformance::replay`](crate::store::conformance::replay).
#[macro_export]
macro_rules! replay_store_conformance_tests {
    ($factory:expr) => {
        $crate::__replay_store_conformance_cases!(__conformance_tests_of {
            $crate::store::conformance::replay; $factory;
        });
    };
}

/// The one list of the replay-store cases: calls the exported macro `$callback` with
/// `$($args)*` followed by every case's name.
#[doc(hidden)]
#[macro_export]
macro_rules! __replay_store_conformance_cases {
    ($callback:ident { $($args:tt)* }) => {
        $crate::$callback! { $($args)*
            a_proof_id_is_fresh_once,
            a_replay_until_expiry_then_fresh,
            an_expiry_already_passed_is_fresh,
            sweep_forgets_only_expired_entries,
            a_full_store_fails_closed_then_recovers,
            concurrent_inserts_of_one_id_succeed_once,
        }
    };
}

crate::__replay_store_conformance_cases!(__conformance_table {});

/// The cases, one function each.
pub mod cases {
    use super::*;

    /// The key of proof `n` by the key `jkt`.
    fn key(jkt: &str, n: u32) -> [u8; 32] {
        replay_key(jkt, &format!("jti-{n:016}"))
    }

    async fn insert(store: &dyn ReplayStore, key: &[u8; 32], expires_at_ms: i64) -> bool {
        store.insert_once(key, expires_at_ms).await.unwrap()
    }

    macro_rules! case {
        ($(#[$doc:meta])* $name:ident, |$store:ident, $clock:ident| $body:block) => {
            $(#[$doc])*
            pub fn $name(store: Arc<dyn ReplayStore>, $clock: ManualClock) -> BoxFuture<'static, ()> {
                Box::pin(async move {
                    let $store: &dyn ReplayStore = &*store;
                    $body
                })
            }
        };
    }

    case!(
        /// A proof id is fresh the first time and a replay the second; other ids, and
        /// the same `jti` from another key, are fresh.
        a_proof_id_is_fresh_once, |store, _clock| {
            let expires = T0 + 60_000;
            assert!(insert(store, &key("jkt-a", 1), expires).await);
            assert!(!insert(store, &key("jkt-a", 1), expires).await);
            assert!(!insert(store, &key("jkt-a", 1), expires + 60_000).await);
            assert!(insert(store, &key("jkt-a", 2), expires).await);
            assert!(insert(store, &key("jkt-b", 1), expires).await);
        }
    );

    case!(
        /// An id stays a replay until its expiry, is fresh from then on, and is
        /// remembered again until its new expiry.
        a_replay_until_expiry_then_fresh, |store, clock| {
            let k = key("jkt", 1);
            assert!(insert(store, &k, T0 + 2_000).await);
            clock.set_ms(T0 + 1_999);
            assert!(!insert(store, &k, T0 + 2_000).await);
            clock.set_ms(T0 + 2_000);
            assert!(insert(store, &k, T0 + 5_000).await);
            clock.set_ms(T0 + 4_000);
            assert!(!insert(store, &k, T0 + 5_000).await);
            clock.set_ms(T0 + 5_000);
            assert!(insert(store, &k, T0 + 6_000).await);
        }
    );

    case!(
        /// An id whose expiry has already passed is fresh, every time: it is not
        /// remembered (nothing could replay it in time).
        an_expiry_already_passed_is_fresh, |store, _clock| {
            let k = key("jkt", 1);
            for expires in [T0, T0 - 1, T0 - 60_000, T0] {
                assert!(insert(store, &k, expires).await, "{expires}");
            }
            assert!(insert(store, &k, T0 + 1_000).await);
            assert!(!insert(store, &k, T0 + 1_000).await);
        }
    );

    case!(
        /// A sweep forgets the expired entries, reports how many, and keeps the live
        /// ones.
        sweep_forgets_only_expired_entries, |store, clock| {
            for n in 0..5 {
                assert!(insert(store, &key("jkt", n), T0 + 1_000).await);
            }
            for n in 5..8 {
                assert!(insert(store, &key("jkt", n), T0 + 60_000).await);
            }
            assert_eq!(store.sweep().await, Ok(0));
            clock.set_ms(T0 + 1_000);
            assert_eq!(store.sweep().await, Ok(5));
            assert_eq!(store.sweep().await, Ok(0));
            if let Some(len) = store.approximate_len() {
                assert_eq!(len, 3);
            }
            for n in 5..8 {
                assert!(!insert(store, &key("jkt", n), T0 + 60_000).await, "{n}");
            }
            assert!(insert(store, &key("jkt", 0), T0 + 60_000).await);
        }
    );

    case!(
        /// A full store refuses a new id with `Full` (failing closed) but still knows
        /// every live one; once entries expire it takes new ids again.
        a_full_store_fails_closed_then_recovers, |store, clock| {
            let capacity = u32::try_from(CAPACITY).unwrap();
            for n in 0..capacity {
                assert!(insert(store, &key("jkt", n), T0 + 60_000).await, "{n}");
            }
            let refused = store.insert_once(&key("jkt", capacity), T0 + 60_000).await;
            assert_eq!(refused, Err(ReplayError::Full { capacity: CAPACITY }));
            assert_eq!(refused.unwrap_err().code(), "replay_store_full");
            for n in 0..capacity {
                assert!(!insert(store, &key("jkt", n), T0 + 60_000).await, "{n}");
            }
            clock.advance(Duration::from_secs(60));
            assert!(insert(store, &key("jkt", capacity), T0 + 120_000).await);
            assert!(!insert(store, &key("jkt", capacity), T0 + 120_000).await);
        }
    );

    /// Of many concurrent inserts of one id, exactly one is fresh.
    pub fn concurrent_inserts_of_one_id_succeed_once(
        store: Arc<dyn ReplayStore>,
        _clock: ManualClock,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            for round in 0..8 {
                let barrier = Arc::new(tokio::sync::Barrier::new(16));
                let mut tasks = Vec::new();
                for _ in 0..16 {
                    let barrier = Arc::clone(&barrier);
                    let store = Arc::clone(&store);
                    tasks.push(tokio::spawn(async move {
                        barrier.wait().await;
                        store
                            .insert_once(&key("jkt", round), T0 + 60_000)
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
        })
    }
}
