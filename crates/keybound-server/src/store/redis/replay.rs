//! The replay store on Redis: one `SET key 1 NX PX ttl` per proof.

use std::sync::Arc;
use std::time::Duration;

use keybound_proto::b64;
use redis::Value;
use redis::aio::ConnectionManager;

use crate::{BoxFuture, Clock, ReplayError, ReplayStore};

/// The verifier's [`ReplayStore`] on Redis, shared by every node: a proof id seen on
/// any node is a replay on all of them.
///
/// Each [`insert_once`](ReplayStore::insert_once) is one `SET {prefix}r:{key} 1 NX PX
/// ttl` (atomic in Redis; the TTL is computed from the verifier's clock, so Redis's
/// own clock does not matter). Redis forgets entries by itself, so
/// [`sweep`](ReplayStore::sweep) does nothing. When Redis does not answer within the
/// timeout the insert fails with [`ReplayError::Unavailable`] and the verifier
/// refuses the request with `503` (`replay_store_unavailable`): it never accepts a
/// proof it could not record.
///
/// Made by [`RedisStore::replay_store`](super::RedisStore::replay_store).
#[derive(Clone)]
pub struct RedisReplayStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
    timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    pub(super) fn new(
        conn: ConnectionManager,
        prefix: &str,
        timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            timeout,
            clock,
        }
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
            let ttl_ms = expires_at_ms.saturating_sub(self.clock.now_ms());
            if ttl_ms <= 0 {
                return Ok(true);
            }
            let redis_key = format!("{}r:{}", self.prefix, b64::encode(key));
            let mut conn = self.conn.clone();
            let mut set = redis::cmd("SET");
            set.arg(&redis_key).arg(1).arg("NX").arg("PX").arg(ttl_ms);
            let set = set.query_async::<Value>(&mut conn);
            match tokio::time::timeout(self.timeout, set).await {
                Ok(Ok(Value::Okay | Value::SimpleString(_))) => Ok(true),
                Ok(Ok(Value::Nil)) => Ok(false),
                Ok(Ok(_)) => Err(unavailable("unexpected reply to SET NX".into())),
                Ok(Err(e)) => Err(unavailable(e.to_string())),
                Err(_) => Err(unavailable(format!(
                    "Redis did not answer within {} ms",
                    self.timeout.as_millis()
                ))),
            }
        })
    }

    fn sweep(&self) -> BoxFuture<'_, Result<usize, ReplayError>> {
        // Entries carry their own TTL.
        Box::pin(std::future::ready(Ok(0)))
    }

    fn approximate_len(&self) -> Option<usize> {
        None
    }
}
