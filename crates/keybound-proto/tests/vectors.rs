//! Shared test vectors (`tests/vectors/*.json` at the repository root): every vector is
//! read and its outcome asserted, and the files are checked to be exactly what the
//! generator below produces. Regenerate them with
//! `KEYBOUND_REGEN_VECTORS=1 cargo test -p keybound-proto --test vectors`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use keybound_proto::{
    AccessToken, AccessTokenClaims, CheckError, CheckedRequest, Credential, MAX_JWS_LEN,
    ProofBuilder, ProtoError, PublicJwk, RequestContext, access_token_hash, b64, check_request,
    sign_access_token,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

mod vectors_es256;
use vectors_es256::P256Device;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

fn read(name: &str) -> Value {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

// ======================================================================= readers

#[test]
fn rfc8037_appendix_a() {
    let v = read("rfc8037.json");
    // A.1: the private key; its public half is A.2's x.
    let private = &v["a1_private_jwk"];
    let d = b64::decode_array::<32>(s(private, "d"), "d").unwrap();
    let key = SigningKey::from_bytes(&d);
    assert_eq!(hex(&d), s(&v, "a1_d_hex"));
    assert_eq!(b64::encode(key.verifying_key().as_bytes()), s(private, "x"));
    let public = PublicJwk::from_json(&v["a2_public_jwk"]).unwrap();
    assert_eq!(public.ed25519_bytes(), Some(key.verifying_key().as_bytes()));
    assert_eq!(hex(public.ed25519_bytes().unwrap()), s(&v, "a2_x_hex"));
    // A.3: the thumbprint, step by step.
    let a3 = &v["a3_thumbprint"];
    let digest = Sha256::digest(s(a3, "canonical_json").as_bytes());
    assert_eq!(hex(&digest), s(a3, "sha256_hex"));
    assert_eq!(b64::encode(digest), s(a3, "jkt"));
    assert_eq!(public.thumbprint(), s(a3, "jkt"));
    // A.4: the signature (Ed25519 is deterministic), A.5: it verifies.
    let a4 = &v["a4_signature"];
    let input = format!(
        "{}.{}",
        b64::encode(s(a4, "protected_header")),
        b64::encode(s(a4, "payload"))
    );
    assert_eq!(input, s(a4, "signing_input"));
    let signature = key.sign(input.as_bytes());
    assert_eq!(b64::encode(signature.to_bytes()), s(a4, "signature"));
    assert_eq!(format!("{input}.{}", s(a4, "signature")), s(a4, "jws"));
    key.verifying_key()
        .verify_strict(input.as_bytes(), &signature)
        .unwrap();
}

#[test]
fn keybound_keys() {
    let v = read("keys.json");
    for name in ["device", "other_device", "server", "other_server"] {
        let k = &v[name];
        let private = &k["private_jwk"];
        let d = b64::decode_array::<32>(s(private, "d"), "d").unwrap();
        let key = SigningKey::from_bytes(&d);
        let public = PublicJwk::from_verifying_key(&key.verifying_key());
        assert_eq!(public.to_json(), k["public_jwk"], "{name}");
        assert_eq!(s(private, "x"), s(&k["public_jwk"], "x"), "{name}");
        assert_eq!(public.thumbprint(), s(k, "jkt"), "{name}");
        assert_eq!(
            PublicJwk::from_json(&k["public_jwk"]).unwrap().thumbprint(),
            s(k, "jkt")
        );
    }
    // The P-256 device key: its public half and thumbprint follow from d.
    let k = &v["device_p256"];
    let private = &k["private_jwk"];
    let d = b64::decode_array::<32>(s(private, "d"), "d").unwrap();
    let key = p256::ecdsa::SigningKey::from_slice(&d).unwrap();
    let point = key.verifying_key().to_sec1_point(false);
    let public = PublicJwk::from_p256_coordinates(
        point.as_bytes()[1..33].try_into().unwrap(),
        point.as_bytes()[33..].try_into().unwrap(),
    );
    assert_eq!(public.to_json(), k["public_jwk"]);
    assert_eq!(
        (s(private, "x"), s(private, "y")),
        (s(&k["public_jwk"], "x"), s(&k["public_jwk"], "y"))
    );
    assert_eq!(public.thumbprint(), s(k, "jkt"));
    assert_eq!(
        PublicJwk::from_json(&k["public_jwk"]).unwrap().thumbprint(),
        s(k, "jkt")
    );
    let jwks = jwks_keys(&v["server"]["jwks"]);
    assert_eq!(jwks.len(), 1);
    let kid = s(&v["server"]["private_jwk"], "kid");
    assert_eq!(
        PublicJwk::from_verifying_key(&jwks[kid]).to_json(),
        v["server"]["public_jwk"]
    );
}

/// Reads a JWKS the way `keybound verify --jwks` does: `kid` plus the public members.
fn jwks_keys(jwks: &Value) -> HashMap<String, VerifyingKey> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let public = json!({"kty": k["kty"], "crv": k["crv"], "x": k["x"]});
            let key = PublicJwk::from_json(&public)
                .unwrap()
                .verifying_key()
                .unwrap();
            (s(k, "kid").to_owned(), key)
        })
        .collect()
}

