//! The request verifier end to end: one rejecting test per check (asserting the exact
//! `error_code` and OAuth error), the happy paths, key rotation, the token cache,
//! nonces, session state, the replay store failing closed, and a property test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use http::request::Parts;
use keybound_proto::{AccessTokenClaims, ErrorBody, ProofAlgs, ProofBuilder, Signer, b64};
use keybound_server::{
    BoxFuture, KeyRing, ManualClock, MemoryReplayStore, Nonces, Rejection, ReplayStore, ServerKey,
    SessionCheck, SessionDenied, SharedKeyRing, VerifiedRequest, Verifier, VerifierBuilder,
    verify_stateless,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const T0: i64 = 1_700_000_000;
const ORIGIN: &str = "https://api.example.com";
const URL: &str = "https://api.example.com/orders";

/// Everything one test needs: a clock, the server keys, a device key, an access token
/// bound to it, and a verifier.
struct Fx {
    clock: ManualClock,
    keys: SharedKeyRing,
    device: SigningKey,
    token: String,
    verifier: Verifier,
    next_jti: AtomicU64,
}

impl Fx {
    fn new() -> Self {
        Self::with(|b| b)
    }

    fn with(configure: impl FnOnce(VerifierBuilder) -> VerifierBuilder) -> Self {
        Self::with_clock(|b, _| configure(b))
    }

    /// Like [`Fx::with`], handing the configuration the fixture's clock.
    fn with_clock(
        configure: impl FnOnce(VerifierBuilder, &ManualClock) -> VerifierBuilder,
    ) -> Self {
        let clock = ManualClock::new(T0 * 1000);
        let keys: SharedKeyRing = Arc::new(RwLock::new(KeyRing::new(
            ServerKey::from_seed(&[1u8; 32]).with_kid("k1"),
        )));
        let device = SigningKey::from_bytes(&[2u8; 32]);
        let token = keys.read().unwrap().sign(&claims(&device)).unwrap();
        let builder = Verifier::builder()
            .public_origin(ORIGIN)
            .key_ring(keys.clone())
            .clock(Arc::new(clock.clone()))
            .danger_accept_any_session();
        let verifier = configure(builder, &clock).build().unwrap();
        Self {
            clock,
            keys,
            device,
            token,
            verifier,
            next_jti: AtomicU64::new(1),
        }
    }

    fn now(&self) -> i64 {
        use keybound_server::Clock;
        self.clock.now_secs()
    }

    fn jti(&self) -> [u8; 16] {
        let n = self.next_jti.fetch_add(1, Ordering::Relaxed);
        let mut jti = [0u8; 16];
        jti[..8].copy_from_slice(&n.to_le_bytes());
        jti
    }

    /// A builder for a proof of `method url` now, by the device key, with a fresh jti.
    fn proof_builder(&self, method: &str, url: &str) -> ProofBuilder {
        ProofBuilder::new(
            self.device.public_jwk(),
            method,
            url,
            self.now(),
            self.jti(),
        )
        .unwrap()
    }

    /// A valid proof for `GET /orders` with the fixture's token.
    fn proof(&self) -> String {
        self.proof_to("GET", URL, &self.token)
    }

    /// The device's proof for `method url`, bound to the access token `token`.
    fn proof_to(&self, method: &str, url: &str, token: &str) -> String {
        self.proof_builder(method, url)
            .access_token(token)
            .sign(&self.device)
            .unwrap()
    }

    /// The proof claims a valid proof for `GET /orders` with the fixture's token has.
    fn proof_claims(&self) -> Value {
        json!({
            "jti": b64::encode(self.jti()),
            "htm": "GET",
            "htu": URL,
            "iat": self.now(),
            "ath": keybound_proto::access_token_hash(&self.token),
        })
    }

    fn proof_header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": self.device.public_jwk().to_json()})
    }

    async fn call(&self, proof: &str) -> Result<VerifiedRequest, Rejection> {
        self.call_with(&self.token.clone(), proof).await
    }

    async fn call_with(&self, token: &str, proof: &str) -> Result<VerifiedRequest, Rejection> {
        let parts = parts(
            "GET",
            "/orders",
            &[("authorization", &format!("DPoP {token}")), ("dpop", proof)],
        );
        self.verifier.verify(&parts).await
    }

    /// Signs access-token claims with the ring's current key.
    fn sign(&self, claims: &AccessTokenClaims) -> String {
        self.keys.read().unwrap().sign(claims).unwrap()
    }
}

fn claims(device: &SigningKey) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ORIGIN.into(),
        sub: "alice".into(),
        sid: "s1".into(),
        jti: "tok-1".into(),
        iat: T0,
        exp: T0 + 300,
        jkt: device.public_jwk().thumbprint(),
    }
}

