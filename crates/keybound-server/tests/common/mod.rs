//! Helpers shared by the integration tests: the lifecycle harness here, a service and
//! its verifier driven by device keys of any kind in [`app`], a browser's DBSC key in
//! [`dbsc_key`], the HTTP helpers in [`http`]; `nodes.rs` and `redis_server.rs` are
//! included by the Redis tests that need them.
#![allow(dead_code, unreachable_pub)]

pub mod app;
pub mod dbsc_key;
#[cfg(feature = "axum")]
pub mod http;

use keybound_server::lifecycle::{
    AuditEvent, BroadcastSink, Policy, RefreshSecret, SessionService, SessionServiceBuilder,
};
use keybound_server::proto::ed25519_dalek::SigningKey;
use keybound_server::proto::{AccessToken, PublicJwk};
use keybound_server::store::SessionStore;
use keybound_server::{KeyRing, ManualClock, ServerKey, SharedKeyRing};
use tokio::sync::broadcast;

pub const T0_MS: i64 = 1_700_000_000_000;

/// The thumbprint of a device key made from `seed`.
pub fn jkt(seed: u8) -> String {
    let key = SigningKey::from_bytes(&[seed; 32]);
    PublicJwk::from_verifying_key(&key.verifying_key()).thumbprint()
}

pub struct Harness {
    pub service: SessionService,
    pub clock: ManualClock,
    pub keys: SharedKeyRing,
    pub events: broadcast::Receiver<AuditEvent>,
}

pub fn keys() -> SharedKeyRing {
    KeyRing::new(ServerKey::from_seed(&[42; 32])).into()
}

pub fn builder(
    store: impl SessionStore,
    clock: &ManualClock,
) -> (SessionServiceBuilder, BroadcastSink) {
    let sink = BroadcastSink::new(100_000);
    let builder = SessionService::builder(store, keys())
        .issuer("https://api.example")
        .clock(clock.clone())
        .refresh_secret(RefreshSecret::from_bytes([5; 32]))
        .audit_sink(sink.clone());
    (builder, sink)
}

pub fn harness_with(store: impl SessionStore, policy: Policy) -> Harness {
    let clock = ManualClock::new(T0_MS);
    let (builder, sink) = builder(store, &clock);
    let service = builder.policy(policy).build().unwrap();
    Harness {
        service,
        clock,
        keys: keys(),
        events: sink.subscribe(),
    }
}

pub fn harness(store: impl SessionStore) -> Harness {
    harness_with(store, Policy::default())
}

impl Harness {
    pub fn advance(&self, secs: u64) {
        self.clock.advance(std::time::Duration::from_secs(secs));
    }

    pub fn now(&self) -> i64 {
        keybound_server::Clock::now_secs(&self.clock)
    }

    /// Every event emitted since the last call.
    pub fn drain(&mut self) -> Vec<AuditEvent> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            out.push(event);
        }
        out
    }

    /// Parses and verifies an access token with the server key.
    pub fn verify_access_token(&self, token: &str) -> AccessToken {
        let parsed = AccessToken::parse(token).unwrap();
        let keys = self.keys.read().unwrap();
        let key = keys.verifying_key(parsed.kid()).unwrap();
        parsed.verify_signature(key).unwrap();
        parsed
    }
}
