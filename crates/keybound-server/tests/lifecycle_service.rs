//! The session lifecycle service: every operation, transition, refusal and event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Harness, harness, jkt};
use keybound_server::lifecycle::{
    Actor, AuditEventKind, LifecycleError, LifetimeLimits, OpenRequest, Policy, Reason,
    RequestSignals, RiskContext, RiskDecision, RiskEvent, RiskPolicy, SessionService, SessionState,
    UserAgentChangePolicy,
};
use keybound_server::proto::{TokenResponse, b64};
use keybound_server::store::{MemoryStore, SessionStore};
use keybound_server::{BoxFuture, SessionCheck, SessionDenied};

fn signals() -> RequestSignals {
    RequestSignals::new()
}

async fn login(h: &Harness, user: &str, key: u8) -> TokenResponse {
    h.service
        .open_session(user, &jkt(key), OpenRequest::new().device_label("Laptop"))
        .await
        .unwrap()
}

/// Refreshes with `t`'s refresh token, presented with the key `key`.
async fn refresh(h: &Harness, t: &TokenResponse, key: u8) -> Result<TokenResponse, LifecycleError> {
    h.service
        .refresh(&t.refresh_token, &jkt(key), &signals())
        .await
}

async fn check(h: &Harness, t: &TokenResponse, user: &str, key: u8) -> Result<(), SessionDenied> {
    h.service.check(&t.session_id, user, &jkt(key)).await
}

fn code(e: LifecycleError) -> &'static str {
    e.code()
}

#[tokio::test]
async fn open_session_issues_bound_tokens() {
    let mut h = harness(MemoryStore::new());
    let now = h.now();
    let t = login(&h, "alice", 1).await;
    assert_eq!(t.token_type, "DPoP");
    assert_eq!(t.expires_in, 300);
    assert_eq!(t.server_time, now);
    assert_eq!(t.session_expires_at, now + 12 * 3600);
    assert_eq!(t.idle_expires_at, now + 30 * 60);
    let at = h.verify_access_token(&t.access_token);
    let c = at.claims();
    assert_eq!(c.iss, "https://api.example");
    assert_eq!(c.sub, "alice");
    assert_eq!(c.sid, t.session_id);
    assert_eq!(c.jkt, jkt(1));
    assert_eq!((c.iat, c.exp), (now, now + 300));
    assert!(c.jti.len() >= 22);
    // The refresh token carries ≥ 256 bits of secret and is not stored in clear.
    let body = t.refresh_token.rsplit('.').next().unwrap();
    assert!(b64::decode(body, "t").unwrap().len() >= 32);
    let events = h.drain();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event, AuditEventKind::Created);
    assert_eq!(
        (e.user_id.as_str(), e.actor.as_str()),
        ("alice", "user:alice")
    );
    assert_eq!(
        (e.jkt.clone(), e.generation, e.reason.clone()),
        (jkt(1), 0, None)
    );
    assert_eq!(e.ts, common::T0_MS);
    check(&h, &t, "alice", 1).await.unwrap();
}

#[tokio::test]
async fn open_session_refuses_bad_input() {
    let h = harness(MemoryStore::new());
    for (user, key) in [
        ("", jkt(1)),
        ("a\nb", jkt(1)),
        (&"x".repeat(300), jkt(1)),
        ("alice", "not-a-thumbprint".to_owned()),
        ("alice", String::new()),
    ] {
        let err = h
            .service
            .open_session(user, &key, OpenRequest::new())
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.oauth_error()),
            ("invalid_input", "invalid_request")
        );
    }
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_replays_within_grace() {
    let mut h = harness(MemoryStore::new());
    let t0 = login(&h, "alice", 1).await;
    h.advance(200);
    let t1 = refresh(&h, &t0, 1).await.unwrap();
    assert_ne!(t1.refresh_token, t0.refresh_token);
    assert_eq!(t1.session_id, t0.session_id);
    assert_eq!(t1.idle_expires_at, h.now() + 1800);
    assert_eq!(t1.session_expires_at, t0.session_expires_at);
    h.verify_access_token(&t1.access_token);
    // The response was lost: the same old token within grace gets the same successor.
    h.advance(29);
    let again = refresh(&h, &t0, 1).await.unwrap();
    assert_eq!(again.refresh_token, t1.refresh_token);
    assert_ne!(again.access_token, t1.access_token);
    let events = h.drain();
    let kinds: Vec<_> = events.iter().map(|e| e.event).collect();
    assert_eq!(kinds, [AuditEventKind::Created, AuditEventKind::Refreshed]);
    assert_eq!(events[1].generation, 1);
    // The successor rotates on.
    let t2 = refresh(&h, &t1, 1).await.unwrap();
    assert_ne!(t2.refresh_token, t1.refresh_token);
    check(&h, &t2, "alice", 1).await.unwrap();
}

