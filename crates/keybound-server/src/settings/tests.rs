use super::*;
use std::collections::HashMap;

fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn variables_are_exactly_those_read() {
    let asked = std::cell::RefCell::new(Vec::new());
    Settings::from_lookup(|name| {
        asked.borrow_mut().push(name.to_owned());
        None
    })
    .unwrap();
    let mut asked = asked.into_inner();
    asked.sort();
    asked.dedup();
    let mut listed = VARIABLES.map(str::to_owned).to_vec();
    listed.sort();
    assert_eq!(asked, listed);
}

#[test]
fn every_variable_is_in_the_module_table() {
    let table = include_str!("mod.rs");
    for name in VARIABLES {
        assert!(table.contains(&format!("//! | `{name}` |")), "{name}");
    }
}

#[test]
fn defaults() {
    let s = settings(&[]).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.public_origin, "http://127.0.0.1:8080");
    assert_eq!(s.store, StoreSpec::Memory);
    assert_eq!(s.redis_prefix, "keybound:");
    assert_eq!(s.redis_timeout, Duration::from_secs(2));
    assert!(!s.nonce);
    assert_eq!(s.proof_algs, ProofAlgs::ALL);
    assert_eq!(s.policy, Policy::default());
}

#[test]
fn reads_every_variable() {
    let s = settings(&[
        ("KEYBOUND_LISTEN", "127.0.0.1:9000"),
        ("KEYBOUND_PUBLIC_ORIGIN", "https://app.example/"),
        ("KEYBOUND_ACCESS_TTL_SECS", "10"),
        ("KEYBOUND_IDLE_TIMEOUT_SECS", "60"),
        ("KEYBOUND_ABSOLUTE_LIFETIME_SECS", "600"),
        ("KEYBOUND_RETENTION_SECS", "3600"),
        ("KEYBOUND_REFRESH_GRACE_SECS", "5"),
        ("KEYBOUND_NONCE", "on"),
        ("KEYBOUND_PROOF_ALGS", "ES256"),
        ("KEYBOUND_STORE", "sqlite:data/s.db"),
        ("KEYBOUND_REDIS_PREFIX", "shop:"),
        ("KEYBOUND_REDIS_TIMEOUT_MS", "500"),
    ])
    .unwrap();
    assert_eq!(s.redis_prefix, "shop:");
    assert_eq!(s.redis_timeout, Duration::from_millis(500));
    assert_eq!(s.public_origin, "https://app.example");
    assert_eq!(s.policy.access_token_lifetime(), Duration::from_secs(10));
    assert_eq!(s.policy.refresh_grace(), Duration::from_secs(5));
    assert_eq!(s.policy.retention(), Duration::from_secs(3600));
    assert!(s.nonce);
    assert_eq!(
        s.proof_algs,
        ProofAlgs::only(keybound_proto::ProofAlg::ES256)
    );
    assert_eq!(s.store, StoreSpec::Sqlite("data/s.db".into()));
}

#[test]
fn short_access_lifetime_gets_a_shorter_default_grace() {
    let s = settings(&[("KEYBOUND_ACCESS_TTL_SECS", "20")]).unwrap();
    assert_eq!(s.policy.refresh_grace(), Duration::from_secs(5));
    let s = settings(&[("KEYBOUND_ACCESS_TTL_SECS", "2")]).unwrap();
    assert_eq!(s.policy.refresh_grace(), Duration::from_secs(1));
    // An explicit grace is never changed: a nonsense one is refused.
    assert!(
        settings(&[
            ("KEYBOUND_ACCESS_TTL_SECS", "20"),
            ("KEYBOUND_REFRESH_GRACE_SECS", "30")
        ])
        .is_err()
    );
}

#[test]
fn rejects_nonsense_naming_the_variable() {
    for (vars, name) in [
        (vec![("KEYBOUND_LISTEN", "nowhere")], "KEYBOUND_LISTEN"),
        (
            vec![("KEYBOUND_PUBLIC_ORIGIN", "ftp://x")],
            "KEYBOUND_PUBLIC_ORIGIN",
        ),
        (
            vec![("KEYBOUND_ACCESS_TTL_SECS", "0")],
            "KEYBOUND_ACCESS_TTL_SECS",
        ),
        (
            vec![("KEYBOUND_IDLE_TIMEOUT_SECS", "-5")],
            "KEYBOUND_IDLE_TIMEOUT_SECS",
        ),
        (vec![("KEYBOUND_NONCE", "yes")], "KEYBOUND_NONCE"),
        (vec![("KEYBOUND_DBSC", "yes")], "KEYBOUND_DBSC"),
        (
            vec![("KEYBOUND_DBSC_UNBOUND_SECS", "301")],
            "KEYBOUND_DBSC_UNBOUND_SECS",
        ),
        (
            vec![("KEYBOUND_PROOF_ALGS", "RS256")],
            "KEYBOUND_PROOF_ALGS",
        ),
        (vec![("KEYBOUND_PROOF_ALGS", ",")], "KEYBOUND_PROOF_ALGS"),
        (vec![("KEYBOUND_STORE", "postgres://x")], "KEYBOUND_STORE"),
        (vec![("KEYBOUND_STORE", "sqlite:")], "KEYBOUND_STORE"),
        (
            vec![("KEYBOUND_REDIS_TIMEOUT_MS", "0")],
            "KEYBOUND_REDIS_TIMEOUT_MS",
        ),
        (
            vec![("KEYBOUND_REDIS_PREFIX", "a\tb")],
            "KEYBOUND_REDIS_PREFIX",
        ),
        (
            vec![
                ("KEYBOUND_ACCESS_TTL_SECS", "60"),
                ("KEYBOUND_REFRESH_GRACE_SECS", "120"),
            ],
            "KEYBOUND_*_SECS",
        ),
    ] {
        match settings(&vars) {
            Err(SettingsError::Invalid { name: got, .. }) => assert_eq!(got, name, "{vars:?}"),
            other => panic!("{vars:?}: {other:?}"),
        }
    }
}

