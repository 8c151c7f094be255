//! Sessions bound to ECDSA P-256 (ES256) device keys, on every store: login, requests,
//! refresh and rotation, reuse detection, revocation, and keys of the other kind or of
//! another device refused; plus the accepted-algorithms setting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use common::app::{App, code};
use keybound_server::Rejection;
use keybound_server::lifecycle::{Actor, Reason};
use keybound_server::proto::ed25519_dalek::SigningKey;
use keybound_server::proto::{ProofAlg, ProofAlgs, ProtoError, PublicJwk, Signer};

/// A P-256 device key, as a browser's WebCrypto key or an ES256 DPoP client holds it.
struct P256Device(EcdsaKeyPair);

impl P256Device {
    fn generate() -> Self {
        Self(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }
}

impl Signer for P256Device {
    fn public_jwk(&self) -> PublicJwk {
        let sec1 = self.0.public_key().as_ref();
        assert_eq!((sec1.len(), sec1[0]), (65, 4));
        PublicJwk::from_p256_coordinates(
            sec1[1..33].try_into().unwrap(),
            sec1[33..].try_into().unwrap(),
        )
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], ProtoError> {
        let signature = self.0.sign(&SystemRandom::new(), message).unwrap();
        Ok(signature.as_ref().try_into().unwrap())
    }
}

/// One session's whole life with a P-256 device key, on `app`'s store.
async fn whole_life(app: App) {
    let device = P256Device::generate();
    let t = app.login(&device).await;
    let caller = app.get(&device, &t.access_token).await.unwrap();
    assert_eq!(caller.sid, t.session_id);
    assert_eq!(caller.jkt, device.public_jwk().thumbprint());
    assert!(caller.jkt.len() == 43);

    // Another P-256 key, and an Ed25519 key, cannot use the token.
    let thief = P256Device::generate();
    assert_eq!(code(app.get(&thief, &t.access_token).await), "jkt_mismatch");
    let ed = SigningKey::from_bytes(&[9; 32]);
    assert_eq!(code(app.get(&ed, &t.access_token).await), "jkt_mismatch");

    // Rotation: the new pair works; the refresh token is bound to the P-256 key.
    app.clock.advance(Duration::from_secs(100));
    let stolen = app.refresh(&thief, &t.refresh_token).await.unwrap_err();
    assert_eq!(stolen.code(), "refresh_key_mismatch");
    let t1 = app.refresh(&device, &t.refresh_token).await.unwrap();
    assert_eq!(t1.session_id, t.session_id);
    assert_ne!(t1.refresh_token, t.refresh_token);
    app.get(&device, &t1.access_token).await.unwrap();

    // The previous refresh token after the grace period is reuse: the session is
    // revoked, and its still-unexpired access token refused at once.
    app.clock.advance(Duration::from_secs(31));
    let reuse = app.refresh(&device, &t.refresh_token).await.unwrap_err();
    assert_eq!(reuse.code(), "refresh_token_reused");
    assert_eq!(
        code(app.get(&device, &t1.access_token).await),
        "session_revoked"
    );

    // A second session of the same key, revoked by an admin, listed before and after.
    let t2 = app.login(&device).await;
    app.get(&device, &t2.access_token).await.unwrap();
    let listed = app.sessions.list_sessions("alice", None).await.unwrap();
    assert!(listed.iter().any(|s| s.session_id == t2.session_id));
    app.sessions
        .revoke(
            &t2.session_id,
            Reason::ADMIN_REVOKED,
            Actor::Admin("ops".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        code(app.get(&device, &t2.access_token).await),
        "session_revoked"
    );
    let refused = app.refresh(&device, &t2.refresh_token).await.unwrap_err();
    assert_eq!(refused.code(), "session_revoked");
}

#[tokio::test]
async fn memory_store() {
    whole_life(App::new(
        keybound_server::store::MemoryStore::new(),
        ProofAlgs::ALL,
    ))
    .await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = keybound_server::store::SqliteStore::open(dir.path().join("sessions.db"))
        .await
        .unwrap();
    whole_life(App::new(store, ProofAlgs::ALL)).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_store() {
    use keybound_server::store::redis::{RedisOptions, RedisStore};
    let server = redis_server::shared();
    let options = RedisOptions::default().prefix(redis_server::unique_prefix());
    let store = RedisStore::connect_with(&server.url(), options)
        .await
        .unwrap();
    whole_life(App::new(store, ProofAlgs::ALL).with_guard(server)).await;
}

#[tokio::test]
async fn accepted_algorithms_are_a_setting_and_are_advertised() {
    let es256_only = App::new(
        keybound_server::store::MemoryStore::new(),
        ProofAlgs::only(ProofAlg::ES256),
    );
    let ed = SigningKey::from_bytes(&[9; 32]);
    let refused = es256_only.proof_jkt(&ed, "/login").await.unwrap_err();
    assert_eq!(refused.code(), "unsupported_alg");
    let response = es256_only.verifier.response(refused);
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"DPoP error="invalid_dpop_proof", error_description="unsupported alg", algs="ES256""#
    );
    es256_only
        .proof_jkt(&P256Device::generate(), "/login")
        .await
        .unwrap();

    let eddsa_only = App::new(
        keybound_server::store::MemoryStore::new(),
        ProofAlgs::only(ProofAlg::EdDSA),
    );
    let refused = eddsa_only
        .proof_jkt(&P256Device::generate(), "/login")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "unsupported_alg");
    assert!(
        eddsa_only.verifier.response(refused).headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .ends_with(r#"algs="EdDSA""#)
    );
    eddsa_only.proof_jkt(&ed, "/login").await.unwrap();
    // By default both are accepted and advertised.
    assert_eq!(
        Rejection::MissingProof
            .www_authenticate(ProofAlgs::ALL)
            .unwrap(),
        r#"DPoP error="invalid_dpop_proof", error_description="the request has no DPoP proof", algs="EdDSA ES256""#
    );
}

#[tokio::test]
async fn es256_proofs_reuse_decoded_keys_and_stay_checked() {
    let app = App::new(keybound_server::store::MemoryStore::new(), ProofAlgs::ALL);
    let device = P256Device::generate();
    let t = app.login(&device).await;
    for _ in 0..3 {
        app.get(&device, &t.access_token).await.unwrap();
    }
    // A replayed ES256 proof is refused like any other.
    let proof = app.proof(&device, "GET", "/orders", Some(&t.access_token));
    let request = || {
        let (parts, ()) = http::Request::get("/orders")
            .header("authorization", format!("DPoP {}", t.access_token))
            .header("dpop", proof.as_str())
            .body(())
            .unwrap()
            .into_parts();
        parts
    };
    app.verifier.verify(&request()).await.unwrap();
    assert_eq!(code(app.verifier.verify(&request()).await), "replayed_jti");
}
