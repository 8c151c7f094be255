//! HTTPS: with `KEYBOUND_TLS_CERT` and `KEYBOUND_TLS_KEY` the binary serves HTTPS (and
//! its public origin defaults to `https://`), and every bad TLS setting stops start-up
//! with exit code 2 and a message naming the variable and the file. Certificates are
//! made with openssl, as the browser tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const MINIMAL: &str = env!("CARGO_BIN_EXE_keybound-minimal");

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

fn command(env: Env<'_>) -> Command {
    let mut command = Command::new(MINIMAL);
    for name in [
        "KEYBOUND_PUBLIC_ORIGIN",
        "KEYBOUND_STORE",
        "KEYBOUND_KEY_FILE",
        "KEYBOUND_TLS_CERT",
        "KEYBOUND_TLS_KEY",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs the binary with `env`, expecting it to stop at once with exit code 2; returns
/// its standard error.
fn refused(env: Env<'_>) -> String {
    let mut child = command(env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("keybound-minimal did not stop with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
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

/// A running HTTPS `keybound-minimal`, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `keybound` CLI (as in `binary.rs`): `$KEYBOUND_BIN`, or next to the binary.
fn keybound(args: &[&str]) -> String {
    let bin = std::env::var_os("KEYBOUND_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let bin = Path::new(MINIMAL)
                .with_file_name(format!("keybound{}", std::env::consts::EXE_SUFFIX));
            if !bin.exists() {
                let status = Command::new(env!("CARGO"))
                    .args(["build", "--quiet", "-p", "keybound-cli"])
                    .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                    .status()
                    .unwrap();
                assert!(status.success(), "cargo build -p keybound-cli failed");
            }
            bin
        });
    let out = Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "keybound {}: {}",
        args[0],
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn serves_https_with_an_https_origin() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "server");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = PathBuf::from(format!("127.0.0.1:{port}"));
    let mut child = command(&[
        ("KEYBOUND_TLS_CERT", &cert),
        ("KEYBOUND_TLS_KEY", &key),
        ("KEYBOUND_LISTEN", &listen),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let origin = format!("https://127.0.0.1:{port}");
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the server starts");
    assert_eq!(
        line,
        format!("keybound minimal example listening on {origin}")
    );

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
