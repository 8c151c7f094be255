//! The shared store conformance suites, run on every session store and every replay
//! store keybound ships.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod memory {
    use keybound_server::store::MemoryStore;
    use keybound_server::store::conformance::Fixture;

    mod replay {
        use keybound_server::MemoryReplayStore;
        use keybound_server::store::conformance::replay::{Fixture, Setup};

        keybound_server::replay_store_conformance_tests!(|setup: Setup| async move {
            Fixture::new(MemoryReplayStore::with_capacity(
                setup.clock(),
                setup.capacity(),
            ))
        });
    }

    keybound_server::store_conformance_tests!(|| async { Fixture::new(MemoryStore::new()) });

    mod one_shard {
        use keybound_server::store::MemoryStore;
        use keybound_server::store::conformance::Fixture;

        // A single shard puts every session under one lock and in one sweep batch
        // sequence: the edge case of the sharding.
        keybound_server::store_conformance_tests!(|| async {
            Fixture::new(MemoryStore::with_shards(1))
        });
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use keybound_server::store::SqliteStore;
    use keybound_server::store::conformance::Fixture;

    keybound_server::store_conformance_tests!(|| async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("sessions.db"))
            .await
            .unwrap();
        Fixture::new(store).with_guard(dir)
    });
}

#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

#[cfg(feature = "redis")]
mod redis {
    use keybound_server::store::conformance::Fixture;
    use keybound_server::store::redis::{RedisOptions, RedisStore};

    use super::redis_server;

    // One redis-server for the cases running at the same time, each case under its
    // own key prefix, so they run in parallel like the other stores' cases.
    keybound_server::store_conformance_tests!(|| async {
        let server = redis_server::shared();
        let options = RedisOptions::default().prefix(redis_server::unique_prefix());
        let store = RedisStore::connect_with(&server.url(), options)
            .await
            .unwrap();
        Fixture::new(store).with_guard(server)
    });

    mod replay {
        use keybound_server::store::conformance::replay::{Fixture, Setup};
        use keybound_server::store::redis::{RedisOptions, RedisStore};

        use super::redis_server;

        keybound_server::replay_store_conformance_tests!(|setup: Setup| async move {
            let server = redis_server::shared();
            let options = RedisOptions::default()
                .prefix(redis_server::unique_prefix())
                .replay_capacity(setup.capacity());
            let store = RedisStore::connect_with(&server.url(), options)
                .await
                .unwrap();
            Fixture::new(store.replay_store(setup.clock())).with_guard(server)
        });
    }
}

#[test]
fn run_all_covers_every_case_on_a_shared_store() {
    // Stores shared between cases must still pass: the cases use random ids.
    let shared = keybound_server::store::MemoryStore::new();
    keybound_server::store::conformance::run_all(|| {
        let store = shared.clone();
        async move { keybound_server::store::conformance::Fixture::new(store) }
    });
    assert!(keybound_server::store::conformance::CASES.len() >= 30);
}

#[test]
fn replay_run_all_covers_every_case() {
    use keybound_server::MemoryReplayStore;
    use keybound_server::store::conformance::replay::{CASES, Fixture, Setup, run_all};
    run_all(|setup: Setup| async move {
        Fixture::new(MemoryReplayStore::with_capacity(
            setup.clock(),
            setup.capacity(),
        ))
    });
    assert!(CASES.len() >= 6);
}
