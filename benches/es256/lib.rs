//! Shared material for the ES256 benchmarks in `benches/`: one device key, a corpus of
//! distinct messages with their signatures, and each candidate library's verify call on
//! them, so every library checks exactly the same bytes.
//!
//! Signatures are the JWS form (64-byte `r || s`), messages about the size of a DPoP
//! proof's signing input. A verifier never sees the same signature twice in a row: the
//! benches cycle through the corpus.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use p256::ecdsa::signature::{Signer as _, Verifier as _};

/// Messages and signatures by one P-256 key, with the key pre-parsed by each library.
pub struct Corpus {
    sec1: Vec<u8>,
    messages: Vec<Vec<u8>>,
    signatures: Vec<[u8; 64]>,
    p256_key: p256::ecdsa::VerifyingKey,
    aws_lc_key: aws_lc_rs::signature::ParsedPublicKey,
}

impl Corpus {
    /// `n` distinct messages (n ≥ 1), each signed by a fixed key.
    pub fn new(n: usize) -> Self {
        let signing = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let p256_key = *signing.verifying_key();
        let sec1 = p256_key.to_sec1_bytes().to_vec();
        let messages: Vec<Vec<u8>> = (0..n as u32)
            .map(|i| {
                let mut m = vec![0x42u8; 320];
                m[..4].copy_from_slice(&i.to_le_bytes());
                m
            })
            .collect();
        let signatures = messages
            .iter()
            .map(|m| {
                let sig: p256::ecdsa::Signature = signing.sign(m);
                let mut out = [0u8; 64];
                out.copy_from_slice(&sig.to_bytes());
                out
            })
            .collect();
        let aws_lc_key = aws_lc_rs::signature::ParsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            &sec1,
        )
        .unwrap();
        Self {
            sec1,
            messages,
            signatures,
            p256_key,
            aws_lc_key,
        }
    }

    /// The number of message/signature pairs.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the corpus is empty (never: `new` takes n ≥ 1).
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The uncompressed SEC1 public key (`04 || x || y`).
    pub fn sec1(&self) -> &[u8] {
        &self.sec1
    }

    /// RustCrypto `p256`: signature from its 64 bytes, verify with the parsed key.
    pub fn verify_p256(&self, i: usize) {
        let sig = p256::ecdsa::Signature::from_slice(&self.signatures[i]).unwrap();
        self.p256_key.verify(&self.messages[i], &sig).unwrap();
    }

    /// `ring`: its API parses the public key on every verify (no parsed-key type).
    pub fn verify_ring(&self, i: usize) {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            &self.sec1,
        )
        .verify(&self.messages[i], &self.signatures[i])
        .unwrap();
    }

    /// `aws-lc-rs`: verify with the parsed key.
    pub fn verify_aws_lc(&self, i: usize) {
        self.aws_lc_key
            .verify_sig(&self.messages[i], &self.signatures[i])
            .unwrap();
    }

    /// `aws-lc-rs`, parsing the key for this one verify (as `ring` does).
    pub fn verify_aws_lc_unparsed(&self, i: usize) {
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            &self.sec1,
        )
        .verify(&self.messages[i], &self.signatures[i])
        .unwrap();
    }

    /// `p256`: decode the public key (point on the curve check).
    pub fn decode_p256(&self) -> p256::ecdsa::VerifyingKey {
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&self.sec1).unwrap()
    }

    /// `aws-lc-rs`: parse the public key.
    pub fn decode_aws_lc(&self) -> aws_lc_rs::signature::ParsedPublicKey {
        aws_lc_rs::signature::ParsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            &self.sec1,
        )
        .unwrap()
    }
}
