//! The in-memory store: sharded hash maps behind short mutexes. The default store,
//! for tests and for a single process that may forget its sessions on restart.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{
    BindRequest, EndOutcome, EndRequest, EndUserRequest, ReplaceTokensRequest, RotateOutcome,
    RotateRequest, RotationDecision, RotationView, SessionBinding, SessionRecord, SessionStore,
    StoreError, SweepAction, SweepBatch, SweepRequest, SweptSession, TouchRequest, UpdateOutcome,
    decide_rotation,
};
use crate::BoxFuture;
use crate::session::{Jkt, Reason, SessionId, SessionState, TokenHash};

const DEFAULT_SHARDS: usize = 64;

const HAS_PREVIOUS: u8 = 1;
const HAS_GRACE: u8 = 2;
const HAS_USER_AGENT: u8 = 4;
/// The session waits for its DBSC registration.
const DBSC_PENDING: u8 = 8;

/// A session kept compactly: fixed-size arrays instead of optional hashes, flags
/// instead of options, the user id shared with the user index. The end state sits
/// inline so a sweep decides without following a pointer; short device labels are
/// inline too. About 256 bytes.
struct Slot {
    id: SessionId,
    user: Arc<str>,
    device_label: Label,
    /// Set exactly when the session is terminal.
    reason: Option<Reason>,
    jkt: [u8; 32],
    current: [u8; 32],
    previous: [u8; 32],
    created_at: i64,
    last_seen_at: i64,
    idle_expires_at: i64,
    absolute_expires_at: i64,
    grace_until: i64,
    ended_at: i64,
    generation: u64,
    user_agent_hash: [u8; 8],
    state: SessionState,
    flags: u8,
    /// Which user-index shard lists this session (saves hashing the user id again).
    user_shard: u16,
    /// The DBSC key of a session bound by DBSC (see [`DBSC_PENDING`] for the rest),
    /// behind a thin pointer: 8 bytes for the sessions that have none.
    dbsc_key: Option<Box<Box<str>>>,
}

impl Slot {
    fn from_record(record: &SessionRecord, user: Arc<str>, user_shard: u16) -> Self {
        let mut slot = Self {
            id: record.id,
            user,
            device_label: Label::new(record.device_label.as_deref()),
            reason: None,
            jkt: *record.jkt.as_bytes(),
            current: [0; 32],
            previous: [0; 32],
            created_at: record.created_at,
            last_seen_at: 0,
            idle_expires_at: 0,
            absolute_expires_at: 0,
            grace_until: 0,
            ended_at: 0,
            generation: 0,
            user_agent_hash: record.user_agent_hash.unwrap_or_default(),
            state: SessionState::Active,
            user_shard,
            dbsc_key: None,
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
        self.jkt = *record.jkt.as_bytes();
        self.dbsc_key = match &record.binding {
            SessionBinding::Dbsc { key } => Some(Box::new(key.as_str().into())),
            SessionBinding::Dpop | SessionBinding::DbscPending => None,
        };
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
        if record.binding == SessionBinding::DbscPending {
            self.flags |= DBSC_PENDING;
        }
        if record.grace_until.is_some() {
            self.flags |= HAS_GRACE;
        }
        self.state = record.state;
        if record.state.is_terminal() {
            self.reason = Some(record.reason.clone().unwrap_or(Reason::RETENTION));
            self.ended_at = record.ended_at.unwrap_or(record.last_seen_at);
        } else {
            self.reason = None;
            self.ended_at = 0;
        }
    }

    fn is_terminal(&self) -> bool {
        self.state.is_terminal()
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
            state: self.state,
            idle_expires_at: self.idle_expires_at,
            absolute_expires_at: self.absolute_expires_at,
            generation: self.generation,
            current_hash: TokenHash::from_bytes(self.current),
            previous_hash: self.previous(),
            grace_until: self.grace_until(),
            jkt: Jkt::from_bytes(self.jkt),
        }
    }

    fn to_record(&self) -> SessionRecord {
        let terminal = self.is_terminal();
        SessionRecord {
            id: self.id,
            user_id: self.user.to_string(),
            jkt: Jkt::from_bytes(self.jkt),
            device_label: self.device_label.as_str().map(str::to_owned),
            user_agent_hash: (self.flags & HAS_USER_AGENT != 0).then_some(self.user_agent_hash),
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            idle_expires_at: self.idle_expires_at,
            absolute_expires_at: self.absolute_expires_at,
            generation: self.generation,
            current_hash: TokenHash::from_bytes(self.current),
            previous_hash: self.previous(),
            grace_until: self.grace_until(),
            state: self.state,
            reason: self.reason.clone(),
            ended_at: terminal.then_some(self.ended_at),
            binding: self.binding(),
        }
    }

    fn binding(&self) -> SessionBinding {
        match &self.dbsc_key {
            Some(key) => SessionBinding::Dbsc {
                key: key.to_string(),
            },
            None if self.flags & DBSC_PENDING != 0 => SessionBinding::DbscPending,
            None => SessionBinding::Dpop,
        }
    }

