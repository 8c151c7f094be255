//! Service settings from `KEYBOUND_*` environment variables, shared by the examples and
//! by applications that want the same knobs.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `KEYBOUND_LISTEN` | `127.0.0.1:8080` | address to listen on |
//! | `KEYBOUND_PUBLIC_ORIGIN` | `http://` + listen address | origin clients reach the service at (for `htu`) |
//! | `KEYBOUND_ACCESS_TTL_SECS` | `300` | access-token lifetime |
//! | `KEYBOUND_IDLE_TIMEOUT_SECS` | `1800` | idle timeout |
//! | `KEYBOUND_ABSOLUTE_LIFETIME_SECS` | `43200` | absolute session lifetime |
//! | `KEYBOUND_RETENTION_SECS` | `604800` | how long ended sessions are kept (listed, with their reason) before the sweeper purges them |
//! | `KEYBOUND_REFRESH_GRACE_SECS` | `30` (a quarter of the access-token lifetime when that is 30 s or less) | grace for replaying the previous refresh token |
//! | `KEYBOUND_NONCE` | `off` | `on` to require server nonces in proofs |
//! | `KEYBOUND_PROOF_ALGS` | `EdDSA,ES256` | the proof algorithms accepted and advertised (`algs` of the DPoP challenge): `EdDSA`, `ES256` or both |
//! | `KEYBOUND_STORE` | `memory` | `memory`, `sqlite:PATH` or `redis://…` / `rediss://…` |
//! | `KEYBOUND_REDIS_PREFIX` | `keybound:` | prefix of every Redis key and of the revocation channel |
//! | `KEYBOUND_REDIS_TIMEOUT_MS` | `2000` | timeout of every Redis call; requests fail closed (`503`) after it |
//! | `KEYBOUND_DBSC` | `off` | `on` to offer DBSC to browsers at sign-in (where the application uses it, e.g. `examples/minimal`) |
//! | `KEYBOUND_DBSC_UNBOUND_SECS` | `0` | registration-pending policy: `0` refuses a DBSC session until its browser registered; `N` (1–300) lets it use an unbound cookie for at most N seconds |
//! | `KEYBOUND_KEY_FILE` | none | JSON file with the server signing key and refresh secret, created (mode 0600) on first start; without it both are random per process |
//! | `KEYBOUND_NONCE_SECRET` | derived from the key file's refresh secret; random without a key file | base64url of 32 random bytes keying the server nonces: every node behind one load balancer needs the same one |
//! | `KEYBOUND_REPLAY_CAPACITY` | `1000000` | most proof ids the replay store holds at once (memory, SQLite and Redis); when full, requests are refused with `503` until entries expire |
//! | `KEYBOUND_MAX_SESSIONS_PER_USER` | `100` | most active sessions a user has at once: a login beyond it revokes the user's least recently used session (reason `session_limit`) |
//! | `KEYBOUND_LOGIN_PER_IP_PER_MIN` | `30` | login attempts per client address and minute ([`LoginLimiter`](crate::axum::LoginLimiter)); `0` turns the limit off |
//! | `KEYBOUND_LOGIN_PER_USER_PER_MIN` | `10` | login attempts per username and minute; `0` turns the limit off |
//!
//! Invalid values stop start-up with a message naming the variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keybound_proto::ProofAlgs;
use keybound_proto::b64;
use serde_json::{Value, json};

use crate::lifecycle::{Policy, RefreshSecret};
use crate::{KeyRing, ServerKey};

/// Every variable [`Settings::from_lookup`] reads, in the order of the table above: for
/// an application that gathers them from another source, or a test that clears them.
pub const VARIABLES: [&str; 20] = [
    "KEYBOUND_LISTEN",
    "KEYBOUND_PUBLIC_ORIGIN",
    "KEYBOUND_ACCESS_TTL_SECS",
    "KEYBOUND_IDLE_TIMEOUT_SECS",
    "KEYBOUND_ABSOLUTE_LIFETIME_SECS",
    "KEYBOUND_RETENTION_SECS",
    "KEYBOUND_REFRESH_GRACE_SECS",
    "KEYBOUND_NONCE",
    "KEYBOUND_PROOF_ALGS",
    "KEYBOUND_STORE",
    "KEYBOUND_REDIS_PREFIX",
    "KEYBOUND_REDIS_TIMEOUT_MS",
    "KEYBOUND_DBSC",
    "KEYBOUND_DBSC_UNBOUND_SECS",
    "KEYBOUND_KEY_FILE",
    "KEYBOUND_NONCE_SECRET",
    "KEYBOUND_REPLAY_CAPACITY",
    "KEYBOUND_MAX_SESSIONS_PER_USER",
    "KEYBOUND_LOGIN_PER_IP_PER_MIN",
    "KEYBOUND_LOGIN_PER_USER_PER_MIN",
];

