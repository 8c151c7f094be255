//! The device key: which kind to make, whether a stored one stays, its public half.
//!
//! The private half never enters the engine: a WebCrypto key signs in the browser, a
//! module key in the separately loaded fallback module. Adding a kind means a name
//! here, its place in [`Engine::key_kinds`], its public key in [`Engine::set_key`], and
//! a generator in the driver's key table (`js/store.js`).

#[allow(unused_imports)]
use crate::prelude::*;

use keybound_proto::PublicJwk;

use super::{DeviceKey, Engine, Staged};
use crate::ClientError;

/// Where a device key lives and signs, and with which algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A non-extractable WebCrypto Ed25519 key (proofs `EdDSA`): the private key never
    /// enters the module or JavaScript.
    WebCrypto,
    /// A non-extractable WebCrypto ECDSA P-256 key (proofs `ES256`), for browsers
    /// without WebCrypto Ed25519: the same guarantee as [`WebCrypto`](Self::WebCrypto).
    WebCryptoP256,
    /// An ed25519-dalek key in the fallback module, its seed stored encrypted under a
    /// non-extractable AES-GCM key; only made when the app asks (`forceWasmKeys`).
    Wasm,
}

impl KeyKind {
    /// `"webcrypto"`, `"webcrypto-p256"` or `"wasm"` (`kb.keyKind`, and the stored
    /// record's `kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebCrypto => "webcrypto",
            Self::WebCryptoP256 => "webcrypto-p256",
            Self::Wasm => "wasm",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "webcrypto" => Some(Self::WebCrypto),
            "webcrypto-p256" => Some(Self::WebCryptoP256),
            "wasm" => Some(Self::Wasm),
            _ => None,
        }
    }

    /// The public JWK of a key of this kind from the public key the driver exported:
    /// the 32 bytes of an Ed25519 key, or WebCrypto's raw P-256 point `04 || x || y`.
    fn public_jwk(self, public_key: &[u8]) -> Option<PublicJwk> {
        match self {
            Self::WebCrypto | Self::Wasm => <[u8; 32]>::try_from(public_key)
                .ok()
                .map(PublicJwk::from_bytes),
            Self::WebCryptoP256 => {
                let (x, y) = public_key.strip_prefix(&[4])?.split_first_chunk::<32>()?;
                Some(PublicJwk::from_p256_coordinates(*x, y.try_into().ok()?))
            }
        }
    }
}

impl Engine {
    /// The kinds of key to try when making one, best first, space-separated: a
    /// WebCrypto Ed25519 key, else (a browser without WebCrypto Ed25519) a WebCrypto
    /// P-256 key; both are non-extractable. The module key only when `force_wasm`
    /// (`forceWasmKeys`): it guarantees less (its sealed seed can be decrypted by any
    /// script in the page), so it is never chosen on the app's behalf.
    pub fn key_kinds(force_wasm: bool) -> String {
        if force_wasm {
            KeyKind::Wasm.as_str().to_owned()
        } else {
            let mut kinds = String::from(KeyKind::WebCrypto.as_str());
            kinds.push(' ');
            kinds.push_str(KeyKind::WebCryptoP256.as_str());
            kinds
        }
    }

    /// The device key of `kind` with `public_key` (32 bytes for Ed25519, `04 || x || y`
    /// for P-256, as WebCrypto exports them raw), or `None` (and a `storage_error`)
    /// when they are not that.
    fn device_key(&mut self, kind: &str, public_key: &[u8]) -> Option<(KeyKind, PublicJwk)> {
        let key = KeyKind::parse(kind).and_then(|kind| Some((kind, kind.public_jwk(public_key)?)));
        if key.is_none() {
            self.fail(ClientError::Storage {
                op: "stored device key is malformed",
            });
        }
        key
    }

    /// The canonical JWK of a device key (see [`set_key`](Self::set_key)): the RFC 7638
    /// members in lexicographic order, as proof headers carry it. The driver hashes it
    /// with WebCrypto's SHA-256 into the key's thumbprint, so the module carries no
    /// SHA-256 of its own. `None` (and a `storage_error`) for a malformed key.
    pub fn key_jwk(&mut self, kind: &str, public_key: &[u8]) -> Option<String> {
        self.device_key(kind, public_key)
            .map(|(_, jwk)| jwk.header_json())
    }