fn parts(method: &str, path: &str, headers: &[(&str, &str)]) -> Parts {
    let mut builder = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

/// A compact JWS with exactly these header and payload texts, signed by `key`.
fn raw_jws(header: &str, payload: &str, key: &SigningKey) -> String {
    let input = format!("{}.{}", b64::encode(header), b64::encode(payload));
    let signature = Signer::sign(key, input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(signature))
}

fn jws(header: &Value, payload: &Value, key: &SigningKey) -> String {
    raw_jws(&header.to_string(), &payload.to_string(), key)
}

/// Asserts the exact fine code and OAuth error, and that the HTTP response says so.
#[track_caller]
fn assert_rejected<T: std::fmt::Debug>(
    result: Result<T, Rejection>,
    code: &str,
    oauth_error: &str,
) -> Rejection {
    let rejection = result.expect_err("the request must be rejected");
    assert_eq!(rejection.code(), code, "{rejection:?}");
    assert_eq!(rejection.oauth_error(), oauth_error, "{rejection:?}");
    let response = rejection.clone().into_http_response(ProofAlgs::ALL);
    let body: ErrorBody = serde_json::from_str(response.body()).unwrap();
    assert_eq!(body.error_code, code);
    assert_eq!(body.error, oauth_error);
    if response.status() == 401 {
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with(&format!("DPoP error=\"{oauth_error}\"")),
            "{challenge}"
        );
        assert!(challenge.ends_with("algs=\"EdDSA ES256\""), "{challenge}");
    }
    rejection
}

/// Flips one bit in the signature part.
fn corrupt_signature(jws: &str) -> String {
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let mut sig = b64::decode(sig, "sig").unwrap();
    sig[5] ^= 0x01;
    format!("{input}.{}", b64::encode(sig))
}

// ----- happy paths -----

#[tokio::test]
async fn valid_request_is_verified() {
    let fx = Fx::new();
    let caller = fx.call(&fx.proof()).await.unwrap();
    assert_eq!(
        caller,
        VerifiedRequest {
            sub: "alice".into(),
            sid: "s1".into(),
            jkt: fx.device.public_jwk().thumbprint(),
            token_expires_at: T0 + 300,
            token_jti: "tok-1".into(),
        }
    );
}

#[test]
fn verifier_and_its_futures_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>(_: &T) {}
    fn assert_send<T: Send>(_: &T) {}
    let fx = Fx::new();
    assert_send_sync(&fx.verifier);
    let request = parts("GET", "/orders", &[]);
    assert_send(&fx.verifier.verify(&request));
    assert_send(&fx.verifier.verify_proof(&request));
}

#[tokio::test]
async fn host_header_and_request_authority_are_not_trusted() {
    let fx = Fx::new();
    // A proof for the attacker's host fails even when Host and the target agree with it.
    let proof = fx.proof_to("GET", "https://evil.example/orders", &fx.token);
    let auth = format!("DPoP {}", fx.token);
    let request = parts(
        "GET",
        "https://evil.example/orders",
        &[
            ("host", "evil.example"),
            ("authorization", &auth),
            ("dpop", &proof),
        ],
    );
    assert_rejected(
        fx.verifier.verify(&request).await,
        "htu_mismatch",
        "invalid_dpop_proof",
    );
    // The configured origin plus the path is what counts; the query is ignored.
    let request = parts(
        "GET",
        "http://10.0.0.7:8080/orders?page=2",
        &[
            ("host", "10.0.0.7:8080"),
            ("authorization", &auth),
            ("dpop", &fx.proof()),
        ],
    );
    fx.verifier.verify(&request).await.unwrap();
}

#[tokio::test]
async fn scheme_is_case_insensitive_and_origin_may_have_a_base_path() {
    let fx = Fx::with(|b| {
        b.public_origin("https://API.example.com:443/api/")
            .issuer(ORIGIN)
    });
    let proof = fx.proof_to("POST", "https://api.example.com/api/orders/./1", &fx.token);
    let auth = format!("dpop {}", fx.token);
    let request = parts(
        "POST",
        "/orders/1",
        &[("authorization", &auth), ("dpop", &proof)],
    );
    fx.verifier.verify(&request).await.unwrap();
    assert_eq!(fx.verifier.public_origin(), "https://api.example.com/api");
}

// ----- header shape and size -----

#[tokio::test]
async fn bearer_scheme_is_refused() {
    let fx = Fx::new();
    let auth = format!("Bearer {}", fx.token);
    let request = parts(
        "GET",
        "/orders",
        &[("authorization", &auth), ("dpop", &fx.proof())],
    );
    assert_rejected(
        fx.verifier.verify(&request).await,
        "invalid_auth_scheme",
        "invalid_token",
    );
}

