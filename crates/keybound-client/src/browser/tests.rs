//! Tests that need a browser (IndexedDB, WebCrypto): run with
//! `CHROMEDRIVER=/usr/bin/chromedriver cargo test -p keybound-client --target wasm32-unknown-unknown`.

use js_sys::{Array, Function, Object, Reflect};
use keybound_proto::{DpopProof, TokenResponse};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

use super::core::Core;
use super::js;
use super::keys::{DeviceKey, KeyKind};
use super::storage::{Storage, Stored};
use crate::{SessionTokens, Terminal};

wasm_bindgen_test_configure!(run_in_browser);

/// A storage name no other test uses.
fn fresh_name(what: &str) -> String {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).unwrap();
    format!("kb-test-{what}-{}", keybound_proto::b64::encode(random))
}

fn verify(key: &DeviceKey, message: &[u8], signature: &[u8; 64]) {
    let public = key.jwk().verifying_key().unwrap();
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    public.verify_strict(message, &signature).unwrap();
}

#[wasm_bindgen_test]
async fn webcrypto_key_is_non_extractable_and_survives_reopening() {
    let name = fresh_name("webcrypto");
    let storage = Storage::open(&name).await.unwrap();
    assert!(storage.load_key().await.unwrap().is_none());
    let key = storage.create_key(false).await.unwrap();
    assert_eq!(key.kind(), KeyKind::WebCrypto);
    let crypto_key = key.crypto_key().unwrap();
    assert!(!crypto_key.extractable());
    assert_eq!(crypto_key.type_(), "private");

    // Exporting the private key must fail.
    let subtle = super::keys::subtle().unwrap();
    let export = subtle.export_key("pkcs8", crypto_key).unwrap();
    assert!(js::wait(export).await.is_err());

    // A new storage object (as after a reload) finds the same key, still usable.
    let reopened = Storage::open(&name).await.unwrap();
    let again = reopened.load_key().await.unwrap().unwrap();
    assert_eq!(again.thumbprint(), key.thumbprint());
    assert_eq!(again.kind(), KeyKind::WebCrypto);
    let signature = again.sign(b"after reload").await.unwrap();
    verify(&key, b"after reload", &signature);
}

#[wasm_bindgen_test]
async fn wasm_key_seed_is_stored_encrypted() {
    let name = fresh_name("wasm");
    let storage = Storage::open(&name).await.unwrap();
    let key = storage.create_key(true).await.unwrap();
    assert_eq!(key.kind(), KeyKind::Wasm);
    let signature = key.sign(b"hello").await.unwrap();
    verify(&key, b"hello", &signature);

    let reopened = Storage::open(&name).await.unwrap();
    let again = reopened.load_key().await.unwrap().unwrap();
    assert_eq!(again.kind(), KeyKind::Wasm);
    assert_eq!(again.thumbprint(), key.thumbprint());
    let signature = again.sign(b"hello").await.unwrap();
    verify(&key, b"hello", &signature);

    // The record holds the public key, an IV and a ciphertext (32-byte seed + 16-byte
    // tag), and nothing else: no seed in clear.
    let db = super::idb::Db::open(&name).await.unwrap();
    let record = db.get("device").await.unwrap();
    let keys: Vec<String> = Object::keys::<JsValue>(record.unchecked_ref())
        .iter()
        .filter_map(|k| k.as_string())
        .collect();
    assert_eq!(keys, ["kind", "x", "sealed"]);
    let sealed = js::get(&record, "sealed");
    assert_eq!(js::bytes(&js::get(&sealed, "iv")).len(), 12);
    assert_eq!(js::bytes(&js::get(&sealed, "ct")).len(), 48);
}

#[wasm_bindgen_test]
async fn tabs_creating_a_key_at_once_agree_on_one() {
    let name = fresh_name("race");
    let a = Storage::open(&name).await.unwrap();
    let b = Storage::open(&name).await.unwrap();
    let (ka, kb) = futures_util::join!(a.create_key(false), b.create_key(true));
    assert_eq!(ka.unwrap().thumbprint(), kb.unwrap().thumbprint());
}

