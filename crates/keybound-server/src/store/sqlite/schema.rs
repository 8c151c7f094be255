//! The SQLite store's schema: creation, identification and migrations.

use rusqlite::Connection;

use super::{BUSY_TIMEOUT, SqliteStore, map_err};
use crate::store::StoreError;

/// `PRAGMA application_id` of a keybound session database ("kbs1").
const APPLICATION_ID: i32 = 0x6b62_7331;
/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i32 = 3;

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

/// Version 3: each user's fence (moved by ending all their sessions; a user without a
/// row has fence 0), and the replay records every process on the file shares (the
/// proof's key and its expiry in milliseconds), counted by triggers so the capacity
/// check needs no scan.
const MIGRATE_V3: &str = "
CREATE TABLE user_fences (
    user_id TEXT    NOT NULL PRIMARY KEY,
    fence   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE replay (
    key        BLOB    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX replay_by_expiry ON replay (expires_at);
CREATE TABLE replay_count (n INTEGER NOT NULL);
INSERT INTO replay_count (n) VALUES (0);
CREATE TRIGGER replay_counted_in AFTER INSERT ON replay
    BEGIN UPDATE replay_count SET n = n + 1; END;
CREATE TRIGGER replay_counted_out AFTER DELETE ON replay
    BEGIN UPDATE replay_count SET n = n - 1; END;
";

/// Pragmas, then schema creation or migration.
pub(super) fn prepare(conn: &mut Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
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
        if version < 3 {
            tx.execute_batch(MIGRATE_V3).map_err(map_err)?;
        }
        // Later schema versions add their migration steps here, one per version.
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
            .map_err(map_err)?;
        Ok(())
    })
}