    /// Makes a passed deadline durable; returns whether it did.
    fn expire_if_due(&mut self, now: i64) -> bool {
        if self.is_terminal() || now < self.deadline() {
            return false;
        }
        let reason = Reason::for_expiry(
            self.idle_expires_at,
            self.absolute_expires_at,
            self.dbsc_key.is_none() && self.flags & DBSC_PENDING != 0,
        );
        self.finish(SessionState::Expired, reason, self.deadline());
        true
    }

    fn finish(&mut self, state: SessionState, reason: Reason, at: i64) {
        self.state = state;
        self.reason = Some(reason);
        self.ended_at = at;
    }

    fn swept(&self, action: SweepAction) -> SweptSession {
        SweptSession {
            action,
            id: self.id,
            user_id: Arc::clone(&self.user),
            jkt: Jkt::from_bytes(self.jkt),
            generation: self.generation,
            reason: match action {
                SweepAction::Purged => Reason::RETENTION,
                SweepAction::Expired => self.reason.clone().unwrap_or(Reason::IDLE_TIMEOUT),
            },
        }
    }
}

/// A device label: inline when short (most are, e.g. "Firefox on Linux"), so a
/// session needs no heap allocation of its own and a purge frees nothing for it.
enum Label {
    None,
    Inline { len: u8, bytes: [u8; LABEL_INLINE] },
    Heap(Box<str>),
}

const LABEL_INLINE: usize = 30;

impl Label {
    fn new(label: Option<&str>) -> Self {
        match label {
            None => Self::None,
            Some(text) if text.len() <= LABEL_INLINE => {
                let mut bytes = [0u8; LABEL_INLINE];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                Self::Inline {
                    // At most LABEL_INLINE.
                    len: text.len() as u8,
                    bytes,
                }
            }
            Some(text) => Self::Heap(Box::from(text)),
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Self::None => None,
            // Copied from a `str` at a length that is a char boundary.
            Self::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).ok(),
            Self::Heap(text) => Some(text),
        }
    }
}

/// One shard of sessions: the slots densely in a vector (only used capacity is ever
/// touched, so it costs no more than its length), found through a small id → position
/// map. Removal swaps the last slot into the gap.
#[derive(Default)]
struct Shard {
    positions: IdMap<u32>,
    slots: Vec<Slot>,
}

impl Shard {
    fn len(&self) -> usize {
        self.slots.len()
    }

    fn get(&self, id: &SessionId) -> Option<&Slot> {
        let pos = *self.positions.get(id)?;
        self.slots.get(pos as usize)
    }

    fn get_mut(&mut self, id: &SessionId) -> Option<&mut Slot> {
        let pos = *self.positions.get(id)?;
        self.slots.get_mut(pos as usize)
    }

    /// Inserts unless the id is taken; `false` if it was.
    fn insert(&mut self, slot: Slot) -> Result<(), StoreError> {
        let Ok(pos) = u32::try_from(self.slots.len()) else {
            return Err(StoreError::Unavailable {
                reason: "a memory store shard is full".into(),
            });
        };
        match self.positions.entry(slot.id) {
            Entry::Occupied(_) => Err(StoreError::Duplicate),
            Entry::Vacant(entry) => {
                entry.insert(pos);
                self.slots.push(slot);
                Ok(())
            }
        }
    }

    /// Gives memory back after a mass purge (keeping room to grow again).
    fn shrink_if_sparse(&mut self) {
        let len = self.slots.len();
        if self.slots.capacity() > 4 * len.max(256) {
            self.slots.shrink_to(2 * len);
            self.positions.shrink_to(2 * len);
        }
    }

    /// Brings the position map up to date after slots were swap-removed: `removed`
    /// are the ids gone, `moved` the positions that received another slot. After a
    /// mass purge, rebuilding from the survivors is cheaper than removing each id.
    fn reindex(&mut self, removed: &[SessionId], moved: &[usize]) {
        if removed.len() > self.slots.len() {
            self.positions.clear();
            for (pos, slot) in self.slots.iter().enumerate() {
                // Positions fit in u32 (see `insert`).
                self.positions.insert(slot.id, pos as u32);
            }
        } else {
            for id in removed {
                self.positions.remove(id);
            }
            for &pos in moved {
                if let Some(slot) = self.slots.get(pos) {
                    self.positions.insert(slot.id, pos as u32);
                }
            }
        }
        self.shrink_if_sparse();
    }
}

/// The sessions of one user: up to two inline (most users have one or two devices),
/// more boxed.
enum UserSessions {
    One(SessionId),
    Two(SessionId, SessionId),
    Many(Box<[SessionId]>),
}

impl UserSessions {
    fn ids(&self) -> Vec<SessionId> {
        match self {
            Self::One(a) => vec![*a],
            Self::Two(a, b) => vec![*a, *b],
            Self::Many(ids) => ids.to_vec(),
        }
    }

