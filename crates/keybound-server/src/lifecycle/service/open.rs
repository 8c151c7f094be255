//! Opening a session and issuing its tokens (login, and every later issuance).

use std::sync::PoisonError;
use std::time::Duration;

use keybound_proto::{AccessTokenClaims, TokenResponse, b64};

use super::super::audit::AuditEventKind;
use super::super::policy::secs;
use super::super::risk::{LifetimeLimits, RequestSignals, RiskContext, RiskDecision, RiskEvent};
use super::super::tokens::{hash_secret, random_secret};
use super::{SessionService, check_user_id, parse_jkt};
use crate::lifecycle::{LifecycleError, Policy, metrics};
use crate::session::{Actor, Jkt, Reason, SessionId, SessionState};
use crate::store::{CreateOutcome, CreateRequest, SessionBinding, SessionRecord};
use zeroize::Zeroizing;

const MAX_DEVICE_LABEL_LEN: usize = 128;

/// What the login request tells about the new session.
#[non_exhaustive]
#[derive(Clone, Debug, Default)]
pub struct OpenRequest {
    /// A label for the device ("Firefox on Linux"), shown in the session list. Control
    /// characters are dropped and it is cut to 128 bytes.
    pub device_label: Option<String>,
    /// The request's signals, for the risk policy.
    pub signals: RequestSignals,
    /// The user's fence, read before the login authenticated the user
    /// ([`SessionService::login_fence`]). Without one, the fence is read when
    /// [`open_session`](SessionService::open_session) starts.
    pub fence: Option<LoginFence>,
}

/// A user's revocation fence as a login read it, before authenticating the user.
///
/// Ending all of a user's sessions ([`revoke_user`](SessionService::revoke_user),
/// [`revoke_others`](SessionService::revoke_others), a sensitive-action rotation that
/// revokes the others) moves the fence in the same atomic step. A login that hands its
/// fence to [`OpenRequest::fence`] then cannot open a session once the fence has moved:
/// [`open_session`](SessionService::open_session) fails with `login_superseded`. So a
/// login that checked the old password while the user changed it and signed out
/// everywhere never leaves a session behind, on any store or node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginFence {
    user_id: String,
    value: u64,
}

impl LoginFence {
    /// The user the fence was read for.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

impl OpenRequest {
    /// A request without label or signals.
    pub fn new() -> Self {
        Self::default()
    }

    /// With a device label.
    pub fn device_label(mut self, label: impl Into<String>) -> Self {
        self.device_label = Some(label.into());
        self
    }

    /// With the request's signals.
    pub fn signals(mut self, signals: RequestSignals) -> Self {
        self.signals = signals;
        self
    }

    /// With the fence the login read before authenticating the user.
    pub fn fence(mut self, fence: LoginFence) -> Self {
        self.fence = Some(fence);
        self
    }
}

/// A session just opened.
pub(super) struct Opened {
    pub(super) record: SessionRecord,
    secret: Zeroizing<[u8; 32]>,
    pub(super) access: i64,
    pub(super) now: i64,
}

/// Effective lifetimes of one issuance, in seconds.
pub(super) struct Lifetimes {
    pub(super) access: i64,
    pub(super) idle: i64,
    pub(super) absolute: i64,
    pub(super) absolute_limited: bool,
}

impl Lifetimes {
    pub(super) fn new(policy: &Policy, limits: Option<&LifetimeLimits>) -> Self {
        let mut l = Self {
            access: secs(policy.access_token_lifetime()),
            idle: secs(policy.idle_timeout()),
            absolute: secs(policy.absolute_lifetime()),
            absolute_limited: false,
        };
        if let Some(limits) = limits {
            let lower = |current: i64, limit: Option<Duration>| {
                limit.map_or(current, |d| current.min(secs(d).max(1)))
            };
            l.access = lower(l.access, limits.access_token_lifetime);
            l.idle = lower(l.idle, limits.idle_timeout);
            l.absolute = lower(l.absolute, limits.absolute_lifetime);
            l.absolute_limited = limits.absolute_lifetime.is_some();
        }
        l
    }
}

fn clean_device_label(label: Option<&str>) -> Option<String> {
    let mut out = String::new();
    for c in label?.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_DEVICE_LABEL_LEN {
            break;
        }
        out.push(c);
    }
    let trimmed = out.trim_end();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

impl SessionService {
    /// Asks the risk policy, if any, and counts its decision.
    pub(super) async fn assess(&self, context: RiskContext<'_>) -> RiskDecision {
        let Some(risk) = &self.inner.risk else {
            return RiskDecision::Allow;
        };
        let event = match context.event {
            RiskEvent::Login => "login",
            RiskEvent::Refresh => "refresh",
        };
        let decision = risk.assess(context).await;
        let label = match &decision {
            RiskDecision::Allow => "allow",
            RiskDecision::Shorten(_) => "shorten",
            RiskDecision::RequireReauthentication => "reauthenticate",
            RiskDecision::Revoke(_) => "revoke",
        };
        metrics::risk(event, label);
        decision
    }

