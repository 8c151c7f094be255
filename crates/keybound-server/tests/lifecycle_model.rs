//! Random sequences of lifecycle operations and clock moves, checked step by step
//! against a simple model: terminal states stay terminal, at most one generation is
//! live, a non-active session never verifies, purged sessions leave nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::jkt;
use keybound_server::lifecycle::{
    Actor, OpenRequest, Policy, Reason, RefreshSecret, RequestSignals, SessionId, SessionService,
    SessionState,
};
use keybound_server::proto::b64;
use keybound_server::store::{MemoryStore, SessionStore};
use keybound_server::{ManualClock, SessionCheck, SessionDenied};
use proptest::prelude::*;

const IDLE: i64 = 1800;
const ABSOLUTE: i64 = 43_200;
const GRACE: i64 = 30;
const RETENTION: i64 = 3600;

#[derive(Clone, Copy, Debug)]
enum Presented {
    Current,
    Previous,
    Older,
    Forged,
}

#[derive(Clone, Debug)]
enum Op {
    Open {
        user: usize,
        key: u8,
    },
    Refresh {
        s: usize,
        token: Presented,
        same_key: bool,
    },
    Extend {
        s: usize,
    },
    Close {
        s: usize,
    },
    Revoke {
        s: usize,
    },
    RevokeForUser {
        s: usize,
        user: usize,
    },
    RevokeUser {
        user: usize,
        except: Option<usize>,
    },
    Sensitive {
        s: usize,
        same_key: bool,
        revoke_others: bool,
    },
    Advance {
        secs: i64,
    },
    Sweep,
    Check {
        s: usize,
        right_user: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let presented = prop_oneof![
        4 => Just(Presented::Current),
        3 => Just(Presented::Previous),
        1 => Just(Presented::Older),
        1 => Just(Presented::Forged),
    ];
    let secs = prop_oneof![
        Just(1i64),
        Just(10),
        Just(29),
        Just(31),
        Just(299),
        Just(600),
        Just(1799),
        Just(1800),
        Just(3600),
        Just(4 * 3600),
        Just(13 * 3600),
    ];
    prop_oneof![
        3 => (0..3usize, 1..4u8).prop_map(|(user, key)| Op::Open { user, key }),
        8 => (0..8usize, presented, prop::bool::weighted(0.85))
            .prop_map(|(s, token, same_key)| Op::Refresh { s, token, same_key }),
        1 => (0..8usize).prop_map(|s| Op::Extend { s }),
        1 => (0..8usize).prop_map(|s| Op::Close { s }),
        1 => (0..8usize).prop_map(|s| Op::Revoke { s }),
        1 => (0..8usize, 0..3usize).prop_map(|(s, user)| Op::RevokeForUser { s, user }),
        1 => (0..3usize, prop::option::of(0..8usize))
            .prop_map(|(user, except)| Op::RevokeUser { user, except }),
        1 => (0..8usize, prop::bool::weighted(0.8), any::<bool>())
            .prop_map(|(s, same_key, revoke_others)| Op::Sensitive { s, same_key, revoke_others }),
        4 => secs.prop_map(|secs| Op::Advance { secs }),
        2 => Just(Op::Sweep),
        3 => (0..8usize, prop::bool::weighted(0.8)).prop_map(|(s, right_user)| Op::Check { s, right_user }),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    Revoked,
    Closed,
}

#[derive(Debug)]
struct Model {
    id: String,
    user: usize,
    key: u8,
    absolute: i64,
    idle: i64,
    /// The refresh token of every generation, in order.
    tokens: Vec<String>,
    grace_until: Option<i64>,
    ended: Option<(Ended, i64)>,
    purged: bool,
}

impl Model {
    fn generation(&self) -> usize {
        self.tokens.len() - 1
    }

    /// The state at `now`, with the time it ended.
    fn state(&self, now: i64) -> (SessionState, Option<i64>) {
        match self.ended {
            Some((Ended::Revoked, at)) => (SessionState::Revoked, Some(at)),
            Some((Ended::Closed, at)) => (SessionState::Closed, Some(at)),
            None => {
                let deadline = self.idle.min(self.absolute);
                if now >= deadline {
                    (SessionState::Expired, Some(deadline))
                } else {
                    (SessionState::Active, None)
                }
            }
        }
    }

    fn active(&self, now: i64) -> bool {
        !self.purged && self.state(now).0 == SessionState::Active
    }
}

fn state_code(state: SessionState) -> &'static str {
    match state {
        SessionState::Expired => "session_expired",
        SessionState::Revoked => "session_revoked",
        SessionState::Closed => "session_closed",
        SessionState::Active => "session_active",
    }
}

fn user_name(u: usize) -> String {
    format!("user{u}")
}

struct World {
    service: SessionService,
    clock: ManualClock,
    memory: Option<MemoryStore>,
    sessions: Vec<Model>,
}

impl World {
    fn now(&self) -> i64 {
        keybound_server::Clock::now_secs(&self.clock)
    }

