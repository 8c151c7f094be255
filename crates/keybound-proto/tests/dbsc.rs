//! DBSC wire forms against what Chromium really sent (`tests/vectors/dbsc/chromium.json`)
//! and one refusal per check, each with its exact code. Signatures are checked here
//! through a stand-in verifier; real ES256/RS256 verification of the recorded proofs is
//! tested in keybound-server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::Cell;
use std::path::PathBuf;
use std::time::Duration;

use keybound_proto::b64;
use keybound_proto::dbsc::{
    BoundCookie, ChallengePurpose, Challenges, DbscAlg, DbscError, DbscKey, DbscProof,
    RefreshCheck, Registration, RegistrationCheck, SessionConfig, SignatureVerifier,
    challenge_header, read_session_id, read_session_response, termination,
};
use serde_json::{Value, json};

fn vectors() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/dbsc/chromium.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn scenario(name: &str) -> Value {
    vectors()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
        .clone()
}

/// The recorded requests of a scenario to `path`.
fn requests(scenario: &Value, path: &str) -> Vec<Value> {
    scenario["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["request"]["path"] == path)
        .cloned()
        .collect()
}

fn response_header(exchange: &Value) -> &str {
    exchange["request"]["headers"]["secure-session-response"]
        .as_str()
        .unwrap()
}

// ------------------------------------------------------------ the recorded traffic

#[test]
fn every_recorded_proof_parses_with_the_expected_claims() {
    let mut seen = 0;
    for scenario in vectors()["scenarios"].as_array().unwrap() {
        let exchanges = scenario["exchanges"].as_array().unwrap();
        for (i, exchange) in exchanges.iter().enumerate() {
            let headers = &exchange["request"]["headers"];
            let Some(value) = headers["secure-session-response"].as_str() else {
                continue;
            };
            seen += 1;
            // Chromium 156 sends the JWT bare; the spec's quoted form reads the same.
            let jws = read_session_response(value.as_bytes()).unwrap();
            assert_eq!(jws, value, "the bare form is the JWS itself");
            assert_eq!(
                read_session_response(format!("\"{value}\"").as_bytes()).unwrap(),
                jws
            );
            let proof = DbscProof::parse(&jws).unwrap();
            assert_eq!(
                proof.signature().len(),
                proof
                    .key()
                    .map_or(proof.signature().len(), DbscKey::signature_len)
            );
            let path = exchange["request"]["path"].as_str().unwrap();
            if path == "/dbsc/register" {
                let key = proof.key().expect("a registration proof carries its key");
                assert_eq!(key.alg(), proof.alg());
                let registration = scenario["registration_header"].as_str().unwrap();
                assert!(registration.contains(&format!("challenge=\"{}\"", proof.jti())));
                match proof.authorization() {
                    Some(a) => assert!(registration.contains(&format!("authorization=\"{a}\""))),
                    None => assert!(!registration.contains("authorization")),
                }
            } else {
                assert!(proof.key().is_none(), "a refresh proof carries no key");
                // The challenge signed is the one the server sent last, in a 403 or a 200.
                let sent = exchanges[..i]
                    .iter()
                    .rev()
                    .find_map(|e| e["response"]["headers"]["secure-session-challenge"].as_str())
                    .unwrap();
                assert!(sent.starts_with(&format!("\"{}\";", proof.jti())), "{sent}");
                let id = headers["sec-secure-session-id"].as_str().unwrap();
                assert!(sent.ends_with(&format!(
                    ";id=\"{}\"",
                    read_session_id(id.as_bytes()).unwrap()
                )));
            }
            // Chromium sends none of the spec's optional claims.
            assert_eq!((proof.sub(), proof.aud(), proof.iat()), (None, None, None));
        }
    }
    assert!(seen >= 15, "only {seen} proofs recorded");
}

#[test]
fn every_dbsc_post_is_bodiless_no_cors_and_names_its_session_bare() {
    for scenario in vectors()["scenarios"].as_array().unwrap() {
        for exchange in scenario["exchanges"].as_array().unwrap() {
            let request = &exchange["request"];
            if request["method"] != "POST" {
                continue;
            }
            let headers = &request["headers"];
            assert_eq!(request["body"], "");
            assert_eq!(headers["content-length"], "0");
            assert_eq!(headers["sec-fetch-mode"], "no-cors");
            assert_eq!(headers["sec-fetch-site"], "same-origin");
            assert_eq!(headers["origin"], "https://localhost:PORT");
            if let Some(id) = headers["sec-secure-session-id"].as_str() {
                assert!(!id.starts_with('"'), "Chromium 156 sends the id unquoted");
                assert_eq!(read_session_id(id.as_bytes()).unwrap(), id);
            }
        }
    }
}

#[test]
fn recorded_keys_are_es256_and_rs256_2048() {
    let key_of = |name: &str| {
        let s = scenario(name);
        DbscProof::parse(response_header(&requests(&s, "/dbsc/register")[0]))
            .unwrap()
            .key()
            .unwrap()
            .clone()
    };
    let es = key_of("es256_register_refresh");
    assert_eq!((es.alg(), es.bits()), (DbscAlg::Es256, 256));
    let rs = key_of("rs256_register_refresh");
    assert_eq!((rs.alg(), rs.bits()), (DbscAlg::Rs256, 2048));
    assert_eq!(rs.to_json()["e"], "AQAB");
    assert_eq!(es.thumbprint().len(), 43);
    assert_ne!(es.thumbprint(), rs.thumbprint());
}

#[test]
fn what_keybound_writes_is_what_chromium_accepted() {
    // Registration headers.
    let es = scenario("es256_register_refresh");
    let built = Registration::new("/dbsc/register", "kb-reg-es256").authorization("kb-auth-es256");
    assert_eq!(built.header_value().unwrap(), es["registration_header"]);
    let rs = scenario("rs256_register_refresh");
    let built = Registration::new("/dbsc/register", "kb-reg-rs256").algs(&[DbscAlg::Rs256]);
    assert_eq!(built.header_value().unwrap(), rs["registration_header"]);
    // Challenge headers, session configuration and cookie lines.
    let refreshes = requests(&es, "/dbsc/refresh");
    assert_eq!(refreshes[0]["response"]["status"], 403);
    assert_eq!(
        refreshes[0]["response"]["headers"]["secure-session-challenge"],
        challenge_header("kb-refresh-2", "kb-sess-es256").unwrap()
    );
    let cookie = BoundCookie::new("kb_dbsc", "/");
    let register = &requests(&es, "/dbsc/register")[0]["response"];
    // The recorder also sent an empty `scope_specification`, which keybound leaves out.
    let sent: SessionConfig = serde_json::from_str(register["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent,
        SessionConfig::new("kb-sess-es256", "/dbsc/refresh", &cookie)
    );
    assert_eq!(
        register["headers"]["set-cookie"],
        cookie.set_cookie("registered", 5).unwrap()
    );
    // The answer that ended a session.
    let end = scenario("continue_false");
    let answer = &requests(&end, "/dbsc/refresh")[0]["response"];
    let sent: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, termination("kb-sess-end"));
    assert_eq!(answer["headers"]["set-cookie"], cookie.clear().unwrap());
    let events = end["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["terminationEventDetails"]["deletionReason"] == "ServerRequested")
    );
}

// ------------------------------------------------------------ parse refusals

/// The recorded ES256 registration proof's parts, decoded.
fn es256_parts() -> (Value, Value, String) {
    let s = scenario("es256_register_refresh");
    let jws = response_header(&requests(&s, "/dbsc/register")[0]).to_owned();
    let parts: Vec<&str> = jws.split('.').collect();
    let decode = |p: &str| serde_json::from_slice(&b64::decode(p, "x").unwrap()).unwrap();
    (decode(parts[0]), decode(parts[1]), parts[2].to_owned())
}

fn jws(header: &Value, payload: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64::encode(header.to_string()),
        b64::encode(payload.to_string())
    )
}

