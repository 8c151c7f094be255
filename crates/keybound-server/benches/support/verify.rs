//! What the verification benches (`verify`, `verify_paired`) share: the server key, a
//! device with its access token making requests with fresh proofs, the verifier they
//! go to, and polling its futures without a runtime.
// Each bench compiles this module and uses a part of it.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use ed25519_dalek::SigningKey;
use http::request::Parts;
use keybound_proto::{AccessTokenClaims, ProofBuilder, Signer};
use keybound_server::{KeyRing, ManualClock, MemoryReplayStore, ReplayStore, ServerKey, Verifier};

/// The benches' time, in seconds.
pub(crate) const T0: i64 = 1_700_000_000;
/// The URL every proof is made for.
pub(crate) const URL: &str = "https://api.example.com/api/orders";

/// Polls a future that completes without waiting (memory stores, no I/O).
pub(crate) fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// The server's signing key.
pub(crate) fn server_key() -> ServerKey {
    ServerKey::from_seed(&[1u8; 32])
}

/// 1,024 different 200-byte messages and their signatures by `server`: a verifier never
/// sees one signature twice, and a repeated one lets the CPU learn the scalar
/// multiplication's data-dependent branches.
pub(crate) fn fresh_signatures(server: &ServerKey) -> Vec<([u8; 200], ed25519_dalek::Signature)> {
    (0..1024u32)
        .map(|i| {
            let mut m = [0x42u8; 200];
            m[..4].copy_from_slice(&i.to_le_bytes());
            (m, ed25519_dalek::Signer::sign(server.signing_key(), &m))
        })
        .collect()
}

/// A verifier at `clock` with a token cache of `cache` entries (`0`: off) and replay
/// protection on (in memory); it accepts any session.
pub(crate) fn verifier(clock: &ManualClock, cache: usize) -> Verifier {
    verifier_with(
        clock,
        cache,
        Arc::new(MemoryReplayStore::with_capacity(
            Arc::new(clock.clone()),
            4_000_000,
        )),
    )
}

/// [`verifier`] recording proofs in `replay`.
pub(crate) fn verifier_with(
    clock: &ManualClock,
    cache: usize,
    replay: Arc<dyn ReplayStore>,
) -> Verifier {
    Verifier::builder()
        .public_origin("https://api.example.com")
        .keys(KeyRing::new(server_key()))
        .clock(Arc::new(clock.clone()))
        .replay_store(replay)
        .token_cache_capacity(cache)
        .danger_accept_any_session()
        .build()
        .unwrap()
}

/// A device with an access token bound to its key, making requests with fresh proofs.
pub(crate) struct Device {
    key: SigningKey,
    token: String,
    authorization: String,
    next_jti: AtomicU64,
}

impl Device {
    /// The device and its access token, signed by [`server_key`].
    pub(crate) fn new() -> Self {
        let key = SigningKey::from_bytes(&[2u8; 32]);
        let token = KeyRing::new(server_key())
            .sign(&AccessTokenClaims {
                iss: "https://api.example.com".into(),
                sub: "user-0001".into(),
                sid: "sess-7f3a2c9e4b1d".into(),
                jti: "at-4c1f0e8a9b7d6c5e".into(),
                iat: T0,
                exp: T0 + 300,
                jkt: key.public_jwk().thumbprint(),
            })
            .unwrap();
        Self {
            authorization: format!("DPoP {token}"),
            key,
            token,
            next_jti: AtomicU64::new(0),
        }
    }

    /// The access token.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// A fresh proof (a new `jti`) for `GET /api/orders` with the access token.
    pub(crate) fn proof(&self) -> String {
        let n = self.next_jti.fetch_add(1, Ordering::Relaxed);
        let mut jti = [0x5a; 16];
        jti[..8].copy_from_slice(&n.to_le_bytes());
        ProofBuilder::new(self.key.public_jwk(), "GET", URL, T0, jti)
            .unwrap()
            .access_token(&self.token)
            .sign(&self.key)
            .unwrap()
    }

    /// A request with a fresh proof for `GET /api/orders` and the access token.
    pub(crate) fn request(&self) -> Parts {
        http::Request::get("/api/orders?page=2")
            .header("host", "api.example.com")
            .header("authorization", &self.authorization)
            .header("dpop", self.proof())
            .header("accept", "application/json")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }
}
