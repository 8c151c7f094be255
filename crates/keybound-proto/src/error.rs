//! The one error type of the protocol core, with stable machine codes.

#[allow(unused_imports)]
use crate::prelude::*;
use thiserror::Error;

use crate::wire::code;

/// Why a token, proof, key or URL was rejected by the protocol core.
///
/// Every variant has a stable snake_case [`code`](ProtoError::code) that is part of
/// keybound's public contract: the server sends it as `error_code`, the CLI prints it,
/// and the browser SDK exposes it as `err.code`. Descriptions never contain token text.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtoError {
    /// The compact JWS is larger than the configured limit.
    #[error("the JWS is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes that was exceeded.
        limit: usize,
    },
    /// The text is not a compact JWS of three non-empty base64url parts.
    #[error("not a compact JWS of three non-empty base64url parts")]
    MalformedJws,
    /// A part is not canonical unpadded base64url (padding, bad alphabet, stray bits).
    #[error("{part} is not canonical unpadded base64url")]
    InvalidBase64 {
        /// Which part of the JWS was bad (`header`, `payload`, `signature`, a JWK member).
        part: &'static str,
    },
    /// A part does not decode to a JSON object.
    #[error("{part} is not a JSON object")]
    InvalidJson {
        /// Which part was bad.
        part: &'static str,
    },
    /// A JSON object contains the same member twice.
    #[error("{part} contains a duplicate JSON member")]
    DuplicateMember {
        /// Which part was bad.
        part: &'static str,
    },
    /// The `alg` header is missing, or names an algorithm keybound does not accept
    /// here: proofs take `EdDSA` (or its RFC 9864 name `Ed25519`) and `ES256`, as far as
    /// the verifier enables them; access tokens take `EdDSA` only. `none`, `HS256` and
    /// the like are always refused.
    #[error("unsupported alg")]
    UnsupportedAlg,
    /// The `alg` header and the `jwk`'s key type disagree (`ES256` with an `OKP` key,
    /// `EdDSA` with an `EC` key).
    #[error("alg does not match the jwk's key type")]
    AlgKeyMismatch,
    /// The `typ` header is missing or wrong for this kind of JWT.
    #[error("typ must be {expected}")]
    InvalidTyp {
        /// The `typ` that was expected.
        expected: &'static str,
    },
    /// The header has a `crit` member; keybound understands no JWS extensions.
    #[error("crit header names extensions that are not understood")]
    UnknownCrit,
    /// The `jwk` header is not a usable public key: wrong `kty` or `crv`, coordinates of
    /// the wrong length, or bytes that are not a point on the curve.
    #[error("invalid jwk: {reason}")]
    InvalidJwk {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The `jwk` header carries private key material.
    #[error("jwk contains private key members")]
    PrivateKeyInJwk,
    /// The public key is weak: an Ed25519 key of small order, or the P-256 identity.
    #[error("the public key is weak (small order or the identity)")]
    WeakKey,
    /// A required claim or header member is absent.
    #[error("missing claim: {name}")]
    MissingClaim {
        /// The claim's name.
        name: &'static str,
    },
    /// A claim has the wrong type or an unusable value.
    #[error("invalid claim: {name}")]
    InvalidClaim {
        /// The claim's name.
        name: &'static str,
    },
    /// The proof's `htm` does not match the request method.
    #[error("htm does not match the request method")]
    HtmMismatch,
    /// The proof's `htu` does not match the request URL.
    #[error("htu does not match the request URL")]
    HtuMismatch,
    /// A URL is not an absolute http(s) URL keybound can normalise.
    #[error("invalid URL: {reason}")]
    InvalidUrl {
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The proof's `iat` is older than the allowed window.
    #[error("proof iat is too old")]
    IatTooOld,
    /// The proof's `iat` is further in the future than the allowed window.
    #[error("proof iat is too far in the future")]
    IatInFuture,
    /// An access token was sent but the proof has no `ath`.
    #[error("proof has no ath but an access token was sent")]
    AthMissing,
    /// The proof's `ath` is not the hash of the access token sent.
    #[error("ath does not match the access token")]
    AthMismatch,
    /// The access token is bound to another key than the proof's.
    #[error("the access token is bound to a different key")]
    JktMismatch,
    /// The signature's S component is not below the group order.
    #[error("non-canonical signature (S >= L)")]
    NonCanonicalSignature,
    /// An ES256 signature is not the 64-byte `r || s` of RFC 7518 §3.4 (DER-encoded, or
    /// of the wrong length).
    #[error("malformed signature: {reason}")]
    MalformedSignature {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An ES256 signature's `r` or `s` is zero or not below the group order n.
    #[error("signature r or s is outside [1, n - 1]")]
    SignatureOutOfRange,
    /// The signature does not verify.
    #[error("signature verification failed")]
    InvalidSignature,
    /// The access token names a key id the server does not know.
    #[error("unknown kid")]
    UnknownKid,
    /// The access token has expired.
    #[error("the access token has expired")]
    TokenExpired,
    /// The access token was issued in the future.
    #[error("the access token is not valid yet")]
    TokenNotYetValid,
    /// A signer failed to produce a signature.
    #[error("signing failed: {reason}")]
    SigningFailed {
        /// What went wrong.
        reason: String,
    },
}

impl ProtoError {
    /// The stable snake_case code of this error (one of [`code`]).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => code::TOO_LARGE,
            Self::MalformedJws => code::MALFORMED_JWS,
            Self::InvalidBase64 { .. } => "invalid_base64",
            Self::InvalidJson { .. } => code::INVALID_JSON,
            Self::DuplicateMember { .. } => code::DUPLICATE_JSON_MEMBER,
            Self::UnsupportedAlg => code::UNSUPPORTED_ALG,
            Self::AlgKeyMismatch => code::ALG_KEY_MISMATCH,
            Self::InvalidTyp { .. } => code::INVALID_TYP,
            Self::UnknownCrit => code::UNKNOWN_CRIT,
            Self::InvalidJwk { .. } => code::INVALID_JWK,
            Self::PrivateKeyInJwk => code::PRIVATE_KEY_IN_JWK,
            Self::WeakKey => code::WEAK_KEY,
            Self::MissingClaim { .. } => code::MISSING_CLAIM,
            Self::InvalidClaim { .. } => code::INVALID_CLAIM,
            Self::HtmMismatch => code::HTM_MISMATCH,
            Self::HtuMismatch => code::HTU_MISMATCH,
            Self::InvalidUrl { .. } => code::INVALID_URL,
            Self::IatTooOld => code::IAT_TOO_OLD,
            Self::IatInFuture => code::IAT_IN_FUTURE,
            Self::AthMissing => code::ATH_MISSING,
            Self::AthMismatch => code::ATH_MISMATCH,
            Self::JktMismatch => code::JKT_MISMATCH,
            Self::NonCanonicalSignature => code::NON_CANONICAL_SIGNATURE,
            Self::MalformedSignature { .. } => code::MALFORMED_SIGNATURE,
            Self::SignatureOutOfRange => code::SIGNATURE_OUT_OF_RANGE,
            Self::InvalidSignature => code::INVALID_SIGNATURE,
            Self::UnknownKid => code::UNKNOWN_KID,
            Self::TokenExpired => code::TOKEN_EXPIRED,
            Self::TokenNotYetValid => code::TOKEN_NOT_YET_VALID,
            Self::SigningFailed { .. } => code::SIGNING_FAILED,
        }
    }
}