/// Why the settings are unusable.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A variable has a value that cannot be used.
    #[error("{name}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The key file could not be read or written.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Where sessions are stored. `Debug` shows a Redis URL without its password.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// In this process's memory.
    Memory,
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A Redis server (`redis://` or `rediss://` URL).
    Redis(String),
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Redis(url) => f.debug_tuple("Redis").field(&redact_url(url)).finish(),
        }
    }
}

/// `url` with any password (the part of the user info after `:`) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            let password = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{password}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Login attempt budgets for [`LoginLimiter`](crate::axum::LoginLimiter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginLimits {
    /// Attempts per client address and minute (`0`: no limit).
    pub per_ip_per_minute: u32,
    /// Attempts per username and minute (`0`: no limit).
    pub per_user_per_minute: u32,
    /// Most addresses, and most usernames, tracked at once.
    pub max_tracked_keys: usize,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_ip_per_minute: 30,
            per_user_per_minute: 10,
            max_tracked_keys: 100_000,
        }
    }
}

/// The secret keying server nonces, shared by every node of a service.
#[derive(Clone)]
pub struct NonceSecret(zeroize::Zeroizing<[u8; 32]>);

impl NonceSecret {
    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceSecret(<redacted>)")
    }
}

/// Settings of a keybound service. `Debug` shows no secret: a Redis URL's password
/// and the nonce secret are redacted.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The origin clients use (`htu` checks), without a trailing slash.
    pub public_origin: String,
    /// Lifetimes and grace.
    pub policy: Policy,
    /// Whether proofs must carry server nonces.
    pub nonce: bool,
    /// The proof algorithms accepted (and advertised in DPoP challenges).
    pub proof_algs: ProofAlgs,
    /// Where sessions live.
    pub store: StoreSpec,
    /// Where the server key and refresh secret persist, if anywhere.
    pub key_file: Option<PathBuf>,
    /// Prefix of the Redis store's keys and channel.
    pub redis_prefix: String,
    /// Timeout of every Redis call.
    pub redis_timeout: Duration,
    /// The nonce secret set by `KEYBOUND_NONCE_SECRET`; without it, nonces are keyed
    /// by a secret derived from the key file's refresh secret, or a random one.
    pub nonce_secret: Option<NonceSecret>,
    /// Most entries the replay store holds.
    pub replay_capacity: usize,
    /// Most active sessions per user (see
    /// [`max_sessions_per_user`](crate::lifecycle::SessionServiceBuilder::max_sessions_per_user)).
    pub max_sessions_per_user: usize,
    /// Login attempt budgets.
    pub login_limits: LoginLimits,
    /// Whether browsers are offered DBSC at sign-in.
    pub dbsc: bool,
    /// How long a DBSC session may use an unbound cookie before its browser
    /// registered; `None` refuses it (the default).
    pub dbsc_unbound_cookie: Option<Duration>,
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (a variable name → its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let listen: SocketAddr = match get("KEYBOUND_LISTEN") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(v) => v.trim().parse().map_err(|_| SettingsError::Invalid {
                name: "KEYBOUND_LISTEN",
                reason: format!("{v:?} is not an address like 127.0.0.1:8080"),
            })?,
        };
        let public_origin = match get("KEYBOUND_PUBLIC_ORIGIN") {
            None => format!("http://{listen}"),
            // Exactly what the verifier will accept, so settings that load also start.
            Some(v) => {
                crate::verifier::normalize_origin(v.trim()).map_err(|e| SettingsError::Invalid {
                    name: "KEYBOUND_PUBLIC_ORIGIN",
                    reason: format!("{:?} is not an http(s) origin: {e}", v.trim()),
                })?
            }
        };
        let secs = |name: &'static str| -> Result<Option<Duration>, SettingsError> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .map(Duration::from_secs)
                        .ok_or(SettingsError::Invalid {
                            name,
                            reason: format!("{v:?} is not a positive number of seconds"),
                        })
                })
                .transpose()
        };
        let mut policy = Policy::default();
        if let Some(d) = secs("KEYBOUND_ACCESS_TTL_SECS")? {
            policy = policy.with_access_token_lifetime(d);
        }
        if let Some(d) = secs("KEYBOUND_IDLE_TIMEOUT_SECS")? {
            policy = policy.with_idle_timeout(d);
        }
        if let Some(d) = secs("KEYBOUND_ABSOLUTE_LIFETIME_SECS")? {
            policy = policy.with_absolute_lifetime(d);
        }
        if let Some(d) = secs("KEYBOUND_RETENTION_SECS")? {
            policy = policy.with_retention(d);
        }
        match secs("KEYBOUND_REFRESH_GRACE_SECS")? {
            Some(d) => policy = policy.with_refresh_grace(d),
            // The default grace (30 s) must stay below the access-token lifetime; with
            // a short lifetime chosen for trying expiry, a quarter of it is used.
            None if policy.refresh_grace() >= policy.access_token_lifetime() => {
                let quarter = policy.access_token_lifetime() / 4;
                policy = policy.with_refresh_grace(quarter.max(Duration::from_secs(1)));
            }
            None => {}
        }
        policy.validate().map_err(|e| SettingsError::Invalid {
            name: "KEYBOUND_*_SECS",
            reason: e.to_string(),
        })?;
        let nonce = match get("KEYBOUND_NONCE").as_deref().map(str::trim) {
            None | Some("off") => false,
            Some("on") => true,
            Some(v) => {
                return Err(SettingsError::Invalid {
                    name: "KEYBOUND_NONCE",
                    reason: format!("{v:?} must be on or off"),
                });
            }
        };
        let proof_algs = match get("KEYBOUND_PROOF_ALGS") {
            None => ProofAlgs::ALL,
            Some(v) => v.parse().map_err(|e| SettingsError::Invalid {
                name: "KEYBOUND_PROOF_ALGS",
                reason: format!("{v:?}: {e}"),
            })?,
        };
        let store = match get("KEYBOUND_STORE") {
            None => StoreSpec::Memory,
            Some(v) => parse_store(v.trim())?,
        };
        let key_file = get("KEYBOUND_KEY_FILE").map(PathBuf::from);
        let redis_prefix = match get("KEYBOUND_REDIS_PREFIX") {
            None => "keybound:".to_owned(),
            Some(prefix) if prefix.chars().any(char::is_control) => {
                return Err(SettingsError::Invalid {
                    name: "KEYBOUND_REDIS_PREFIX",
                    reason: "contains control characters".into(),
                });
            }
            Some(prefix) => prefix,
        };
        let redis_timeout = match get("KEYBOUND_REDIS_TIMEOUT_MS") {
            None => Duration::from_secs(2),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| (1..=60_000).contains(ms))
                .map(Duration::from_millis)
                .ok_or(SettingsError::Invalid {
                    name: "KEYBOUND_REDIS_TIMEOUT_MS",
                    reason: format!("{v:?} is not a number of milliseconds from 1 to 60000"),
                })?,
        };
        let nonce_secret = get("KEYBOUND_NONCE_SECRET")
            .map(|v| {
                b64::decode_array::<32>(v.trim(), "KEYBOUND_NONCE_SECRET")
                    .map(|bytes| NonceSecret(zeroize::Zeroizing::new(bytes)))
                    .map_err(|_| SettingsError::Invalid {
                        name: "KEYBOUND_NONCE_SECRET",
                        reason: "must be 32 random bytes in base64url (43 characters), \
                                 e.g. from `openssl rand 32 | basenc --base64url`"
                            .into(),
                    })
            })
            .transpose()?;
        let count = |name: &'static str, default: u64, min: u64| -> Result<u64, SettingsError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v.trim().parse::<u64>().ok().filter(|n| *n >= min).ok_or(
                    SettingsError::Invalid {
                        name,
                        reason: format!("{v:?} is not a whole number of at least {min}"),
                    },
                ),
            }
        };
        let replay_capacity =
            usize::try_from(count("KEYBOUND_REPLAY_CAPACITY", 1_000_000, 1)?).unwrap_or(usize::MAX);
        let max_sessions_per_user = usize::try_from(count(
            "KEYBOUND_MAX_SESSIONS_PER_USER",
            crate::lifecycle::SessionServiceBuilder::DEFAULT_MAX_SESSIONS_PER_USER as u64,
            1,
        )?)
        .unwrap_or(usize::MAX);
        let defaults = LoginLimits::default();
        let per_minute = |name: &'static str, default: u32| -> Result<u32, SettingsError> {
            let n = count(name, u64::from(default), 0)?;
            u32::try_from(n).map_err(|_| SettingsError::Invalid {
                name,
                reason: format!("{n} is too large"),
            })
        };
        let login_limits = LoginLimits {
            per_ip_per_minute: per_minute(
                "KEYBOUND_LOGIN_PER_IP_PER_MIN",
                defaults.per_ip_per_minute,
            )?,
            per_user_per_minute: per_minute(
                "KEYBOUND_LOGIN_PER_USER_PER_MIN",
                defaults.per_user_per_minute,
            )?,
            max_tracked_keys: defaults.max_tracked_keys,
        };
        let dbsc = match get("KEYBOUND_DBSC").as_deref().map(str::trim) {
            None | Some("off") => false,
            Some("on") => true,
            Some(v) => {
                return Err(SettingsError::Invalid {
                    name: "KEYBOUND_DBSC",
                    reason: format!("{v:?} must be on or off"),
                });
            }
        };
        let dbsc_unbound_cookie = match get("KEYBOUND_DBSC_UNBOUND_SECS") {
            None => None,
            Some(v) => match v.trim().parse::<u64>().ok().filter(|n| *n <= 300) {
                Some(0) => None,
                Some(n) => Some(Duration::from_secs(n)),
                None => {
                    return Err(SettingsError::Invalid {
                        name: "KEYBOUND_DBSC_UNBOUND_SECS",
                        reason: format!("{v:?} is not a number of seconds from 0 to 300"),
                    });
                }
            },
        };
        Ok(Self {
            listen,
            public_origin,
            policy,
            nonce,
            proof_algs,
            store,
            key_file,
            redis_prefix,
            redis_timeout,
            nonce_secret,
            replay_capacity,
            max_sessions_per_user,
            login_limits,
            dbsc,
            dbsc_unbound_cookie,
        })
    }

    /// The nonce secret: `KEYBOUND_NONCE_SECRET` when set, else derived from the
    /// refresh secret (so nodes that share a key file share nonces too).
    pub fn nonce_secret_for(&self, refresh: &RefreshSecret) -> NonceSecret {
        match &self.nonce_secret {
            Some(secret) => secret.clone(),
            None => NonceSecret(refresh.derive(b"keybound-nonce-secret-v1")),
        }
    }

    /// The server signing key and refresh secret: read from the key file (created with
    /// fresh random values on first use), or random when there is no key file.
    pub fn load_secrets(&self) -> Result<(KeyRing, RefreshSecret), SettingsError> {
        match &self.key_file {
            None => {
                let keys = KeyRing::generate().map_err(|e| SettingsError::Invalid {
                    name: "KEYBOUND_KEY_FILE",
                    reason: e.to_string(),
                })?;
                let secret = RefreshSecret::generate().map_err(|e| SettingsError::Invalid {
                    name: "KEYBOUND_KEY_FILE",
                    reason: e.to_string(),
                })?;
                Ok((keys, secret))
            }
            Some(path) => load_or_create_key_file(path),
        }
    }
}

