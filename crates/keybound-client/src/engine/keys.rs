//! The device key: which kind to make, whether a stored one stays, its public half.
//!
//! The private half never enters the engine: a WebCrypto key signs in the browser, a
//! module key in the separately loaded fallback module. Adding a kind (say a WebCrypto
//! P-256 key for browsers without Ed25519) means a name here, its place in
//! [`Engine::key_kinds`], and a generator in the driver's key table.

#[allow(unused_imports)]
use crate::prelude::*;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen::prelude::wasm_bindgen;

use keybound_proto::PublicJwk;

use super::{DeviceKey, Engine, Staged};
use crate::ClientError;

/// Where a device key lives and signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A non-extractable WebCrypto Ed25519 key: the private key never enters the
    /// module or JavaScript.
    WebCrypto,
    /// An ed25519-dalek key in the fallback module, its seed stored encrypted under a
    /// non-extractable AES-GCM key (for browsers without WebCrypto Ed25519).
    Wasm,
}

impl KeyKind {
    /// `"webcrypto"` or `"wasm"` (`kb.keyKind`, and the stored record's `kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebCrypto => "webcrypto",
            Self::Wasm => "wasm",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "webcrypto" => Some(Self::WebCrypto),
            "wasm" => Some(Self::Wasm),
            _ => None,
        }
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen)]
impl Engine {
    /// The kinds of key to try when making one, best first, space-separated: a
    /// WebCrypto key where the browser has one, else the module key; only the module
    /// key when `force_wasm` (`forceWasmKeys`).
    pub fn key_kinds(force_wasm: bool) -> String {
        if force_wasm {
            KeyKind::Wasm.as_str().to_owned()
        } else {
            let mut kinds = String::from(KeyKind::WebCrypto.as_str());
            kinds.push(' ');
            kinds.push_str(KeyKind::Wasm.as_str());
            kinds
        }
    }

    /// Takes up a device key: its kind and the 32 bytes of its Ed25519 public key.
    /// `false` (and a `storage_error`) when they are not that.
    pub fn set_key(&mut self, kind: &str, public_key: &[u8]) -> bool {
        let (Some(kind), Ok(x)) = (KeyKind::parse(kind), <[u8; 32]>::try_from(public_key)) else {
            self.fail(ClientError::Storage {
                op: "stored device key is malformed",
            });
            return false;
        };
        let jwk = PublicJwk::from_bytes(x);
        self.key = Some(DeviceKey {
            kind,
            thumbprint: jwk.thumbprint(),
            jwk,
        });
        true
    }

    /// Whether the stored key just taken up stays, given the staged session record: a
    /// test or app asking for module keys (`force_wasm`) gets one, unless a live
    /// session is bound to the stored key. When it does not stay, the engine forgets it.
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

    /// `"webcrypto"` or `"wasm"`.
    pub fn key_kind(&self) -> Option<String> {
        self.key.as_ref().map(|k| k.kind.as_str().to_owned())
    }
}

impl Engine {
    pub(super) fn key_thumbprint(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.thumbprint.as_str())
    }
}
