//! The in-memory store: sharded hash maps behind short mutexes. The default store,
//! for tests and for a single process that may forget its sessions on restart.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{
    BindRequest, CreateOutcome, CreateRequest, EndOutcome, EndRequest, EndUserRequest,
    LimitCandidate, ReplaceTokensRequest, RotateOutcome, RotateRequest, RotationDecision,
    SessionRecord, SessionStore, StoreError, SweepAction, SweepBatch, SweepRequest, TouchRequest,
    UpdateOutcome, decide_rotation, sessions_over_limit,
};
use crate::BoxFuture;
use crate::session::{Reason, SessionId, SessionState};

mod index;
mod slot;

use index::{Shard, UserSessions};
use slot::{DBSC_PENDING, Slot};

const DEFAULT_SHARDS: usize = 64;

type SessionShard = Mutex<Shard>;
type UserShard = Mutex<Users>;

/// One shard of the per-user data.
#[derive(Default)]
struct Users {
    /// The ids of each user's stored sessions.
    sessions: HashMap<Arc<str>, UserSessions>,
    /// The fence of each user whose sessions were ended all at once (one small entry
    /// per such user, kept: forgetting it would let a stale login through).
    fences: HashMap<Arc<str>, u64>,
}

impl Users {
    /// The shared key for `user_id`: the one already held, or a new one.
    fn key(&self, user_id: &str) -> Arc<str> {
        self.sessions
            .get_key_value(user_id)
            .map(|(key, _)| key)
            .or_else(|| self.fences.get_key_value(user_id).map(|(key, _)| key))
            .map_or_else(|| Arc::from(user_id), Arc::clone)
    }

    fn ids(&self, user_id: &str) -> Vec<SessionId> {
        self.sessions
            .get(user_id)
            .map(UserSessions::ids)
            .unwrap_or_default()
    }

