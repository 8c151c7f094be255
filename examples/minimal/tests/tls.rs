//! HTTPS: with `KEYBOUND_TLS_CERT` and `KEYBOUND_TLS_KEY` the binary serves HTTPS (and
//! its public origin defaults to `https://`), and every bad TLS setting stops start-up
//! with exit code 2 and a message naming the variable and the file. Certificates are
//! made with openssl, as the browser tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use common::{Server, free_port, keybound, run_to_exit};

/// A self-signed P-256 certificate for localhost/127.0.0.1 and its key, in `dir`.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}-cert.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A leaf certificate: rustls clients refuse a CA certificate used as one.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .output()
        .expect("openssl runs (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// Variables and the paths they name.
type Env<'a> = &'a [(&'a str, &'a Path)];

/// Runs the binary with `env`, expecting it to stop at once with exit code 2; returns
/// its standard error.
fn refused(env: Env<'_>) -> String {
    let out = run_to_exit(env);
    assert_eq!(out.status.code(), Some(2), "{env:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn bad_tls_settings_stop_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "a");
    let (_, other_key) = certificate(dir.path(), "b");
    let missing = dir.path().join("missing.pem");
    let cases: [(Env<'_>, &[&str]); 6] = [
        (
            &[("KEYBOUND_TLS_CERT", &cert)],
            &["KEYBOUND_TLS_KEY is not", "needs both"],
        ),
        (
            &[("KEYBOUND_TLS_KEY", &key)],
            &["KEYBOUND_TLS_CERT is not", "needs both"],
        ),
        (
            &[("KEYBOUND_TLS_CERT", &missing), ("KEYBOUND_TLS_KEY", &key)],
            &["KEYBOUND_TLS_CERT: cannot read", "missing.pem"],
        ),
        (
            &[("KEYBOUND_TLS_CERT", &key), ("KEYBOUND_TLS_KEY", &key)],
            &["KEYBOUND_TLS_CERT", "holds no PEM certificate"],
        ),
        (
            &[("KEYBOUND_TLS_CERT", &cert), ("KEYBOUND_TLS_KEY", &cert)],
            &["KEYBOUND_TLS_KEY", "holds no usable PEM private key"],
        ),
        (
            &[
                ("KEYBOUND_TLS_CERT", &cert),
                ("KEYBOUND_TLS_KEY", &other_key),
            ],
            &["KEYBOUND_TLS_KEY", "does not fit the certificate"],
        ),
    ];
    for (env, expected) in cases {
        let stderr = refused(env);
        for text in expected {
            assert!(stderr.contains(text), "{env:?}: {stderr}");
        }
        assert!(
            !stderr.contains("PRIVATE KEY-----"),
            "no key material in messages: {stderr}"
        );
    }
}

#[tokio::test]
async fn serves_https_with_an_https_origin() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "server");
    let port = free_port();
    let server = Server::start(
        port,
        &[("KEYBOUND_TLS_CERT", &cert), ("KEYBOUND_TLS_KEY", &key)],
    );
    let origin = format!("https://127.0.0.1:{port}");
    assert_eq!(server.origin, origin);

    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let jwks: Value = https
        .get(format!("{origin}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");

    // A whole DPoP login over HTTPS: the proofs' htu is https://…, which the server
    // only accepts because its public origin defaulted to https.
    let device = dir.path().join("device.jwk");
    keybound(&["keygen", "--out", device.to_str().unwrap()]);
    let key_arg = format!("@{}", device.display());
    let login_url = format!("{origin}/api/login");
    let proof = keybound(&[
        "proof", "--key", &key_arg, "--method", "POST", "--url", &login_url,
    ]);
    let reply = https
        .post(&login_url)
        .header("DPoP", proof)
        .json(&json!({"username": "alice", "password": "wonderland"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let tokens: Value = reply.json().await.unwrap();
    let at = tokens["access_token"].as_str().unwrap();
    let me_url = format!("{origin}/api/me");
    let proof = keybound(&[
        "proof",
        "--key",
        &key_arg,
        "--method",
        "GET",
        "--url",
        &me_url,
        "--access-token",
        at,
    ]);
    let me: Value = https
        .get(&me_url)
        .header("Authorization", format!("DPoP {at}"))
        .header("DPoP", proof)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"], "alice");

    // Plain HTTP to the HTTPS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/me"))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 401);
    drop(server);
}
