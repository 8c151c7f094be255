//! How a session is written into its Redis hash and read back, and how the scripts'
//! replies are read.

use keybound_proto::b64;
use redis::Value;

use super::{corrupt, unexpected};
use crate::session::{Jkt, Reason, SessionId, SessionState, TokenHash};
use crate::store::{EndState, SessionBinding, SessionRecord, StoreError, UpdateOutcome};

pub(super) fn state_name(state: SessionState) -> &'static str {
    state.as_str()
}

pub(super) fn parse_state(text: &str) -> Option<SessionState> {
    SessionState::parse(text)
}

/// The record as the field/value pairs of its hash (absent options are left out).
pub(super) fn encode_record(record: &SessionRecord) -> Vec<(&'static str, Vec<u8>)> {
    let mut fields: Vec<(&'static str, Vec<u8>)> = vec![
        ("user", record.user_id.clone().into_bytes()),
        ("jkt", record.jkt.to_string().into_bytes()),
        ("created", record.created_at.to_string().into_bytes()),
        ("seen", record.last_seen_at.to_string().into_bytes()),
        ("idle", record.idle_expires_at.to_string().into_bytes()),
        ("abs", record.absolute_expires_at.to_string().into_bytes()),
        ("gen", record.generation.to_string().into_bytes()),
        (
            "cur",
            b64::encode(record.current_hash.as_bytes()).into_bytes(),
        ),
        ("state", state_name(record.state).as_bytes().to_vec()),
    ];
    if let Some(label) = &record.device_label {
        fields.push(("label", label.clone().into_bytes()));
    }
    if let Some(ua) = &record.user_agent_hash {
        fields.push(("ua", b64::encode(ua).into_bytes()));
    }
    if let Some(prev) = &record.previous_hash {
        fields.push(("prev", b64::encode(prev.as_bytes()).into_bytes()));
    }
    if let Some(grace) = record.grace_until {
        fields.push(("grace", grace.to_string().into_bytes()));
    }
    if let Some(reason) = &record.reason {
        fields.push(("reason", reason.as_str().as_bytes().to_vec()));
    }
    if let Some(ended) = record.ended_at {
        fields.push(("ended", ended.to_string().into_bytes()));
    }
    if record.binding != SessionBinding::Dpop {
        fields.push(("bind", record.binding.to_stored().into_bytes()));
    }
    fields
}

/// The fields of a stored record, by name.
#[derive(Default)]
pub(super) struct Fields {
    id: Option<String>,
    user: Option<String>,
    jkt: Option<String>,
    label: Option<String>,
    ua: Option<String>,
    created: Option<String>,
    seen: Option<String>,
    idle: Option<String>,
    abs: Option<String>,
    generation: Option<String>,
    cur: Option<String>,
    prev: Option<String>,
    grace: Option<String>,
    state: Option<String>,
    reason: Option<String>,
    ended: Option<String>,
    bind: Option<String>,
}

