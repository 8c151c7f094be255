//! The public keys of DBSC sessions: EC P-256 (ES256) and RSA (RS256) JWKs, checked
//! strictly, with their RFC 7638 thumbprints.
//!
//! Whether an EC point lies on the curve is decided by the signature verifier (it must
//! refuse such keys); everything that can be checked without curve arithmetic is
//! checked here.

#[allow(unused_imports)]
use crate::prelude::*;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{DbscAlg, DbscError};
use crate::b64;

/// The smallest RSA modulus keybound accepts, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus keybound accepts, in bits (larger keys only cost time).
pub const MAX_RSA_BITS: usize = 8192;

/// A DBSC session key: the public half of the browser's key pair.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum DbscKey {
    /// An ECDSA P-256 public key (`{"kty":"EC","crv":"P-256","x","y"}`).
    P256 {
        /// The x coordinate, 32 bytes big-endian.
        x: [u8; 32],
        /// The y coordinate, 32 bytes big-endian.
        y: [u8; 32],
    },
    /// An RSA public key (`{"kty":"RSA","n","e"}`) of 2048 to 8192 bits.
    Rsa {
        /// The modulus, big-endian, without leading zero bytes.
        n: Vec<u8>,
        /// The public exponent, big-endian, without leading zero bytes.
        e: Vec<u8>,
    },
}

impl core::fmt::Debug for DbscKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DbscKey")
            .field("alg", &self.alg())
            .field("jkt", &self.thumbprint())
            .finish()
    }
}

impl DbscKey {
    /// Reads a public JWK strictly. EC: `crv` `P-256`, `x` and `y` of exactly 32 bytes.
    /// RSA: `n` and `e` minimal (no leading zero byte, RFC 7518 §2 Base64urlUInt), a
    /// modulus of 2048 to 8192 bits, an odd exponent from 3 to 2^32 - 1. Canonical
    /// base64url everywhere; no private members; an `alg` member, if present, must name
    /// the algorithm of the key type.
    pub fn from_json(value: &Value) -> Result<Self, DbscError> {
        let obj = value.as_object().ok_or(DbscError::InvalidJwk {
            reason: "not a JSON object",
        })?;
        Self::from_map(obj)
    }

    /// [`from_json`](Self::from_json) on an extracted JSON object.
    pub fn from_map(obj: &Map<String, Value>) -> Result<Self, DbscError> {
        if crate::jwk::PRIVATE_MEMBERS
            .iter()
            .any(|m| obj.contains_key(*m))
        {
            return Err(crate::ProtoError::PrivateKeyInJwk.into());
        }
        let member = |name: &'static str, reason: &'static str| {
            obj.get(name)
                .and_then(Value::as_str)
                .ok_or(DbscError::InvalidJwk { reason })
        };
        let key = match obj.get("kty").and_then(Value::as_str) {
            Some("EC") => {
                if obj.get("crv").and_then(Value::as_str) != Some("P-256") {
                    return Err(DbscError::InvalidJwk {
                        reason: "crv must be P-256",
                    });
                }
                let x = coordinate(member("x", "x is missing")?, "jwk x")?;
                let y = coordinate(member("y", "y is missing")?, "jwk y")?;
                Self::P256 { x, y }
            }
            Some("RSA") => {
                let n = unsigned(member("n", "n is missing")?, "jwk n")?;
                let e = unsigned(member("e", "e is missing")?, "jwk e")?;
                let bits = bit_length(&n);
                if bits < MIN_RSA_BITS {
                    return Err(DbscError::WeakKey { bits });
                }
                if bits > MAX_RSA_BITS {
                    return Err(DbscError::InvalidJwk {
                        reason: "the modulus is longer than 8192 bits",
                    });
                }
                let exponent_ok = e.len() <= 4
                    && e.last().is_some_and(|b| b & 1 == 1)
                    && e.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)) >= 3;
                if !exponent_ok {
                    return Err(DbscError::InvalidJwk {
                        reason: "e must be an odd exponent from 3 to 2^32 - 1",
                    });
                }
                Self::Rsa { n, e }
            }
            _ => {
                return Err(DbscError::InvalidJwk {
                    reason: "kty must be EC or RSA",
                });
            }
        };
        match obj.get("alg") {
            None => {}
            Some(Value::String(alg)) if alg == key.alg().as_str() => {}
            Some(_) => return Err(DbscError::AlgKeyMismatch),
        }
        Ok(key)
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> DbscAlg {
        match self {
            Self::P256 { .. } => DbscAlg::Es256,
            Self::Rsa { .. } => DbscAlg::Rs256,
        }
    }

    /// The public JWK, members in RFC 7638 order (the thumbprint's input).
    pub fn to_json(&self) -> Value {
        match self {
            Self::P256 { x, y } => json!({
                "crv": "P-256", "kty": "EC", "x": b64::encode(x), "y": b64::encode(y),
            }),
            Self::Rsa { n, e } => json!({"e": b64::encode(e), "kty": "RSA", "n": b64::encode(n)}),
        }
    }

    /// The RFC 7638 thumbprint (`jkt`): base64url SHA-256 of the canonical JSON of the
    /// required members in lexicographic order.
    pub fn thumbprint(&self) -> String {
        // `to_json` writes exactly the required members; serde_json's map keeps them
        // sorted, which is the canonical order.
        b64::encode(Sha256::digest(self.to_json().to_string().as_bytes()))
    }

    /// The size in bytes a signature by this key has: 64 for ES256 (`r || s`), the
    /// modulus length for RS256.
    pub fn signature_len(&self) -> usize {
        match self {
            Self::P256 { .. } => 64,
            Self::Rsa { n, .. } => n.len(),
        }
    }

    /// The modulus length in bits (RSA), or 256 (P-256).
    pub fn bits(&self) -> usize {
        match self {
            Self::P256 { .. } => 256,
            Self::Rsa { n, .. } => bit_length(n),
        }
    }
}

