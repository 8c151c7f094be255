//! The memory store's maps: a shard of slots found by session id, and the per-user
//! list of session ids.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::slot::Slot;
use crate::session::SessionId;
use crate::store::StoreError;

/// One shard of sessions: the slots densely in a vector (only used capacity is ever
/// touched, so it costs no more than its length), found through a small id → position
/// map. Removal swaps the last slot into the gap.
#[derive(Default)]
pub(super) struct Shard {
    positions: IdMap<u32>,
    pub(super) slots: Vec<Slot>,
}

impl Shard {
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn get(&self, id: &SessionId) -> Option<&Slot> {
        let pos = *self.positions.get(id)?;
        self.slots.get(pos as usize)
    }

    pub(super) fn get_mut(&mut self, id: &SessionId) -> Option<&mut Slot> {
        let pos = *self.positions.get(id)?;
        self.slots.get_mut(pos as usize)
    }

    /// Inserts unless the id is taken; `false` if it was.
    pub(super) fn insert(&mut self, slot: Slot) -> Result<(), StoreError> {
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
    pub(super) fn shrink_if_sparse(&mut self) {
        let len = self.slots.len();
        if self.slots.capacity() > 4 * len.max(256) {
            self.slots.shrink_to(2 * len);
            self.positions.shrink_to(2 * len);
        }
    }

    /// Brings the position map up to date after slots were swap-removed: `removed`
    /// are the ids gone, `moved` the positions that received another slot. After a
    /// mass purge, rebuilding from the survivors is cheaper than removing each id.
    pub(super) fn reindex(&mut self, removed: &[SessionId], moved: &[usize]) {
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
pub(super) enum UserSessions {
    One(SessionId),
    Two(SessionId, SessionId),
    Many(Box<[SessionId]>),
}

impl UserSessions {
    pub(super) fn ids(&self) -> Vec<SessionId> {
        match self {
            Self::One(a) => vec![*a],
            Self::Two(a, b) => vec![*a, *b],
            Self::Many(ids) => ids.to_vec(),
        }
    }

    pub(super) fn with(&self, id: SessionId) -> Self {
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
    pub(super) fn remove(&mut self, id: &SessionId) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