#[tokio::test]
async fn the_previous_token_after_grace_revokes_the_session() {
    let mut h = harness(MemoryStore::new());
    let t0 = login(&h, "alice", 1).await;
    let t1 = refresh(&h, &t0, 1).await.unwrap();
    h.advance(30);
    let err = refresh(&h, &t0, 1).await.unwrap_err();
    assert_eq!(
        (err.code(), err.oauth_error()),
        ("refresh_token_reused", "invalid_grant")
    );
    // The whole session is gone: the current token, and requests with its access token.
    let err = refresh(&h, &t1, 1).await.unwrap_err();
    assert_eq!(code(err), "session_revoked");
    assert_eq!(
        check(&h, &t1, "alice", 1).await,
        Err(SessionDenied::Revoked)
    );
    let events = h.drain();
    let reuse = events.last().unwrap();
    assert_eq!(reuse.event, AuditEventKind::RefreshReuse);
    assert_eq!(reuse.reason.as_deref(), Some("refresh_reuse"));
    assert_eq!(reuse.actor, "system");
    assert_eq!(reuse.generation, 1);
    let info = h.service.session(&t0.session_id).await.unwrap();
    assert_eq!(info.state, SessionState::Revoked);
    assert_eq!(info.reason, Some(Reason::REFRESH_REUSE));
}

#[tokio::test]
async fn an_older_generation_revokes_even_within_grace() {
    let h = harness(MemoryStore::new());
    let t0 = login(&h, "alice", 1).await;
    let t1 = refresh(&h, &t0, 1).await.unwrap();
    let t2 = refresh(&h, &t1, 1).await.unwrap();
    let err = refresh(&h, &t0, 1).await.unwrap_err();
    assert_eq!(code(err), "refresh_token_reused");
    assert_eq!(
        check(&h, &t2, "alice", 1).await,
        Err(SessionDenied::Revoked)
    );
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_the_session_key() {
    let h = harness(MemoryStore::new());
    let t0 = login(&h, "alice", 1).await;
    // The current token with another key: refused, the session stays.
    let err = refresh(&h, &t0, 2).await.unwrap_err();
    assert_eq!(
        (err.code(), err.oauth_error()),
        ("refresh_key_mismatch", "invalid_grant")
    );
    check(&h, &t0, "alice", 1).await.unwrap();
    // The previous token with another key, even within grace: reuse.
    let t1 = refresh(&h, &t0, 1).await.unwrap();
    let err = refresh(&h, &t0, 2).await.unwrap_err();
    assert_eq!(code(err), "refresh_token_reused");
    assert_eq!(
        check(&h, &t1, "alice", 1).await,
        Err(SessionDenied::Revoked)
    );
    // A thumbprint that is not one is refused the same way.
    let t = login(&h, "bob", 3).await;
    let err = h
        .service
        .refresh(&t.refresh_token, "garbage", &signals())
        .await
        .unwrap_err();
    assert_eq!(code(err), "refresh_key_mismatch");
}

#[tokio::test]
async fn malformed_and_forged_refresh_tokens_are_refused_without_harm() {
    let h = harness(MemoryStore::new());
    let t = login(&h, "alice", 1).await;
    let (sid, rest) = t.refresh_token.split_once('.').unwrap();
    let (generation, body) = rest.split_once('.').unwrap();
    for bad in [
        String::new(),
        "x".into(),
        "a.b.c".into(),
        "..".into(),
        format!("{sid}.{generation}"),
        format!("{sid}.{generation}.{body}.x"),
        format!("{sid}.0{generation}.{body}"),
        format!("{sid}.{generation}.{body}="),
        format!("{sid}.{generation}.{}", &body[1..]),
        format!("{sid}x.{generation}.{body}"),
        format!(" {}", t.refresh_token),
        "é".repeat(50),
        "A".repeat(100_000),
    ] {
        let err = h
            .service
            .refresh(&bad, &jkt(1), &signals())
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.oauth_error()),
            ("refresh_token_malformed", "invalid_grant"),
            "{bad:.40}"
        );
        assert!(!err.to_string().contains(body));
    }
    // Right shape, right session, but not issued by this server: refused, and the
    // session is NOT revoked (knowing a session id must not let anyone end it).
    let forged_body = b64::encode([7u8; 48]);
    for forged in [
        format!("{sid}.{generation}.{forged_body}"),
        format!("{sid}.7.{forged_body}"),
        format!("{sid}.1.{body}"),
    ] {
        let err = h
            .service
            .refresh(&forged, &jkt(1), &signals())
            .await
            .unwrap_err();
        assert_eq!(code(err), "refresh_token_invalid");
    }
    check(&h, &t, "alice", 1).await.unwrap();
    refresh(&h, &t, 1).await.unwrap();
}