    fn session(&self, s: usize) -> Option<usize> {
        (!self.sessions.is_empty()).then(|| s % self.sessions.len())
    }

    fn end(&mut self, i: usize, how: Ended) {
        let now = self.now();
        if self.sessions[i].active(now) {
            self.sessions[i].ended = Some((how, now));
        }
    }

    async fn step(&mut self, op: &Op) {
        let now = self.now();
        match *op {
            Op::Open { user, key } => {
                let t = self
                    .service
                    .open_session(&user_name(user), &jkt(key), OpenRequest::new())
                    .await
                    .unwrap();
                self.sessions.push(Model {
                    id: t.session_id,
                    user,
                    key,
                    absolute: now + ABSOLUTE,
                    idle: now + IDLE,
                    tokens: vec![t.refresh_token],
                    grace_until: None,
                    ended: None,
                    purged: false,
                });
            }
            Op::Refresh { s, token, same_key } => {
                let Some(i) = self.session(s) else { return };
                let m = &self.sessions[i];
                let g = m.generation();
                let text = match token {
                    Presented::Current => m.tokens[g].clone(),
                    Presented::Previous if g >= 1 => m.tokens[g - 1].clone(),
                    Presented::Older if g >= 2 => m.tokens[g - 2].clone(),
                    Presented::Forged => {
                        let (head, _) = m.tokens[g].rsplit_once('.').unwrap();
                        format!("{head}.{}", b64::encode([9u8; 48]))
                    }
                    _ => return,
                };
                let key = if same_key { m.key } else { m.key + 10 };
                let result = self
                    .service
                    .refresh(&text, &jkt(key), &RequestSignals::new())
                    .await;
                let (state, _) = m.state(now);
                let expected: Result<(), &str> = if matches!(token, Presented::Forged) || m.purged {
                    Err("refresh_token_invalid")
                } else if state != SessionState::Active {
                    Err(state_code(state))
                } else {
                    match token {
                        Presented::Current if same_key => Ok(()),
                        Presented::Current => Err("refresh_key_mismatch"),
                        Presented::Previous
                            if same_key && m.grace_until.is_some_and(|until| now < until) =>
                        {
                            Ok(())
                        }
                        _ => Err("refresh_token_reused"),
                    }
                };
                match (expected, result) {
                    (Ok(()), Ok(t)) => {
                        let m = &mut self.sessions[i];
                        if matches!(token, Presented::Current) {
                            // A rotation: exactly one new generation.
                            assert!(!m.tokens.contains(&t.refresh_token));
                            m.tokens.push(t.refresh_token);
                            m.grace_until = Some(now + GRACE);
                            m.idle = (now + IDLE).min(m.absolute);
                        } else {
                            // A grace replay hands out the current generation again.
                            assert_eq!(&t.refresh_token, m.tokens.last().unwrap());
                        }
                        assert_eq!(t.idle_expires_at, m.idle);
                        assert_eq!(t.session_expires_at, m.absolute);
                    }
                    (Err(code), Err(e)) => {
                        assert_eq!(e.code(), code, "{op:?}");
                        assert_eq!(e.oauth_error(), "invalid_grant");
                        if code == "refresh_token_reused" {
                            self.sessions[i].ended = Some((Ended::Revoked, now));
                        }
                    }
                    (expected, actual) => panic!("{op:?}: expected {expected:?}, got {actual:?}"),
                }
            }
            Op::Extend { s } => {
                let Some(i) = self.session(s) else { return };
                let result = self.service.extend(&self.sessions[i].id).await;
                let m = &mut self.sessions[i];
                if m.purged {
                    assert_eq!(result.unwrap_err().code(), "session_not_found");
                } else if m.active(now) {
                    let info = result.unwrap();
                    m.idle = (now + IDLE).min(m.absolute);
                    assert_eq!(info.idle_expires_at, m.idle);
                } else {
                    assert_eq!(result.unwrap_err().code(), state_code(m.state(now).0));
                }
            }
            Op::Close { s } | Op::Revoke { s } => {
                let Some(i) = self.session(s) else { return };
                let id = self.sessions[i].id.clone();
                let (result, how) = if matches!(op, Op::Close { .. }) {
                    (self.service.close(&id).await, Ended::Closed)
                } else {
                    let r = self
                        .service
                        .revoke(&id, Reason::ADMIN_REVOKED, Actor::System)
                        .await;
                    (r, Ended::Revoked)
                };
                self.expect_end(i, result, how);
            }
            Op::RevokeForUser { s, user } => {
                let Some(i) = self.session(s) else { return };
                let result = self
                    .service
                    .revoke_for_user(&user_name(user), &self.sessions[i].id)
                    .await;
                if !self.sessions[i].purged && self.sessions[i].user != user {
                    assert_eq!(result.unwrap_err().code(), "session_not_owned");
                } else {
                    self.expect_end(i, result, Ended::Revoked);
                }
            }
            Op::RevokeUser { user, except } => {
                let except = except.and_then(|e| self.session(e));
                let except_id = except.map(|e| self.sessions[e].id.clone());
                let n = self
                    .service
                    .revoke_user(
                        &user_name(user),
                        except_id.as_deref(),
                        Reason::ADMIN_REVOKED,
                        Actor::System,
                    )
                    .await
                    .unwrap();
                let targets: Vec<usize> = (0..self.sessions.len())
                    .filter(|&j| {
                        Some(j) != except
                            && self.sessions[j].user == user
                            && self.sessions[j].active(now)
                    })
                    .collect();
                assert_eq!(n, targets.len());
                for j in targets {
                    self.end(j, Ended::Revoked);
                }
            }
            Op::Sensitive {
                s,
                same_key,
                revoke_others,
            } => {
                let Some(i) = self.session(s) else { return };
                let m = &self.sessions[i];
                let key = if same_key { m.key } else { m.key + 10 };
                let result = self
                    .service
                    .rotate_on_sensitive_action(&m.id, &jkt(key), revoke_others)
                    .await;
                if m.purged {
                    assert_eq!(result.unwrap_err().code(), "session_not_found");
                } else if !m.active(now) {
                    assert_eq!(result.unwrap_err().code(), state_code(m.state(now).0));
                } else if !same_key {
                    assert_eq!(result.unwrap_err().code(), "session_key_mismatch");
                } else {
                    let t = result.unwrap();
                    let user = m.user;
                    let m = &mut self.sessions[i];
                    assert!(!m.tokens.contains(&t.refresh_token));
                    m.tokens.push(t.refresh_token);
                    m.grace_until = None;
                    m.idle = (now + IDLE).min(m.absolute);
                    if revoke_others {
                        for j in 0..self.sessions.len() {
                            if j != i && self.sessions[j].user == user {
                                self.end(j, Ended::Revoked);
                            }
                        }
                    }
                }
            }
            Op::Advance { secs } => self.clock.advance(Duration::from_secs(secs as u64)),
            Op::Sweep => {
                let report = self.service.sweep_once().await.unwrap();
                let mut purged = 0;
                for m in &mut self.sessions {
                    if m.purged {
                        continue;
                    }
                    if let (state, Some(at)) = m.state(now) {
                        assert!(state.is_terminal());
                        if at <= now - RETENTION {
                            m.purged = true;
                            purged += 1;
                        }
                    }
                }
                assert_eq!(report.purged, purged);
                let active = self.sessions.iter().filter(|m| m.active(now)).count();
                assert_eq!(report.active, active as u64);
            }
            Op::Check { s, right_user } => {
                let Some(i) = self.session(s) else { return };
                let m = &self.sessions[i];
                let user = if right_user { m.user } else { m.user + 1 };
                let result = self
                    .service
                    .check(&m.id, &user_name(user), &jkt(m.key))
                    .await;
                let expected = if m.purged {
                    Err(SessionDenied::Unknown)
                } else {
                    match m.state(now).0 {
                        SessionState::Active if right_user => Ok(()),
                        SessionState::Active => Err(SessionDenied::Unknown),
                        SessionState::Expired => Err(SessionDenied::Expired),
                        SessionState::Revoked => Err(SessionDenied::Revoked),
                        SessionState::Closed => Err(SessionDenied::Closed),
                    }
                };
                assert_eq!(result, expected, "{op:?}");
            }
        }
    }

