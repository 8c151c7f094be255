//! The replay store on the SQLite file, shared by every process that opens it.

use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, run_on};
use crate::store::StoreError;
use crate::{BoxFuture, Clock, ReplayError, ReplayStore};

/// Expired entries one sweep statement removes (sweeps repeat until none is left), so
/// a sweep holds the write lock only briefly.
const SWEEP_BATCH: i64 = 10_000;

/// The verifier's [`ReplayStore`] in the SQLite file, for several processes serving
/// one file: a proof recorded by any of them is a replay for all.
///
/// Each entry is a row of the `replay` table (the proof's key and its expiry in
/// milliseconds, from the verifier's clock); each
/// [`insert_once`](ReplayStore::insert_once) is one `BEGIN IMMEDIATE` transaction, so
/// of two processes recording the same proof exactly one succeeds. **Bounded**: the
/// table holds at most `capacity` rows (`KEYBOUND_REPLAY_CAPACITY`); when full,
/// expired rows are deleted first, and if none has expired the insert fails with
/// [`ReplayError::Full`] (`503`, failing closed). [`sweep`](ReplayStore::sweep)
/// deletes expired rows (the sweeper runs it). A database that cannot be written
/// (locked beyond the 5 s busy timeout, disk full) answers
/// [`ReplayError::Unavailable`]: a proof is never accepted unrecorded.
///
/// Made by [`SqliteStore::replay_store`].
#[derive(Clone)]
pub struct SqliteReplayStore {
    conn: Arc<Mutex<Connection>>,
    capacity: usize,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SqliteReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReplayStore")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: StoreError) -> ReplayError {
    ReplayError::Unavailable {
        reason: error.to_string(),
    }
}

fn sql(error: rusqlite::Error) -> StoreError {
    super::map_err(error)
}

/// What one insert found.
enum Recorded {
    Fresh,
    Replay,
    Full,
}

fn insert_in(
    conn: &mut Connection,
    key: &[u8; 32],
    expires_at_ms: i64,
    now_ms: i64,
    capacity: i64,
) -> Result<Recorded, StoreError> {
    SqliteStore::immediate(conn, |tx| {
        let stored: Option<i64> = tx
            .prepare_cached("SELECT expires_at FROM replay WHERE key = ?1")
            .map_err(sql)?
            .query_row([&key[..]], |r| r.get(0))
            .optional()
            .map_err(sql)?;
        match stored {
            Some(expires) if expires > now_ms => return Ok(Recorded::Replay),
            Some(_) => {
                tx.prepare_cached("UPDATE replay SET expires_at = ?2 WHERE key = ?1")
                    .map_err(sql)?
                    .execute(params![&key[..], expires_at_ms])
                    .map_err(sql)?;
                return Ok(Recorded::Fresh);
            }
            None => {}
        }
        let count = |tx: &rusqlite::Transaction<'_>| -> Result<i64, StoreError> {
            tx.prepare_cached("SELECT n FROM replay_count")
                .map_err(sql)?
                .query_row([], |r| r.get(0))
                .map_err(sql)
        };
        if count(tx)? >= capacity {
            // Full: forget what has expired, never a live entry.
            tx.prepare_cached("DELETE FROM replay WHERE expires_at <= ?1")
                .map_err(sql)?
                .execute([now_ms])
                .map_err(sql)?;
            if count(tx)? >= capacity {
                return Ok(Recorded::Full);
            }
        }
        tx.prepare_cached("INSERT INTO replay (key, expires_at) VALUES (?1, ?2)")
            .map_err(sql)?
            .execute(params![&key[..], expires_at_ms])
            .map_err(sql)?;
        Ok(Recorded::Fresh)
    })
}

fn sweep_in(conn: &mut Connection, now_ms: i64) -> Result<usize, StoreError> {
    let mut removed = 0;
    loop {
        let batch = SqliteStore::immediate(conn, |tx| {
            tx.prepare_cached(
                "DELETE FROM replay WHERE key IN \
                 (SELECT key FROM replay WHERE expires_at <= ?1 LIMIT ?2)",
            )
            .map_err(sql)?
            .execute(params![now_ms, SWEEP_BATCH])
            .map_err(sql)
        })?;
        removed += batch;
        if i64::try_from(batch).unwrap_or(i64::MAX) < SWEEP_BATCH {
            return Ok(removed);
        }
    }
}

impl SqliteReplayStore {
    pub(super) fn new(conn: Connection, clock: Arc<dyn Clock>, capacity: usize) -> Self {
        Self {
            conn: Arc::new(Mutex::new(conn)),
            capacity: capacity.max(1),
            clock,
        }
    }

    /// The most entries the store holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl ReplayStore for SqliteReplayStore {
    fn insert_once<'a>(
        &'a self,
        key: &'a [u8; 32],
        expires_at_ms: i64,
    ) -> BoxFuture<'a, Result<bool, ReplayError>> {
        Box::pin(async move {
            let now_ms = self.clock.now_ms();
            if expires_at_ms <= now_ms {
                return Ok(true);
            }
            let key = *key;
            let capacity = i64::try_from(self.capacity).unwrap_or(i64::MAX);
            let recorded = run_on(Arc::clone(&self.conn), move |conn| {
                insert_in(conn, &key, expires_at_ms, now_ms, capacity)
            })
            .await
            .map_err(unavailable)?;
            match recorded {
                Recorded::Fresh => Ok(true),
                Recorded::Replay => Ok(false),
                Recorded::Full => Err(ReplayError::Full {
                    capacity: self.capacity,
                }),
            }
        })
    }

    fn sweep(&self) -> BoxFuture<'_, Result<usize, ReplayError>> {
        Box::pin(async move {
            let now_ms = self.clock.now_ms();
            run_on(Arc::clone(&self.conn), move |conn| sweep_in(conn, now_ms))
                .await
                .map_err(unavailable)
        })
    }

    fn approximate_len(&self) -> Option<usize> {
        None
    }
}
