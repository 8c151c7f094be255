//! The lifecycle service behind the request verifier: login, requests, refresh and
//! revocation end to end, with one key ring and one replay store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keybound_server::lifecycle::{
    Actor, OpenRequest, Reason, RefreshSecret, RequestSignals, SessionService,
};
use keybound_server::proto::ed25519_dalek::SigningKey;
use keybound_server::proto::{ProofBuilder, PublicJwk, Signer, TokenResponse};
use keybound_server::store::MemoryStore;
use keybound_server::{
    Clock, KeyRing, ManualClock, MemoryReplayStore, Rejection, ServerKey, SharedKeyRing,
    VerifiedRequest, Verifier,
};

const ORIGIN: &str = "https://api.example";

struct App {
    clock: ManualClock,
    verifier: Verifier,
    sessions: SessionService,
    device: SigningKey,
    jti: AtomicU64,
}

impl App {
    fn new() -> Self {
        let clock = ManualClock::new(common::T0_MS);
        let replay = Arc::new(MemoryReplayStore::new(Arc::new(clock.clone())));
        // One key ring: the service signs what the verifier checks.
        let keys: SharedKeyRing = KeyRing::new(ServerKey::from_seed(&[42; 32])).into();
        let sessions = SessionService::builder(MemoryStore::new(), keys.clone())
            .issuer(ORIGIN)
            .clock(clock.clone())
            .refresh_secret(RefreshSecret::from_bytes([5; 32]))
            .replay_store(replay.clone())
            .build()
            .unwrap();
        let verifier = Verifier::builder()
            .public_origin(ORIGIN)
            .key_ring(keys)
            .clock(Arc::new(clock.clone()))
            .replay_store(replay)
            .session_check(Arc::new(sessions.clone()))
            .build()
            .unwrap();
        Self {
            clock,
            verifier,
            sessions,
            device: SigningKey::from_bytes(&[7; 32]),
            jti: AtomicU64::new(1),
        }
    }

    fn jkt(&self) -> String {
        PublicJwk::from_verifying_key(&self.device.verifying_key()).thumbprint()
    }

    async fn get(&self, token: &str) -> Result<VerifiedRequest, Rejection> {
        let mut jti = [0u8; 16];
        jti[..8].copy_from_slice(&self.jti.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        let proof = ProofBuilder::new(
            self.device.public_jwk(),
            "GET",
            &format!("{ORIGIN}/orders"),
            self.clock.now_secs(),
            jti,
        )
        .unwrap()
        .access_token(token)
        .sign(&self.device)
        .unwrap();
        let request = http::Request::get("/orders")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        self.verifier.verify(&parts).await
    }

    async fn login(&self) -> TokenResponse {
        self.sessions
            .open_session("alice", &self.jkt(), OpenRequest::new())
            .await
            .unwrap()
    }
}

fn code(result: Result<VerifiedRequest, Rejection>) -> &'static str {
    result.expect_err("the request must be refused").code()
}

#[tokio::test]
async fn a_revoked_session_is_refused_on_the_next_request() {
    let app = App::new();
    let t = app.login().await;
    let caller = app.get(&t.access_token).await.unwrap();
    assert_eq!(
        (caller.sub.as_str(), caller.sid.as_str()),
        ("alice", t.session_id.as_str())
    );
    app.get(&t.access_token).await.unwrap();
    app.sessions
        .revoke(
            &t.session_id,
            Reason::ADMIN_REVOKED,
            Actor::Admin("ops".into()),
        )
        .await
        .unwrap();
    // The access token has minutes left, but the session is gone.
    assert_eq!(code(app.get(&t.access_token).await), "session_revoked");
}

#[tokio::test]
async fn logout_expiry_and_reuse_are_refused_too() {
    let app = App::new();
    let t = app.login().await;
    app.sessions.close(&t.session_id).await.unwrap();
    assert_eq!(code(app.get(&t.access_token).await), "session_closed");

    let t = app.login().await;
    app.clock.advance(Duration::from_secs(250));
    let t1 = app
        .sessions
        .refresh(&t.refresh_token, &app.jkt(), &RequestSignals::new())
        .await
        .unwrap();
    app.get(&t1.access_token).await.unwrap();
    // The old access token is still within its lifetime and still works ...
    app.get(&t.access_token).await.unwrap();
    // ... until the stale refresh token shows up after grace: the session is revoked.
    app.clock.advance(Duration::from_secs(31));
    app.sessions
        .refresh(&t.refresh_token, &app.jkt(), &RequestSignals::new())
        .await
        .unwrap_err();
    assert_eq!(code(app.get(&t1.access_token).await), "session_revoked");

    let t = app.login().await;
    app.clock.advance(Duration::from_secs(299));
    app.get(&t.access_token).await.unwrap();
    app.clock.advance(Duration::from_secs(30 * 60));
    // The access token expired first here; the verifier says so before asking.
    assert_eq!(code(app.get(&t.access_token).await), "token_expired");
}

#[tokio::test]
async fn key_rotation_applies_to_issued_and_verified_tokens() {
    let app = App::new();
    let before = app.login().await;
    app.verifier
        .key_ring()
        .write()
        .unwrap()
        .rotate(ServerKey::from_seed(&[43; 32]));
    let after = app
        .sessions
        .refresh(&before.refresh_token, &app.jkt(), &RequestSignals::new())
        .await
        .unwrap();
    let old_kid = keybound_server::proto::AccessToken::parse(&before.access_token)
        .unwrap()
        .kid()
        .to_owned();
    let new_kid = keybound_server::proto::AccessToken::parse(&after.access_token)
        .unwrap()
        .kid()
        .to_owned();
    assert_ne!(old_kid, new_kid);
    app.get(&before.access_token).await.unwrap();
    app.get(&after.access_token).await.unwrap();
}

#[tokio::test]
async fn the_sweep_cleans_the_replay_store() {
    let app = App::new();
    let t = app.login().await;
    for _ in 0..5 {
        app.get(&t.access_token).await.unwrap();
    }
    let replay = app.verifier.replay_store().clone();
    assert_eq!(replay.approximate_len(), Some(5));
    app.clock.advance(Duration::from_secs(600));
    app.sessions.sweep_once().await.unwrap();
    assert_eq!(replay.approximate_len(), Some(0));
}
