//! Device keys of either kind: Ed25519 (`OKP`, signs `EdDSA` proofs) and ECDSA P-256
//! (`EC`, signs `ES256` proofs), read from and written as private JWKs.

use aws_lc_rs::encoding::AsBigEndian as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use keybound_proto::{ProofAlg, ProtoError, PublicJwk, Signer, b64};
use keybound_server::ServerKey;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::error::CliError;
use crate::input::private_key_from_json;

/// A private device key.
pub(crate) enum DeviceKey {
    /// Ed25519 (the same key type as a server key).
    Ed25519(ServerKey),
    /// ECDSA P-256.
    P256(EcdsaKeyPair),
}

impl DeviceKey {
    /// A new random key for `alg`.
    pub(crate) fn generate(alg: ProofAlg) -> Result<Self, CliError> {
        match alg {
            ProofAlg::EdDSA => ServerKey::generate()
                .map(Self::Ed25519)
                .map_err(|e| CliError::Random(e.to_string())),
            ProofAlg::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map(Self::P256)
                .map_err(|_| CliError::Random("P-256 key generation failed".into())),
        }
    }

    /// Reads a private JWK: `{"kty":"OKP","crv":"Ed25519","d",…}` or
    /// `{"kty":"EC","crv":"P-256","x","y","d",…}` (the public members, when present,
    /// must match `d`).
    pub(crate) fn from_json(value: &Value, what: &'static str) -> Result<Self, CliError> {
        if value.get("kty").and_then(Value::as_str) != Some("EC") {
            return private_key_from_json(value, what).map(Self::Ed25519);
        }
        if value.get("crv").and_then(Value::as_str) != Some("P-256") {
            return Err(CliError::invalid(what, "an EC key's crv must be P-256"));
        }
        let member = |name: &'static str| -> Result<Zeroizing<[u8; 32]>, CliError> {
            let text = value.get(name).and_then(Value::as_str).ok_or_else(|| {
                CliError::invalid(what, format!("a P-256 private JWK needs {name}"))
            })?;
            b64::decode_array::<32>(text, "jwk member")
                .map(Zeroizing::new)
                .map_err(|_| {
                    CliError::invalid(what, format!("{name} must be 32 bytes of base64url"))
                })
        };
        let (d, x, y) = (member("d")?, member("x")?, member("y")?);
        let mut sec1 = [4u8; 65];
        sec1[1..33].copy_from_slice(&*x);
        sec1[33..].copy_from_slice(&*y);
        EcdsaKeyPair::from_private_key_and_public_key(&ECDSA_P256_SHA256_FIXED_SIGNING, &*d, &sec1)
            .map(Self::P256)
            .map_err(|_| CliError::invalid(what, "d, x and y are not a matching P-256 key pair"))
    }

    /// The private JWK, members `kty`, `crv`, `x` (`y`), `d` and `kid` (the thumbprint).
    pub(crate) fn to_private_jwk(&self) -> Result<Zeroizing<String>, CliError> {
        match self {
            Self::Ed25519(key) => Ok(key.to_private_jwk()),
            Self::P256(pair) => {
                let d = pair
                    .private_key()
                    .as_be_bytes()
                    .map_err(|_| CliError::Random("P-256 key export failed".into()))?;
                let public = self.public_jwk();
                let mut jwk = public.to_json();
                jwk["d"] = json!(b64::encode(d.as_ref()));
                jwk["kid"] = json!(public.thumbprint());
                let text = Zeroizing::new(jwk.to_string());
                if let Some(Value::String(d)) = jwk.get_mut("d") {
                    zeroize::Zeroize::zeroize(d);
                }
                Ok(text)
            }
        }
    }
}

impl Signer for DeviceKey {
    fn public_jwk(&self) -> PublicJwk {
        match self {
            Self::Ed25519(key) => key.signing_key().public_jwk(),
            Self::P256(pair) => {
                // Uncompressed SEC1: 04 || x || y.
                let sec1 = pair.public_key().as_ref();
                let mut x = [0u8; 32];
                let mut y = [0u8; 32];
                x.copy_from_slice(&sec1[1..33]);
                y.copy_from_slice(&sec1[33..65]);
                PublicJwk::from_p256_coordinates(x, y)
            }
        }
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], ProtoError> {
        match self {
            Self::Ed25519(key) => key.signing_key().sign(message),
            Self::P256(pair) => {
                let failed = || ProtoError::SigningFailed {
                    reason: "ECDSA P-256 signing failed".into(),
                };
                let signature = pair
                    .sign(&SystemRandom::new(), message)
                    .map_err(|_| failed())?;
                signature.as_ref().try_into().map_err(|_| failed())
            }
        }
    }
}
