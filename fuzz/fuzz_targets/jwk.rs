//! JWKs and thumbprints: a JSON object read as a public JWK by `PublicJwk` (tree form)
//! and inside a proof header (typed form) with the same result; the RFC 7638
//! thumbprint against an independent computation; private JWKs (`ServerKey`) and key
//! sets (`KeyRing`) round-tripping.
#![no_main]

use std::collections::BTreeMap;

use keybound_proto::{DpopProof, PublicJwk, b64, fuzzing};
use keybound_server::{KeyRing, ServerKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let Ok(map) = fuzzing::parse_object(data) else {
        return;
    };
    let value = Value::Object(map.clone());
    let tree = PublicJwk::from_json(&value);

    // The same object as a proof's `jwk`: read by the typed form, with the same
    // outcome (the proof is otherwise valid up to its signature, which parsing does not
    // check).
    let ec = map.get("kty").and_then(Value::as_str) == Some("EC");
    // A signature the parser accepts for the key kind (r = s = 1 for ES256); parsing
    // does not verify it.
    let mut signature = [0u8; 64];
    if ec {
        signature[31] = 1;
        signature[63] = 1;
    }
    let alg: &[u8] = if ec {
        br#"{"typ":"dpop+jwt","alg":"ES256","jwk":"#
    } else {
        br#"{"typ":"dpop+jwt","alg":"EdDSA","jwk":"#
    };
    let header = [alg, data, b"}"].concat();
    let payload =
        br#"{"jti":"AAAAAAAAAAAAAAAAAAAAAA","htm":"GET","htu":"https://a.example/","iat":0}"#;
    let proof = format!(
        "{}.{}.{}",
        b64::encode(&header),
        b64::encode(payload),
        b64::encode(signature)
    );
    if proof.len() <= keybound_proto::MAX_JWS_LEN {
        let typed = DpopProof::parse(&proof).map(|p| *p.jwk());
        assert_eq!(typed, tree, "typed and tree forms disagree");
    }

    if let Ok(jwk) = tree {
        // RFC 7638: the required members of the key type, in lexicographic order.
        let member = |name: &str| map.get(name).and_then(Value::as_str).unwrap_or_default();
        let canonical: BTreeMap<&str, &str> = match (jwk.ed25519_bytes(), jwk.p256_coordinates()) {
            (Some(x), _) => {
                assert_eq!(b64::encode(x), member("x"));
                [("crv", "Ed25519"), ("kty", "OKP"), ("x", member("x"))].into()
            }
            (None, Some((x, y))) => {
                assert_eq!(
                    (b64::encode(x), b64::encode(y)),
                    (member("x").into(), member("y").into())
                );
                [
                    ("crv", "P-256"),
                    ("kty", "EC"),
                    ("x", member("x")),
                    ("y", member("y")),
                ]
                .into()
            }
            (None, None) => panic!("a JWK of neither kind: {jwk:?}"),
        };
        let text = serde_json::to_string(&canonical).unwrap_or_default();
        assert_eq!(
            jwk.thumbprint(),
            b64::encode(Sha256::digest(text.as_bytes()))
        );
        assert_eq!(PublicJwk::from_json(&jwk.to_json()), Ok(jwk));
        assert!(jwk.decode().is_ok());
    }

    if let Ok(key) = ServerKey::from_private_jwk(&value) {
        let public = PublicJwk::from_verifying_key(&key.verifying_key());
        if let Some(x) = map.get("x").and_then(Value::as_str) {
            assert_eq!(public.ed25519_bytes().map(b64::encode).as_deref(), Some(x));
        }
        let written: Value = serde_json::from_str(&key.to_private_jwk()).unwrap_or_default();
        let again = ServerKey::from_private_jwk(&written)
            .unwrap_or_else(|e| panic!("a written private JWK does not read back: {e}"));
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.verifying_key(), key.verifying_key());
        let ring = KeyRing::new(key);
        let keys = KeyRing::verifying_keys_from_jwks(&ring.jwks())
            .unwrap_or_else(|e| panic!("a published JWKS does not read back: {e}"));
        assert_eq!(keys.len(), 1);
        assert_eq!(
            keys.get(ring.current().kid()),
            Some(&ring.current().verifying_key())
        );
    }

    if let Ok(keys) = KeyRing::verifying_keys_from_jwks(&value) {
        let listed = value["keys"].as_array().map_or(0, Vec::len);
        assert!(keys.len() <= listed);
    }
});