    fn expect_end(
        &mut self,
        i: usize,
        result: Result<keybound_server::lifecycle::EndResult, keybound_server::LifecycleError>,
        how: Ended,
    ) {
        let now = self.now();
        if self.sessions[i].purged {
            assert_eq!(result.unwrap_err().code(), "session_not_found");
            return;
        }
        let was_active = self.sessions[i].active(now);
        self.end(i, how);
        let end = result.unwrap();
        assert_eq!(end.changed, was_active);
        assert_eq!(end.state, self.sessions[i].state(now).0);
    }

    /// Invariants over the whole store after every step.
    async fn invariants(&self, previous: &[(SessionState, usize)]) {
        let now = self.now();
        for (i, m) in self.sessions.iter().enumerate() {
            let record = self
                .service
                .store()
                .load(SessionId::parse(&m.id).unwrap())
                .await
                .unwrap();
            if m.purged {
                assert!(record.is_none(), "a purged session is still stored");
                continue;
            }
            let record = record.expect("a live session vanished");
            let (state, ended_at) = m.state(now);
            assert_eq!(record.effective_state(now), state);
            assert_eq!(
                record.generation as usize,
                m.generation(),
                "one live generation"
            );
            if record.state.is_terminal() {
                assert_eq!(record.ended_at, ended_at);
            }
            if let Some((before, generation)) = previous.get(i) {
                if before.is_terminal() {
                    assert_eq!(state, *before, "a terminal state changed");
                    assert_eq!(m.generation(), *generation, "a terminal session rotated");
                }
            }
            // A non-active session never verifies.
            let check = self
                .service
                .check(&m.id, &user_name(m.user), &jkt(m.key))
                .await;
            assert_eq!(check.is_ok(), state == SessionState::Active);
        }
        for user in 0..3 {
            let listed: HashSet<String> = self
                .service
                .list_sessions(&user_name(user), None)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.session_id)
                .collect();
            let expected: HashSet<String> = self
                .sessions
                .iter()
                .filter(|m| m.user == user && !m.purged)
                .map(|m| m.id.clone())
                .collect();
            assert_eq!(listed, expected);
            if let Some(memory) = &self.memory {
                assert_eq!(
                    memory.knows_user(&user_name(user)),
                    !expected.is_empty(),
                    "purge left an index entry"
                );
            }
        }
        if let Some(memory) = &self.memory {
            assert_eq!(
                memory.len(),
                self.sessions.iter().filter(|m| !m.purged).count()
            );
        }
    }
}

fn policy() -> Policy {
    Policy::default().with_retention(Duration::from_secs(RETENTION as u64))
}

fn run(store: impl SessionStore, memory: Option<MemoryStore>, ops: &[Op]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let clock = ManualClock::new(common::T0_MS);
        let service = SessionService::builder(store, common::keys())
            .clock(clock.clone())
            .policy(policy())
            .refresh_secret(RefreshSecret::from_bytes([5; 32]))
            .build()
            .unwrap();
        let mut world = World {
            service,
            clock,
            memory,
            sessions: Vec::new(),
        };
        for op in ops {
            let before: Vec<(SessionState, usize)> = world
                .sessions
                .iter()
                .map(|m| (m.state(world.now()).0, m.generation()))
                .collect();
            world.step(op).await;
            world.invariants(&before).await;
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn memory_store_follows_the_model(ops in prop::collection::vec(op(), 1..80)) {
        let store = MemoryStore::with_shards(4);
        run(store.clone(), Some(store), &ops);
    }
}

#[cfg(feature = "sqlite")]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn sqlite_store_follows_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let store = keybound_server::store::SqliteStore::open_blocking(dir.path().join("m.db")).unwrap();
        run(store, None, &ops);
    }
}
