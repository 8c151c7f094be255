//! ES256 and RS256 signature checks for DBSC proofs ([`keybound_proto::dbsc`]), with
//! `aws-lc-rs`, the library that verifies ES256 DPoP proofs too (BENCHMARKS.md,
//! "ES256: choosing the P-256 verifier"). The protocol core checks everything else
//! and calls this through its [`SignatureVerifier`] seam.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
};
use keybound_proto::dbsc::{DbscAlg, DbscError, DbscKey, SignatureVerifier};

/// Verifies DBSC proof signatures: ES256 as the 64-byte JWS `r || s` (the point must be
/// on P-256; `r` and `s` must be in `1..n`), RS256 as PKCS#1 v1.5 with SHA-256 and a
/// 2048 to 8192-bit modulus.
#[derive(Clone, Copy, Debug, Default)]
pub struct DbscSignatures;

impl SignatureVerifier for DbscSignatures {
    fn verify(
        &self,
        alg: DbscAlg,
        key: &DbscKey,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), DbscError> {
        let verified = match (alg, key) {
            (DbscAlg::Es256, DbscKey::P256 { x, y }) => {
                let mut point = [0u8; 65];
                point[0] = 0x04;
                point[1..33].copy_from_slice(x);
                point[33..].copy_from_slice(y);
                // A point off the curve is refused here, before any signature work.
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                    .map_err(|_| DbscError::InvalidSignature)?
                    .verify_sig(signing_input, signature)
            }
            (DbscAlg::Rs256, DbscKey::Rsa { n, e }) => RsaPublicKeyComponents { n, e }.verify(
                &RSA_PKCS1_2048_8192_SHA256,
                signing_input,
                signature,
            ),
            _ => return Err(DbscError::AlgKeyMismatch),
        };
        verified.map_err(|_| DbscError::InvalidSignature)
    }
}