    /// Takes up a device key: its kind, its public key (32 bytes for Ed25519,
    /// `04 || x || y` for P-256, as WebCrypto exports them raw) and its RFC 7638
    /// `thumbprint` (base64url of the SHA-256 of [`key_jwk`](Self::key_jwk)). `false`
    /// (and a `storage_error`) when they are not that.
    pub fn set_key(&mut self, kind: &str, public_key: &[u8], thumbprint: &str) -> bool {
        let Some((kind, jwk)) = self.device_key(kind, public_key) else {
            return false;
        };
        // A SHA-256 in base64url: 43 characters of its alphabet.
        let b64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if thumbprint.len() != 43 || !thumbprint.bytes().all(b64url) {
            self.fail(ClientError::Crypto { op: "thumbprint" });
            return false;
        }
        self.key = Some(DeviceKey {
            kind,
            thumbprint: thumbprint.to_owned(),
            jwk,
        });
        true
    }

    /// Whether the stored key just taken up stays, given the staged session record: a
    /// test or app asking for module keys (`force_wasm`) gets one, unless a live
    /// session is bound to the stored key. When it does not stay, the engine forgets it.
    /// A key of any other kind stays until logout: a P-256 key made while the browser
    /// lacked WebCrypto Ed25519 is kept after it gains it (both are non-extractable,
    /// and a new key would mean a new sign-in).
    pub fn keep_key(&mut self, force_wasm: bool) -> bool {
        let Some(key) = &self.key else {
            return false;
        };
        let bound = matches!(&self.staged, Staged::Live { jkt, .. } if *jkt == key.thumbprint);
        if force_wasm && key.kind != KeyKind::Wasm && !bound {
            self.key = None;
            return false;
        }
        true
    }

    /// Forgets the device key (logout deletes it).
    pub fn drop_key(&mut self) {
        self.key = None;
    }

    /// The device key's RFC 7638 thumbprint.
    pub fn thumbprint(&self) -> Option<String> {
        self.key.as_ref().map(|k| k.thumbprint.clone())
    }

    /// `"webcrypto"`, `"webcrypto-p256"` or `"wasm"` ([`KeyKind::as_str`]).
    pub fn key_kind(&self) -> Option<String> {
        self.key.as_ref().map(|k| k.kind.as_str().to_owned())
    }
}