fn parse_code(text: &str) -> &'static str {
    DbscProof::parse(text).unwrap_err().code()
}

#[test]
fn parse_refusals_have_exact_codes() {
    let (header, payload, sig) = es256_parts();
    let with = |mut v: Value, k: &str, m: Value| {
        v[k] = m;
        v
    };
    let without = |mut v: Value, k: &str| {
        v.as_object_mut().unwrap().remove(k);
        v
    };
    let ok = jws(&header, &payload, &sig);
    assert!(DbscProof::parse(&ok).is_ok());
    let rsa_jwk = json!({"kty": "RSA", "e": "AQAB", "n": b64::encode(vec![0xffu8; 256])});
    let cases: Vec<(&str, String, &str)> = vec![
        ("too large", "a".repeat(8 * 1024 + 1), "too_large"),
        (
            "two parts",
            ok.rsplit_once('.').unwrap().0.to_owned(),
            "malformed_jws",
        ),
        ("four parts", format!("{ok}.x"), "malformed_jws"),
        (
            "empty signature",
            format!("{}.", ok.rsplit_once('.').unwrap().0),
            "malformed_jws",
        ),
        ("padded header", format!("{}=", ok), "invalid_base64"),
        (
            "header not JSON",
            format!("{}.{}", b64::encode("nope"), ok.split_once('.').unwrap().1),
            "invalid_json",
        ),
        (
            "duplicate header member",
            format!(
                "{}.{}",
                b64::encode(r#"{"alg":"ES256","typ":"dbsc+jwt","typ":"dbsc+jwt"}"#),
                ok.split_once('.').unwrap().1
            ),
            "duplicate_json_member",
        ),
        (
            "alg none",
            jws(&with(header.clone(), "alg", json!("none")), &payload, &sig),
            "unsupported_alg",
        ),
        (
            "alg EdDSA",
            jws(&with(header.clone(), "alg", json!("EdDSA")), &payload, &sig),
            "unsupported_alg",
        ),
        (
            "alg HS256",
            jws(&with(header.clone(), "alg", json!("HS256")), &payload, &sig),
            "unsupported_alg",
        ),
        (
            "alg missing",
            jws(&without(header.clone(), "alg"), &payload, &sig),
            "unsupported_alg",
        ),
        (
            "crit",
            jws(
                &with(header.clone(), "crit", json!(["exp"])),
                &payload,
                &sig,
            ),
            "unknown_crit",
        ),
        (
            "typ dpop+jwt",
            jws(
                &with(header.clone(), "typ", json!("dpop+jwt")),
                &payload,
                &sig,
            ),
            "invalid_typ",
        ),
        (
            "typ missing",
            jws(&without(header.clone(), "typ"), &payload, &sig),
            "invalid_typ",
        ),
        (
            "RS256 with an EC jwk",
            jws(&with(header.clone(), "alg", json!("RS256")), &payload, &sig),
            "alg_key_mismatch",
        ),
        (
            "ES256 with an RSA jwk",
            jws(
                &with(header.clone(), "jwk", rsa_jwk.clone()),
                &payload,
                &sig,
            ),
            "alg_key_mismatch",
        ),
        (
            "private jwk",
            jws(
                &with(
                    header.clone(),
                    "jwk",
                    with(header["jwk"].clone(), "d", json!("AAAA")),
                ),
                &payload,
                &sig,
            ),
            "private_key_in_jwk",
        ),
        (
            "P-384 jwk",
            jws(
                &with(
                    header.clone(),
                    "jwk",
                    with(header["jwk"].clone(), "crv", json!("P-384")),
                ),
                &payload,
                &sig,
            ),
            "invalid_jwk",
        ),
        (
            "short coordinate",
            jws(
                &with(
                    header.clone(),
                    "jwk",
                    with(header["jwk"].clone(), "x", json!("AAAA")),
                ),
                &payload,
                &sig,
            ),
            "invalid_jwk",
        ),
        (
            "RSA-1024",
            jws(
                &with(
                    with(header.clone(), "alg", json!("RS256")),
                    "jwk",
                    with(rsa_jwk, "n", json!(b64::encode([0xffu8; 128]))),
                ),
                &payload,
                &sig,
            ),
            "weak_key",
        ),
        (
            "jti missing",
            jws(&header, &without(payload.clone(), "jti"), &sig),
            "missing_claim",
        ),
        (
            "jti empty",
            jws(&header, &with(payload.clone(), "jti", json!("")), &sig),
            "invalid_claim",
        ),
        (
            "jti a number",
            jws(&header, &with(payload.clone(), "jti", json!(7)), &sig),
            "invalid_claim",
        ),
        (
            "authorization a number",
            jws(
                &header,
                &with(payload.clone(), "authorization", json!(1)),
                &sig,
            ),
            "invalid_claim",
        ),
        (
            "sub an object",
            jws(&header, &with(payload.clone(), "sub", json!({})), &sig),
            "invalid_claim",
        ),
        (
            "iat a bool",
            jws(&header, &with(payload.clone(), "iat", json!(true)), &sig),
            "invalid_claim",
        ),
        (
            "iat a float",
            jws(&header, &with(payload.clone(), "iat", json!(1.5)), &sig),
            "invalid_claim",
        ),
        (
            "iat not digits",
            jws(&header, &with(payload.clone(), "iat", json!("12a")), &sig),
            "invalid_claim",
        ),
        (
            "key claim differs from jwk",
            jws(
                &header,
                &with(
                    payload.clone(),
                    "key",
                    with(header["jwk"].clone(), "x", json!(b64::encode([7u8; 32]))),
                ),
                &sig,
            ),
            "key_mismatch",
        ),
        (
            "duplicate claim",
            format!(
                "{}.{}.{sig}",
                b64::encode(header.to_string()),
                b64::encode(r#"{"jti":"a","jti":"b"}"#)
            ),
            "duplicate_json_member",
        ),
        (
            "signature not base64url",
            jws(&header, &payload, "+/+/"),
            "invalid_base64",
        ),
    ];
    for (what, text, code) in cases {
        assert_eq!(parse_code(&text), code, "{what}");
    }
}

#[test]
fn spec_forms_are_read_too() {
    // The spec's draft: key in a `key` claim, `iat` as a string of digits, `aud`, `sub`.
    let (header, payload, sig) = es256_parts();
    let mut h = header.clone();
    let key = h.as_object_mut().unwrap().remove("jwk").unwrap();
    let mut p = payload.clone();
    p["key"] = key.clone();
    p["iat"] = json!("1725579055");
    p["aud"] = json!("https://example.com/reg");
    p["sub"] = json!("s-1");
    let proof = DbscProof::parse(&jws(&h, &p, &sig)).unwrap();
    assert_eq!(proof.key().unwrap(), &DbscKey::from_json(&key).unwrap());
    assert_eq!(
        (proof.iat(), proof.aud(), proof.sub()),
        (
            Some(1_725_579_055),
            Some("https://example.com/reg"),
            Some("s-1")
        )
    );
    // The same key in both places is fine.
    let mut p2 = payload.clone();
    p2["key"] = header["jwk"].clone();
    assert!(DbscProof::parse(&jws(&header, &p2, &sig)).is_ok());
}

// ------------------------------------------------------------ check refusals

/// Accepts (or refuses) every signature, counting calls.
struct StandIn {
    accept: bool,
    calls: Cell<usize>,
}

impl StandIn {
    fn new(accept: bool) -> Self {
        Self {
            accept,
            calls: Cell::new(0),
        }
    }
}

impl SignatureVerifier for StandIn {
    fn verify(&self, _: DbscAlg, _: &DbscKey, _: &[u8], _: &[u8]) -> Result<(), DbscError> {
        self.calls.set(self.calls.get() + 1);
        if self.accept {
            Ok(())
        } else {
            Err(DbscError::InvalidSignature)
        }
    }
}

const NOW_MS: i64 = 1_800_000_000_000;
const SESSION: &str = "kb-session-1";

fn challenges() -> Challenges {
    Challenges::from_secret(&[5u8; 32], Duration::from_secs(60))
}

/// A registration proof (the recorded ES256 key, a stand-in signature) for `jti`.
fn registration_proof(jti: &str, extra: &[(&str, Value)]) -> DbscProof {
    let (header, mut payload, _) = es256_parts();
    payload["jti"] = json!(jti);
    payload["authorization"] = json!(SESSION);
    for (k, v) in extra {
        payload[*k] = v.clone();
    }
    DbscProof::parse(&jws(&header, &payload, &b64::encode([1u8; 64]))).unwrap()
}

fn registration_check<'a>(c: &'a Challenges) -> RegistrationCheck<'a> {
    RegistrationCheck {
        challenges: c,
        session_id: SESSION,
        authorization: Some(SESSION),
        algs: &DbscAlg::ALL,
        now_ms: NOW_MS,
        max_skew: Duration::from_secs(60),
    }
}

