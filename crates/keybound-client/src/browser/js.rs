//! Small helpers around `js_sys` for reading and building plain JavaScript objects.

use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::ClientError;

#[wasm_bindgen]
extern "C" {
    /// `globalThis.fetch`, so the SDK works in windows and workers alike.
    #[wasm_bindgen(js_name = fetch)]
    pub(crate) fn global_fetch(request: &web_sys::Request) -> Promise;
}

/// `target[key]`, or `undefined`.
pub(crate) fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// `target[key]` if it is a string.
pub(crate) fn get_str(target: &JsValue, key: &str) -> Option<String> {
    get(target, key).as_string()
}

/// `target[key]` if it is a number.
pub(crate) fn get_f64(target: &JsValue, key: &str) -> Option<f64> {
    get(target, key).as_f64()
}

/// `target[key]` if it is a whole number that fits an `i64` exactly.
pub(crate) fn get_i64(target: &JsValue, key: &str) -> Option<i64> {
    let n = get_f64(target, key)?;
    (n.fract() == 0.0 && n.abs() < 9.0e15).then_some(n as i64)
}

/// `target[key] = value` on an object the SDK created.
pub(crate) fn set(target: &Object, key: &str, value: &JsValue) {
    // Setting a property on a plain, unfrozen object cannot fail.
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

/// A plain object from key/value pairs.
pub(crate) fn object(pairs: &[(&str, JsValue)]) -> Object {
    let out = Object::new();
    for (key, value) in pairs {
        set(&out, key, value);
    }
    out
}

/// A property of `globalThis`.
pub(crate) fn global(name: &str) -> JsValue {
    get(&js_sys::global(), name)
}

/// The local clock in milliseconds.
pub(crate) fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Awaits a promise.
pub(crate) async fn wait(promise: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(promise).await
}

/// The bytes of an `ArrayBuffer` or typed array.
pub(crate) fn bytes(value: &JsValue) -> Vec<u8> {
    Uint8Array::new(value).to_vec()
}

/// Copies bytes into a new `Uint8Array`.
pub(crate) fn u8_array(bytes: &[u8]) -> Uint8Array {
    Uint8Array::from(bytes)
}

/// The `name` of a thrown JavaScript error (`AbortError`, `TypeError`, …).
pub(crate) fn error_name(error: &JsValue) -> Option<String> {
    get_str(error, "name")
}

/// The `message` of a thrown JavaScript error, shortened.
pub(crate) fn error_message(error: &JsValue) -> String {
    get_str(error, "message")
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "unknown error".to_owned())
        .chars()
        .take(200)
        .collect()
}

/// Reads a `Function` member of an object.
pub(crate) fn get_fn(target: &JsValue, key: &str) -> Option<Function> {
    get(target, key).dyn_into::<Function>().ok()
}

/// The error for a JavaScript crypto failure.
pub(crate) fn crypto_error(op: &'static str) -> impl Fn(JsValue) -> ClientError {
    move |_| ClientError::Crypto { op }
}