async fn check_proof(key: &DeviceKey) {
    let url = "https://api.example/orders?page=2#top";
    let proof = key
        .proof(
            "POST",
            url,
            1_700_000_000,
            Some("the-access-token"),
            Some("n-1"),
        )
        .await
        .unwrap();
    let parsed = DpopProof::parse(&proof).unwrap();
    parsed
        .check_htm_htu("POST", "https://api.example/orders")
        .unwrap();
    parsed.check_iat(1_700_000_010, 60).unwrap();
    parsed.check_ath(Some("the-access-token")).unwrap();
    parsed.verify_signature().unwrap();
    assert_eq!(parsed.thumbprint(), key.thumbprint());
    assert_eq!(parsed.claims().nonce.as_deref(), Some("n-1"));
    assert_eq!(parsed.claims().htu, "https://api.example/orders");

    // Two proofs never share a jti.
    let other = key
        .proof("POST", url, 1_700_000_000, None, None)
        .await
        .unwrap();
    let other = DpopProof::parse(&other).unwrap();
    assert_ne!(other.claims().jti, parsed.claims().jti);
    assert_eq!(other.claims().ath, None);
    other.verify_signature().unwrap();
}

#[wasm_bindgen_test]
async fn proofs_verify_with_the_server_side_checks() {
    let storage = Storage::open(&fresh_name("proof")).await.unwrap();
    check_proof(&storage.create_key(false).await.unwrap()).await;
    let storage = Storage::open(&fresh_name("proof-wasm")).await.unwrap();
    check_proof(&storage.create_key(true).await.unwrap()).await;
}

