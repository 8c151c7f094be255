//! The request verifier: every check of DESIGN §3, in order, for any `http`-based
//! framework.
//!
//! Order (cheap first; nothing is written before every signature verified):
//! size limits and header shape → JOSE parsing of proof and token → `htm`/`htu` →
//! `iat` window → `ath` → `cnf.jkt` → access-token signature (or the token cache) and
//! `exp` → proof signature (`verify_strict`) → `jti` replay → nonce (when enabled) →
//! session state.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use http::header::{AUTHORIZATION, HeaderName};
use http::{HeaderMap, Method, Uri};
use keybound_proto::{
    AccessToken, CheckHooks, CheckedRequest, Credential, KeyDecoder, ProofAlgs, ProofClaims,
    ProtoError, PublicJwk, RequestContext, check_request,
};

use crate::proof_keys::{Decoding, ProofKeyCache};
use crate::replay::{ReplayStore, replay_key};
use crate::session_check::SessionCheck;
use crate::token_cache::TokenCache;
use crate::{Clock, KeyRing, Nonces, Rejection};

mod builder;
mod stateless;

pub(crate) use builder::normalize_origin;
pub use builder::{VerifierBuilder, VerifierConfigError};
pub use stateless::verify_stateless;

/// The `DPoP` request header.
const DPOP: HeaderName = HeaderName::from_static("dpop");

/// Default allowed distance between a proof's `iat` and the server's clock: 60 s.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(60);

/// Default limit on how far ahead of the server's clock a proof's `iat` may be: 5 s.
/// Together with [`DEFAULT_MAX_SKEW`] it bounds how long a proof id is kept.
pub const DEFAULT_MAX_IAT_AHEAD: Duration = Duration::from_secs(5);

/// Default limit on the `DPoP` and `Authorization` header values: 8 KiB.
pub const DEFAULT_MAX_HEADER_LEN: usize = 8 * 1024;

/// Counter of verifications, labelled `result` = the rejection code or `ok`.
pub const METRIC_VERIFICATIONS: &str = "keybound_verifications_total";
/// Histogram of the time one verification takes, in seconds.
pub const METRIC_VERIFICATION_SECONDS: &str = "keybound_verification_seconds";
/// Gauge of the entries held by the replay store.
pub const METRIC_REPLAY_ENTRIES: &str = "keybound_replay_entries";

/// A key ring shared between the verifier and whoever rotates keys.
pub type SharedKeyRing = Arc<RwLock<KeyRing>>;

/// What the verifier reads of a request: its method, its target and its headers,
/// never its body. Made from an `http::request::Parts` or an `http::Request`, or by
/// hand when the URL the client signed is not the request's own target (a router
/// that stripped a prefix keeps the original URI).
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request target; only its path is used (the public origin is configured).
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

impl<'a> From<&'a http::request::Parts> for RequestHead<'a> {
    fn from(parts: &'a http::request::Parts) -> Self {
        Self {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
        }
    }
}

impl<'a, B> From<&'a http::Request<B>> for RequestHead<'a> {
    fn from(request: &'a http::Request<B>) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
        }
    }
}

/// The identity of a verified protected request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRequest {
    /// The user id (`sub` of the access token).
    pub sub: String,
    /// The session id (`sid` of the access token).
    pub sid: String,
    /// Thumbprint of the device key that signed the proof (equals the token's `cnf.jkt`).
    pub jkt: String,
    /// The access token's `exp`, seconds since the epoch.
    pub token_expires_at: i64,
    /// The access token's `jti`.
    pub token_jti: String,
}

