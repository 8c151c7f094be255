//! `keybound verify`: the protocol core's ordered pure checks on one proof (and access
//! token), with the outcome as JSON.

use std::collections::HashMap;

use keybound_proto::ed25519_dalek::VerifyingKey;
use keybound_proto::{
    AccessToken, CheckedRequest, ErrorBody, ProtoError, RequestContext, check_request,
};
use serde::Serialize;

/// What to verify and against what.
pub(crate) struct VerifyInput<'a> {
    /// The request as the service saw it, with `now` and the allowed skew.
    pub(crate) ctx: RequestContext<'a>,
    /// The `DPoP` proof.
    pub(crate) proof: &'a str,
    /// The access token and the keys that may have signed it.
    pub(crate) token: Option<(&'a str, &'a HashMap<String, VerifyingKey>)>,
}

/// Runs the checks: `Ok` with the request that passed them, or the error body.
pub(crate) fn verify(input: &VerifyInput<'_>) -> Result<CheckedRequest, ErrorBody> {
    let access_token = input.token.map(|(token, _)| token);
    let keys = input.token.map(|(_, keys)| keys);
    check_request(
        &input.ctx,
        input.proof,
        access_token,
        &mut |token: &AccessToken| {
            let key = keys
                .and_then(|keys| keys.get(token.kid()))
                .ok_or(ProtoError::UnknownKid)?;
            token.verify_signature(key)
        },
    )
    .map_err(|e| keybound_server::Rejection::from(e).body())
}

/// The verified claims, as `keybound verify` prints them: the proof key's thumbprint,
/// the proof's claims and, when a token was sent, the token's `kid` and claims.
#[derive(Debug, Serialize)]
pub(crate) struct Verified<'a> {
    jkt: &'a str,
    proof: VerifiedProof<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<VerifiedToken<'a>>,
}

#[derive(Debug, Serialize)]
struct VerifiedProof<'a> {
    jti: &'a str,
    htm: &'a str,
    htu: &'a str,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct VerifiedToken<'a> {
    kid: &'a str,
    iss: &'a str,
    sub: &'a str,
    sid: &'a str,
    jti: &'a str,
    iat: i64,
    exp: i64,
    cnf: Cnf<'a>,
}

#[derive(Debug, Serialize)]
struct Cnf<'a> {
    jkt: &'a str,
}

impl<'a> Verified<'a> {
    /// The printable view of a request that passed the checks.
    pub(crate) fn new(checked: &'a CheckedRequest) -> Self {
        let p = checked.proof.claims();
        Self {
            jkt: &checked.jkt,
            proof: VerifiedProof {
                jti: &p.jti,
                htm: &p.htm,
                htu: &p.htu,
                iat: p.iat,
                ath: p.ath.as_deref(),
                nonce: p.nonce.as_deref(),
            },
            access_token: checked.token.as_ref().map(|token| {
                let c = token.claims();
                VerifiedToken {
                    kid: token.kid(),
                    iss: &c.iss,
                    sub: &c.sub,
                    sid: &c.sid,
                    jti: &c.jti,
                    iat: c.iat,
                    exp: c.exp,
                    cnf: Cnf { jkt: &c.jkt },
                }
            }),
        }
    }
}
