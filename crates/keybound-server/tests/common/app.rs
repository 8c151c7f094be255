//! A service and its verifier on one key ring, one replay store and one clock, driven
//! by device keys of any kind: login, requests, refresh, with proofs made here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keybound_server::lifecycle::{
    LifecycleError, OpenRequest, RefreshSecret, RequestSignals, SessionService,
};
use keybound_server::proto::{ProofAlgs, ProofBuilder, Signer, TokenResponse};
use keybound_server::store::SessionStore;
use keybound_server::{
    Clock, KeyRing, ManualClock, MemoryReplayStore, Rejection, ServerKey, SharedKeyRing,
    VerifiedRequest, Verifier,
};

pub const ORIGIN: &str = "https://api.example";

pub struct App {
    pub clock: ManualClock,
    pub verifier: Verifier,
    pub sessions: SessionService,
    jti: AtomicU64,
    _guard: Option<Box<dyn std::any::Any>>,
}

impl App {
    /// The service on `store`, accepting proofs of `algs`.
    pub fn new(store: impl SessionStore, algs: ProofAlgs) -> Self {
        let clock = ManualClock::new(super::T0_MS);
        let replay = Arc::new(MemoryReplayStore::new(Arc::new(clock.clone())));
        // One key ring: the service signs what the verifier checks.
        let keys: SharedKeyRing = KeyRing::new(ServerKey::from_seed(&[42; 32])).into();
        let sessions = SessionService::builder(store, keys.clone())
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
            .proof_algs(algs)
            .build()
            .unwrap();
        Self {
            clock,
            verifier,
            sessions,
            jti: AtomicU64::new(1),
            _guard: None,
        }
    }

    /// Keeps `guard` (a server process) alive as long as the app.
    pub fn with_guard(mut self, guard: impl std::any::Any) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }

    /// A proof of `method path` by `device` now, with a fresh `jti`.
    pub fn proof(
        &self,
        device: &impl Signer,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> String {
        let mut jti = [0u8; 16];
        jti[..8].copy_from_slice(&self.jti.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        let mut builder = ProofBuilder::new(
            device.public_jwk(),
            method,
            &format!("{ORIGIN}{path}"),
            self.clock.now_secs(),
            jti,
        )
        .unwrap();
        if let Some(token) = token {
            builder = builder.access_token(token);
        }
        builder.sign(device).unwrap()
    }

    /// Verifies a proof-only request (login, refresh) and returns the key's jkt.
    pub async fn proof_jkt(&self, device: &impl Signer, path: &str) -> Result<String, Rejection> {
        let request = http::Request::post(path)
            .header("dpop", self.proof(device, "POST", path, None))
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        Ok(self.verifier.verify_proof(&parts).await?.jkt)
    }

    /// Alice signs in with `device`.
    pub async fn login(&self, device: &impl Signer) -> TokenResponse {
        let jkt = self.proof_jkt(device, "/login").await.unwrap();
        assert_eq!(jkt, device.public_jwk().thumbprint());
        self.sessions
            .open_session("alice", &jkt, OpenRequest::new())
            .await
            .unwrap()
    }

    /// A refresh with a proof by `device`.
    pub async fn refresh(
        &self,
        device: &impl Signer,
        refresh_token: &str,
    ) -> Result<TokenResponse, LifecycleError> {
        let jkt = self.proof_jkt(device, "/session/refresh").await.unwrap();
        self.sessions
            .refresh(refresh_token, &jkt, &RequestSignals::new())
            .await
    }

    /// `GET /orders` with `token` and a proof by `device`.
    pub async fn get(
        &self,
        device: &impl Signer,
        token: &str,
    ) -> Result<VerifiedRequest, Rejection> {
        let request = http::Request::get("/orders")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", self.proof(device, "GET", "/orders", Some(token)))
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        self.verifier.verify(&parts).await
    }
}

/// The code of a refused request.
pub fn code<T: std::fmt::Debug>(result: Result<T, Rejection>) -> &'static str {
    result.expect_err("the request must be refused").code()
}
