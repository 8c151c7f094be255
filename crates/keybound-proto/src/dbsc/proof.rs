//! The DBSC proof: a compact JWS with `typ: dbsc+jwt`, signed with `ES256` or `RS256`
//! by the browser's session key, read strictly and checked in a fixed order.
//!
//! What Chromium 156 sends (recorded in `tests/vectors/dbsc/`):
//! registration `{"alg","jwk","typ"}` . `{"jti"[,"authorization"]}`, refresh
//! `{"alg","typ"}` . `{"jti"}`. The spec's draft also allows the key as a `key` claim
//! and adds `aud`, `iat` and (at refresh) `sub`; they are read and checked when present.

#[allow(unused_imports)]
use crate::prelude::*;
use core::time::Duration;

use serde_json::{Map, Value};

use super::{ChallengePurpose, Challenges, DbscAlg, DbscError, DbscKey, MAX_HEADER_LEN};
use crate::{ProtoError, b64, json};

/// The `typ` of a DBSC proof.
pub const DBSC_TYP: &str = "dbsc+jwt";

/// The seam where signatures are checked: the protocol core has no ECDSA or RSA code of
/// its own, the server plugs one in.
///
/// Called only after every other check passed, with a signature whose length is the
/// key's [`signature_len`](DbscKey::signature_len). Must refuse with
/// [`DbscError::InvalidSignature`] any signature that does not verify, including one by
/// an EC key whose point is not on the curve (`invalid_jwk` is also fine for that),
/// `r` or `s` of zero or not below the group order, and RSA signatures not below the
/// modulus.
pub trait SignatureVerifier {
    /// Verifies `signature` over `signing_input` with `key` (whose algorithm is `alg`).
    fn verify(
        &self,
        alg: DbscAlg,
        key: &DbscKey,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), DbscError>;
}

/// What a registration proof must satisfy.
#[derive(Debug)]
pub struct RegistrationCheck<'a> {
    /// The server's challenges.
    pub challenges: &'a Challenges,
    /// The session being registered (the challenge was issued for it).
    pub session_id: &'a str,
    /// The `authorization` the registration header asked for, if any; the claim must
    /// then be exactly this, and absent otherwise.
    pub authorization: Option<&'a str>,
    /// The algorithms the server accepts.
    pub algs: &'a [DbscAlg],
    /// The current time, milliseconds since the epoch.
    pub now_ms: i64,
    /// How far an `iat`, when the browser sends one, may be from `now_ms`.
    pub max_skew: Duration,
}

/// What a refresh proof must satisfy.
#[derive(Debug)]
pub struct RefreshCheck<'a> {
    /// The server's challenges.
    pub challenges: &'a Challenges,
    /// The session named by `Sec-Secure-Session-Id`.
    pub session_id: &'a str,
    /// The key the session was registered with.
    pub key: &'a DbscKey,
    /// The current time, milliseconds since the epoch.
    pub now_ms: i64,
    /// How far an `iat`, when the browser sends one, may be from `now_ms`.
    pub max_skew: Duration,
}

/// A DBSC proof whose structure was checked; nothing about it is trusted until
/// [`verify_registration`](Self::verify_registration) or
/// [`verify_refresh`](Self::verify_refresh) succeeds.
#[derive(Clone, Debug)]
pub struct DbscProof {
    alg: DbscAlg,
    key: Option<DbscKey>,
    jti: String,
    authorization: Option<String>,
    sub: Option<String>,
    aud: Option<String>,
    iat: Option<i64>,
    signing_input_len: usize,
    compact: String,
    signature: Vec<u8>,
}