fn run_case(case: &Value) -> Result<CheckedRequest, CheckError> {
    let req = &case["request"];
    let ctx = RequestContext {
        method: s(req, "method"),
        url: s(req, "url"),
        now: req["now"].as_i64().unwrap(),
        max_skew_secs: req["max_skew"].as_u64().unwrap(),
        max_jws_len: MAX_JWS_LEN,
    };
    let keys = case.get("jwks").map(jwks_keys);
    let token = case.get("access_token").map(|t| t.as_str().unwrap());
    assert_eq!(token.is_some(), keys.is_some(), "{}", case["name"]);
    check_request(&ctx, s(case, "proof"), token, &mut |token: &AccessToken| {
        let key = keys
            .as_ref()
            .and_then(|keys| keys.get(token.kid()))
            .ok_or(ProtoError::UnknownKid)?;
        token.verify_signature(key)
    })
}

/// The verified claims in the shape `keybound verify` prints.
fn verified_json(checked: &CheckedRequest) -> Value {
    let p = checked.proof.claims();
    let mut proof = json!({"jti": p.jti, "htm": p.htm, "htu": p.htu, "iat": p.iat});
    if let Some(ath) = &p.ath {
        proof["ath"] = json!(ath);
    }
    if let Some(nonce) = &p.nonce {
        proof["nonce"] = json!(nonce);
    }
    let mut out = json!({"jkt": checked.jkt, "proof": proof});
    if let Some(token) = &checked.token {
        let c = token.claims();
        out["access_token"] = json!({
            "kid": token.kid(), "iss": c.iss, "sub": c.sub, "sid": c.sid, "jti": c.jti,
            "iat": c.iat, "exp": c.exp, "cnf": {"jkt": c.jkt},
        });
    }
    out
}

#[test]
fn valid_vectors_pass() {
    let v = read("valid.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for case in cases {
        let name = s(case, "name");
        let checked = run_case(case).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(case["expect"]["valid"], true, "{name}");
        assert_eq!(
            verified_json(&checked),
            case["expect"]["verified"],
            "{name}"
        );
    }
}

#[test]
fn invalid_vectors_fail_with_their_code() {
    let v = read("invalid.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    let mut names = std::collections::HashSet::new();
    for case in cases {
        let name = s(case, "name");
        assert!(names.insert(name), "duplicate vector name {name}");
        let expect = &case["expect"];
        assert_eq!(expect["valid"], false, "{name}");
        let err = match run_case(case) {
            Ok(_) => panic!("{name}: accepted"),
            Err(err) => err,
        };
        let error = match err.credential {
            Credential::Proof => "invalid_dpop_proof",
            Credential::AccessToken => "invalid_token",
        };
        assert_eq!(
            (error, err.error.code()),
            (s(expect, "error"), s(expect, "error_code")),
            "{name}: {:?}",
            err.error
        );
    }
}

#[test]
fn vector_files_match_the_generator() {
    let regen = std::env::var("KEYBOUND_REGEN_VECTORS").is_ok_and(|v| v == "1");
    // The vectors were made with serde_json's sorted maps. If a dependency turns on its
    // `preserve_order` feature for the whole build, JSON members keep insertion order,
    // the generated JWS texts change (they stay valid) and a comparison would depend on
    // which crates happen to be built together.
    let probe = serde_json::to_string(&json!({"b": 1, "a": 2})).unwrap();
    if probe != r#"{"a":2,"b":1}"# {
        assert!(
            !regen,
            "regenerate the vectors without serde_json's preserve_order feature"
        );
        eprintln!("serde_json preserves member order in this build; skipping the comparison");
        return;
    }
    let files = generate();
    for (name, value) in files {
        let path = vectors_dir().join(name);
        let text = format!("{}\n", serde_json::to_string_pretty(&value).unwrap());
        if regen {
            std::fs::create_dir_all(vectors_dir()).unwrap();
            std::fs::write(&path, text).unwrap();
        } else {
            let stored = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                stored == text,
                "{name} differs from the generator's output; if the change is intended, run \
                 KEYBOUND_REGEN_VECTORS=1 cargo test -p keybound-proto --test vectors"
            );
        }
    }
}

// ======================================================================= generator

const NOW: i64 = 1_700_000_000;
const METHOD: &str = "GET";
const URL: &str = "https://api.example.com/orders";
const MAX_SKEW: u64 = 60;
const SERVER_KID: &str = "kb-vectors-1";
const JTI: [u8; 16] = [
    0x6b, 0x65, 0x79, 0x62, 0x6f, 0x75, 0x6e, 0x64, 0x2d, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x31,
];

