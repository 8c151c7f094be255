//! Black-box tests of the `keybound` binary: every command, exit codes 0/1/2, key-file
//! permissions and overwrite protection, and every kind of bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::Path;

use common::{URL, assert_rejected, bad_input, kb, kb_stdin, ok, rejected, stderr, stdout};

use keybound_proto::{AccessToken, DpopProof, PublicJwk, access_token_hash};
use serde_json::{Value, json};

const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const RFC8037_JKT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
const NOW: i64 = 1_700_000_000;

fn rfc8037_private() -> String {
    json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "d": RFC8037_D}).to_string()
}

/// A fresh device key, a server key, its JWKS and the device key's thumbprint, as files.
struct Setup {
    dir: tempfile::TempDir,
    device_d: String,
    jkt: String,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let device = ok(&["keygen"]);
        let device_jwk: Value = serde_json::from_str(&device).unwrap();
        fs::write(dir.path().join("device.jwk"), &device).unwrap();
        fs::write(dir.path().join("server.jwk"), ok(&["keygen"])).unwrap();
        let setup = Self {
            device_d: device_jwk["d"].as_str().unwrap().to_owned(),
            jkt: device_jwk["kid"].as_str().unwrap().to_owned(),
            dir,
        };
        let jwks = ok(&["jwks", &setup.at("server.jwk")]);
        fs::write(setup.path("jwks.json"), jwks).unwrap();
        setup
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn at(&self, name: &str) -> String {
        format!("@{}", self.path(name))
    }

    fn proof(&self, method: &str, url: &str, extra: &[&str]) -> String {
        let key = self.at("device.jwk");
        let mut args = vec!["proof", "--key", &key, "--method", method, "--url", url];
        args.extend_from_slice(extra);
        ok(&args)
    }

    fn token(&self, extra: &[&str]) -> String {
        let key = self.at("server.jwk");
        let mut args = vec![
            "token", "--key", &key, "--sub", "user-1", "--sid", "sess-1", "--jkt", &self.jkt,
        ];
        args.extend_from_slice(extra);
        ok(&args)
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------- help

#[test]
fn help_explains_every_command_with_an_example() {
    let top = ok(&["--help"]);
    for cmd in [
        "keygen",
        "thumbprint",
        "jwks",
        "proof",
        "token",
        "verify",
        "inspect",
    ] {
        assert!(top.contains(cmd), "top-level help lacks {cmd}");
        let help = ok(&[cmd, "--help"]);
        assert!(help.contains("Example"), "{cmd} --help has no example");
        assert!(help.contains(&format!("keybound {cmd}")) || cmd == "proof");
    }
    assert!(ok(&["inspect", "--help"]).contains("NOT VERIFIED"));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["proof", "--method", "GET", "--url", URL],
        &["keygen", "--force"],
        &[
            "token", "--key", "{}", "--sub", "a", "--sid", "b", "--jkt", "c", "--ttl", "x",
        ],
    ] {
        let out = kb(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
    }
}

// ---------------------------------------------------------------- keygen

#[test]
fn keygen_prints_a_private_jwk() {
    let jwk: Value = serde_json::from_str(&ok(&["keygen"])).unwrap();
    let obj = jwk.as_object().unwrap();
    let mut members: Vec<&str> = obj.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["crv", "d", "kid", "kty", "x"]);
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    let public = PublicJwk::from_json(&json!({"kty":"OKP","crv":"Ed25519","x":jwk["x"]})).unwrap();
    assert_eq!(jwk["kid"], public.thumbprint());
    let other: Value = serde_json::from_str(&ok(&["keygen"])).unwrap();
    assert_ne!(jwk["d"], other["d"], "two keys must differ");
}

#[cfg(unix)]
#[test]
fn keygen_out_writes_mode_0600_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.jwk");
    let out = kb(&["keygen", "--out", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "the key must not also go to stdout");
    assert!(!stderr(&out).contains("\"d\""));
    assert_eq!(mode(&path), 0o600);
    let jwk: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert!(jwk["d"].is_string());
    assert!(stderr(&out).contains(jwk["kid"].as_str().unwrap()));
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file may be left behind");
}

#[cfg(unix)]
#[test]
fn keygen_is_0600_whatever_the_umask_and_replaces_only_with_force() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.jwk");
    let p = path.to_str().unwrap();
    fs::write(&path, "precious").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();

    let err = bad_input(&["keygen", "--out", p]);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

