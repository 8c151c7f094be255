//! The session lifecycle, statefully: `SessionService` on the memory store, driven by
//! arbitrary sequences of open / refresh / junk refresh / extend / close / revoke /
//! sensitive rotation / sweep / session check / clock moves under an arbitrary valid
//! policy, against a model of DESIGN §4. After every move, every session the model
//! knows is read back and must match it exactly.
//!
//! The invariants this enforces:
//! * terminal states are final (the model never leaves one, and the service must
//!   agree);
//! * at most one successor per refresh token (a token refreshed twice yields the same
//!   successor, and only the latest generation rotates);
//! * reuse outside the grace revokes (a stale token by any key, or the previous one
//!   after the grace or by another key, revokes the session with `refresh_reuse`),
//!   while junk (a token this server did not issue) changes nothing;
//! * no session outlives its absolute lifetime (state, deadlines and access-token
//!   expiry), and revocation is immediate for the session check (with its cache).
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use keybound_proto::ed25519_dalek::SigningKey;
use keybound_proto::{AccessToken, PublicJwk, TokenResponse};
use keybound_server::fuzzing::parse_refresh_token;
use keybound_server::lifecycle::{
    Actor, OpenRequest, Policy, Reason, RefreshSecret, RequestSignals, SessionService, SessionState,
};
use keybound_server::store::MemoryStore;
use keybound_server::{
    Clock, KeyRing, LifecycleError, ManualClock, ServerKey, SessionCheck, SessionDenied,
};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

const USERS: [&str; 3] = ["alice", "bob", "carol"];
const MAX_SESSIONS: usize = 12;

#[derive(Arbitrary, Debug)]
struct Input {
    access: u8,
    idle: u8,
    absolute: u16,
    grace: u8,
    retention: u16,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Open {
        user: u8,
        key: u8,
    },
    Refresh {
        token: u8,
        key: u8,
    },
    RefreshJunk {
        token: u8,
        at: u8,
    },
    Extend {
        session: u8,
    },
    Close {
        session: u8,
    },
    Revoke {
        session: u8,
    },
    RevokeForUser {
        user: u8,
        session: u8,
    },
    RevokeUser {
        user: u8,
        except: Option<u8>,
    },
    Sensitive {
        session: u8,
        key: u8,
        revoke_others: bool,
    },
    Sweep,
    Check {
        session: u8,
        key: u8,
    },
    Advance {
        secs: u16,
    },
}

fuzz_target!(|input: Input| {
    let Some(policy) = policy(&input) else { return };
    runtime().block_on(run(policy, input.ops));
});

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    })
}

/// Thumbprints of the three device keys.
fn jkts() -> &'static [String; 3] {
    static JKTS: OnceLock<[String; 3]> = OnceLock::new();
    JKTS.get_or_init(|| {
        [10u8, 11, 12].map(|seed| {
            PublicJwk::from_verifying_key(&SigningKey::from_bytes(&[seed; 32]).verifying_key())
                .thumbprint()
        })
    })
}

