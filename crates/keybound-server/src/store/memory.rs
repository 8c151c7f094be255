//! The in-memory store: sharded hash maps behind short mutexes. The default store,
//! for tests and for a single process that may forget its sessions on restart.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{
    EndOutcome, EndRequest, EndUserRequest, ReplaceTokensRequest, RotateOutcome, RotateRequest,
    RotationDecision, RotationView, SessionRecord, SessionStore, StoreError, SweepAction,
    SweepBatch, SweepRequest, SweptSession, TouchRequest, UpdateOutcome, decide_rotation,
};
use crate::BoxFuture;
use crate::lifecycle::{Jkt, Reason, SessionId, SessionState, TokenHash};

const DEFAULT_SHARDS: usize = 64;

const HAS_PREVIOUS: u8 = 1;
const HAS_GRACE: u8 = 2;
const HAS_USER_AGENT: u8 = 4;

/// A session kept compactly: fixed-size arrays instead of optional hashes, the user
/// id shared with the user index, and the rarely present end details boxed, so an
/// active session costs about 200 bytes plus its map slot.
struct Slot {
    user: Arc<str>,
    device_label: Option<Box<str>>,
    end: Option<Box<Ended>>,
    jkt: [u8; 32],
    current: [u8; 32],
    previous: [u8; 32],
    created_at: i64,
    last_seen_at: i64,
    idle_expires_at: i64,
    absolute_expires_at: i64,
    grace_until: i64,
    generation: u64,
    user_agent_hash: [u8; 8],
    flags: u8,
}

struct Ended {
    state: SessionState,
    reason: Reason,
    at: i64,
}

impl Slot {
    fn from_record(record: &SessionRecord, user: Arc<str>) -> Self {
        let mut slot = Self {
            user,
            device_label: record.device_label.as_deref().map(Box::from),
            end: None,
            jkt: *record.jkt.as_bytes(),
            current: [0; 32],
            previous: [0; 32],
            created_at: record.created_at,
            last_seen_at: 0,
            idle_expires_at: 0,
            absolute_expires_at: 0,
            grace_until: 0,
            generation: 0,
            user_agent_hash: record.user_agent_hash.unwrap_or_default(),
            flags: if record.user_agent_hash.is_some() {
                HAS_USER_AGENT
            } else {
                0
            },
        };
        slot.sync_from(record);
        slot
    }

    /// Copies every field an operation may change.
    fn sync_from(&mut self, record: &SessionRecord) {
        self.current = *record.current_hash.as_bytes();
        self.previous = record
            .previous_hash
            .map(|h| *h.as_bytes())
            .unwrap_or_default();
        self.last_seen_at = record.last_seen_at;
        self.idle_expires_at = record.idle_expires_at;
        self.absolute_expires_at = record.absolute_expires_at;
        self.grace_until = record.grace_until.unwrap_or_default();
        self.generation = record.generation;
        self.flags &= HAS_USER_AGENT;
        if record.previous_hash.is_some() {
            self.flags |= HAS_PREVIOUS;
        }
        if record.grace_until.is_some() {
            self.flags |= HAS_GRACE;
        }
        self.end = match (record.state.is_terminal(), &record.reason, record.ended_at) {
            (true, Some(reason), Some(at)) => Some(Box::new(Ended {
                state: record.state,
                reason: reason.clone(),
                at,
            })),
            (true, _, _) => Some(Box::new(Ended {
                state: record.state,
                reason: Reason::RETENTION,
                at: record.last_seen_at,
            })),
            (false, _, _) => None,
        };
    }

    fn state(&self) -> SessionState {
        self.end.as_ref().map_or(SessionState::Active, |e| e.state)
    }

    fn deadline(&self) -> i64 {
        self.idle_expires_at.min(self.absolute_expires_at)
    }

    fn previous(&self) -> Option<TokenHash> {
        (self.flags & HAS_PREVIOUS != 0).then(|| TokenHash::from_bytes(self.previous))
    }

    fn grace_until(&self) -> Option<i64> {
        (self.flags & HAS_GRACE != 0).then_some(self.grace_until)
    }

    fn view(&self) -> RotationView {
        RotationView {
            state: self.state(),
            idle_expires_at: self.idle_expires_at,
            absolute_expires_at: self.absolute_expires_at,
            generation: self.generation,
            current_hash: TokenHash::from_bytes(self.current),
            previous_hash: self.previous(),
            grace_until: self.grace_until(),
            jkt: Jkt::from_bytes(self.jkt),
        }
    }