#[tokio::test]
async fn tokens_from_another_server_secret_are_invalid() {
    let h = harness(MemoryStore::new());
    let t = login(&h, "alice", 1).await;
    let other = SessionService::builder(h.service.store().clone(), common::keys())
        .clock(h.clock.clone())
        .build()
        .unwrap();
    let err = other
        .refresh(&t.refresh_token, &jkt(1), &signals())
        .await
        .unwrap_err();
    assert_eq!(code(err), "refresh_token_invalid");
    check(&h, &t, "alice", 1).await.unwrap();
}

#[tokio::test]
async fn idle_sessions_expire_and_stay_expired() {
    let mut h = harness(MemoryStore::new());
    let t = login(&h, "alice", 1).await;
    h.advance(30 * 60 - 1);
    check(&h, &t, "alice", 1).await.unwrap();
    h.advance(1);
    // Evaluated on read, before any sweep.
    assert_eq!(check(&h, &t, "alice", 1).await, Err(SessionDenied::Expired));
    let listed = h.service.list_sessions("alice", None).await.unwrap();
    assert_eq!(listed[0].state, SessionState::Expired);
    assert_eq!(listed[0].reason, Some(Reason::IDLE_TIMEOUT));
    let err = refresh(&h, &t, 1).await.unwrap_err();
    assert_eq!(
        (err.code(), err.oauth_error()),
        ("session_expired", "invalid_grant")
    );
    let events = h.drain();
    let expired = events.last().unwrap();
    assert_eq!(expired.event, AuditEventKind::Expired);
    assert_eq!(expired.reason.as_deref(), Some("idle_timeout"));
    // Terminal is final: no way back.
    let err = h.service.extend(&t.session_id).await.unwrap_err();
    assert_eq!(code(err), "session_expired");
    let end = h
        .service
        .revoke(&t.session_id, Reason::ADMIN_REVOKED, Actor::System)
        .await
        .unwrap();
    assert_eq!((end.state, end.changed), (SessionState::Expired, false));
    assert!(h.drain().is_empty());
}

#[tokio::test]
async fn the_absolute_lifetime_caps_everything() {
    let mut h = harness(MemoryStore::new());
    let mut t = login(&h, "alice", 1).await;
    let end = t.session_expires_at;
    loop {
        h.advance(25 * 60);
        match refresh(&h, &t, 1).await {
            Ok(next) => {
                assert!(next.idle_expires_at <= end);
                assert_eq!(next.session_expires_at, end);
                let at = h.verify_access_token(&next.access_token);
                assert!(at.claims().exp <= end);
                assert_eq!(
                    next.expires_in,
                    u64::try_from(at.claims().exp - h.now()).unwrap()
                );
                t = next;
            }
            Err(e) => {
                assert_eq!(code(e), "session_expired");
                assert!(h.now() >= end);
                break;
            }
        }
    }
    let events = h.drain();
    let last = events.last().unwrap();
    assert_eq!(last.event, AuditEventKind::Expired);
    assert_eq!(last.reason.as_deref(), Some("absolute_lifetime"));
}

#[tokio::test]
async fn extend_restarts_the_idle_timeout() {
    let h = harness(MemoryStore::new());
    let t = login(&h, "alice", 1).await;
    h.advance(20 * 60);
    let info = h.service.extend(&t.session_id).await.unwrap();
    assert_eq!(info.idle_expires_at, h.now() + 30 * 60);
    assert_eq!(info.last_seen_at, h.now());
    assert!(info.current);
    h.advance(20 * 60);
    check(&h, &t, "alice", 1).await.unwrap();
    h.service.close(&t.session_id).await.unwrap();
    assert_eq!(
        code(h.service.extend(&t.session_id).await.unwrap_err()),
        "session_closed"
    );
}

#[tokio::test]
async fn close_is_idempotent_and_immediate() {
    let mut h = harness(MemoryStore::new());
    let t = login(&h, "alice", 1).await;
    check(&h, &t, "alice", 1).await.unwrap(); // now cached
    let first = h.service.close(&t.session_id).await.unwrap();
    assert_eq!((first.state, first.changed), (SessionState::Closed, true));
    assert_eq!(first.reason, Some(Reason::LOGOUT));
    assert_eq!(check(&h, &t, "alice", 1).await, Err(SessionDenied::Closed));
    let again = h.service.close(&t.session_id).await.unwrap();
    assert_eq!((again.state, again.changed), (SessionState::Closed, false));
    let revoke = h
        .service
        .revoke(&t.session_id, Reason::ADMIN_REVOKED, Actor::System)
        .await
        .unwrap();
    assert_eq!(
        (revoke.state, revoke.changed),
        (SessionState::Closed, false)
    );
    let err = refresh(&h, &t, 1).await.unwrap_err();
    assert_eq!(code(err), "session_closed");
    let closes: Vec<_> = h
        .drain()
        .into_iter()
        .filter(|e| e.event == AuditEventKind::Closed)
        .collect();
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].actor, "user:alice");
    assert_eq!(closes[0].reason.as_deref(), Some("logout"));
}