    fn with(&self, id: SessionId) -> Self {
        match self {
            Self::One(a) => Self::Two(*a, id),
            _ => {
                let mut ids = self.ids();
                ids.push(id);
                Self::Many(ids.into_boxed_slice())
            }
        }
    }

    /// Removes one occurrence of `id`; returns whether nothing is left.
    fn remove(&mut self, id: &SessionId) -> bool {
        match self {
            Self::One(a) => a == id,
            Self::Two(a, b) => {
                if a == id {
                    *self = Self::One(*b);
                } else if b == id {
                    *self = Self::One(*a);
                }
                false
            }
            Self::Many(ids) => {
                let Some(pos) = ids.iter().position(|x| x == id) else {
                    return false;
                };
                let mut rest = ids.to_vec();
                rest.remove(pos);
                *self = match *rest {
                    [a, b] => Self::Two(a, b),
                    _ => Self::Many(rest.into_boxed_slice()),
                };
                false
            }
        }
    }
}

/// Hashes session ids, which are 128 uniformly random bits: folding and one
/// multiplication spread them over the whole word (a keyed hash would only cost
/// time here).
#[derive(Clone, Copy, Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(29) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

type IdMap<V> = HashMap<SessionId, V, std::hash::BuildHasherDefault<IdHasher>>;

type SessionShard = Mutex<Shard>;
type UserShard = Mutex<HashMap<Arc<str>, UserSessions>>;

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
        lock(self.user_shard(user_id)).contains_key(user_id)
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

    fn create_sync(&self, record: &SessionRecord) -> Result<(), StoreError> {
        // Index first, record second: a concurrent `end_user_sessions` that misses the
        // new session also ran before it became visible.
        let user_shard = self.user_shard_index(&record.user_id);
        let user = {
            let mut users = lock(&self.inner.users[user_shard]);
            let key = match users.get_key_value(record.user_id.as_str()) {
                Some((key, _)) => Arc::clone(key),
                None => Arc::from(record.user_id.as_str()),
            };
            let next = match users.get(&key) {
                Some(existing) => existing.with(record.id),
                None => UserSessions::One(record.id),
            };
            users.insert(Arc::clone(&key), next);
            key
        };
        let inserted = lock(self.session_shard(&record.id)).insert(Slot::from_record(
            record,
            user,
            // Shard counts are at most 2^16 (see `with_shards`).
            user_shard as u16,
        ));
        if let Err(e) = inserted {
            self.unindex(&record.user_id, &[record.id]);
            return Err(e);
        }
        if record.state == SessionState::Active {
            self.active_delta(1);
        }
        Ok(())
    }

    /// Removes one index entry per id from the user's list.
    fn unindex(&self, user_id: &str, ids: &[SessionId]) {
        let mut users = lock(self.user_shard(user_id));
        for id in ids {
            Self::unindex_in(&mut users, user_id, id);
        }
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
        lock(self.user_shard(user_id))
            .get(user_id)
            .map(UserSessions::ids)
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
                if let Entry::Occupied(mut entry) = users.entry(Arc::clone(user)) {
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
    fn create(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        ready(self.create_sync(&record))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_stays_compact() {
        // The budget is 512 bytes per active session including the map slot and
        // the user index; the slot itself must stay well below that (256 bytes, and
        // one pointer for the DBSC key since sessions have a binding).
        let size = std::mem::size_of::<Slot>();
        assert!(size <= 264, "{size}");
    }

    #[test]
    fn user_sessions_grow_and_shrink() {
        let id = |n: u8| SessionId::from_bytes([n; 16]);
        let mut sessions = UserSessions::One(id(1));
        for n in 2..=4 {
            sessions = sessions.with(id(n));
        }
        assert!(matches!(sessions, UserSessions::Many(_)));
        assert!(!sessions.remove(&id(9)));
        assert!(!sessions.remove(&id(2)));
        assert!(!sessions.remove(&id(4)));
        assert!(matches!(sessions, UserSessions::Two(..)));
        assert_eq!(sessions.ids(), vec![id(1), id(3)]);
        assert!(!sessions.remove(&id(1)));
        assert_eq!(sessions.ids(), vec![id(3)]);
        assert!(sessions.remove(&id(3)));
    }

    #[test]
    fn labels_round_trip_inline_and_on_the_heap() {
        for text in [
            None,
            Some(""),
            Some("Firefox on Linux"),
            Some("é".repeat(15).as_str()),
            Some(&"x".repeat(31)),
            Some(&"ü".repeat(40)),
        ] {
            assert_eq!(Label::new(text).as_str(), text);
        }
        assert!(matches!(
            Label::new(Some(&"x".repeat(30))),
            Label::Inline { .. }
        ));
        assert!(matches!(Label::new(Some(&"x".repeat(31))), Label::Heap(_)));
    }
}