/// A verified proof of a request that carries no access token (login, refresh).
///
/// Its `jti` is **not yet recorded**: record it with [`Verifier::consume_proof`] once
/// the request has proven more than possession of some key (the login's credentials
/// checked, the refresh token bound to this key), and before acting on it. So proofs
/// from self-made keys without an account never reach the replay store, and no flood
/// of them can fill it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a proof-only request must be consumed with Verifier::consume_proof before acting on it"]
pub struct VerifiedProof {
    /// Thumbprint of the proof key: the key a new session is bound to.
    pub jkt: String,
    /// The proof key.
    pub jwk: PublicJwk,
    /// The proof's claims.
    pub claims: ProofClaims,
}

/// Verifies DPoP-protected requests. Cheap to clone (one `Arc`); share one per service.
///
/// Built with [`Verifier::builder`]. Input is the request's method, URI and headers;
/// the URL the proof must name is the configured public origin followed by the
/// request's path (the `Host` header and any authority in the request target are never
/// trusted). Output is the verified identity or a [`Rejection`] that renders the exact
/// HTTP error response.
///
/// Without axum, with a plain `http::Request`:
///
/// ```
/// use std::sync::Arc;
/// use keybound_proto::{AccessTokenClaims, ProofBuilder, Signer};
/// use keybound_server::{KeyRing, ManualClock, ServerKey, Verifier};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let now = 1_700_000_000;
/// let clock = ManualClock::new(now * 1000);
/// let keys = KeyRing::new(ServerKey::from_seed(&[1u8; 32]));
///
/// // What the client holds: a device key and an access token bound to it.
/// let device = ed25519_dalek::SigningKey::from_bytes(&[2u8; 32]);
/// let jkt = device.public_jwk().thumbprint();
/// let token = keys.sign(&AccessTokenClaims {
///     iss: "https://api.example.com".into(), sub: "alice".into(), sid: "s1".into(),
///     jti: "t1".into(), iat: now, exp: now + 300, jkt,
/// }).unwrap();
///
/// let verifier = Verifier::builder()
///     .public_origin("https://api.example.com")
///     .keys(keys)
///     .clock(Arc::new(clock))
///     // This example has no session lifecycle; a service passes its SessionService
///     // to `session_check`, so revoked sessions are refused at once.
///     .danger_accept_any_session()
///     .build()
///     .unwrap();
///
/// // The client signs `GET https://api.example.com/orders` ...
/// let proof = ProofBuilder::new(device.public_jwk(), "GET", "https://api.example.com/orders", now, [3u8; 16])
///     .unwrap()
///     .access_token(&token)
///     .sign(&device)
///     .unwrap();
/// // ... and the request reaches the service behind a proxy.
/// let request = http::Request::get("/orders?page=2")
///     .header("host", "10.0.0.7:8080")
///     .header("authorization", format!("DPoP {token}"))
///     .header("dpop", proof.as_str())
///     .body(())
///     .unwrap();
/// let caller = verifier.verify(&request).await.unwrap();
/// assert_eq!((caller.sub.as_str(), caller.sid.as_str()), ("alice", "s1"));
///
/// // The same proof again is a replay: the rejection renders the HTTP answer.
/// let rejection = verifier.verify(&request).await.unwrap_err();
/// assert_eq!(rejection.code(), "replayed_jti");
/// let response = verifier.response(rejection);
/// assert_eq!(response.status(), 401);
/// assert!(response.headers()["www-authenticate"]
///     .to_str().unwrap().starts_with(r#"DPoP error="invalid_dpop_proof""#));
/// # });
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("origin", &self.inner.origin)
            .field("max_skew_secs", &self.inner.max_skew_secs)
            .field("max_header_len", &self.inner.max_header_len)
            .field("nonces", &self.inner.nonces.is_some())
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Normalised origin (and optional base path) without a trailing `/`.
    origin: String,
    keys: SharedKeyRing,
    clock: Arc<dyn Clock>,
    replay: Arc<dyn ReplayStore>,
    sessions: Arc<dyn SessionCheck>,
    max_skew_secs: u64,
    max_iat_ahead_secs: u64,
    max_header_len: usize,
    nonces: Option<Nonces>,
    token_cache: TokenCache,
    proof_keys: ProofKeyCache,
    proof_algs: ProofAlgs,
    /// The `iss` every access token must carry.
    issuer: String,
}