impl Engine {
    pub(super) fn key_thumbprint(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.thumbprint.as_str())
    }

    /// What the driver does to take up a key: [`key_jwk`](Self::key_jwk), its SHA-256,
    /// [`set_key`](Self::set_key).
    #[cfg(test)]
    pub(crate) fn take_key(&mut self, kind: &str, public_key: &[u8]) -> bool {
        match self.key_jwk(kind, public_key) {
            Some(jwk) => {
                let thumbprint = keybound_proto::access_token_hash(&jwk);
                self.set_key(kind, public_key, &thumbprint)
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use keybound_proto::{PublicJwk, b64};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{Engine, KeyKind};

    const NOW: f64 = 1_000_000_000.0;
    /// The P-256 base point (the public key of the private key 1), as coordinates.
    const GX: [u8; 32] = [
        0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40,
        0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98,
        0xc2, 0x96,
    ];
    const GY: [u8; 32] = [
        0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e,
        0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf,
        0x51, 0xf5,
    ];

    /// WebCrypto's raw export of a P-256 public key: `04 || x || y`.
    fn raw_point(x: &[u8; 32], y: &[u8; 32]) -> Vec<u8> {
        [&[4u8][..], x, y].concat()
    }

    fn engine() -> Engine {
        Engine::new("https://app.example/session", 120.0, "")
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in [KeyKind::WebCrypto, KeyKind::WebCryptoP256, KeyKind::Wasm] {
            assert_eq!(KeyKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(KeyKind::parse("P-256"), None);
        for name in Engine::key_kinds(false).split(' ') {
            assert!(KeyKind::parse(name).is_some(), "{name}");
        }
    }

    #[test]
    fn a_p256_key_makes_es256_proofs_with_its_jwk() {
        let mut engine = engine();
        assert!(engine.take_key("webcrypto-p256", &raw_point(&GX, &GY)));
        assert_eq!(engine.key_kind().as_deref(), Some("webcrypto-p256"));
        let jwk = PublicJwk::from_p256_coordinates(GX, GY);
        assert_eq!(engine.thumbprint(), Some(jwk.thumbprint()));
        let input = engine
            .proof_input(
                "GET",
                "https://app.example/api/me",
                None,
                None,
                &[1; 16],
                NOW,
            )
            .unwrap();
        let header = b64::decode(input.split('.').next().unwrap(), "header").unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["jwk"], jwk.to_json());
    }

    #[test]
    fn malformed_public_keys_are_refused() {
        let point = raw_point(&GX, &GY);
        let cases: [(&str, &[u8]); 7] = [
            // P-256: no `04` byte, a compressed point, a wrong prefix, one byte more.
            ("webcrypto-p256", &point[1..]),
            ("webcrypto-p256", &[&[2u8][..], &GX].concat()),
            ("webcrypto-p256", &[&[3u8][..], &point[1..]].concat()),
            ("webcrypto-p256", &[&point[..], &[0]].concat()),
            // Ed25519 kinds take 32 bytes only.
            ("webcrypto", &point),
            ("wasm", &GX[..31]),
            // An unknown kind.
            ("ecdsa", &GX),
        ];
        for (kind, public_key) in cases {
            let mut engine = engine();
            assert!(
                !engine.take_key(kind, public_key),
                "{kind} {}",
                public_key.len()
            );
            assert!(engine.take_error().unwrap().starts_with("storage_error\n"));
            assert_eq!(engine.thumbprint(), None);
        }
    }

    #[test]
    fn a_thumbprint_that_is_no_sha256_is_refused() {
        let point = raw_point(&GX, &GY);
        let good = PublicJwk::from_p256_coordinates(GX, GY).thumbprint();
        for bad in [
            "",
            &good[1..],
            &[&good[..42], "="].concat(),
            &[&good, "A"].concat(),
        ] {
            let mut engine = engine();
            assert!(!engine.set_key("webcrypto-p256", &point, bad), "{bad}");
            assert!(engine.take_error().unwrap().starts_with("crypto_error\n"));
            assert_eq!(engine.thumbprint(), None);
        }
        let mut engine = engine();
        assert!(engine.set_key("webcrypto-p256", &point, &good));
        assert_eq!(engine.thumbprint(), Some(good));
    }

    #[test]
    fn a_stored_p256_key_stays_unless_module_keys_are_forced() {
        let mut engine = engine();
        assert!(engine.take_key("webcrypto-p256", &raw_point(&GX, &GY)));
        assert!(
            engine.keep_key(false),
            "kept even where Ed25519 is now available"
        );
        assert!(
            !engine.keep_key(true),
            "forceWasmKeys replaces an unused P-256 key"
        );
        assert_eq!(engine.key_kind(), None);
    }

    /// The proof a WebCrypto P-256 key signs verifies as ES256 with the server's code.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn es256_proofs_verify() {
        use keybound_proto::DpopProof;
        use p256::ecdsa::signature::Signer;

        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let point = key.verifying_key().to_sec1_point(false);
        let mut engine = engine();
        assert!(engine.take_key("webcrypto-p256", point.as_bytes()));
        let input = engine
            .proof_input(
                "POST",
                "https://app.example/api/x",
                Some(keybound_proto::access_token_hash("at")),
                None,
                &[2; 16],
                NOW,
            )
            .unwrap();
        let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
        let proof = DpopProof::parse(&Engine::proof_finish(&input, &signature.to_bytes())).unwrap();
        assert_eq!(proof.alg().name(), "ES256");
        assert_eq!(Some(proof.thumbprint()), engine.thumbprint());
        proof.verify_signature().unwrap();
        proof.check_ath(Some("at")).unwrap();
        assert_eq!(proof.claims().htu, "https://app.example/api/x");
    }
}