    fn to_record(&self, id: SessionId) -> SessionRecord {
        SessionRecord {
            id,
            user_id: self.user.to_string(),
            jkt: Jkt::from_bytes(self.jkt),
            device_label: self.device_label.as_deref().map(str::to_owned),
            user_agent_hash: (self.flags & HAS_USER_AGENT != 0).then_some(self.user_agent_hash),
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            idle_expires_at: self.idle_expires_at,
            absolute_expires_at: self.absolute_expires_at,
            generation: self.generation,
            current_hash: TokenHash::from_bytes(self.current),
            previous_hash: self.previous(),
            grace_until: self.grace_until(),
            state: self.state(),
            reason: self.end.as_ref().map(|e| e.reason.clone()),
            ended_at: self.end.as_ref().map(|e| e.at),
        }
    }

    /// Makes a passed deadline durable; returns whether it did.
    fn expire_if_due(&mut self, now: i64) -> bool {
        if self.end.is_some() || now < self.deadline() {
            return false;
        }
        self.end = Some(Box::new(Ended {
            state: SessionState::Expired,
            reason: Reason::for_expiry(self.idle_expires_at, self.absolute_expires_at),
            at: self.deadline(),
        }));
        true
    }

    fn finish(&mut self, state: SessionState, reason: Reason, at: i64) {
        self.end = Some(Box::new(Ended { state, reason, at }));
    }

    fn swept(&self, action: SweepAction, id: SessionId) -> SweptSession {
        SweptSession {
            action,
            id,
            user_id: self.user.to_string(),
            jkt: Jkt::from_bytes(self.jkt),
            generation: self.generation,
            reason: match action {
                SweepAction::Purged => Reason::RETENTION,
                SweepAction::Expired => self
                    .end
                    .as_ref()
                    .map_or(Reason::IDLE_TIMEOUT, |e| e.reason.clone()),
            },
        }
    }
}

type SessionShard = Mutex<HashMap<SessionId, Slot>>;
type UserShard = Mutex<HashMap<Arc<str>, Vec<SessionId>>>;

struct Inner {
    sessions: Box<[SessionShard]>,
    users: Box<[UserShard]>,
    user_hasher: RandomState,
    active: AtomicI64,
}

