//! What the SDK keeps in IndexedDB, per storage name:
//!
//! * `vault`: a non-extractable AES-GCM key that encrypts everything secret below;
//! * `device`: the device key (a non-extractable WebCrypto key, or an encrypted seed);
//! * `session`: the live session (tokens encrypted, deadlines in clear), or a marker
//!   saying how the last session ended, so tabs that missed the broadcast find out.
//!
//! Nothing secret is stored in plaintext: the tokens are useless without the device key
//! anyway, and encrypted at rest on top of that.

use std::cell::RefCell;

use ed25519_dalek::SigningKey;
use js_sys::{Array, Object, Uint8Array};
use keybound_proto::{PublicJwk, b64};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CryptoKey, SubtleCrypto};
use zeroize::Zeroizing;

use super::idb::Db;
use super::js;
use super::keys::{DeviceKey, Signer, subtle};
use crate::schedule::Timeline;
use crate::{ClientError, SessionTokens, Terminal};

const VAULT: &str = "vault";
const DEVICE: &str = "device";
const SESSION: &str = "session";
/// Version of the records' layout.
const VERSION: f64 = 1.0;

/// A live session read back from storage.
#[derive(Clone, Debug)]
pub(crate) struct LiveRecord {
    pub(crate) tokens: SessionTokens,
    /// Changes with every write: tells tabs whether the tokens they hold are current.
    pub(crate) stamp: String,
    /// The thumbprint of the key the session is bound to.
    pub(crate) jkt: String,
    /// The server clock offset the writer used.
    pub(crate) offset_ms: i64,
}

/// The `session` record.
#[derive(Clone, Debug)]
pub(crate) enum Stored {
    Nothing,
    Ended {
        terminal: Terminal,
        session_id: Option<String>,
    },
    Live(LiveRecord),
}

/// The SDK's IndexedDB storage.
pub(crate) struct Storage {
    db: Db,
    vault: RefCell<Option<CryptoKey>>,
    subtle: SubtleCrypto,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ClientError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| ClientError::Crypto { op: "random" })?;
    Ok(out)
}

fn device_aad(x: &[u8; 32]) -> Vec<u8> {
    [b"keybound/device/".as_slice(), x].concat()
}

fn session_aad(session_id: &str, jkt: &str) -> Vec<u8> {
    format!("keybound/session/{session_id}/{jkt}").into_bytes()
}

fn malformed() -> ClientError {
    ClientError::Storage {
        op: "stored record is malformed",
    }
}

impl Storage {
    /// Opens the storage `name` (creating the database on first use).
    pub(crate) async fn open(name: &str) -> Result<Self, ClientError> {
        Ok(Self {
            db: Db::open(name).await?,
            vault: RefCell::new(None),
            subtle: subtle()?,
        })
    }

    /// The vault key, created when first needed (a WebCrypto device key needs none until
    /// tokens are stored). When several tabs create it at once, the first one written
    /// wins and the others use it.
    async fn vault(&self) -> Result<CryptoKey, ClientError> {
        if let Some(key) = self.vault.borrow().clone() {
            return Ok(key);
        }
        for _ in 0..2 {
            let existing = self.db.get(VAULT).await?;
            let key = if existing.is_instance_of::<CryptoKey>() {
                existing
            } else {
                let algorithm = js::object(&[("name", "AES-GCM".into()), ("length", 256.into())]);
                let usages = Array::of2(&"encrypt".into(), &"decrypt".into());
                let key = self
                    .subtle
                    .generate_key_with_object(&algorithm, false, &usages)
                    .map_err(js::crypto_error("generate vault key"))?;
                let key = js::wait(key)
                    .await
                    .map_err(js::crypto_error("generate vault key"))?;
                if !self.db.add(VAULT, &key).await? {
                    continue;
                }
                key
            };
            let key: CryptoKey = key.unchecked_into();
            *self.vault.borrow_mut() = Some(key.clone());
            return Ok(key);
        }
        Err(ClientError::Storage { op: "vault key" })
    }

    fn gcm(iv: &Uint8Array, aad: &[u8]) -> Object {
        js::object(&[
            ("name", "AES-GCM".into()),
            ("iv", iv.into()),
            ("additionalData", js::u8_array(aad).into()),
        ])
    }

    /// Encrypts `plain` under the vault key: `{iv, ct}`.
    async fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Object, ClientError> {
        let iv = js::u8_array(&random_bytes::<12>()?);
        let ct = self
            .subtle
            .encrypt_with_object_and_u8_array(&Self::gcm(&iv, aad), &self.vault().await?, plain)
            .map_err(js::crypto_error("encrypt"))?;
        let ct = js::wait(ct).await.map_err(js::crypto_error("encrypt"))?;
        Ok(js::object(&[("iv", iv.into()), ("ct", ct)]))
    }