impl Verifier {
    /// Verifies a protected request: `Authorization: DPoP <access token>` plus a `DPoP`
    /// proof bound to it, then replay, nonce and session state. `request` is an
    /// `http::request::Parts`, an `http::Request` (the body is not read) or a
    /// [`RequestHead`].
    pub async fn verify(
        &self,
        request: impl Into<RequestHead<'_>>,
    ) -> Result<VerifiedRequest, Rejection> {
        let request = request.into();
        let started = Instant::now();
        let result = self.inner.verify(&request).await;
        self.inner.record(result.as_ref().err(), started);
        result
    }

    /// Verifies a request that carries only a proof (login, refresh): the proof's
    /// checks and nonce; any `Authorization` header is ignored. Returns the key the
    /// proof was signed with. `request` as for [`verify`](Self::verify). The proof's
    /// `jti` is not recorded yet: call [`consume_proof`](Self::consume_proof) once the
    /// request is authenticated otherwise (credentials, refresh token), before acting
    /// on it.
    pub async fn verify_proof(
        &self,
        request: impl Into<RequestHead<'_>>,
    ) -> Result<VerifiedProof, Rejection> {
        let request = request.into();
        let started = Instant::now();
        let result = self.inner.verify_proof(&request).await;
        self.inner.record(result.as_ref().err(), started);
        result
    }

    /// Records the `jti` of a proof [`verify_proof`](Self::verify_proof) accepted:
    /// `Ok` the first time, [`Rejection::ReplayedJti`] for a replay, `503`
    /// `replay_store_unavailable` when the replay store cannot record it.
    pub async fn consume_proof(&self, proof: &VerifiedProof) -> Result<(), Rejection> {
        let now_ms = self.inner.clock.now_ms();
        let result = self
            .inner
            .record_jti(&proof.jkt, &proof.claims.jti, proof.claims.iat, now_ms)
            .await;
        if let Err(rejection) = &result {
            self.inner.record(Some(rejection), Instant::now());
        }
        result
    }

    /// The nonce to send in a `DPoP-Nonce` response header now, when nonces are on.
    pub fn nonce(&self) -> Option<String> {
        let nonces = self.inner.nonces.as_ref()?;
        Some(nonces.issue(self.inner.clock.now_ms()))
    }

    /// The key ring, to rotate or retire keys while the verifier runs.
    pub fn key_ring(&self) -> &SharedKeyRing {
        &self.inner.keys
    }

    /// The cache of verified access tokens.
    pub fn token_cache(&self) -> &TokenCache {
        &self.inner.token_cache
    }

    /// The replay store.
    pub fn replay_store(&self) -> &Arc<dyn ReplayStore> {
        &self.inner.replay
    }

    /// The clock the verifier reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The normalised public origin (without a trailing `/`).
    pub fn public_origin(&self) -> &str {
        &self.inner.origin
    }

    /// The proof algorithms this verifier accepts (and advertises in challenges).
    pub fn proof_algs(&self) -> ProofAlgs {
        self.inner.proof_algs
    }

    /// The HTTP response for one of this verifier's rejections: the challenge lists
    /// this verifier's [`proof_algs`](Self::proof_algs).
    pub fn response(&self, rejection: Rejection) -> http::Response<String> {
        rejection.into_http_response(self.inner.proof_algs)
    }
}

/// A token whose signature just verified, to be cached once the whole check passed.
struct ToCache {
    hash: [u8; 32],
    token: AccessToken,
    key: [u8; 32],
}

/// The verifier's side of `check_request`: the token cache, the key ring, the
/// decoded proof keys, and the request URL built in normal form.
struct Hooks<'v> {
    inner: &'v Inner,
    decoding: Decoding<'v>,
    now: i64,
    url_is_normalized: bool,
    /// The token's SHA-256 and the key the cache says verified it, if cached.
    lookup: Option<([u8; 32], Option<[u8; 32]>)>,
    to_cache: Option<ToCache>,
}

