//! `Settings` from the environment (`Settings::from_lookup`): any set of variables
//! gives settings or an error naming a variable that was set, never a panic; and
//! settings that load are usable: the verifier and the session service that
//! `axum::setup` builds from them start.
//!
//! Input: lines `NAME=VALUE` (a later line wins).
#![no_main]

use std::collections::HashMap;
use std::time::Duration;

use keybound_server::lifecycle::{RefreshSecret, SessionService};
use keybound_server::settings::{Settings, SettingsError};
use keybound_server::store::MemoryStore;
use keybound_server::{KeyRing, ServerKey, Verifier};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let lookup = |name: &str| vars.get(name).map(|v| (*v).to_owned());
    let settings = match Settings::from_lookup(lookup) {
        Ok(settings) => settings,
        Err(SettingsError::Invalid { name, reason }) => {
            assert!(!reason.is_empty());
            if name == "KEYBOUND_*_SECS" {
                assert!(
                    vars.keys()
                        .any(|k| k.starts_with("KEYBOUND_") && k.ends_with("_SECS"))
                );
            } else {
                let value = vars.get(name).copied().unwrap_or_default();
                assert!(!value.trim().is_empty(), "{name} blamed but not set");
            }
            return;
        }
        Err(other) => panic!("from_lookup touched a file: {other}"),
    };
    let again = Settings::from_lookup(lookup).map(|s| format!("{s:?}"));
    assert_eq!(again.ok(), Some(format!("{settings:?}")));

    settings
        .policy
        .validate()
        .unwrap_or_else(|e| panic!("accepted an invalid policy: {e}"));
    assert!(!settings.redis_prefix.chars().any(char::is_control));
    assert!((Duration::from_millis(1)..=Duration::from_secs(60)).contains(&settings.redis_timeout));
    assert!(!settings.public_origin.ends_with('/'));

    let keys = || KeyRing::new(ServerKey::from_seed(&[1; 32]));
    Verifier::builder()
        .public_origin(settings.public_origin.clone())
        .keys(keys())
        .danger_accept_any_session()
        .build()
        .unwrap_or_else(|e| {
            panic!(
                "KEYBOUND_PUBLIC_ORIGIN {:?} loads, but the verifier refuses it: {e}",
                settings.public_origin
            )
        });
    SessionService::builder(MemoryStore::new(), keys())
        .policy(settings.policy.clone())
        .refresh_secret(RefreshSecret::from_bytes([2; 32]))
        .build()
        .unwrap_or_else(|e| panic!("the session service refuses the settings: {e}"));
});
