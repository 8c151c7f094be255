//! The [`SessionStore`] operations of the [`RedisStore`]: each change is one Lua
//! script, atomic in Redis.

use keybound_proto::b64;
use redis::Value;

use super::encoding::{
    Fields, array, encode_record, end_state_name, newly_expired, next_record, record, reply, text,
    update_outcome,
};
use super::{MAX_SWEEP_SCRIPT_BATCH, RedisStore, corrupt, unexpected};
use crate::BoxFuture;
use crate::session::{Jkt, Reason, SessionId, TokenHash};
use crate::store::{
    BindRequest, EndOutcome, EndRequest, EndUserRequest, ReplaceTokensRequest, RotateOutcome,
    RotateRequest, SessionBinding, SessionRecord, SessionStore, StoreError, SweepAction,
    SweepBatch, SweepRequest, SweptSession, TouchRequest, UpdateOutcome,
};

impl SessionStore for RedisStore {
    fn create(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let id = record.id.to_string();
            let fields = encode_record(&record);
            let mut args: Vec<&[u8]> = vec![id.as_bytes()];
            for (name, value) in &fields {
                args.push(name.as_bytes());
                args.push(value);
            }
            match self.invoke(&self.inner.scripts.create, &args).await? {
                Value::Int(1) => Ok(()),
                Value::Int(0) => Err(StoreError::Duplicate),
                _ => Err(unexpected("create")),
            }
        })
    }

    fn load(&self, id: SessionId) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(async move {
            let key = self.key("s:", &id.to_string());
            let mut conn = self.conn();
            let value: Value = self
                .call(redis::cmd("HGETALL").arg(&key).query_async(&mut conn))
                .await?;
            let pairs: Vec<Value> = match value {
                Value::Map(map) => map.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                other => array(other).ok_or_else(|| corrupt("record"))?,
            };
            if pairs.is_empty() {
                return Ok(None);
            }
            Fields::from_pairs(&pairs)?.into_record(Some(id)).map(Some)
        })
    }

    fn rotate(&self, request: RotateRequest) -> BoxFuture<'_, Result<RotateOutcome, StoreError>> {
        Box::pin(async move {
            const SCRIPT: &str = "rotate";
            let id = request.id.to_string();
            let presented = b64::encode(request.presented.as_bytes());
            let generation = request.presented_generation.to_string();
            let generation_plus_one = request
                .presented_generation
                .checked_add(1)
                .map(|g| g.to_string())
                .unwrap_or_default();
            let jkt = request.jkt.to_string();
            let next = b64::encode(request.next.as_bytes());
            let now = request.now.to_string();
            let grace = request.grace_until.to_string();
            let idle = request.idle_expires_at.to_string();
            let cap = request
                .absolute_cap
                .map(|c| c.to_string())
                .unwrap_or_default();
            let value = self
                .invoke(
                    &self.inner.scripts.rotate,
                    &[
                        id.as_bytes(),
                        presented.as_bytes(),
                        generation.as_bytes(),
                        generation_plus_one.as_bytes(),
                        jkt.as_bytes(),
                        next.as_bytes(),
                        now.as_bytes(),
                        grace.as_bytes(),
                        idle.as_bytes(),
                        cap.as_bytes(),
                    ],
                )
                .await?;
            let (kind, mut items) = reply(value, SCRIPT)?;
            match kind.as_str() {
                "unknown" => Ok(RotateOutcome::Unknown),
                "key_mismatch" => Ok(RotateOutcome::KeyMismatch),
                "rotated" => Ok(RotateOutcome::Rotated(next_record(&mut items, SCRIPT)?)),
                "grace_replay" => Ok(RotateOutcome::GraceReplay(next_record(&mut items, SCRIPT)?)),
                "reuse" => Ok(RotateOutcome::ReuseDetected(next_record(
                    &mut items, SCRIPT,
                )?)),
                "not_active" => {
                    let newly_expired = newly_expired(&mut items, SCRIPT)?;
                    Ok(RotateOutcome::NotActive {
                        record: next_record(&mut items, SCRIPT)?,
                        newly_expired,
                    })
                }
                _ => Err(unexpected(SCRIPT)),
            }
        })
    }

    fn replace_tokens(
        &self,
        request: ReplaceTokensRequest,
    ) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        Box::pin(async move {
            self.update(Update {
                id: request.id,
                now: request.now,
                idle_expires_at: request.idle_expires_at,
                replace: Some((request.jkt, request.next)),
                bind: None,
            })
            .await
        })
    }

    fn touch(&self, request: TouchRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        Box::pin(async move {
            self.update(Update {
                id: request.id,
                now: request.now,
                idle_expires_at: request.idle_expires_at,
                replace: None,
                bind: None,
            })
            .await
        })
    }

    fn bind_dbsc(&self, request: BindRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
        Box::pin(async move {
            let binding = SessionBinding::Dbsc { key: request.key }.to_stored();
            self.update(Update {
                id: request.id,
                now: request.now,
                idle_expires_at: request.idle_expires_at,
                replace: None,
                bind: Some((binding, request.jkt)),
            })
            .await
        })
    }

    fn end(&self, request: EndRequest) -> BoxFuture<'_, Result<EndOutcome, StoreError>> {
        Box::pin(async move {
            const SCRIPT: &str = "end";
            let id = request.id.to_string();
            let (check_owner, owner): (&[u8], &[u8]) = match &request.owner {
                Some(owner) => (b"1", owner.as_bytes()),
                None => (b"0", b""),
            };
            let now = request.now.to_string();
            let value = self
                .invoke(
                    &self.inner.scripts.end,
                    &[
                        id.as_bytes(),
                        check_owner,
                        owner,
                        end_state_name(request.state).as_bytes(),
                        request.reason.as_str().as_bytes(),
                        now.as_bytes(),
                    ],
                )
                .await?;
            let (kind, mut items) = reply(value, SCRIPT)?;
            match kind.as_str() {
                "not_found" => Ok(EndOutcome::NotFound),
                "not_owner" => Ok(EndOutcome::NotOwner),
                "already_ended" => Ok(EndOutcome::AlreadyEnded(next_record(&mut items, SCRIPT)?)),
                "expired" => Ok(EndOutcome::Expired(next_record(&mut items, SCRIPT)?)),
                "ended" => Ok(EndOutcome::Ended(next_record(&mut items, SCRIPT)?)),
                _ => Err(unexpected(SCRIPT)),
            }
        })
    }

    fn end_user_sessions(
        &self,
        request: EndUserRequest,
    ) -> BoxFuture<'_, Result<Vec<EndOutcome>, StoreError>> {
        Box::pin(async move {
            const SCRIPT: &str = "end_user";
            let except = request.except.map(|e| e.to_string()).unwrap_or_default();
            let now = request.now.to_string();
            let value = self
                .invoke(
                    &self.inner.scripts.end_user,
                    &[
                        request.user_id.as_bytes(),
                        except.as_bytes(),
                        end_state_name(request.state).as_bytes(),
                        request.reason.as_str().as_bytes(),
                        now.as_bytes(),
                    ],
                )
                .await?;
            let items = array(value).ok_or_else(|| unexpected(SCRIPT))?;
            let mut outcomes = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let Some(kind) = items.next() {
                let record = next_record(&mut items, SCRIPT)?;
                outcomes.push(match text(&kind).as_deref() {
                    Some("ended") => EndOutcome::Ended(record),
                    Some("expired") => EndOutcome::Expired(record),
                    _ => return Err(unexpected(SCRIPT)),
                });
            }
            Ok(outcomes)
        })
    }

    fn list_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
        Box::pin(async move {
            let value = self
                .invoke(&self.inner.scripts.list_user, &[user_id.as_bytes()])
                .await?;
            array(value)
                .ok_or_else(|| unexpected("list_user"))?
                .into_iter()
                .map(record)
                .collect()
        })
    }

    fn sweep(&self, request: SweepRequest) -> BoxFuture<'_, Result<SweepBatch, StoreError>> {
        Box::pin(async move {
            const SCRIPT: &str = "sweep";
            let now = request.now.to_string();
            let purge_before = request.purge_ended_before.to_string();
            let limit = request.limit.min(MAX_SWEEP_SCRIPT_BATCH);
            let limit_text = limit.to_string();
            let value = self
                .invoke(
                    &self.inner.scripts.sweep,
                    &[
                        now.as_bytes(),
                        purge_before.as_bytes(),
                        limit_text.as_bytes(),
                    ],
                )
                .await?;
            let mut items = array(value).ok_or_else(|| unexpected(SCRIPT))?.into_iter();
            let done = match items.next() {
                Some(Value::Int(flag)) => flag == 1,
                _ => return Err(unexpected(SCRIPT)),
            };
            let mut swept = Vec::new();
            while let Some(kind) = items.next() {
                let record = next_record(&mut items, SCRIPT)?;
                let (action, reason) = match text(&kind).as_deref() {
                    Some("expired") => (
                        SweepAction::Expired,
                        record.reason.clone().ok_or_else(|| corrupt("reason"))?,
                    ),
                    Some("purged") => (SweepAction::Purged, Reason::RETENTION),
                    _ => return Err(unexpected(SCRIPT)),
                };
                swept.push(SweptSession {
                    action,
                    id: record.id,
                    user_id: record.user_id.into(),
                    jkt: record.jkt,
                    generation: record.generation,
                    reason,
                });
            }
            // Processed entries leave the indexes, so every batch starts from the
            // front: no cursor is needed.
            Ok(SweepBatch {
                swept,
                cursor: 0,
                done,
            })
        })
    }

    fn count_active(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let key = self.key("active", "");
            let mut conn = self.conn();
            self.call(redis::cmd("ZCARD").arg(&key).query_async(&mut conn))
                .await
        })
    }
}