#[tokio::test]
async fn missing_token_and_missing_proof() {
    let fx = Fx::new();
    let request = parts("GET", "/orders", &[("dpop", &fx.proof())]);
    assert_rejected(
        fx.verifier.verify(&request).await,
        "missing_token",
        "invalid_token",
    );
    let request = parts(
        "GET",
        "/orders",
        &[("authorization", "DPoP "), ("dpop", &fx.proof())],
    );
    assert_rejected(
        fx.verifier.verify(&request).await,
        "missing_token",
        "invalid_token",
    );
    let auth = format!("DPoP {}", fx.token);
    let request = parts("GET", "/orders", &[("authorization", &auth)]);
    assert_rejected(
        fx.verifier.verify(&request).await,
        "missing_proof",
        "invalid_dpop_proof",
    );
}

#[tokio::test]
async fn two_dpop_headers_are_refused() {
    let fx = Fx::new();
    let auth = format!("DPoP {}", fx.token);
    let (a, b) = (fx.proof(), fx.proof());
    let request = parts(
        "GET",
        "/orders",
        &[("authorization", &auth), ("dpop", &a), ("dpop", &b)],
    );
    assert_rejected(
        fx.verifier.verify(&request).await,
        "multiple_dpop_headers",
        "invalid_dpop_proof",
    );
    // Two proofs folded into one header by a proxy.
    let folded = format!("{a}, {b}");
    let request = parts(
        "GET",
        "/orders",
        &[("authorization", &auth), ("dpop", &folded)],
    );
    assert_rejected(
        fx.verifier.verify(&request).await,
        "multiple_dpop_headers",
        "invalid_dpop_proof",
    );
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let fx = Fx::new();
    let auth = format!("DPoP {}", fx.token);
    let request = parts(
        "GET",
        "/orders",
        &[
            ("authorization", &auth),
            ("authorization", &auth),
            ("dpop", &fx.proof()),
        ],
    );
    assert_rejected(
        fx.verifier.verify(&request).await,
        "multiple_authorization_headers",
        "invalid_token",
    );
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let fx = Fx::new();
    let big = "A".repeat(8 * 1024 + 1);
    let auth = format!("DPoP {}", fx.token);
    let request = parts(
        "GET",
        "/orders",
        &[("authorization", &auth), ("dpop", &big)],
    );
    let rejection = assert_rejected(
        fx.verifier.verify(&request).await,
        "header_too_large",
        "invalid_dpop_proof",
    );
    assert_eq!(
        rejection.body().error_description,
        "the DPoP header is larger than 8192 bytes"
    );
    let big_auth = format!("DPoP {big}");
    let request = parts(
        "GET",
        "/orders",
        &[("authorization", &big_auth), ("dpop", &fx.proof())],
    );
    assert_rejected(
        fx.verifier.verify(&request).await,
        "header_too_large",
        "invalid_token",
    );
    // A configured lower limit applies to both headers.
    let fx = Fx::with(|b| b.max_header_len(400));
    assert_rejected(
        fx.call(&fx.proof()).await,
        "header_too_large",
        "invalid_dpop_proof",
    );
}

// ----- JOSE parsing of the proof -----

#[tokio::test]
async fn algs_the_vectors_lack_are_refused() {
    // `tests/vectors/invalid.json` has `none`, `HS256`, `ES384`, lowercase names and
    // `ES256` with an OKP key (`verifier_vectors.rs`); a suffixed name is refused too.
    let fx = Fx::new();
    let header =
        json!({"typ": "dpop+jwt", "alg": "EdDSA+x", "jwk": fx.device.public_jwk().to_json()});
    let proof = jws(&header, &fx.proof_claims(), &fx.device);
    assert_rejected(
        fx.call(&proof).await,
        "unsupported_alg",
        "invalid_dpop_proof",
    );
}

#[tokio::test]
async fn missing_claims_are_refused() {
    let fx = Fx::new();
    for claim in ["jti", "htm", "htu", "iat"] {
        let mut payload = fx.proof_claims();
        payload.as_object_mut().unwrap().remove(claim);
        let proof = jws(&fx.proof_header(), &payload, &fx.device);
        let rejection =
            assert_rejected(fx.call(&proof).await, "missing_claim", "invalid_dpop_proof");
        assert_eq!(
            rejection.body().error_description,
            format!("missing claim: {claim}")
        );
    }
    let mut header = fx.proof_header();
    header.as_object_mut().unwrap().remove("jwk");
    let proof = jws(&header, &fx.proof_claims(), &fx.device);
    assert_rejected(fx.call(&proof).await, "missing_claim", "invalid_dpop_proof");
}

