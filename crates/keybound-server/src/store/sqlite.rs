//! The SQLite store: one file, for a single node whose sessions must survive restarts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior,
    params,
};

use super::{
    BindRequest, EndOutcome, EndRequest, EndUserRequest, ReplaceTokensRequest, RotateOutcome,
    RotateRequest, RotationDecision, SessionBinding, SessionRecord, SessionStore, StoreError,
    SweepAction, SweepBatch, SweepRequest, SweptSession, TouchRequest, UpdateOutcome,
    decide_rotation,
};
use crate::BoxFuture;
use crate::session::{Jkt, Reason, SessionId, SessionState, TokenHash};

/// `PRAGMA application_id` of a keybound session database ("kbs1").
const APPLICATION_ID: i32 = 0x6b62_7331;
/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i32 = 2;

const SCHEMA_V1: &str = "
CREATE TABLE sessions (
    sid                 BLOB    NOT NULL PRIMARY KEY,
    user_id             TEXT    NOT NULL,
    jkt                 BLOB    NOT NULL,
    device_label        TEXT,
    user_agent_hash     BLOB,
    created_at          INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    idle_expires_at     INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    generation          INTEGER NOT NULL,
    current_hash        BLOB    NOT NULL,
    previous_hash       BLOB,
    grace_until         INTEGER,
    state               INTEGER NOT NULL,
    reason              TEXT,
    ended_at            INTEGER
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_active_by_deadline
    ON sessions (min(idle_expires_at, absolute_expires_at)) WHERE state = 0;
CREATE INDEX sessions_ended ON sessions (ended_at) WHERE state <> 0;
";

/// Version 2: how the session is bound (`NULL` for DPoP, as every version-1 session is;
/// otherwise [`SessionBinding::to_stored`]).
const MIGRATE_V2: &str = "ALTER TABLE sessions ADD COLUMN binding TEXT;";

const COLUMNS: &str = "sid, user_id, jkt, device_label, user_agent_hash, created_at, \
    last_seen_at, idle_expires_at, absolute_expires_at, generation, current_hash, \
    previous_hash, grace_until, state, reason, ended_at, binding";

/// The SQLite [`SessionStore`]: sessions in one database file, for a single node that
/// must keep its sessions across restarts.
///
/// The file is created on first use, its schema created or migrated (versioned by
/// `PRAGMA user_version`, identified by `PRAGMA application_id`), and opened in WAL
/// mode with `synchronous = NORMAL`. Every atomic operation is one `BEGIN IMMEDIATE`
/// transaction, so several processes on the same file stay correct. Blocking SQLite
/// calls run on tokio's blocking pool (or inline outside a tokio runtime).
///
/// A file that is not a keybound session database, or a damaged one, is refused at
/// [`open`](Self::open) with [`StoreError::Corrupt`] or [`StoreError::Incompatible`].
///
/// Refresh tokens stay valid across a restart only if the service is given the same
/// `RefreshSecret` each time (see [`crate::lifecycle::RefreshSecret`]).
///
/// ```
/// use keybound_server::store::{SessionStore, SqliteStore};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("sessions.db")).await.unwrap();
/// assert_eq!(store.count_active().await.unwrap(), 0);
/// # });
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn map_err(error: rusqlite::Error) -> StoreError {
    let reason = error.to_string();
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt { reason }
        }
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied,
        ) => StoreError::Unavailable { reason },
        _ => StoreError::Backend { reason },
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt {
        reason: format!("a stored session has an invalid {what}"),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, creating or migrating the
    /// schema.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(move || Self::open_blocking(path))
                .await
                .map_err(|_| StoreError::Backend {
                    reason: "the task opening the database failed".into(),
                })?,
            Err(_) => Self::open_blocking(path),
        }
    }

    /// [`open`](Self::open), blocking the current thread.
    pub fn open_blocking(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn =
            Connection::open_with_flags(&path, flags).map_err(|e| StoreError::Unavailable {
                reason: format!("cannot open {}: {e}", path.display()),
            })?;
        prepare(&mut conn).map_err(|e| match e {
            StoreError::Corrupt { reason } => StoreError::Corrupt {
                reason: format!("{} is not a usable database: {reason}", path.display()),
            },
            other => other,
        })?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let job = move || {
            // A panic inside `op` drops its transaction, which rolls back, so the
            // connection behind a poisoned lock is still consistent.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            op(&mut conn)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(job)
                .await
                .map_err(|_| StoreError::Backend {
                    reason: "a database task failed".into(),
                })?,
            Err(_) => job(),
        }
    }

    fn immediate<T, F>(conn: &mut Connection, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let value = op(&tx)?;
        tx.commit().map_err(map_err)?;
        Ok(value)
    }
}

