//! Black-box tests of the `keybound-minimal` binary, configured through `KEYBOUND_*`
//! variables and driven with the `keybound` CLI (keys and proofs) the way the README
//! shows: invalid settings stop it with exit code 2 and a message naming the variable;
//! a whole session over HTTP; nonces; a restart with the SQLite store and a key file.
//!
//! The CLI is `$KEYBOUND_BIN`, or `keybound` next to the `keybound-minimal` binary
//! (`cargo build -p keybound-cli`), built on demand when missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use common::{Server, free_port, keybound, run_to_exit};

struct Reply {
    status: StatusCode,
    nonce: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

/// A device: a key file made by `keybound keygen`, proofs made by `keybound proof`.
struct Device {
    key: String,
    http: reqwest::Client,
}

impl Device {
    fn new(dir: &Path) -> Self {
        let path = dir.join("device.jwk");
        keybound(&["keygen", "--out", path.to_str().unwrap()]);
        Self {
            key: format!("@{}", path.display()),
            // No connection pool: the server restarts under the same address.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    fn proof(&self, method: &str, url: &str, at: Option<&str>, nonce: Option<&str>) -> String {
        let mut args = vec![
            "proof", "--key", &self.key, "--method", method, "--url", url,
        ];
        if let Some(at) = at {
            args.extend(["--access-token", at]);
        }
        if let Some(nonce) = nonce {
            args.extend(["--nonce", nonce]);
        }
        keybound(&args)
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        at: Option<&str>,
        nonce: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method.parse().unwrap(), url)
            .header("DPoP", self.proof(method, url, at, nonce));
        if let Some(at) = at {
            request = request.header("Authorization", format!("DPoP {at}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let nonce = response
            .headers()
            .get("dpop-nonce")
            .map(|v| v.to_str().unwrap().to_owned());
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            nonce,
            retry_after,
            body,
        }
    }

    async fn login(&self, server: &Server, nonce: Option<&str>) -> Reply {
        let body = json!({"username": "alice", "password": "wonderland"});
        self.send("POST", &server.url("/api/login"), None, nonce, Some(body))
            .await
    }
}

#[test]
fn invalid_settings_stop_start_up_with_a_clear_message() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "KEYBOUND_LISTEN",
            "nowhere".into(),
            "KEYBOUND_LISTEN: \"nowhere\" is not an address",
        ),
        (
            "KEYBOUND_PUBLIC_ORIGIN",
            "ftp://x".into(),
            "KEYBOUND_PUBLIC_ORIGIN: \"ftp://x\" is not an http(s) origin",
        ),
        (
            "KEYBOUND_ACCESS_TTL_SECS",
            "0".into(),
            "KEYBOUND_ACCESS_TTL_SECS: \"0\" is not a positive number of seconds",
        ),
        (
            "KEYBOUND_IDLE_TIMEOUT_SECS",
            "soon".into(),
            "KEYBOUND_IDLE_TIMEOUT_SECS: \"soon\"",
        ),
        (
            "KEYBOUND_ABSOLUTE_LIFETIME_SECS",
            "-1".into(),
            "KEYBOUND_ABSOLUTE_LIFETIME_SECS",
        ),
        (
            "KEYBOUND_REFRESH_GRACE_SECS",
            "600".into(),
            "KEYBOUND_*_SECS: the refresh grace period must be shorter",
        ),
        (
            "KEYBOUND_NONCE",
            "yes".into(),
            "KEYBOUND_NONCE: \"yes\" must be on or off",
        ),
        (
            "KEYBOUND_STORE",
            "postgres://db".into(),
            "KEYBOUND_STORE: \"postgres://db\": use memory, sqlite:PATH",
        ),
        (
            "KEYBOUND_STORE",
            // Nothing listens on port 1: start-up fails once the connect timeout passes.
            "redis://127.0.0.1:1".into(),
            "cannot reach Redis",
        ),
        (
            "KEYBOUND_STORE",
            format!("sqlite:{}/sessions.db", not_a_dir.display()),
            "KEYBOUND_STORE: cannot create",
        ),
        (
            "KEYBOUND_KEY_FILE",
            not_a_dir.display().to_string(),
            "key file",
        ),
        ("KEYBOUND_LISTEN", busy.clone(), "cannot listen on"),
    ];
    for (name, value, message) in cases {
        let out = run_to_exit(&[(name, value.clone())]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(
            stderr.starts_with("keybound-minimal: ") && stderr.contains(message),
            "{name}={value}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}

#[tokio::test]
async fn the_cli_drives_a_whole_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start::<String>(free_port(), &[]);
    let device = Device::new(dir.path());

    let reply = device
        .send(
            "POST",
            &server.url("/api/login"),
            None,
            None,
            Some(json!({"username": "alice", "password": "nope"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["error"], "invalid_credentials");

    let login = device.login(&server, None).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let at = login.body["access_token"].as_str().unwrap().to_owned();
    let rt = login.body["refresh_token"].as_str().unwrap();
    assert_eq!(login.body["token_type"], "DPoP");
    assert_eq!(login.body["expires_in"], 300);

    let me = device
        .send("GET", &server.url("/api/me"), Some(&at), None, None)
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"], "alice");
    assert_eq!(me.body["session_id"], login.body["session_id"]);

    // The access token verifies with the CLI against the published JWKS.
    let jwks = reqwest::get(server.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks).unwrap();
    let url = server.url("/api/me");
    let proof = device.proof("GET", &url, Some(&at), None);
    let verified: Value = serde_json::from_str(&keybound(&[
        "verify",
        "--method",
        "GET",
        "--url",
        &url,
        "--proof",
        &proof,
        "--access-token",
        &at,
        "--jwks",
        &format!("@{}", jwks_file.display()),
    ]))
    .unwrap();
    assert_eq!(verified["jkt"], keybound(&["thumbprint", &device.key]));
    assert_eq!(verified["access_token"]["sub"], "alice");

    let refreshed = device
        .send(
            "POST",
            &server.url("/session/refresh"),
            None,
            None,
            Some(json!({ "refresh_token": rt })),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let at = refreshed.body["access_token"].as_str().unwrap();

    let logout = device
        .send("POST", &server.url("/session/logout"), Some(at), None, None)
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let me = device
        .send("GET", &server.url("/api/me"), Some(at), None, None)
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.body["error_code"], "session_closed");
}

#[tokio::test]
async fn with_nonces_the_first_request_is_challenged_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(free_port(), &[("KEYBOUND_NONCE", "on".to_owned())]);
    let device = Device::new(dir.path());
    let challenge = device.login(&server, None).await;
    assert_eq!(challenge.status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.body["error"], "use_dpop_nonce");
    let nonce = challenge.nonce.expect("a DPoP-Nonce header");
    let login = device.login(&server, Some(&nonce)).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let at = login.body["access_token"].as_str().unwrap();
    let me = device
        .send("GET", &server.url("/api/me"), Some(at), Some(&nonce), None)
        .await;
    assert_eq!(me.status, StatusCode::OK);
    // The example sends the nonce on every response.
    assert_eq!(me.nonce.as_deref(), Some(nonce.as_str()));
}

#[tokio::test]
async fn sessions_and_keys_survive_a_restart_with_sqlite_and_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        (
            "KEYBOUND_STORE",
            format!("sqlite:{}", dir.path().join("data/sessions.db").display()),
        ),
        (
            "KEYBOUND_KEY_FILE",
            dir.path().join("data/keys.json").display().to_string(),
        ),
    ];
    let port = free_port();
    let device = Device::new(dir.path());
    let server = Server::start(port, &env);
    let login = device.login(&server, None).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    drop(server);

    let server = Server::start(port, &env);
    let at = login.body["access_token"].as_str().unwrap();
    let me = device
        .send("GET", &server.url("/api/me"), Some(at), None, None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let refreshed = device
        .send(
            "POST",
            &server.url("/session/refresh"),
            None,
            None,
            Some(json!({ "refresh_token": login.body["refresh_token"] })),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
}

#[tokio::test]
async fn login_attempts_are_limited_per_username_and_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        free_port(),
        &[
            ("KEYBOUND_LOGIN_PER_USER_PER_MIN", "3".to_owned()),
            ("KEYBOUND_LOGIN_PER_IP_PER_MIN", "6".to_owned()),
        ],
    );
    let device = Device::new(dir.path());
    let url = server.url("/api/login");
    let attempt = |user: &'static str, password: &'static str| {
        let device = &device;
        let url = url.clone();
        async move {
            let body = json!({"username": user, "password": password});
            device.send("POST", &url, None, None, Some(body)).await
        }
    };
    // Guessing alice's password: three attempts, then 429 even with the right one.
    for _ in 0..3 {
        let reply = attempt("alice", "guess").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let limited = attempt("alice", "wonderland").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["error_code"], "rate_limited");
    assert_eq!(limited.body["error"], "rate_limited");
    let retry: u64 = limited.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "Retry-After: {retry}");
    // Another user from the same address still gets in ...
    let bob = attempt("bob", "builder").await;
    assert_eq!(bob.status, StatusCode::OK, "{}", bob.body);
    // ... until the address has used its six attempts (the refused one counted too).
    let carol = attempt("carol", "x").await;
    assert_eq!(carol.status, StatusCode::UNAUTHORIZED);
    let dave = attempt("dave", "x").await;
    assert_eq!(dave.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(dave.body["error_code"], "rate_limited");
    assert!(dave.retry_after.is_some());
}
