//! Device public keys as JWKs: Ed25519 (`OKP`, RFC 8037) and P-256 (`EC`, RFC 7518),
//! their RFC 7638 thumbprints, and the decoded form a signature check uses.

#[allow(unused_imports)]
use crate::prelude::*;
use ed25519_dalek::VerifyingKey;
use serde::de::MapAccess;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::ec::P256Coordinates;
use crate::json::{self, Loose, Members, Nested};
use crate::{ProofAlg, ProtoError, b64};

/// JWK members that carry private key material in any key type (RFC 7517/7518/8037);
/// refused in every public key keybound reads (DPoP and DBSC alike).
pub(crate) const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The members of a `jwk` that keybound reads, whichever key type it is.
#[derive(Default)]
pub(crate) struct JwkMembers<'a> {
    kty: Loose<'a>,
    crv: Loose<'a>,
    x: Loose<'a>,
    y: Loose<'a>,
    /// Whether a member that carries private key material is present.
    private: bool,
}

/// What was read, for the fuzz targets (`crate::fuzzing`): `kty`, `crv`, `x` and
/// whether a private-key member was present.
#[cfg(feature = "fuzzing")]
impl<'a> JwkMembers<'a> {
    pub(crate) fn parts(&self) -> (&Loose<'a>, &Loose<'a>, &Loose<'a>, bool) {
        (&self.kty, &self.crv, &self.x, self.private)
    }
}

impl<'de> Members<'de> for JwkMembers<'de> {
    const NAMES: &'static [&'static str] = &["kty", "crv", "x", "y"];

    fn read<A: MapAccess<'de>>(&mut self, index: usize, access: &mut A) -> Result<(), A::Error> {
        let value = json::loose(access)?;
        match index {
            0 => self.kty = value,
            1 => self.crv = value,
            2 => self.x = value,
            _ => self.y = value,
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
/// here plus its members in [`JwkMembers`] and its arm in [`PublicJwk::read`].
enum KeyType {
    /// `{"kty":"OKP","crv":"Ed25519"}` (RFC 8037).
    Ed25519,
    /// `{"kty":"EC","crv":"P-256"}` (RFC 7518 §6.2).
    P256,
}

impl KeyType {
    fn of(members: &JwkMembers<'_>) -> Result<Self, ProtoError> {
        match (members.kty.as_str(), members.crv.as_str()) {
            (Some("OKP"), Some("Ed25519")) => Ok(Self::Ed25519),
            (Some("OKP"), _) => Err(ProtoError::InvalidJwk {
                reason: "an OKP key's crv must be Ed25519",
            }),
            (Some("EC"), Some("P-256")) => Ok(Self::P256),
            (Some("EC"), _) => Err(ProtoError::InvalidJwk {
                reason: "an EC key's crv must be P-256",
            }),
            _ => Err(ProtoError::InvalidJwk {
                reason: "kty must be OKP (Ed25519) or EC (P-256)",
            }),
        }
    }
}

/// Turns a proof's `jwk` into a checked key, ready to verify signatures.
///
/// Decoding a point costs about a tenth of a signature check. A server that sees the
/// same device keys again and again may remember decoded keys (decoding is a pure
/// function of the JWK); the protocol core itself remembers nothing and uses
/// [`DecodeEveryTime`].
pub trait KeyDecoder {
    /// Must return exactly what [`PublicJwk::decode`] returns for `jwk`.
    fn decode(&self, jwk: &PublicJwk) -> Result<ProofKey, ProtoError>;
}

/// The [`KeyDecoder`] that decodes every key ([`PublicJwk::decode`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeEveryTime;

impl KeyDecoder for DecodeEveryTime {
    fn decode(&self, jwk: &PublicJwk) -> Result<ProofKey, ProtoError> {
        jwk.decode()
    }
}

/// The key kinds of a device key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    /// `{"crv":"Ed25519","kty":"OKP","x":…}`: the 32-byte public key.
    Ed25519([u8; 32]),
    /// `{"crv":"P-256","kty":"EC","x":…,"y":…}`: the affine coordinates.
    P256(P256Coordinates),
}

