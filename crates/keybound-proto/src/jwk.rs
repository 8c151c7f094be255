//! Ed25519 public keys as JWKs (RFC 8037) and their RFC 7638 thumbprints.

use ed25519_dalek::VerifyingKey;
use serde::de::MapAccess;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::json::{self, Loose, Members, Nested};
use crate::{ProtoError, b64};

/// JWK members that carry private key material in any key type (RFC 7517/7518/8037);
/// refused in every public key keybound reads (DPoP and DBSC alike).
pub(crate) const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The members of a `jwk` that keybound reads, whichever key type it is.
#[derive(Default)]
pub(crate) struct JwkMembers<'a> {
    kty: Loose<'a>,
    crv: Loose<'a>,
    x: Loose<'a>,
    /// Whether a member that carries private key material is present.
    private: bool,
}

impl<'de> Members<'de> for JwkMembers<'de> {
    const NAMES: &'static [&'static str] = &["kty", "crv", "x"];

    fn read<A: MapAccess<'de>>(&mut self, index: usize, access: &mut A) -> Result<(), A::Error> {
        let value = json::loose(access)?;
        match index {
            0 => self.kty = value,
            1 => self.crv = value,
            _ => self.x = value,
        }
        Ok(())
    }

    fn other(&mut self, name: &str) {
        if PRIVATE_MEMBERS.contains(&name) {
            self.private = true;
        }
    }
}

/// The key types a `jwk` may be, by its `kty` and `crv`. A new type is a new variant
/// here plus its members in [`JwkMembers`] and its arm in [`PublicJwk::parse`].
enum KeyType {
    /// `{"kty":"OKP","crv":"Ed25519"}` (RFC 8037).
    Ed25519,
}

impl KeyType {
    fn of(members: &JwkMembers<'_>) -> Result<Self, ProtoError> {
        match (members.kty.as_str(), members.crv.as_str()) {
            (Some("OKP"), Some("Ed25519")) => Ok(Self::Ed25519),
            (Some("OKP"), _) => Err(ProtoError::InvalidJwk {
                reason: "crv must be Ed25519",
            }),
            _ => Err(ProtoError::InvalidJwk {
                reason: "kty must be OKP",
            }),
        }
    }
}

/// Turns the 32 bytes of a proof's `jwk` into a checked verifying key.
///
/// Decoding a point costs about a tenth of a signature check. A server that sees the
/// same device keys again and again may remember decoded keys (decoding is a pure
/// function of the bytes); the protocol core itself remembers nothing and uses
/// [`DecodeEveryTime`].
pub trait KeyDecoder {
    /// Must return exactly what [`PublicJwk::decode`] returns for `x`.
    fn decode(&self, x: &[u8; 32]) -> Result<VerifyingKey, ProtoError>;
}

/// The [`KeyDecoder`] that decodes every key ([`PublicJwk::decode`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeEveryTime;

impl KeyDecoder for DecodeEveryTime {
    fn decode(&self, x: &[u8; 32]) -> Result<VerifyingKey, ProtoError> {
        PublicJwk::from_bytes(*x).decode()
    }
}

/// An Ed25519 public key in JWK form: `{"crv":"Ed25519","kty":"OKP","x":…}`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PublicJwk {
    x: [u8; 32],
}

impl PublicJwk {
    /// Wraps the 32 raw bytes of an Ed25519 public key.
    pub fn from_bytes(x: [u8; 32]) -> Self {
        Self { x }
    }

    /// The public key of an ed25519-dalek verifying key.
    pub fn from_verifying_key(key: &VerifyingKey) -> Self {
        Self { x: key.to_bytes() }
    }

    /// Reads a public JWK strictly: `kty` must be `OKP`, `crv` `Ed25519`, `x` 32 bytes of
    /// canonical base64url, and no private members (`d` and friends) may be present.
    /// Small-order keys are rejected with [`ProtoError::WeakKey`]. The rules are those
    /// of a proof's `jwk` header, applied by the same code.
    pub fn from_json(value: &Value) -> Result<Self, ProtoError> {
        Self::parse(json::members_of_value(value), &DecodeEveryTime).map(|(jwk, _)| jwk)
    }

    /// The one set of JWK rules, on the members a strict parse read (from a JWS header
    /// or a JSON value); also returns the decoded key.
    pub(crate) fn parse(
        jwk: Nested<JwkMembers<'_>>,
        decoder: &dyn KeyDecoder,
    ) -> Result<(Self, VerifyingKey), ProtoError> {
        let members = match jwk {
            Nested::Absent => return Err(ProtoError::MissingClaim { name: "jwk" }),
            Nested::NotObject => {
                return Err(ProtoError::InvalidJwk {
                    reason: "not a JSON object",
                });
            }
            Nested::Object(members) => members,
        };
        if members.private {
            return Err(ProtoError::PrivateKeyInJwk);
        }
        match KeyType::of(&members)? {
            KeyType::Ed25519 => {
                let x = members.x.as_str().ok_or(ProtoError::InvalidJwk {
                    reason: "x is missing",
                })?;
                let x = b64::decode_array::<32>(x, "jwk x")?;
                let key = decoder.decode(&x)?;
                Ok((Self { x }, key))
            }
        }
    }

