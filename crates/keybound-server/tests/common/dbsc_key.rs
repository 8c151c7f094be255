//! A browser's DBSC key (ECDSA P-256) and the proofs Chromium makes with it.

use keybound_server::proto::b64;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

pub struct BrowserKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl BrowserKey {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self { pair, rng }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "x": b64::encode(&point[1..33]), "y": b64::encode(&point[33..])})
    }

    /// A proof as Chromium 156 makes it: the key in the header and `authorization` at
    /// registration only.
    pub fn proof(&self, jti: &str, authorization: Option<&str>) -> String {
        let mut header = json!({"alg": "ES256", "typ": "dbsc+jwt"});
        let mut payload = json!({"jti": jti});
        if let Some(authorization) = authorization {
            header["jwk"] = self.jwk();
            payload["authorization"] = json!(authorization);
        }
        let input = format!(
            "{}.{}",
            b64::encode(header.to_string()),
            b64::encode(payload.to_string())
        );
        let signature = self.pair.sign(&self.rng, input.as_bytes()).unwrap();
        format!("{input}.{}", b64::encode(signature.as_ref()))
    }
}
