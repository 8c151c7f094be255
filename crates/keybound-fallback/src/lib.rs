//! keybound's fallback signer: an Ed25519 key inside WebAssembly, made only when the app
//! asks for it (`forceWasmKeys`). A browser without WebCrypto Ed25519 gets a
//! non-extractable WebCrypto P-256 key instead.
//!
//! The browser SDK ships it as a file of its own (`keybound_fallback_bg.wasm`) that a
//! page fetches only when it needs it (such a key is made or loaded), so other pages
//! never download it. The SDK's driver creates the seed with `crypto.getRandomValues`, stores
//! it sealed under a non-extractable AES-GCM key, and hands it here to sign.
//!
//! What it guarantees less than a WebCrypto key: the seed is decrypted into page memory
//! to sign, and any script running in the page can ask the AES-GCM key to decrypt it,
//! so a cross-site scripting attack can copy the seed off the device. A non-extractable
//! WebCrypto key cannot be copied.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroize;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen::prelude::wasm_bindgen;

/// An Ed25519 signing key; its memory is wiped when dropped (`free()` in JavaScript).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen)]
pub struct FallbackKey {
    key: SigningKey,
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen)]
impl FallbackKey {
    /// The key of a 32-byte seed (`None` for any other length). The seed's bytes are
    /// wiped here once read.
    pub fn from_seed(mut seed: Vec<u8>) -> Option<FallbackKey> {
        let key = <&[u8; 32]>::try_from(seed.as_slice())
            .ok()
            .map(SigningKey::from_bytes);
        seed.zeroize();
        key.map(|key| FallbackKey { key })
    }

    /// The 32-byte public key (the JWK's `x`).
    pub fn public_key(&self) -> Vec<u8> {
        self.key.verifying_key().to_bytes().to_vec()
    }

    /// The 64-byte Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).to_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keybound_proto::{DpopProof, ProofBuilder, PublicJwk};

    #[test]
    fn proofs_signed_here_verify() {
        let key = FallbackKey::from_seed(vec![7u8; 32]).unwrap();
        let x: [u8; 32] = key.public_key().try_into().unwrap();
        let builder = ProofBuilder::new(
            PublicJwk::from_bytes(x),
            "GET",
            "https://api.example/x",
            1_700_000_000,
            [1u8; 16],
        )
        .unwrap();
        let signature: [u8; 64] = key
            .sign(builder.signing_input().as_bytes())
            .try_into()
            .unwrap();
        let proof = DpopProof::parse(&builder.finish(&signature)).unwrap();
        proof.verify_signature().unwrap();
    }

    #[test]
    fn only_32_byte_seeds() {
        assert!(FallbackKey::from_seed(vec![1u8; 31]).is_none());
        assert!(FallbackKey::from_seed(vec![1u8; 33]).is_none());
    }
}
