//! What `ProofBuilder` writes, `DpopProof` reads back unchanged, and the checks accept
//! for the request it was made for: the builder's JSON escaping against the strict
//! parser, on arbitrary methods, URLs, tokens and nonces.
//!
//! Input: `\n`-separated fields `method`, `url`, `iat`, `access_token` (empty: none)
//! and, when present, `nonce`. The signature is not made (a fixed canonical one is
//! used): signing is covered by the vectors and by `dpop_proof`.
#![no_main]

use keybound_fuzz::{field, fields};
use keybound_proto::ed25519_dalek::SigningKey;
use keybound_proto::{DpopProof, MAX_JWS_LEN, ProofBuilder, ProtoError, PublicJwk, normalize_htu};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(f) = fields(data) else { return };
    let method = field(&f, 0);
    let url = field(&f, 1);
    let iat: i64 = field(&f, 2).parse().unwrap_or(1_700_000_000);
    let token = Some(field(&f, 3)).filter(|t| !t.is_empty());
    let nonce = f.get(4).copied();
    let jti = [0x5a; 16];
    let jwk = PublicJwk::from_verifying_key(&SigningKey::from_bytes(&[7; 32]).verifying_key());

    let builder = match ProofBuilder::new(jwk, method, url, iat, jti) {
        Ok(builder) => builder,
        Err(err) if method.is_empty() => {
            assert_eq!(err, ProtoError::InvalidClaim { name: "htm" });
            return;
        }
        Err(err) => {
            assert_eq!(
                Err(err),
                normalize_htu(url),
                "the builder refused a valid URL"
            );
            return;
        }
    };
    let mut builder = builder;
    if let Some(token) = token {
        builder = builder.access_token(token);
    }
    if let Some(nonce) = nonce {
        builder = builder.nonce(nonce);
    }
    let text = builder.finish(&[0; 64]);
    let proof = match DpopProof::parse(&text) {
        Ok(proof) => proof,
        Err(ProtoError::TooLarge { .. }) if text.len() > MAX_JWS_LEN => return,
        Err(err) => panic!("the builder wrote a proof the parser refuses: {err:?}"),
    };
    assert_eq!(proof.claims(), builder.claims());
    assert_eq!(proof.jwk(), &jwk);
    proof
        .check_htm_htu(method, url)
        .unwrap_or_else(|e| panic!("check_htm_htu: {e:?}"));
    assert!(proof.check_iat(iat, 0).is_ok());
    assert!(proof.check_ath(token).is_ok());
});