#[tokio::test]
async fn revocation_is_seen_by_every_clone_on_the_next_request() {
    let h = harness(MemoryStore::new());
    let t = login(&h, "alice", 1).await;
    let verifier_side = h.service.clone();
    for _ in 0..3 {
        verifier_side
            .check(&t.session_id, "alice", &jkt(1))
            .await
            .unwrap();
    }
    h.service
        .revoke(
            &t.session_id,
            Reason::ADMIN_REVOKED,
            Actor::Admin("ops".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        verifier_side.check(&t.session_id, "alice", &jkt(1)).await,
        Err(SessionDenied::Revoked)
    );
}

#[tokio::test]
async fn changes_made_behind_the_service_need_an_invalidation() {
    use keybound_server::lifecycle::SessionId;
    use keybound_server::store::{EndRequest, EndState};
    let h = harness(MemoryStore::new());
    let t = login(&h, "alice", 1).await;
    check(&h, &t, "alice", 1).await.unwrap();
    // Another node revokes through the store directly.
    h.service
        .store()
        .end(EndRequest {
            id: SessionId::parse(&t.session_id).unwrap(),
            owner: None,
            state: EndState::Revoked,
            reason: Reason::ADMIN_REVOKED,
            now: h.now(),
        })
        .await
        .unwrap();
    // Its notification reaches this node:
    h.service.invalidate_cached(&t.session_id);
    assert_eq!(check(&h, &t, "alice", 1).await, Err(SessionDenied::Revoked));
    // Without a cache every check reads the store.
    let clock = h.clock.clone();
    let uncached = SessionService::builder(MemoryStore::new(), common::keys())
        .clock(clock)
        .without_session_cache()
        .build()
        .unwrap();
    let t = uncached
        .open_session("bob", &jkt(2), OpenRequest::new())
        .await
        .unwrap();
    uncached.check(&t.session_id, "bob", &jkt(2)).await.unwrap();
}

#[tokio::test]
async fn the_session_check_refuses_mismatches() {
    let h = harness(MemoryStore::new());
    let t = login(&h, "alice", 1).await;
    for _ in 0..2 {
        // Once from the store, once from the cache.
        assert_eq!(check(&h, &t, "bob", 1).await, Err(SessionDenied::Unknown));
        assert_eq!(
            check(&h, &t, "alice", 2).await,
            Err(SessionDenied::KeyMismatch)
        );
        check(&h, &t, "alice", 1).await.unwrap();
    }
    assert_eq!(
        h.service.check("nope", "alice", &jkt(1)).await,
        Err(SessionDenied::Unknown)
    );
    assert_eq!(
        h.service
            .check("AAAAAAAAAAAAAAAAAAAAAA", "alice", &jkt(1))
            .await,
        Err(SessionDenied::Unknown)
    );
    assert_eq!(
        h.service.check(&t.session_id, "alice", "short").await,
        Err(SessionDenied::KeyMismatch)
    );
}

#[tokio::test]
async fn unknown_session_ids_get_a_clear_error() {
    let h = harness(MemoryStore::new());
    for sid in [
        "",
        "nope",
        "AAAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAA==",
        &"A".repeat(1000),
    ] {
        let errors = [
            h.service
                .revoke(sid, Reason::ADMIN_REVOKED, Actor::System)
                .await
                .unwrap_err(),
            h.service.revoke_for_user("alice", sid).await.unwrap_err(),
            h.service.close(sid).await.unwrap_err(),
            h.service.extend(sid).await.unwrap_err(),
            h.service.session(sid).await.unwrap_err(),
            h.service
                .rotate_on_sensitive_action(sid, &jkt(1), true)
                .await
                .unwrap_err(),
        ];
        for err in errors {
            assert_eq!(
                (err.code(), err.oauth_error()),
                ("session_not_found", "invalid_request")
            );
        }
    }
}

#[tokio::test]
async fn users_may_revoke_only_their_own_sessions() {
    let mut h = harness(MemoryStore::new());
    let alice = login(&h, "alice", 1).await;
    let bob = login(&h, "bob", 2).await;
    let err = h
        .service
        .revoke_for_user("bob", &alice.session_id)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.oauth_error()),
        ("session_not_owned", "access_denied")
    );
    check(&h, &alice, "alice", 1).await.unwrap();
    h.drain();
    let end = h
        .service
        .revoke_for_user("bob", &bob.session_id)
        .await
        .unwrap();
    assert!(end.changed);
    assert_eq!(end.reason, Some(Reason::USER_REVOKED));
    let again = h
        .service
        .revoke_for_user("bob", &bob.session_id)
        .await
        .unwrap();
    assert!(!again.changed);
    let events = h.drain();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, AuditEventKind::Revoked);
    assert_eq!(events[0].actor, "user:bob");
}