    /// Decrypts what [`seal`](Self::seal) made; the JavaScript copy of the plaintext is
    /// overwritten once read.
    async fn unseal(
        &self,
        sealed: &JsValue,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let iv = js::get(sealed, "iv");
        let ct = js::get(sealed, "ct");
        if !iv.is_object() || !ct.is_object() {
            return Err(malformed());
        }
        let iv = Uint8Array::new(&iv);
        let plain = self
            .subtle
            .decrypt_with_object_and_js_u8_array(
                &Self::gcm(&iv, aad),
                &self.vault().await?,
                &Uint8Array::new(&ct),
            )
            .map_err(js::crypto_error("decrypt"))?;
        let plain = js::wait(plain).await.map_err(js::crypto_error("decrypt"))?;
        let view = Uint8Array::new(&plain);
        let out = Zeroizing::new(view.to_vec());
        view.fill(0, 0, view.length());
        Ok(out)
    }

    /// The stored device key, if any.
    pub(crate) async fn load_key(&self) -> Result<Option<DeviceKey>, ClientError> {
        let record = self.db.get(DEVICE).await?;
        if !record.is_object() {
            return Ok(None);
        }
        let x: [u8; 32] = js::bytes(&js::get(&record, "x"))
            .try_into()
            .map_err(|_| malformed())?;
        let jwk = PublicJwk::from_bytes(x);
        match js::get_str(&record, "kind").as_deref() {
            Some("webcrypto") => {
                let private = js::get(&record, "privateKey");
                if !private.is_instance_of::<CryptoKey>() {
                    return Err(malformed());
                }
                Ok(Some(DeviceKey::new(
                    jwk,
                    Signer::WebCrypto(private.unchecked_into()),
                )))
            }
            Some("wasm") => {
                let seed = self
                    .unseal(&js::get(&record, "sealed"), &device_aad(&x))
                    .await?;
                let seed: &[u8; 32] = seed.as_slice().try_into().map_err(|_| malformed())?;
                let signing = SigningKey::from_bytes(seed);
                if signing.verifying_key().to_bytes() != x {
                    return Err(malformed());
                }
                Ok(Some(DeviceKey::new(jwk, Signer::Wasm(Box::new(signing)))))
            }
            _ => Err(malformed()),
        }
    }

    /// Creates and stores a device key: WebCrypto Ed25519 when the browser has it and
    /// `force_wasm` is off, else a module key with an encrypted seed. If another tab
    /// stored a key meanwhile, that one is returned instead.
    pub(crate) async fn create_key(&self, force_wasm: bool) -> Result<DeviceKey, ClientError> {
        let webcrypto = if force_wasm {
            None
        } else {
            self.generate_webcrypto().await
        };
        let (record, key) = match webcrypto {
            Some(made) => made,
            None => self.generate_wasm().await?,
        };
        if self.db.add(DEVICE, &record).await? {
            return Ok(key);
        }
        self.load_key().await?.ok_or(ClientError::Storage {
            op: "store device key",
        })
    }

    /// A non-extractable WebCrypto Ed25519 key, or `None` where unsupported.
    async fn generate_webcrypto(&self) -> Option<(Object, DeviceKey)> {
        let usages = Array::of2(&"sign".into(), &"verify".into());
        let pair = self
            .subtle
            .generate_key_with_str("Ed25519", false, &usages)
            .ok()?;
        let pair = js::wait(pair).await.ok()?;
        let private = js::get(&pair, "privateKey").dyn_into::<CryptoKey>().ok()?;
        let public = js::get(&pair, "publicKey").dyn_into::<CryptoKey>().ok()?;
        let raw = self.subtle.export_key("raw", &public).ok()?;
        let x: [u8; 32] = js::bytes(&js::wait(raw).await.ok()?).try_into().ok()?;
        let record = js::object(&[
            ("kind", "webcrypto".into()),
            ("x", js::u8_array(&x).into()),
            ("privateKey", private.clone().into()),
        ]);
        let key = DeviceKey::new(PublicJwk::from_bytes(x), Signer::WebCrypto(private));
        Some((record, key))
    }

