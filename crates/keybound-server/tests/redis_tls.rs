//! `rediss://` URLs: the Redis store, replay store and listener over TLS, with the
//! server certificate checked against the trusted roots (a test CA, trusted through
//! `SSL_CERT_FILE` in a child process), and an untrusted certificate refused.
#![cfg(feature = "redis-tls")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/redis_server.rs"]
mod redis_server;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use keybound_server::lifecycle::{Actor, Jkt, OpenRequest, Reason, SessionService};
use keybound_server::store::redis::{RedisOptions, RedisStore};
use keybound_server::{Clock, KeyRing, ReplayStore, SessionCheck, SystemClock, replay_key};
use redis_server::{RedisServer, TlsFiles};

/// Set in the child process: the `rediss://` URL to test.
const CHILD_URL: &str = "KEYBOUND_TLS_TEST_URL";

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("openssl is needed for the TLS test ({e}); run scripts/setup.sh")
        });
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) -> TlsFiles {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "1",
        "-subj",
        "/CN=keybound test CA",
    ];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
        ],
    );
    TlsFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
        ca: dir.join("ca.crt"),
    }
}

#[test]
fn rediss_urls_work_with_a_trusted_certificate_only() {
    if let Ok(url) = std::env::var(CHILD_URL) {
        return trusted(&url);
    }
    let dir = tempfile::tempdir().unwrap();
    let files = certificates(dir.path());
    let server = RedisServer::start_tls(files.clone());

    // This process does not trust the test CA: the connection is refused.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let refused = runtime.block_on(RedisStore::connect_with(
        &server.tls_url(),
        RedisOptions::default().connect_timeout(Duration::from_secs(1)),
    ));
    assert_eq!(refused.unwrap_err().code(), "store_unavailable");

    // A child process that trusts it (rustls reads the roots from SSL_CERT_FILE).
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "rediss_urls_work_with_a_trusted_certificate_only",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_URL, server.tls_url())
        .env("SSL_CERT_FILE", &files.ca)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the TLS child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs in the child: everything over TLS.
fn trusted(url: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let prefix = redis_server::unique_prefix();
        let options = RedisOptions::default().prefix(&prefix);
        let store_a = RedisStore::connect_with(url, options.clone())
            .await
            .unwrap();
        let store_b = RedisStore::connect_with(url, options).await.unwrap();
        let keys = KeyRing::generate().unwrap().into_shared();
        let a = SessionService::builder(store_a.clone(), keys.clone())
            .build()
            .unwrap();
        let b = SessionService::builder(store_b.clone(), keys)
            .build()
            .unwrap();
        let listener = store_a.spawn_invalidation_listener(&a).unwrap();
        assert!(listener.wait_subscribed(Duration::from_secs(5)).await);

        let jkt = Jkt::from_bytes([4; 32]).to_string();
        let session = b
            .open_session("alice", &jkt, OpenRequest::new())
            .await
            .unwrap();
        a.check(&session.session_id, "alice", &jkt).await.unwrap();
        b.revoke(
            &session.session_id,
            Reason::ADMIN_REVOKED,
            Actor::Admin("ops".into()),
        )
        .await
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while listener.notices() == 0 {
            assert!(std::time::Instant::now() < deadline, "no notice over TLS");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let denied = a
            .check(&session.session_id, "alice", &jkt)
            .await
            .unwrap_err();
        assert_eq!(denied.code(), "session_revoked");

        let replay = store_a.replay_store(Arc::new(SystemClock));
        let key = replay_key("jkt", "jti-over-tls-0001");
        let expires = SystemClock.now_ms() + 60_000;
        assert!(replay.insert_once(&key, expires).await.unwrap());
        assert!(!replay.insert_once(&key, expires).await.unwrap());
    });
}
