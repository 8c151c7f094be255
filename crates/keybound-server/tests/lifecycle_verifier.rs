//! The lifecycle service behind the request verifier: login, requests, refresh and
//! revocation end to end, with one key ring and one replay store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::app::{App, code};
use keybound_server::ServerKey;
use keybound_server::lifecycle::{Actor, Reason, RequestSignals};
use keybound_server::proto::ed25519_dalek::SigningKey;
use keybound_server::proto::{ProofAlgs, Signer};
use keybound_server::store::MemoryStore;

/// The service on a memory store, and the one Ed25519 device these tests sign with.
fn app() -> (App, SigningKey) {
    (
        App::new(MemoryStore::new(), ProofAlgs::ALL),
        SigningKey::from_bytes(&[7; 32]),
    )
}

#[tokio::test]
async fn a_revoked_session_is_refused_on_the_next_request() {
    let (app, device) = app();
    let t = app.login(&device).await;
    let caller = app.get(&device, &t.access_token).await.unwrap();
    assert_eq!(
        (caller.sub.as_str(), caller.sid.as_str()),
        ("alice", t.session_id.as_str())
    );
    app.get(&device, &t.access_token).await.unwrap();
    app.sessions
        .revoke(
            &t.session_id,
            Reason::ADMIN_REVOKED,
            Actor::Admin("ops".into()),
        )
        .await
        .unwrap();
    // The access token has minutes left, but the session is gone.
    assert_eq!(
        code(app.get(&device, &t.access_token).await),
        "session_revoked"
    );
}

#[tokio::test]
async fn logout_expiry_and_reuse_are_refused_too() {
    let (app, device) = app();
    let t = app.login(&device).await;
    app.sessions.close(&t.session_id).await.unwrap();
    assert_eq!(
        code(app.get(&device, &t.access_token).await),
        "session_closed"
    );

    let t = app.login(&device).await;
    app.clock.advance(Duration::from_secs(250));
    let t1 = app
        .sessions
        .refresh(
            &t.refresh_token,
            &device.public_jwk().thumbprint(),
            &RequestSignals::new(),
        )
        .await
        .unwrap();
    app.get(&device, &t1.access_token).await.unwrap();
    // The old access token is still within its lifetime and still works ...
    app.get(&device, &t.access_token).await.unwrap();
    // ... until the stale refresh token shows up after grace: the session is revoked.
    app.clock.advance(Duration::from_secs(31));
    app.sessions
        .refresh(
            &t.refresh_token,
            &device.public_jwk().thumbprint(),
            &RequestSignals::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        code(app.get(&device, &t1.access_token).await),
        "session_revoked"
    );

    let t = app.login(&device).await;
    app.clock.advance(Duration::from_secs(299));
    app.get(&device, &t.access_token).await.unwrap();
    app.clock.advance(Duration::from_secs(30 * 60));
    // The access token expired first here; the verifier says so before asking.
    assert_eq!(
        code(app.get(&device, &t.access_token).await),
        "token_expired"
    );
}

#[tokio::test]
async fn key_rotation_applies_to_issued_and_verified_tokens() {
    let (app, device) = app();
    let before = app.login(&device).await;
    app.verifier
        .key_ring()
        .write()
        .unwrap()
        .rotate(ServerKey::from_seed(&[43; 32]));
    let after = app
        .sessions
        .refresh(
            &before.refresh_token,
            &device.public_jwk().thumbprint(),
            &RequestSignals::new(),
        )
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
    app.get(&device, &before.access_token).await.unwrap();
    app.get(&device, &after.access_token).await.unwrap();
}

#[tokio::test]
async fn the_sweep_cleans_the_replay_store() {
    let (app, device) = app();
    let t = app.login(&device).await;
    for _ in 0..5 {
        app.get(&device, &t.access_token).await.unwrap();
    }
    let replay = app.verifier.replay_store().clone();
    assert_eq!(replay.approximate_len(), Some(5));
    app.clock.advance(Duration::from_secs(600));
    app.sessions.sweep_once().await.unwrap();
    assert_eq!(replay.approximate_len(), Some(0));
}