/// The group order L of edwards25519, little-endian.
const ORDER_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fixed key derived from a label, so the vectors never change by accident.
fn key(label: &str) -> SigningKey {
    SigningKey::from_bytes(&Sha256::digest(format!("keybound/vectors/{label}")).into())
}

fn public(key: &SigningKey) -> Value {
    PublicJwk::from_verifying_key(&key.verifying_key()).to_json()
}

fn jkt(key: &SigningKey) -> String {
    PublicJwk::from_verifying_key(&key.verifying_key()).thumbprint()
}

fn private(key: &SigningKey, kid: &str) -> Value {
    let mut jwk = public(key);
    jwk["d"] = json!(b64::encode(key.to_bytes()));
    jwk["kid"] = json!(kid);
    jwk
}

/// The signing input for raw header and payload texts (which may be invalid JSON or
/// carry duplicate members on purpose).
fn input(header: &str, payload: &str) -> String {
    format!("{}.{}", b64::encode(header), b64::encode(payload))
}

fn sign_raw(header: &str, payload: &str, key: &SigningKey) -> String {
    let input = input(header, payload);
    let sig = key.sign(input.as_bytes()).to_bytes();
    format!("{input}.{}", b64::encode(sig))
}

fn sign_json(header: &Value, payload: &Value, key: &SigningKey) -> String {
    sign_raw(&header.to_string(), &payload.to_string(), key)
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Replaces the signature part of a compact JWS.
fn with_signature(jws: &str, signature: &str) -> String {
    let (input, _) = jws.rsplit_once('.').unwrap();
    format!("{input}.{signature}")
}

fn signature_bytes(jws: &str) -> [u8; 64] {
    b64::decode_array::<64>(jws.rsplit_once('.').unwrap().1, "signature").unwrap()
}

/// The same signature with S replaced by S + L: valid for lax verifiers, not canonical.
fn malleate(jws: &str) -> String {
    let mut sig = signature_bytes(jws);
    let mut carry = 0u16;
    for (i, l) in ORDER_L.iter().enumerate() {
        let sum = u16::from(sig[32 + i]) + u16::from(*l) + carry;
        sig[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    with_signature(jws, &b64::encode(sig))
}

struct Gen {
    device: SigningKey,
    other_device: SigningKey,
    server: SigningKey,
    other_server: SigningKey,
    p256: P256Device,
}

impl Gen {
    fn new() -> Self {
        Self {
            device: key("device"),
            other_device: key("other-device"),
            server: key("server"),
            other_server: key("other-server"),
            p256: P256Device::new("device-p256"),
        }
    }

    fn jwks(&self) -> Value {
        let mut jwk = public(&self.server);
        jwk["kid"] = json!(SERVER_KID);
        jwk["alg"] = json!("EdDSA");
        jwk["use"] = json!("sig");
        json!({"keys": [jwk]})
    }

    fn proof_header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": public(&self.device)})
    }

    fn proof_claims(&self) -> Value {
        json!({"jti": b64::encode(JTI), "htm": METHOD, "htu": URL, "iat": NOW})
    }

    /// A proof through the public builder, as the SDK and the CLI make them.
    fn proof(&self, access_token: Option<&str>) -> String {
        let mut b = ProofBuilder::new(public_jwk(&self.device), METHOD, URL, NOW, JTI).unwrap();
        if let Some(at) = access_token {
            b = b.access_token(at);
        }
        b.sign(&self.device).unwrap()
    }

    fn token_claims(&self) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://api.example.com".into(),
            sub: "user-42".into(),
            sid: "session-7".into(),
            jti: b64::encode(Sha256::digest(b"keybound/vectors/token-jti")),
            iat: NOW - 10,
            exp: NOW + 290,
            jkt: jkt(&self.device),
        }
    }

    fn token(&self) -> String {
        sign_access_token(&self.token_claims(), SERVER_KID, &self.server).unwrap()
    }

    fn token_header(&self) -> Value {
        json!({"typ": "at+jwt", "alg": "EdDSA", "kid": SERVER_KID})
    }

    fn token_payload(&self) -> Value {
        let c = self.token_claims();
        json!({
            "iss": c.iss, "sub": c.sub, "sid": c.sid, "jti": c.jti, "iat": c.iat,
            "exp": c.exp, "cnf": {"jkt": c.jkt},
        })
    }
}

fn public_jwk(key: &SigningKey) -> PublicJwk {
    PublicJwk::from_verifying_key(&key.verifying_key())
}

fn request() -> Value {
    json!({"method": METHOD, "url": URL, "now": NOW, "max_skew": MAX_SKEW})
}

fn case(name: &str, description: &str, proof: String) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("description".into(), json!(description));
    m.insert("request".into(), request());
    m.insert("proof".into(), json!(proof));
    m
}

