//! Sessions as SQLite rows: reading, inserting and updating one.

use rusqlite::{Connection, ErrorCode, Row, params};

use super::{corrupt, map_err};
use crate::session::{Jkt, Reason, SessionId, SessionState, TokenHash};
use crate::store::{SessionBinding, SessionRecord, StoreError};

pub(super) const COLUMNS: &str = "sid, user_id, jkt, device_label, user_agent_hash, created_at, \
    last_seen_at, idle_expires_at, absolute_expires_at, generation, current_hash, \
    previous_hash, grace_until, state, reason, ended_at, binding";

pub(super) fn blob<const N: usize>(
    row: &Row<'_>,
    idx: usize,
    what: &str,
) -> Result<[u8; N], StoreError> {
    let bytes: Vec<u8> = row.get(idx).map_err(map_err)?;
    bytes.try_into().map_err(|_| corrupt(what))
}

pub(super) fn opt_blob<const N: usize>(
    row: &Row<'_>,
    idx: usize,
    what: &str,
) -> Result<Option<[u8; N]>, StoreError> {
    let bytes: Option<Vec<u8>> = row.get(idx).map_err(map_err)?;
    bytes
        .map(|b| b.try_into().map_err(|_| corrupt(what)))
        .transpose()
}

/// The state's one-byte code in the `state` column (`0` active, `1` expired, `2`
/// revoked, `3` closed); stable, on disk.
pub(super) fn state_code(state: SessionState) -> u8 {
    match state {
        SessionState::Active => 0,
        SessionState::Expired => 1,
        SessionState::Revoked => 2,
        SessionState::Closed => 3,
    }
}

/// The state for a [`state_code`].
pub(super) fn state_from_code(code: u8) -> Option<SessionState> {
    match code {
        0 => Some(SessionState::Active),
        1 => Some(SessionState::Expired),
        2 => Some(SessionState::Revoked),
        3 => Some(SessionState::Closed),
        _ => None,
    }
}

pub(super) fn read_record(row: &Row<'_>) -> Result<SessionRecord, StoreError> {
    let get_i64 = |idx: usize| row.get::<_, i64>(idx).map_err(map_err);
    let state_code: i64 = get_i64(13)?;
    let state = u8::try_from(state_code)
        .ok()
        .and_then(state_from_code)
        .ok_or_else(|| corrupt("state"))?;
    let reason = row
        .get::<_, Option<String>>(14)
        .map_err(map_err)?
        .map(|r| Reason::new(r).ok_or_else(|| corrupt("reason")))
        .transpose()?;
    Ok(SessionRecord {
        id: SessionId::from_bytes(blob(row, 0, "session id")?),
        user_id: row.get(1).map_err(map_err)?,
        jkt: Jkt::from_bytes(blob(row, 2, "key thumbprint")?),
        device_label: row.get(3).map_err(map_err)?,
        user_agent_hash: opt_blob(row, 4, "user agent hash")?,
        created_at: get_i64(5)?,
        last_seen_at: get_i64(6)?,
        idle_expires_at: get_i64(7)?,
        absolute_expires_at: get_i64(8)?,
        generation: u64::try_from(get_i64(9)?).map_err(|_| corrupt("generation"))?,
        current_hash: TokenHash::from_bytes(blob(row, 10, "token hash")?),
        previous_hash: opt_blob(row, 11, "token hash")?.map(TokenHash::from_bytes),
        grace_until: row.get(12).map_err(map_err)?,
        state,
        reason,
        ended_at: row.get(15).map_err(map_err)?,
        binding: match row.get::<_, Option<String>>(16).map_err(map_err)? {
            None => SessionBinding::Dpop,
            Some(text) => SessionBinding::from_stored(&text).ok_or_else(|| corrupt("binding"))?,
        },
    })
}

pub(super) fn generation(record: &SessionRecord) -> Result<i64, StoreError> {
    i64::try_from(record.generation).map_err(|_| StoreError::Backend {
        reason: "the refresh generation is too large".into(),
    })
}

pub(super) fn load_in(
    conn: &Connection,
    id: &SessionId,
) -> Result<Option<SessionRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM sessions WHERE sid = ?1"))
        .map_err(map_err)?;
    let mut rows = stmt.query([id.as_bytes()]).map_err(map_err)?;
    match rows.next().map_err(map_err)? {
        Some(row) => read_record(row).map(Some),
        None => Ok(None),
    }
}

pub(super) fn insert(conn: &Connection, r: &SessionRecord) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "INSERT INTO sessions ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        ))
        .map_err(map_err)?;
    let result = stmt.execute(params![
        r.id.as_bytes(),
        r.user_id,
        r.jkt.as_bytes(),
        r.device_label,
        r.user_agent_hash.as_ref().map(|h| &h[..]),
        r.created_at,
        r.last_seen_at,
        r.idle_expires_at,
        r.absolute_expires_at,
        generation(r)?,
        r.current_hash.as_bytes(),
        r.previous_hash.as_ref().map(|h| &h.as_bytes()[..]),
        r.grace_until,
        state_code(r.state),
        r.reason.as_ref().map(Reason::as_str),
        r.ended_at,
        stored_binding(&r.binding),
    ]);
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
            Err(StoreError::Duplicate)
        }
        Err(e) => Err(map_err(e)),
    }
}

/// Writes every field an operation may change.
pub(super) fn update(conn: &Connection, r: &SessionRecord) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE sessions SET last_seen_at = ?2, idle_expires_at = ?3, \
             absolute_expires_at = ?4, generation = ?5, current_hash = ?6, \
             previous_hash = ?7, grace_until = ?8, state = ?9, reason = ?10, ended_at = ?11, \
             jkt = ?12, binding = ?13 WHERE sid = ?1",
        )
        .map_err(map_err)?;
    stmt.execute(params![
        r.id.as_bytes(),
        r.last_seen_at,
        r.idle_expires_at,
        r.absolute_expires_at,
        generation(r)?,
        r.current_hash.as_bytes(),
        r.previous_hash.as_ref().map(|h| &h.as_bytes()[..]),
        r.grace_until,
        state_code(r.state),
        r.reason.as_ref().map(Reason::as_str),
        r.ended_at,
        r.jkt.as_bytes(),
        stored_binding(&r.binding),
    ])
    .map_err(map_err)?;
    Ok(())
}

/// The `binding` column: `NULL` for DPoP.
pub(super) fn stored_binding(binding: &SessionBinding) -> Option<String> {
    (*binding != SessionBinding::Dpop).then(|| binding.to_stored())
}
