//! Access tokens (RFC 9068 `at+jwt`) bound to a DPoP key (`cnf.jkt`).

use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};

use crate::jws::{self, Jws, Signer};
use crate::{MAX_JWS_LEN, ProtoError};

/// The `typ` of an access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

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
#[derive(Clone, Debug)]
pub struct AccessToken {
    kid: String,
    claims: AccessTokenClaims,
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
        let jws = Jws::parse(
            text,
            max_len,
            &[ACCESS_TOKEN_TYP, "application/at+jwt"],
            ACCESS_TOKEN_TYP,
        )?;
        let kid = jws::str_member(&jws.header, "kid")?.to_owned();
        let p = &jws.payload;
        let jkt = match p.get("cnf") {
            None => return Err(ProtoError::MissingClaim { name: "cnf" }),
            Some(Value::Object(cnf)) => jws::str_member(cnf, "jkt")?.to_owned(),
            Some(_) => return Err(ProtoError::InvalidClaim { name: "cnf" }),
        };
        let claims = AccessTokenClaims {
            iss: jws::str_member(p, "iss")?.to_owned(),
            sub: jws::str_member(p, "sub")?.to_owned(),
            sid: jws::str_member(p, "sid")?.to_owned(),
            jti: jws::str_member(p, "jti")?.to_owned(),
            iat: jws::int_member(p, "iat")?,
            exp: jws::int_member(p, "exp")?,
            jkt,
        };
        Ok(Self { kid, claims, jws })
    }

    /// The key id from the header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The claims (not yet verified).
    pub fn claims(&self) -> &AccessTokenClaims {
        &self.claims
    }

    /// The claims, consuming the token (no copy).
    pub fn into_claims(self) -> AccessTokenClaims {
        self.claims
    }

    /// The compact token text.
    pub fn as_str(&self) -> &str {
        self.jws.text()
    }

    /// Verifies the signature with the server key named by `kid` (`verify_strict`).
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), ProtoError> {
        self.jws.verify(key)
    }

    /// The token must not be expired at `now`, nor issued after `now + leeway_secs`.
    pub fn check_time(&self, now: i64, leeway_secs: u64) -> Result<(), ProtoError> {
        if now >= self.claims.exp {
            return Err(ProtoError::TokenExpired);
        }
        let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
        if self.claims.iat > now.saturating_add(leeway) {
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
    let header = json!({"typ": ACCESS_TOKEN_TYP, "alg": "EdDSA", "kid": kid});
    let payload = json!({
        "iss": claims.iss,
        "sub": claims.sub,
        "sid": claims.sid,
        "jti": claims.jti,
        "iat": claims.iat,
        "exp": claims.exp,
        "cnf": {"jkt": claims.jkt},
    });
    let input = jws::signing_input(&header, &payload);
    let signature = signer.sign(input.as_bytes())?;
    Ok(jws::finish(&input, &signature))
}
