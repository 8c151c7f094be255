//! The [`SessionStore`] operations of the [`SqliteStore`]: each change is one
//! `BEGIN IMMEDIATE` transaction.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::rows::{COLUMNS, blob, insert, load_in, read_record, update};
use super::{SqliteStore, corrupt, map_err};
use crate::BoxFuture;
use crate::session::{Jkt, Reason, SessionId, SessionState};
use crate::store::{
    BindRequest, CreateOutcome, CreateRequest, EndOutcome, EndRequest, EndUserRequest,
    LimitCandidate, ReplaceTokensRequest, RotateOutcome, RotateRequest, RotationDecision,
    SessionBinding, SessionRecord, SessionStore, StoreError, SweepAction, SweepBatch, SweepRequest,
    SweptSession, TouchRequest, UpdateOutcome, decide_rotation, sessions_over_limit,
};

fn rotate_in(tx: &Transaction<'_>, request: &RotateRequest) -> Result<RotateOutcome, StoreError> {
    let Some(mut record) = load_in(tx, &request.id)? else {
        return Ok(RotateOutcome::Unknown);
    };
    Ok(match decide_rotation(&record.rotation_view(), request) {
        RotationDecision::NotActive => RotateOutcome::NotActive {
            record,
            newly_expired: false,
        },
        RotationDecision::Expire => {
            record.expire_if_due(request.now);
            update(tx, &record)?;
            RotateOutcome::NotActive {
                record,
                newly_expired: true,
            }
        }
        RotationDecision::Rotate => {
            record.apply_rotation(request);
            update(tx, &record)?;
            RotateOutcome::Rotated(record)
        }
        RotationDecision::GraceReplay => RotateOutcome::GraceReplay(record),
        RotationDecision::Reuse => {
            record.finish(SessionState::Revoked, Reason::REFRESH_REUSE, request.now);
            update(tx, &record)?;
            RotateOutcome::ReuseDetected(record)
        }
        RotationDecision::KeyMismatch => RotateOutcome::KeyMismatch,
        RotationDecision::Unknown => RotateOutcome::Unknown,
    })
}

fn update_in(
    tx: &Transaction<'_>,
    id: &SessionId,
    now: i64,
    allowed: impl FnOnce(&SessionRecord) -> bool,
    apply: impl FnOnce(&mut SessionRecord),
) -> Result<UpdateOutcome, StoreError> {
    let Some(mut record) = load_in(tx, id)? else {
        return Ok(UpdateOutcome::NotFound);
    };
    if record.state.is_terminal() {
        return Ok(UpdateOutcome::NotActive {
            record,
            newly_expired: false,
        });
    }
    if record.expire_if_due(now) {
        update(tx, &record)?;
        return Ok(UpdateOutcome::NotActive {
            record,
            newly_expired: true,
        });
    }
    if !allowed(&record) {
        return Ok(UpdateOutcome::KeyMismatch);
    }
    apply(&mut record);
    update(tx, &record)?;
    Ok(UpdateOutcome::Updated(record))
}

fn end_record(
    tx: &Transaction<'_>,
    mut record: SessionRecord,
    request: &EndRequest,
) -> Result<EndOutcome, StoreError> {
    if request
        .owner
        .as_deref()
        .is_some_and(|o| o != record.user_id)
    {
        return Ok(EndOutcome::NotOwner);
    }
    if record.state.is_terminal() {
        return Ok(EndOutcome::AlreadyEnded(record));
    }
    if record.expire_if_due(request.now) {
        update(tx, &record)?;
        return Ok(EndOutcome::Expired(record));
    }
    record.finish(request.state.into(), request.reason.clone(), request.now);
    update(tx, &record)?;
    Ok(EndOutcome::Ended(record))
}

/// The user's fence (0 without a row).
fn fence_in(conn: &Connection, user_id: &str) -> Result<u64, StoreError> {
    let fence: Option<i64> = conn
        .prepare_cached("SELECT fence FROM user_fences WHERE user_id = ?1")
        .map_err(map_err)?
        .query_row([user_id], |r| r.get(0))
        .optional()
        .map_err(map_err)?;
    fence.map_or(Ok(0), |f| u64::try_from(f).map_err(|_| corrupt("fence")))
}

