//! Replay protection: every proof's `jti` is accepted once within the proof's lifetime.
//!
//! The verifier records `replay_key(jkt, jti)` with an expiry (the end of the proof's
//! `iat` window) only after every signature verified, so an attacker cannot fill the
//! store with forged proofs; the proofs that do reach it each cost a valid signature by
//! some key.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use keybound_proto::wire::code;
use sha2::{Digest, Sha256};

use crate::{BoxFuture, Clock};

/// Why the replay store could not answer. The verifier then refuses the request
/// (fails closed) with `replay_store_unavailable` and status `503`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The store holds its maximum number of live entries and none has expired: it will
    /// not forget a live entry (that would let a replay through), so it refuses new ones
    /// until entries expire.
    #[error("the replay store is full")]
    Full {
        /// The store's capacity in entries.
        capacity: usize,
    },
    /// The store's backend is unreachable or failed.
    #[error("the replay store is unreachable")]
    Unavailable {
        /// What went wrong (for logs; never contains request data).
        reason: String,
    },
}

impl ReplayError {
    /// Stable code: `replay_store_full` or `replay_store_unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Full { .. } => code::REPLAY_STORE_FULL,
            Self::Unavailable { .. } => code::REPLAY_STORE_UNAVAILABLE,
        }
    }
}

/// The key under which a proof is remembered: SHA-256 over the proof key's thumbprint
/// and the proof's `jti` (length-prefixed, so no two pairs share a key). Two keys may use
/// the same `jti` without affecting each other.
pub fn replay_key(jkt: &str, jti: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"keybound-replay-v1");
    hash.update((jkt.len() as u64).to_be_bytes());
    hash.update(jkt.as_bytes());
    hash.update(jti.as_bytes());
    hash.finalize().into()
}

/// Remembers proof ids until they expire. Object safe: held as `Arc<dyn ReplayStore>`.
///
/// Implementations must make [`insert_once`](Self::insert_once) atomic: of two
/// concurrent calls with the same key, exactly one sees `true`.
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `key` until `expires_at_ms` (milliseconds since the epoch). Returns
    /// `Ok(true)` when the key was not live (the proof is fresh), `Ok(false)` when it was
    /// (a replay). A key whose expiry has already passed is fresh and need not be stored.
    fn insert_once<'a>(
        &'a self,
        key: &'a [u8; 32],
        expires_at_ms: i64,
    ) -> BoxFuture<'a, Result<bool, ReplayError>>;

    /// Forgets expired entries now; returns how many were removed.
    fn sweep(&self) -> BoxFuture<'_, Result<usize, ReplayError>>;

    /// The number of entries held, when the store can tell cheaply (for the
    /// `keybound_replay_entries` gauge); `None` otherwise.
    fn approximate_len(&self) -> Option<usize>;
}

/// Number of shards: a power of two, enough that two cores rarely contend.
const SHARDS: usize = 16;

/// How often, at most, a shard sweeps itself on insert, in seconds.
const SWEEP_INTERVAL_SECS: u32 = 1;