/// One call of the `update` script, shared by `replace_tokens`, `touch` and
/// `bind_dbsc`: every update extends the idle deadline; `replace` also checks the key
/// and moves the tokens to the successor hash, `bind` binds a pending DBSC session to
/// its key (the stored binding and the key's thumbprint).
struct Update {
    id: SessionId,
    now: i64,
    idle_expires_at: i64,
    replace: Option<(Jkt, TokenHash)>,
    bind: Option<(String, Jkt)>,
}

impl RedisStore {
    /// Runs the `update` script: `ARGV` id, jkt, successor hash, now, idle deadline,
    /// binding, bound key (empty where the update leaves that part alone).
    async fn update(&self, update: Update) -> Result<UpdateOutcome, StoreError> {
        let id = update.id.to_string();
        let (jkt, next) = update
            .replace
            .map(|(jkt, next)| (jkt.to_string(), b64::encode(next.as_bytes())))
            .unwrap_or_default();
        let (binding, bound_jkt) = update
            .bind
            .map(|(binding, jkt)| (binding, jkt.to_string()))
            .unwrap_or_default();
        let now = update.now.to_string();
        let idle = update.idle_expires_at.to_string();
        let value = self
            .invoke(
                &self.inner.scripts.update,
                &[
                    id.as_bytes(),
                    jkt.as_bytes(),
                    next.as_bytes(),
                    now.as_bytes(),
                    idle.as_bytes(),
                    binding.as_bytes(),
                    bound_jkt.as_bytes(),
                ],
            )
            .await?;
        update_outcome(value)
    }
}