/// Checks the fence, revokes what the limit asks for and inserts, in the caller's
/// transaction.
fn create_in(tx: &Transaction<'_>, request: &CreateRequest) -> Result<CreateOutcome, StoreError> {
    let record = &request.record;
    if let Some(fence) = request.fence
        && fence != fence_in(tx, &record.user_id)?
    {
        return Ok(CreateOutcome::Fenced);
    }
    if load_in(tx, &record.id)?.is_some() {
        return Err(StoreError::Duplicate);
    }
    let mut evicted = Vec::new();
    if let Some(max) = request.max_active {
        let now = record.created_at;
        let candidates = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT sid, last_seen_at, created_at FROM sessions WHERE user_id = ?1 \
                     AND state = 0 AND min(idle_expires_at, absolute_expires_at) > ?2",
                )
                .map_err(map_err)?;
            let mut rows = stmt.query(params![record.user_id, now]).map_err(map_err)?;
            let mut candidates = Vec::new();
            while let Some(row) = rows.next().map_err(map_err)? {
                candidates.push(LimitCandidate {
                    id: SessionId::from_bytes(blob(row, 0, "session id")?),
                    last_seen_at: row.get(1).map_err(map_err)?,
                    created_at: row.get(2).map_err(map_err)?,
                });
            }
            candidates
        };
        for id in sessions_over_limit(candidates, max) {
            if let Some(mut victim) = load_in(tx, &id)? {
                victim.finish(SessionState::Revoked, Reason::SESSION_LIMIT, now);
                update(tx, &victim)?;
                evicted.push(victim);
            }
        }
    }
    insert(tx, record)?;
    Ok(CreateOutcome::Created { evicted })
}

fn end_user_in(
    tx: &Transaction<'_>,
    request: &EndUserRequest,
) -> Result<Vec<EndOutcome>, StoreError> {
    tx.prepare_cached(
        "INSERT INTO user_fences (user_id, fence) VALUES (?1, 1) \
         ON CONFLICT (user_id) DO UPDATE SET fence = fence + 1",
    )
    .map_err(map_err)?
    .execute([&request.user_id])
    .map_err(map_err)?;
    let records = {
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM sessions WHERE user_id = ?1 AND state = 0"
            ))
            .map_err(map_err)?;
        let mut rows = stmt.query([&request.user_id]).map_err(map_err)?;
        let mut records = Vec::new();
        while let Some(row) = rows.next().map_err(map_err)? {
            records.push(read_record(row)?);
        }
        records
    };
    let mut changed = Vec::new();
    for record in records {
        if Some(record.id) == request.except {
            continue;
        }
        let end = EndRequest {
            id: record.id,
            owner: None,
            state: request.state,
            reason: request.reason.clone(),
            now: request.now,
        };
        changed.push(end_record(tx, record, &end)?);
    }
    Ok(changed)
}

fn sweep_in(tx: &Transaction<'_>, request: &SweepRequest) -> Result<SweepBatch, StoreError> {
    let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
    let mut batch = SweepBatch::default();
    let due = {
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM sessions \
                 WHERE state = 0 AND min(idle_expires_at, absolute_expires_at) <= ?1 LIMIT ?2"
            ))
            .map_err(map_err)?;
        let mut rows = stmt.query(params![request.now, limit]).map_err(map_err)?;
        let mut due = Vec::new();
        while let Some(row) = rows.next().map_err(map_err)? {
            due.push(read_record(row)?);
        }
        due
    };
    for mut record in due {
        record.expire_if_due(request.now);
        update(tx, &record)?;
        batch.swept.push(SweptSession {
            action: SweepAction::Expired,
            id: record.id,
            user_id: record.user_id.into(),
            jkt: record.jkt,
            generation: record.generation,
            reason: record.reason.unwrap_or(Reason::IDLE_TIMEOUT),
        });
    }
    let remaining = limit - i64::try_from(batch.swept.len()).unwrap_or(limit);
    if remaining > 0 {
        let mut stmt = tx
            .prepare_cached(
                "DELETE FROM sessions WHERE sid IN \
                 (SELECT sid FROM sessions WHERE state <> 0 AND ended_at <= ?1 LIMIT ?2) \
                 RETURNING sid, user_id, jkt, generation",
            )
            .map_err(map_err)?;
        let mut rows = stmt
            .query(params![request.purge_ended_before, remaining])
            .map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            batch.swept.push(SweptSession {
                action: SweepAction::Purged,
                id: SessionId::from_bytes(blob(row, 0, "session id")?),
                user_id: row.get::<_, String>(1).map_err(map_err)?.into(),
                jkt: Jkt::from_bytes(blob(row, 2, "key thumbprint")?),
                generation: u64::try_from(row.get::<_, i64>(3).map_err(map_err)?)
                    .map_err(|_| corrupt("generation"))?,
                reason: Reason::RETENTION,
            });
        }
    }
    // A session both expired and purged here counts twice, erring towards one
    // more (empty) step rather than stopping early.
    batch.done = batch.swept.len() < request.limit;
    Ok(batch)
}