// ----- binding to the request -----

#[tokio::test]
async fn htu_is_compared_after_normalising() {
    // Other hosts, paths, schemes, ports and non-URLs are vectors
    // (`verifier_vectors.rs`); a trailing slash is another path too.
    let fx = Fx::new();
    let proof = fx.proof_to("GET", "https://api.example.com/orders/", &fx.token);
    assert_rejected(fx.call(&proof).await, "htu_mismatch", "invalid_dpop_proof");
    // Equivalent spellings are accepted.
    let proof = fx.proof_to(
        "GET",
        "HTTPS://API.EXAMPLE.COM:443/a/../orders?x=1",
        &fx.token,
    );
    fx.call(&proof).await.unwrap();
}

// ----- time -----

#[tokio::test]
async fn iat_window_is_enforced() {
    let fx = Fx::new();
    let at = |iat: i64| {
        ProofBuilder::new(fx.device.public_jwk(), "GET", URL, iat, fx.jti())
            .unwrap()
            .access_token(&fx.token)
            .sign(&fx.device)
            .unwrap()
    };
    assert_rejected(
        fx.call(&at(T0 - 61)).await,
        "iat_too_old",
        "invalid_dpop_proof",
    );
    assert_rejected(
        fx.call(&at(T0 + 61)).await,
        "iat_in_future",
        "invalid_dpop_proof",
    );
    fx.call(&at(T0 - 60)).await.unwrap();
    // Ahead of the clock only a few seconds (DEFAULT_MAX_IAT_AHEAD) ...
    fx.call(&at(T0 + 5)).await.unwrap();
    // ... unless configured up to the skew.
    let wide = Fx::with(|b| b.max_iat_ahead(Duration::from_secs(600)));
    let proof = ProofBuilder::new(wide.device.public_jwk(), "GET", URL, T0 + 60, wide.jti())
        .unwrap()
        .access_token(&wide.token)
        .sign(&wide.device)
        .unwrap();
    wide.call(&proof).await.unwrap();
    // A configured skew.
    let fx = Fx::with(|b| b.max_skew(Duration::from_secs(5)));
    let proof = ProofBuilder::new(fx.device.public_jwk(), "GET", URL, T0 - 6, fx.jti())
        .unwrap()
        .access_token(&fx.token)
        .sign(&fx.device)
        .unwrap();
    assert_rejected(fx.call(&proof).await, "iat_too_old", "invalid_dpop_proof");
}

#[tokio::test]
async fn expired_token_is_refused() {
    let fx = Fx::new();
    fx.call(&fx.proof()).await.unwrap();
    fx.clock.advance(Duration::from_secs(299));
    fx.call(&fx.proof()).await.unwrap();
    fx.clock.advance(Duration::from_secs(1));
    // The token is cached, and still refused once expired.
    assert_rejected(fx.call(&fx.proof()).await, "token_expired", "invalid_token");
}

// ----- ath and cnf.jkt -----

// ----- signatures and keys -----

#[tokio::test]
async fn key_rotation_keeps_old_tokens_until_retired() {
    let fx = Fx::new();
    let old_token = fx.token.clone();
    fx.call(&fx.proof()).await.unwrap(); // now cached
    fx.keys
        .write()
        .unwrap()
        .rotate(ServerKey::from_seed(&[3u8; 32]).with_kid("k2"));
    // A token signed by the previous key still verifies (cached or not) ...
    fx.call(&fx.proof()).await.unwrap();
    fx.verifier.token_cache().clear();
    fx.call(&fx.proof()).await.unwrap();
    // ... new tokens are signed by the new key ...
    let new_token = fx.sign(&AccessTokenClaims {
        jti: "tok-2".into(),
        ..claims(&fx.device)
    });
    let (header, _) = keybound_proto::decode_unverified(&new_token).unwrap();
    assert_eq!(header["kid"], "k2");
    let proof = fx.proof_to("GET", URL, &new_token);
    fx.call_with(&new_token, &proof).await.unwrap();
    // ... and once the old key is retired, its tokens are refused, cached or not.
    assert!(fx.keys.write().unwrap().retire("k1"));
    let proof = fx.proof_to("GET", URL, &old_token);
    assert_rejected(
        fx.call_with(&old_token, &proof).await,
        "unknown_kid",
        "invalid_token",
    );
}