#[wasm_bindgen_test]
async fn bad_proof_inputs_are_errors() {
    let storage = Storage::open(&fresh_name("bad")).await.unwrap();
    let key = storage.create_key(true).await.unwrap();
    let err = key
        .proof("GET", "ftp://x/", 0, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_url");
    let err = key
        .proof("GET", "/relative", 0, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_url");
}

fn tokens(session_id: &str) -> SessionTokens {
    SessionTokens::from_response(TokenResponse {
        access_token: "eyJhbGciOiJFZERTQSJ9.e30.c2ln".into(),
        token_type: "DPoP".into(),
        expires_in: 300,
        refresh_token: "cmVmcmVzaC10b2tlbi12YWx1ZQ".into(),
        session_id: session_id.into(),
        session_expires_at: 1_700_043_200,
        idle_expires_at: 1_700_001_800,
        server_time: 1_700_000_000,
    })
    .unwrap()
}

/// Every string reachable from a stored record (to look for leaked tokens).
fn strings_in(value: &JsValue, out: &mut Vec<String>) {
    if let Some(s) = value.as_string() {
        out.push(s);
    } else if value.is_object() && !value.is_instance_of::<js_sys::ArrayBuffer>() {
        for key in Object::keys::<JsValue>(value.unchecked_ref()).iter() {
            strings_in(&Reflect::get(value, &key).unwrap(), out);
        }
    }
}

#[wasm_bindgen_test]
async fn sessions_are_stored_encrypted_and_end_with_a_marker() {
    let name = fresh_name("session");
    let storage = Storage::open(&name).await.unwrap();
    assert!(matches!(
        storage.load_session().await.unwrap(),
        Stored::Nothing
    ));
    let t = tokens("s-1");
    let stamp = storage.save_session(&t, "jkt-1", 1500).await.unwrap();

    let Stored::Live(record) = Storage::open(&name)
        .await
        .unwrap()
        .load_session()
        .await
        .unwrap()
    else {
        panic!("no live session");
    };
    assert_eq!(record.tokens, t);
    assert_eq!(record.stamp, stamp);
    assert_eq!(record.jkt, "jkt-1");
    assert_eq!(record.offset_ms, 1500);

    let raw = super::idb::Db::open(&name)
        .await
        .unwrap()
        .get("session")
        .await
        .unwrap();
    let mut strings = Vec::new();
    strings_in(&raw, &mut strings);
    assert!(
        strings
            .iter()
            .all(|s| !s.contains(t.access_token()) && !s.contains(t.refresh_token()))
    );

    // A marker for another session leaves this one alone; for this one it replaces it.
    storage
        .end_session(Terminal::Revoked, "s-other")
        .await
        .unwrap();
    assert!(matches!(
        storage.load_session().await.unwrap(),
        Stored::Live(_)
    ));
    storage.end_session(Terminal::Revoked, "s-1").await.unwrap();
    let Stored::Ended {
        terminal,
        session_id,
    } = storage.load_session().await.unwrap()
    else {
        panic!("no marker");
    };
    assert_eq!(terminal, Terminal::Revoked);
    assert_eq!(session_id.as_deref(), Some("s-1"));
    // The first ending stays.
    storage.end_session(Terminal::Expired, "s-1").await.unwrap();
    assert!(matches!(
        storage.load_session().await.unwrap(),
        Stored::Ended {
            terminal: Terminal::Revoked,
            ..
        }
    ));
}

#[wasm_bindgen_test]
async fn a_tampered_session_record_is_not_used() {
    let name = fresh_name("tamper");
    let storage = Storage::open(&name).await.unwrap();
    storage
        .save_session(&tokens("s-1"), "jkt-1", 0)
        .await
        .unwrap();
    let db = super::idb::Db::open(&name).await.unwrap();
    let record = db.get("session").await.unwrap();
    // Re-binding the record to another key must break decryption (the AAD covers it).
    Reflect::set(&record, &"jkt".into(), &"jkt-2".into()).unwrap();
    db.put("session", &record).await.unwrap();
    assert!(matches!(
        storage.load_session().await.unwrap(),
        Stored::Nothing
    ));
}

#[wasm_bindgen_test]
async fn logout_forgets_key_and_tokens() {
    let name = fresh_name("forget");
    let storage = Storage::open(&name).await.unwrap();
    storage.create_key(false).await.unwrap();
    storage
        .save_session(&tokens("s-1"), "jkt", 0)
        .await
        .unwrap();
    storage.forget(Some("s-1")).await.unwrap();
    assert!(storage.load_key().await.unwrap().is_none());
    assert!(matches!(
        storage.load_session().await.unwrap(),
        Stored::Ended {
            terminal: Terminal::Closed,
            ..
        }
    ));
}

/// `{emit, error}` hooks recording events into an array.
fn hooks(events: &Array) -> JsValue {
    let emit = Function::new_with_args("type, detail", "this.push([type, detail])");
    let emit = emit.bind0(events);
    let error = Function::new_with_args(
        "code, message, status",
        "const e = new Error(message); e.code = code; e.status = status; return e;",
    );
    js::object(&[("emit", emit.into()), ("error", error.into())]).into()
}

#[wasm_bindgen_test]
async fn core_starts_anonymous_with_a_key_and_makes_proofs() {
    let events = Array::new();
    let options = js::object(&[("storageName", fresh_name("core").into())]);
    let core = Core::create(options.into(), hooks(&events)).await.unwrap();
    assert_eq!(core.state(), "anonymous");
    assert_eq!(core.key_kind().as_deref(), Some("webcrypto"));
    let thumbprint = core.thumbprint().unwrap();
    assert!(core.session().is_null());

    let proof = js::wait(core.create_proof("GET".into(), "https://h.example/a".into(), None, None))
        .await
        .unwrap()
        .as_string()
        .unwrap();
    let parsed = DpopProof::parse(&proof).unwrap();
    parsed.verify_signature().unwrap();
    assert_eq!(parsed.thumbprint(), thumbprint);

    // No session: requests are refused with a stable code, without touching the network.
    let refused = js::wait(core.fetch("https://h.example/a".into(), JsValue::UNDEFINED))
        .await
        .unwrap_err();
    assert_eq!(
        js::get_str(&refused, "code").as_deref(),
        Some("not_logged_in")
    );
    let refused = js::wait(core.extend()).await.unwrap_err();
    assert_eq!(
        js::get_str(&refused, "code").as_deref(),
        Some("not_logged_in")
    );
    assert_eq!(events.length(), 0);
    core.dispose();
}

#[wasm_bindgen_test]
async fn core_rejects_bad_options() {
    for (key, value) in [
        ("expiringLeadSeconds", JsValue::from(-1)),
        ("expiringLeadSeconds", JsValue::from("120")),
        ("storageName", JsValue::from("")),
        ("forceWasmKeys", JsValue::from(1)),
        ("endpoint", JsValue::from("ftp://example.com/session")),
    ] {
        let options = js::object(&[(key, value)]);
        let err = Core::create(options.into(), hooks(&Array::new()))
            .await
            .err()
            .unwrap();
        assert_eq!(
            js::get_str(&err, "code").as_deref(),
            Some("invalid_option"),
            "{key}"
        );
    }
}

#[wasm_bindgen_test]
async fn force_wasm_keys_replaces_an_unused_webcrypto_key() {
    let name = fresh_name("force");
    let first = Core::create(
        js::object(&[("storageName", name.as_str().into())]).into(),
        hooks(&Array::new()),
    )
    .await
    .unwrap();
    assert_eq!(first.key_kind().as_deref(), Some("webcrypto"));
    first.dispose();
    let forced = Core::create(
        js::object(&[
            ("storageName", name.as_str().into()),
            ("forceWasmKeys", true.into()),
        ])
        .into(),
        hooks(&Array::new()),
    )
    .await
    .unwrap();
    assert_eq!(forced.key_kind().as_deref(), Some("wasm"));
    assert_ne!(forced.thumbprint(), first.thumbprint());
    forced.dispose();
}

#[wasm_bindgen_test]
async fn a_stored_session_resumes_and_an_expired_one_reports_expired() {
    let name = fresh_name("resume");
    let storage = Storage::open(&name).await.unwrap();
    let key = storage.create_key(false).await.unwrap();
    let now = (js::now_ms() / 1000.0) as i64;
    let live = SessionTokens::from_response(TokenResponse {
        access_token: "a.b.c".into(),
        token_type: "DPoP".into(),
        expires_in: 300,
        refresh_token: "r".into(),
        session_id: "s-live".into(),
        session_expires_at: now + 3600,
        idle_expires_at: now + 1800,
        server_time: now,
    })
    .unwrap();
    storage
        .save_session(&live, key.thumbprint(), 0)
        .await
        .unwrap();
    let events = Array::new();
    let core = Core::create(
        js::object(&[("storageName", name.as_str().into())]).into(),
        hooks(&events),
    )
    .await
    .unwrap();
    assert_eq!(core.state(), "active");
    assert_eq!(
        js::get_str(&core.session(), "id").as_deref(),
        Some("s-live")
    );
    core.dispose();

    let ended = SessionTokens::from_response(TokenResponse {
        session_id: "s-old".into(),
        idle_expires_at: now - 10,
        session_expires_at: now - 5,
        server_time: now - 400,
        access_token: "a.b.c".into(),
        token_type: "DPoP".into(),
        expires_in: 300,
        refresh_token: "r".into(),
    })
    .unwrap();
    storage
        .save_session(&ended, key.thumbprint(), 0)
        .await
        .unwrap();
    let core = Core::create(
        js::object(&[("storageName", name.as_str().into())]).into(),
        hooks(&events),
    )
    .await
    .unwrap();
    assert_eq!(core.state(), "expired");
    assert!(core.session().is_null());
    core.dispose();
}