/// The built-in replay store: in memory, sharded, expiry by the injected clock, with a
/// hard cap on live entries.
///
/// * Each entry is 20 bytes of table space (the first 16 bytes of the key and the expiry
///   as whole seconds, rounded up so an entry is never forgotten early): 600,000 live
///   entries take about 23 MiB (see `BENCHMARKS.md`).
/// * Expired entries are removed incrementally: a shard sweeps itself, at most once a
///   second, when an insert finds that its earliest expiry has passed, and
///   [`sweep`](ReplayStore::sweep) sweeps every shard (for a background task).
/// * **Bounded under flood, failing closed.** When the store holds `capacity` live
///   entries, an insert first evicts expired entries; if none has expired it returns
///   [`ReplayError::Full`] and the request is refused with `503`. It never forgets a
///   live entry to make room, because that would let a recorded proof be replayed. Since
///   only proofs with valid signatures are recorded, and each lives for at most twice
///   the allowed clock skew, a store sized for the peak legitimate request rate times
///   that window does not fill up.
///
/// Entries are not shared between processes: with several nodes, use a shared store.
///
/// ```
/// use std::sync::Arc;
/// use keybound_server::{ManualClock, MemoryReplayStore, ReplayStore, replay_key};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let clock = ManualClock::new(1_700_000_000_000);
/// let store = MemoryReplayStore::new(Arc::new(clock.clone()));
/// let key = replay_key("jkt", "jti-1234567890abcdef");
/// assert!(store.insert_once(&key, 1_700_000_120_000).await.unwrap());
/// assert!(!store.insert_once(&key, 1_700_000_120_000).await.unwrap());
/// # });
/// ```
pub struct MemoryReplayStore {
    shards: Box<[Mutex<Shard>]>,
    len: AtomicUsize,
    capacity: usize,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

struct Shard {
    /// First 16 bytes of the key → expiry in whole seconds since the epoch (rounded up).
    /// 128 bits of SHA-256 output are collision-free in practice; a collision would only
    /// refuse a fresh proof, never accept a replay.
    map: HashMap<[u8; 16], u32, RandomState>,
    /// A lower bound of the expiries in `map` (exact after a sweep); `u32::MAX` if empty.
    earliest: u32,
    /// When this shard last swept itself, in seconds.
    last_sweep: u32,
}

impl Shard {
    /// Removes expired entries; returns how many.
    fn sweep(&mut self, now_s: u32) -> usize {
        if now_s < self.earliest {
            return 0;
        }
        let before = self.map.len();
        let mut earliest = u32::MAX;
        self.map.retain(|_, exp| {
            let live = *exp > now_s;
            if live {
                earliest = earliest.min(*exp);
            }
            live
        });
        self.earliest = earliest;
        self.last_sweep = now_s;
        let len = self.map.len();
        // Give memory back after a flood has drained.
        if self.map.capacity() > 4 * len.max(1024) {
            self.map.shrink_to(2 * len);
        }
        before - len
    }
}

impl MemoryReplayStore {
    /// The default capacity: one million live entries (about 45 MiB at most).
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    /// A store with [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_capacity(clock, Self::DEFAULT_CAPACITY)
    }