/// A device public key in JWK form: Ed25519 (`{"crv":"Ed25519","kty":"OKP","x":…}`) or
/// P-256 (`{"crv":"P-256","kty":"EC","x":…,"y":…}`).
///
/// Holds the key's bytes only; [`decode`](Self::decode) checks it is a usable point.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PublicJwk(Kind);

impl PublicJwk {
    /// Wraps the 32 raw bytes of an Ed25519 public key.
    pub fn from_bytes(x: [u8; 32]) -> Self {
        Self(Kind::Ed25519(x))
    }

    /// The public key of an ed25519-dalek verifying key.
    pub fn from_verifying_key(key: &VerifyingKey) -> Self {
        Self::from_bytes(key.to_bytes())
    }

    /// Wraps the affine coordinates of a P-256 public key (32 bytes each, big-endian,
    /// as a JWK's `x` and `y` and WebCrypto's raw export after the `04` byte carry them).
    pub fn from_p256_coordinates(x: [u8; 32], y: [u8; 32]) -> Self {
        Self(Kind::P256(P256Coordinates { x, y }))
    }

    /// Reads a public JWK strictly: `kty` `OKP` with `crv` `Ed25519` and a 32-byte `x`,
    /// or `kty` `EC` with `crv` `P-256` and 32-byte `x` and `y`; canonical base64url;
    /// no private members (`d` and friends). The key is checked to be usable
    /// ([`decode`](Self::decode)) where this build can decode it: Ed25519 always, P-256
    /// with the `es256` feature. The rules are those of a proof's `jwk` header, applied
    /// by the same code.
    pub fn from_json(value: &Value) -> Result<Self, ProtoError> {
        let jwk = Self::read(json::members_of_value(value))?;
        match jwk.0 {
            Kind::P256(_) if !cfg!(feature = "es256") => Ok(jwk),
            _ => jwk.decode().map(|_| jwk),
        }
    }

    /// The one set of JWK rules, on the members a strict parse read (from a JWS header
    /// or a JSON value); also returns the decoded key.
    pub(crate) fn parse(
        jwk: Nested<JwkMembers<'_>>,
        decoder: &dyn KeyDecoder,
    ) -> Result<(Self, ProofKey), ProtoError> {
        let jwk = Self::read(jwk)?;
        let key = decoder.decode(&jwk)?;
        Ok((jwk, key))
    }

