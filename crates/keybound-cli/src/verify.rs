//! `keybound verify`: the protocol core's ordered pure checks on one proof (and access
//! token), with the outcome as JSON.

use std::collections::HashMap;

use keybound_proto::ed25519_dalek::VerifyingKey;
use keybound_proto::{
    CheckError, CheckedRequest, Credential, ErrorBody, ProtoError, RequestContext, check_request,
};
use serde_json::{Map, Value, json};

/// What to verify and against what.
pub(crate) struct VerifyInput<'a> {
    /// The request as the service saw it, with `now` and the allowed skew.
    pub(crate) ctx: RequestContext<'a>,
    /// The `DPoP` proof.
    pub(crate) proof: &'a str,
    /// The access token and the keys that may have signed it.
    pub(crate) token: Option<(&'a str, &'a HashMap<String, VerifyingKey>)>,
}

/// Runs the checks: `Ok` with the verified claims as JSON, or the error body.
pub(crate) fn verify(input: &VerifyInput<'_>) -> Result<Value, ErrorBody> {
    let access_token = input.token.map(|(token, _)| token);
    let keys = input.token.map(|(_, keys)| keys);
    let checked = check_request(&input.ctx, input.proof, access_token, |token| {
        let key = keys
            .and_then(|keys| keys.get(token.kid()))
            .ok_or(ProtoError::UnknownKid)?;
        token.verify_signature(key)
    })
    .map_err(|e| error_body(&e))?;
    Ok(verified_json(&checked))
}

/// Maps a failed check to keybound's JSON error body: `error` is the RFC 9449 / RFC 6750
/// error of the credential that failed, `error_code` the precise stable code. Kept in
/// one place so it can follow the server's mapping exactly.
pub(crate) fn error_body(err: &CheckError) -> ErrorBody {
    let error = match err.credential {
        Credential::Proof => "invalid_dpop_proof",
        Credential::AccessToken => "invalid_token",
    };
    ErrorBody {
        error: error.to_owned(),
        error_description: err.error.to_string(),
        error_code: err.error.code().to_owned(),
    }
}

/// The verified claims: the proof key's thumbprint, the proof's claims and, when a
/// token was sent, the token's `kid` and claims.
pub(crate) fn verified_json(checked: &CheckedRequest) -> Value {
    let p = checked.proof.claims();
    let mut proof = Map::new();
    proof.insert("jti".into(), json!(p.jti));
    proof.insert("htm".into(), json!(p.htm));
    proof.insert("htu".into(), json!(p.htu));
    proof.insert("iat".into(), json!(p.iat));
    if let Some(ath) = &p.ath {
        proof.insert("ath".into(), json!(ath));
    }
    if let Some(nonce) = &p.nonce {
        proof.insert("nonce".into(), json!(nonce));
    }
    let mut out = Map::new();
    out.insert("jkt".into(), json!(checked.jkt));
    out.insert("proof".into(), Value::Object(proof));
    if let Some(token) = &checked.token {
        let c = token.claims();
        out.insert(
            "access_token".into(),
            json!({
                "kid": token.kid(),
                "iss": c.iss,
                "sub": c.sub,
                "sid": c.sid,
                "jti": c.jti,
                "iat": c.iat,
                "exp": c.exp,
                "cnf": {"jkt": c.jkt},
            }),
        );
    }
    Value::Object(out)
}
