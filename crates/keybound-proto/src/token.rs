//! Access tokens (RFC 9068 `at+jwt`) bound to a DPoP key (`cnf.jkt`).

#[allow(unused_imports)]
use crate::prelude::*;
use alloc::sync::Arc;

use ed25519_dalek::VerifyingKey;
use serde_json::json;

use crate::json::Nested;
use crate::jws::{self, Jws, Signer};
use crate::{MAX_JWS_LEN, ProofAlg, ProofAlgs, ProtoError};

/// The `typ` of an access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The `typ` of a DBSC bound cookie's value: the same claims as an access token, with
/// `cnf.jkt` the thumbprint of the browser's DBSC key, and `gen`, the session
/// generation it was issued for (a sensitive action moves the session on, and the
/// cookies of earlier generations are refused). A different `typ` keeps a cookie from
/// being accepted as an access token and the other way round.
pub const BOUND_COOKIE_TYP: &str = "kb-dbsc+jwt";

/// The claims of a keybound access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// User id.
    pub sub: String,
    /// Session id.
    pub sid: String,
    /// Unique token id.
    pub jti: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Thumbprint of the key the token is bound to (`cnf.jkt`).
    pub jkt: String,
}

/// A parsed access token, signature not yet verified.
///
/// Cheap to clone (one reference count): a server may keep the tokens it verified and
/// hand them back to [`check_request`](crate::check_request) instead of
/// parsing the same text again.
#[derive(Clone, Debug)]
pub struct AccessToken {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    kid: String,
    claims: AccessTokenClaims,
    /// `gen`, for a bound cookie.
    generation: Option<u64>,
    jws: Jws,
}

impl AccessToken {
    /// Parses with the default size limit.
    pub fn parse(text: &str) -> Result<Self, ProtoError> {
        Self::parse_with_limit(text, MAX_JWS_LEN)
    }

    /// Parses an access token: compact JWS, `alg` `EdDSA`, `typ` `at+jwt` (or
    /// `application/at+jwt`), a `kid`, and the claims `iss`, `sub`, `sid`, `jti`, `iat`,
    /// `exp`, `cnf.jkt` with the right types.
    pub fn parse_with_limit(text: &str, max_len: usize) -> Result<Self, ProtoError> {
        Self::parse_typed(text, max_len, &[ACCESS_TOKEN_TYP, "application/at+jwt"])
    }

    /// Parses the value of a DBSC bound cookie: as an access token, but `typ` must be
    /// [`BOUND_COOKIE_TYP`] (and an access token is refused with `invalid_typ`), and
    /// the claim `gen` (a non-negative integer) is required.
    pub fn parse_bound_cookie(text: &str) -> Result<Self, ProtoError> {
        Self::parse_typed(text, MAX_JWS_LEN, &[BOUND_COOKIE_TYP])
    }

    fn parse_typed(text: &str, max_len: usize, typs: &[&'static str]) -> Result<Self, ProtoError> {
        let cookie = typs[0] == BOUND_COOKIE_TYP;
        let (jws, (kid, claims, generation)) = Jws::parse(
            text,
            max_len,
            ProofAlgs::only(ProofAlg::EdDSA),
            typs,
            typs[0],
            |header, p| {
                let kid = jws::str_member(header.kid, "kid")?.into_owned();
                let jkt = match p.cnf {
                    Nested::Absent => return Err(ProtoError::MissingClaim { name: "cnf" }),
                    Nested::Object(cnf) => jws::str_member(cnf.jkt, "jkt")?.into_owned(),
                    Nested::NotObject => return Err(ProtoError::InvalidClaim { name: "cnf" }),
                };
                let claims = AccessTokenClaims {
                    iss: jws::str_member(p.iss, "iss")?.into_owned(),
                    sub: jws::str_member(p.sub, "sub")?.into_owned(),
                    sid: jws::str_member(p.sid, "sid")?.into_owned(),
                    jti: jws::str_member(p.jti, "jti")?.into_owned(),
                    iat: jws::int_member(&p.iat, "iat")?,
                    exp: jws::int_member(&p.exp, "exp")?,
                    jkt,
                };
                let generation = if cookie {
                    let value = jws::int_member(&p.generation, "gen")?;
                    Some(
                        u64::try_from(value)
                            .map_err(|_| ProtoError::InvalidClaim { name: "gen" })?,
                    )
                } else {
                    None
                };
                Ok((kid, claims, generation))
            },
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                kid,
                claims,
                generation,
                jws,
            }),
        })
    }

    /// The key id from the header.
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The claims (not yet verified).
    pub fn claims(&self) -> &AccessTokenClaims {
        &self.inner.claims
    }

    /// A bound cookie's `gen`: the session generation it was issued for (`None` for
    /// an access token).
    pub fn generation(&self) -> Option<u64> {
        self.inner.generation
    }

    /// The claims, consuming the token (no copy unless the token is shared).
    pub fn into_claims(self) -> AccessTokenClaims {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner.claims,
            Err(shared) => shared.claims.clone(),
        }
    }

    /// The compact token text.
    pub fn as_str(&self) -> &str {
        self.inner.jws.text()
    }

    /// Verifies the signature with the server key named by `kid` (`verify_strict`).
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), ProtoError> {
        self.inner.jws.verify_ed25519(key)
    }

    /// The token must not be expired at `now`, nor issued after `now + leeway_secs`.
    pub fn check_time(&self, now: i64, leeway_secs: u64) -> Result<(), ProtoError> {
        if now >= self.inner.claims.exp {
            return Err(ProtoError::TokenExpired);
        }
        let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
        if self.inner.claims.iat > now.saturating_add(leeway) {
            return Err(ProtoError::TokenNotYetValid);
        }
        Ok(())
    }
}

/// Signs an access token with the server key `kid`.
pub fn sign_access_token(
    claims: &AccessTokenClaims,
    kid: &str,
    signer: &impl Signer,
) -> Result<String, ProtoError> {
    sign_typed(claims, None, kid, signer, ACCESS_TOKEN_TYP)
}

/// Signs the value of a DBSC bound cookie ([`BOUND_COOKIE_TYP`]) for the session
/// generation `generation` with the server key `kid`.
pub fn sign_bound_cookie(
    claims: &AccessTokenClaims,
    generation: u64,
    kid: &str,
    signer: &impl Signer,
) -> Result<String, ProtoError> {
    sign_typed(claims, Some(generation), kid, signer, BOUND_COOKIE_TYP)
}

fn sign_typed(
    claims: &AccessTokenClaims,
    generation: Option<u64>,
    kid: &str,
    signer: &impl Signer,
    typ: &str,
) -> Result<String, ProtoError> {
    let header = json!({"typ": typ, "alg": "EdDSA", "kid": kid});
    let mut payload = json!({
        "iss": claims.iss,
        "sub": claims.sub,
        "sid": claims.sid,
        "jti": claims.jti,
        "iat": claims.iat,
        "exp": claims.exp,
        "cnf": {"jkt": claims.jkt},
    });
    if let Some(generation) = generation {
        payload["gen"] = json!(generation);
    }
    let input = jws::signing_input(&header, &payload);
    let signature = signer.sign(input.as_bytes())?;
    Ok(jws::finish(&input, &signature))
}