    ok(&["keygen", "--out", p, "--force"]);
    let jwk: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert!(jwk["d"].is_string());
    assert_eq!(mode(&path), 0o600, "a replaced key file is 0600 too");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[cfg(unix)]
#[test]
fn keygen_does_not_follow_or_replace_a_symlink_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    fs::write(&target, "untouched").unwrap();
    let link = dir.path().join("link.jwk");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    bad_input(&["keygen", "--out", link.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(&target).unwrap(), "untouched");
    // Dangling links count as existing files too.
    let dangling = dir.path().join("dangling.jwk");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    bad_input(&["keygen", "--out", dangling.to_str().unwrap()]);
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn keygen_into_a_missing_directory_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/key.jwk");
    let err = bad_input(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(err.contains("cannot write"), "{err}");
}

// ---------------------------------------------------------------- thumbprint

#[test]
fn thumbprint_of_rfc8037_key_public_private_and_file() {
    let public = json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}).to_string();
    assert_eq!(ok(&["thumbprint", &public]), RFC8037_JKT);
    assert_eq!(ok(&["thumbprint", &rfc8037_private()]), RFC8037_JKT);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.jwk");
    fs::write(&file, format!("{public}\n")).unwrap();
    assert_eq!(
        ok(&["thumbprint", &format!("@{}", file.display())]),
        RFC8037_JKT
    );
    let out = kb_stdin(&["thumbprint", "@-"], Some(&public));
    assert_eq!(stdout(&out), RFC8037_JKT);
}

#[test]
fn thumbprint_bad_inputs() {
    let cases: &[(&str, &str)] = &[
        ("{\"kty\":\"OKP\"", "not valid JSON"),
        ("[1,2]", "expected a JSON object"),
        (
            r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"}"#,
            "y is missing",
        ),
        (
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#,
            "kty must be OKP (Ed25519) or EC (P-256)",
        ),
        (
            r#"{"kty":"OKP","crv":"X25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
            "crv must be Ed25519",
        ),
        (r#"{"kty":"OKP","crv":"Ed25519"}"#, "x is missing"),
        (r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#, "base64url"),
        (
            r#"{"kty":"OKP","crv":"Ed25519","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
            "weak",
        ),
        ("@/no/such/file.jwk", "cannot read"),
        ("@", "file name after @"),
    ];
    for (arg, want) in cases {
        let err = bad_input(&["thumbprint", arg]);
        assert!(err.contains(want), "{arg}: {err}");
    }
}

// ---------------------------------------------------------------- proof

#[test]
fn proof_has_the_requested_claims_and_verifies() {
    let s = Setup::new();
    let proof = s.proof(
        "POST",
        "HTTPS://API.Example.com:443/orders?page=2#x",
        &["--iat", "1700000000", "--nonce", "-n0nce"],
    );
    let parsed = DpopProof::parse(&proof).unwrap();
    let c = parsed.claims();
    assert_eq!(c.htm, "POST");
    assert_eq!(c.htu, URL);
    assert_eq!(c.iat, NOW);
    assert_eq!(c.nonce.as_deref(), Some("-n0nce"));
    assert_eq!(c.ath, None);
    assert!(c.jti.len() >= 22, "jti carries 128 random bits");
    assert_eq!(parsed.thumbprint(), s.jkt);
    parsed.verify_signature().unwrap();
    let again = s.proof("POST", URL, &["--iat", "1700000000"]);
    assert_ne!(
        DpopProof::parse(&again).unwrap().claims().jti,
        c.jti,
        "jti is random"
    );
}

#[test]
fn proof_iat_defaults_to_now_and_ath_binds_the_token() {
    let s = Setup::new();
    let token = s.token(&[]);
    let token_file = s.path("at.txt");
    fs::write(&token_file, format!("{token}\n")).unwrap();
    let proof = s.proof("GET", URL, &["--access-token", &format!("@{token_file}")]);
    let parsed = DpopProof::parse(&proof).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((parsed.claims().iat - now).abs() <= 5);
    assert_eq!(parsed.claims().ath, Some(access_token_hash(&token)));
}

#[test]
fn proof_bad_inputs_exit_2_without_key_material() {
    let s = Setup::new();
    let public = json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}).to_string();
    let wrong_x = json!({"kty":"OKP","crv":"Ed25519","x": RFC8037_X, "d": s.device_d}).to_string();
    let ec = json!({"kty":"EC","crv":"P-256","x":"a","y":"b","d": s.device_d}).to_string();
    let short_d = json!({"kty":"OKP","crv":"Ed25519","d": "AAAA"}).to_string();
    let key = s.at("device.jwk");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--key", &public, "--method", "GET", "--url", URL],
            "d (the private key) is missing",
        ),
        (
            vec!["--key", &wrong_x, "--method", "GET", "--url", URL],
            "x does not match d",
        ),
        (
            vec!["--key", &ec, "--method", "GET", "--url", URL],
            "x must be 32 bytes",
        ),
        (
            vec!["--key", &short_d, "--method", "GET", "--url", URL],
            "d is not 32 bytes",
        ),
        (
            vec!["--key", "{\"d\":", "--method", "GET", "--url", URL],
            "not valid JSON",
        ),
        (
            vec!["--key", "@/no/such/key", "--method", "GET", "--url", URL],
            "cannot read --key",
        ),
        (
            vec![
                "--key",
                &key,
                "--method",
                "GET",
                "--url",
                "api.example.com/x",
            ],
            "--url",
        ),
        (
            vec!["--key", &key, "--method", "GET", "--url", "ftp://h/x"],
            "--url",
        ),
        (
            vec!["--key", &key, "--method", "G T", "--url", URL],
            "--method",
        ),
        (
            vec!["--key", &key, "--method", "", "--url", URL],
            "--method",
        ),
        (
            vec![
                "--key",
                &key,
                "--method",
                "GET",
                "--url",
                URL,
                "--access-token",
                "@/no/such",
            ],
            "cannot read --access-token",
        ),
        (
            vec![
                "--key", &key, "--method", "GET", "--url", URL, "--nonce", "",
            ],
            "--nonce",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["proof"];
        args.extend(extra);
        let err = bad_input(&args);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains(&s.device_d), "key material in: {err}");
    }
}