    fn fence(&self, user_id: &str) -> u64 {
        self.fences.get(user_id).copied().unwrap_or(0)
    }
}

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
/// user; each operation holds one shard's mutex briefly. The operations on a user's
/// sessions as a whole (create, ending them all) hold the user's shard throughout and
/// lock session shards inside it, never the other way round.
/// An active session costs about 400 bytes of memory (see `BENCHMARKS.md`).
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

    /// An empty store with `shards` shards (rounded up to a power of two, 1 to 65 536).
    /// More shards mean less contention and shorter sweep batches per lock.
    pub fn with_shards(shards: usize) -> Self {
        let shards = shards.clamp(1, 1 << 16).next_power_of_two();
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
        lock(self.user_shard(user_id))
            .sessions
            .contains_key(user_id)
    }

    fn session_shard(&self, id: &SessionId) -> &SessionShard {
        let bytes = id.as_bytes();
        let n = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
        &self.inner.sessions[n & (self.inner.sessions.len() - 1)]
    }

    fn user_shard_index(&self, user_id: &str) -> usize {
        let n = self.inner.user_hasher.hash_one(user_id) as usize;
        n & (self.inner.users.len() - 1)
    }

    fn user_shard(&self, user_id: &str) -> &UserShard {
        &self.inner.users[self.user_shard_index(user_id)]
    }

    fn active_delta(&self, delta: i64) {
        self.inner.active.fetch_add(delta, Ordering::Relaxed);
    }

    /// Stores a session. The user's shard stays locked for the whole operation
    /// (session shards are locked inside it, never the other way round), so the fence
    /// check, the limit and the insert are one step with respect to
    /// `end_user_sessions` and the user's other logins.
    fn create_sync(&self, request: &CreateRequest) -> Result<CreateOutcome, StoreError> {
        let record = &request.record;
        let user_id = record.user_id.as_str();
        let user_shard = self.user_shard_index(user_id);
        let mut users = lock(&self.inner.users[user_shard]);
        if request
            .fence
            .is_some_and(|fence| fence != users.fence(user_id))
        {
            return Ok(CreateOutcome::Fenced);
        }
        if lock(self.session_shard(&record.id))
            .get(&record.id)
            .is_some()
        {
            return Err(StoreError::Duplicate);
        }
        let evicted = match request.max_active {
            Some(max) => {
                self.evict_over_limit(&users.ids(user_id), user_id, max, record.created_at)
            }
            None => Vec::new(),
        };
        let key = users.key(user_id);
        let next = match users.sessions.get(user_id) {
            Some(existing) => existing.with(record.id),
            None => UserSessions::One(record.id),
        };
        users.sessions.insert(Arc::clone(&key), next);
        let inserted = lock(self.session_shard(&record.id)).insert(Slot::from_record(
            record,
            key,
            // Shard counts are at most 2^16 (see `with_shards`).
            user_shard as u16,
        ));
        if let Err(e) = inserted {
            Self::unindex_in(&mut users.sessions, user_id, &record.id);
            return Err(e);
        }
        if record.state == SessionState::Active {
            self.active_delta(1);
        }
        Ok(CreateOutcome::Created { evicted })
    }

    /// Revokes the sessions [`sessions_over_limit`] picks among `ids` (the user's,
    /// whose shard the caller holds).
    fn evict_over_limit(
        &self,
        ids: &[SessionId],
        user_id: &str,
        max: usize,
        now: i64,
    ) -> Vec<SessionRecord> {
        let candidates = ids
            .iter()
            .filter_map(|id| {
                let sessions = lock(self.session_shard(id));
                sessions
                    .get(id)
                    .filter(|slot| {
                        &*slot.user == user_id && !slot.is_terminal() && now < slot.deadline()
                    })
                    .map(|slot| LimitCandidate {
                        id: slot.id,
                        last_seen_at: slot.last_seen_at,
                        created_at: slot.created_at,
                    })
            })
            .collect();
        sessions_over_limit(candidates, max)
            .into_iter()
            .filter_map(|id| {
                self.with_slot(id, None, |slot| {
                    slot.finish(SessionState::Revoked, Reason::SESSION_LIMIT, now);
                    (Some(slot.to_record()), -1)
                })
            })
            .collect()
    }

    fn unindex_in(users: &mut HashMap<Arc<str>, UserSessions>, user_id: &str, id: &SessionId) {
        let emptied = users.get_mut(user_id).is_some_and(|s| s.remove(id));
        if emptied {
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
                        record: slot.to_record(),
                        newly_expired: false,
                    },
                    0,
                ),
                RotationDecision::Expire => {
                    slot.expire_if_due(request.now);
                    (
                        RotateOutcome::NotActive {
                            record: slot.to_record(),
                            newly_expired: true,
                        },
                        -1,
                    )
                }
                RotationDecision::Rotate => {
                    let mut record = slot.to_record();
                    record.apply_rotation(request);
                    slot.sync_from(&record);
                    (RotateOutcome::Rotated(record), 0)
                }
                RotationDecision::GraceReplay => (RotateOutcome::GraceReplay(slot.to_record()), 0),
                RotationDecision::Reuse => {
                    slot.finish(SessionState::Revoked, Reason::REFRESH_REUSE, request.now);
                    (RotateOutcome::ReuseDetected(slot.to_record()), -1)
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
        allowed: impl FnOnce(&Slot) -> bool,
        apply: impl FnOnce(&mut SessionRecord),
    ) -> UpdateOutcome {
        self.with_slot(id, UpdateOutcome::NotFound, |slot| {
            if slot.is_terminal() {
                let record = slot.to_record();
                return (
                    UpdateOutcome::NotActive {
                        record,
                        newly_expired: false,
                    },
                    0,
                );
            }
            if slot.expire_if_due(now) {
                let record = slot.to_record();
                return (
                    UpdateOutcome::NotActive {
                        record,
                        newly_expired: true,
                    },
                    -1,
                );
            }
            if !allowed(slot) {
                return (UpdateOutcome::KeyMismatch, 0);
            }
            let mut record = slot.to_record();
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
            if slot.is_terminal() {
                return (EndOutcome::AlreadyEnded(slot.to_record()), 0);
            }
            if slot.expire_if_due(request.now) {
                return (EndOutcome::Expired(slot.to_record()), -1);
            }
            slot.finish(request.state.into(), request.reason.clone(), request.now);
            (EndOutcome::Ended(slot.to_record()), -1)
        })
    }

    fn user_ids(&self, user_id: &str) -> Vec<SessionId> {
        lock(self.user_shard(user_id)).ids(user_id)
    }

    /// Moves the fence and ends the sessions with the user's shard locked, so no
    /// create of the user runs in between.
    fn end_user_sync(&self, request: &EndUserRequest) -> Vec<EndOutcome> {
        let mut users = lock(self.user_shard(&request.user_id));
        let key = users.key(&request.user_id);
        let fence = users.fences.entry(key).or_insert(0);
        *fence = fence.wrapping_add(1);
        let mut changed = Vec::new();
        for id in users.ids(&request.user_id) {
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
                    .map(|slot| slot.to_record())
            })
            .collect()
    }

    fn sweep_sync(&self, request: &SweepRequest) -> SweepBatch {
        let shards = self.inner.sessions.len();
        let mut batch = SweepBatch {
            swept: Vec::with_capacity(request.limit.min(1 << 16)),
            ..SweepBatch::default()
        };
        let mut purged: Vec<(u16, Arc<str>, SessionId)> =
            Vec::with_capacity(request.limit.min(1 << 16));
        let mut budget = request.limit;
        let mut shard = usize::try_from(request.cursor).unwrap_or(shards);
        let mut active_delta = 0i64;
        let mut more = false;
        while shard < shards && budget > 0 {
            {
                let mut sessions = lock(&self.inner.sessions[shard]);
                let (mut removed, mut moved) = (Vec::new(), Vec::new());
                // From the back: purging the last slot is a plain pop, and a slot
                // swapped into a gap has already been looked at.
                let mut pos = sessions.len();
                while pos > 0 {
                    pos -= 1;
                    let Some(slot) = sessions.slots.get_mut(pos) else {
                        break;
                    };
                    let expirable = !slot.is_terminal() && request.now >= slot.deadline();
                    let purgeable = |slot: &Slot| {
                        slot.is_terminal() && slot.ended_at <= request.purge_ended_before
                    };
                    if !expirable && !purgeable(slot) {
                        continue;
                    }
                    if budget == 0 {
                        more = true;
                        break;
                    }
                    budget -= 1;
                    if expirable {
                        slot.expire_if_due(request.now);
                        active_delta -= 1;
                        batch.swept.push(slot.swept(SweepAction::Expired));
                    }
                    if purgeable(slot) {
                        let gone = sessions.slots.swap_remove(pos);
                        if pos < sessions.slots.len() {
                            moved.push(pos);
                        }
                        removed.push(gone.id);
                        batch.swept.push(gone.swept(SweepAction::Purged));
                        purged.push((gone.user_shard, gone.user, gone.id));
                    }
                }
                if !removed.is_empty() {
                    sessions.reindex(&removed, &moved);
                }
            }
            if more {
                break;
            }
            shard += 1;
        }
        if active_delta != 0 {
            self.active_delta(active_delta);
        }
        // One lock per user shard for the whole batch.
        purged.sort_unstable_by_key(|(shard, _, _)| *shard);
        for group in purged.chunk_by(|a, b| a.0 == b.0) {
            let mut users = lock(&self.inner.users[usize::from(group[0].0)]);
            for (_, user, id) in group {
                if let Entry::Occupied(mut entry) = users.sessions.entry(Arc::clone(user)) {
                    if entry.get_mut().remove(id) {
                        entry.remove();
                    }
                }
            }
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
    fn create(&self, request: CreateRequest) -> BoxFuture<'_, Result<CreateOutcome, StoreError>> {
        ready(self.create_sync(&request))
    }

    fn user_fence<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        ready(Ok(lock(self.user_shard(user_id)).fence(user_id)))
    }

    fn load(&self, id: SessionId) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>> {
        let record = lock(self.session_shard(&id))
            .get(&id)
            .map(|slot| slot.to_record());
        ready(Ok(record))
    }

    fn rotate(&self, request: RotateRequest) -> BoxFuture<'_, Result<RotateOutcome, StoreError>> {
        ready(Ok(self.rotate_sync(&request)))
    }

    fn replace_tokens(
        &self,
        request: ReplaceTokensRequest,
    ) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        let jkt = request.jkt;
        let outcome = self.update_sync(
            request.id,
            request.now,
            |slot| jkt.as_bytes() == &slot.jkt,
            |r| r.apply_replacement(&request),
        );
        ready(Ok(outcome))
    }

    fn touch(&self, request: TouchRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        let outcome = self.update_sync(
            request.id,
            request.now,
            |_| true,
            |r| r.apply_touch(&request),
        );
        ready(Ok(outcome))
    }

    fn bind_dbsc(&self, request: BindRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        let outcome = self.update_sync(
            request.id,
            request.now,
            |slot| slot.flags & DBSC_PENDING != 0,
            |r| r.apply_bind(&request),
        );
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
