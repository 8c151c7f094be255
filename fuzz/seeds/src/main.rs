//! Writes the seed corpora of keybound's fuzz targets from the shared test vectors
//! (`tests/vectors`): `keybound-fuzz-seeds VECTORS_DIR OUT_DIR` fills
//! `OUT_DIR/<target>/` with one file per seed, named by the SHA-256 of its content.
//!
//! Each target gets the vectors in its own input format (see the targets' docs):
//! proofs, tokens, their decoded JSON parts, keys, key sets, URLs, whole requests and
//! `keybound` command lines. Targets whose inputs the vectors do not describe (the
//! lifecycle's move sequences) start from libFuzzer's empty input.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(vectors), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: keybound-fuzz-seeds VECTORS_DIR OUT_DIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(vectors), Path::new(out)) {
        Ok(count) => {
            println!("wrote {count} seeds to {out}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("keybound-fuzz-seeds: {err}");
            ExitCode::FAILURE
        }
    }
}

fn read(dir: &Path, name: &str) -> Result<Value, String> {
    let path = dir.join(name);
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Seeds by target.
#[derive(Default)]
struct Seeds(std::collections::BTreeMap<&'static str, BTreeSet<Vec<u8>>>);

impl Seeds {
    fn add(&mut self, target: &'static str, seed: impl Into<Vec<u8>>) {
        self.0.entry(target).or_default().insert(seed.into());
    }
}

fn compact(value: &Value) -> String {
    value.to_string()
}

fn generate(vectors: &Path, out: &Path) -> Result<usize, String> {
    let mut seeds = Seeds::default();
    let keys = read(vectors, "keys.json")?;
    let rfc = read(vectors, "rfc8037.json")?;

    // Keys: JWK and JSON seeds, and `thumbprint` / `jwks` command lines.
    let mut jwks_text = String::new();
    for name in ["device", "other_device", "server", "other_server"] {
        for form in ["private_jwk", "public_jwk"] {
            let jwk = &keys[name][form];
            if jwk.is_object() {
                seeds.add("jwk", compact(jwk));
                seeds.add("json_strict", compact(jwk));
                seeds.add("cli", args(&["thumbprint", &compact(jwk)]));
            }
        }
        if let Some(jwks) = keys[name].get("jwks") {
            jwks_text = compact(jwks);
            seeds.add("jwk", jwks_text.clone());
            seeds.add("json_strict", jwks_text.clone());
        }
    }
    for member in ["a1_private_jwk", "a2_public_jwk"] {
        seeds.add("jwk", compact(&rfc[member]));
    }
    let device = compact(&keys["device"]["private_jwk"]);
    let server = compact(&keys["server"]["private_jwk"]);
    let device_jkt = keys["device"]["jkt"].as_str().unwrap_or_default();
    seeds.add("cli", args(&["jwks", &server]));
    seeds.add(
        "cli",
        args(&[
            "token",
            "--key",
            &server,
            "--sub",
            "user-42",
            "--sid",
            "session-7",
            "--jkt",
            device_jkt,
        ]),
    );

    // Requests: proofs, tokens, their JSON parts, URLs and every form of input.
    for file in ["valid.json", "invalid.json"] {
        let doc = read(vectors, file)?;
        for case in doc["cases"].as_array().into_iter().flatten() {
            request_seeds(&mut seeds, case, &jwks_text, &device);
        }
    }
    seeds.add("htu", "https://api.example.com:443/a/./b/../c?q#f");
    seeds.add("htu", "http://[::1]:8080/x");

    // DBSC: what Chromium sent and was sent (`dbsc/chromium.json`), bare and quoted.
    dbsc_seeds(&mut seeds, &read(&vectors.join("dbsc"), "chromium.json")?);

    // Settings: every documented variable with a value from the vectors or its default.
    settings_seeds(&mut seeds);

    // Refresh tokens: the token format (`<sid>.<generation>.<secret ‖ tag>`), with
    // session ids and secrets taken from the vectors' key material.
    for (i, name) in ["device", "server"].iter().enumerate() {
        let x = keys[name]["public_jwk"]["x"].as_str().unwrap_or_default();
        let bytes = URL_SAFE_NO_PAD.decode(x).unwrap_or_default();
        if bytes.len() == 32 {
            let sid = URL_SAFE_NO_PAD.encode(&bytes[..16]);
            let body = URL_SAFE_NO_PAD.encode([bytes.as_slice(), &bytes[..16]].concat());
            seeds.add("refresh_token", format!("{sid}.{i}.{body}"));
        }
    }

    let mut count = 0;
    for (target, set) in &seeds.0 {
        let dir = out.join(target);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for seed in set {
            let name = hex(&Sha256::digest(seed));
            fs::write(dir.join(name), seed).map_err(|e| format!("{}: {e}", dir.display()))?;
            count += 1;
        }
    }
    Ok(count)
}

fn request_seeds(seeds: &mut Seeds, case: &Value, server_jwks: &str, device: &str) {
    let request = &case["request"];
    let method = request["method"].as_str().unwrap_or_default();
    let url = request["url"].as_str().unwrap_or_default();
    let now = request["now"].as_i64().unwrap_or_default().to_string();
    let skew = request["max_skew"].as_u64().unwrap_or_default().to_string();
    let proof = case["proof"].as_str().unwrap_or_default();
    let token = case["access_token"].as_str();
    let jwks = case.get("jwks").map(compact);

    seeds.add("htu", url);
    let mut line = vec![proof, method, url, &now, &skew];
    if let Some(token) = token {
        line.push(token);
        line.push(jwks.as_deref().unwrap_or(server_jwks));
    }
    seeds.add("dpop_proof", line.join("\n"));
    seeds.add(
        "dpop_roundtrip",
        [method, url, now.as_str(), token.unwrap_or_default()].join("\n"),
    );
    seeds.add("cli", args(&["inspect", proof]));
    seeds.add(
        "cli",
        args(&["proof", "--key", device, "--method", method, "--url", url]),
    );
    let mut verify = vec![
        "verify",
        "--method",
        method,
        "--url",
        url,
        "--proof",
        proof,
        "--now",
        &now,
        "--max-skew",
        &skew,
    ];
    if let (Some(token), Some(jwks)) = (token, jwks.as_deref()) {
        verify.extend(["--access-token", token, "--jwks", jwks]);
    }
    seeds.add("cli", args(&verify));

    for jws in [Some(proof), token].into_iter().flatten() {
        seeds.add("access_token", jws);
        for part in jws.split('.').take(2) {
            if let Ok(json) = URL_SAFE_NO_PAD.decode(part) {
                seeds.add("json_strict", json.clone());
                if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&json) {
                    if let Some(jwk) = object.get("jwk") {
                        seeds.add("jwk", compact(jwk));
                    }
                    if let Some(htu) = object.get("htu").and_then(Value::as_str) {
                        seeds.add("htu", htu);
                    }
                }
            }
        }
    }
}

fn settings_seeds(seeds: &mut Seeds) {
    let all = [
        "KEYBOUND_LISTEN=127.0.0.1:8080",
        "KEYBOUND_PUBLIC_ORIGIN=https://api.example.com",
        "KEYBOUND_ACCESS_TTL_SECS=300",
        "KEYBOUND_IDLE_TIMEOUT_SECS=1800",
        "KEYBOUND_ABSOLUTE_LIFETIME_SECS=43200",
        "KEYBOUND_REFRESH_GRACE_SECS=30",
        "KEYBOUND_NONCE=on",
        "KEYBOUND_STORE=sqlite:data/sessions.db",
        "KEYBOUND_REDIS_PREFIX=keybound:",
        "KEYBOUND_REDIS_TIMEOUT_MS=2000",
    ];
    seeds.add("settings", all.join("\n"));
    for line in all {
        seeds.add("settings", line);
    }
    seeds.add(
        "settings",
        "KEYBOUND_STORE=redis://127.0.0.1:6379\nKEYBOUND_ACCESS_TTL_SECS=20",
    );
}

/// The `dbsc` target's seeds: request header values as sent and quoted, response
/// headers, and builder fields (`challenge\nid\npath\nauthorization`).
fn dbsc_seeds(seeds: &mut Seeds, recording: &Value) {
    for scenario in recording["scenarios"].as_array().into_iter().flatten() {
        for exchange in scenario["exchanges"].as_array().into_iter().flatten() {
            let sides = [
                &exchange["request"]["headers"],
                &exchange["response"]["headers"],
            ];
            for headers in sides.into_iter().filter_map(Value::as_object) {
                for (name, value) in headers {
                    let Some(value) = value.as_str() else {
                        continue;
                    };
                    if !name.contains("session") {
                        continue;
                    }
                    seeds.add("dbsc", value);
                    if !value.starts_with('"') {
                        seeds.add("dbsc", format!("\"{value}\""));
                    }
                }
            }
        }
    }
    seeds.add(
        "dbsc",
        "kb-refresh-2\nkb-sess-es256\n/dbsc/register\nkb-auth-es256",
    );
    seeds.add("dbsc", "c\"q\\\ns 1\n/reg");
}

/// A `keybound` command line in the `cli` target's format (NUL-separated).
fn args(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