#[tokio::test]
async fn revoking_all_of_a_users_sessions_with_and_without_an_exception() {
    let mut h = harness(MemoryStore::new());
    let a1 = login(&h, "alice", 1).await;
    let a2 = login(&h, "alice", 2).await;
    let a3 = login(&h, "alice", 3).await;
    let b = login(&h, "bob", 4).await;
    h.drain();
    assert_eq!(
        h.service
            .revoke_others("alice", &a1.session_id)
            .await
            .unwrap(),
        2
    );
    check(&h, &a1, "alice", 1).await.unwrap();
    assert_eq!(
        check(&h, &a2, "alice", 2).await,
        Err(SessionDenied::Revoked)
    );
    assert_eq!(
        check(&h, &a3, "alice", 3).await,
        Err(SessionDenied::Revoked)
    );
    let events = h.drain();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.reason.as_deref() == Some("user_revoked_others"))
    );
    assert_eq!(
        h.service
            .revoke_others("alice", &a1.session_id)
            .await
            .unwrap(),
        0
    );
    let admin = Actor::Admin("ops".into());
    assert_eq!(
        h.service
            .revoke_user("alice", None, Reason::ADMIN_REVOKED, admin.clone())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        check(&h, &a1, "alice", 1).await,
        Err(SessionDenied::Revoked)
    );
    assert_eq!(h.drain()[0].actor, "admin:ops");
    check(&h, &b, "bob", 4).await.unwrap();
    let err = h
        .service
        .revoke_user("alice", Some("not-a-session"), Reason::ADMIN_REVOKED, admin)
        .await
        .unwrap_err();
    assert_eq!(code(err), "invalid_input");
    assert_eq!(
        h.service
            .revoke_user("nobody", None, Reason::ADMIN_REVOKED, Actor::System)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn sensitive_actions_replace_the_tokens() {
    let mut h = harness(MemoryStore::new());
    let t = login(&h, "alice", 1).await;
    let other = login(&h, "alice", 2).await;
    h.advance(10);
    h.drain();
    let err = h
        .service
        .rotate_on_sensitive_action(&t.session_id, &jkt(2), false)
        .await
        .unwrap_err();
    assert_eq!(code(err), "session_key_mismatch");
    let rotated = h
        .service
        .rotate_on_sensitive_action(&t.session_id, &jkt(1), true)
        .await
        .unwrap();
    assert_ne!(rotated.refresh_token, t.refresh_token);
    assert_eq!(rotated.session_id, t.session_id);
    h.verify_access_token(&rotated.access_token);
    assert_eq!(
        check(&h, &other, "alice", 2).await,
        Err(SessionDenied::Revoked)
    );
    let events = h.drain();
    assert_eq!(events[0].event, AuditEventKind::Rotated);
    assert_eq!(events[0].reason.as_deref(), Some("sensitive_action"));
    assert_eq!(events[0].generation, 1);
    assert_eq!(events[1].event, AuditEventKind::Revoked);
    assert_eq!(events[1].session_id, other.session_id);
    // The new refresh token works.
    let next = refresh(&h, &rotated, 1).await.unwrap();
    // The replaced token has no grace: presenting it is reuse.
    let err = refresh(&h, &t, 1).await.unwrap_err();
    assert_eq!(code(err), "refresh_token_reused");
    assert_eq!(
        check(&h, &next, "alice", 1).await,
        Err(SessionDenied::Revoked)
    );
}

#[tokio::test]
async fn listing_shows_the_users_sessions() {
    let h = harness(MemoryStore::new());
    let a = login(&h, "alice", 1).await;
    h.advance(5);
    let b = h
        .service
        .open_session(
            "alice",
            &jkt(2),
            OpenRequest::new().device_label("Phone\u{0}  "),
        )
        .await
        .unwrap();
    h.advance(5);
    let c = login(&h, "alice", 3).await;
    login(&h, "bob", 4).await;
    h.service.close(&c.session_id).await.unwrap();
    let list = h
        .service
        .list_sessions("alice", Some(&a.session_id))
        .await
        .unwrap();
    assert_eq!(list.len(), 3);
    let ids: Vec<_> = list.iter().map(|s| s.session_id.clone()).collect();
    assert_eq!(
        ids,
        [
            c.session_id.clone(),
            b.session_id.clone(),
            a.session_id.clone()
        ]
    );
    assert_eq!(list[0].state, SessionState::Closed);
    assert_eq!(list[1].device_label.as_deref(), Some("Phone"));
    assert_eq!(list[2].device_label.as_deref(), Some("Laptop"));
    assert_eq!(list.iter().filter(|s| s.current).count(), 1);
    assert!(list[2].current);
    let json = serde_json::to_value(&list[0]).unwrap();
    assert_eq!(json["state"], "closed");
    assert_eq!(json["reason"], "logout");
    assert!(
        h.service
            .list_sessions("nobody", None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        code(h.service.list_sessions("", None).await.unwrap_err()),
        "invalid_input"
    );
}

#[tokio::test]
async fn events_never_contain_tokens() {
    let mut h = harness(MemoryStore::new());
    let t = login(&h, "alice", 1).await;
    let t1 = refresh(&h, &t, 1).await.unwrap();
    h.service
        .rotate_on_sensitive_action(&t.session_id, &jkt(1), false)
        .await
        .unwrap();
    h.advance(60);
    let _ = refresh(&h, &t, 1).await;
    let secrets = [&t, &t1].map(|x| {
        (
            x.refresh_token.rsplit('.').next().unwrap().to_owned(),
            x.access_token.clone(),
        )
    });
    for e in h.drain() {
        let line = e.to_json();
        for (refresh_secret, access) in &secrets {
            assert!(!line.contains(refresh_secret.as_str()));
            assert!(!line.contains(access.as_str()));
        }
    }
}

#[tokio::test]
async fn sweep_expires_purges_and_runs_the_replay_cleanup() {
    let cleanups = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&cleanups);
    let clock = keybound_server::ManualClock::new(common::T0_MS);
    let (builder, sink) = common::builder(MemoryStore::new(), &clock);
    let service = builder
        .replay_cleanup(move |now_ms: i64| {
            assert_eq!(now_ms % 1000, 0);
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let mut events = sink.subscribe();
    let idle = service
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap();
    let revoked = service
        .open_session("alice", &jkt(2), OpenRequest::new())
        .await
        .unwrap();
    service
        .revoke(&revoked.session_id, Reason::ADMIN_REVOKED, Actor::System)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(29 * 60));
    let kept = service
        .open_session("alice", &jkt(3), OpenRequest::new())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    while events.try_recv().is_ok() {}

    let report = service.sweep_once().await.unwrap();
    assert_eq!((report.expired, report.purged, report.active), (1, 0, 1));
    assert_eq!(cleanups.load(Ordering::SeqCst), 1);
    let e = events.try_recv().unwrap();
    assert_eq!(
        (e.event, e.session_id.as_str(), e.actor.as_str()),
        (AuditEventKind::Expired, idle.session_id.as_str(), "system")
    );
    assert!(events.try_recv().is_err());

    // After the retention period both terminal sessions are purged; the live one stays.
    clock.advance(Duration::from_secs(7 * 24 * 3600));
    service.extend(&kept.session_id).await.unwrap_err();
    let kept2 = service
        .open_session("alice", &jkt(4), OpenRequest::new())
        .await
        .unwrap();
    while events.try_recv().is_ok() {}
    let report = service.sweep_once().await.unwrap();
    assert_eq!(report.purged, 2, "{report:?}");
    let mut purged = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.event == AuditEventKind::Purged {
            assert_eq!(e.reason.as_deref(), Some("retention"));
            purged.push(e.session_id);
        }
    }
    purged.sort();
    let mut expected = vec![idle.session_id.clone(), revoked.session_id.clone()];
    expected.sort();
    assert_eq!(purged, expected);
    assert_eq!(
        code(service.session(&idle.session_id).await.unwrap_err()),
        "session_not_found"
    );
    let err = service
        .refresh(&idle.refresh_token, &jkt(1), &signals())
        .await
        .unwrap_err();
    assert_eq!(code(err), "refresh_token_invalid");
    let listed: Vec<_> = service
        .list_sessions("alice", None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&kept2.session_id));
}

