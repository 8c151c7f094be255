//! Configuring a [`Verifier`]: [`VerifierBuilder`], what it checks
//! ([`VerifierConfigError`]), and the public origin's normal form, which the settings
//! check `KEYBOUND_PUBLIC_ORIGIN` with too.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use keybound_proto::{ProofAlgs, ProtoError, normalize_htu};

use super::{
    DEFAULT_MAX_HEADER_LEN, DEFAULT_MAX_IAT_AHEAD, DEFAULT_MAX_SKEW, Inner, SharedKeyRing, Verifier,
};
use crate::proof_keys::ProofKeyCache;
use crate::replay::{MemoryReplayStore, ReplayStore};
use crate::session_check::{AcceptAnySession, SessionCheck};
use crate::token_cache::TokenCache;
use crate::{Clock, KeyRing, Nonces, SystemClock};

/// Why a [`VerifierBuilder`] could not build a verifier.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifierConfigError {
    /// No public origin was set.
    #[error("the verifier needs the service's public origin (e.g. https://api.example.com)")]
    MissingOrigin,
    /// The public origin is not an absolute http(s) URL without query or fragment.
    #[error("invalid public origin: {0}")]
    InvalidOrigin(&'static str),
    /// No key ring was set.
    #[error("the verifier needs the server's key ring")]
    MissingKeys,
    /// Neither a session check nor
    /// [`danger_accept_any_session`](VerifierBuilder::danger_accept_any_session) was
    /// chosen.
    #[error(
        "the verifier needs a session check (the SessionService), or danger_accept_any_session() for stateless use"
    )]
    MissingSessionCheck,
}

/// Configures a [`Verifier`]. Required: [`public_origin`](Self::public_origin), the
/// keys ([`keys`](Self::keys) or [`key_ring`](Self::key_ring)) and the session check
/// ([`session_check`](Self::session_check), or the explicit
/// [`danger_accept_any_session`](Self::danger_accept_any_session)).
#[must_use]
pub struct VerifierBuilder {
    origin: Option<String>,
    keys: Option<SharedKeyRing>,
    clock: Arc<dyn Clock>,
    replay: Option<Arc<dyn ReplayStore>>,
    sessions: Option<Arc<dyn SessionCheck>>,
    max_skew: Duration,
    max_iat_ahead: Duration,
    max_header_len: usize,
    nonces: Option<Nonces>,
    token_cache_capacity: usize,
    proof_key_cache_capacity: usize,
    proof_algs: ProofAlgs,
    issuer: Option<String>,
}

impl std::fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// The origin clients use to reach the service, e.g. `https://api.example.com`
    /// (scheme, host, port if not the default). It may end in a base path
    /// (`https://example.com/api`) when a proxy strips that prefix before the request
    /// reaches the service. The request's path is appended to it to form the URL the
    /// proof's `htu` must match.
    pub fn public_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// The server's keys, shared with whoever rotates them (`KeyRing::rotate`,
    /// `KeyRing::retire` take effect on the next request).
    pub fn key_ring(mut self, keys: SharedKeyRing) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The server's keys, owned by the verifier (reach them later with
    /// [`Verifier::key_ring`]).
    pub fn keys(self, keys: KeyRing) -> Self {
        self.key_ring(Arc::new(RwLock::new(keys)))
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The replay store (default: a [`MemoryReplayStore`] of default capacity on the
    /// verifier's clock).
    pub fn replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.replay = Some(store);
        self
    }

    /// The session-state check, the last check of every protected request: usually
    /// the [`SessionService`](crate::SessionService), so a revoked session is refused
    /// at once. Required, unless
    /// [`danger_accept_any_session`](Self::danger_accept_any_session) is chosen.
    pub fn session_check(mut self, check: Arc<dyn SessionCheck>) -> Self {
        self.sessions = Some(check);
        self
    }

    /// Checks no session state: a token stays good until it expires, whatever
    /// happened to its session (revoked, closed, expired). Only for a service without
    /// a session lifecycle (tests, tools, a stateless resource server that accepts
    /// that risk); instead of [`session_check`](Self::session_check).
    pub fn danger_accept_any_session(mut self) -> Self {
        self.sessions = Some(Arc::new(AcceptAnySession));
        self
    }

    /// Allowed distance between a proof's `iat` and the clock, in either direction
    /// (default [`DEFAULT_MAX_SKEW`]). Also the leeway for an access token's `iat`.
    pub fn max_skew(mut self, skew: Duration) -> Self {
        self.max_skew = skew;
        self
    }

    /// How far ahead of the clock a proof's `iat` may be (default
    /// [`DEFAULT_MAX_IAT_AHEAD`], at most the [`max_skew`](Self::max_skew)). A proof id
    /// is kept until the proof could no longer be accepted, so this and the skew bound
    /// how long each replay-store entry lives.
    pub fn max_iat_ahead(mut self, ahead: Duration) -> Self {
        self.max_iat_ahead = ahead;
        self
    }

    /// The `iss` access tokens must carry: the session service's
    /// `SessionServiceBuilder::issuer` (default: the public origin, normalised, without
    /// a trailing `/`). A token with another `iss` is refused with `invalid_issuer`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Limit on the `DPoP` and `Authorization` header values in bytes (default
    /// [`DEFAULT_MAX_HEADER_LEN`]).
    pub fn max_header_len(mut self, len: usize) -> Self {
        self.max_header_len = len;
        self
    }

    /// Turns nonces on (off by default).
    pub fn nonces(mut self, nonces: Nonces) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// How many verified access tokens to cache (default
    /// [`TokenCache::DEFAULT_CAPACITY`]; 0 turns the cache off).
    pub fn token_cache_capacity(mut self, capacity: usize) -> Self {
        self.token_cache_capacity = capacity;
        self
    }

    /// How many decoded device keys to remember (default 8,192, about 4 MiB when full;
    /// 0 turns this off).
    /// Decoding a key costs about a tenth of a signature check, and a client signs
    /// every request with the same key; a remembered key is exactly what decoding
    /// again would give.
    pub fn proof_key_cache_capacity(mut self, capacity: usize) -> Self {
        self.proof_key_cache_capacity = capacity;
        self
    }

    /// The proof algorithms accepted (default [`ProofAlgs::ALL`]: `EdDSA` and `ES256`).
    /// A proof of another `alg` is refused with `unsupported_alg`, and every DPoP
    /// challenge lists exactly these in its `algs` parameter (RFC 9449 §7.1).
    pub fn proof_algs(mut self, algs: ProofAlgs) -> Self {
        self.proof_algs = algs;
        self
    }

    /// Checks the configuration and builds the verifier.
    pub fn build(self) -> Result<Verifier, VerifierConfigError> {
        let origin = self.origin.ok_or(VerifierConfigError::MissingOrigin)?;
        let origin = normalize_origin(&origin)?;
        let keys = self.keys.ok_or(VerifierConfigError::MissingKeys)?;
        let sessions = self
            .sessions
            .ok_or(VerifierConfigError::MissingSessionCheck)?;
        let replay = self
            .replay
            .unwrap_or_else(|| Arc::new(MemoryReplayStore::new(self.clock.clone())));
        let issuer = self.issuer.unwrap_or_else(|| origin.clone());
        let max_skew_secs = self.max_skew.as_secs();
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer,
                max_iat_ahead_secs: self.max_iat_ahead.as_secs().min(max_skew_secs),
                origin,
                keys,
                clock: self.clock,
                replay,
                sessions,
                max_skew_secs,
                max_header_len: self.max_header_len,
                nonces: self.nonces,
                token_cache: TokenCache::new(self.token_cache_capacity),
                proof_keys: ProofKeyCache::new(self.proof_key_cache_capacity),
                proof_algs: self.proof_algs,
            }),
        })
    }
}