fn parse_store(v: &str) -> Result<StoreSpec, SettingsError> {
    let invalid = |reason: &str| SettingsError::Invalid {
        name: "KEYBOUND_STORE",
        reason: format!("{v:?}: {reason}"),
    };
    if v == "memory" {
        Ok(StoreSpec::Memory)
    } else if let Some(path) = v.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if path.is_empty() {
            return Err(invalid(
                "sqlite: needs a file path, e.g. sqlite:data/sessions.db",
            ));
        }
        Ok(StoreSpec::Sqlite(PathBuf::from(path)))
    } else if v.starts_with("redis://") || v.starts_with("rediss://") {
        Ok(StoreSpec::Redis(v.to_owned()))
    } else {
        Err(invalid("use memory, sqlite:PATH or redis://HOST:PORT"))
    }
}

fn key_file_error(path: &Path, reason: impl std::fmt::Display) -> SettingsError {
    SettingsError::KeyFile {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn load_or_create_key_file(path: &Path) -> Result<(KeyRing, RefreshSecret), SettingsError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = zeroize::Zeroizing::new(bytes);
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|_| key_file_error(path, "not valid JSON"))?;
            let key = ServerKey::from_private_jwk(value.get("signing_key").unwrap_or(&Value::Null))
                .map_err(|e| key_file_error(path, e))?;
            let secret = value
                .get("refresh_secret")
                .and_then(Value::as_str)
                .ok_or_else(|| key_file_error(path, "refresh_secret is missing"))
                .and_then(|s| {
                    RefreshSecret::from_base64url(s).map_err(|e| key_file_error(path, e))
                })?;
            Ok((KeyRing::new(key), secret))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let key = ServerKey::generate().map_err(|e| key_file_error(path, e))?;
            let secret = RefreshSecret::generate().map_err(|e| key_file_error(path, e))?;
            let jwk: Value =
                serde_json::from_str(&key.to_private_jwk()).map_err(|e| key_file_error(path, e))?;
            let text = zeroize::Zeroizing::new(
                json!({"signing_key": jwk, "refresh_secret": secret.to_base64url().as_str()})
                    .to_string(),
            );
            write_private(path, text.as_bytes()).map_err(|e| key_file_error(path, e))?;
            Ok((KeyRing::new(key), secret))
        }
        Err(err) => Err(key_file_error(path, err)),
    }
}

/// Writes a new key file readable only by its owner (creating its directory), failing
/// if it exists.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    crate::keyfile::write_private(path, bytes, false)
}

#[cfg(test)]
mod tests;
