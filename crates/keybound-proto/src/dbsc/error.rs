//! The refusals of the DBSC checks, with stable machine codes.

#[allow(unused_imports)]
use crate::prelude::*;
use thiserror::Error;

use crate::ProtoError;
use crate::wire::code;

/// Why a DBSC header, proof, key or challenge was refused.
///
/// Every variant has a stable snake_case [`code`](DbscError::code), part of keybound's
/// public contract like [`ProtoError::code`]. Errors of the JOSE layer that DBSC
/// shares with DPoP (base64url, JSON, duplicate members, `typ`, `crit`, claims) keep
/// their [`ProtoError`] code. Descriptions never contain a proof, challenge or key.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DbscError {
    /// A JOSE-level failure shared with DPoP; the code is the inner error's.
    #[error(transparent)]
    Jose(#[from] ProtoError),
    /// A DBSC request header the check needs is absent.
    #[error("the {name} header is missing")]
    MissingHeader {
        /// The header's name.
        name: &'static str,
    },
    /// A DBSC header is present but not of its syntax.
    #[error("the {name} header is malformed: {reason}")]
    InvalidHeader {
        /// The header's name.
        name: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A value keybound was asked to put into a header cannot be sent there.
    #[error("{what} cannot be sent in a header: {reason}")]
    Unencodable {
        /// Which value (`path`, `challenge`, `session id`, …).
        what: &'static str,
        /// Why not.
        reason: &'static str,
    },
    /// The proof's `alg` is neither `ES256` nor `RS256`, or not one the server allows.
    #[error("unsupported alg: DBSC proofs must be ES256 or RS256, as allowed by the server")]
    UnsupportedAlg,
    /// The key is not a usable public JWK of the kind DBSC uses.
    #[error("invalid jwk: {reason}")]
    InvalidJwk {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// An RSA key is shorter than 2048 bits.
    #[error("RSA key of {bits} bits: at least 2048 are required")]
    WeakKey {
        /// The modulus length in bits.
        bits: usize,
    },
    /// The key's type does not match the proof's `alg` (an `EC` key with `RS256`, …).
    #[error("the key type does not match alg")]
    AlgKeyMismatch,
    /// A registration proof carries no public key.
    #[error("the registration proof carries no key")]
    MissingKey,
    /// The proof names a key other than the one it must be signed with.
    #[error("the proof's key is not the session's key")]
    KeyMismatch,
    /// The signature is not of the size its algorithm and key give (an ES256
    /// signature must be the 64-byte `r || s`, not DER).
    #[error("the signature is not a {expected}-byte {alg} signature")]
    MalformedSignature {
        /// The algorithm.
        alg: &'static str,
        /// The size it must have.
        expected: usize,
    },
    /// The signature does not verify with the key.
    #[error("signature verification failed")]
    InvalidSignature,
    /// The challenge (`jti`) was not issued by this server for this session and step.
    #[error("the challenge was not issued for this session")]
    InvalidChallenge,
    /// The challenge was issued by this server but is too old.
    #[error("the challenge has expired")]
    ChallengeExpired,
    /// The proof's `authorization` claim is not the one the registration asked for.
    #[error("the authorization claim does not match the registration")]
    AuthorizationMismatch,
    /// The proof's `sub` names another session than the request.
    #[error("the proof is for another session")]
    SessionMismatch,
}

impl DbscError {
    /// The stable snake_case code of this error (one of [`code`]).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Jose(inner) => inner.code(),
            Self::MissingHeader { .. } => code::MISSING_HEADER,
            Self::InvalidHeader { .. } => code::INVALID_HEADER,
            Self::Unencodable { .. } => code::UNENCODABLE_VALUE,
            Self::UnsupportedAlg => code::UNSUPPORTED_ALG,
            Self::InvalidJwk { .. } => code::INVALID_JWK,
            Self::WeakKey { .. } => code::WEAK_KEY,
            Self::AlgKeyMismatch => code::ALG_KEY_MISMATCH,
            Self::MissingKey => code::MISSING_KEY,
            Self::KeyMismatch => code::KEY_MISMATCH,
            Self::MalformedSignature { .. } => code::MALFORMED_SIGNATURE,
            Self::InvalidSignature => code::INVALID_SIGNATURE,
            Self::InvalidChallenge => code::INVALID_CHALLENGE,
            Self::ChallengeExpired => code::CHALLENGE_EXPIRED,
            Self::AuthorizationMismatch => code::AUTHORIZATION_MISMATCH,
            Self::SessionMismatch => code::SESSION_MISMATCH,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jose_errors_keep_their_code() {
        let e = DbscError::from(ProtoError::MalformedJws);
        assert_eq!(e.code(), "malformed_jws");
        assert_eq!(e.to_string(), ProtoError::MalformedJws.to_string());
        assert_eq!(DbscError::WeakKey { bits: 1024 }.code(), "weak_key");
    }
}