// ---------------------------------------------------------------- token, jwks

#[test]
fn token_is_signed_by_the_server_key_and_bound_to_jkt() {
    let s = Setup::new();
    let token = s.token(&[
        "--iat",
        "1700000000",
        "--ttl",
        "120",
        "--iss",
        "https://auth.example",
    ]);
    let parsed = AccessToken::parse(&token).unwrap();
    let c = parsed.claims();
    assert_eq!(
        (
            c.iss.as_str(),
            c.sub.as_str(),
            c.sid.as_str(),
            c.jkt.as_str()
        ),
        ("https://auth.example", "user-1", "sess-1", s.jkt.as_str())
    );
    assert_eq!((c.iat, c.exp), (NOW, NOW + 120));
    let server: Value =
        serde_json::from_str(&fs::read_to_string(s.path("server.jwk")).unwrap()).unwrap();
    assert_eq!(parsed.kid(), server["kid"]);
    let jwks: Value =
        serde_json::from_str(&fs::read_to_string(s.path("jwks.json")).unwrap()).unwrap();
    let keys = keybound_server::KeyRing::verifying_keys_from_jwks(&jwks).unwrap();
    parsed.verify_signature(&keys[parsed.kid()]).unwrap();
    // Defaults: iss keybound, ttl 300.
    let d = AccessToken::parse(&s.token(&[])).unwrap();
    assert_eq!(d.claims().iss, "keybound");
    assert_eq!(d.claims().exp - d.claims().iat, 300);
}

#[test]
fn token_bad_inputs() {
    let s = Setup::new();
    let key = s.at("server.jwk");
    let public = json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}).to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--key",
                &key,
                "--sub",
                "u",
                "--sid",
                "s",
                "--jkt",
                "not-a-thumbprint",
            ],
            "--jkt",
        ),
        (
            vec![
                "--key", &key, "--sub", "u", "--sid", "s", "--jkt", &s.jkt, "--ttl", "0",
            ],
            "--ttl",
        ),
        (
            vec!["--key", &key, "--sub", "", "--sid", "s", "--jkt", &s.jkt],
            "--sub",
        ),
        (
            vec!["--key", &key, "--sub", "u", "--sid", "", "--jkt", &s.jkt],
            "--sid",
        ),
        (
            vec![
                "--key", &key, "--sub", "u", "--sid", "s", "--jkt", &s.jkt, "--iss", "",
            ],
            "--iss",
        ),
        (
            vec![
                "--key",
                &key,
                "--sub",
                "u",
                "--sid",
                "s",
                "--jkt",
                &s.jkt,
                "--iat",
                "9223372036854775800",
            ],
            "out of range",
        ),
        (
            vec![
                "--key", &public, "--sub", "u", "--sid", "s", "--jkt", &s.jkt,
            ],
            "d (the private key) is missing",
        ),
        (
            vec![
                "--key", "@/nope", "--sub", "u", "--sid", "s", "--jkt", &s.jkt,
            ],
            "cannot read",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["token"];
        args.extend(extra);
        let err = bad_input(&args);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn jwks_lists_current_and_previous_keys() {
    let s = Setup::new();
    let jwks: Value =
        serde_json::from_str(&fs::read_to_string(s.path("jwks.json")).unwrap()).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].get("d").is_none(),
        "a JWKS never holds private keys"
    );
    let previous = json!({"kty":"OKP","crv":"Ed25519","x":RFC8037_X,"kid":"old"}).to_string();
    let two: Value = serde_json::from_str(&ok(&["jwks", &s.at("server.jwk"), &previous])).unwrap();
    let kids: Vec<&str> = two["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&"old") && kids.len() == 2, "{kids:?}");
    let no_kid = json!({"kty":"OKP","crv":"Ed25519","x":RFC8037_X}).to_string();
    assert!(bad_input(&["jwks", &s.at("server.jwk"), &no_kid]).contains("kid"));
    assert!(bad_input(&["jwks", &no_kid]).contains("d (the private key) is missing"));
}

