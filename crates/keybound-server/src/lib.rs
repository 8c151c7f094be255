//! keybound server: verifies DPoP-signed requests and runs the session lifecycle.
//!
//! The request verifier works with any `http`-based framework: [`Verifier::verify`]
//! takes a request's `http::request::Parts` and returns the caller's verified identity
//! ([`VerifiedRequest`]) or a [`Rejection`] that renders the exact DPoP error response
//! ([`Verifier::response`]). It runs every check of keybound's protocol in a
//! fixed order, cheap checks first and nothing written before the signatures verify:
//!
//! 1. header limits: one `DPoP` header, one `Authorization: DPoP …` header, each at most
//!    8 KiB (`Bearer` is refused: tokens are bound to a key);
//! 2. strict JOSE parsing of proof and access token (`alg` exactly `EdDSA`, exact `typ`,
//!    no `crit`, canonical base64url, no duplicate JSON members, public `jwk` only);
//! 3. `htm` and `htu` against the request (the configured public origin plus the path:
//!    the `Host` header is never trusted);
//! 4. the proof's `iat` within the allowed skew (60 s);
//! 5. `ath` is the hash of the access token; the token's `cnf.jkt` is the proof key;
//! 6. the access token's signature (by `kid` in the [`KeyRing`], or a [`TokenCache`]
//!    hit) and expiry; then the proof's signature (`verify_strict`);
//! 7. the proof's `jti` not seen before ([`ReplayStore`], [`MemoryReplayStore`]);
//! 8. the nonce, when [`Nonces`] are on;
//! 9. the session state ([`SessionCheck`]).
//!
//! [`verify_stateless`] runs the same checks without the stateful ones (7–9), for tools.
//!
//! The session lifecycle is [`SessionService`] ([`lifecycle`]), on a [`store`]. With the
//! `axum` feature (on by default), the [`axum`] module adds the `Session`
//! extractor, a login helper, the session endpoints and one-call setup from
//! [`settings`]; `docs/server.md` walks through both uses.
//!
//! ```
//! use std::sync::Arc;
//! use keybound_proto::{AccessTokenClaims, ProofBuilder, Signer};
//! use keybound_server::{KeyRing, ManualClock, ServerKey, Verifier};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let now = 1_700_000_000;
//! let keys = KeyRing::new(ServerKey::from_seed(&[1u8; 32]));
//! let device = ed25519_dalek::SigningKey::from_bytes(&[2u8; 32]);
//! let token = keys.sign(&AccessTokenClaims {
//!     iss: "https://api.example.com".into(), sub: "alice".into(), sid: "s1".into(),
//!     jti: "t1".into(), iat: now, exp: now + 300, jkt: device.public_jwk().thumbprint(),
//! }).unwrap();
//! let verifier = Verifier::builder()
//!     .public_origin("https://api.example.com")
//!     .keys(keys)
//!     .clock(Arc::new(ManualClock::new(now * 1000)))
//!     .danger_accept_any_session() // a service passes its SessionService instead
//!     .build()
//!     .unwrap();
//!
//! let proof = ProofBuilder::new(device.public_jwk(), "GET", "https://api.example.com/me", now, [3u8; 16])
//!     .unwrap()
//!     .access_token(&token)
//!     .sign(&device)
//!     .unwrap();
//! let request = http::Request::get("/me")
//!     .header("authorization", format!("DPoP {token}"))
//!     .header("dpop", proof)
//!     .body(())
//!     .unwrap();
//! let (parts, _body) = request.into_parts();
//! match verifier.verify(&parts).await {
//!     Ok(caller) => assert_eq!(caller.sub, "alice"),
//!     Err(rejection) => {
//!         let _response: http::Response<String> = verifier.response(rejection);
//!         unreachable!("the request is valid");
//!     }
//! }
//! # });
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::future::Future;
use std::pin::Pin;

#[cfg(feature = "axum")]
pub mod axum;
mod clock;
mod dbsc_signature;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod keyfile;
mod keys;
pub mod lifecycle;
mod nonce;
mod proof_keys;
mod rejection;
mod replay;
mod response;
pub mod session;
mod session_check;
pub mod settings;
pub mod store;
#[cfg(feature = "tls")]
pub mod tls;
mod token_cache;
mod verifier;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dbsc_signature::DbscSignatures;
pub use keybound_proto as proto;
pub use keys::{KeyError, KeyRing, ServerKey};
pub use lifecycle::{LifecycleError, SessionService};
pub use nonce::Nonces;
pub use rejection::Rejection;
pub use replay::{MemoryReplayStore, ReplayError, ReplayStore, replay_key};
pub use session_check::{SessionCheck, SessionDenied};
pub use token_cache::TokenCache;
pub use verifier::{
    DEFAULT_MAX_HEADER_LEN, DEFAULT_MAX_IAT_AHEAD, DEFAULT_MAX_SKEW, METRIC_REPLAY_ENTRIES,
    METRIC_VERIFICATION_SECONDS, METRIC_VERIFICATIONS, RequestHead, SharedKeyRing, VerifiedProof,
    VerifiedRequest, Verifier, VerifierBuilder, VerifierConfigError, describe_metrics,
    verify_stateless,
};

/// A boxed, sendable future, used by the object-safe async traits of this crate
/// (stores, hooks) so they can be held as `Arc<dyn Trait>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
