//! The server's access-token signing keys: one current key that signs, previous keys
//! that still verify, published as a JWKS.

use std::collections::HashMap;

use ed25519_dalek::{SigningKey, VerifyingKey};
use keybound_proto::{AccessTokenClaims, ProtoError, PublicJwk, b64, sign_access_token};
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// Errors reading server keys.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The private JWK is malformed.
    #[error("invalid server key: {0}")]
    Invalid(&'static str),
    /// Randomness was unavailable.
    #[error("no randomness available: {0}")]
    Random(String),
}

/// A server signing key with its key id. The secret is zeroized on drop
/// (ed25519-dalek's `SigningKey` zeroizes itself).
pub struct ServerKey {
    kid: String,
    key: SigningKey,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl ServerKey {
    /// A fresh random key; its `kid` is its public key's thumbprint.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    /// The key with this 32-byte seed; its `kid` is its public key's thumbprint.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let kid = PublicJwk::from_verifying_key(&key.verifying_key()).thumbprint();
        Self { kid, key }
    }

    /// The key with an explicit key id.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = kid.into();
        self
    }

    /// Reads a private OKP/Ed25519 JWK (`{"kty":"OKP","crv":"Ed25519","x","d","kid"?}`),
    /// checking that `x` matches `d`.
    pub fn from_private_jwk(jwk: &Value) -> Result<Self, KeyError> {
        let obj = jwk
            .as_object()
            .ok_or(KeyError::Invalid("not a JSON object"))?;
        if obj.get("kty").and_then(Value::as_str) != Some("OKP")
            || obj.get("crv").and_then(Value::as_str) != Some("Ed25519")
        {
            return Err(KeyError::Invalid("not an OKP Ed25519 key"));
        }
        let d = obj
            .get("d")
            .and_then(Value::as_str)
            .ok_or(KeyError::Invalid("d (the private key) is missing"))?;
        let seed = Zeroizing::new(
            b64::decode_array::<32>(d, "d")
                .map_err(|_| KeyError::Invalid("d is not 32 bytes of base64url"))?,
        );
        let key = Self::from_seed(&seed);
        if let Some(x) = obj.get("x").and_then(Value::as_str) {
            if x != b64::encode(key.key.verifying_key().as_bytes()) {
                return Err(KeyError::Invalid("x does not match d"));
            }
        }
        Ok(match obj.get("kid").and_then(Value::as_str) {
            Some(kid) if !kid.is_empty() => key.with_kid(kid),
            _ => key,
        })
    }

    /// The private JWK (for `keybound keygen`); handle with care.
    pub fn to_private_jwk(&self) -> Zeroizing<String> {
        let d = Zeroizing::new(b64::encode(self.key.as_bytes()));
        let x = b64::encode(self.key.verifying_key().as_bytes());
        Zeroizing::new(
            json!({"kty": "OKP", "crv": "Ed25519", "x": x, "d": d.as_str(), "kid": self.kid})
                .to_string(),
        )
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The ed25519-dalek signing key (also a [`keybound_proto::Signer`]).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

/// The key ring: the current signing key plus previous keys kept for verification
/// until the tokens they signed have expired.
#[derive(Debug)]
pub struct KeyRing {
    current: ServerKey,
    verify: HashMap<String, VerifyingKey>,
}

impl KeyRing {
    /// A ring whose only key is `current`.
    pub fn new(current: ServerKey) -> Self {
        let mut verify = HashMap::new();
        verify.insert(current.kid.clone(), current.verifying_key());
        Self { current, verify }
    }

    /// Wraps the ring for sharing between the verifier, the session service and
    /// whoever rotates keys.
    pub fn into_shared(self) -> crate::SharedKeyRing {
        std::sync::Arc::new(std::sync::RwLock::new(self))
    }

    /// A ring with one freshly generated key.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self::new(ServerKey::generate()?))
    }

    /// Adds a previous key that still verifies but no longer signs.
    pub fn with_previous(mut self, kid: impl Into<String>, key: VerifyingKey) -> Self {
        self.verify.insert(kid.into(), key);
        self
    }

    /// Makes `next` the signing key; the old current key stays for verification.
    pub fn rotate(&mut self, next: ServerKey) {
        self.verify.insert(next.kid.clone(), next.verifying_key());
        self.current = next;
    }

    /// Drops a verify-only key (never the current one). Returns whether it was there.
    pub fn retire(&mut self, kid: &str) -> bool {
        kid != self.current.kid && self.verify.remove(kid).is_some()
    }

    /// The current signing key.
    pub fn current(&self) -> &ServerKey {
        &self.current
    }

    /// The verification key for `kid`.
    pub fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verify.get(kid)
    }

    /// Signs access-token claims with the current key.
    pub fn sign(&self, claims: &AccessTokenClaims) -> Result<String, ProtoError> {
        sign_access_token(claims, &self.current.kid, &self.current.key)
    }

    /// The public keys as a JWKS document (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> Value {
        let mut kids: Vec<&String> = self.verify.keys().collect();
        kids.sort();
        let keys: Vec<Value> = kids
            .into_iter()
            .filter_map(|kid| {
                let key = self.verify.get(kid)?;
                let mut jwk = PublicJwk::from_verifying_key(key).to_json();
                if let Value::Object(map) = &mut jwk {
                    map.insert("kid".into(), Value::String(kid.clone()));
                    map.insert("alg".into(), Value::String("EdDSA".into()));
                    map.insert("use".into(), Value::String("sig".into()));
                }
                Some(jwk)
            })
            .collect();
        json!({ "keys": keys })
    }

    /// Reads verification keys from a JWKS document (for tools that only verify).
    pub fn verifying_keys_from_jwks(
        jwks: &Value,
    ) -> Result<HashMap<String, VerifyingKey>, KeyError> {
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(KeyError::Invalid("JWKS has no keys array"))?;
        let mut out = HashMap::new();
        for key in keys {
            let kid = key
                .get("kid")
                .and_then(Value::as_str)
                .ok_or(KeyError::Invalid("a JWKS key has no kid"))?;
            let mut public = key.clone();
            if let Value::Object(map) = &mut public {
                map.retain(|k, _| matches!(k.as_str(), "kty" | "crv" | "x"));
            }
            let jwk = PublicJwk::from_json(&public)
                .map_err(|_| KeyError::Invalid("a JWKS key is not a public Ed25519 JWK"))?;
            let vk = jwk
                .verifying_key()
                .map_err(|_| KeyError::Invalid("a JWKS key is not a valid point"))?;
            out.insert(kid.to_owned(), vk);
        }
        Ok(out)
    }
}
