//! Reading arguments that are either literal text or `@file` (`@-` is standard input),
//! and turning them into JSON, keys and key sets.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};

use keybound_proto::ed25519_dalek::VerifyingKey;
use keybound_server::{KeyError, KeyRing, ServerKey};
use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

use crate::error::CliError;

/// Files larger than this are refused: no key, key set or token comes near it.
const MAX_FILE_LEN: u64 = 1 << 20;

/// The text of an argument: the literal value, or the contents of the file named
/// after `@` (`@-` reads standard input). Surrounding whitespace is removed, so a
/// token file may end with a newline. The text is wiped from memory when dropped.
pub(crate) fn read_text(arg: &str, what: &'static str) -> Result<Zeroizing<String>, CliError> {
    let Some(path) = arg.strip_prefix('@') else {
        return Ok(Zeroizing::new(arg.trim().to_owned()));
    };
    if path.is_empty() {
        return Err(CliError::invalid(
            what,
            "expected a file name after @ (or @- for standard input)",
        ));
    }
    let read_err = |source: io::Error| CliError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    // Room for any key or token up front, so the buffer is not reallocated (which would
    // leave unwiped copies behind).
    let mut raw = Zeroizing::new(Vec::with_capacity(16 * 1024));
    if path == "-" {
        io::stdin()
            .lock()
            .take(MAX_FILE_LEN + 1)
            .read_to_end(&mut raw)
            .map_err(read_err)?;
    } else {
        File::open(path)
            .and_then(|f| f.take(MAX_FILE_LEN + 1).read_to_end(&mut raw))
            .map_err(read_err)?;
    }
    if raw.len() as u64 > MAX_FILE_LEN {
        return Err(CliError::invalid(
            what,
            format!("file {path:?} is larger than {MAX_FILE_LEN} bytes"),
        ));
    }
    let text = std::str::from_utf8(&raw)
        .map_err(|_| CliError::invalid(what, format!("file {path:?} is not UTF-8 text")))?;
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// A parsed JSON value whose strings are wiped from memory when it is dropped
/// (it may hold a private key's `d`).
pub(crate) struct SecretJson(Value);

impl SecretJson {
    /// The value.
    pub(crate) fn value(&self) -> &Value {
        &self.0
    }
}

impl Drop for SecretJson {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

fn wipe(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Reads an argument (literal or `@file`) as one JSON object.
pub(crate) fn read_json_object(arg: &str, what: &'static str) -> Result<SecretJson, CliError> {
    let text = read_text(arg, what)?;
    let value = serde_json::from_str::<Value>(&text).map_err(|e| CliError::Json {
        what,
        line: e.line(),
        column: e.column(),
    })?;
    let value = SecretJson(value);
    if !value.value().is_object() {
        return Err(CliError::invalid(what, "expected a JSON object"));
    }
    Ok(value)
}

/// Reads a private Ed25519 JWK (`kty`, `crv`, `d`, and `x`/`kid` if present).
pub(crate) fn read_private_key(arg: &str, what: &'static str) -> Result<ServerKey, CliError> {
    let json = read_json_object(arg, what)?;
    private_key_from_json(json.value(), what)
}

/// A private Ed25519 JWK already parsed.
pub(crate) fn private_key_from_json(
    value: &Value,
    what: &'static str,
) -> Result<ServerKey, CliError> {
    ServerKey::from_private_jwk(value).map_err(|e| key_error(what, e))
}

/// Reads a JWKS document (`{"keys":[…]}`) into verification keys by `kid`.
pub(crate) fn read_jwks(
    arg: &str,
    what: &'static str,
) -> Result<HashMap<String, VerifyingKey>, CliError> {
    let json = read_json_object(arg, what)?;
    KeyRing::verifying_keys_from_jwks(json.value()).map_err(|e| key_error(what, e))
}

fn key_error(what: &'static str, err: KeyError) -> CliError {
    match err {
        KeyError::Invalid(reason) => CliError::invalid(what, reason),
        KeyError::Random(reason) => CliError::Random(reason),
        other => CliError::invalid(what, other),
    }
}

/// Reads a compact JWS argument (literal or `@file`).
pub(crate) fn read_jws(arg: &str, what: &'static str) -> Result<Zeroizing<String>, CliError> {
    let text = read_text(arg, what)?;
    if text.is_empty() {
        return Err(CliError::invalid(what, "is empty"));
    }
    Ok(text)
}