#[tokio::test]
async fn the_background_sweeper_runs_until_stopped() {
    let cleanups = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&cleanups);
    let service = SessionService::builder(MemoryStore::new(), common::keys())
        .policy(Policy::default().with_sweep_interval(Duration::from_secs(1)))
        .replay_cleanup(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let handle = service.spawn_sweeper().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    handle.stop().await;
    let runs = cleanups.load(Ordering::SeqCst);
    assert!(runs >= 2, "{runs}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(cleanups.load(Ordering::SeqCst), runs);
}

#[test]
fn the_sweeper_needs_a_runtime() {
    let service = SessionService::builder(MemoryStore::new(), common::keys())
        .build()
        .unwrap();
    assert_eq!(service.spawn_sweeper().unwrap_err().code(), "no_runtime");
}

#[test]
fn nonsense_policies_are_refused_at_build() {
    let build = |policy: Policy| {
        SessionService::builder(MemoryStore::new(), common::keys())
            .policy(policy)
            .build()
            .unwrap_err()
            .code()
    };
    let d = Policy::default();
    assert_eq!(
        build(d.clone().with_refresh_grace(Duration::from_secs(300))),
        "policy_grace_too_long"
    );
    assert_eq!(
        build(d.clone().with_idle_timeout(Duration::from_secs(50_000))),
        "policy_idle_exceeds_absolute"
    );
    assert_eq!(
        build(d.clone().with_access_token_lifetime(Duration::ZERO)),
        "policy_zero_value"
    );
    assert_eq!(build(d.with_retention(Duration::ZERO)), "policy_zero_value");
    let err = SessionService::builder(MemoryStore::new(), common::keys())
        .issuer("")
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
}

#[tokio::test]
async fn the_user_agent_policy_revokes_a_session_that_changes_browser() {
    let clock = keybound_server::ManualClock::new(common::T0_MS);
    let (builder, sink) = common::builder(MemoryStore::new(), &clock);
    let service = builder.risk_policy(UserAgentChangePolicy).build().unwrap();
    let mut events = sink.subscribe();
    let firefox = RequestSignals::new().with_user_agent("Mozilla/5.0 Firefox/140.0");
    let t = service
        .open_session(
            "alice",
            &jkt(1),
            OpenRequest::new().signals(firefox.clone()),
        )
        .await
        .unwrap();
    let t1 = service
        .refresh(&t.refresh_token, &jkt(1), &firefox)
        .await
        .unwrap();
    let t2 = service
        .refresh(&t1.refresh_token, &jkt(1), &RequestSignals::new())
        .await
        .unwrap();
    let chrome = RequestSignals::new().with_user_agent("Mozilla/5.0 Chrome/140.0");
    let err = service
        .refresh(&t2.refresh_token, &jkt(1), &chrome)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.oauth_error()),
        ("session_revoked", "invalid_grant")
    );
    assert_eq!(
        service.check(&t.session_id, "alice", &jkt(1)).await,
        Err(SessionDenied::Revoked)
    );
    let mut last = None;
    while let Ok(e) = events.try_recv() {
        last = Some(e);
    }
    let last = last.unwrap();
    assert_eq!(last.event, AuditEventKind::Revoked);
    assert_eq!(last.reason.as_deref(), Some("user_agent_changed"));
    assert_eq!(last.actor, "system");
}

