//! Property tests: build→parse round trips of proofs and access tokens, rejection of any
//! single-byte change to a valid proof or token, and idempotent `htu` normalisation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ed25519_dalek::SigningKey;
use keybound_proto::{
    AccessToken, AccessTokenClaims, CheckError, CheckedRequest, Credential, DpopProof, MAX_JWS_LEN,
    ProofBuilder, ProtoError, PublicJwk, RequestContext, Signer as _, access_token_hash, b64,
    check_request, normalize_htu, sign_access_token,
};
use proptest::prelude::*;

const KID: &str = "kb-prop";

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"
        ])
        .prop_map(str::to_owned),
        "[A-Z][A-Z0-9_-]{0,11}",
    ]
}

/// Absolute http(s) URLs with mixed-case scheme and host, optional (default or other)
/// port, dot segments, query and fragment.
fn url() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec!["http", "https", "HTTPS", "Http"]);
    let host = prop_oneof![
        "[a-zA-Z0-9]{1,12}(\\.[a-zA-Z]{2,6}){0,2}",
        Just("127.0.0.1".to_owned()),
        Just("[::1]".to_owned()),
    ];
    let port = prop_oneof![
        Just(String::new()),
        Just(":80".to_owned()),
        Just(":443".to_owned()),
        (1u16..).prop_map(|p| format!(":{p}")),
    ];
    let segment = prop_oneof![
        "[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,10}",
        Just(".".to_owned()),
        Just("..".to_owned()),
    ];
    let path = prop::collection::vec(segment, 0..5).prop_map(|s| {
        s.iter().fold(String::new(), |mut acc, seg| {
            acc.push('/');
            acc.push_str(seg);
            acc
        })
    });
    let tail = prop_oneof![
        Just(String::new()),
        "\\?[a-z0-9=&]{0,12}",
        "#[a-z0-9]{0,8}",
        "\\?[a-z]{1,4}#[a-z]{0,4}",
    ];
    (scheme, host, port, path, tail).prop_map(|(s, h, p, path, t)| format!("{s}://{h}{p}{path}{t}"))
}

fn key() -> impl Strategy<Value = SigningKey> {
    any::<[u8; 32]>().prop_map(|seed| SigningKey::from_bytes(&seed))
}

/// Claim text: any Unicode, including quotes, backslashes and control characters,
/// which the JSON encoding must carry through unchanged.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{1,20}",
        "\\PC{1,24}",
        any::<String>().prop_filter("non-empty", |s| !s.is_empty())
    ]
}

fn ctx<'a>(method: &'a str, url: &'a str, now: i64) -> RequestContext<'a> {
    RequestContext {
        method,
        url,
        now,
        max_skew_secs: 60,
        max_jws_len: MAX_JWS_LEN,
    }
}

/// A valid request: a token signed by `server` bound to `device`, and a proof for it.
#[derive(Clone, Debug)]
struct Valid {
    method: String,
    url: String,
    now: i64,
    proof: String,
    token: String,
    server: SigningKey,
    device: SigningKey,
}

impl Valid {
    fn check(&self, proof: &str, token: &str) -> Result<CheckedRequest, CheckError> {
        let server = self.server.verifying_key();
        check_request(
            &ctx(&self.method, &self.url, self.now),
            proof,
            Some(token),
            &mut |t: &AccessToken| {
                if t.kid() != KID {
                    return Err(ProtoError::UnknownKid);
                }
                t.verify_signature(&server)
            },
        )
    }

    fn proof_for(&self, token: &str, jti: [u8; 16]) -> String {
        ProofBuilder::new(
            self.device.public_jwk(),
            &self.method,
            &self.url,
            self.now,
            jti,
        )
        .unwrap()
        .access_token(token)
        .sign(&self.device)
        .unwrap()
    }
}