#[tokio::test]
async fn cached_token_still_has_its_proof_checked() {
    let fx = Fx::new();
    fx.call(&fx.proof()).await.unwrap();
    assert_eq!(fx.verifier.token_cache().len(), 1);
    // Everything about the proof is still checked on a cache hit.
    assert_rejected(
        fx.call(&corrupt_signature(&fx.proof())).await,
        "invalid_signature",
        "invalid_dpop_proof",
    );
    let thief = SigningKey::from_bytes(&[9u8; 32]);
    let proof = ProofBuilder::new(thief.public_jwk(), "GET", URL, T0, fx.jti())
        .unwrap()
        .access_token(&fx.token)
        .sign(&thief)
        .unwrap();
    assert_rejected(fx.call(&proof).await, "jkt_mismatch", "invalid_token");
    let proof = fx.proof_to("DELETE", URL, &fx.token);
    assert_rejected(fx.call(&proof).await, "htm_mismatch", "invalid_dpop_proof");
    let proof = fx.proof();
    fx.call(&proof).await.unwrap();
    assert_rejected(fx.call(&proof).await, "replayed_jti", "invalid_dpop_proof");
    // A corrupted copy of the cached token misses the cache and fails its signature.
    let token = corrupt_signature(&fx.token);
    let proof = fx.proof_to("GET", URL, &token);
    assert_rejected(
        fx.call_with(&token, &proof).await,
        "invalid_signature",
        "invalid_token",
    );
}

#[tokio::test]
async fn nothing_is_cached_or_recorded_before_signatures_verify() {
    let fx = Fx::new();
    let proof = corrupt_signature(&fx.proof());
    assert!(fx.call(&proof).await.is_err());
    assert!(fx.verifier.token_cache().is_empty());
    assert_eq!(fx.verifier.replay_store().approximate_len(), Some(0));
}

#[tokio::test]
async fn disabled_cache_verifies_every_time() {
    let fx = Fx::with(|b| b.token_cache_capacity(0));
    fx.call(&fx.proof()).await.unwrap();
    fx.call(&fx.proof()).await.unwrap();
    assert!(fx.verifier.token_cache().is_empty());
}

// ----- replay -----

#[tokio::test]
async fn replayed_jti_is_refused() {
    let fx = Fx::new();
    let proof = fx.proof();
    fx.call(&proof).await.unwrap();
    assert_rejected(fx.call(&proof).await, "replayed_jti", "invalid_dpop_proof");
    // Still refused at the end of its window; then too old anyway.
    fx.clock.advance(Duration::from_secs(60));
    assert_rejected(fx.call(&proof).await, "replayed_jti", "invalid_dpop_proof");
    fx.clock.advance(Duration::from_secs(1));
    assert_rejected(fx.call(&proof).await, "iat_too_old", "invalid_dpop_proof");
}

#[tokio::test]
async fn same_jti_under_another_key_is_not_a_replay() {
    let fx = Fx::new();
    let jti = [0xAB; 16];
    let proof = ProofBuilder::new(fx.device.public_jwk(), "POST", URL, T0, jti)
        .unwrap()
        .sign(&fx.device)
        .unwrap();
    let other = SigningKey::from_bytes(&[4u8; 32]);
    let other_proof = ProofBuilder::new(other.public_jwk(), "POST", URL, T0, jti)
        .unwrap()
        .sign(&other)
        .unwrap();
    let verify = |p: &str| parts("POST", "/orders", &[("dpop", p)]);
    let first = fx.verifier.verify_proof(&verify(&proof)).await.unwrap();
    fx.verifier.consume_proof(&first).await.unwrap();
    let other = fx
        .verifier
        .verify_proof(&verify(&other_proof))
        .await
        .unwrap();
    fx.verifier.consume_proof(&other).await.unwrap();
    let again = fx.verifier.verify_proof(&verify(&proof)).await.unwrap();
    assert_rejected(
        fx.verifier.consume_proof(&again).await,
        "replayed_jti",
        "invalid_dpop_proof",
    );
}

#[tokio::test]
async fn full_replay_store_fails_closed() {
    let mut store = None;
    let fx = Fx::with_clock(|b, clock| {
        let memory = Arc::new(MemoryReplayStore::with_capacity(Arc::new(clock.clone()), 3));
        store = Some(memory.clone());
        b.replay_store(memory)
    });
    let store = store.unwrap();
    for _ in 0..3 {
        fx.call(&fx.proof()).await.unwrap();
    }
    let rejection = assert_rejected(
        fx.call(&fx.proof()).await,
        "replay_store_unavailable",
        "temporarily_unavailable",
    );
    let response = rejection.into_http_response(ProofAlgs::ALL);
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(response.headers().get("www-authenticate").is_none());
    // Once the recorded proofs are past their window, there is room again.
    fx.clock.advance(Duration::from_secs(61));
    fx.call(&fx.proof()).await.unwrap();
    assert!(store.len() <= 3);
}