/// The public origin as the verifier uses it: an absolute http(s) URL without query or
/// fragment, normalised, without a trailing `/`. Settings validate
/// `KEYBOUND_PUBLIC_ORIGIN` with it too.
pub(crate) fn normalize_origin(origin: &str) -> Result<String, VerifierConfigError> {
    if origin.contains(['?', '#']) {
        return Err(VerifierConfigError::InvalidOrigin(
            "must not have a query or fragment",
        ));
    }
    let mut normalized = normalize_htu(origin).map_err(|err| match err {
        ProtoError::InvalidUrl { reason } => VerifierConfigError::InvalidOrigin(reason),
        _ => VerifierConfigError::InvalidOrigin("not an absolute http(s) URL"),
    })?;
    while normalized.ends_with('/') {
        normalized.pop();
    }
    Ok(normalized)
}

impl Verifier {
    /// Starts configuring a verifier.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder {
            origin: None,
            keys: None,
            clock: Arc::new(SystemClock),
            replay: None,
            sessions: None,
            max_skew: DEFAULT_MAX_SKEW,
            max_iat_ahead: DEFAULT_MAX_IAT_AHEAD,
            issuer: None,
            max_header_len: DEFAULT_MAX_HEADER_LEN,
            nonces: None,
            token_cache_capacity: TokenCache::DEFAULT_CAPACITY,
            proof_key_cache_capacity: 8_192,
            proof_algs: ProofAlgs::ALL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_validated_and_normalised() {
        assert_eq!(
            normalize_origin("HTTPS://API.Example.com:443/").unwrap(),
            "https://api.example.com"
        );
        assert_eq!(
            normalize_origin("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_origin("https://example.com/api/").unwrap(),
            "https://example.com/api"
        );
        for bad in [
            "api.example.com",
            "ftp://example.com",
            "https://example.com/?a",
            "https://example.com#x",
            "https://user@example.com",
        ] {
            assert!(
                matches!(
                    normalize_origin(bad),
                    Err(VerifierConfigError::InvalidOrigin(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn builder_requires_origin_and_keys() {
        let err = Verifier::builder().build().unwrap_err();
        assert_eq!(err, VerifierConfigError::MissingOrigin);
        let err = Verifier::builder()
            .public_origin("https://a.example")
            .build()
            .unwrap_err();
        assert_eq!(err, VerifierConfigError::MissingKeys);
        let err = Verifier::builder()
            .public_origin("https://a.example")
            .keys(crate::KeyRing::new(crate::ServerKey::from_seed(&[1; 32])))
            .build()
            .unwrap_err();
        assert_eq!(err, VerifierConfigError::MissingSessionCheck);
    }
}