/// Fuzzing finding (`settings` target): an origin with a query or fragment loaded
/// (the URL normalisation drops both), then the verifier refused it at start-up
/// without naming the variable.
#[test]
fn public_origin_is_checked_like_the_verifier_does() {
    for bad in [
        "https://api.exam?\0\0ple.com",
        "https://api.example.com/?x=1",
        "https://api.example.com#top",
        "https://api.example.com:70000",
    ] {
        match settings(&[("KEYBOUND_PUBLIC_ORIGIN", bad)]) {
            Err(SettingsError::Invalid { name, .. }) => {
                assert_eq!(name, "KEYBOUND_PUBLIC_ORIGIN", "{bad:?}")
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let s = settings(&[("KEYBOUND_PUBLIC_ORIGIN", " HTTPS://App.Example:443/base/ ")]).unwrap();
    assert_eq!(s.public_origin, "https://app.example/base");
    crate::Verifier::builder()
        .public_origin(s.public_origin)
        .keys(KeyRing::new(ServerKey::from_seed(&[1; 32])))
        .danger_accept_any_session()
        .build()
        .unwrap();
}

#[test]
fn debug_shows_no_secret() {
    let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I";
    let s = settings(&[
        (
            "KEYBOUND_STORE",
            "rediss://app:hunter2@cache.example:6380/0",
        ),
        ("KEYBOUND_NONCE_SECRET", secret),
    ])
    .unwrap();
    let debug = format!("{s:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(
        debug.contains("rediss://app:***@cache.example:6380/0"),
        "{debug}"
    );
    assert!(debug.contains("NonceSecret(<redacted>)"), "{debug}");
    // The URL itself is kept whole for connecting.
    assert_eq!(
        s.store,
        StoreSpec::Redis("rediss://app:hunter2@cache.example:6380/0".into())
    );
    for (url, shown) in [
        ("redis://:pw@h:1", "redis://:***@h:1"),
        ("redis://user@h/0", "redis://user@h/0"),
        ("redis://h:6379", "redis://h:6379"),
        ("redis://u:p@ss@h/", "redis://u:***@h/"),
        ("redis://h/0?password=x", "redis://h/0?password=x"),
    ] {
        assert_eq!(redact_url(url), shown, "{url}");
    }
}

#[test]
fn nonce_secret_is_set_or_derived_from_the_refresh_secret() {
    let s = settings(&[(
        "KEYBOUND_NONCE_SECRET",
        "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE",
    )])
    .unwrap();
    let refresh = RefreshSecret::from_bytes([9u8; 32]);
    assert_eq!(s.nonce_secret_for(&refresh).as_bytes(), &[1u8; 32]);
    let derived = settings(&[]).unwrap().nonce_secret_for(&refresh);
    assert_ne!(derived.as_bytes(), &[9u8; 32]);
    let again = settings(&[]).unwrap().nonce_secret_for(&refresh);
    assert_eq!(derived.as_bytes(), again.as_bytes());
    for bad in [
        "short",
        "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        "!!",
    ] {
        match settings(&[("KEYBOUND_NONCE_SECRET", bad)]) {
            Err(SettingsError::Invalid { name, .. }) => {
                assert_eq!(name, "KEYBOUND_NONCE_SECRET");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn replay_capacity_and_login_limits() {
    let s = settings(&[]).unwrap();
    assert_eq!(s.replay_capacity, 1_000_000);
    assert_eq!(s.max_sessions_per_user, 100);
    assert_eq!(s.login_limits, LoginLimits::default());
    let s = settings(&[
        ("KEYBOUND_REPLAY_CAPACITY", "1000"),
        ("KEYBOUND_MAX_SESSIONS_PER_USER", "3"),
        ("KEYBOUND_LOGIN_PER_IP_PER_MIN", "0"),
        ("KEYBOUND_LOGIN_PER_USER_PER_MIN", "5"),
    ])
    .unwrap();
    assert_eq!(s.replay_capacity, 1000);
    assert_eq!(s.max_sessions_per_user, 3);
    assert_eq!(s.login_limits.per_ip_per_minute, 0);
    assert_eq!(s.login_limits.per_user_per_minute, 5);
    for (name, value) in [
        ("KEYBOUND_REPLAY_CAPACITY", "0"),
        ("KEYBOUND_REPLAY_CAPACITY", "lots"),
        ("KEYBOUND_MAX_SESSIONS_PER_USER", "0"),
        ("KEYBOUND_LOGIN_PER_IP_PER_MIN", "-1"),
        ("KEYBOUND_LOGIN_PER_USER_PER_MIN", "99999999999"),
    ] {
        match settings(&[(name, value)]) {
            Err(SettingsError::Invalid { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{name}={value}: {other:?}"),
        }
    }
}

#[test]
fn key_file_is_created_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/keys.json");
    let s = settings(&[("KEYBOUND_KEY_FILE", path.to_str().unwrap())]).unwrap();
    let (ring1, secret1) = s.load_secrets().unwrap();
    let (ring2, secret2) = s.load_secrets().unwrap();
    assert_eq!(ring1.current().kid(), ring2.current().kid());
    assert_eq!(*secret1.to_base64url(), *secret2.to_base64url());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::write(&path, "not json").unwrap();
    assert!(matches!(
        s.load_secrets(),
        Err(SettingsError::KeyFile { .. })
    ));
}