fn valid() -> impl Strategy<Value = Valid> {
    (
        method(),
        url(),
        0i64..4_000_000_000,
        key(),
        key(),
        any::<[u8; 16]>(),
        text(),
        text(),
    )
        .prop_map(|(method, url, now, device, server, jti, sub, sid)| {
            let claims = AccessTokenClaims {
                iss: "https://issuer.example".into(),
                sub,
                sid,
                jti: b64::encode(jti),
                iat: now - 5,
                exp: now + 300,
                jkt: device.public_jwk().thumbprint(),
            };
            let token = sign_access_token(&claims, KID, &server).unwrap();
            let mut v = Valid {
                method,
                url,
                now,
                proof: String::new(),
                token,
                server,
                device,
            };
            v.proof = v.proof_for(&v.token.clone(), jti);
            v
        })
}

/// Replaces byte `index % len` of `text` by `byte` (which must differ); `None` when the
/// result is not UTF-8 (it could not be an HTTP header value passed as text).
fn mutate(text: &str, index: usize, byte: u8) -> Option<String> {
    let mut bytes = text.as_bytes().to_vec();
    let i = index % bytes.len();
    if bytes[i] == byte {
        return None;
    }
    bytes[i] = byte;
    String::from_utf8(bytes).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn proof_build_parse_round_trip(
        method in method(),
        url in url(),
        iat in -1_000_000i64..8_000_000_000,
        device in key(),
        jti in any::<[u8; 16]>(),
        access_token in proptest::option::of("[A-Za-z0-9._~+/=-]{1,200}"),
        nonce in proptest::option::of(text()),
    ) {
        let mut builder = ProofBuilder::new(device.public_jwk(), &method, &url, iat, jti).unwrap();
        if let Some(at) = &access_token {
            builder = builder.access_token(at);
        }
        if let Some(n) = &nonce {
            builder = builder.nonce(n);
        }
        let built = builder.claims().clone();
        let proof = builder.sign(&device).unwrap();

        let parsed = DpopProof::parse(&proof).unwrap();
        prop_assert_eq!(parsed.claims(), &built);
        prop_assert_eq!(&parsed.claims().htm, &method);
        prop_assert_eq!(&parsed.claims().htu, &normalize_htu(&url).unwrap());
        prop_assert_eq!(parsed.claims().iat, iat);
        prop_assert_eq!(&parsed.claims().jti, &b64::encode(jti));
        prop_assert_eq!(parsed.claims().ath.clone(), access_token.as_deref().map(access_token_hash));
        prop_assert_eq!(&parsed.claims().nonce, &nonce);
        prop_assert_eq!(parsed.jwk(), &device.public_jwk());
        prop_assert_eq!(parsed.as_str(), proof.as_str());
        parsed.verify_signature().unwrap();

        let checked = check_request(&ctx(&method, &url, iat), &proof, None, &mut |_: &AccessToken| {
            Err(ProtoError::UnknownKid)
        })
        .unwrap();
        prop_assert_eq!(checked.jkt, device.public_jwk().thumbprint());
    }

    #[test]
    fn token_sign_parse_round_trip(
        server in key(),
        device in key(),
        kid in "[A-Za-z0-9_-]{1,40}",
        iss in text(),
        sub in text(),
        sid in text(),
        jti in text(),
        iat in -1_000_000i64..8_000_000_000,
        ttl in 1i64..1_000_000,
    ) {
        let claims = AccessTokenClaims {
            iss, sub, sid, jti, iat,
            exp: iat + ttl,
            jkt: device.public_jwk().thumbprint(),
        };
        let token = sign_access_token(&claims, &kid, &server).unwrap();
        let parsed = AccessToken::parse(&token).unwrap();
        prop_assert_eq!(parsed.claims(), &claims);
        prop_assert_eq!(parsed.kid(), kid.as_str());
        prop_assert_eq!(parsed.as_str(), token.as_str());
        parsed.verify_signature(&server.verifying_key()).unwrap();
        parsed.check_time(iat, 0).unwrap();
        prop_assert_eq!(parsed.check_time(iat + ttl, 0), Err(ProtoError::TokenExpired));
        let other = SigningKey::from_bytes(&[0x42; 32]);
        prop_assume!(other.verifying_key() != server.verifying_key());
        prop_assert_eq!(
            parsed.verify_signature(&other.verifying_key()),
            Err(ProtoError::InvalidSignature)
        );
    }

    #[test]
    fn any_single_byte_change_to_a_proof_is_rejected(
        v in valid(),
        index in any::<usize>(),
        byte in 0u8..=0x7f,
    ) {
        v.check(&v.proof, &v.token).unwrap();
        let Some(bad) = mutate(&v.proof, index, byte) else { return Ok(()); };
        let err = v.check(&bad, &v.token).unwrap_err();
        // A change inside the header's jwk can make another valid key; the token is
        // bound to the original one, so the cnf.jkt check (an access-token error) comes
        // first. Everything else fails on the proof.
        prop_assert!(
            err.credential == Credential::Proof || err.error == ProtoError::JktMismatch,
            "{:?}",
            err
        );
    }

    #[test]
    fn any_single_byte_change_to_a_token_is_rejected(
        v in valid(),
        index in any::<usize>(),
        byte in 0u8..=0x7f,
        jti in any::<[u8; 16]>(),
    ) {
        let Some(bad) = mutate(&v.token, index, byte) else { return Ok(()); };
        // The proof no longer matches the token (ath).
        prop_assert!(v.check(&v.proof, &bad).is_err());
        // Even with a fresh proof by the device key that binds the changed token, the
        // token itself is rejected: only the server key can make a token.
        let proof = v.proof_for(&bad, jti);
        let err = v.check(&proof, &bad).unwrap_err();
        prop_assert_eq!(err.credential, Credential::AccessToken, "{:?}", err.error);
    }

    #[test]
    fn base64url_encoding_matches_the_base64_crate_and_decodes_back(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        use base64::Engine as _;
        let text = b64::encode(&bytes);
        prop_assert_eq!(&text, &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes));
        prop_assert_eq!(b64::decode(&text, "x").unwrap(), bytes);
    }

    #[test]
    fn a_proof_for_a_normalised_htu_is_the_proof_for_its_url(url in url(), jti in any::<[u8; 16]>()) {
        let jwk = SigningKey::from_bytes(&[3u8; 32]).public_jwk();
        let from_url = ProofBuilder::new(jwk, "GET", &url, 1_700_000_000, jti).unwrap();
        let htu = normalize_htu(&url).unwrap();
        let from_htu = ProofBuilder::for_htu(jwk, "GET", htu, 1_700_000_000, jti);
        prop_assert_eq!(from_url.signing_input(), from_htu.signing_input());
    }

    #[test]
    fn normalize_htu_is_idempotent_on_urls(url in url()) {
        let once = normalize_htu(&url).unwrap();
        prop_assert_eq!(normalize_htu(&once).unwrap(), once.clone());
        prop_assert!(!once.contains('?') && !once.contains('#'));
    }

    #[test]
    fn normalize_htu_is_idempotent_on_any_text(
        text in prop_oneof![
            "[hH][tT][tT][pP][sS]?://[ -~]{0,40}",
            "[hH][tT][tT][pP][sS]?://[a-z0-9.:\\[\\]@/?#%-]{0,30}",
            any::<String>(),
        ],
    ) {
        if let Ok(once) = normalize_htu(&text) {
            prop_assert_eq!(normalize_htu(&once), Ok(once.clone()), "from {:?}", text);
        }
    }
}

#[test]
fn the_thumbprint_is_stable_under_jwk_member_order_and_extras() {
    let key = SigningKey::from_bytes(&[5u8; 32]);
    let x = b64::encode(key.verifying_key().as_bytes());
    let a =
        PublicJwk::from_json(&serde_json::json!({"x": x, "kty": "OKP", "crv": "Ed25519"})).unwrap();
    let b = PublicJwk::from_json(
        &serde_json::json!({"kty": "OKP", "use": "sig", "crv": "Ed25519", "kid": "k", "x": x}),
    )
    .unwrap();
    assert_eq!(a.thumbprint(), b.thumbprint());
    assert_eq!(a.thumbprint(), key.public_jwk().thumbprint());
}