impl CheckHooks for Hooks<'_> {
    fn remembered_token(&mut self, _text: &str, sha256: &[u8; 32]) -> Option<AccessToken> {
        if !self.inner.token_cache.is_enabled() {
            return None;
        }
        match self.inner.token_cache.get_token(sha256, self.now) {
            Some((key, token)) => {
                self.lookup = Some((*sha256, Some(key)));
                token
            }
            None => {
                self.lookup = Some((*sha256, None));
                None
            }
        }
    }

    /// Resolves the token's `kid` in the key ring and verifies its signature, unless
    /// the cache already holds it as verified by that same key.
    fn verify_token(&mut self, token: &AccessToken) -> Result<(), ProtoError> {
        let key = self.inner.token_key(token)?;
        let Some((hash, cached_key)) = self.lookup else {
            return token.verify_signature(&key);
        };
        if cached_key == Some(key.to_bytes()) {
            return Ok(());
        }
        token.verify_signature(&key)?;
        self.to_cache = Some(ToCache {
            hash,
            token: token.clone(),
            key: key.to_bytes(),
        });
        Ok(())
    }

    fn decoder(&self) -> &dyn KeyDecoder {
        &self.decoding
    }

    fn proof_algs(&self) -> ProofAlgs {
        self.inner.proof_algs
    }

    fn url_is_normalized(&self) -> bool {
        self.url_is_normalized
    }
}

