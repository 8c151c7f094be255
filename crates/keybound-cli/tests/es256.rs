//! Black-box tests of the `keybound` binary with P-256 device keys (ES256): keygen,
//! thumbprint, proof, verify and inspect, and the bad inputs of each.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{URL, assert_rejected, bad_input_without, kb, ok};
use keybound_proto::{DpopProof, ProofAlg, PublicJwk, b64};
use serde_json::{Value, json};

fn es256_key() -> Value {
    serde_json::from_str(&ok(&["keygen", "--alg", "ES256"])).unwrap()
}

#[test]
fn keygen_es256_prints_a_p256_private_jwk() {
    let jwk = es256_key();
    let members: Vec<&str> = jwk
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(members, ["crv", "d", "kid", "kty", "x", "y"]);
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    for member in ["x", "y", "d"] {
        assert_eq!(
            b64::decode(jwk[member].as_str().unwrap(), "m")
                .unwrap()
                .len(),
            32,
            "{member}"
        );
    }
    let public = json!({"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"]});
    let parsed = PublicJwk::from_json(&public).unwrap();
    assert_eq!(parsed.alg(), ProofAlg::ES256);
    assert_eq!(jwk["kid"].as_str().unwrap(), parsed.thumbprint());
    // The thumbprint of the private JWK is its public half's, the same for both forms.
    assert_eq!(ok(&["thumbprint", &jwk.to_string()]), parsed.thumbprint());
    assert_eq!(
        ok(&["thumbprint", &public.to_string()]),
        parsed.thumbprint()
    );
    // Explicit EdDSA is the default kind; the RFC 9864 name is accepted.
    for alg in ["EdDSA", "Ed25519"] {
        let ed: Value = serde_json::from_str(&ok(&["keygen", "--alg", alg])).unwrap();
        assert_eq!(ed["kty"], "OKP");
    }
}

#[test]
fn keygen_es256_out_is_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.jwk");
    let out = kb(&["keygen", "--alg", "ES256", "--out", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "the key is not printed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("P-256 private key"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let jwk: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(jwk["crv"], "P-256");
}

#[test]
fn es256_proof_token_and_verify_round_trip() {
    let device = es256_key().to_string();
    let server = ok(&["keygen"]);
    let jwks = ok(&["jwks", &server]);
    let jkt = ok(&["thumbprint", &device]);
    let token = ok(&[
        "token", "--key", &server, "--sub", "u-1", "--sid", "s-1", "--jkt", &jkt,
    ]);
    let proof = ok(&[
        "proof",
        "--key",
        &device,
        "--method",
        "POST",
        "--url",
        URL,
        "--access-token",
        &token,
    ]);

    let parsed = DpopProof::parse(&proof).unwrap();
    assert_eq!(parsed.alg(), ProofAlg::ES256);
    assert_eq!(parsed.thumbprint(), jkt);
    parsed.verify_signature().unwrap();
    let (header, _) = keybound_proto::decode_unverified(&proof).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert!(
        header["jwk"].get("d").is_none(),
        "no private member in the proof"
    );
    let signature = b64::decode(proof.rsplit('.').next().unwrap(), "s").unwrap();
    assert_eq!(signature.len(), 64, "r || s, not DER");

    let verified: Value = serde_json::from_str(&ok(&[
        "verify",
        "--method",
        "POST",
        "--url",
        URL,
        "--proof",
        &proof,
        "--access-token",
        &token,
        "--jwks",
        &jwks,
    ]))
    .unwrap();
    assert_eq!(verified["jkt"], jkt.as_str());
    assert_eq!(verified["access_token"]["cnf"]["jkt"], jkt.as_str());

    // The checks can fail: another key's token, a flipped bit, a DER signature.
    let other = ok(&["thumbprint", &es256_key().to_string()]);
    let foreign = ok(&[
        "token", "--key", &server, "--sub", "u", "--sid", "s", "--jkt", &other,
    ]);
    let bound = ok(&[
        "proof",
        "--key",
        &device,
        "--method",
        "GET",
        "--url",
        URL,
        "--access-token",
        &foreign,
    ]);
    assert_rejected(
        &[
            "verify",
            "--method",
            "GET",
            "--url",
            URL,
            "--proof",
            &bound,
            "--access-token",
            &foreign,
            "--jwks",
            &jwks,
        ],
        "invalid_token",
        "jkt_mismatch",
    );
    let (input, _) = proof.rsplit_once('.').unwrap();
    let mut flipped = signature.clone();
    flipped[50] ^= 1;
    let tampered = format!("{input}.{}", b64::encode(&flipped));
    assert_rejected(
        &[
            "verify", "--method", "POST", "--url", URL, "--proof", &tampered,
        ],
        "invalid_dpop_proof",
        "invalid_signature",
    );
    let mut der = vec![0x30, 68, 0x02, 32];
    der.extend_from_slice(&[0x11; 32]);
    der.extend_from_slice(&[0x02, 32]);
    der.extend_from_slice(&[0x22; 32]);
    let der_proof = format!("{input}.{}", b64::encode(&der));
    assert_rejected(
        &[
            "verify", "--method", "POST", "--url", URL, "--proof", &der_proof,
        ],
        "invalid_dpop_proof",
        "malformed_signature",
    );
}

#[test]
fn inspect_shows_an_es256_proof() {
    let device = es256_key().to_string();
    let proof = ok(&["proof", "--key", &device, "--method", "GET", "--url", URL]);
    let out: Value = serde_json::from_str(&ok(&["inspect", &proof])).unwrap();
    assert_eq!(out["verified"], false);
    assert_eq!(out["header"]["alg"], "ES256");
    assert_eq!(out["header"]["jwk"]["kty"], "EC");
    assert_eq!(out["claims"]["htu"], URL);
}

#[test]
fn es256_bad_inputs_exit_2_without_key_material() {
    let out = kb(&["keygen", "--alg", "RS256"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected EdDSA or ES256"));

    let key = es256_key();
    let d = key["d"].as_str().unwrap().to_owned();
    let mut wrong_crv = key.clone();
    wrong_crv["crv"] = json!("P-384");
    let err = bad_input_without(
        &[
            "proof",
            "--key",
            &wrong_crv.to_string(),
            "--method",
            "GET",
            "--url",
            URL,
        ],
        &d,
    );
    assert!(err.contains("P-256"), "{err}");
    // d of another key: the members do not form a key pair.
    let mut mismatched = key.clone();
    mismatched["d"] = es256_key()["d"].clone();
    let err = bad_input_without(
        &[
            "proof",
            "--key",
            &mismatched.to_string(),
            "--method",
            "GET",
            "--url",
            URL,
        ],
        mismatched["d"].as_str().unwrap(),
    );
    assert!(err.contains("matching P-256 key pair"), "{err}");
    let mut short = key.clone();
    short["y"] = json!(b64::encode([7u8; 31]));
    let err = bad_input_without(&["thumbprint", &short.to_string()], &d);
    assert!(err.contains("32 bytes"), "{err}");
    let mut no_y = key.clone();
    no_y.as_object_mut().unwrap().remove("y");
    bad_input_without(&["thumbprint", &no_y.to_string()], &d);
    // Server keys sign access tokens with EdDSA: a P-256 key is refused there.
    bad_input_without(
        &[
            "token",
            "--key",
            &key.to_string(),
            "--sub",
            "u",
            "--sid",
            "s",
            "--jkt",
            &"A".repeat(43),
        ],
        &d,
    );
    bad_input_without(&["jwks", &key.to_string()], &d);
}