#[test]
fn registration_checks_in_order_with_exact_codes() {
    let c = challenges();
    let fresh = c.issue(ChallengePurpose::Registration, SESSION, NOW_MS, [1u8; 16]);
    let ok = StandIn::new(true);
    let key = registration_proof(&fresh, &[])
        .verify_registration(&registration_check(&c), &ok)
        .unwrap();
    assert_eq!(key.alg(), DbscAlg::Es256);
    assert_eq!(ok.calls.get(), 1);

    let refuse = |proof: DbscProof, check: RegistrationCheck<'_>| {
        let verifier = StandIn::new(true);
        let code = proof
            .verify_registration(&check, &verifier)
            .unwrap_err()
            .code();
        (code, verifier.calls.get())
    };
    let base = || registration_check(&c);
    let only_rs = [DbscAlg::Rs256];
    let cases: Vec<(&str, DbscProof, RegistrationCheck<'_>, &str)> = vec![
        (
            "alg not allowed",
            registration_proof(&fresh, &[]),
            RegistrationCheck {
                algs: &only_rs,
                ..base()
            },
            "unsupported_alg",
        ),
        (
            "authorization differs",
            registration_proof(&fresh, &[]),
            RegistrationCheck {
                authorization: Some("other"),
                ..base()
            },
            "authorization_mismatch",
        ),
        (
            "authorization not asked for",
            registration_proof(&fresh, &[]),
            RegistrationCheck {
                authorization: None,
                ..base()
            },
            "authorization_mismatch",
        ),
        (
            "sub names another session",
            registration_proof(&fresh, &[("sub", json!("other"))]),
            base(),
            "session_mismatch",
        ),
        (
            "iat too old",
            registration_proof(&fresh, &[("iat", json!(NOW_MS / 1000 - 61))]),
            base(),
            "iat_too_old",
        ),
        (
            "iat in the future",
            registration_proof(&fresh, &[("iat", json!(NOW_MS / 1000 + 61))]),
            base(),
            "iat_in_future",
        ),
        (
            "challenge not ours",
            registration_proof("kb-reg-es256", &[]),
            base(),
            "invalid_challenge",
        ),
        (
            "challenge for another session",
            registration_proof(
                &c.issue(ChallengePurpose::Registration, "other", NOW_MS, [1u8; 16]),
                &[],
            ),
            base(),
            "invalid_challenge",
        ),
        (
            "refresh challenge used to register",
            registration_proof(
                &c.issue(ChallengePurpose::Refresh, SESSION, NOW_MS, [1u8; 16]),
                &[],
            ),
            base(),
            "invalid_challenge",
        ),
        (
            "stale challenge",
            registration_proof(&fresh, &[]),
            RegistrationCheck {
                now_ms: NOW_MS + 60_001,
                ..base()
            },
            "challenge_expired",
        ),
    ];
    for (what, proof, check, code) in cases {
        assert_eq!(
            refuse(proof, check),
            (code, 0),
            "{what}: refused before the signature check"
        );
    }
    // No key: a refresh-shaped proof sent to the registration endpoint.
    let (mut header, mut payload, _) = es256_parts();
    header.as_object_mut().unwrap().remove("jwk");
    payload["jti"] = json!(fresh);
    let keyless = DbscProof::parse(&jws(&header, &payload, &b64::encode([1u8; 64]))).unwrap();
    assert_eq!(refuse(keyless, base()), ("missing_key", 0));
    // A DER signature (or any other size) never reaches the verifier.
    let (header, mut payload, _) = es256_parts();
    payload["jti"] = json!(fresh);
    payload["authorization"] = json!(SESSION);
    let der_sized = DbscProof::parse(&jws(&header, &payload, &b64::encode([0x30u8; 71]))).unwrap();
    assert_eq!(refuse(der_sized, base()), ("malformed_signature", 0));
    // The verifier's refusal is the answer.
    let bad = StandIn::new(false);
    let err = registration_proof(&fresh, &[])
        .verify_registration(&base(), &bad)
        .unwrap_err();
    assert_eq!((err.code(), bad.calls.get()), ("invalid_signature", 1));
}