    /// An ed25519-dalek key whose seed is sealed under the vault key.
    async fn generate_wasm(&self) -> Result<(Object, DeviceKey), ClientError> {
        let seed = Zeroizing::new(random_bytes::<32>()?);
        let signing = SigningKey::from_bytes(&seed);
        let x = signing.verifying_key().to_bytes();
        let sealed = self.seal(seed.as_slice(), &device_aad(&x)).await?;
        let record = js::object(&[
            ("kind", "wasm".into()),
            ("x", js::u8_array(&x).into()),
            ("sealed", sealed.into()),
        ]);
        Ok((
            record,
            DeviceKey::new(PublicJwk::from_bytes(x), Signer::Wasm(Box::new(signing))),
        ))
    }

    /// Deletes the device key.
    pub(crate) async fn delete_key(&self) -> Result<(), ClientError> {
        self.db.delete(&[DEVICE]).await
    }

    /// Reads the session record. A record this version cannot read (another layout, a
    /// vault key that no longer matches) counts as no session.
    pub(crate) async fn load_session(&self) -> Result<Stored, ClientError> {
        let record = self.db.get(SESSION).await?;
        if !record.is_object() || js::get_f64(&record, "v") != Some(VERSION) {
            return Ok(Stored::Nothing);
        }
        let session_id = js::get_str(&record, "sid");
        if let Some(ended) = js::get_str(&record, "ended") {
            return Ok(
                Terminal::parse(&ended).map_or(Stored::Nothing, |terminal| Stored::Ended {
                    terminal,
                    session_id,
                }),
            );
        }
        let (Some(session_id), Some(jkt), Some(stamp)) = (
            session_id,
            js::get_str(&record, "jkt"),
            js::get_str(&record, "stamp"),
        ) else {
            return Ok(Stored::Nothing);
        };
        let number = |key| js::get_i64(&record, key).ok_or_else(malformed);
        let timeline = Timeline {
            issued_at: number("issuedAt")?,
            access_expires_at: number("accessExpiresAt")?,
            idle_expires_at: number("idleExpiresAt")?,
            session_expires_at: number("sessionExpiresAt")?,
        };
        let offset_ms = number("offset")?;
        let Ok(plain) = self
            .unseal(&js::get(&record, "sealed"), &session_aad(&session_id, &jkt))
            .await
        else {
            return Ok(Stored::Nothing);
        };
        let tokens = SessionTokens::from_sealed(&plain, session_id, timeline)?;
        Ok(Stored::Live(LiveRecord {
            tokens,
            stamp,
            jkt,
            offset_ms,
        }))
    }

    /// Stores a live session; returns the record's new stamp.
    pub(crate) async fn save_session(
        &self,
        tokens: &SessionTokens,
        jkt: &str,
        offset_ms: i64,
    ) -> Result<String, ClientError> {
        let stamp = b64::encode(random_bytes::<12>()?);
        let sealed = self
            .seal(&tokens.sealable(), &session_aad(tokens.session_id(), jkt))
            .await?;
        let t = tokens.timeline();
        let record = js::object(&[
            ("v", VERSION.into()),
            ("sid", tokens.session_id().into()),
            ("jkt", jkt.into()),
            ("stamp", stamp.as_str().into()),
            ("offset", (offset_ms as f64).into()),
            ("issuedAt", (t.issued_at as f64).into()),
            ("accessExpiresAt", (t.access_expires_at as f64).into()),
            ("idleExpiresAt", (t.idle_expires_at as f64).into()),
            ("sessionExpiresAt", (t.session_expires_at as f64).into()),
            ("sealed", sealed.into()),
        ]);
        self.db.put(SESSION, &record).await?;
        Ok(stamp)
    }

    /// Replaces the session `session_id` (tokens included) by a marker saying how it
    /// ended. A newer session another tab stored meanwhile is left alone.
    pub(crate) async fn end_session(
        &self,
        terminal: Terminal,
        session_id: &str,
    ) -> Result<(), ClientError> {
        let current = self.db.get(SESSION).await?;
        let other_session =
            current.is_object() && js::get_str(&current, "sid").as_deref() != Some(session_id);
        let already_ended = current.is_object() && js::get_str(&current, "ended").is_some();
        if other_session || already_ended {
            return Ok(());
        }
        let marker = js::object(&[
            ("v", VERSION.into()),
            ("ended", terminal.as_str().into()),
            ("sid", session_id.into()),
        ]);
        self.db.put(SESSION, &marker).await
    }

    /// Logout: deletes the device key and the tokens, leaving a `closed` marker.
    pub(crate) async fn forget(&self, session_id: Option<&str>) -> Result<(), ClientError> {
        self.db.delete(&[DEVICE]).await?;
        let marker = js::object(&[
            ("v", VERSION.into()),
            ("ended", Terminal::Closed.as_str().into()),
            ("sid", session_id.map_or(JsValue::NULL, JsValue::from)),
        ]);
        self.db.put(SESSION, &marker).await
    }
}
