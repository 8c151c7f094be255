//! Access tokens (`at+jwt`): arbitrary text through `AccessToken::parse`, its time check
//! and signature verification; and claims made from the same bytes signed with
//! `sign_access_token`, which must read back unchanged and verify.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use keybound_fuzz::vectors;
use keybound_proto::ed25519_dalek::SigningKey;
use keybound_proto::{AccessToken, AccessTokenClaims, MAX_JWS_LEN, ProtoError, sign_access_token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        parsed(text);
    }
    let mut u = Unstructured::new(data);
    if let Ok(claims) = Claims::arbitrary(&mut u) {
        round_trip(claims);
    }
});

fn parsed(text: &str) {
    let Ok(token) = AccessToken::parse(text) else {
        return;
    };
    assert!(text.len() <= MAX_JWS_LEN);
    assert_eq!(token.as_str(), text);
    assert!(!token.kid().is_empty());
    let c = token.claims().clone();
    for value in [&c.iss, &c.sub, &c.sid, &c.jti, &c.jkt] {
        assert!(!value.is_empty());
    }
    if c.exp > i64::MIN {
        assert!(token.check_time(c.exp - 1, u64::MAX).is_ok() || c.iat > c.exp - 1);
    }
    assert_eq!(token.check_time(c.exp, 0), Err(ProtoError::TokenExpired));
    for key in vectors().server_keys.values() {
        if token.verify_signature(key).is_ok() {
            assert!(
                vectors().signed_texts.contains(text),
                "a new token verified: malleability"
            );
        }
    }
    assert_eq!(token.clone().into_claims(), c);
    let again = AccessToken::parse(text).map(AccessToken::into_claims);
    assert_eq!(again.ok(), Some(c));
}

/// Claims as a server would put into a token.
#[derive(Arbitrary, Debug)]
struct Claims {
    iss: String,
    sub: String,
    sid: String,
    jti: String,
    iat: i64,
    exp: i64,
    jkt: String,
    kid: String,
}

fn round_trip(c: Claims) {
    let claims = AccessTokenClaims {
        iss: c.iss,
        sub: c.sub,
        sid: c.sid,
        jti: c.jti,
        iat: c.iat,
        exp: c.exp,
        jkt: c.jkt,
    };
    let key = SigningKey::from_bytes(&[9; 32]);
    let Ok(text) = sign_access_token(&claims, &c.kid, &key) else {
        panic!("signing failed")
    };
    let strings_present = [
        &claims.iss,
        &claims.sub,
        &claims.sid,
        &claims.jti,
        &claims.jkt,
        &c.kid,
    ]
    .iter()
    .all(|s| !s.is_empty());
    match AccessToken::parse(&text) {
        Ok(token) => {
            assert!(strings_present);
            assert_eq!(token.claims(), &claims);
            assert_eq!(token.kid(), c.kid);
            assert!(token.verify_signature(&key.verifying_key()).is_ok());
        }
        Err(ProtoError::TooLarge { .. }) => assert!(text.len() > MAX_JWS_LEN),
        // Empty strings are refused by the parser (`invalid_claim`); a server never
        // signs them.
        Err(ProtoError::InvalidClaim { .. }) => assert!(!strings_present),
        Err(err) => panic!("a signed token does not parse: {err:?}"),
    }
}