/// A scripted risk policy.
struct Scripted {
    login: RiskDecision,
    refresh: RiskDecision,
}

impl RiskPolicy for Scripted {
    fn assess<'a>(&'a self, context: RiskContext<'a>) -> BoxFuture<'a, RiskDecision> {
        let decision = match context.event {
            RiskEvent::Login => {
                assert!(context.session.is_none());
                self.login.clone()
            }
            RiskEvent::Refresh => {
                assert_eq!(context.session.unwrap().user_id, context.user_id);
                self.refresh.clone()
            }
        };
        Box::pin(async move { decision })
    }
}

fn risk_service(
    login: RiskDecision,
    refresh: RiskDecision,
) -> (SessionService, keybound_server::ManualClock) {
    let clock = keybound_server::ManualClock::new(common::T0_MS);
    let (builder, _) = common::builder(MemoryStore::new(), &clock);
    (
        builder
            .risk_policy(Scripted { login, refresh })
            .build()
            .unwrap(),
        clock,
    )
}

#[tokio::test]
async fn risk_decisions_on_login() {
    let (s, _) = risk_service(RiskDecision::RequireReauthentication, RiskDecision::Allow);
    let err = s
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "reauthentication_required");
    let (s, _) = risk_service(
        RiskDecision::Revoke(Reason::RISK_POLICY),
        RiskDecision::Allow,
    );
    let err = s
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.oauth_error()),
        ("login_denied", "access_denied")
    );
    assert!(s.list_sessions("alice", None).await.unwrap().is_empty());
    let limits = LifetimeLimits::new()
        .access_token_lifetime(Duration::from_secs(60))
        .idle_timeout(Duration::from_secs(600))
        .absolute_lifetime(Duration::from_secs(3600));
    let (s, clock) = risk_service(RiskDecision::Shorten(limits), RiskDecision::Allow);
    let now = keybound_server::Clock::now_secs(&clock);
    let t = s
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap();
    assert_eq!(t.expires_in, 60);
    assert_eq!(t.idle_expires_at, now + 600);
    assert_eq!(t.session_expires_at, now + 3600);
}

