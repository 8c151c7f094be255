//! The verifier's stateless checks on one request, for tools (`keybound verify`).

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;
use keybound_proto::{
    AccessToken, Credential, DpopProof, ProtoError, RequestContext, check_request,
};
use serde_json::{Value, json};

use super::DEFAULT_MAX_HEADER_LEN;
use crate::Rejection;

/// Runs the verifier's stateless checks on one request, for tools such as
/// `keybound verify`: the same pipeline as
/// [`Verifier::verify`](super::Verifier::verify) (header size limit, JOSE parsing,
/// `htm`/`htu`, `iat` within `max_skew_secs` of `now`, `ath`, `cnf.jkt`, token
/// signature by the key named by `kid` in `keys`, token expiry, proof signature) but
/// without the stateful checks: no replay store, no nonce, no session state.
///
/// `url` is the full request URL (query and fragment are ignored); `now` is in seconds
/// since the epoch. Without an access token only the proof is checked (a login or
/// refresh request).
///
/// Returns the verified claims as JSON:
/// `{"jkt", "jwk", "proof": {jti, htm, htu, iat, ath?, nonce?}, "access_token": {kid,
/// iss, sub, sid, jti, iat, exp, cnf: {jkt}} | null}`.
///
/// ```
/// use std::collections::HashMap;
/// use keybound_proto::{ProofBuilder, Signer};
/// let device = ed25519_dalek::SigningKey::from_bytes(&[2u8; 32]);
/// let proof = ProofBuilder::new(device.public_jwk(), "POST", "https://api.example.com/session/refresh", 1_700_000_000, [3u8; 16])
///     .unwrap()
///     .sign(&device)
///     .unwrap();
/// let claims = keybound_server::verify_stateless(
///     "POST", "https://api.example.com/session/refresh", &proof, None,
///     &HashMap::new(), 1_700_000_030, 60,
/// ).unwrap();
/// assert_eq!(claims["jkt"], device.public_jwk().thumbprint());
/// assert_eq!(claims["proof"]["htm"], "POST");
///
/// let late = keybound_server::verify_stateless(
///     "POST", "https://api.example.com/session/refresh", &proof, None,
///     &HashMap::new(), 1_700_000_061, 60,
/// ).unwrap_err();
/// assert_eq!(late.code(), "iat_too_old");
/// ```
pub fn verify_stateless(
    method: &str,
    url: &str,
    proof: &str,
    access_token: Option<&str>,
    keys: &HashMap<String, VerifyingKey>,
    now: i64,
    max_skew_secs: u64,
) -> Result<Value, Rejection> {
    let limit = DEFAULT_MAX_HEADER_LEN;
    if proof.len() > limit {
        return Err(Rejection::HeaderTooLarge {
            credential: Credential::Proof,
            limit,
        });
    }
    if access_token.is_some_and(|t| t.len() > limit) {
        return Err(Rejection::HeaderTooLarge {
            credential: Credential::AccessToken,
            limit,
        });
    }
    let ctx = RequestContext {
        method,
        url,
        now,
        max_skew_secs,
        max_jws_len: limit,
    };
    let checked = check_request(&ctx, proof, access_token, &mut |token: &AccessToken| {
        let key = keys.get(token.kid()).ok_or(ProtoError::UnknownKid)?;
        token.verify_signature(key)
    })?;
    Ok(claims_json(
        &checked.proof,
        checked.token.as_ref(),
        &checked.jkt,
    ))
}

fn claims_json(proof: &DpopProof, token: Option<&AccessToken>, jkt: &str) -> Value {
    let p = proof.claims();
    let mut proof_claims = json!({"jti": p.jti, "htm": p.htm, "htu": p.htu, "iat": p.iat});
    if let Value::Object(map) = &mut proof_claims {
        if let Some(ath) = &p.ath {
            map.insert("ath".into(), Value::String(ath.clone()));
        }
        if let Some(nonce) = &p.nonce {
            map.insert("nonce".into(), Value::String(nonce.clone()));
        }
    }
    let token_claims = token.map_or(Value::Null, |t| {
        let c = t.claims();
        json!({
            "kid": t.kid(), "iss": c.iss, "sub": c.sub, "sid": c.sid, "jti": c.jti,
            "iat": c.iat, "exp": c.exp, "cnf": {"jkt": c.jkt},
        })
    });
    json!({
        "jkt": jkt,
        "jwk": proof.jwk().to_json(),
        "proof": proof_claims,
        "access_token": token_claims,
    })
}