/// Pragmas, then schema creation or migration.
fn prepare(conn: &mut Connection) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(5)).map_err(map_err)?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(map_err)?;
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(map_err)?;
    if app_id != 0 && app_id != APPLICATION_ID {
        return Err(StoreError::Incompatible {
            reason: "the file is a SQLite database of another application".into(),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::Incompatible {
            reason: format!(
                "the schema version {version} is newer than this keybound supports ({SCHEMA_VERSION})"
            ),
        });
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(map_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable {
            reason: format!("cannot switch the database to WAL mode (it is in {mode} mode)"),
        });
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL")
        .map_err(map_err)?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    SqliteStore::immediate(conn, |tx| {
        // Re-read under the write lock: another process may have migrated meanwhile.
        let version: i32 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(map_err)?;
        if version == 0 {
            let tables: i64 = tx
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                    [],
                    |r| r.get(0),
                )
                .map_err(map_err)?;
            if tables > 0 {
                return Err(StoreError::Incompatible {
                    reason: "the database already holds tables of another application".into(),
                });
            }
            tx.execute_batch(SCHEMA_V1).map_err(map_err)?;
            tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))
                .map_err(map_err)?;
        }
        if version < 2 {
            tx.execute_batch(MIGRATE_V2).map_err(map_err)?;
        }
        // Later schema versions add their migration steps here, one per version.
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
            .map_err(map_err)?;
        Ok(())
    })
}

fn blob<const N: usize>(row: &Row<'_>, idx: usize, what: &str) -> Result<[u8; N], StoreError> {
    let bytes: Vec<u8> = row.get(idx).map_err(map_err)?;
    bytes.try_into().map_err(|_| corrupt(what))
}

fn opt_blob<const N: usize>(
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
fn state_code(state: SessionState) -> u8 {
    match state {
        SessionState::Active => 0,
        SessionState::Expired => 1,
        SessionState::Revoked => 2,
        SessionState::Closed => 3,
    }
}

/// The state for a [`state_code`].
fn state_from_code(code: u8) -> Option<SessionState> {
    match code {
        0 => Some(SessionState::Active),
        1 => Some(SessionState::Expired),
        2 => Some(SessionState::Revoked),
        3 => Some(SessionState::Closed),
        _ => None,
    }
}

fn read_record(row: &Row<'_>) -> Result<SessionRecord, StoreError> {
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

fn generation(record: &SessionRecord) -> Result<i64, StoreError> {
    i64::try_from(record.generation).map_err(|_| StoreError::Backend {
        reason: "the refresh generation is too large".into(),
    })
}

fn load_in(conn: &Connection, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM sessions WHERE sid = ?1"))
        .map_err(map_err)?;
    let mut rows = stmt.query([id.as_bytes()]).map_err(map_err)?;
    match rows.next().map_err(map_err)? {
        Some(row) => read_record(row).map(Some),
        None => Ok(None),
    }
}

fn insert(conn: &Connection, r: &SessionRecord) -> Result<(), StoreError> {
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
fn update(conn: &Connection, r: &SessionRecord) -> Result<(), StoreError> {
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
fn stored_binding(binding: &SessionBinding) -> Option<String> {
    (*binding != SessionBinding::Dpop).then(|| binding.to_stored())
}

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

fn end_user_in(
    tx: &Transaction<'_>,
    request: &EndUserRequest,
) -> Result<Vec<EndOutcome>, StoreError> {
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
    fn create(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.run(move |conn| insert(conn, &record)))
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