fn coordinate(text: &str, part: &'static str) -> Result<[u8; 32], DbscError> {
    b64::decode_array::<32>(text, part).map_err(|_| DbscError::InvalidJwk {
        reason: "a P-256 coordinate must be 32 bytes of canonical base64url",
    })
}

fn unsigned(text: &str, part: &'static str) -> Result<Vec<u8>, DbscError> {
    let bytes = b64::decode(text, part)?;
    match bytes.first() {
        None => Err(DbscError::InvalidJwk {
            reason: "an RSA parameter is empty",
        }),
        Some(0) => Err(DbscError::InvalidJwk {
            reason: "an RSA parameter has a leading zero byte",
        }),
        Some(_) => Ok(bytes),
    }
}

fn bit_length(n: &[u8]) -> usize {
    n.first()
        .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The spec's example key and a 2048-bit modulus of all 0xff bytes (only the format
    // matters here; signatures are checked by the server's verifier).
    fn ec() -> Value {
        json!({"kty": "EC", "crv": "P-256",
               "x": "6_GB2voQ0qroMh6OlDFCFS_SJriQi1PTvvBOhGZ3bHI",
               "y": "IegOJULyE7SxH_Cd1KCER7lWBvGFHQ-h0xyjzUjEIWE"})
    }

    fn rsa(bytes: usize) -> Value {
        json!({"kty": "RSA", "n": b64::encode(vec![0xffu8; bytes]), "e": "AQAB"})
    }

    fn code(value: Value) -> &'static str {
        DbscKey::from_json(&value).unwrap_err().code()
    }

    fn with(mut value: Value, name: &str, member: Value) -> Value {
        value[name] = member;
        value
    }

    #[test]
    fn reads_both_kinds() {
        let key = DbscKey::from_json(&ec()).unwrap();
        assert_eq!(key.alg(), DbscAlg::Es256);
        assert_eq!(key.signature_len(), 64);
        assert_eq!(DbscKey::from_json(&key.to_json()).unwrap(), key);
        let key = DbscKey::from_json(&rsa(256)).unwrap();
        assert_eq!(
            (key.alg(), key.bits(), key.signature_len()),
            (DbscAlg::Rs256, 2048, 256)
        );
        assert!(DbscKey::from_json(&with(ec(), "alg", json!("ES256"))).is_ok());
        assert!(DbscKey::from_json(&with(ec(), "use", json!("sig"))).is_ok());
    }

    #[test]
    fn thumbprint_is_rfc7638() {
        // RFC 7638 §3.1's example RSA key and thumbprint.
        let key = DbscKey::from_json(&json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn refusals_have_exact_codes() {
        assert_eq!(code(json!("EC")), "invalid_jwk");
        assert_eq!(code(with(ec(), "d", json!("AAAA"))), "private_key_in_jwk");
        assert_eq!(
            code(with(rsa(256), "p", json!("AAAA"))),
            "private_key_in_jwk"
        );
        assert_eq!(code(with(ec(), "kty", json!("OKP"))), "invalid_jwk");
        assert_eq!(code(with(ec(), "crv", json!("P-384"))), "invalid_jwk");
        assert_eq!(code(with(ec(), "x", json!("AAAA"))), "invalid_jwk");
        assert_eq!(code(with(ec(), "y", json!(7))), "invalid_jwk");
        let padded = format!("{}=", ec()["x"].as_str().unwrap());
        assert_eq!(code(with(ec(), "x", json!(padded))), "invalid_jwk");
        assert_eq!(code(with(ec(), "alg", json!("RS256"))), "alg_key_mismatch");
        assert_eq!(
            code(with(rsa(256), "alg", json!("ES256"))),
            "alg_key_mismatch"
        );
        assert_eq!(code(rsa(255)), "weak_key");
        assert_eq!(code(rsa(128)), "weak_key");
        assert_eq!(code(rsa(1025)), "invalid_jwk");
        let leading_zero = [vec![0u8], vec![0xff; 256]].concat();
        assert_eq!(
            code(with(rsa(256), "n", json!(b64::encode(leading_zero)))),
            "invalid_jwk"
        );
        for e in ["AAEAAQ", "Ag", "AQ", "AQAAAAE", ""] {
            assert_eq!(code(with(rsa(256), "e", json!(e))), "invalid_jwk", "{e}");
        }
        assert_eq!(code(with(rsa(256), "n", json!("+/+/"))), "invalid_base64");
    }

    #[test]
    fn debug_shows_no_key_bytes() {
        let key = DbscKey::from_json(&ec()).unwrap();
        let text = format!("{key:?}");
        assert!(text.contains("Es256") && !text.contains("6_GB2"));
    }
}