/// Whether the public origin (normalised, without a trailing `/`) followed by `path`
/// is already what `normalize_htu` returns: `path` is absolute, has no query or
/// fragment and no `.` or `..` segment (the origin has none after normalising).
fn path_is_normal(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains(['?', '#'])
        && !path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

impl Inner {
    async fn verify(&self, request: &RequestHead<'_>) -> Result<VerifiedRequest, Rejection> {
        let token = self.access_token(request.headers)?;
        let proof = self.proof_header(request.headers)?;
        let (checked, now_ms) = self.pure_checks(request, proof, Some(token))?;
        let token_claims = checked.token.as_ref().map(AccessToken::claims);
        if token_claims.is_some_and(|claims| claims.iss != self.issuer) {
            return Err(Rejection::InvalidIssuer);
        }
        self.check_replay(&checked, now_ms).await?;
        let CheckedRequest { proof, token, jkt } = checked;
        self.check_nonce(proof.claims(), now_ms)?;
        let token = token.ok_or(Rejection::MissingToken)?;
        let claims = token.claims();
        self.sessions.check(&claims.sid, &claims.sub, &jkt).await?;
        Ok(VerifiedRequest {
            sub: claims.sub.clone(),
            sid: claims.sid.clone(),
            jkt,
            token_expires_at: claims.exp,
            token_jti: claims.jti.clone(),
        })
    }

    async fn verify_proof(&self, request: &RequestHead<'_>) -> Result<VerifiedProof, Rejection> {
        let proof = self.proof_header(request.headers)?;
        let (checked, now_ms) = self.pure_checks(request, proof, None)?;
        self.check_nonce(checked.proof.claims(), now_ms)?;
        let jwk = *checked.proof.jwk();
        Ok(VerifiedProof {
            jkt: checked.jkt,
            jwk,
            claims: checked.proof.into_claims(),
        })
    }

    /// The pure checks of `keybound_proto` in their fixed order, with this verifier's
    /// token cache and key ring; returns the checked request and the time it was
    /// checked at (milliseconds).
    fn pure_checks(
        &self,
        request: &RequestHead<'_>,
        proof: &str,
        token: Option<&str>,
    ) -> Result<(CheckedRequest, i64), Rejection> {
        let now_ms = self.clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let (url, url_is_normalized) = self.request_url(request.uri);
        // The router dispatches on the raw path: a proof must name exactly that path,
        // so a target that normalising would change is refused, never normalised.
        if !url_is_normalized {
            return Err(Rejection::RequestTargetNotNormal);
        }
        let ctx = self.context(request.method, &url, now);
        let mut hooks = Hooks {
            inner: self,
            decoding: self.proof_keys.decoding(),
            now,
            url_is_normalized,
            lookup: None,
            to_cache: None,
        };
        let checked = check_request(&ctx, proof, token, &mut hooks)?;
        let ahead = i64::try_from(self.max_iat_ahead_secs).unwrap_or(i64::MAX);
        if checked.proof.claims().iat > now.saturating_add(ahead) {
            return Err(Rejection::Proto {
                credential: Credential::Proof,
                error: ProtoError::IatInFuture,
            });
        }
        // Written to the caches only once every signature verified.
        hooks.decoding.remember();
        if let Some(ToCache { hash, token, key }) = hooks.to_cache {
            self.token_cache.insert_token(hash, &token, key, now);
        }
        Ok((checked, now_ms))
    }

    fn context<'a>(&self, method: &'a Method, url: &'a str, now: i64) -> RequestContext<'a> {
        RequestContext {
            method: method.as_str(),
            url,
            now,
            max_skew_secs: self.max_skew_secs,
            max_jws_len: self.max_header_len,
        }
    }

    /// The URL the proof must name: the public origin plus the request's path, and
    /// whether it is already in normal form (see [`path_is_normal`]).
    fn request_url(&self, uri: &Uri) -> (String, bool) {
        let path = uri.path();
        let mut url = String::with_capacity(self.origin.len() + path.len() + 1);
        url.push_str(&self.origin);
        if !path.starts_with('/') {
            url.push('/');
        }
        url.push_str(path);
        (url, path_is_normal(path))
    }

    /// The token of the single `Authorization: DPoP <token>` header.
    fn access_token<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, Rejection> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let value = values.next().ok_or(Rejection::MissingToken)?;
        if values.next().is_some() {
            return Err(Rejection::MultipleAuthorizationHeaders);
        }
        if value.len() > self.max_header_len {
            return Err(Rejection::HeaderTooLarge {
                credential: Credential::AccessToken,
                limit: self.max_header_len,
            });
        }
        let text = value.to_str().map_err(|_| Rejection::Proto {
            credential: Credential::AccessToken,
            error: ProtoError::MalformedJws,
        })?;
        let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
        // Auth schemes are case-insensitive (RFC 9110 §11.1).
        if !scheme.eq_ignore_ascii_case("DPoP") {
            return Err(Rejection::InvalidAuthScheme);
        }
        let token = token.trim_matches(' ');
        if token.is_empty() {
            return Err(Rejection::MissingToken);
        }
        Ok(token)
    }

    /// The value of the single `DPoP` header.
    fn proof_header<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, Rejection> {
        let mut values = headers.get_all(DPOP).iter();
        let value = values.next().ok_or(Rejection::MissingProof)?;
        if values.next().is_some() {
            return Err(Rejection::MultipleDpopHeaders);
        }
        if value.len() > self.max_header_len {
            return Err(Rejection::HeaderTooLarge {
                credential: Credential::Proof,
                limit: self.max_header_len,
            });
        }
        // A comma never occurs in a compact JWS: it is two headers folded into one.
        if value.as_bytes().contains(&b',') {
            return Err(Rejection::MultipleDpopHeaders);
        }
        value.to_str().map_err(|_| Rejection::Proto {
            credential: Credential::Proof,
            error: ProtoError::MalformedJws,
        })
    }

    /// The server key named by the token's `kid`.
    fn token_key(&self, token: &AccessToken) -> Result<VerifyingKey, ProtoError> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .verifying_key(token.kid())
            .copied()
            .ok_or(ProtoError::UnknownKid)
    }

    async fn check_replay(&self, checked: &CheckedRequest, now_ms: i64) -> Result<(), Rejection> {
        let claims = checked.proof.claims();
        self.record_jti(&checked.jkt, &claims.jti, claims.iat, now_ms)
            .await
    }

    /// Records a proof id until the proof could no longer be accepted.
    async fn record_jti(
        &self,
        jkt: &str,
        jti: &str,
        iat: i64,
        now_ms: i64,
    ) -> Result<(), Rejection> {
        let key = replay_key(jkt, jti);
        // The proof is accepted while now <= iat + skew (whole seconds); `iat` is at
        // most `max_iat_ahead` ahead, so an entry lives at most skew + ahead + 1 s.
        let skew = i64::try_from(self.max_skew_secs).unwrap_or(i64::MAX);
        let expires_at_ms = iat
            .saturating_add(skew)
            .saturating_add(1)
            .saturating_mul(1000)
            .max(now_ms);
        match self.replay.insert_once(&key, expires_at_ms).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Rejection::ReplayedJti),
            Err(err) => {
                tracing::warn!(code = err.code(), "keybound: replay store failed: {err}");
                Err(Rejection::ReplayStoreUnavailable(err))
            }
        }
    }

    fn check_nonce(&self, claims: &ProofClaims, now_ms: i64) -> Result<(), Rejection> {
        let Some(nonces) = &self.nonces else {
            return Ok(());
        };
        match &claims.nonce {
            None => Err(Rejection::UseDpopNonce {
                nonce: nonces.issue(now_ms),
            }),
            Some(nonce) if !nonces.check(nonce, now_ms) => Err(Rejection::InvalidNonce {
                nonce: nonces.issue(now_ms),
            }),
            Some(_) => Ok(()),
        }
    }

    fn record(&self, rejection: Option<&Rejection>, started: Instant) {
        let result = rejection.map_or("ok", Rejection::code);
        metrics::counter!(METRIC_VERIFICATIONS, "result" => result).increment(1);
        metrics::histogram!(METRIC_VERIFICATION_SECONDS).record(started.elapsed().as_secs_f64());
        if let Some(len) = self.replay.approximate_len() {
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!(METRIC_REPLAY_ENTRIES).set(len as f64);
        }
        match rejection {
            None => tracing::trace!("keybound: request verified"),
            Some(r) if r.is_unavailable() => {
                tracing::warn!(
                    code = r.code(),
                    "keybound: request refused, store unavailable"
                );
            }
            Some(r) => tracing::debug!(code = r.code(), "keybound: request rejected"),
        }
    }
}

