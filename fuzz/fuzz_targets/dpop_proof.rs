//! DPoP proofs from arbitrary text, through every pure check: `DpopProof` parsing and
//! its checks, the ordered `check_request` with an access token, and the server's
//! `verify_stateless`, which must give the same answer.
//!
//! Input: `\n`-separated fields `proof`, `method`, `url`, `now`, `max_skew`,
//! `access_token` (empty: none), `jwks` (the keys the token may be signed by; empty:
//! the vectors' server keys).
#![no_main]

use keybound_fuzz::{field, fields, vectors};
use keybound_proto::{
    AccessToken, CheckError, Credential, DpopProof, MAX_JWS_LEN, ProtoError, RequestContext,
    access_token_hash, check_request, normalize_htu,
};
use keybound_server::{DEFAULT_MAX_HEADER_LEN, KeyRing, Rejection, verify_stateless};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(f) = fields(data) else { return };
    let proof = field(&f, 0);
    let method = field(&f, 1);
    let url = field(&f, 2);
    let now: i64 = field(&f, 3).parse().unwrap_or(1_700_000_000);
    let max_skew: u64 = field(&f, 4).parse().unwrap_or(60);
    let token = Some(field(&f, 5)).filter(|t| !t.is_empty());
    let keys = match serde_json::from_str(field(&f, 6)) {
        Ok(jwks) => KeyRing::verifying_keys_from_jwks(&jwks).unwrap_or_default(),
        Err(_) => vectors().server_keys.clone(),
    };

    parsed_proof(proof);

    let ctx = RequestContext {
        method,
        url,
        now,
        max_skew_secs: max_skew,
        max_jws_len: MAX_JWS_LEN,
    };
    let checked = check_request(&ctx, proof, token, &mut |t: &AccessToken| {
        let key = keys.get(t.kid()).ok_or(ProtoError::UnknownKid)?;
        t.verify_signature(key)
    });
    let stateless = verify_stateless(method, url, proof, token, &keys, now, max_skew);
    match (&checked, &stateless) {
        (Ok(checked), Ok(claims)) => {
            // Holding no private key, a fuzzer can only get the vectors' own signed
            // texts accepted: anything else verifying would be malleability.
            assert!(
                vectors().signed_texts.contains(proof),
                "accepted a new proof"
            );
            if let Some(token) = token {
                assert!(
                    vectors().signed_texts.contains(token),
                    "accepted a new token"
                );
            }
            let claims_proof = checked.proof.claims();
            assert_eq!(claims_proof.htm, method);
            assert_eq!(
                normalize_htu(&claims_proof.htu).ok(),
                normalize_htu(url).ok()
            );
            assert_eq!(checked.jkt, checked.proof.thumbprint());
            assert_eq!(claims["jkt"].as_str(), Some(checked.jkt.as_str()));
            assert_eq!(checked.token.is_some(), token.is_some());
            if let Some(t) = &checked.token {
                assert_eq!(t.claims().jkt, checked.jkt);
                assert!(t.check_time(now, max_skew).is_ok());
            }
            assert!(checked.proof.verify_signature().is_ok());
        }
        (Err(err), Err(rejection)) => {
            // verify_stateless refuses texts above its header limit before parsing.
            let within = proof.len() <= DEFAULT_MAX_HEADER_LEN
                && token.is_none_or(|t| t.len() <= DEFAULT_MAX_HEADER_LEN);
            let body = rejection.body();
            if within {
                let expected = Rejection::from(err.clone());
                assert_eq!(rejection.code(), expected.code(), "{err:?}");
                let CheckError { credential, .. } = err;
                let error = if *credential == Credential::Proof {
                    "invalid_dpop_proof"
                } else {
                    "invalid_token"
                };
                assert_eq!(body.error, error);
            }
            for secret in [Some(proof), token].into_iter().flatten() {
                // A credential-like text (a compact JWS has dots; no message does),
                // not an input that happens to spell part of a message.
                if secret.len() >= 16 && secret.contains('.') {
                    assert!(
                        !body.error_description.contains(secret),
                        "echoed a credential"
                    );
                }
            }
        }
        (Err(_), Ok(_)) | (Ok(_), Err(_)) => {
            panic!("check_request {checked:?} but verify_stateless {stateless:?}")
        }
    }
});

/// The invariants of one parsed proof.
fn parsed_proof(text: &str) {
    let Ok(proof) = DpopProof::parse(text) else {
        return;
    };
    assert!(text.len() <= MAX_JWS_LEN);
    assert_eq!(proof.as_str(), text);
    let claims = proof.claims().clone();
    assert!(claims.jti.len() >= 16);
    assert!(!claims.htm.is_empty() && !claims.htu.is_empty());
    assert_eq!(proof.thumbprint(), proof.jwk().thumbprint());
    assert!(
        proof.jwk().decode().is_ok(),
        "accepted a weak or invalid key"
    );
    assert_eq!(
        proof.check_htm_htu(&claims.htm, &claims.htu).is_ok(),
        normalize_htu(&claims.htu).is_ok()
    );
    if let Ok(normal) = normalize_htu(&claims.htu) {
        assert!(proof.check_htm_htu(&claims.htm, &normal).is_ok());
        let other_method = format!("{}X", claims.htm);
        assert_eq!(
            proof.check_htm_htu(&other_method, &normal),
            Err(ProtoError::HtmMismatch)
        );
    }
    assert!(proof.check_iat(claims.iat, 0).is_ok());
    if claims.iat > i64::MIN {
        assert_eq!(
            proof.check_iat(claims.iat - 1, 0),
            Err(ProtoError::IatInFuture)
        );
    }
    if claims.iat < i64::MAX {
        assert_eq!(
            proof.check_iat(claims.iat + 1, 0),
            Err(ProtoError::IatTooOld)
        );
    }
    assert!(proof.check_ath(None).is_ok());
    match &claims.ath {
        None => assert_eq!(proof.check_ath(Some("t")), Err(ProtoError::AthMissing)),
        Some(ath) => {
            let ok = access_token_hash("t") == *ath;
            assert_eq!(proof.check_ath(Some("t")).is_ok(), ok);
        }
    }
    let again = DpopProof::parse(text).map(|p| p.claims().clone());
    assert_eq!(again.ok(), Some(claims));
}