impl DbscProof {
    /// Parses a proof (the value of `Secure-Session-Response`, already unquoted by
    /// [`read_session_response`](super::read_session_response)). In order: at most
    /// 8 KiB; three non-empty parts of canonical base64url; the header a JSON object
    /// without duplicate members, `alg` `ES256` or `RS256`, no `crit`, `typ` exactly
    /// `dbsc+jwt`, a `jwk` (if any) a valid public key of `alg`'s type; the payload a
    /// JSON object without duplicate members, `jti` a non-empty string,
    /// `authorization`/`sub`/`aud` strings, `iat` a number or a string of digits, a
    /// `key` claim (if any) the same key as `jwk`.
    pub fn parse(text: &str) -> Result<Self, DbscError> {
        if text.len() > MAX_HEADER_LEN {
            return Err(ProtoError::TooLarge {
                limit: MAX_HEADER_LEN,
            }
            .into());
        }
        let mut parts = text.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ProtoError::MalformedJws.into());
        };
        if h.is_empty() || p.is_empty() || s.is_empty() {
            return Err(ProtoError::MalformedJws.into());
        }
        let header = json::parse_object(&b64::decode(h, "header")?, "header")?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => DbscAlg::parse(alg)?,
            _ => return Err(DbscError::UnsupportedAlg),
        };
        if header.contains_key("crit") {
            return Err(ProtoError::UnknownCrit.into());
        }
        if header.get("typ").and_then(Value::as_str) != Some(DBSC_TYP) {
            return Err(ProtoError::InvalidTyp { expected: DBSC_TYP }.into());
        }
        let header_key = key_member(&header, "jwk", alg)?;
        let claims = json::parse_object(&b64::decode(p, "payload")?, "payload")?;
        let jti = match claims.get("jti") {
            None => return Err(ProtoError::MissingClaim { name: "jti" }.into()),
            Some(Value::String(jti)) if !jti.is_empty() => jti.clone(),
            Some(_) => return Err(ProtoError::InvalidClaim { name: "jti" }.into()),
        };
        let authorization = string_claim(&claims, "authorization")?;
        let sub = string_claim(&claims, "sub")?;
        let aud = string_claim(&claims, "aud")?;
        let iat = match claims.get("iat") {
            None => None,
            Some(Value::Number(n)) => {
                Some(n.as_i64().ok_or(ProtoError::InvalidClaim { name: "iat" })?)
            }
            Some(Value::String(s))
                if !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(
                    s.parse()
                        .map_err(|_| ProtoError::InvalidClaim { name: "iat" })?,
                )
            }
            Some(_) => return Err(ProtoError::InvalidClaim { name: "iat" }.into()),
        };
        let claim_key = key_member(&claims, "key", alg)?;
        let key = match (header_key, claim_key) {
            (Some(a), Some(b)) if a != b => return Err(DbscError::KeyMismatch),
            (a, b) => a.or(b),
        };
        let signature = b64::decode(s, "signature")?;
        Ok(Self {
            alg,
            key,
            jti,
            authorization,
            sub,
            aud,
            iat,
            signing_input_len: h.len() + 1 + p.len(),
            compact: text.to_owned(),
            signature,
        })
    }

    /// Checks a registration proof and returns the key to bind the session to. In
    /// order: `alg` allowed; a key present; `authorization` as asked; `sub`, if
    /// present, the session; `iat`, if present, within the skew; `jti` a registration
    /// challenge issued for this session and not expired; the signature.
    ///
    /// The caller must still make sure the challenge is used once (its replay store).
    pub fn verify_registration(
        &self,
        check: &RegistrationCheck<'_>,
        verifier: &dyn SignatureVerifier,
    ) -> Result<DbscKey, DbscError> {
        if !check.algs.contains(&self.alg) {
            return Err(DbscError::UnsupportedAlg);
        }
        let key = self.key.as_ref().ok_or(DbscError::MissingKey)?;
        if self.authorization.as_deref() != check.authorization {
            return Err(DbscError::AuthorizationMismatch);
        }
        self.check_common(
            check.challenges,
            ChallengePurpose::Registration,
            check.session_id,
            check.now_ms,
            check.max_skew,
        )?;
        self.check_signature(key, verifier)?;
        Ok(key.clone())
    }

    /// Checks a refresh proof against the session's key. In order: `alg` the key's;
    /// a key in the proof, if any, the session's; `sub`, if present, the session;
    /// `iat`, if present, within the skew; `jti` a refresh challenge issued for this
    /// session and not expired; the signature.
    ///
    /// The caller must still make sure the challenge is used once (its replay store).
    pub fn verify_refresh(
        &self,
        check: &RefreshCheck<'_>,
        verifier: &dyn SignatureVerifier,
    ) -> Result<(), DbscError> {
        if self.alg != check.key.alg() {
            return Err(DbscError::AlgKeyMismatch);
        }
        if self.key.as_ref().is_some_and(|k| k != check.key) {
            return Err(DbscError::KeyMismatch);
        }
        self.check_common(
            check.challenges,
            ChallengePurpose::Refresh,
            check.session_id,
            check.now_ms,
            check.max_skew,
        )?;
        self.check_signature(check.key, verifier)
    }

    fn check_common(
        &self,
        challenges: &Challenges,
        purpose: ChallengePurpose,
        session_id: &str,
        now_ms: i64,
        max_skew: Duration,
    ) -> Result<(), DbscError> {
        if self.sub.as_deref().is_some_and(|sub| sub != session_id) {
            return Err(DbscError::SessionMismatch);
        }
        if let Some(iat) = self.iat {
            let skew = i64::try_from(max_skew.as_secs()).unwrap_or(i64::MAX);
            let now = now_ms.div_euclid(1000);
            if iat < now.saturating_sub(skew) {
                return Err(ProtoError::IatTooOld.into());
            }
            if iat > now.saturating_add(skew) {
                return Err(ProtoError::IatInFuture.into());
            }
        }
        challenges.check(purpose, session_id, &self.jti, now_ms)
    }

    fn check_signature(
        &self,
        key: &DbscKey,
        verifier: &dyn SignatureVerifier,
    ) -> Result<(), DbscError> {
        let expected = key.signature_len();
        if self.signature.len() != expected {
            return Err(DbscError::MalformedSignature {
                alg: self.alg.as_str(),
                expected,
            });
        }
        verifier.verify(self.alg, key, self.signing_input(), &self.signature)
    }

    /// The signature algorithm.
    pub fn alg(&self) -> DbscAlg {
        self.alg
    }

    /// The key the proof carries (`jwk` header or `key` claim): present at
    /// registration, absent at refresh.
    pub fn key(&self) -> Option<&DbscKey> {
        self.key.as_ref()
    }

    /// The `jti` claim: the challenge the browser signed.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The `authorization` claim, copied by the browser from the registration header.
    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    /// The `sub` claim (the spec's session identifier at refresh; Chromium 156 omits it).
    pub fn sub(&self) -> Option<&str> {
        self.sub.as_deref()
    }

    /// The `aud` claim (the spec's target URL; Chromium 156 omits it).
    pub fn aud(&self) -> Option<&str> {
        self.aud.as_deref()
    }

    /// The `iat` claim in seconds (Chromium 156 omits it).
    pub fn iat(&self) -> Option<i64> {
        self.iat
    }

    /// The bytes the signature covers: `base64url(header) "." base64url(payload)`.
    pub fn signing_input(&self) -> &[u8] {
        &self.compact.as_bytes()[..self.signing_input_len]
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

fn string_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, DbscError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ProtoError::InvalidClaim { name }.into()),
    }
}

fn key_member(
    obj: &Map<String, Value>,
    name: &str,
    alg: DbscAlg,
) -> Result<Option<DbscKey>, DbscError> {
    let Some(value) = obj.get(name) else {
        return Ok(None);
    };
    let key = DbscKey::from_json(value)?;
    if key.alg() != alg {
        return Err(DbscError::AlgKeyMismatch);
    }
    Ok(Some(key))
}