    /// The token response for `record`, whose current refresh secret is `secret`.
    pub(super) fn token_response(
        &self,
        record: &SessionRecord,
        secret: &[u8; 32],
        access_secs: i64,
        now: i64,
    ) -> Result<TokenResponse, LifecycleError> {
        let exp = now.saturating_add(access_secs).min(record.deadline());
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|_| LifecycleError::Randomness)?;
        let sid = record.id.to_string();
        let claims = AccessTokenClaims {
            iss: self.inner.issuer.clone(),
            sub: record.user_id.clone(),
            sid: sid.clone(),
            jti: b64::encode(jti),
            iat: now,
            exp,
            jkt: record.jkt.to_string(),
        };
        let access_token = self
            .inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .sign(&claims)
            .map_err(LifecycleError::Signing)?;
        Ok(TokenResponse {
            access_token,
            token_type: "DPoP".into(),
            expires_in: u64::try_from(exp - now).unwrap_or(0),
            refresh_token: self
                .inner
                .secret
                .issue(&record.id, record.generation, secret),
            session_id: sid,
            session_expires_at: record.absolute_expires_at,
            idle_expires_at: record.idle_expires_at,
            server_time: now,
        })
    }

    /// Reads the user's fence. Call it before checking the user's credentials and pass
    /// it to [`OpenRequest::fence`]: if the user's sessions are all revoked meanwhile
    /// (a password change signing out everywhere), the login cannot open a session.
    ///
    /// ```
    /// # use keybound_server::{KeyRing, SessionService};
    /// # use keybound_server::lifecycle::{Actor, OpenRequest, Reason};
    /// # use keybound_server::store::MemoryStore;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let service = SessionService::builder(MemoryStore::new(), KeyRing::generate().unwrap()).build().unwrap();
    /// # let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    /// let fence = service.login_fence("alice").await?;
    /// // ... the password is checked here, while the user changes it elsewhere:
    /// service.revoke_user("alice", None, Reason::SENSITIVE_ACTION, Actor::System).await?;
    /// let refused = service.open_session("alice", jkt, OpenRequest::new().fence(fence)).await;
    /// assert_eq!(refused.unwrap_err().code(), "login_superseded");
    /// # Ok::<(), keybound_server::LifecycleError>(())
    /// # }).unwrap();
    /// ```
    pub async fn login_fence(&self, user_id: &str) -> Result<LoginFence, LifecycleError> {
        check_user_id(user_id)?;
        let value = self.inner.store.user_fence(user_id).await?;
        Ok(LoginFence {
            user_id: user_id.to_owned(),
            value,
        })
    }

    /// Opens a session for `user_id` (whom the application has just authenticated),
    /// bound to `jkt`, the thumbprint of the key that signed the login request's
    /// proof. Returns the token response of DESIGN §3.
    ///
    /// At the per-user limit ([`max_sessions_per_user`](crate::lifecycle::SessionServiceBuilder::max_sessions_per_user)),
    /// the user's least recently used active session is revoked (reason
    /// `session_limit`, audited and counted) in the same atomic step.
    ///
    /// Errors: `invalid_input` (bad user id or thumbprint, a fence read for another
    /// user), `login_superseded` (the user's sessions were all revoked since the fence
    /// was read), `login_denied` / `reauthentication_required` (risk policy), store
    /// and signing failures.
    pub async fn open_session(
        &self,
        user_id: &str,
        jkt: &str,
        request: OpenRequest,
    ) -> Result<TokenResponse, LifecycleError> {
        check_user_id(user_id)?;
        let jkt = parse_jkt(jkt)?;
        let opened = self
            .open_record(user_id, jkt, SessionBinding::Dpop, request, None, None)
            .await?;
        self.token_response(&opened.record, &opened.secret, opened.access, opened.now)
    }

