//! Helpers shared by keybound's fuzz targets (`fuzz_targets/`): the shared test vectors
//! as oracles, and splitting text inputs into fields.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use keybound_proto::ed25519_dalek::VerifyingKey;
use serde_json::Value;

/// The test vectors this crate is built against (`tests/vectors`).
pub struct Vectors {
    /// Every proof and access token in the vector files whose signature is valid for
    /// the key it names: the only signed texts a fuzzer (which holds no private key)
    /// can present that verify.
    pub signed_texts: HashSet<String>,
    /// The server keys of `keys.json` by `kid` (`server` and `other_server`).
    pub server_keys: HashMap<String, VerifyingKey>,
}

/// The vectors, parsed once.
pub fn vectors() -> &'static Vectors {
    static VECTORS: OnceLock<Vectors> = OnceLock::new();
    VECTORS.get_or_init(|| {
        let mut signed_texts = HashSet::new();
        for file in [
            include_str!("../../tests/vectors/valid.json"),
            include_str!("../../tests/vectors/invalid.json"),
        ] {
            let doc: Value = serde_json::from_str(file).unwrap_or(Value::Null);
            for case in doc["cases"].as_array().into_iter().flatten() {
                for member in ["proof", "access_token"] {
                    if let Some(text) = case[member].as_str() {
                        signed_texts.insert(text.to_owned());
                    }
                }
            }
        }
        let keys: Value = serde_json::from_str(include_str!("../../tests/vectors/keys.json"))
            .unwrap_or(Value::Null);
        let mut server_keys = HashMap::new();
        for name in ["server", "other_server"] {
            let jwks = serde_json::json!({"keys": [keys[name]["private_jwk"].clone()]});
            if let Ok(found) = keybound_server::KeyRing::verifying_keys_from_jwks(&jwks) {
                server_keys.extend(found);
            }
        }
        Vectors {
            signed_texts,
            server_keys,
        }
    })
}

/// Splits a text input into its `\n`-separated fields; `None` if it is not UTF-8.
pub fn fields(data: &[u8]) -> Option<Vec<&str>> {
    std::str::from_utf8(data)
        .ok()
        .map(|text| text.split('\n').collect())
}

/// The field at `index`, or `""`.
pub fn field<'a>(fields: &[&'a str], index: usize) -> &'a str {
    fields.get(index).copied().unwrap_or_default()
}