/// A replay store whose backend is down.
struct DownStore;

impl ReplayStore for DownStore {
    fn insert_once<'a>(
        &'a self,
        _key: &'a [u8; 32],
        _expires_at_ms: i64,
    ) -> BoxFuture<'a, Result<bool, keybound_server::ReplayError>> {
        Box::pin(async {
            Err(keybound_server::ReplayError::Unavailable {
                reason: "connection refused".into(),
            })
        })
    }

    fn sweep(&self) -> BoxFuture<'_, Result<usize, keybound_server::ReplayError>> {
        Box::pin(async { Ok(0) })
    }

    fn approximate_len(&self) -> Option<usize> {
        None
    }
}

#[tokio::test]
async fn unreachable_replay_store_fails_closed() {
    let fx = Fx::with(|b| b.replay_store(Arc::new(DownStore)));
    let rejection = assert_rejected(
        fx.call(&fx.proof()).await,
        "replay_store_unavailable",
        "temporarily_unavailable",
    );
    assert_eq!(rejection.status(), 503);
    assert!(!rejection.description().contains("connection refused"));
}

// ----- nonces -----

#[tokio::test]
async fn nonces_are_required_checked_and_accepted() {
    let fx = Fx::with(|b| b.nonces(Nonces::from_secret(&[6u8; 32], Duration::from_secs(60))));
    // No nonce: a challenge carrying the nonce to use.
    let rejection = assert_rejected(
        fx.call(&fx.proof()).await,
        "use_dpop_nonce",
        "use_dpop_nonce",
    );
    let nonce = rejection.nonce().unwrap().to_owned();
    assert_eq!(fx.verifier.nonce().as_deref(), Some(nonce.as_str()));
    let response = rejection.into_http_response(ProofAlgs::ALL);
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["dpop-nonce"], nonce.as_str());
    // A wrong nonce.
    let proof = fx
        .proof_builder("GET", URL)
        .access_token(&fx.token)
        .nonce("AAAAAAAAAAAAAAAAAAAAAA")
        .sign(&fx.device)
        .unwrap();
    let rejection = assert_rejected(fx.call(&proof).await, "invalid_nonce", "use_dpop_nonce");
    assert_eq!(rejection.nonce(), Some(nonce.as_str()));
    // The right one.
    let with_nonce = || {
        fx.proof_builder("GET", URL)
            .access_token(&fx.token)
            .nonce(&nonce)
            .sign(&fx.device)
            .unwrap()
    };
    fx.call(&with_nonce()).await.unwrap();
    // Still accepted in the next step, stale after that.
    fx.clock.advance(Duration::from_secs(60));
    fx.call(&with_nonce()).await.unwrap();
    fx.clock.advance(Duration::from_secs(60));
    assert_rejected(
        fx.call(&with_nonce()).await,
        "invalid_nonce",
        "use_dpop_nonce",
    );
}

#[tokio::test]
async fn nonces_are_off_by_default() {
    let fx = Fx::new();
    assert_eq!(fx.verifier.nonce(), None);
    fx.call(&fx.proof()).await.unwrap();
}

// ----- session state -----

/// Denies every session with a fixed reason, recording what it was asked.
struct Deny(
    SessionDenied,
    std::sync::Mutex<Vec<(String, String, String)>>,
);

impl SessionCheck for Deny {
    fn check<'a>(
        &'a self,
        sid: &'a str,
        sub: &'a str,
        jkt: &'a str,
    ) -> BoxFuture<'a, Result<(), SessionDenied>> {
        self.1
            .lock()
            .unwrap()
            .push((sid.into(), sub.into(), jkt.into()));
        Box::pin(async move { Err(self.0) })
    }
}

#[tokio::test]
async fn denied_sessions_are_refused() {
    for (denied, code, status) in [
        (SessionDenied::Revoked, "session_revoked", 401),
        (SessionDenied::Expired, "session_expired", 401),
        (SessionDenied::Closed, "session_closed", 401),
        (SessionDenied::Unknown, "session_unknown", 401),
        (SessionDenied::KeyMismatch, "session_key_mismatch", 401),
        (SessionDenied::Unavailable, "session_store_unavailable", 503),
    ] {
        let check = Arc::new(Deny(denied, Default::default()));
        let fx = Fx::with(|b| b.session_check(check.clone()));
        let oauth = if status == 503 {
            "temporarily_unavailable"
        } else {
            "invalid_token"
        };
        let rejection = assert_rejected(fx.call(&fx.proof()).await, code, oauth);
        assert_eq!(rejection.status(), status);
        let asked = check.1.lock().unwrap().clone();
        assert_eq!(
            asked,
            vec![(
                "s1".to_owned(),
                "alice".to_owned(),
                fx.device.public_jwk().thumbprint()
            )]
        );
    }
}

