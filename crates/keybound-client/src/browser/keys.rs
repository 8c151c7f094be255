//! The device key and DPoP proofs signed with it.

use ed25519_dalek::SigningKey;
use keybound_proto::{ProofBuilder, PublicJwk};
use wasm_bindgen::JsCast;
use web_sys::{CryptoKey, SubtleCrypto};

use super::js;
use crate::ClientError;

/// Where a device key lives and signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// A non-extractable WebCrypto Ed25519 key: the private key never enters this
    /// module or JavaScript.
    WebCrypto,
    /// An ed25519-dalek key inside this module, its seed stored encrypted under a
    /// non-extractable AES-GCM key (for browsers without WebCrypto Ed25519).
    Wasm,
}

impl KeyKind {
    /// `"webcrypto"` or `"wasm"` (`kb.keyKind`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::WebCrypto => "webcrypto",
            Self::Wasm => "wasm",
        }
    }
}

pub(crate) enum Signer {
    WebCrypto(CryptoKey),
    Wasm(Box<SigningKey>),
}

/// The browser's Ed25519 device key. Loaded and created through the storage; signs DPoP
/// proofs.
pub(crate) struct DeviceKey {
    jwk: PublicJwk,
    thumbprint: String,
    signer: Signer,
}

impl DeviceKey {
    pub(crate) fn new(jwk: PublicJwk, signer: Signer) -> Self {
        Self {
            thumbprint: jwk.thumbprint(),
            jwk,
            signer,
        }
    }

    /// Where the key lives.
    pub(crate) fn kind(&self) -> KeyKind {
        match self.signer {
            Signer::WebCrypto(_) => KeyKind::WebCrypto,
            Signer::Wasm(_) => KeyKind::Wasm,
        }
    }

    /// The public key.
    #[cfg(test)]
    pub(crate) fn jwk(&self) -> PublicJwk {
        self.jwk
    }

    /// The RFC 7638 thumbprint (`jkt`) the server binds the session to.
    pub(crate) fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The WebCrypto private key, for keys of that kind.
    #[cfg(test)]
    pub(crate) fn crypto_key(&self) -> Option<&CryptoKey> {
        match &self.signer {
            Signer::WebCrypto(key) => Some(key),
            Signer::Wasm(_) => None,
        }
    }

    /// Signs `message` with Ed25519.
    pub(crate) async fn sign(&self, message: &[u8]) -> Result<[u8; 64], ClientError> {
        match &self.signer {
            Signer::Wasm(key) => Ok(ed25519_dalek::Signer::sign(&**key, message).to_bytes()),
            Signer::WebCrypto(key) => {
                let signature = subtle()?
                    .sign_with_str_and_u8_array("Ed25519", key, message)
                    .map_err(js::crypto_error("sign"))?;
                let signature = js::wait(signature)
                    .await
                    .map_err(js::crypto_error("sign"))?;
                js::bytes(&signature)
                    .try_into()
                    .map_err(|_| ClientError::Crypto { op: "sign" })
            }
        }
    }

    /// Builds and signs a DPoP proof for `method` and `url` at `iat` (server seconds),
    /// bound to `access_token` (`ath`) and carrying `nonce` when given.
    pub(crate) async fn proof(
        &self,
        method: &str,
        url: &str,
        iat: i64,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|_| ClientError::Crypto { op: "random" })?;
        let mut builder = ProofBuilder::new(self.jwk, method, url, iat, jti)?;
        if let Some(token) = access_token {
            builder = builder.access_token(token);
        }
        if let Some(nonce) = nonce {
            builder = builder.nonce(nonce);
        }
        match &self.signer {
            Signer::Wasm(key) => Ok(builder.sign(&**key)?),
            Signer::WebCrypto(_) => {
                let signature = self.sign(builder.signing_input().as_bytes()).await?;
                Ok(builder.finish(&signature))
            }
        }
    }
}

/// `crypto.subtle`, or the error saying the browser has none (insecure contexts).
pub(crate) fn subtle() -> Result<SubtleCrypto, ClientError> {
    let subtle = js::get(&js::global("crypto"), "subtle");
    if subtle.is_undefined() || subtle.is_null() {
        return Err(ClientError::Unsupported {
            missing: "crypto.subtle (a secure context)",
        });
    }
    Ok(subtle.unchecked_into())
}
