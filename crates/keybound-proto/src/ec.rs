//! ES256 (RFC 7518 §3.4): P-256 public keys as JWKs and the form of a JWS ES256
//! signature (the 64-byte `r || s`, each in `[1, n - 1]`). Their RFC 7638 thumbprints
//! are [`crate::PublicJwk::thumbprint`]'s, as for Ed25519.
//!
//! Everything here is plain byte work, so the browser SDK can build ES256
//! proofs without a P-256 implementation (WebCrypto signs). Checking that a key is a
//! point on the curve and verifying signatures needs curve arithmetic: that is the
//! `es256` feature ([`crate::es256_verify`]), which the server and the CLI turn on.

use crate::{ProtoError, b64};

/// The order n of the P-256 group, big-endian: `r` and `s` must lie in `[1, n - 1]`.
const ORDER_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// The affine coordinates of a P-256 public key, as the JWK carries them (big-endian,
/// 32 bytes each). Not checked to be on the curve: see [`crate::PublicJwk::decode`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct P256Coordinates {
    pub(crate) x: [u8; 32],
    pub(crate) y: [u8; 32],
}

impl P256Coordinates {
    /// Reads `x` and `y` of a JWK: canonical base64url of exactly 32 bytes each (RFC 7518
    /// §6.2.1.2: the full coordinate length, leading zeros kept).
    pub(crate) fn from_members(x: Option<&str>, y: Option<&str>) -> Result<Self, ProtoError> {
        let x = x.ok_or(ProtoError::InvalidJwk {
            reason: "x is missing",
        })?;
        let y = y.ok_or(ProtoError::InvalidJwk {
            reason: "y is missing",
        })?;
        Ok(Self {
            x: coordinate(x, "jwk x")?,
            y: coordinate(y, "jwk y")?,
        })
    }

    /// Whether this is (0, 0), the encoding some libraries use for the point at
    /// infinity (the group's identity), which has no affine coordinates.
    pub(crate) fn is_identity_encoding(&self) -> bool {
        self.x == [0; 32] && self.y == [0; 32]
    }

    /// The uncompressed SEC1 encoding `04 || x || y`.
    #[cfg(feature = "es256")]
    pub(crate) fn sec1(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = 4;
        out[1..33].copy_from_slice(&self.x);
        out[33..].copy_from_slice(&self.y);
        out
    }
}

/// One coordinate: 32 bytes, or an `InvalidJwk` naming the length rule.
fn coordinate(text: &str, part: &'static str) -> Result<[u8; 32], ProtoError> {
    // 43 characters are exactly 32 bytes; anything else is the wrong length (checked
    // before decoding so a long member costs nothing).
    if text.len() != 43 {
        return Err(ProtoError::InvalidJwk {
            reason: "P-256 coordinates x and y must be 32 bytes each",
        });
    }
    b64::decode_array::<32>(text, part)
}

/// Reads the signature part of an ES256 JWS: canonical base64url of exactly 64 bytes
/// (`r || s`, RFC 7518 §3.4), both in `[1, n - 1]`. A DER-encoded signature (what most
/// crypto libraries return, and a common interop bug) is named as such.
pub(crate) fn signature(text: &str) -> Result<[u8; 64], ProtoError> {
    // 86 characters are exactly 64 bytes.
    if text.len() != 86 {
        // A DER `SEQUENCE { INTEGER r, INTEGER s }` for P-256 is 8 to 72 bytes.
        let bytes = b64::decode(text, "signature")?;
        let der = bytes.len() >= 8
            && bytes.len() <= 72
            && bytes[0] == 0x30
            && usize::from(bytes[1]) == bytes.len() - 2
            && bytes[2] == 0x02;
        return Err(ProtoError::MalformedSignature {
            reason: if der {
                "the ES256 signature is DER-encoded; JWS uses the 64-byte r || s (RFC 7518 §3.4)"
            } else {
                "an ES256 signature is 64 bytes (r || s)"
            },
        });
    }
    let signature = b64::decode_array::<64>(text, "signature")?;
    if !scalar_in_range(&signature[..32]) || !scalar_in_range(&signature[32..]) {
        return Err(ProtoError::SignatureOutOfRange);
    }
    Ok(signature)
}

/// Whether the big-endian scalar lies in `[1, n - 1]`.
fn scalar_in_range(scalar: &[u8]) -> bool {
    if scalar.iter().all(|b| *b == 0) {
        return false;
    }
    for (a, b) in scalar.iter().zip(ORDER_N) {
        if *a != b {
            return *a < b;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::prelude::*;

    #[test]
    fn scalar_range() {
        assert!(!scalar_in_range(&[0u8; 32]));
        assert!(!scalar_in_range(&ORDER_N));
        let mut below = ORDER_N;
        below[31] -= 1;
        assert!(scalar_in_range(&below));
        let mut one = [0u8; 32];
        one[31] = 1;
        assert!(scalar_in_range(&one));
        assert!(!scalar_in_range(&[0xff; 32]));
    }

    #[test]
    fn signature_forms() {
        let mut good = [0x11u8; 64];
        good[0] = 0x7f;
        assert_eq!(signature(&b64::encode(good)), Ok(good));
        let mut zero_r = good;
        zero_r[..32].fill(0);
        assert_eq!(
            signature(&b64::encode(zero_r)),
            Err(ProtoError::SignatureOutOfRange)
        );
        let mut big_s = good;
        big_s[32..].copy_from_slice(&ORDER_N);
        assert_eq!(
            signature(&b64::encode(big_s)),
            Err(ProtoError::SignatureOutOfRange)
        );
        // SEQUENCE(70) { INTEGER(33) 00 7f…, INTEGER(33) 00 …}
        let mut der = vec![0x30, 68, 0x02, 32];
        der.extend_from_slice(&good[..32]);
        der.extend_from_slice(&[0x02, 32]);
        der.extend_from_slice(&good[32..]);
        assert!(matches!(
            signature(&b64::encode(&der)),
            Err(ProtoError::MalformedSignature { reason }) if reason.contains("DER")
        ));
        assert!(matches!(
            signature(&b64::encode([1u8; 63])),
            Err(ProtoError::MalformedSignature { reason }) if !reason.contains("DER")
        ));
        assert!(matches!(
            signature(&format!("{}=", b64::encode([1u8; 63]))),
            Err(ProtoError::InvalidBase64 { .. })
        ));
    }

    #[test]
    fn coordinates_must_be_32_bytes() {
        let x = b64::encode([1u8; 32]);
        let short = b64::encode([1u8; 31]);
        let long = b64::encode([1u8; 33]);
        assert!(P256Coordinates::from_members(Some(&x), Some(&x)).is_ok());
        for (a, b) in [(&short, &x), (&x, &long), (&x, &short)] {
            assert!(matches!(
                P256Coordinates::from_members(Some(a), Some(b)),
                Err(ProtoError::InvalidJwk { .. })
            ));
        }
        assert_eq!(
            P256Coordinates::from_members(Some(&x), None),
            Err(ProtoError::InvalidJwk {
                reason: "y is missing"
            })
        );
    }

    #[test]
    fn rfc7638_shape() {
        // The canonical JSON is hashed member by member; check against serde_json.
        let c = P256Coordinates {
            x: [3u8; 32],
            y: [250u8; 32],
        };
        let canonical =
            serde_json::json!({"crv":"P-256","kty":"EC","x":b64::encode(c.x),"y":b64::encode(c.y)})
                .to_string();
        let jwk = crate::PublicJwk::from_p256_coordinates(c.x, c.y);
        assert_eq!(jwk.thumbprint(), b64::encode(Sha256::digest(canonical)));
    }
}
