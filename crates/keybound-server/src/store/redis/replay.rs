//! The replay store on Redis: one sorted set of proof ids by expiry, bounded in size.

use std::sync::Arc;
use std::time::Duration;

use keybound_proto::b64;
use redis::aio::ConnectionManager;
use redis::{Script, Value};

use crate::{BoxFuture, Clock, ReplayError, ReplayStore};

/// The verifier's [`ReplayStore`] on Redis, shared by every node: a proof id seen on
/// any node is a replay on all of them.
///
/// Entries live in one sorted set, `{prefix}replay` (member: the proof's key, score:
/// its expiry in milliseconds, computed from the verifier's clock, so Redis's own
/// clock does not matter). Each [`insert_once`](ReplayStore::insert_once) is one Lua
/// script, atomic in Redis. **Bounded**: the set holds at most `capacity` entries
/// (`KEYBOUND_REPLAY_CAPACITY`, default one million, about 100 MB of Redis memory);
/// when full, expired entries are dropped first, and if none has expired the insert
/// fails with [`ReplayError::Full`] (`503`, failing closed: a live entry is never
/// forgotten). [`sweep`](ReplayStore::sweep) drops expired entries (the sweeper runs
/// it). When Redis does not answer within the timeout the insert fails with
/// [`ReplayError::Unavailable`] and the verifier refuses the request with `503`
/// (`replay_store_unavailable`): it never accepts a proof it could not record.
///
/// Made by [`RedisStore::replay_store`](super::RedisStore::replay_store).
#[derive(Clone)]
pub struct RedisReplayStore {
    conn: ConnectionManager,
    key: Arc<str>,
    timeout: Duration,
    capacity: usize,
    clock: Arc<dyn Clock>,
    script: Arc<Script>,
}

impl std::fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    pub(super) fn new(
        conn: ConnectionManager,
        prefix: &str,
        timeout: Duration,
        capacity: usize,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            conn,
            key: format!("{prefix}replay").into(),
            timeout,
            capacity: capacity.max(1),
            clock,
            script: Arc::new(Script::new(include_str!("replay.lua"))),
        }
    }

    /// The most entries the store holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn timed_out(&self) -> ReplayError {
        unavailable(format!(
            "Redis did not answer within {} ms",
            self.timeout.as_millis()
        ))
    }
}

fn unavailable(reason: String) -> ReplayError {
    ReplayError::Unavailable { reason }
}

impl ReplayStore for RedisReplayStore {
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
            let mut conn = self.conn.clone();
            let mut invocation = self.script.key(&*self.key);
            invocation
                .arg(b64::encode(key))
                .arg(expires_at_ms)
                .arg(now_ms)
                .arg(self.capacity);
            let run = invocation.invoke_async::<Value>(&mut conn);
            match tokio::time::timeout(self.timeout, run).await {
                Ok(Ok(Value::Int(1))) => Ok(true),
                Ok(Ok(Value::Int(0))) => Ok(false),
                Ok(Ok(Value::Int(-1))) => Err(ReplayError::Full {
                    capacity: self.capacity,
                }),
                Ok(Ok(_)) => Err(unavailable("unexpected reply of the replay script".into())),
                Ok(Err(e)) => Err(unavailable(e.to_string())),
                Err(_) => Err(self.timed_out()),
            }
        })
    }

    fn sweep(&self) -> BoxFuture<'_, Result<usize, ReplayError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut command = redis::cmd("ZREMRANGEBYSCORE");
            command.arg(&*self.key).arg("-inf").arg(self.clock.now_ms());
            let run = command.query_async::<usize>(&mut conn);
            match tokio::time::timeout(self.timeout, run).await {
                Ok(Ok(removed)) => Ok(removed),
                Ok(Err(e)) => Err(unavailable(e.to_string())),
                Err(_) => Err(self.timed_out()),
            }
        })
    }

    fn approximate_len(&self) -> Option<usize> {
        None
    }
}