/// A valid policy from the input's numbers, with short lifetimes so that expiry and
/// purging happen within a sequence.
fn policy(input: &Input) -> Option<Policy> {
    let access = 2 + u64::from(input.access % 60);
    let idle = access + u64::from(input.idle % 120);
    let absolute = idle + u64::from(input.absolute % 900);
    let grace = 1 + u64::from(input.grace) % (access - 1);
    let retention = 1 + u64::from(input.retention % 1000);
    let policy = Policy::default()
        .with_access_token_lifetime(Duration::from_secs(access))
        .with_idle_timeout(Duration::from_secs(idle))
        .with_absolute_lifetime(Duration::from_secs(absolute))
        .with_refresh_grace(Duration::from_secs(grace))
        .with_retention(Duration::from_secs(retention));
    policy.validate().ok().map(|()| policy)
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// What the model knows about one session.
#[derive(Debug)]
struct Session {
    id: String,
    user: usize,
    key: usize,
    absolute: i64,
    idle: i64,
    current: String,
    previous: Option<String>,
    grace_until: Option<i64>,
    /// Terminal state, reason and time, once it ended.
    ended: Option<(SessionState, &'static str, i64)>,
    purged: bool,
}

impl Session {
    fn deadline(&self) -> i64 {
        self.idle.min(self.absolute)
    }

    /// Makes an expiry by time part of the model (the service shows it on every read).
    fn settle(&mut self, now: i64) {
        if self.ended.is_none() && now >= self.deadline() {
            let reason = if self.absolute <= self.idle {
                "absolute_lifetime"
            } else {
                "idle_timeout"
            };
            self.ended = Some((SessionState::Expired, reason, self.deadline()));
        }
    }

    fn end(&mut self, state: SessionState, reason: &'static str, now: i64) {
        assert!(self.ended.is_none(), "the model left a terminal state");
        self.ended = Some((state, reason, now));
    }

    fn state(&self) -> SessionState {
        self.ended
            .map_or(SessionState::Active, |(state, _, _)| state)
    }
}

struct Model {
    policy: Policy,
    clock: ManualClock,
    service: SessionService,
    sessions: Vec<Session>,
    /// Every refresh token issued: its text and its session's index.
    tokens: Vec<(String, usize)>,
    /// The successor each refresh token was refreshed into.
    successor: HashMap<String, String>,
}

impl Model {
    fn now(&self) -> i64 {
        self.clock.now_secs()
    }

    fn session(&self, index: u8) -> Option<usize> {
        (!self.sessions.is_empty()).then(|| usize::from(index) % self.sessions.len())
    }

    /// Checks a token response against the session it belongs to.
    fn check_tokens(&self, index: usize, tokens: &TokenResponse) {
        let s = &self.sessions[index];
        let now = self.now();
        assert_eq!(tokens.session_id, s.id);
        assert_eq!(tokens.session_expires_at, s.absolute);
        assert_eq!(tokens.idle_expires_at, s.idle);
        assert_eq!(tokens.server_time, now);
        let token = AccessToken::parse(&tokens.access_token)
            .unwrap_or_else(|e| panic!("an issued access token does not parse: {e}"));
        let claims = token.claims();
        assert_eq!(claims.sid, s.id);
        assert_eq!(claims.sub, USERS[s.user]);
        assert_eq!(claims.jkt, jkts()[s.key]);
        let access = secs(self.policy.access_token_lifetime());
        assert_eq!(claims.exp, (now + access).min(s.deadline()));
        assert!(
            claims.exp <= s.absolute,
            "an access token outlives its session"
        );
        assert!(claims.exp > now);
    }

    fn expect_ended(&self, index: usize, err: &LifecycleError) {
        match err {
            LifecycleError::SessionEnded { state } => {
                assert_eq!(*state, self.sessions[index].state());
            }
            other => panic!("expected session_ended, got {other:?}"),
        }
    }

    /// Ends one session as `close`/`revoke` do and checks the result.
    fn end(
        &mut self,
        index: usize,
        result: Result<keybound_server::lifecycle::EndResult, LifecycleError>,
        state: SessionState,
        reason: &'static str,
    ) {
        let now = self.now();
        let s = &mut self.sessions[index];
        if s.purged {
            assert!(
                matches!(result, Err(LifecycleError::SessionNotFound)),
                "{result:?}"
            );
            return;
        }
        let result = result.unwrap_or_else(|e| panic!("ending a session: {e:?}"));
        if s.ended.is_some() {
            assert!(!result.changed);
        } else {
            assert!(result.changed);
            s.end(state, reason, now);
        }
        assert_eq!(result.state, s.state());
    }

    /// Revokes every active session of `user` but `except`; returns how many.
    fn revoke_user(&mut self, user: usize, except: Option<usize>, reason: &'static str) -> usize {
        let now = self.now();
        let mut revoked = 0;
        for (i, s) in self.sessions.iter_mut().enumerate() {
            if s.user == user && Some(i) != except && !s.purged && s.ended.is_none() {
                s.end(SessionState::Revoked, reason, now);
                revoked += 1;
            }
        }
        revoked
    }

    async fn apply(&mut self, op: Op) {
        let now = self.now();
        for s in &mut self.sessions {
            s.settle(now);
        }
        let service = self.service.clone();
        match op {
            Op::Open { user, key } => {
                if self.sessions.len() >= MAX_SESSIONS {
                    return;
                }
                let (user, key) = (usize::from(user) % 3, usize::from(key) % 3);
                let tokens = service
                    .open_session(USERS[user], &jkts()[key], OpenRequest::new())
                    .await
                    .unwrap_or_else(|e| panic!("open_session: {e:?}"));
                let absolute = now + secs(self.policy.absolute_lifetime());
                self.sessions.push(Session {
                    id: tokens.session_id.clone(),
                    user,
                    key,
                    absolute,
                    idle: (now + secs(self.policy.idle_timeout())).min(absolute),
                    current: tokens.refresh_token.clone(),
                    previous: None,
                    grace_until: None,
                    ended: None,
                    purged: false,
                });
                let index = self.sessions.len() - 1;
                self.tokens.push((tokens.refresh_token.clone(), index));
                self.check_tokens(index, &tokens);
            }
            Op::Refresh { token, key } => {
                if self.tokens.is_empty() {
                    return;
                }
                let (text, index) = self.tokens[usize::from(token) % self.tokens.len()].clone();
                let key = usize::from(key) % 3;
                let result = service
                    .refresh(&text, &jkts()[key], &RequestSignals::new())
                    .await;
                self.refreshed(&text, index, key, result);
            }
            Op::RefreshJunk { token, at } => {
                if self.tokens.is_empty() {
                    return;
                }
                let (text, _) = &self.tokens[usize::from(token) % self.tokens.len()];
                let mut junk = text.clone().into_bytes();
                let at = usize::from(at) % junk.len();
                junk[at] = if junk[at] == b'A' { b'B' } else { b'A' };
                let junk = String::from_utf8_lossy(&junk).into_owned();
                for key in 0..3 {
                    let result = service
                        .refresh(&junk, &jkts()[key], &RequestSignals::new())
                        .await;
                    assert!(
                        matches!(
                            result,
                            Err(LifecycleError::MalformedRefreshToken
                                | LifecycleError::InvalidRefreshToken)
                        ),
                        "junk refresh token: {result:?}"
                    );
                }
            }
            Op::Extend { session } => {
                let Some(index) = self.session(session) else {
                    return;
                };
                let result = service.extend(&self.sessions[index].id).await;
                let s = &mut self.sessions[index];
                if s.purged {
                    assert!(matches!(result, Err(LifecycleError::SessionNotFound)));
                } else if s.ended.is_some() {
                    let err = result
                        .err()
                        .unwrap_or_else(|| panic!("extended an ended session"));
                    self.expect_ended(index, &err);
                } else {
                    let info = result.unwrap_or_else(|e| panic!("extend: {e:?}"));
                    s.idle = (now + secs(self.policy.idle_timeout())).min(s.absolute);
                    assert_eq!(info.idle_expires_at, s.idle);
                    assert_eq!(info.state, SessionState::Active);
                }
            }
            Op::Close { session } => {
                let Some(index) = self.session(session) else {
                    return;
                };
                let result = service.close(&self.sessions[index].id).await;
                self.end(index, result, SessionState::Closed, "logout");
            }
            Op::Revoke { session } => {
                let Some(index) = self.session(session) else {
                    return;
                };
                let result = service
                    .revoke(
                        &self.sessions[index].id,
                        Reason::ADMIN_REVOKED,
                        Actor::Admin("fuzz".into()),
                    )
                    .await;
                self.end(index, result, SessionState::Revoked, "admin_revoked");
            }
            Op::RevokeForUser { user, session } => {
                let Some(index) = self.session(session) else {
                    return;
                };
                let user = usize::from(user) % 3;
                let result = service
                    .revoke_for_user(USERS[user], &self.sessions[index].id)
                    .await;
                let s = &self.sessions[index];
                if !s.purged && s.user != user {
                    assert!(
                        matches!(result, Err(LifecycleError::NotSessionOwner)),
                        "{result:?}"
                    );
                } else {
                    self.end(index, result, SessionState::Revoked, "user_revoked");
                }
            }
            Op::RevokeUser { user, except } => {
                let user = usize::from(user) % 3;
                let except = except.and_then(|e| self.session(e));
                let except_id = except.map(|i| self.sessions[i].id.clone());
                let result = service
                    .revoke_user(
                        USERS[user],
                        except_id.as_deref(),
                        Reason::ADMIN_REVOKED,
                        Actor::Admin("fuzz".into()),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("revoke_user: {e:?}"));
                let expected = self.revoke_user(user, except, "admin_revoked");
                assert_eq!(result, expected);
            }
            Op::Sensitive {
                session,
                key,
                revoke_others,
            } => {
                let Some(index) = self.session(session) else {
                    return;
                };
                let key = usize::from(key) % 3;
                let result = service
                    .rotate_on_sensitive_action(
                        &self.sessions[index].id,
                        &jkts()[key],
                        revoke_others,
                    )
                    .await;
                let s = &mut self.sessions[index];
                if s.purged {
                    assert!(matches!(result, Err(LifecycleError::SessionNotFound)));
                } else if s.ended.is_some() {
                    let err = result
                        .err()
                        .unwrap_or_else(|| panic!("rotated an ended session"));
                    self.expect_ended(index, &err);
                } else if s.key != key {
                    assert!(
                        matches!(result, Err(LifecycleError::SessionKeyMismatch)),
                        "{result:?}"
                    );
                } else {
                    let tokens = result.unwrap_or_else(|e| panic!("sensitive rotation: {e:?}"));
                    s.idle = (now + secs(self.policy.idle_timeout())).min(s.absolute);
                    s.previous = Some(std::mem::replace(
                        &mut s.current,
                        tokens.refresh_token.clone(),
                    ));
                    s.grace_until = None;
                    let user = s.user;
                    self.tokens.push((tokens.refresh_token.clone(), index));
                    self.check_tokens(index, &tokens);
                    if revoke_others {
                        self.revoke_user(user, Some(index), "sensitive_action");
                    }
                }
            }
            Op::Sweep => {
                let report = service
                    .sweep_once()
                    .await
                    .unwrap_or_else(|e| panic!("sweep: {e:?}"));
                let before = now - secs(self.policy.retention());
                let mut purged = 0;
                for s in &mut self.sessions {
                    if !s.purged && s.ended.is_some_and(|(_, _, at)| at <= before) {
                        s.purged = true;
                        purged += 1;
                    }
                }
                assert_eq!(report.purged, purged);
                let active = self.sessions.iter().filter(|s| s.ended.is_none()).count();
                assert_eq!(report.active, active as u64);
            }
            Op::Check { session, key } => {
                let Some(index) = self.session(session) else {
                    return;
                };
                let key = usize::from(key) % 3;
                let s = &self.sessions[index];
                let result = service.check(&s.id, USERS[s.user], &jkts()[key]).await;
                let expected = if s.purged {
                    Err(SessionDenied::Unknown)
                } else {
                    match s.state() {
                        SessionState::Active if s.key == key => Ok(()),
                        SessionState::Active => Err(SessionDenied::KeyMismatch),
                        SessionState::Expired => Err(SessionDenied::Expired),
                        SessionState::Revoked => Err(SessionDenied::Revoked),
                        SessionState::Closed => Err(SessionDenied::Closed),
                    }
                };
                assert_eq!(result, expected, "session check");
            }
            Op::Advance { secs } => self.clock.advance(Duration::from_secs(u64::from(secs))),
        }
    }

    /// The outcome of refreshing `text` (a token of session `index`) with key `key`.
    fn refreshed(
        &mut self,
        text: &str,
        index: usize,
        key: usize,
        result: Result<TokenResponse, LifecycleError>,
    ) {
        let now = self.now();
        let grace = secs(self.policy.refresh_grace());
        let idle = secs(self.policy.idle_timeout());
        let s = &mut self.sessions[index];
        if s.purged {
            assert!(
                matches!(result, Err(LifecycleError::InvalidRefreshToken)),
                "{result:?}"
            );
            return;
        }
        if s.ended.is_some() {
            let err = result
                .err()
                .unwrap_or_else(|| panic!("refreshed an ended session"));
            self.expect_ended(index, &err);
            return;
        }
        let in_grace = s.grace_until.is_some_and(|until| now < until);
        if text == s.current && key != s.key {
            assert!(
                matches!(result, Err(LifecycleError::RefreshKeyMismatch)),
                "{result:?}"
            );
        } else if text == s.current {
            let tokens = result.unwrap_or_else(|e| panic!("refresh of the current token: {e:?}"));
            let generation = |t: &str| parse_refresh_token(t).map(|t| t.generation);
            assert_eq!(
                generation(&tokens.refresh_token),
                generation(text).map(|g| g + 1)
            );
            s.previous = Some(std::mem::replace(
                &mut s.current,
                tokens.refresh_token.clone(),
            ));
            s.grace_until = Some(now + grace);
            s.idle = (now + idle).min(s.absolute);
            self.tokens.push((tokens.refresh_token.clone(), index));
            self.successor_is(text, &tokens.refresh_token);
            self.check_tokens(index, &tokens);
        } else if s.previous.as_deref() == Some(text) && in_grace && key == s.key {
            let tokens = result.unwrap_or_else(|e| panic!("grace replay: {e:?}"));
            assert_eq!(
                tokens.refresh_token, s.current,
                "grace replay gave another successor"
            );
            let successor = tokens.refresh_token.clone();
            self.successor_is(text, &successor);
            self.check_tokens(index, &tokens);
        } else {
            assert!(
                matches!(result, Err(LifecycleError::RefreshTokenReused)),
                "{result:?}"
            );
            s.end(SessionState::Revoked, "refresh_reuse", now);
        }
    }

    fn successor_is(&mut self, token: &str, successor: &str) {
        assert_ne!(token, successor);
        if let Some(earlier) = self
            .successor
            .insert(token.to_owned(), successor.to_owned())
        {
            assert_eq!(earlier, successor, "two successors for one refresh token");
        }
    }

    /// Reads every session back and compares it with the model.
    async fn compare(&mut self) {
        let now = self.now();
        let service = self.service.clone();
        for s in &mut self.sessions {
            s.settle(now);
            let read = service.session(&s.id).await;
            if s.purged {
                assert!(
                    matches!(read, Err(LifecycleError::SessionNotFound)),
                    "{read:?}"
                );
                continue;
            }
            let info = read.unwrap_or_else(|e| panic!("a session vanished: {e:?}"));
            assert_eq!(info.state, s.state(), "{s:?}");
            assert_eq!(
                info.reason.as_ref().map(Reason::as_str),
                s.ended.map(|e| e.1)
            );
            assert_eq!(info.ended_at, s.ended.map(|e| e.2));
            assert_eq!(info.expires_at, s.absolute);
            assert_eq!(info.idle_expires_at, s.idle);
            assert_eq!(info.user_id, USERS[s.user]);
            if now >= s.absolute {
                assert_ne!(
                    info.state,
                    SessionState::Active,
                    "outlived its absolute lifetime"
                );
            }
        }
        for (user, name) in USERS.iter().enumerate() {
            let listed: HashSet<String> = service
                .list_sessions(name, None)
                .await
                .unwrap_or_else(|e| panic!("list_sessions: {e:?}"))
                .into_iter()
                .map(|info| info.session_id)
                .collect();
            let expected: HashSet<String> = self
                .sessions
                .iter()
                .filter(|s| s.user == user && !s.purged)
                .map(|s| s.id.clone())
                .collect();
            assert_eq!(listed, expected);
        }
    }
}

async fn run(policy: Policy, ops: Vec<Op>) {
    let clock = ManualClock::new(1_700_000_000_000);
    let service = SessionService::builder(
        MemoryStore::new(),
        KeyRing::new(ServerKey::from_seed(&[3; 32])),
    )
    .clock(clock.clone())
    .policy(policy.clone())
    .refresh_secret(RefreshSecret::from_bytes([4; 32]))
    .build()
    .unwrap_or_else(|e| panic!("build: {e:?}"));
    let mut model = Model {
        policy,
        clock,
        service,
        sessions: Vec::new(),
        tokens: Vec::new(),
        successor: HashMap::new(),
    };
    for op in ops.into_iter().take(256) {
        model.apply(op).await;
        model.compare().await;
    }
}
