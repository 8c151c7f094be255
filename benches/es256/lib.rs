//! Shared material for the ES256 benchmarks in `benches/`: one device key, a corpus of
//! distinct messages with their signatures, and each candidate library's verify call on
//! them, so every library checks exactly the same bytes.
//!
//! Signatures are the JWS form (64-byte `r || s`), messages about the size of a DPoP
//! proof's signing input. A verifier never sees the same signature twice in a row: the
//! benches cycle through the corpus.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keybound_proto::Signer as _;
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

/// A full ES256 request through keybound's verifier and the same proof check by the
/// `dpop-verifier` crate, on fresh proofs (new `jti`, `iat` = the real clock, which
/// `dpop-verifier` reads itself).
pub struct Requests {
    device: aws_lc_rs::signature::EcdsaKeyPair,
    token: String,
    authorization: String,
    verifier: keybound_server::Verifier,
    dpop_verifier: dpop_verifier::DpopVerifier,
    seen: std::cell::RefCell<SeenJtis>,
    next: std::cell::Cell<u64>,
}

/// `URL` of every request.
pub const URL: &str = "https://api.example.com/api/orders";

impl Requests {
    /// A device key, an access token bound to it, and a verifier that has seen the
    /// token once (so it is cached, as for every request after a client's first).
    pub fn new() -> Self {
        use keybound_proto::AccessTokenClaims;
        use keybound_server::{KeyRing, MemoryReplayStore, ServerKey, SystemClock, Verifier};
        use std::sync::Arc;
        let now = now_secs();
        // The real clock: `dpop-verifier` reads it too, and a run lasts minutes.
        let clock = SystemClock;
        let device = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .unwrap();
        let keys = KeyRing::new(ServerKey::from_seed(&[1u8; 32]));
        let token = keys
            .sign(&AccessTokenClaims {
                iss: "https://api.example.com".into(),
                sub: "user-0001".into(),
                sid: "sess-7f3a2c9e4b1d".into(),
                jti: "at-4c1f0e8a9b7d6c5e".into(),
                iat: now,
                exp: now + 3600,
                jkt: Device(&device).public_jwk().thumbprint(),
            })
            .unwrap();
        let verifier = Verifier::builder()
            .public_origin("https://api.example.com")
            .keys(keys)
            .clock(Arc::new(clock))
            .replay_store(Arc::new(MemoryReplayStore::with_capacity(
                Arc::new(clock),
                4_000_000,
            )))
            // No session store here: the verification itself is measured.
            .danger_accept_any_session()
            .build()
            .unwrap();
        let requests = Self {
            authorization: format!("DPoP {token}"),
            device,
            token,
            verifier,
            dpop_verifier: dpop_verifier::DpopVerifier::new(),
            seen: std::cell::RefCell::new(SeenJtis(std::collections::HashSet::new())),
            next: std::cell::Cell::new(0),
        };
        let first = requests.request();
        ready(requests.verifier.verify(&first)).unwrap();
        requests
    }

    /// A fresh ES256 proof for `GET URL`, bound to the access token.
    pub fn proof(&self) -> String {
        self.next.set(self.next.get() + 1);
        let mut jti = [0x5a; 16];
        jti[..8].copy_from_slice(&self.next.get().to_le_bytes());
        keybound_proto::ProofBuilder::new(
            Device(&self.device).public_jwk(),
            "GET",
            URL,
            now_secs(),
            jti,
        )
        .unwrap()
        .access_token(&self.token)
        .sign(&Device(&self.device))
        .unwrap()
    }

    /// A request carrying the access token and a fresh proof.
    pub fn request(&self) -> http::request::Parts {
        let proof = self.proof();
        http::Request::get("/api/orders?page=2")
            .header("host", "api.example.com")
            .header("authorization", &self.authorization)
            .header("dpop", proof)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    /// keybound's whole check of a request (token from the cache, proof, replay).
    pub fn keybound(&self, request: &http::request::Parts) {
        ready(self.verifier.verify(request)).unwrap();
    }

    /// `dpop-verifier`'s ES256 proof check (`htm`, `htu`, `iat`, `ath`, signature,
    /// replay through an in-memory set).
    pub fn dpop_verifier(&self, proof: &str) {
        ready(self.dpop_verifier.verify(
            &mut *self.seen.borrow_mut(),
            proof,
            URL,
            "GET",
            Some(&self.token),
        ))
        .unwrap();
    }
}

impl Default for Requests {
    fn default() -> Self {
        Self::new()
    }
}

/// An aws-lc-rs P-256 key pair as a proof signer.
struct Device<'a>(&'a aws_lc_rs::signature::EcdsaKeyPair);

impl keybound_proto::Signer for Device<'_> {
    fn public_jwk(&self) -> keybound_proto::PublicJwk {
        use aws_lc_rs::signature::KeyPair as _;
        let sec1 = self.0.public_key().as_ref();
        keybound_proto::PublicJwk::from_p256_coordinates(
            sec1[1..33].try_into().unwrap(),
            sec1[33..65].try_into().unwrap(),
        )
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], keybound_proto::ProtoError> {
        let signature = self
            .0
            .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
            .unwrap();
        Ok(signature.as_ref().try_into().unwrap())
    }
}

/// `dpop-verifier`'s replay store: the `jti` hashes seen.
struct SeenJtis(std::collections::HashSet<[u8; 32]>);

#[async_trait::async_trait]
impl dpop_verifier::ReplayStore for SeenJtis {
    async fn insert_once(
        &mut self,
        jti_hash: [u8; 32],
        _ctx: dpop_verifier::ReplayContext<'_>,
    ) -> Result<bool, dpop_verifier::DpopError> {
        Ok(self.0.insert(jti_hash))
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs a future that never waits (every store here answers at once).
fn ready<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}