    /// A store that holds at most `capacity` live entries (at least 1).
    pub fn with_capacity(clock: Arc<dyn Clock>, capacity: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::with_hasher(RandomState::new()),
                    earliest: u32::MAX,
                    last_sweep: 0,
                })
            })
            .collect();
        Self {
            shards,
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
            clock,
        }
    }

    /// The number of entries held (live, or expired and not yet swept).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the store holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The maximum number of live entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The synchronous core of [`ReplayStore::insert_once`].
    pub fn insert_once_now(&self, key: &[u8; 32], expires_at_ms: i64) -> Result<bool, ReplayError> {
        let now_s = secs_floor(self.clock.now_ms());
        let exp_s = secs_ceil(expires_at_ms);
        if exp_s <= now_s {
            return Ok(true);
        }
        let short = short_key(key);
        let index = usize::from(key[16]) % SHARDS;
        let mut shard = self.lock(index);
        if shard.earliest <= now_s && now_s >= shard.last_sweep.saturating_add(SWEEP_INTERVAL_SECS)
        {
            let removed = shard.sweep(now_s);
            self.len.fetch_sub(removed, Ordering::Relaxed);
        }
        match insert_in(&mut shard, short, exp_s, now_s, || self.reserve()) {
            Inserted::Fresh => return Ok(true),
            Inserted::Replay => return Ok(false),
            Inserted::NoRoom => {}
        }
        // Full: evict expired entries here, then everywhere, before refusing.
        let removed = shard.sweep(now_s);
        self.len.fetch_sub(removed, Ordering::Relaxed);
        if removed == 0 {
            drop(shard);
            self.sweep_at(now_s);
            shard = self.lock(index);
        }
        match insert_in(&mut shard, short, exp_s, now_s, || self.reserve()) {
            Inserted::Fresh => Ok(true),
            Inserted::Replay => Ok(false),
            Inserted::NoRoom => Err(ReplayError::Full {
                capacity: self.capacity,
            }),
        }
    }

    /// Sweeps every shard whose earliest expiry has passed; returns how many entries
    /// were removed.
    fn sweep_at(&self, now_s: u32) -> usize {
        let mut removed = 0;
        for index in 0..SHARDS {
            removed += self.lock(index).sweep(now_s);
        }
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Takes one slot of the global capacity.
    fn reserve(&self) -> bool {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    fn lock(&self, index: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding the lock cannot leave a shard inconsistent (every
        // mutation is a single map operation), so a poisoned lock is still usable.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

enum Inserted {
    Fresh,
    Replay,
    NoRoom,
}

/// Inserts into one shard: a live duplicate is a replay, an expired one is renewed in
/// place, a new key needs a slot from `reserve`.
fn insert_in(
    shard: &mut Shard,
    key: [u8; 16],
    exp_s: u32,
    now_s: u32,
    reserve: impl FnOnce() -> bool,
) -> Inserted {
    match shard.map.entry(key) {
        Entry::Occupied(mut entry) => {
            if *entry.get() > now_s {
                return Inserted::Replay;
            }
            entry.insert(exp_s);
        }
        Entry::Vacant(entry) => {
            if !reserve() {
                return Inserted::NoRoom;
            }
            entry.insert(exp_s);
        }
    }
    shard.earliest = shard.earliest.min(exp_s);
    Inserted::Fresh
}

fn short_key(key: &[u8; 32]) -> [u8; 16] {
    let mut short = [0u8; 16];
    short.copy_from_slice(&key[..16]);
    short
}

/// Whole seconds since the epoch, rounded down, clamped to `u32`.
fn secs_floor(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000).max(0)).unwrap_or(u32::MAX)
}

/// Whole seconds since the epoch, rounded up, clamped to `u32`.
fn secs_ceil(ms: i64) -> u32 {
    let secs = ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0);
    u32::try_from(secs.max(0)).unwrap_or(u32::MAX)
}

impl ReplayStore for MemoryReplayStore {
    fn insert_once<'a>(
        &'a self,
        key: &'a [u8; 32],
        expires_at_ms: i64,
    ) -> BoxFuture<'a, Result<bool, ReplayError>> {
        Box::pin(std::future::ready(self.insert_once_now(key, expires_at_ms)))
    }

    fn sweep(&self) -> BoxFuture<'_, Result<usize, ReplayError>> {
        let now_s = secs_floor(self.clock.now_ms());
        Box::pin(std::future::ready(Ok(self.sweep_at(now_s))))
    }

    fn approximate_len(&self) -> Option<usize> {
        Some(self.len())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ManualClock;

    const T0: i64 = 1_700_000_000_000;

    fn store(capacity: usize) -> (ManualClock, MemoryReplayStore) {
        let clock = ManualClock::new(T0);
        let store = MemoryReplayStore::with_capacity(Arc::new(clock.clone()), capacity);
        (clock, store)
    }

    fn key(i: u32) -> [u8; 32] {
        replay_key("jkt", &format!("jti-{i:016}"))
    }

    #[test]
    fn second_insert_is_a_replay_until_expiry() {
        let (clock, store) = store(10);
        let k = key(1);
        assert_eq!(store.insert_once_now(&k, T0 + 2_500), Ok(true));
        assert_eq!(store.insert_once_now(&k, T0 + 2_500), Ok(false));
        clock.advance(Duration::from_millis(2_499));
        assert_eq!(store.insert_once_now(&k, T0 + 2_500), Ok(false));
        // Rounded up to whole seconds: still remembered at T0 + 2.5 s.
        clock.set_ms(T0 + 2_500);
        assert_eq!(store.insert_once_now(&k, T0 + 10_000), Ok(false));
        clock.set_ms(T0 + 10_000);
        assert_eq!(store.insert_once_now(&k, T0 + 20_000), Ok(true));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn already_expired_keys_are_not_stored() {
        let (_clock, store) = store(10);
        assert_eq!(store.insert_once_now(&key(1), T0), Ok(true));
        assert_eq!(store.insert_once_now(&key(1), T0 - 5_000), Ok(true));
        assert!(store.is_empty());
    }

    #[test]
    fn full_store_fails_closed_then_recovers_after_expiry() {
        let (clock, store) = store(100);
        for i in 0..100 {
            assert_eq!(store.insert_once_now(&key(i), T0 + 60_000), Ok(true));
        }
        assert_eq!(
            store.insert_once_now(&key(100), T0 + 60_000),
            Err(ReplayError::Full { capacity: 100 })
        );
        // Live entries were not forgotten.
        assert_eq!(store.insert_once_now(&key(5), T0 + 60_000), Ok(false));
        clock.advance(Duration::from_secs(60));
        assert_eq!(store.insert_once_now(&key(100), T0 + 120_000), Ok(true));
        // The inserting shard swept itself; the others keep their expired entries
        // until they are touched or swept.
        assert!(store.len() < 100);
        store.sweep_at(secs_floor(T0 + 60_000));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn full_store_evicts_expired_entries_of_other_shards() {
        let (clock, store) = store(64);
        for i in 0..32 {
            store.insert_once_now(&key(i), T0 + 1_000).unwrap();
        }
        for i in 32..64 {
            store.insert_once_now(&key(i), T0 + 60_000).unwrap();
        }
        clock.advance(Duration::from_secs(2));
        for i in 64..96 {
            assert_eq!(store.insert_once_now(&key(i), T0 + 60_000), Ok(true), "{i}");
        }
        assert_eq!(store.len(), 64);
        assert!(store.insert_once_now(&key(96), T0 + 60_000).is_err());
    }

    #[tokio::test]
    async fn sweep_removes_expired_entries() {
        let (clock, store) = store(1_000);
        for i in 0..500 {
            store.insert_once_now(&key(i), T0 + 1_000).unwrap();
        }
        for i in 500..600 {
            store.insert_once_now(&key(i), T0 + 5_000).unwrap();
        }
        assert_eq!(store.sweep().await, Ok(0));
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.sweep().await, Ok(500));
        assert_eq!(store.approximate_len(), Some(100));
    }

    #[test]
    fn concurrent_inserts_of_one_key_succeed_once() {
        let (_clock, store) = store(1_000);
        let store = Arc::new(store);
        for round in 0..50 {
            let k = key(round);
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let store = store.clone();
                    std::thread::spawn(move || store.insert_once_now(&k, T0 + 60_000).unwrap())
                })
                .collect();
            let fresh = threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|fresh| *fresh)
                .count();
            assert_eq!(fresh, 1, "round {round}");
        }
    }

    proptest::proptest! {
        /// The store answers like a plain map of key to expiry (rounded up to whole
        /// seconds), whatever the order of inserts and clock moves.
        #[test]
        fn behaves_like_a_map_with_expiry(
            ops in proptest::collection::vec((0u32..12, 1i64..5_000, 0u64..1_500), 1..200)
        ) {
            let (clock, store) = store(10_000);
            let mut model: std::collections::HashMap<u32, i64> = Default::default();
            for (k, ttl_ms, advance_ms) in ops {
                clock.advance(Duration::from_millis(advance_ms));
                let now = clock_now(&clock);
                let expires = now + ttl_ms;
                let live = model.get(&k).is_some_and(|exp_s| *exp_s * 1000 > now);
                let got = store.insert_once_now(&key(k), expires).unwrap();
                proptest::prop_assert_eq!(got, !live);
                if !live {
                    model.insert(k, i64::from(secs_ceil(expires)));
                }
            }
        }
    }

    fn clock_now(clock: &ManualClock) -> i64 {
        use crate::Clock;
        clock.now_ms()
    }

    #[test]
    fn replay_keys_separate_jkt_and_jti() {
        assert_ne!(replay_key("ab", "c"), replay_key("a", "bc"));
        assert_ne!(replay_key("k1", "jti"), replay_key("k2", "jti"));
    }

    #[test]
    fn rounding() {
        assert_eq!(secs_ceil(1_000), 1);
        assert_eq!(secs_ceil(1_001), 2);
        assert_eq!(secs_floor(1_999), 1);
        assert_eq!(secs_ceil(-5), 0);
        assert_eq!(secs_ceil(i64::MAX), u32::MAX);
    }
}