/// The in-memory [`SessionStore`]: the default, for tests and single-process
/// services that may lose their sessions on restart. Cheap to clone (clones share
/// the same sessions).
///
/// Sessions live in sharded hash maps (by session id) with a second sharded index by
/// user; each operation holds one shard's mutex briefly and never two locks at once.
/// An active session costs roughly 400 bytes (see `BENCHMARKS.md`).
///
/// ```
/// use keybound_server::store::{MemoryStore, SessionStore};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// assert_eq!(store.count_active().await.unwrap(), 0);
/// # });
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.inner.sessions.len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Operations never leave a map half-updated across a panic point, so the data
    // behind a poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    /// An empty store with 64 shards.
    pub fn new() -> Self {
        Self::with_shards(DEFAULT_SHARDS)
    }

    /// An empty store with `shards` shards (rounded up to a power of two, at least 1).
    /// More shards mean less contention and shorter sweep batches per lock.
    pub fn with_shards(shards: usize) -> Self {
        let shards = shards.max(1).next_power_of_two();
        Self {
            inner: Arc::new(Inner {
                sessions: (0..shards).map(|_| Mutex::default()).collect(),
                users: (0..shards).map(|_| Mutex::default()).collect(),
                user_hasher: RandomState::new(),
                active: AtomicI64::new(0),
            }),
        }
    }

    /// How many sessions are stored, in any state.
    pub fn len(&self) -> usize {
        self.inner.sessions.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether no session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the user index still mentions `user_id` (a purged user leaves nothing).
    pub fn knows_user(&self, user_id: &str) -> bool {
        lock(self.user_shard(user_id)).contains_key(user_id)
    }

    fn session_shard(&self, id: &SessionId) -> &SessionShard {
        let bytes = id.as_bytes();
        let n = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
        &self.inner.sessions[n & (self.inner.sessions.len() - 1)]
    }

    fn user_shard(&self, user_id: &str) -> &UserShard {
        let n = self.inner.user_hasher.hash_one(user_id) as usize;
        &self.inner.users[n & (self.inner.users.len() - 1)]
    }

    fn active_delta(&self, delta: i64) {
        self.inner.active.fetch_add(delta, Ordering::Relaxed);
    }

    fn create_sync(&self, record: &SessionRecord) -> Result<(), StoreError> {
        // Index first, record second: a concurrent `end_user_sessions` that misses the
        // new session also ran before it became visible.
        let user = {
            let mut users = lock(self.user_shard(&record.user_id));
            let key = match users.get_key_value(record.user_id.as_str()) {
                Some((key, _)) => Arc::clone(key),
                None => Arc::from(record.user_id.as_str()),
            };
            users.entry(Arc::clone(&key)).or_default().push(record.id);
            key
        };
        let inserted = {
            let mut sessions = lock(self.session_shard(&record.id));
            match sessions.entry(record.id) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(Slot::from_record(record, user));
                    true
                }
            }
        };
        if !inserted {
            self.unindex(&record.user_id, &[record.id]);
            return Err(StoreError::Duplicate);
        }
        if record.state == SessionState::Active {
            self.active_delta(1);
        }
        Ok(())
    }

    /// Removes one index entry per id from the user's list.
    fn unindex(&self, user_id: &str, ids: &[SessionId]) {
        let mut users = lock(self.user_shard(user_id));
        let now_empty = match users.get_mut(user_id) {
            Some(list) => {
                for id in ids {
                    if let Some(pos) = list.iter().position(|x| x == id) {
                        list.swap_remove(pos);
                    }
                }
                list.is_empty()
            }
            None => false,
        };
        if now_empty {
            users.remove(user_id);
        }
    }

    fn with_slot<T>(&self, id: SessionId, missing: T, op: impl FnOnce(&mut Slot) -> (T, i64)) -> T {
        let (result, delta) = {
            let mut sessions = lock(self.session_shard(&id));
            match sessions.get_mut(&id) {
                Some(slot) => op(slot),
                None => (missing, 0),
            }
        };
        if delta != 0 {
            self.active_delta(delta);
        }
        result
    }

    fn rotate_sync(&self, request: &RotateRequest) -> RotateOutcome {
        let id = request.id;
        self.with_slot(id, RotateOutcome::Unknown, |slot| {
            match decide_rotation(&slot.view(), request) {
                RotationDecision::NotActive => (
                    RotateOutcome::NotActive {
                        record: slot.to_record(id),
                        newly_expired: false,
                    },
                    0,
                ),
                RotationDecision::Expire => {
                    slot.expire_if_due(request.now);
                    (
                        RotateOutcome::NotActive {
                            record: slot.to_record(id),
                            newly_expired: true,
                        },
                        -1,
                    )
                }
                RotationDecision::Rotate => {
                    let mut record = slot.to_record(id);
                    record.apply_rotation(request);
                    slot.sync_from(&record);
                    (RotateOutcome::Rotated(record), 0)
                }
                RotationDecision::GraceReplay => {
                    (RotateOutcome::GraceReplay(slot.to_record(id)), 0)
                }
                RotationDecision::Reuse => {
                    slot.finish(SessionState::Revoked, Reason::REFRESH_REUSE, request.now);
                    (RotateOutcome::ReuseDetected(slot.to_record(id)), -1)
                }
                RotationDecision::KeyMismatch => (RotateOutcome::KeyMismatch, 0),
                RotationDecision::Unknown => (RotateOutcome::Unknown, 0),
            }
        })
    }

    fn update_sync(
        &self,
        id: SessionId,
        now: i64,
        jkt: Option<Jkt>,
        apply: impl FnOnce(&mut SessionRecord),
    ) -> UpdateOutcome {
        self.with_slot(id, UpdateOutcome::NotFound, |slot| {
            if slot.state().is_terminal() {
                let record = slot.to_record(id);
                return (
                    UpdateOutcome::NotActive {
                        record,
                        newly_expired: false,
                    },
                    0,
                );
            }
            if slot.expire_if_due(now) {
                let record = slot.to_record(id);
                return (
                    UpdateOutcome::NotActive {
                        record,
                        newly_expired: true,
                    },
                    -1,
                );
            }
            if jkt.is_some_and(|jkt| jkt.as_bytes() != &slot.jkt) {
                return (UpdateOutcome::KeyMismatch, 0);
            }
            let mut record = slot.to_record(id);
            apply(&mut record);
            slot.sync_from(&record);
            (UpdateOutcome::Updated(record), 0)
        })
    }

    fn end_sync(&self, request: &EndRequest) -> EndOutcome {
        let id = request.id;
        self.with_slot(id, EndOutcome::NotFound, |slot| {
            if request.owner.as_deref().is_some_and(|o| o != &*slot.user) {
                return (EndOutcome::NotOwner, 0);
            }
            if slot.state().is_terminal() {
                return (EndOutcome::AlreadyEnded(slot.to_record(id)), 0);
            }
            if slot.expire_if_due(request.now) {
                return (EndOutcome::Expired(slot.to_record(id)), -1);
            }
            slot.finish(request.state.into(), request.reason.clone(), request.now);
            (EndOutcome::Ended(slot.to_record(id)), -1)
        })
    }

    fn user_ids(&self, user_id: &str) -> Vec<SessionId> {
        lock(self.user_shard(user_id))
            .get(user_id)
            .cloned()
            .unwrap_or_default()
    }

    fn end_user_sync(&self, request: &EndUserRequest) -> Vec<EndOutcome> {
        let mut changed = Vec::new();
        for id in self.user_ids(&request.user_id) {
            if Some(id) == request.except {
                continue;
            }
            let outcome = self.end_sync(&EndRequest {
                id,
                owner: Some(request.user_id.clone()),
                state: request.state,
                reason: request.reason.clone(),
                now: request.now,
            });
            if matches!(outcome, EndOutcome::Ended(_) | EndOutcome::Expired(_)) {
                changed.push(outcome);
            }
        }
        changed
    }

    fn list_sync(&self, user_id: &str) -> Vec<SessionRecord> {
        self.user_ids(user_id)
            .into_iter()
            .filter_map(|id| {
                let sessions = lock(self.session_shard(&id));
                sessions
                    .get(&id)
                    .filter(|slot| &*slot.user == user_id)
                    .map(|slot| slot.to_record(id))
            })
            .collect()
    }

    fn sweep_sync(&self, request: &SweepRequest) -> SweepBatch {
        let shards = self.inner.sessions.len();
        let mut batch = SweepBatch::default();
        let mut purged: Vec<(Arc<str>, SessionId)> = Vec::new();
        let mut budget = request.limit;
        let mut shard = usize::try_from(request.cursor).unwrap_or(shards);
        let mut active_delta = 0i64;
        let mut more = false;
        while shard < shards && budget > 0 {
            {
                let mut sessions = lock(&self.inner.sessions[shard]);
                sessions.retain(|id, slot| {
                    let expirable = slot.end.is_none() && request.now >= slot.deadline();
                    let purgeable = |slot: &Slot| {
                        slot.end
                            .as_ref()
                            .is_some_and(|e| e.at <= request.purge_ended_before)
                    };
                    if !expirable && !purgeable(slot) {
                        return true;
                    }
                    if budget == 0 {
                        more = true;
                        return true;
                    }
                    budget -= 1;
                    if expirable {
                        slot.expire_if_due(request.now);
                        active_delta -= 1;
                        batch.swept.push(slot.swept(SweepAction::Expired, *id));
                    }
                    if purgeable(slot) {
                        batch.swept.push(slot.swept(SweepAction::Purged, *id));
                        purged.push((Arc::clone(&slot.user), *id));
                        return false;
                    }
                    true
                });
            }
            if more {
                break;
            }
            shard += 1;
        }
        if active_delta != 0 {
            self.active_delta(active_delta);
        }
        purged.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for group in purged.chunk_by(|a, b| a.0 == b.0) {
            let ids: Vec<SessionId> = group.iter().map(|(_, id)| *id).collect();
            self.unindex(&group[0].0, &ids);
        }
        batch.done = shard >= shards;
        batch.cursor = if batch.done { 0 } else { shard as u64 };
        batch
    }
}