#[tokio::test]
async fn session_is_not_consulted_for_bad_requests() {
    let check = Arc::new(Deny(SessionDenied::Revoked, Default::default()));
    let fx = Fx::with(|b| b.session_check(check.clone()));
    assert_rejected(
        fx.call(&corrupt_signature(&fx.proof())).await,
        "invalid_signature",
        "invalid_dpop_proof",
    );
    assert!(check.1.lock().unwrap().is_empty());
}

// ----- proof-only requests -----

#[tokio::test]
async fn proof_only_requests_are_verified() {
    let fx = Fx::new();
    let proof = fx
        .proof_builder("POST", "https://api.example.com/session/refresh")
        .sign(&fx.device)
        .unwrap();
    let request = parts(
        "POST",
        "/session/refresh",
        &[("dpop", &proof), ("authorization", "Bearer ignored")],
    );
    let verified = fx.verifier.verify_proof(&request).await.unwrap();
    assert_eq!(verified.jkt, fx.device.public_jwk().thumbprint());
    assert_eq!(verified.jwk, fx.device.public_jwk());
    assert_eq!(verified.claims.htm, "POST");
    // Verifying records nothing: the caller consumes the proof once the request is
    // authenticated otherwise, and only once.
    let again = fx.verifier.verify_proof(&request).await.unwrap();
    fx.verifier.consume_proof(&verified).await.unwrap();
    assert_rejected(
        fx.verifier.consume_proof(&again).await,
        "replayed_jti",
        "invalid_dpop_proof",
    );
    let request = parts("POST", "/session/refresh", &[]);
    assert_rejected(
        fx.verifier.verify_proof(&request).await,
        "missing_proof",
        "invalid_dpop_proof",
    );
}

#[tokio::test]
async fn proof_only_requests_need_the_nonce_too() {
    let fx = Fx::with(|b| b.nonces(Nonces::from_secret(&[6u8; 32], Nonces::DEFAULT_STEP)));
    let proof = fx
        .proof_builder("POST", "https://api.example.com/login")
        .sign(&fx.device)
        .unwrap();
    let request = parts("POST", "/login", &[("dpop", &proof)]);
    assert_rejected(
        fx.verifier.verify_proof(&request).await,
        "use_dpop_nonce",
        "use_dpop_nonce",
    );
}

// ----- stateless verification -----

#[test]
fn stateless_verification_runs_the_same_checks() {
    let fx = Fx::new();
    let keys: HashMap<_, _> = [(
        "k1".to_owned(),
        ServerKey::from_seed(&[1u8; 32]).verifying_key(),
    )]
    .into_iter()
    .collect();
    let proof = fx.proof();
    let run = |proof: &str, token: Option<&str>, keys: &HashMap<_, _>, now: i64| {
        verify_stateless("GET", URL, proof, token, keys, now, 60)
    };
    let claims = run(&proof, Some(&fx.token), &keys, T0).unwrap();
    assert_eq!(claims["access_token"]["sub"], "alice");
    assert_eq!(claims["access_token"]["kid"], "k1");
    assert_eq!(claims["jkt"], fx.device.public_jwk().thumbprint());
    assert_eq!(claims["proof"]["htu"], URL);
    // No replay store: the same proof verifies again.
    run(&proof, Some(&fx.token), &keys, T0).unwrap();
    assert_rejected(
        run(&proof, Some(&fx.token), &HashMap::new(), T0),
        "unknown_kid",
        "invalid_token",
    );
    assert_rejected(
        run(&proof, Some(&fx.token), &keys, T0 + 300),
        "iat_too_old",
        "invalid_dpop_proof",
    );
    // Without a token only the proof is checked: this one has an ath, which is fine.
    let claims = run(&proof, None, &keys, T0).unwrap();
    assert_eq!(claims["access_token"], Value::Null);
    assert_rejected(
        verify_stateless("POST", URL, &proof, Some(&fx.token), &keys, T0, 60),
        "htm_mismatch",
        "invalid_dpop_proof",
    );
    assert_rejected(
        run(&"A".repeat(9000), None, &keys, T0),
        "header_too_large",
        "invalid_dpop_proof",
    );
}

// ----- any change is rejected -----

