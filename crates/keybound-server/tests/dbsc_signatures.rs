//! DBSC signatures: every proof Chromium really sent (`tests/vectors/dbsc/`) verifies
//! with its session's key and with no other, and ES256 keys and signatures that are
//! not what they claim are refused with their exact codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::dbsc_key::BrowserKey as Device;
use keybound_proto::b64;
use keybound_proto::dbsc::{
    ChallengePurpose, Challenges, DbscAlg, DbscKey, DbscProof, RefreshCheck, RegistrationCheck,
    SignatureVerifier,
};
use keybound_server::DbscSignatures;
use serde_json::{Value, json};

/// `(scenario, registration key, every proof of the scenario)`.
fn recorded() -> Vec<(String, DbscKey, Vec<DbscProof>)> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/dbsc/chromium.json");
    let vectors: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for scenario in vectors["scenarios"].as_array().unwrap() {
        let proofs: Vec<DbscProof> = scenario["exchanges"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["request"]["headers"]["secure-session-response"].as_str())
            .map(|jws| DbscProof::parse(jws).unwrap())
            .collect();
        if let Some(key) = proofs.first().and_then(|p| p.key().cloned()) {
            out.push((scenario["name"].as_str().unwrap().to_owned(), key, proofs));
        }
    }
    out
}

fn verify(proof: &DbscProof, key: &DbscKey) -> Result<(), &'static str> {
    DbscSignatures
        .verify(proof.alg(), key, proof.signing_input(), proof.signature())
        .map_err(|e| e.code())
}

#[test]
fn every_recorded_proof_verifies_with_its_sessions_key_only() {
    let sessions = recorded();
    assert!(sessions.len() >= 6, "{} sessions recorded", sessions.len());
    assert!(sessions.iter().any(|(_, k, _)| k.alg() == DbscAlg::Rs256));
    for (name, key, proofs) in &sessions {
        for proof in proofs {
            assert_eq!(verify(proof, key), Ok(()), "{name}");
            for (other, other_key, _) in &sessions {
                if other != name && other_key.alg() == key.alg() {
                    assert_eq!(
                        verify(proof, other_key),
                        Err("invalid_signature"),
                        "{name} with {other}'s key"
                    );
                }
            }
        }
    }
}

#[test]
fn tampered_recorded_proofs_are_refused() {
    for (name, key, proofs) in recorded() {
        let proof = &proofs[0];
        let mut signature = proof.signature().to_vec();
        signature[10] ^= 1;
        let result = DbscSignatures.verify(proof.alg(), &key, proof.signing_input(), &signature);
        assert_eq!(result.unwrap_err().code(), "invalid_signature", "{name}");
        let mut input = proof.signing_input().to_vec();
        input[5] ^= 1;
        let result = DbscSignatures.verify(proof.alg(), &key, &input, proof.signature());
        assert_eq!(result.unwrap_err().code(), "invalid_signature", "{name}");
    }
}

// ------------------------------------------------------------ generated ES256 proofs

const NOW_MS: i64 = 1_800_000_000_000;
const SESSION: &str = "kb-session-1";

fn challenges() -> Challenges {
    Challenges::from_secret(&[9u8; 32], Duration::from_secs(60))
}

#[test]
fn a_generated_session_registers_and_refreshes() {
    let c = challenges();
    let device = Device::new();
    let challenge = c.issue(ChallengePurpose::Registration, SESSION, NOW_MS, [1u8; 16]);
    let proof = DbscProof::parse(&device.proof(&challenge, Some(SESSION))).unwrap();
    let check = RegistrationCheck {
        challenges: &c,
        session_id: SESSION,
        authorization: Some(SESSION),
        algs: &DbscAlg::ALL,
        now_ms: NOW_MS,
        max_skew: Duration::from_secs(60),
    };
    let key = proof.verify_registration(&check, &DbscSignatures).unwrap();
    assert_eq!(key, DbscKey::from_json(&device.jwk()).unwrap());

    let refresh_check = |key| RefreshCheck {
        challenges: &c,
        session_id: SESSION,
        key,
        now_ms: NOW_MS,
        max_skew: Duration::from_secs(60),
    };
    let challenge = c.issue(ChallengePurpose::Refresh, SESSION, NOW_MS, [2u8; 16]);
    let proof = DbscProof::parse(&device.proof(&challenge, None)).unwrap();
    proof
        .verify_refresh(&refresh_check(&key), &DbscSignatures)
        .unwrap();
    // The same refresh signed by another device's key.
    let thief = Device::new();
    let stolen = DbscProof::parse(&thief.proof(&challenge, None)).unwrap();
    let err = stolen
        .verify_refresh(&refresh_check(&key), &DbscSignatures)
        .unwrap_err();
    assert_eq!(err.code(), "invalid_signature");
}

#[test]
fn bad_es256_keys_and_signatures_are_refused() {
    let device = Device::new();
    let proof = DbscProof::parse(&device.proof("jti", Some(SESSION))).unwrap();
    let key = proof.key().unwrap().clone();
    let input = proof.signing_input();
    let code = |key: &DbscKey, signature: &[u8]| {
        DbscSignatures
            .verify(DbscAlg::Es256, key, input, signature)
            .unwrap_err()
            .code()
    };
    // r or s zero, s = n (the group order), r = n.
    let order = hex32("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let (r, s) = proof.signature().split_at(32);
    for bad in [
        [[0u8; 32].as_slice(), s].concat(),
        [r, [0u8; 32].as_slice()].concat(),
        [r, order.as_slice()].concat(),
        [order.as_slice(), s].concat(),
        vec![0xffu8; 64],
    ] {
        assert_eq!(code(&key, &bad), "invalid_signature");
    }
    // A point not on the curve, and (0, 0), which stands for no point.
    let off_curve = DbscKey::from_json(&json!({"kty": "EC", "crv": "P-256",
        "x": b64::encode([1u8; 32]), "y": b64::encode([2u8; 32])}))
    .unwrap();
    assert_eq!(code(&off_curve, proof.signature()), "invalid_signature");
    let zero = DbscKey::from_json(&json!({"kty": "EC", "crv": "P-256",
        "x": b64::encode([0u8; 32]), "y": b64::encode([0u8; 32])}))
    .unwrap();
    assert_eq!(code(&zero, proof.signature()), "invalid_signature");
    // The verifier itself refuses an alg that is not the key's.
    let rsa = DbscKey::from_json(
        &json!({"kty": "RSA", "e": "AQAB", "n": b64::encode(vec![0xffu8; 256])}),
    )
    .unwrap();
    assert_eq!(code(&rsa, proof.signature()), "alg_key_mismatch");
    // An RSA "signature" not below the modulus.
    let rsa_sessions: Vec<_> = recorded()
        .into_iter()
        .filter(|(_, k, _)| k.alg() == DbscAlg::Rs256)
        .collect();
    let (_, rsa_key, proofs) = &rsa_sessions[0];
    let too_big = vec![0xffu8; rsa_key.signature_len()];
    let err = DbscSignatures
        .verify(DbscAlg::Rs256, rsa_key, proofs[0].signing_input(), &too_big)
        .unwrap_err();
    assert_eq!(err.code(), "invalid_signature");
}

fn hex32(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}
