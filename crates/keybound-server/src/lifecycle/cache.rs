//! A per-process cache of active sessions for the request path's session check.
//!
//! Correctness rests on one rule: every change made through the service calls
//! [`SessionCache::invalidate`] right after the store changed. A fill that raced with
//! an invalidation is dropped (each shard counts invalidations; a fill started before
//! one does not land). Entries also expire at the session's deadline and after a TTL,
//! which bounds how long a change made by another process goes unseen. Cross-node
//! stores feed their change notifications into `invalidate` as well, and suspend the
//! cache (it then neither answers nor fills) while they cannot receive them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::session::{Jkt, SessionId};

const SHARDS: usize = 16;

/// What the check needs to know about an active session.
#[derive(Clone, Debug)]
pub(crate) struct CachedSession {
    pub(crate) user_id: Box<str>,
    pub(crate) jkt: Jkt,
    /// The session's generation (a DBSC bound cookie must be of it, or of the one
    /// before while `grace_until` lasts).
    pub(crate) generation: u64,
    /// Until when the previous generation is still accepted.
    pub(crate) grace_until: Option<i64>,
    /// Valid while `now < valid_until` (seconds).
    pub(crate) valid_until: i64,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<SessionId, CachedSession>,
    invalidations: u64,
}

/// The sharded cache.
pub(crate) struct SessionCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    ttl_secs: i64,
    suspended: AtomicBool,
}

/// A token for a fill: the shard's invalidation count when the load started.
#[derive(Clone, Copy)]
pub(crate) struct FillTicket(u64);

impl SessionCache {
    pub(crate) fn new(capacity: usize, ttl_secs: i64) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            ttl_secs,
            suspended: AtomicBool::new(false),
        }
    }

    fn shard(&self, id: &SessionId) -> std::sync::MutexGuard<'_, Shard> {
        let i = usize::from(id.as_bytes()[15]) % SHARDS;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, id: &SessionId, now: i64) -> Option<CachedSession> {
        if self.suspended.load(Ordering::Acquire) {
            return None;
        }
        self.shard(id)
            .entries
            .get(id)
            .filter(|e| now < e.valid_until)
            .cloned()
    }

    pub(crate) fn ticket(&self, id: &SessionId) -> FillTicket {
        FillTicket(self.shard(id).invalidations)
    }

    /// Stores an entry unless the shard saw an invalidation since `ticket`.
    pub(crate) fn fill(
        &self,
        id: SessionId,
        mut entry: CachedSession,
        now: i64,
        ticket: FillTicket,
    ) {
        entry.valid_until = entry.valid_until.min(now.saturating_add(self.ttl_secs));
        let mut shard = self.shard(&id);
        // Checked under the shard lock: `suspend` sets the flag before it clears the
        // shards, so a fill either lands before the clear or sees the flag.
        if shard.invalidations != ticket.0 || self.suspended.load(Ordering::Acquire) {
            return;
        }
        if shard.entries.len() >= self.per_shard {
            shard.entries.retain(|_, e| now < e.valid_until);
            if shard.entries.len() >= self.per_shard {
                return;
            }
        }
        shard.entries.insert(id, entry);
    }

    /// Forgets a session at once.
    pub(crate) fn invalidate(&self, id: &SessionId) {
        let mut shard = self.shard(id);
        shard.invalidations = shard.invalidations.wrapping_add(1);
        shard.entries.remove(id);
    }

    /// Forgets every session at once; fills that started before are dropped.
    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.invalidations = shard.invalidations.wrapping_add(1);
            shard.entries.clear();
        }
    }

    /// Stops answering and filling (`true`) or starts again (`false`); either way
    /// everything cached so far is forgotten.
    pub(crate) fn set_suspended(&self, suspended: bool) {
        self.suspended.store(suspended, Ordering::Release);
        self.clear();
    }

    pub(crate) fn is_suspended(&self) -> bool {
        self.suspended.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(valid_until: i64) -> CachedSession {
        CachedSession {
            user_id: "u".into(),
            jkt: Jkt::from_bytes([0; 32]),
            generation: 0,
            grace_until: None,
            valid_until,
        }
    }

    #[test]
    fn a_fill_racing_an_invalidation_is_dropped() {
        let cache = SessionCache::new(100, 60);
        let id = SessionId::from_bytes([1; 16]);
        let ticket = cache.ticket(&id);
        cache.invalidate(&id);
        cache.fill(id, entry(1000), 0, ticket);
        assert!(cache.get(&id, 0).is_none());
        cache.fill(id, entry(1000), 0, cache.ticket(&id));
        assert!(cache.get(&id, 0).is_some());
        cache.invalidate(&id);
        assert!(cache.get(&id, 0).is_none());
    }

    #[test]
    fn clearing_and_suspending_forget_everything() {
        let cache = SessionCache::new(100, 60);
        let a = SessionId::from_bytes([1; 16]);
        let b = SessionId::from_bytes([2; 16]);
        cache.fill(a, entry(1000), 0, cache.ticket(&a));
        let stale_ticket = cache.ticket(&b);
        cache.clear();
        assert!(cache.get(&a, 0).is_none());
        cache.fill(b, entry(1000), 0, stale_ticket);
        assert!(cache.get(&b, 0).is_none());

        cache.fill(a, entry(1000), 0, cache.ticket(&a));
        let ticket = cache.ticket(&b);
        cache.set_suspended(true);
        assert!(cache.is_suspended());
        assert!(cache.get(&a, 0).is_none());
        cache.fill(b, entry(1000), 0, cache.ticket(&b));
        assert!(cache.get(&b, 0).is_none());
        cache.set_suspended(false);
        // A fill that started before the resume does not land either.
        cache.fill(b, entry(1000), 0, ticket);
        assert!(cache.get(&b, 0).is_none());
        cache.fill(b, entry(1000), 0, cache.ticket(&b));
        assert!(cache.get(&b, 0).is_some());
    }

    #[test]
    fn entries_end_at_the_deadline_and_the_ttl() {
        let cache = SessionCache::new(100, 60);
        let id = SessionId::from_bytes([1; 16]);
        cache.fill(id, entry(30), 0, cache.ticket(&id));
        assert!(cache.get(&id, 29).is_some());
        assert!(cache.get(&id, 30).is_none());
        cache.fill(id, entry(1000), 0, cache.ticket(&id));
        assert!(cache.get(&id, 59).is_some());
        assert!(cache.get(&id, 60).is_none());
    }

    #[test]
    fn a_full_cache_makes_room_only_from_stale_entries() {
        let cache = SessionCache::new(SHARDS, 60);
        let a = SessionId::from_bytes([1; 16]);
        let mut b_bytes = [2; 16];
        b_bytes[15] = 1;
        let b = SessionId::from_bytes(b_bytes);
        cache.fill(a, entry(10), 0, cache.ticket(&a));
        cache.fill(b, entry(100), 0, cache.ticket(&b));
        assert!(cache.get(&b, 0).is_none());
        cache.fill(b, entry(100), 20, cache.ticket(&b));
        assert!(cache.get(&b, 20).is_some());
    }
}
