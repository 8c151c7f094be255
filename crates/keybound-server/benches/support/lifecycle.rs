//! What the lifecycle benches (`lifecycle`, `lifecycle_paired`) share: the server key,
//! refresh-request proofs and the verifier's part of checking one, and terminal
//! sessions for the sweeps.
// Each bench compiles this module and uses a part of it.
#![allow(dead_code)]

use keybound_server::lifecycle::{Jkt, Reason, SessionId, SessionState, TokenHash};
use keybound_server::proto::ed25519_dalek::SigningKey;
use keybound_server::proto::{AccessTokenClaims, DpopProof, ProofBuilder, Signer};
use keybound_server::store::{SessionBinding, SessionRecord};
use keybound_server::{KeyRing, ServerKey};

/// The benches' clock start, in milliseconds.
pub(crate) const T0_MS: i64 = 1_700_000_000_000;

/// The server's signing key.
pub(crate) fn keys() -> KeyRing {
    KeyRing::new(ServerKey::from_seed(&[42; 32]))
}

/// `device`'s proof on a refresh request, with the proof id `jti`.
pub(crate) fn refresh_proof(device: &SigningKey, jti: [u8; 16]) -> String {
    ProofBuilder::new(
        device.public_jwk(),
        "POST",
        "https://api.example/session/refresh",
        T0_MS / 1000,
        jti,
    )
    .unwrap()
    .sign(device)
    .unwrap()
}

/// What the verifier does with the proof of a refresh request: parse, thumbprint,
/// `verify_strict`.
pub(crate) fn verify_proof(proof: &str) -> String {
    let parsed = DpopProof::parse(proof).unwrap();
    parsed.verify_signature().unwrap();
    parsed.thumbprint()
}

/// The claims of the access token a refresh issues to the key `jkt`: the "crypto
/// only" cases sign them beside the real refreshes.
pub(crate) fn refreshed_claims(jkt: String) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "keybound".into(),
        sub: "alice".into(),
        sid: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        iat: T0_MS / 1000,
        exp: T0_MS / 1000 + 300,
        jkt,
    }
}

/// A session that ended long ago, ready to be purged: the user has two sessions.
pub(crate) fn terminal(n: u64) -> SessionRecord {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_le_bytes());
    id[8..].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    let t0 = T0_MS / 1000;
    let mut record = SessionRecord {
        id: SessionId::from_bytes(id),
        user_id: format!("user-{:06}", n / 2),
        jkt: Jkt::from_bytes([7; 32]),
        device_label: Some("Firefox on Linux".into()),
        user_agent_hash: Some([1; 8]),
        created_at: t0,
        last_seen_at: t0,
        idle_expires_at: t0 + 1800,
        absolute_expires_at: t0 + 43_200,
        generation: 3,
        current_hash: TokenHash::from_bytes([9; 32]),
        previous_hash: Some(TokenHash::from_bytes([8; 32])),
        grace_until: Some(t0 + 30),
        state: SessionState::Active,
        reason: None,
        ended_at: None,
        binding: SessionBinding::Dpop,
    };
    record.finish(SessionState::Revoked, Reason::USER_REVOKED, t0 + 60);
    record
}