pub(super) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn array(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

impl Fields {
    pub(super) fn from_pairs(pairs: &[Value]) -> Result<Self, StoreError> {
        if pairs.len() % 2 != 0 {
            return Err(corrupt("field list"));
        }
        let mut f = Self::default();
        for pair in pairs.chunks_exact(2) {
            let name = text(&pair[0]).ok_or_else(|| corrupt("field name"))?;
            let value = text(&pair[1]).ok_or_else(|| corrupt(&name))?;
            let slot = match name.as_str() {
                "id" => &mut f.id,
                "user" => &mut f.user,
                "jkt" => &mut f.jkt,
                "label" => &mut f.label,
                "ua" => &mut f.ua,
                "created" => &mut f.created,
                "seen" => &mut f.seen,
                "idle" => &mut f.idle,
                "abs" => &mut f.abs,
                "gen" => &mut f.generation,
                "cur" => &mut f.cur,
                "prev" => &mut f.prev,
                "grace" => &mut f.grace,
                "state" => &mut f.state,
                "reason" => &mut f.reason,
                "ended" => &mut f.ended,
                "bind" => &mut f.bind,
                // Fields a newer keybound may add are ignored.
                _ => continue,
            };
            *slot = Some(value);
        }
        Ok(f)
    }

    pub(super) fn into_record(self, id: Option<SessionId>) -> Result<SessionRecord, StoreError> {
        fn required(value: Option<String>, what: &str) -> Result<String, StoreError> {
            value.ok_or_else(|| corrupt(what))
        }
        fn int(value: Option<String>, what: &str) -> Result<i64, StoreError> {
            required(value, what)?.parse().map_err(|_| corrupt(what))
        }
        fn opt_int(value: Option<String>, what: &str) -> Result<Option<i64>, StoreError> {
            value
                .map(|v| v.parse().map_err(|_| corrupt(what)))
                .transpose()
        }
        fn hash(value: &str, what: &str) -> Result<TokenHash, StoreError> {
            b64::decode_array::<32>(value, "hash")
                .map(TokenHash::from_bytes)
                .map_err(|_| corrupt(what))
        }
        let id = match (id, self.id) {
            (Some(id), _) => id,
            (None, Some(text)) => SessionId::parse(&text).ok_or_else(|| corrupt("id"))?,
            (None, None) => return Err(corrupt("id")),
        };
        let state = parse_state(&required(self.state, "state")?).ok_or_else(|| corrupt("state"))?;
        let reason = self
            .reason
            .map(|r| Reason::new(r).ok_or_else(|| corrupt("reason")))
            .transpose()?;
        let user_agent_hash = self
            .ua
            .map(|ua| b64::decode_array::<8>(&ua, "ua").map_err(|_| corrupt("user agent hash")))
            .transpose()?;
        Ok(SessionRecord {
            id,
            user_id: required(self.user, "user id")?,
            jkt: Jkt::parse(&required(self.jkt, "key thumbprint")?)
                .ok_or_else(|| corrupt("key thumbprint"))?,
            device_label: self.label,
            user_agent_hash,
            created_at: int(self.created, "creation time")?,
            last_seen_at: int(self.seen, "last-seen time")?,
            idle_expires_at: int(self.idle, "idle deadline")?,
            absolute_expires_at: int(self.abs, "absolute deadline")?,
            generation: required(self.generation, "generation")?
                .parse()
                .map_err(|_| corrupt("generation"))?,
            current_hash: hash(&required(self.cur, "current hash")?, "current hash")?,
            previous_hash: self.prev.map(|p| hash(&p, "previous hash")).transpose()?,
            grace_until: opt_int(self.grace, "grace period")?,
            state,
            reason,
            ended_at: opt_int(self.ended, "end time")?,
            binding: match self.bind {
                None => SessionBinding::Dpop,
                Some(text) => {
                    SessionBinding::from_stored(&text).ok_or_else(|| corrupt("binding"))?
                }
            },
        })
    }
}

/// A record the scripts returned (field/value pairs, the id first).
pub(super) fn record(value: Value) -> Result<SessionRecord, StoreError> {
    let pairs = array(value).ok_or_else(|| corrupt("record"))?;
    Fields::from_pairs(&pairs)?.into_record(None)
}

/// A script's reply: its kind, then the rest.
pub(super) fn reply(
    value: Value,
    script: &str,
) -> Result<(String, std::vec::IntoIter<Value>), StoreError> {
    let mut items = array(value).ok_or_else(|| unexpected(script))?.into_iter();
    let kind = items
        .next()
        .as_ref()
        .and_then(text)
        .ok_or_else(|| unexpected(script))?;
    Ok((kind, items))
}

pub(super) fn next_record(
    items: &mut std::vec::IntoIter<Value>,
    script: &str,
) -> Result<SessionRecord, StoreError> {
    record(items.next().ok_or_else(|| unexpected(script))?)
}

pub(super) fn newly_expired(
    items: &mut std::vec::IntoIter<Value>,
    script: &str,
) -> Result<bool, StoreError> {
    match items.next() {
        Some(Value::Int(n)) => Ok(n == 1),
        _ => Err(unexpected(script)),
    }
}

pub(super) fn end_state_name(state: EndState) -> &'static str {
    SessionState::from(state).as_str()
}

pub(super) fn update_outcome(value: Value) -> Result<UpdateOutcome, StoreError> {
    const SCRIPT: &str = "update";
    let (kind, mut items) = reply(value, SCRIPT)?;
    match kind.as_str() {
        "not_found" => Ok(UpdateOutcome::NotFound),
        "key_mismatch" => Ok(UpdateOutcome::KeyMismatch),
        "updated" => Ok(UpdateOutcome::Updated(next_record(&mut items, SCRIPT)?)),
        "not_active" => {
            let newly_expired = newly_expired(&mut items, SCRIPT)?;
            Ok(UpdateOutcome::NotActive {
                record: next_record(&mut items, SCRIPT)?,
                newly_expired,
            })
        }
        _ => Err(unexpected(SCRIPT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_their_fields() {
        let mut original = SessionRecord {
            id: SessionId::from_bytes([9; 16]),
            user_id: "alice".into(),
            jkt: Jkt::from_bytes([1; 32]),
            device_label: Some("Firefox on Linux".into()),
            user_agent_hash: Some([3; 8]),
            created_at: 1_700_000_000,
            last_seen_at: 1_700_000_010,
            idle_expires_at: 1_700_001_800,
            absolute_expires_at: 1_700_043_200,
            generation: 4,
            current_hash: TokenHash::from_bytes([5; 32]),
            previous_hash: Some(TokenHash::from_bytes([6; 32])),
            grace_until: Some(1_700_000_040),
            state: SessionState::Active,
            reason: None,
            ended_at: None,
            binding: SessionBinding::Dpop,
        };
        let round_trip = |r: &SessionRecord| {
            let mut pairs = vec![
                Value::BulkString(b"id".to_vec()),
                Value::BulkString(r.id.to_string().into_bytes()),
            ];
            for (name, value) in encode_record(r) {
                pairs.push(Value::BulkString(name.as_bytes().to_vec()));
                pairs.push(Value::BulkString(value));
            }
            record(Value::Array(pairs)).unwrap()
        };
        assert_eq!(round_trip(&original), original);
        original.finish(SessionState::Revoked, Reason::ADMIN_REVOKED, 1_700_000_020);
        original.device_label = None;
        original.user_agent_hash = None;
        assert_eq!(round_trip(&original), original);
    }

    #[test]
    fn damaged_records_are_corrupt_not_panics() {
        let pairs = |items: &[&str]| {
            Value::Array(
                items
                    .iter()
                    .map(|s| Value::BulkString(s.as_bytes().to_vec()))
                    .collect(),
            )
        };
        for bad in [
            pairs(&["id"]),
            pairs(&["id", "not-an-id"]),
            pairs(&["id", "CQkJCQkJCQkJCQkJCQkJCQ", "state", "active"]),
            Value::Int(3),
        ] {
            assert_eq!(record(bad).unwrap_err().code(), "store_corrupt");
        }
    }
}