/// Registers descriptions of the verifier's metrics with the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        METRIC_VERIFICATIONS,
        "DPoP request verifications, by result (ok or the rejection code)"
    );
    metrics::describe_histogram!(
        METRIC_VERIFICATION_SECONDS,
        metrics::Unit::Seconds,
        "Time to verify one request"
    );
    metrics::describe_gauge!(METRIC_REPLAY_ENTRIES, "Entries held by the replay store");
}

#[cfg(test)]
mod tests {
    use keybound_proto::normalize_htu;

    use super::*;

    #[test]
    fn normal_paths_need_no_normalising() {
        for origin in ["https://api.example.com", "http://[::1]:8080/base"] {
            for path in [
                "/", "/a", "/a/", "/a//b", "/a/./b", "/a/../b", "/.", "/..", "/a/.", "/a/..",
                "/.a", "/a..", "/%2e/x", "/a/b/c.d", "*", "", "/A/B", "/a?b", "/a#b",
            ] {
                let url = format!("{origin}{path}");
                if path_is_normal(path) {
                    assert_eq!(normalize_htu(&url).unwrap(), url, "{url}");
                }
            }
        }
        assert!(path_is_normal("/api/orders"));
        assert!(!path_is_normal("/api/../orders"));
        assert!(!path_is_normal("*"));
    }
}
