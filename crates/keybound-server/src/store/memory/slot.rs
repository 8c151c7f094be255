//! How the memory store keeps one session: [`Slot`], compact and mostly inline.

use std::sync::Arc;

use crate::session::{Jkt, Reason, SessionId, SessionState, TokenHash};
use crate::store::{RotationView, SessionBinding, SessionRecord, SweepAction, SweptSession};

pub(super) const HAS_PREVIOUS: u8 = 1;
pub(super) const HAS_GRACE: u8 = 2;
pub(super) const HAS_USER_AGENT: u8 = 4;
/// The session waits for its DBSC registration.
pub(super) const DBSC_PENDING: u8 = 8;

/// A session kept compactly: fixed-size arrays instead of optional hashes, flags
/// instead of options, the user id shared with the user index. The end state sits
/// inline so a sweep decides without following a pointer; short device labels are
/// inline too. About 256 bytes.
pub(super) struct Slot {
    pub(super) id: SessionId,
    pub(super) user: Arc<str>,
    device_label: Label,
    /// Set exactly when the session is terminal.
    pub(super) reason: Option<Reason>,
    pub(super) jkt: [u8; 32],
    pub(super) current: [u8; 32],
    pub(super) previous: [u8; 32],
    pub(super) created_at: i64,
    pub(super) last_seen_at: i64,
    pub(super) idle_expires_at: i64,
    pub(super) absolute_expires_at: i64,
    pub(super) grace_until: i64,
    pub(super) ended_at: i64,
    pub(super) generation: u64,
    pub(super) user_agent_hash: [u8; 8],
    pub(super) state: SessionState,
    pub(super) flags: u8,
    /// Which user-index shard lists this session (saves hashing the user id again).
    pub(super) user_shard: u16,
    /// The DBSC key of a session bound by DBSC (see [`DBSC_PENDING`] for the rest),
    /// behind a thin pointer: 8 bytes for the sessions that have none.
    pub(super) dbsc_key: Option<Box<Box<str>>>,
}

impl Slot {
    pub(super) fn from_record(record: &SessionRecord, user: Arc<str>, user_shard: u16) -> Self {
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
    pub(super) fn sync_from(&mut self, record: &SessionRecord) {
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

    pub(super) fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }

    pub(super) fn deadline(&self) -> i64 {
        self.idle_expires_at.min(self.absolute_expires_at)
    }

    pub(super) fn previous(&self) -> Option<TokenHash> {
        (self.flags & HAS_PREVIOUS != 0).then(|| TokenHash::from_bytes(self.previous))
    }

    pub(super) fn grace_until(&self) -> Option<i64> {
        (self.flags & HAS_GRACE != 0).then_some(self.grace_until)
    }

    pub(super) fn view(&self) -> RotationView {
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

    pub(super) fn to_record(&self) -> SessionRecord {
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

    pub(super) fn binding(&self) -> SessionBinding {
        match &self.dbsc_key {
            Some(key) => SessionBinding::Dbsc {
                key: key.to_string(),
            },
            None if self.flags & DBSC_PENDING != 0 => SessionBinding::DbscPending,
            None => SessionBinding::Dpop,
        }
    }

    /// Makes a passed deadline durable; returns whether it did.
    pub(super) fn expire_if_due(&mut self, now: i64) -> bool {
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

    pub(super) fn finish(&mut self, state: SessionState, reason: Reason, at: i64) {
        self.state = state;
        self.reason = Some(reason);
        self.ended_at = at;
    }

    pub(super) fn swept(&self, action: SweepAction) -> SweptSession {
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
    pub(super) fn new(label: Option<&str>) -> Self {
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

    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Self::None => None,
            // Copied from a `str` at a length that is a char boundary.
            Self::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).ok(),
            Self::Heap(text) => Some(text),
        }
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
