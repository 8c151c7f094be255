//! The SQLite store: one file, for a single node whose sessions must survive restarts.

mod ops;
mod replay;
mod rows;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

pub use replay::SqliteReplayStore;
use schema::prepare;

use super::StoreError;

/// The SQLite [`SessionStore`]: sessions in one database file, for a single node that
/// must keep its sessions across restarts.
///
/// The file is created on first use, its schema created or migrated (versioned by
/// `PRAGMA user_version`, identified by `PRAGMA application_id`), and opened in WAL
/// mode with `synchronous = NORMAL`. Every atomic operation is one `BEGIN IMMEDIATE`
/// transaction, so several processes on the same file stay correct. Blocking SQLite
/// calls run on tokio's blocking pool (or inline outside a tokio runtime).
///
/// Besides the sessions, the file holds each user's fence (table `user_fences`, one
/// row per user whose sessions were ever ended all at once) and, for
/// [`replay_store`](Self::replay_store), the proofs seen by every process on the file
/// (table `replay`).
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

/// How long a write waits for another connection's (or process's) transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens (creating if needed) the file, without preparing it.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags).map_err(|e| StoreError::Unavailable {
        reason: format!("cannot open {}: {e}", path.display()),
    })
}

/// Runs `op` on the connection on tokio's blocking pool (inline outside a runtime).
async fn run_on<T, F>(conn: Arc<Mutex<Connection>>, op: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
{
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
        let mut conn = connect(&path)?;
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

    /// The replay store on the same file, on a connection of its own: every
    /// process on the file records proofs in it, so a proof accepted by one is a replay
    /// for all (see [`SqliteReplayStore`]). Holds at most `capacity` entries.
    pub fn replay_store(
        &self,
        clock: Arc<dyn crate::Clock>,
        capacity: usize,
    ) -> Result<SqliteReplayStore, StoreError> {
        let conn = connect(&self.path)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(map_err)?;
        Ok(SqliteReplayStore::new(conn, clock, capacity))
    }

    async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        run_on(Arc::clone(&self.conn), op).await
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