impl SessionStore for SqliteStore {
    fn create(&self, request: CreateRequest) -> BoxFuture<'_, Result<CreateOutcome, StoreError>> {
        Box::pin(self.run(move |conn| Self::immediate(conn, |tx| create_in(tx, &request))))
    }

    fn user_fence<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        let user_id = user_id.to_owned();
        Box::pin(self.run(move |conn| fence_in(conn, &user_id)))
    }

    fn load(&self, id: SessionId) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(self.run(move |conn| load_in(conn, &id)))
    }

    fn rotate(&self, request: RotateRequest) -> BoxFuture<'_, Result<RotateOutcome, StoreError>> {
        Box::pin(self.run(move |conn| Self::immediate(conn, |tx| rotate_in(tx, &request))))
    }

    fn replace_tokens(
        &self,
        request: ReplaceTokensRequest,
    ) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        Box::pin(self.run(move |conn| {
            Self::immediate(conn, |tx| {
                update_in(
                    tx,
                    &request.id,
                    request.now,
                    |r| r.jkt == request.jkt,
                    |r| r.apply_replacement(&request),
                )
            })
        }))
    }

    fn touch(&self, request: TouchRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        Box::pin(self.run(move |conn| {
            Self::immediate(conn, |tx| {
                update_in(
                    tx,
                    &request.id,
                    request.now,
                    |_| true,
                    |r| r.apply_touch(&request),
                )
            })
        }))
    }

    fn bind_dbsc(&self, request: BindRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        Box::pin(self.run(move |conn| {
            Self::immediate(conn, |tx| {
                update_in(
                    tx,
                    &request.id,
                    request.now,
                    |r| r.binding == SessionBinding::DbscPending,
                    |r| r.apply_bind(&request),
                )
            })
        }))
    }

    fn end(&self, request: EndRequest) -> BoxFuture<'_, Result<EndOutcome, StoreError>> {
        Box::pin(self.run(move |conn| {
            Self::immediate(conn, |tx| match load_in(tx, &request.id)? {
                Some(record) => end_record(tx, record, &request),
                None => Ok(EndOutcome::NotFound),
            })
        }))
    }

    fn end_user_sessions(
        &self,
        request: EndUserRequest,
    ) -> BoxFuture<'_, Result<Vec<EndOutcome>, StoreError>> {
        Box::pin(self.run(move |conn| Self::immediate(conn, |tx| end_user_in(tx, &request))))
    }

    fn list_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
        let user_id = user_id.to_owned();
        Box::pin(self.run(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM sessions WHERE user_id = ?1"
                ))
                .map_err(map_err)?;
            let mut rows = stmt.query([&user_id]).map_err(map_err)?;
            let mut records = Vec::new();
            while let Some(row) = rows.next().map_err(map_err)? {
                records.push(read_record(row)?);
            }
            Ok(records)
        }))
    }

    fn sweep(&self, request: SweepRequest) -> BoxFuture<'_, Result<SweepBatch, StoreError>> {
        Box::pin(self.run(move |conn| Self::immediate(conn, |tx| sweep_in(tx, &request))))
    }

    fn count_active(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.run(|conn| {
            let count: Option<i64> = conn
                .query_row("SELECT count(*) FROM sessions WHERE state = 0", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(map_err)?;
            Ok(count.and_then(|c| u64::try_from(c).ok()).unwrap_or(0))
        }))
    }
}