#[tokio::test]
async fn risk_decisions_on_refresh() {
    let limits = LifetimeLimits::new()
        .access_token_lifetime(Duration::from_secs(60))
        .absolute_lifetime(Duration::from_secs(900));
    let (s, clock) = risk_service(RiskDecision::Allow, RiskDecision::Shorten(limits));
    let now = keybound_server::Clock::now_secs(&clock);
    let t = s
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap();
    let t1 = s
        .refresh(&t.refresh_token, &jkt(1), &signals())
        .await
        .unwrap();
    assert_eq!(t1.expires_in, 60);
    assert_eq!(t1.session_expires_at, now + 900);
    assert_eq!(t1.idle_expires_at, now + 900);

    let (s, _) = risk_service(RiskDecision::Allow, RiskDecision::RequireReauthentication);
    let t = s
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap();
    let err = s
        .refresh(&t.refresh_token, &jkt(1), &signals())
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.oauth_error()),
        ("reauthentication_required", "invalid_grant")
    );
    let info = s.session(&t.session_id).await.unwrap();
    assert_eq!(info.state, SessionState::Revoked);
    assert_eq!(info.reason, Some(Reason::REAUTHENTICATION_REQUIRED));

    let (s, _) = risk_service(
        RiskDecision::Allow,
        RiskDecision::Revoke(Reason::new("impossible_travel").unwrap()),
    );
    let t = s
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap();
    let err = s
        .refresh(&t.refresh_token, &jkt(1), &signals())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "session_revoked");
    assert_eq!(
        s.session(&t.session_id).await.unwrap().reason,
        Reason::new("impossible_travel")
    );
}

#[tokio::test]
async fn store_failures_fail_closed() {
    use keybound_server::lifecycle::SessionId;
    use keybound_server::store::*;

    /// A store whose every operation fails.
    struct Down;
    fn down<T: Send + 'static>() -> BoxFuture<'static, Result<T, StoreError>> {
        Box::pin(async {
            Err(StoreError::Unavailable {
                reason: "connection refused".into(),
            })
        })
    }
    impl SessionStore for Down {
        fn create(&self, _: CreateRequest) -> BoxFuture<'_, Result<CreateOutcome, StoreError>> {
            down()
        }
        fn user_fence<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
            down()
        }
        fn load(&self, _: SessionId) -> BoxFuture<'_, Result<Option<SessionRecord>, StoreError>> {
            down()
        }
        fn rotate(&self, _: RotateRequest) -> BoxFuture<'_, Result<RotateOutcome, StoreError>> {
            down()
        }
        fn replace_tokens(
            &self,
            _: ReplaceTokensRequest,
        ) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
            down()
        }
        fn touch(&self, _: TouchRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
            down()
        }
        fn bind_dbsc(&self, _: BindRequest) -> BoxFuture<'_, Result<UpdateOutcome, StoreError>> {
            down()
        }
        fn end(&self, _: EndRequest) -> BoxFuture<'_, Result<EndOutcome, StoreError>> {
            down()
        }
        fn end_user_sessions(
            &self,
            _: EndUserRequest,
        ) -> BoxFuture<'_, Result<Vec<EndOutcome>, StoreError>> {
            down()
        }
        fn list_user<'a>(
            &'a self,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
            down()
        }
        fn sweep(&self, _: SweepRequest) -> BoxFuture<'_, Result<SweepBatch, StoreError>> {
            down()
        }
        fn count_active(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
            down()
        }
    }

    let h = harness(MemoryStore::new());
    let t = login(&h, "alice", 1).await;
    let s = SessionService::builder(Down, common::keys())
        .build()
        .unwrap();
    let err = s
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.oauth_error()),
        ("store_unavailable", "temporarily_unavailable")
    );
    assert_eq!(
        s.check(&t.session_id, "alice", &jkt(1)).await,
        Err(SessionDenied::Unavailable)
    );
    assert_eq!(
        s.sweep_once().await.unwrap_err().code(),
        "store_unavailable"
    );
}

#[tokio::test]
async fn the_default_audit_sink_is_tracing() {
    // No sink configured: the service still works (events go to `tracing`).
    let service = SessionService::builder(MemoryStore::new(), common::keys())
        .build()
        .unwrap();
    let t = service
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap();
    service.close(&t.session_id).await.unwrap();
}

#[tokio::test]
async fn json_lines_audit_sink_writes_one_line_per_transition() {
    use keybound_server::lifecycle::JsonLinesSink;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let file = std::fs::File::create(&path).unwrap();
    let service = SessionService::builder(MemoryStore::new(), common::keys())
        .audit_sink(JsonLinesSink::new(file))
        .build()
        .unwrap();
    let t = service
        .open_session("alice", &jkt(1), OpenRequest::new())
        .await
        .unwrap();
    service
        .refresh(&t.refresh_token, &jkt(1), &signals())
        .await
        .unwrap();
    service.close(&t.session_id).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["session.created", "session.refreshed", "session.closed"]
    );
    assert!(
        events
            .iter()
            .all(|e| e["session_id"] == t.session_id.as_str())
    );
}