    /// The raw 32-byte public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.x
    }

    /// The key as ed25519-dalek's verifying key (fails for bytes that are not a point).
    pub fn verifying_key(&self) -> Result<VerifyingKey, ProtoError> {
        VerifyingKey::from_bytes(&self.x).map_err(|_| ProtoError::InvalidJwk {
            reason: "x is not a valid Ed25519 point",
        })
    }

    /// The key as a verifying key fit for proofs: a valid point
    /// ([`ProtoError::InvalidJwk`] otherwise) that is not of small order
    /// ([`ProtoError::WeakKey`]).
    pub fn decode(&self) -> Result<VerifyingKey, ProtoError> {
        let key = self.verifying_key()?;
        if key.is_weak() {
            return Err(ProtoError::WeakKey);
        }
        Ok(key)
    }

    /// The JWK as JSON, members in RFC 7638 canonical order.
    pub fn to_json(&self) -> Value {
        json!({"crv": "Ed25519", "kty": "OKP", "x": b64::encode(self.x)})
    }

    /// The RFC 7638 thumbprint (`jkt`): base64url(SHA-256 of the canonical JWK).
    pub fn thumbprint(&self) -> String {
        let mut x = [0u8; 43];
        let n = b64::encode_into(&self.x, &mut x);
        let digest = Sha256::new()
            .chain_update(br#"{"crv":"Ed25519","kty":"OKP","x":""#)
            .chain_update(&x[..n])
            .chain_update(br#""}"#)
            .finalize();
        b64::encode(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8037_a3_thumbprint() {
        let jwk = PublicJwk::from_json(&json!({
            "kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn rejects_private_members_and_wrong_types() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let d = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
        assert_eq!(
            PublicJwk::from_json(&json!({"kty":"OKP","crv":"Ed25519","x":x,"d":d})),
            Err(ProtoError::PrivateKeyInJwk)
        );
        assert!(matches!(
            PublicJwk::from_json(&json!({"kty":"EC","crv":"Ed25519","x":x})),
            Err(ProtoError::InvalidJwk { .. })
        ));
        assert!(matches!(
            PublicJwk::from_json(&json!({"kty":"OKP","crv":"X25519","x":x})),
            Err(ProtoError::InvalidJwk { .. })
        ));
        assert!(matches!(
            PublicJwk::from_json(&json!({"kty":"OKP","crv":"Ed25519","x":"AAAA"})),
            Err(ProtoError::InvalidBase64 { .. })
        ));
        assert_eq!(
            PublicJwk::from_json(&json!({"kty":"OKP","crv":"Ed25519","x":7})),
            Err(ProtoError::InvalidJwk {
                reason: "x is missing"
            })
        );
        assert_eq!(
            PublicJwk::from_json(&json!(["OKP"])),
            Err(ProtoError::InvalidJwk {
                reason: "not a JSON object"
            })
        );
    }

    #[test]
    fn decoders_are_consulted_for_proof_keys() {
        struct Refuse;
        impl KeyDecoder for Refuse {
            fn decode(&self, _x: &[u8; 32]) -> Result<VerifyingKey, ProtoError> {
                Err(ProtoError::WeakKey)
            }
        }
        let key = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
        let proof = crate::ProofBuilder::new(
            crate::Signer::public_jwk(&key),
            "GET",
            "https://a.example/",
            1,
            [0u8; 16],
        )
        .unwrap()
        .sign(&key)
        .unwrap();
        assert!(crate::DpopProof::parse_with_decoder(&proof, 8192, &DecodeEveryTime).is_ok());
        assert_eq!(
            crate::DpopProof::parse_with_decoder(&proof, 8192, &Refuse).unwrap_err(),
            ProtoError::WeakKey
        );
        assert_eq!(
            DecodeEveryTime.decode(key.verifying_key().as_bytes()),
            Ok(key.verifying_key())
        );
    }

    #[test]
    fn rejects_small_order_keys() {
        // The identity point encodes as 0x01 followed by zeros: order 1.
        let mut x = [0u8; 32];
        x[0] = 1;
        let value = json!({"kty":"OKP","crv":"Ed25519","x": b64::encode(x)});
        assert_eq!(PublicJwk::from_json(&value), Err(ProtoError::WeakKey));
        assert_eq!(PublicJwk::from_bytes(x).decode(), Err(ProtoError::WeakKey));
    }
}
