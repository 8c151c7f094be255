//! Refreshing: rotation of refresh tokens with reuse detection (DESIGN §4), after
//! the risk policy's say.

use keybound_proto::TokenResponse;

use super::super::audit::AuditEventKind;
use super::super::policy::secs;
use super::super::risk::{LifetimeLimits, RequestSignals, RiskContext, RiskDecision, RiskEvent};
use super::super::tokens::{RefreshToken, hash_secret};
use super::SessionService;
use super::open::Lifetimes;
use crate::lifecycle::{LifecycleError, metrics};
use crate::session::{Actor, Jkt, Reason, SessionId, SessionState, TokenHash};
use crate::store::{EndState, RotateOutcome, RotateRequest};

impl SessionService {
    /// Rotates a refresh token: `refresh_token` from the request body, `jkt` the
    /// thumbprint of the key that signed the request's (verified) proof.
    ///
    /// The current token gets a new generation; the previous token, by the same key,
    /// within the grace period, gets the current generation again (same refresh
    /// token, fresh access token); any other token of the session revokes it
    /// (`refresh_token_reused`). All failures are `invalid_grant`.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        jkt: &str,
        signals: &RequestSignals,
    ) -> Result<TokenResponse, LifecycleError> {
        let result = self.refresh_inner(refresh_token, jkt, signals).await;
        let label = match &result {
            Ok((_, label)) => label,
            Err(LifecycleError::RefreshTokenReused) => "reuse_detected",
            Err(LifecycleError::RefreshKeyMismatch) => "key_mismatch",
            Err(LifecycleError::SessionEnded { .. }) => "not_active",
            Err(LifecycleError::ReauthenticationRequired) => "denied",
            Err(
                LifecycleError::Store(_) | LifecycleError::Signing(_) | LifecycleError::Randomness,
            ) => "error",
            Err(_) => "invalid",
        };
        metrics::refresh(label);
        result.map(|(tokens, _)| tokens)
    }

    async fn refresh_inner(
        &self,
        refresh_token: &str,
        jkt: &str,
        signals: &RequestSignals,
    ) -> Result<(TokenResponse, &'static str), LifecycleError> {
        let token =
            RefreshToken::parse(refresh_token).ok_or(LifecycleError::MalformedRefreshToken)?;
        if !self.inner.secret.authenticates(&token) {
            return Err(LifecycleError::InvalidRefreshToken);
        }
        let jkt = Jkt::parse(jkt).ok_or(LifecycleError::RefreshKeyMismatch)?;
        let now = self.now();
        let limits = self
            .refresh_risk(token.session_id, jkt, signals, now)
            .await?;
        let lifetimes = Lifetimes::new(&self.inner.policy, limits.as_ref());
        let next = self
            .inner
            .secret
            .successor(&token.session_id, token.generation, &token.secret);
        let next_hash = hash_secret(&next);
        let outcome = self
            .inner
            .store
            .rotate(RotateRequest {
                id: token.session_id,
                presented: hash_secret(&token.secret),
                presented_generation: token.generation,
                jkt,
                next: next_hash,
                now,
                grace_until: now.saturating_add(secs(self.inner.policy.refresh_grace())),
                idle_expires_at: now.saturating_add(lifetimes.idle),
                absolute_cap: lifetimes
                    .absolute_limited
                    .then(|| now.saturating_add(lifetimes.absolute)),
            })
            .await?;
        self.rotation_result(outcome, &token, (&next, next_hash), &lifetimes, now)
    }

    /// The risk policy's say on refreshing session `id` with a proof by `jkt`: the
    /// lifetime limits to issue with (`None`: the policy's), or the refusal, after the
    /// session was revoked. Without a risk policy, or for a session that is not active
    /// or is bound to another key (the store's rotation refuses those), nothing is asked.
    async fn refresh_risk(
        &self,
        id: SessionId,
        jkt: Jkt,
        signals: &RequestSignals,
        now: i64,
    ) -> Result<Option<LifetimeLimits>, LifecycleError> {
        if self.inner.risk.is_none() {
            return Ok(None);
        }
        let record = self
            .inner
            .store
            .load(id)
            .await?
            .ok_or(LifecycleError::InvalidRefreshToken)?;
        if record.effective_state(now) != SessionState::Active || record.jkt != jkt {
            return Ok(None);
        }
        let decision = self
            .assess(RiskContext {
                event: RiskEvent::Refresh,
                user_id: &record.user_id,
                session: Some(&record),
                device_label: record.device_label.as_deref(),
                signals,
                now,
            })
            .await;
        match decision {
            RiskDecision::Allow => Ok(None),
            RiskDecision::Shorten(limits) => Ok(Some(limits)),
            RiskDecision::RequireReauthentication => {
                self.end_one(
                    record.id,
                    None,
                    EndState::Revoked,
                    Reason::REAUTHENTICATION_REQUIRED,
                    Some(Actor::System),
                )
                .await?;
                Err(LifecycleError::ReauthenticationRequired)
            }
            RiskDecision::Revoke(reason) => {
                let end = self
                    .end_one(
                        record.id,
                        None,
                        EndState::Revoked,
                        reason,
                        Some(Actor::System),
                    )
                    .await?;
                Err(LifecycleError::SessionEnded { state: end.state })
            }
        }
    }

    /// What the store's rotation means for the client: new tokens (with the metrics
    /// label), or the refusal; reuse and expiry are reported here.
    fn rotation_result(
        &self,
        outcome: RotateOutcome,
        token: &RefreshToken,
        (next, next_hash): (&[u8; 32], TokenHash),
        lifetimes: &Lifetimes,
        now: i64,
    ) -> Result<(TokenResponse, &'static str), LifecycleError> {
        match outcome {
            RotateOutcome::Rotated(record) => {
                self.drop_cached(&record.id);
                self.emit(
                    AuditEventKind::Refreshed,
                    (&record).into(),
                    None,
                    &Actor::User(record.user_id.clone()),
                );
                let tokens = self.token_response(&record, next, lifetimes.access, now)?;
                Ok((tokens, "rotated"))
            }
            RotateOutcome::GraceReplay(record) => {
                // The store matched the previous hash; the successor handed out again
                // must be exactly the one the rotation stored.
                if record.current_hash != next_hash
                    || Some(record.generation) != token.generation.checked_add(1)
                {
                    return Err(LifecycleError::InvalidRefreshToken);
                }
                let tokens = self.token_response(&record, next, lifetimes.access, now)?;
                Ok((tokens, "grace_replay"))
            }
            RotateOutcome::ReuseDetected(record) => {
                tracing::warn!(
                    target: "keybound::lifecycle",
                    session_id = %record.id,
                    user_id = %record.user_id,
                    presented_generation = token.generation,
                    current_generation = record.generation,
                    "refresh token reuse: session revoked"
                );
                self.ended(&record, &Actor::System);
                Err(LifecycleError::RefreshTokenReused)
            }
            RotateOutcome::KeyMismatch => Err(LifecycleError::RefreshKeyMismatch),
            RotateOutcome::Unknown => Err(LifecycleError::InvalidRefreshToken),
            RotateOutcome::NotActive {
                record,
                newly_expired,
            } => {
                if newly_expired {
                    self.ended(&record, &Actor::System);
                }
                Err(LifecycleError::SessionEnded {
                    state: record.state,
                })
            }
        }
    }
}