fn ready<T: Send + 'static>(value: T) -> BoxFuture<'static, T> {
    Box::pin(std::future::ready(value))
}

impl SessionStore for MemoryStore {
    fn create(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        ready(self.create_sync(&record))
    }

    fn load(&self, id: SessionId) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>> {
        let record = lock(self.session_shard(&id))
            .get(&id)
            .map(|slot| slot.to_record(id));
        ready(Ok(record))
    }

    fn rotate(&self, request: RotateRequest) -> BoxFuture<'_, Result<RotateOutcome, StoreError>> {
        ready(Ok(self.rotate_sync(&request)))
    }

    fn replace_tokens(
        &self,
        request: ReplaceTokensRequest,
    ) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        let outcome = self.update_sync(request.id, request.now, Some(request.jkt), |r| {
            r.apply_replacement(&request);
        });
        ready(Ok(outcome))
    }

    fn touch(&self, request: TouchRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        let outcome = self.update_sync(request.id, request.now, None, |r| r.apply_touch(&request));
        ready(Ok(outcome))
    }

    fn end(&self, request: EndRequest) -> BoxFuture<'_, Result<EndOutcome, StoreError>> {
        ready(Ok(self.end_sync(&request)))
    }

    fn end_user_sessions(
        &self,
        request: EndUserRequest,
    ) -> BoxFuture<'_, Result<Vec<EndOutcome>, StoreError>> {
        ready(Ok(self.end_user_sync(&request)))
    }

    fn list_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
        ready(Ok(self.list_sync(user_id)))
    }

    fn sweep(&self, request: SweepRequest) -> BoxFuture<'_, Result<SweepBatch, StoreError>> {
        ready(Ok(self.sweep_sync(&request)))
    }

    fn count_active(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        let active = self.inner.active.load(Ordering::Relaxed);
        ready(Ok(u64::try_from(active).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_stays_compact() {
        // The budget is 512 bytes per active session including the map slot and
        // the user index; the slot itself must stay well below that.
        assert!(
            std::mem::size_of::<Slot>() <= 216,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }
}