    /// Opens a session record bound as `binding` (checks, risk policy, store, audit,
    /// metrics). `idle_cap`: a shorter idle deadline (a DBSC session's registration
    /// window); `note`: the reason written into the `session.created` event.
    pub(super) async fn open_record(
        &self,
        user_id: &str,
        jkt: Jkt,
        binding: SessionBinding,
        request: OpenRequest,
        idle_cap: Option<i64>,
        note: Option<Reason>,
    ) -> Result<Opened, LifecycleError> {
        check_user_id(user_id)?;
        let fence = match &request.fence {
            Some(fence) if fence.user_id != user_id => {
                return Err(LifecycleError::InvalidInput {
                    field: "fence",
                    reason: "read for another user",
                });
            }
            Some(fence) => fence.value,
            None => self.inner.store.user_fence(user_id).await?,
        };
        let device_label = clean_device_label(request.device_label.as_deref());
        let now = self.now();
        let decision = self
            .assess(RiskContext {
                event: RiskEvent::Login,
                user_id,
                session: None,
                device_label: device_label.as_deref(),
                signals: &request.signals,
                now,
            })
            .await;
        let limits = match decision {
            RiskDecision::Allow => None,
            RiskDecision::Shorten(limits) => Some(limits),
            RiskDecision::RequireReauthentication => {
                return Err(LifecycleError::ReauthenticationRequired);
            }
            RiskDecision::Revoke(_) => return Err(LifecycleError::LoginDenied),
        };
        let lifetimes = Lifetimes::new(&self.inner.policy, limits.as_ref());
        let id = SessionId::generate().map_err(|_| LifecycleError::Randomness)?;
        let secret = random_secret()?;
        let absolute_expires_at = now.saturating_add(lifetimes.absolute);
        let idle = idle_cap.map_or(lifetimes.idle, |cap| cap.min(lifetimes.idle));
        let record = SessionRecord {
            id,
            user_id: user_id.to_owned(),
            jkt,
            device_label,
            user_agent_hash: request.signals.user_agent_hash(),
            created_at: now,
            last_seen_at: now,
            idle_expires_at: now.saturating_add(idle).min(absolute_expires_at),
            absolute_expires_at,
            generation: 0,
            current_hash: hash_secret(&secret),
            previous_hash: None,
            grace_until: None,
            state: SessionState::Active,
            reason: None,
            ended_at: None,
            binding,
        };
        let outcome = self
            .inner
            .store
            .create(CreateRequest {
                record: record.clone(),
                fence: Some(fence),
                max_active: self.inner.max_sessions_per_user,
            })
            .await?;
        let evicted = match outcome {
            CreateOutcome::Created { evicted } => evicted,
            CreateOutcome::Fenced => return Err(LifecycleError::LoginSuperseded),
        };
        for old in &evicted {
            self.ended(old, &Actor::System);
        }
        metrics::opened();
        self.emit(
            AuditEventKind::Created,
            (&record).into(),
            note.as_ref(),
            &Actor::User(user_id.to_owned()),
        );
        Ok(Opened {
            record,
            secret,
            access: lifetimes.access,
            now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_labels_are_cleaned() {
        assert_eq!(clean_device_label(None), None);
        assert_eq!(clean_device_label(Some("  ")), None);
        assert_eq!(
            clean_device_label(Some(" Firefox\u{7}\non Linux ")).as_deref(),
            Some("Firefoxon Linux")
        );
        let long = "é".repeat(100);
        let cleaned = clean_device_label(Some(&long)).unwrap();
        assert_eq!(cleaned.len(), 128);
    }
}