#[test]
fn refresh_checks_in_order_with_exact_codes() {
    let c = challenges();
    let (header, _, _) = es256_parts();
    let key = DbscKey::from_json(&header["jwk"]).unwrap();
    let fresh = c.issue(ChallengePurpose::Refresh, SESSION, NOW_MS, [2u8; 16]);
    let refresh = |alg: &str, jti: &str, extra: &[(&str, Value)], sig_len: usize| {
        let mut payload = json!({"jti": jti});
        let mut h = json!({"alg": alg, "typ": "dbsc+jwt"});
        for (k, v) in extra {
            if *k == "jwk" {
                h["jwk"] = v.clone()
            } else {
                payload[*k] = v.clone()
            }
        }
        DbscProof::parse(&jws(&h, &payload, &b64::encode(vec![1u8; sig_len]))).unwrap()
    };
    let check = |key| RefreshCheck {
        challenges: &c,
        session_id: SESSION,
        key,
        now_ms: NOW_MS,
        max_skew: Duration::from_secs(60),
    };
    let ok = StandIn::new(true);
    refresh("ES256", &fresh, &[], 64)
        .verify_refresh(&check(&key), &ok)
        .unwrap();
    // The spec's optional members, when right, are fine.
    refresh(
        "ES256",
        &fresh,
        &[
            ("sub", json!(SESSION)),
            ("iat", json!(NOW_MS / 1000)),
            ("jwk", header["jwk"].clone()),
        ],
        64,
    )
    .verify_refresh(&check(&key), &ok)
    .unwrap();

    let rsa = DbscKey::from_json(
        &json!({"kty": "RSA", "e": "AQAB", "n": b64::encode(vec![0xffu8; 256])}),
    )
    .unwrap();
    let other_ec = json!({"kty": "EC", "crv": "P-256", "x": b64::encode([7u8; 32]), "y": b64::encode([8u8; 32])});
    let cases: Vec<(&str, DbscProof, RefreshCheck<'_>, &str)> = vec![
        (
            "ES256 proof for an RSA session",
            refresh("ES256", &fresh, &[], 64),
            check(&rsa),
            "alg_key_mismatch",
        ),
        (
            "another key in the proof",
            refresh("ES256", &fresh, &[("jwk", other_ec)], 64),
            check(&key),
            "key_mismatch",
        ),
        (
            "sub names another session",
            refresh("ES256", &fresh, &[("sub", json!("other"))], 64),
            check(&key),
            "session_mismatch",
        ),
        (
            "iat too old",
            refresh("ES256", &fresh, &[("iat", json!(NOW_MS / 1000 - 61))], 64),
            check(&key),
            "iat_too_old",
        ),
        (
            "challenge not ours",
            refresh("ES256", "kb-refresh-2", &[], 64),
            check(&key),
            "invalid_challenge",
        ),
        (
            "registration challenge used to refresh",
            refresh(
                "ES256",
                &c.issue(ChallengePurpose::Registration, SESSION, NOW_MS, [2u8; 16]),
                &[],
                64,
            ),
            check(&key),
            "invalid_challenge",
        ),
        (
            "challenge of another session",
            refresh(
                "ES256",
                &c.issue(ChallengePurpose::Refresh, "other", NOW_MS, [2u8; 16]),
                &[],
                64,
            ),
            check(&key),
            "invalid_challenge",
        ),
        (
            "stale challenge",
            refresh("ES256", &fresh, &[], 64),
            RefreshCheck {
                now_ms: NOW_MS + 60_001,
                ..check(&key)
            },
            "challenge_expired",
        ),
        (
            "DER-sized signature",
            refresh("ES256", &fresh, &[], 72),
            check(&key),
            "malformed_signature",
        ),
        (
            "RSA signature of the wrong size",
            refresh("RS256", &fresh, &[], 255),
            check(&rsa),
            "malformed_signature",
        ),
    ];
    for (what, proof, check, code) in cases {
        let verifier = StandIn::new(true);
        let err = proof.verify_refresh(&check, &verifier).unwrap_err();
        assert_eq!((err.code(), verifier.calls.get()), (code, 0), "{what}");
    }
    let bad = StandIn::new(false);
    let err = refresh("ES256", &fresh, &[], 64)
        .verify_refresh(&check(&key), &bad)
        .unwrap_err();
    assert_eq!(err.code(), "invalid_signature");
}