fn mutate(text: &str, index: usize, byte: u8) -> Option<String> {
    let mut bytes = text.as_bytes().to_vec();
    let i = index % bytes.len();
    if bytes[i] == byte {
        return None;
    }
    bytes[i] = byte;
    String::from_utf8(bytes).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any single-byte change to a valid proof or token is rejected, by the verifier
    /// (bytes a header can carry) and by the stateless checks (any ASCII byte).
    #[test]
    fn any_single_byte_change_is_rejected(
        index in 0usize..2048,
        byte in 0x20u8..0x7f,
        any_byte in 0u8..0x80,
        in_token in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let fx = Fx::new();
        let proof = fx.proof();
        let (token, proof_text) = (fx.token.clone(), proof.clone());
        let target = if in_token { &token } else { &proof_text };

        if let Some(changed) = mutate(target, index, byte) {
            let (t, p) = if in_token { (changed, proof.clone()) } else { (token.clone(), changed) };
            let result = rt.block_on(fx.call_with(&t, &p));
            prop_assert!(result.is_err(), "accepted a changed {}", if in_token { "token" } else { "proof" });
        }
        let keys: HashMap<_, _> =
            [("k1".to_owned(), ServerKey::from_seed(&[1u8; 32]).verifying_key())].into_iter().collect();
        if let Some(changed) = mutate(target, index, any_byte) {
            let (t, p) = if in_token { (changed, proof.clone()) } else { (token.clone(), changed) };
            prop_assert!(verify_stateless("GET", URL, &p, Some(&t), &keys, T0, 60).is_err());
        }
        // The unchanged pair still verifies, so the rejections above were due to the change.
        prop_assert!(rt.block_on(fx.call(&proof)).is_ok());
    }
}

// ----- abuse resistance -----

#[tokio::test]
async fn request_targets_not_in_normal_form_are_refused() {
    let fx = Fx::new();
    // A proof for `/session/` sent as `DELETE /session/sessions/..`: normalising would
    // make them match, but the router dispatches on the raw path.
    let proof = fx.proof_to("DELETE", "https://api.example.com/session/", &fx.token);
    let auth = format!("DPoP {}", fx.token);
    for path in ["/session/sessions/..", "/session/./", "/a/../session/"] {
        let request = parts(
            "DELETE",
            path,
            &[("authorization", &auth), ("dpop", &proof)],
        );
        assert_rejected(
            fx.verifier.verify(&request).await,
            "request_target_not_normal",
            "invalid_dpop_proof",
        );
    }
    // Proof-only requests too.
    let proof = fx
        .proof_builder("POST", "https://api.example.com/session/refresh")
        .sign(&fx.device)
        .unwrap();
    let request = parts("POST", "/session/x/../refresh", &[("dpop", &proof)]);
    assert_rejected(
        fx.verifier.verify_proof(&request).await,
        "request_target_not_normal",
        "invalid_dpop_proof",
    );
    // The refused requests recorded nothing: the same proof for its own path passes.
    let request = parts("POST", "/session/refresh", &[("dpop", &proof)]);
    let verified = fx.verifier.verify_proof(&request).await.unwrap();
    fx.verifier.consume_proof(&verified).await.unwrap();
}

#[tokio::test]
async fn tokens_of_another_issuer_are_refused() {
    let fx = Fx::new();
    let mut foreign = claims(&fx.device);
    foreign.iss = "https://other.example".into();
    let token = fx.sign(&foreign);
    let proof = fx.proof_to("GET", URL, &token);
    assert_rejected(
        fx.call_with(&token, &proof).await,
        "invalid_issuer",
        "invalid_token",
    );
    // An explicit issuer replaces the default (the public origin).
    let fx = Fx::with(|b| b.issuer("https://other.example"));
    let token = fx.sign(&foreign);
    let proof = fx.proof_to("GET", URL, &token);
    fx.call_with(&token, &proof).await.unwrap();
    assert_rejected(
        fx.call(&fx.proof()).await,
        "invalid_issuer",
        "invalid_token",
    );
}

#[tokio::test]
async fn proofs_from_the_future_are_limited_to_a_few_seconds() {
    let fx = Fx::new();
    let at = |iat: i64| {
        ProofBuilder::new(fx.device.public_jwk(), "GET", URL, iat, fx.jti())
            .unwrap()
            .access_token(&fx.token)
            .sign(&fx.device)
            .unwrap()
    };
    let ahead = keybound_server::DEFAULT_MAX_IAT_AHEAD.as_secs() as i64;
    fx.call(&at(T0 + ahead)).await.unwrap();
    assert_rejected(
        fx.call(&at(T0 + ahead + 1)).await,
        "iat_in_future",
        "invalid_dpop_proof",
    );
    // Proofs from the past keep the whole window.
    fx.call(&at(T0 - 60)).await.unwrap();
}