fn with_token(mut case: Map<String, Value>, token: &str, jwks: &Value) -> Map<String, Value> {
    case.insert("access_token".into(), json!(token));
    case.insert("jwks".into(), jwks.clone());
    case
}

fn invalid(mut case: Map<String, Value>, error: &str, code: &str) -> Value {
    case.insert(
        "expect".into(),
        json!({"valid": false, "error": error, "error_code": code}),
    );
    Value::Object(case)
}

fn generate() -> Vec<(&'static str, Value)> {
    let g = Gen::new();
    vec![
        ("rfc8037.json", rfc8037()),
        ("keys.json", keys(&g)),
        ("valid.json", valid(&g)),
        ("invalid.json", invalid_cases(&g)),
    ]
}

/// RFC 8037 Appendix A, as printed in the RFC (the key is RFC 8032 §7.1 test 1).
fn rfc8037() -> Value {
    json!({
        "description": "RFC 8037 Appendix A: A.1 Ed25519 private key, A.2 its public key, \
            A.3 its RFC 7638 thumbprint, A.4 the JWS signature of \"Example of Ed25519 signing\" \
            (A.5: it verifies).",
        "a1_private_jwk": {
            "kty": "OKP", "crv": "Ed25519",
            "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        },
        "a1_d_hex": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "a2_public_jwk": {
            "kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        },
        "a2_x_hex": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "a3_thumbprint": {
            "canonical_json": "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
            "sha256_hex": "90facafea9b1556698540f70c0117a22ea37bd5cf3ed3c47093c1707282b4b89",
            "jkt": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        },
        "a4_signature": {
            "protected_header": "{\"alg\":\"EdDSA\"}",
            "payload": "Example of Ed25519 signing",
            "signing_input": "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc",
            "signature": "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
            "jws": "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        }
    })
}

fn keys(g: &Gen) -> Value {
    let entry = |key: &SigningKey, kid: &str| json!({"private_jwk": private(key, kid), "public_jwk": public(key), "jkt": jkt(key)});
    let mut server = entry(&g.server, SERVER_KID);
    server["jwks"] = g.jwks();
    json!({
        "description": "keybound's fixed test keys (seed = SHA-256 of \"keybound/vectors/<label>\"). \
            device (Ed25519) and device_p256 (P-256, label device-p256) sign the proofs, server \
            the access tokens (kid kb-vectors-1); the other_* keys sign the forgeries.",
        "device": entry(&g.device, &jkt(&g.device)),
        "device_p256": vectors_es256::keys_entry(g),
        "other_device": entry(&g.other_device, &jkt(&g.other_device)),
        "server": server,
        "other_server": entry(&g.other_server, "kb-vectors-other"),
    })
}

fn valid(g: &Gen) -> Value {
    let jwks = g.jwks();
    let token = g.token();
    let mut cases = Vec::new();
    let mut push = |case: Map<String, Value>| {
        let mut case = case;
        let checked = run_case(&Value::Object(case.clone())).unwrap();
        case.insert(
            "expect".into(),
            json!({"valid": true, "verified": verified_json(&checked)}),
        );
        cases.push(Value::Object(case));
    };

    push(case(
        "proof_only",
        "A proof without an access token (as for a login request).",
        g.proof(None),
    ));
    push(with_token(
        case(
            "proof_with_access_token",
            "A proof with ath and the access token bound to its key.",
            g.proof(Some(&token)),
        ),
        &token,
        &jwks,
    ));
    let nonce = ProofBuilder::new(public_jwk(&g.device), METHOD, URL, NOW, JTI)
        .unwrap()
        .nonce("eyJ7S_zG.eyJH0-Z.HX4w-7v")
        .sign(&g.device)
        .unwrap();
    push(case(
        "proof_with_nonce",
        "A proof carrying a server nonce (nonce checks are stateful and not part of these vectors).",
        nonce,
    ));
    let mut header = g.proof_header();
    header["alg"] = json!("Ed25519");
    let mut claims = g.proof_claims();
    claims["jti"] = json!("e1bd2d4c-3d7f-4f3b-9a55-0c1d6bbd2a9e");
    push(case(
        "proof_alg_ed25519",
        "alg Ed25519, RFC 9864's fully specified name for EdDSA with Ed25519, as panva's dpop 2.x signs.",
        sign_json(&header, &claims, &g.device),
    ));
    let mut c = case(
        "htu_normalised",
        "The request URL differs from htu only by case, the default port, query and fragment.",
        g.proof(None),
    );
    c["request"]["url"] = json!("HTTPS://API.Example.COM:443/orders?page=2#top");
    push(c);
    let mut c = case(
        "iat_at_window_edge",
        "iat exactly max_skew seconds before now is still accepted.",
        g.proof(None),
    );
    c["request"]["now"] = json!(NOW + 60);
    push(c);
    let mut header = g.token_header();
    header["typ"] = json!("application/at+jwt");
    let long_typ = sign_json(&header, &g.token_payload(), &g.server);
    push(with_token(
        case(
            "token_typ_application_at_jwt",
            "An access token with typ application/at+jwt (RFC 9068 allows both spellings).",
            g.proof(Some(&long_typ)),
        ),
        &long_typ,
        &jwks,
    ));
    for c in vectors_es256::valid_cases(g, &jwks) {
        push(c);
    }
    json!({
        "description": "Requests that pass keybound's pure checks; expect.verified is what \
            `keybound verify` prints.",
        "cases": cases,
    })
}

#[allow(clippy::too_many_lines)]
fn invalid_cases(g: &Gen) -> Value {
    let jwks = g.jwks();
    let token = g.token();
    let proof = g.proof(None);
    let hdr = g.proof_header();
    let claims = g.proof_claims();
    let dev = &g.device;
    let mut out: Vec<Value> = Vec::new();
    let p = "invalid_dpop_proof";
    let t = "invalid_token";

    // A proof with one header member changed, signed by the device key.
    let header_with = |key: &str, value: Value| {
        let mut h = hdr.clone();
        if value.is_null() {
            h.as_object_mut().unwrap().remove(key);
        } else {
            h[key] = value;
        }
        sign_json(&h, &claims, dev)
    };
    let claims_with = |key: &str, value: Value| {
        let mut c = claims.clone();
        if value.is_null() {
            c.as_object_mut().unwrap().remove(key);
        } else {
            c[key] = value;
        }
        sign_json(&hdr, &c, dev)
    };
    let mut add = |name: &str, description: &str, proof: String, error: &str, code: &str| {
        out.push(invalid(case(name, description, proof), error, code));
    };

    // --- JOSE header of the proof
    add(
        "proof_alg_none",
        "alg none (with a signature present).",
        header_with("alg", json!("none")),
        p,
        "unsupported_alg",
    );
    let unsigned = format!(
        "{}.",
        input(
            &json!({"typ":"dpop+jwt","alg":"none","jwk":public(dev)}).to_string(),
            &claims.to_string()
        )
    );
    add(
        "proof_alg_none_unsigned",
        "alg none with an empty signature part.",
        unsigned,
        p,
        "malformed_jws",
    );
    let mut hs = hdr.clone();
    hs["alg"] = json!("HS256");
    let hs_input = input(&hs.to_string(), &claims.to_string());
    let mac = hmac_sha256(dev.verifying_key().as_bytes(), hs_input.as_bytes());
    add(
        "proof_alg_hs256",
        "alg HS256, MAC keyed with the public key (algorithm confusion).",
        format!("{hs_input}.{}", b64::encode(mac)),
        p,
        "unsupported_alg",
    );
    add(
        "proof_alg_es256",
        "alg ES256 on an Ed25519 key's proof, signed with Ed25519.",
        header_with("alg", json!("ES256")),
        p,
        "alg_key_mismatch",
    );
    add(
        "proof_alg_eddsa_lowercase",
        "alg eddsa: algorithm names are case-sensitive.",
        header_with("alg", json!("eddsa")),
        p,
        "unsupported_alg",
    );
    add(
        "proof_alg_missing",
        "No alg.",
        header_with("alg", Value::Null),
        p,
        "unsupported_alg",
    );
    add(
        "proof_typ_jwt",
        "typ JWT instead of dpop+jwt.",
        header_with("typ", json!("JWT")),
        p,
        "invalid_typ",
    );
    add(
        "proof_typ_missing",
        "No typ.",
        header_with("typ", Value::Null),
        p,
        "invalid_typ",
    );
    add(
        "proof_typ_at_jwt",
        "An access token's typ on a proof.",
        header_with("typ", json!("at+jwt")),
        p,
        "invalid_typ",
    );
    add(
        "proof_crit",
        "A crit header naming an extension.",
        header_with("crit", json!(["exp"])),
        p,
        "unknown_crit",
    );
    add(
        "proof_jwk_missing",
        "No jwk header.",
        header_with("jwk", Value::Null),
        p,
        "missing_claim",
    );
    let mut with_d = public(dev);
    with_d["d"] = json!(b64::encode(dev.to_bytes()));
    add(
        "proof_jwk_with_d",
        "The jwk header carries the private key d.",
        header_with("jwk", with_d),
        p,
        "private_key_in_jwk",
    );
    add(
        "proof_jwk_kty_ec",
        "alg EdDSA with a P-256 jwk (RFC 7515 Appendix A.3's key).",
        header_with(
            "jwk",
            json!({"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}),
        ),
        p,
        "alg_key_mismatch",
    );
    add(
        "proof_jwk_crv_x25519",
        "jwk of crv X25519.",
        header_with(
            "jwk",
            json!({"kty":"OKP","crv":"X25519","x":public(dev)["x"]}),
        ),
        p,
        "invalid_jwk",
    );
    let mut identity = [0u8; 32];
    identity[0] = 1;
    add(
        "proof_jwk_small_order",
        "jwk x is the identity point (order 1).",
        header_with(
            "jwk",
            json!({"kty":"OKP","crv":"Ed25519","x":b64::encode(identity)}),
        ),
        p,
        "weak_key",
    );
    let not_a_point = (0u8..=255)
        .map(|i| {
            let mut x = [0xffu8; 32];
            x[0] = i;
            x[31] = 0x7f;
            x
        })
        .find(|x| VerifyingKey::from_bytes(x).is_err())
        .unwrap();
    add(
        "proof_jwk_not_a_point",
        "jwk x does not decode to a curve point.",
        header_with(
            "jwk",
            json!({"kty":"OKP","crv":"Ed25519","x":b64::encode(not_a_point)}),
        ),
        p,
        "invalid_jwk",
    );
    add(
        "proof_jwk_x_short",
        "jwk x is 31 bytes.",
        header_with(
            "jwk",
            json!({"kty":"OKP","crv":"Ed25519","x":b64::encode([9u8; 31])}),
        ),
        p,
        "invalid_base64",
    );

    // --- duplicate members
    let jwk_text = public(dev).to_string();
    let claims_text = claims.to_string();
    add(
        "proof_header_duplicate_alg",
        "The header names alg twice.",
        sign_raw(
            &format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","alg":"EdDSA","jwk":{jwk_text}}}"#),
            &claims_text,
            dev,
        ),
        p,
        "duplicate_json_member",
    );
    add(
        "proof_jwk_duplicate_x",
        "The jwk names x twice (another key's x second).",
        sign_raw(
            &format!(
                r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{{"crv":"Ed25519","kty":"OKP","x":{},"x":{}}}}}"#,
                public(dev)["x"],
                public(&g.other_device)["x"]
            ),
            &claims_text,
            dev,
        ),
        p,
        "duplicate_json_member",
    );
    add(
        "proof_payload_duplicate_htm",
        "The payload names htm twice (GET and POST).",
        sign_raw(
            &hdr.to_string(),
            &format!(
                r#"{{"jti":"{}","htm":"GET","htm":"POST","htu":"{URL}","iat":{NOW}}}"#,
                b64::encode(JTI)
            ),
            dev,
        ),
        p,
        "duplicate_json_member",
    );

    // --- encoding and structure
    add(
        "proof_signature_s_not_below_l",
        "A valid signature with S replaced by S + L (malleability).",
        malleate(&proof),
        p,
        "non_canonical_signature",
    );
    add(
        "proof_signature_padded",
        "The signature part ends in == padding.",
        format!("{proof}=="),
        p,
        "invalid_base64",
    );
    let sig_text = proof.rsplit_once('.').unwrap().1;
    let last = sig_text.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last_index = alphabet.find(last).unwrap();
    let stray = alphabet.chars().nth(last_index | 1).unwrap();
    let mut stray_sig = sig_text[..sig_text.len() - 1].to_owned();
    stray_sig.push(stray);
    add(
        "proof_signature_stray_bits",
        "The signature's last character has non-zero trailing bits (same bytes, second spelling).",
        with_signature(&proof, &stray_sig),
        p,
        "invalid_base64",
    );
    add(
        "proof_signature_standard_alphabet",
        "The signature uses + from the standard base64 alphabet.",
        with_signature(&proof, &format!("+{}", &sig_text[1..])),
        p,
        "invalid_base64",
    );
    let (h_part, rest) = proof.split_once('.').unwrap();
    add(
        "proof_header_padded",
        "The header part with = padding appended.",
        format!("{h_part}=.{rest}"),
        p,
        "invalid_base64",
    );
    add(
        "proof_two_parts",
        "Only header and payload.",
        proof.rsplit_once('.').unwrap().0.to_owned(),
        p,
        "malformed_jws",
    );
    add(
        "proof_four_parts",
        "A fourth part appended.",
        format!("{proof}.{sig_text}"),
        p,
        "malformed_jws",
    );
    add(
        "proof_empty_payload",
        "An empty payload part.",
        format!("{h_part}..{sig_text}"),
        p,
        "malformed_jws",
    );
    add(
        "proof_payload_array",
        "The payload is a JSON array.",
        sign_raw(&hdr.to_string(), "[1,2,3]", dev),
        p,
        "invalid_json",
    );
    add(
        "proof_payload_not_json",
        "The payload is not JSON.",
        sign_raw(&hdr.to_string(), "GET /orders", dev),
        p,
        "invalid_json",
    );
    add(
        "proof_header_trailing_text",
        "The header is a JSON object followed by more text.",
        sign_raw(&format!("{} x", hdr), &claims_text, dev),
        p,
        "invalid_json",
    );
    add(
        "proof_too_large",
        "A proof above the 8 KiB limit.",
        claims_with("pad", json!("A".repeat(8200))),
        p,
        "too_large",
    );

    // --- claims
    add(
        "proof_jti_missing",
        "No jti.",
        claims_with("jti", Value::Null),
        p,
        "missing_claim",
    );
    add(
        "proof_jti_short",
        "jti of 8 characters (under 128 bits).",
        claims_with("jti", json!("abcdefgh")),
        p,
        "invalid_claim",
    );
    add(
        "proof_htm_missing",
        "No htm.",
        claims_with("htm", Value::Null),
        p,
        "missing_claim",
    );
    add(
        "proof_htu_missing",
        "No htu.",
        claims_with("htu", Value::Null),
        p,
        "missing_claim",
    );
    add(
        "proof_iat_missing",
        "No iat.",
        claims_with("iat", Value::Null),
        p,
        "missing_claim",
    );
    add(
        "proof_iat_string",
        "iat as a string.",
        claims_with("iat", json!("1700000000")),
        p,
        "invalid_claim",
    );
    add(
        "proof_iat_fraction",
        "iat with a fraction.",
        claims_with("iat", json!(1_700_000_000.5)),
        p,
        "invalid_claim",
    );
    add(
        "proof_htm_number",
        "htm as a number.",
        claims_with("htm", json!(1)),
        p,
        "invalid_claim",
    );

    // --- binding to the request
    add(
        "proof_htm_mismatch",
        "htm POST on a GET request.",
        claims_with("htm", json!("POST")),
        p,
        "htm_mismatch",
    );
    add(
        "proof_htm_lowercase",
        "htm get: methods are case-sensitive.",
        claims_with("htm", json!("get")),
        p,
        "htm_mismatch",
    );
    add(
        "proof_htu_host_mismatch",
        "htu names another host.",
        claims_with("htu", json!("https://evil.example.com/orders")),
        p,
        "htu_mismatch",
    );
    add(
        "proof_htu_path_mismatch",
        "htu names another path.",
        claims_with("htu", json!("https://api.example.com/orders/1")),
        p,
        "htu_mismatch",
    );
    add(
        "proof_htu_scheme_mismatch",
        "htu uses http.",
        claims_with("htu", json!("http://api.example.com/orders")),
        p,
        "htu_mismatch",
    );
    add(
        "proof_htu_port_mismatch",
        "htu names port 8443.",
        claims_with("htu", json!("https://api.example.com:8443/orders")),
        p,
        "htu_mismatch",
    );
    add(
        "proof_htu_not_a_url",
        "htu is not an absolute URL.",
        claims_with("htu", json!("/orders")),
        p,
        "htu_mismatch",
    );
    add(
        "proof_iat_too_old",
        "iat 61 s before now (window 60 s).",
        claims_with("iat", json!(NOW - 61)),
        p,
        "iat_too_old",
    );
    add(
        "proof_iat_in_future",
        "iat 61 s after now (window 60 s).",
        claims_with("iat", json!(NOW + 61)),
        p,
        "iat_in_future",
    );

    // --- signature
    add(
        "proof_signed_by_another_key",
        "Signed by another key than the jwk in its header.",
        sign_json(&hdr, &claims, &g.other_device),
        p,
        "invalid_signature",
    );
    let mut flipped = signature_bytes(&proof);
    flipped[0] ^= 0x01;
    add(
        "proof_signature_bit_flip",
        "One bit of R flipped.",
        with_signature(&proof, &b64::encode(flipped)),
        p,
        "invalid_signature",
    );
    let mut moved = claims.clone();
    moved["htu"] = json!("https://api.example.com/orders");
    moved["iat"] = json!(NOW + 1);
    let (_, sig) = proof.rsplit_once('.').unwrap();
    add(
        "proof_claims_changed_after_signing",
        "iat changed after signing, old signature kept.",
        format!("{}.{sig}", input(&hdr.to_string(), &moved.to_string())),
        p,
        "invalid_signature",
    );

    // --- ath (the access token is valid; the proof does not match it)
    let add_t = |out: &mut Vec<Value>,
                 name: &str,
                 description: &str,
                 proof: String,
                 token: &str,
                 error: &str,
                 code: &str| {
        out.push(invalid(
            with_token(case(name, description, proof), token, &jwks),
            error,
            code,
        ));
    };
    add_t(
        &mut out,
        "proof_ath_missing",
        "An access token is sent, the proof has no ath.",
        proof.clone(),
        &token,
        p,
        "ath_missing",
    );
    let mut wrong_ath = claims.clone();
    wrong_ath["ath"] = json!(access_token_hash("another token"));
    add_t(
        &mut out,
        "proof_ath_mismatch",
        "ath is the hash of another token.",
        sign_json(&hdr, &wrong_ath, dev),
        &token,
        p,
        "ath_mismatch",
    );

    // --- access tokens: each proof matches its token (ath), so the token check decides
    let th = g.token_header();
    let tp = g.token_payload();
    let signed_token =
        |header: &Value, payload: &Value, key: &SigningKey| sign_json(header, payload, key);
    let token_case =
        |out: &mut Vec<Value>, name: &str, description: &str, bad: String, code: &str| {
            let proof = g.proof(Some(&bad));
            out.push(invalid(
                with_token(case(name, description, proof), &bad, &jwks),
                t,
                code,
            ));
        };
    let mut h = th.clone();
    h["alg"] = json!("none");
    token_case(
        &mut out,
        "token_alg_none",
        "Access token with alg none.",
        signed_token(&h, &tp, &g.server),
        "unsupported_alg",
    );
    let mut h = th.clone();
    h["alg"] = json!("HS256");
    let hs_input = input(&h.to_string(), &tp.to_string());
    let mac = hmac_sha256(g.server.verifying_key().as_bytes(), hs_input.as_bytes());
    token_case(
        &mut out,
        "token_alg_hs256",
        "Access token with alg HS256, MAC keyed with the server's public key.",
        format!("{hs_input}.{}", b64::encode(mac)),
        "unsupported_alg",
    );
    let mut h = th.clone();
    h["typ"] = json!("JWT");
    token_case(
        &mut out,
        "token_typ_jwt",
        "Access token with typ JWT.",
        signed_token(&h, &tp, &g.server),
        "invalid_typ",
    );
    let mut h = th.clone();
    h["typ"] = json!("dpop+jwt");
    token_case(
        &mut out,
        "token_typ_dpop_jwt",
        "A proof's typ on an access token.",
        signed_token(&h, &tp, &g.server),
        "invalid_typ",
    );
    let mut h = th.clone();
    h.as_object_mut().unwrap().remove("kid");
    token_case(
        &mut out,
        "token_kid_missing",
        "Access token without kid.",
        signed_token(&h, &tp, &g.server),
        "missing_claim",
    );
    let mut pl = tp.clone();
    pl.as_object_mut().unwrap().remove("cnf");
    token_case(
        &mut out,
        "token_cnf_missing",
        "Access token without cnf (a bearer token).",
        signed_token(&th, &pl, &g.server),
        "missing_claim",
    );
    let mut pl = tp.clone();
    pl["exp"] = json!("soon");
    token_case(
        &mut out,
        "token_exp_string",
        "exp as a string.",
        signed_token(&th, &pl, &g.server),
        "invalid_claim",
    );
    let mut pl = tp.clone();
    pl["cnf"]["jkt"] = json!(jkt(&g.other_device));
    token_case(
        &mut out,
        "token_jkt_mismatch",
        "The token is bound to another device key.",
        signed_token(&th, &pl, &g.server),
        "jkt_mismatch",
    );
    let mut h = th.clone();
    h["kid"] = json!("kb-vectors-other");
    token_case(
        &mut out,
        "token_unknown_kid",
        "Signed by a key the JWKS does not hold.",
        signed_token(&h, &tp, &g.other_server),
        "unknown_kid",
    );
    token_case(
        &mut out,
        "token_signed_by_another_key",
        "Names the server's kid but is signed by another key.",
        signed_token(&th, &tp, &g.other_server),
        "invalid_signature",
    );
    let mut pl = tp.clone();
    pl["sub"] = json!("admin");
    let (_, good_sig) = token.rsplit_once('.').unwrap();
    token_case(
        &mut out,
        "token_claims_changed_after_signing",
        "sub changed after signing.",
        format!("{}.{good_sig}", input(&th.to_string(), &pl.to_string())),
        "invalid_signature",
    );
    token_case(
        &mut out,
        "token_signature_s_not_below_l",
        "The token's signature with S + L.",
        malleate(&token),
        "non_canonical_signature",
    );
    let mut pl = tp.clone();
    pl["exp"] = json!(NOW);
    token_case(
        &mut out,
        "token_expired",
        "exp equals now.",
        signed_token(&th, &pl, &g.server),
        "token_expired",
    );
    let mut pl = tp.clone();
    pl["iat"] = json!(NOW + 120);
    pl["exp"] = json!(NOW + 420);
    token_case(
        &mut out,
        "token_not_yet_valid",
        "iat 120 s in the future.",
        signed_token(&th, &pl, &g.server),
        "token_not_yet_valid",
    );
    let dup = format!(r#"{{"alg":"EdDSA","kid":"{SERVER_KID}","typ":"at+jwt"}}"#);
    let dup_payload = tp
        .to_string()
        .replacen("\"sub\":", "\"sub\":\"admin\",\"sub\":", 1);
    token_case(
        &mut out,
        "token_payload_duplicate_sub",
        "The token names sub twice.",
        sign_raw(&dup, &dup_payload, &g.server),
        "duplicate_json_member",
    );

    out.extend(vectors_es256::invalid_cases(g, &jwks));
    json!({
        "description": "Requests keybound must reject, each with the error and the precise \
            error_code `keybound verify` reports.",
        "cases": out,
    })
}