// ---------------------------------------------------------------- verify

#[test]
fn verify_accepts_and_prints_the_verified_claims() {
    let s = Setup::new();
    let token = s.token(&["--iat", "1700000000"]);
    let proof = s.proof(
        "GET",
        URL,
        &["--iat", "1700000010", "--access-token", &token],
    );
    let jwks = s.at("jwks.json");
    let out = ok(&[
        "verify",
        "--method",
        "GET",
        "--url",
        "https://api.example.com/orders?x=1",
        "--proof",
        &proof,
        "--access-token",
        &token,
        "--jwks",
        &jwks,
        "--now",
        "1700000000",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["jkt"], s.jkt);
    assert_eq!(v["proof"]["htm"], "GET");
    assert_eq!(v["proof"]["htu"], URL);
    assert_eq!(v["proof"]["iat"], 1_700_000_010);
    assert_eq!(v["proof"]["ath"], access_token_hash(&token));
    assert_eq!(v["access_token"]["sub"], "user-1");
    assert_eq!(v["access_token"]["sid"], "sess-1");
    assert_eq!(v["access_token"]["cnf"]["jkt"], s.jkt);
    assert_eq!(v["access_token"]["exp"], 1_700_000_300);

    // Without a token, from files.
    fs::write(s.path("proof.txt"), &proof).unwrap();
    let v: Value = serde_json::from_str(&ok(&[
        "verify",
        "--method",
        "GET",
        "--url",
        URL,
        "--proof",
        &s.at("proof.txt"),
        "--now",
        "1700000000",
    ]))
    .unwrap();
    assert!(v.get("access_token").is_none());
}

#[test]
fn verify_rejections_exit_1_with_the_error_body() {
    let s = Setup::new();
    let jwks = s.at("jwks.json");
    let token = s.token(&["--iat", "1700000000", "--ttl", "300"]);
    let proof = s.proof(
        "GET",
        URL,
        &["--iat", "1700000000", "--access-token", &token],
    );
    let plain = s.proof("GET", URL, &["--iat", "1700000000"]);
    let other_server = tempfile::NamedTempFile::new().unwrap();
    fs::write(other_server.path(), ok(&["keygen"])).unwrap();
    let other_jwks = ok(&["jwks", &format!("@{}", other_server.path().display())]);
    // An access token for `jkt`, signed by the server key in the file `key`.
    let token_by = |key: &str, jkt: &str| {
        ok(&[
            "token",
            "--key",
            key,
            "--sub",
            "u",
            "--sid",
            "s",
            "--jkt",
            jkt,
            "--iat",
            "1700000000",
        ])
    };
    let foreign = token_by(&format!("@{}", other_server.path().display()), &s.jkt);
    let foreign_proof = s.proof(
        "GET",
        URL,
        &["--iat", "1700000000", "--access-token", &foreign],
    );
    let at_now = |p: &str, now: &str| -> Vec<String> {
        [
            "verify", "--method", "GET", "--url", URL, "--proof", p, "--now", now,
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |args: Vec<String>, error: &str, code: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_rejected(&args, error, code);
    };
    let with_token = |p: &str, t: &str, j: &str, now: &str| -> Vec<String> {
        let mut a = at_now(p, now);
        a.extend(["--access-token", t, "--jwks", j].map(String::from));
        a
    };

    // Proof-side failures: invalid_dpop_proof.
    let mut post = at_now(&plain, "1700000000");
    post[2] = "POST".into();
    run(post, "invalid_dpop_proof", "htm_mismatch");
    let mut other_url = at_now(&plain, "1700000000");
    other_url[4] = "https://api.example.com/other".into();
    run(other_url, "invalid_dpop_proof", "htu_mismatch");
    run(
        at_now(&plain, "1700000061"),
        "invalid_dpop_proof",
        "iat_too_old",
    );
    run(
        at_now(&plain, "1699999939"),
        "invalid_dpop_proof",
        "iat_in_future",
    );
    let mut skew = at_now(&plain, "1700000030");
    skew.extend(["--max-skew", "10"].map(String::from));
    run(skew, "invalid_dpop_proof", "iat_too_old");
    run(
        at_now("not.a.jws.at.all", "1700000000"),
        "invalid_dpop_proof",
        "malformed_jws",
    );
    run(
        with_token(&plain, &token, &jwks, "1700000000"),
        "invalid_dpop_proof",
        "ath_missing",
    );
    // Change the first character of the signature (its R half).
    let sig_at = plain.rfind('.').unwrap() + 1;
    let mut tampered = plain.clone().into_bytes();
    tampered[sig_at] = if tampered[sig_at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    run(
        at_now(&tampered, "1700000000"),
        "invalid_dpop_proof",
        "invalid_signature",
    );

    // Token-side failures: invalid_token.
    let late = s.proof(
        "GET",
        URL,
        &["--iat", "1700000300", "--access-token", &token],
    );
    run(
        with_token(&late, &token, &jwks, "1700000300"),
        "invalid_token",
        "token_expired",
    );
    run(
        with_token(&foreign_proof, &foreign, &jwks, "1700000000"),
        "invalid_token",
        "unknown_kid",
    );
    // Same kid, different key: a forged token.
    let forged_jwks = other_jwks.replace(
        &serde_json::from_str::<Value>(&other_jwks).unwrap()["keys"][0]["kid"]
            .as_str()
            .unwrap()
            .to_owned(),
        AccessToken::parse(&token).unwrap().kid(),
    );
    run(
        with_token(&proof, &token, &forged_jwks, "1700000000"),
        "invalid_token",
        "invalid_signature",
    );
    let bound_elsewhere = token_by(&s.at("server.jwk"), RFC8037_JKT);
    let p = s.proof(
        "GET",
        URL,
        &["--iat", "1700000000", "--access-token", &bound_elsewhere],
    );
    run(
        with_token(&p, &bound_elsewhere, &jwks, "1700000000"),
        "invalid_token",
        "jkt_mismatch",
    );
}

#[test]
fn verify_descriptions_never_echo_credentials() {
    let s = Setup::new();
    let token = s.token(&["--iat", "1700000000"]);
    let proof = s.proof(
        "GET",
        URL,
        &["--iat", "1700000000", "--access-token", &token],
    );
    let body = rejected(&[
        "verify",
        "--method",
        "PUT",
        "--url",
        URL,
        "--proof",
        &proof,
        "--access-token",
        &token,
        "--jwks",
        &s.at("jwks.json"),
        "--now",
        "1700000000",
    ]);
    let text = body.to_string();
    for secret in [&proof, &token, &s.device_d] {
        for piece in secret.split('.') {
            assert!(!text.contains(piece), "{text}");
        }
    }
}

#[test]
fn verify_bad_inputs_exit_2() {
    let s = Setup::new();
    let token = s.token(&[]);
    let proof = s.proof("GET", URL, &["--access-token", &token]);
    let jwks = s.at("jwks.json");
    let base = [
        "verify",
        "--method",
        "GET",
        "--url",
        URL,
        "--proof",
        proof.as_str(),
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            with(&["--access-token", &token, "--jwks", "{\"keys\":"]),
            "--jwks is not valid JSON",
        ),
        (
            with(&["--access-token", &token, "--jwks", "{}"]),
            "no keys array",
        ),
        (
            with(&[
                "--access-token",
                &token,
                "--jwks",
                r#"{"keys":[{"kty":"OKP"}]}"#,
            ]),
            "no kid",
        ),
        (
            with(&["--access-token", &token, "--jwks", "@/no/such.json"]),
            "cannot read --jwks",
        ),
        (
            with(&["--access-token", "@/no/such.txt", "--jwks", &jwks]),
            "cannot read --access-token",
        ),
        (
            [
                "verify",
                "--method",
                "GET",
                "--url",
                "not a url",
                "--proof",
                &proof,
            ]
            .map(String::from)
            .to_vec(),
            "--url",
        ),
        (
            [
                "verify",
                "--method",
                "GET",
                "--url",
                URL,
                "--proof",
                "@/no/such",
            ]
            .map(String::from)
            .to_vec(),
            "cannot read --proof",
        ),
        (
            ["verify", "--method", "GET", "--url", URL, "--proof", ""]
                .map(String::from)
                .to_vec(),
            "--proof",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = bad_input(&args);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // --access-token and --jwks only together (a usage error).
    for extra in [
        &["--access-token", token.as_str()][..],
        &["--jwks", jwks.as_str()],
    ] {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = kb(&args);
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty());
    }
}

// ---------------------------------------------------------------- inspect

#[test]
fn inspect_decodes_and_says_not_verified() {
    let s = Setup::new();
    let token = s.token(&["--iat", "1700000000"]);
    let out = kb(&["inspect", &token]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("NOT VERIFIED"));
    let text = stdout(&out);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["verified"], false);
    assert!(v["warning"].as_str().unwrap().starts_with("NOT VERIFIED"));
    assert!(
        text.find("NOT VERIFIED").unwrap() < text.find("\"header\"").unwrap(),
        "label first"
    );
    assert_eq!(v["header"]["typ"], "at+jwt");
    assert_eq!(v["claims"]["sub"], "user-1");
    assert_eq!(v["claims"]["iat"], NOW);
    // A tampered signature still decodes: inspect checks nothing.
    let tampered = format!("{}AAAA", token);
    assert_eq!(kb(&["inspect", &tampered]).status.code(), Some(0));
}

#[test]
fn inspect_bad_inputs() {
    for (arg, want) in [
        ("only.two", "not a compact JWS"),
        ("e30.e30", "not a compact JWS"),
        ("e30=.e30.AA", "base64url"),
        ("WzFd.e30.AA", "not a JSON object"),
        ("eyJhIjoxLCJhIjoyfQ.e30.AA", "duplicate"),
        ("@/no/such/file", "cannot read JWT"),
        ("", "is empty"),
    ] {
        let err = bad_input(&["inspect", arg]);
        assert!(err.contains(want), "{arg}: {err}");
    }
}

// ---------------------------------------------------------------- files

#[test]
fn oversized_and_non_utf8_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    fs::write(&big, vec![b' '; (1 << 20) + 1]).unwrap();
    let err = bad_input(&["thumbprint", &format!("@{}", big.display())]);
    assert!(err.contains("larger than"), "{err}");
    let bin = dir.path().join("bin.json");
    fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    let err = bad_input(&["thumbprint", &format!("@{}", bin.display())]);
    assert!(err.contains("not UTF-8"), "{err}");
    let err = bad_input(&["thumbprint", &format!("@{}", dir.path().display())]);
    assert!(err.contains("cannot read"), "{err}");
}

// ---------------------------------------------------------------- shared vectors

fn vector_cases(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors")
        .join(file);
    let v: Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn vector_args(case: &Value) -> Vec<String> {
    let r = &case["request"];
    let mut args: Vec<String> = vec![
        "verify".into(),
        "--method".into(),
        r["method"].as_str().unwrap().into(),
        "--url".into(),
        r["url"].as_str().unwrap().into(),
        "--proof".into(),
        case["proof"].as_str().unwrap().into(),
        "--now".into(),
        r["now"].to_string(),
        "--max-skew".into(),
        r["max_skew"].to_string(),
    ];
    if let Some(token) = case.get("access_token") {
        args.extend([
            "--access-token".into(),
            token.as_str().unwrap().into(),
            "--jwks".into(),
            case["jwks"].to_string(),
        ]);
    }
    args
}

#[test]
fn verify_agrees_with_every_shared_vector() {
    for case in vector_cases("valid.json") {
        let args = vector_args(&case);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out: Value = serde_json::from_str(&ok(&args)).unwrap();
        assert_eq!(out, case["expect"]["verified"], "{}", case["name"]);
    }
    for case in vector_cases("invalid.json") {
        let args = vector_args(&case);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let body = rejected(&args);
        let expect = &case["expect"];
        assert_eq!(
            (&body["error"], &body["error_code"]),
            (&expect["error"], &expect["error_code"]),
            "{}",
            case["name"]
        );
    }
}
