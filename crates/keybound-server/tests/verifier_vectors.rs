//! The verifier's refusals, driven by the shared vectors: every case of
//! `tests/vectors/invalid.json` is sent to a whole [`Verifier`] (header limits, the
//! pure checks, its key ring and caches) and must be refused with exactly the code,
//! OAuth error and response the vector names. The refusals the vectors cannot express
//! (header shapes, replay, nonces, session state, caching, clocks) are built by hand
//! in `tests/verifier.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use http::request::Parts;
use keybound_proto::{ErrorBody, ProofAlgs};
use keybound_server::{KeyRing, ManualClock, Rejection, ServerKey, Verifier};
use serde_json::Value;

const INVALID: &str = include_str!("../../../tests/vectors/invalid.json");

/// The one code a whole verifier reports differently from the pure checks the vectors
/// describe: it refuses an oversized `DPoP` header before parsing it (`header_too_large`),
/// where the pure checks report the JWS itself as `too_large`.
fn verifier_code(vector_code: &str) -> &str {
    match vector_code {
        "too_large" => "header_too_large",
        code => code,
    }
}

/// A verifier for one vector: its clock, skew, origin and token keys (verify-only, as
/// the vectors give public keys), every proof algorithm, no session state.
fn verifier(case: &Value) -> Verifier {
    let request = &case["request"];
    let url = request["url"].as_str().unwrap();
    let mut keys = KeyRing::new(ServerKey::from_seed(&[0xee; 32]).with_kid("kb-unused"));
    if let Some(jwks) = case.get("jwks") {
        for (kid, key) in KeyRing::verifying_keys_from_jwks(jwks).unwrap() {
            keys = keys.with_previous(kid, key);
        }
    }
    Verifier::builder()
        .public_origin(origin(url))
        .keys(keys)
        .clock(Arc::new(ManualClock::new(
            request["now"].as_i64().unwrap() * 1000,
        )))
        .max_skew(std::time::Duration::from_secs(
            request["max_skew"].as_u64().unwrap(),
        ))
        .proof_algs(ProofAlgs::ALL)
        .danger_accept_any_session()
        .build()
        .unwrap()
}

/// `scheme://authority` of an absolute URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").unwrap() + 3;
    let path = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| i + after_scheme);
    &url[..path]
}

/// The request the vector describes: its method and path, its `DPoP` header, and its
/// `Authorization: DPoP` header when it carries an access token.
fn request(case: &Value) -> Parts {
    let url = case["request"]["url"].as_str().unwrap();
    let mut builder = http::Request::builder()
        .method(case["request"]["method"].as_str().unwrap())
        .uri(&url[origin(url).len()..])
        .header("dpop", case["proof"].as_str().unwrap());
    if let Some(token) = case.get("access_token").and_then(Value::as_str) {
        builder = builder.header("authorization", format!("DPoP {token}"));
    }
    builder.body(()).unwrap().into_parts().0
}

async fn verify(case: &Value) -> Rejection {
    let verifier = verifier(case);
    let parts = request(case);
    let name = &case["name"];
    if case.get("access_token").is_some() {
        verifier
            .verify(&parts)
            .await
            .map(drop)
            .expect_err(&format!("{name}"))
    } else {
        verifier
            .verify_proof(&parts)
            .await
            .map(drop)
            .expect_err(&format!("{name}"))
    }
}

#[tokio::test]
async fn every_invalid_vector_is_refused_with_its_code() {
    let vectors: Value = serde_json::from_str(INVALID).unwrap();
    let cases = vectors["cases"].as_array().unwrap();
    assert!(cases.len() >= 90, "{} cases", cases.len());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let expect = &case["expect"];
        assert_eq!(expect["valid"], false, "{name}");
        let code = verifier_code(expect["error_code"].as_str().unwrap());
        let error = expect["error"].as_str().unwrap();

        let rejection = verify(case).await;
        assert_eq!(rejection.code(), code, "{name}: {rejection:?}");
        assert_eq!(rejection.oauth_error(), error, "{name}");

        let response = verifier(case).response(rejection);
        assert_eq!(response.status(), 401, "{name}");
        let body: ErrorBody = serde_json::from_str(response.body()).unwrap();
        assert_eq!(
            (body.error.as_str(), body.error_code.as_str()),
            (error, code)
        );
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with(&format!(r#"DPoP error="{error}", error_description=""#))
                && challenge.ends_with(r#"algs="EdDSA ES256""#),
            "{name}: {challenge}"
        );
        // The answer never echoes the credentials: no part of the proof or token
        // (which would include any key material they carry).
        let text = format!("{} {challenge}", response.body());
        for credential in [&case["proof"], &case["access_token"]] {
            for part in credential.as_str().unwrap_or_default().split('.') {
                assert!(
                    part.len() < 8 || !text.contains(part),
                    "{name}: the response echoes {part}"
                );
            }
        }
    }
}
