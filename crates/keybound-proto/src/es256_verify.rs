//! ES256 verification (the `es256` feature), with `aws-lc-rs`.
//!
//! Chosen by measurement (BENCHMARKS.md, "ES256: choosing the P-256 verifier"): it and
//! `ring` verify equally fast, several times faster than RustCrypto's `p256`, and only
//! `aws-lc-rs` checks a public key on its own (a parsed key type), so a point that is not
//! on the curve is refused as an invalid `jwk` before any signature work, and a server
//! can keep parsed keys of returning clients.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};

use crate::ProtoError;
use crate::ec::P256Coordinates;

/// A P-256 public key parsed and checked to be a point on the curve.
pub(crate) type Key = ParsedPublicKey;

/// Parses `04 || x || y`: refused unless both coordinates are below p and the point is
/// on the curve (which also excludes the identity, which has no affine coordinates).
pub(crate) fn decode(coordinates: &P256Coordinates) -> Result<Key, ProtoError> {
    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, coordinates.sec1()).map_err(|_| {
        ProtoError::InvalidJwk {
            reason: "x, y is not a point on P-256",
        }
    })
}

/// Verifies ECDSA P-256 with SHA-256 over `message`; `signature` is `r || s`, already
/// checked to have both in `[1, n - 1]`.
pub(crate) fn verify(key: &Key, message: &[u8], signature: &[u8; 64]) -> Result<(), ProtoError> {
    key.verify_sig(message, signature)
        .map_err(|_| ProtoError::InvalidSignature)
}