    /// The rules on the members, without decoding the key.
    fn read(jwk: Nested<JwkMembers<'_>>) -> Result<Self, ProtoError> {
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
                Ok(Self::from_bytes(b64::decode_array::<32>(x, "jwk x")?))
            }
            KeyType::P256 => Ok(Self(Kind::P256(P256Coordinates::from_members(
                members.x.as_str(),
                members.y.as_str(),
            )?))),
        }
    }

    /// The proof algorithm this key signs with: `EdDSA` for Ed25519, `ES256` for P-256.
    pub fn alg(&self) -> ProofAlg {
        match self.0 {
            Kind::Ed25519(_) => ProofAlg::EdDSA,
            Kind::P256(_) => ProofAlg::ES256,
        }
    }

    /// The raw 32-byte public key of an Ed25519 key (`None` for P-256).
    pub fn ed25519_bytes(&self) -> Option<&[u8; 32]> {
        match &self.0 {
            Kind::Ed25519(x) => Some(x),
            Kind::P256(_) => None,
        }
    }

    /// The affine coordinates `(x, y)` of a P-256 key (`None` for Ed25519).
    pub fn p256_coordinates(&self) -> Option<(&[u8; 32], &[u8; 32])> {
        match &self.0 {
            Kind::Ed25519(_) => None,
            Kind::P256(c) => Some((&c.x, &c.y)),
        }
    }

    /// The key as ed25519-dalek's verifying key: fails for bytes that are not a point,
    /// and for a P-256 key.
    pub fn verifying_key(&self) -> Result<VerifyingKey, ProtoError> {
        let Kind::Ed25519(x) = &self.0 else {
            return Err(ProtoError::InvalidJwk {
                reason: "not an Ed25519 key",
            });
        };
        VerifyingKey::from_bytes(x).map_err(|_| ProtoError::InvalidJwk {
            reason: "x is not a valid Ed25519 point",
        })
    }

    /// The key in the form a signature check uses, checked: an Ed25519 point that is
    /// not of small order, or a P-256 point on the curve that is not the identity.
    /// Refusals: [`ProtoError::InvalidJwk`] for bytes that are not a point,
    /// [`ProtoError::WeakKey`] for a small-order key or the identity. A P-256 key needs
    /// the `es256` feature ([`ProtoError::UnsupportedAlg`] without it).
    pub fn decode(&self) -> Result<ProofKey, ProtoError> {
        match &self.0 {
            Kind::Ed25519(_) => {
                let key = self.verifying_key()?;
                if key.is_weak() {
                    return Err(ProtoError::WeakKey);
                }
                Ok(ProofKey {
                    jwk: *self,
                    key: Decoded::Ed25519(key),
                })
            }
            Kind::P256(c) => {
                if c.is_identity_encoding() {
                    return Err(ProtoError::WeakKey);
                }
                #[cfg(feature = "es256")]
                {
                    Ok(ProofKey {
                        jwk: *self,
                        key: Decoded::P256(crate::es256_verify::decode(c)?),
                    })
                }
                #[cfg(not(feature = "es256"))]
                Err(ProtoError::UnsupportedAlg)
            }
        }
    }

    /// The JWK as JSON, members in RFC 7638 canonical order.
    pub fn to_json(&self) -> Value {
        match &self.0 {
            Kind::Ed25519(x) => json!({"crv": "Ed25519", "kty": "OKP", "x": b64::encode(x)}),
            Kind::P256(c) => json!({
                "crv": "P-256", "kty": "EC", "x": b64::encode(c.x), "y": b64::encode(c.y)
            }),
        }
    }

    /// The RFC 7638 thumbprint (`jkt`): base64url(SHA-256 of the canonical JWK), which
    /// is exactly what a proof header carries ([`header_json`](Self::header_json): the
    /// required members only, in lexicographic order, no whitespace).
    pub fn thumbprint(&self) -> String {
        b64::encode(Sha256::digest(self.header_json()))
    }

    /// The `jwk` member of a proof header, as written in the signing input (members in
    /// canonical order, as `serde_json` writes them): also the RFC 7638 thumbprint input.
    pub fn header_json(&self) -> String {
        match &self.0 {
            Kind::Ed25519(x) => {
                let mut json = String::with_capacity(80);
                json.push_str(r#"{"crv":"Ed25519","kty":"OKP","x":""#);
                json.push_str(&b64::encode(x));
                json.push_str(r#""}"#);
                json
            }
            Kind::P256(c) => {
                let mut json = String::with_capacity(140);
                json.push_str(r#"{"crv":"P-256","kty":"EC","x":""#);
                json.push_str(&b64::encode(c.x));
                json.push_str(r#"","y":""#);
                json.push_str(&b64::encode(c.y));
                json.push_str(r#""}"#);
                json
            }
        }
    }
}

/// A device key checked and decoded for signature checks ([`PublicJwk::decode`]).
/// Cheap to clone; a server may remember these by their [`PublicJwk`].
#[derive(Clone, Debug)]
pub struct ProofKey {
    jwk: PublicJwk,
    key: Decoded,
}

#[derive(Clone, Debug)]
enum Decoded {
    Ed25519(VerifyingKey),
    #[cfg(feature = "es256")]
    P256(crate::es256_verify::Key),
}

impl PartialEq for ProofKey {
    /// Decoding is a pure function of the JWK: equal JWKs are equal keys.
    fn eq(&self, other: &Self) -> bool {
        self.jwk == other.jwk
    }
}

impl Eq for ProofKey {}

impl ProofKey {
    /// The JWK this key was decoded from.
    pub fn jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// Verifies a JWS signature over `message` made with this key's algorithm
    /// (`verify_strict` for Ed25519; the signature's form was checked when the JWS was
    /// parsed).
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), ProtoError> {
        match &self.key {
            Decoded::Ed25519(key) => key
                .verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
                .map_err(|_| ProtoError::InvalidSignature),
            #[cfg(feature = "es256")]
            Decoded::P256(key) => crate::es256_verify::verify(key, message, signature),
        }
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
            PublicJwk::from_json(&json!({"kty":"RSA","n":x,"e":"AQAB"})),
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
            fn decode(&self, _jwk: &PublicJwk) -> Result<ProofKey, ProtoError> {
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
        let jwk = PublicJwk::from_verifying_key(&key.verifying_key());
        assert_eq!(DecodeEveryTime.decode(&jwk).unwrap().jwk(), &jwk);
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

    /// RFC 7638 §3.1's example is RSA; for P-256 the canonical form is
    /// `{"crv","kty","x","y"}`, checked here against a hand-written string.
    #[test]
    fn p256_thumbprint_and_json() {
        let x = [0x11u8; 32];
        let y = [0xeeu8; 32];
        let jwk = PublicJwk::from_p256_coordinates(x, y);
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            b64::encode(x),
            b64::encode(y)
        );
        assert_eq!(jwk.thumbprint(), b64::encode(Sha256::digest(&canonical)));
        assert_eq!(jwk.to_json().to_string(), canonical);
        assert_eq!(jwk.header_json(), canonical);
        assert_eq!(jwk.alg(), ProofAlg::ES256);
        assert_eq!(jwk.p256_coordinates(), Some((&x, &y)));
        assert_eq!(jwk.ed25519_bytes(), None);
        assert!(jwk.verifying_key().is_err());
    }

    #[test]
    fn p256_members_are_checked() {
        let c = b64::encode([1u8; 32]);
        for (value, expected) in [
            (
                json!({"kty":"EC","crv":"P-256","x":c,"y":c,"d":c}),
                ProtoError::PrivateKeyInJwk,
            ),
            (
                json!({"kty":"EC","crv":"P-384","x":c,"y":c}),
                ProtoError::InvalidJwk {
                    reason: "an EC key's crv must be P-256",
                },
            ),
            (
                json!({"kty":"EC","crv":"P-256","x":c}),
                ProtoError::InvalidJwk {
                    reason: "y is missing",
                },
            ),
            (
                json!({"kty":"EC","crv":"P-256","x":b64::encode([1u8; 31]),"y":c}),
                ProtoError::InvalidJwk {
                    reason: "P-256 coordinates x and y must be 32 bytes each",
                },
            ),
            (
                json!({"kty":"EC","crv":"P-256","x":b64::encode([0u8; 32]),"y":b64::encode([0u8; 32])}),
                ProtoError::WeakKey,
            ),
        ] {
            assert_eq!(PublicJwk::from_json(&value), Err(expected), "{value}");
        }
    }

    #[cfg(feature = "es256")]
    #[test]
    fn p256_points_must_be_on_the_curve() {
        // The generator G of P-256 (SEC 2), and G with y changed.
        let hex = |s: &str| -> [u8; 32] {
            std::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        };
        let gx = hex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296");
        let gy = hex("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5");
        assert!(PublicJwk::from_p256_coordinates(gx, gy).decode().is_ok());
        let mut y = gy;
        y[31] ^= 1;
        assert_eq!(
            PublicJwk::from_p256_coordinates(gx, y).decode(),
            Err(ProtoError::InvalidJwk {
                reason: "x, y is not a point on P-256"
            })
        );
        assert_eq!(
            PublicJwk::from_p256_coordinates([0xff; 32], gy).decode(),
            Err(ProtoError::InvalidJwk {
                reason: "x, y is not a point on P-256"
            })
        );
    }

    #[cfg(not(feature = "es256"))]
    #[test]
    fn p256_keys_need_the_es256_feature_to_decode() {
        let jwk = PublicJwk::from_p256_coordinates([1u8; 32], [2u8; 32]);
        assert_eq!(jwk.decode(), Err(ProtoError::UnsupportedAlg));
        assert_eq!(PublicJwk::from_json(&jwk.to_json()), Ok(jwk));
    }
}
