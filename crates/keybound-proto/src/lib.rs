//! keybound's protocol core: the wire formats of device-bound sessions and the pure
//! checks on them.
//!
//! * DPoP proofs (RFC 9449) signed with Ed25519 (`alg: EdDSA`, RFC 8037) or ECDSA P-256
//!   (`alg: ES256`, RFC 7518 §3.4): [`ProofBuilder`] makes them, [`DpopProof`] parses
//!   and checks them. Building ES256 proofs needs nothing extra (the signer brings the
//!   `r || s` signature); checking them needs the `es256` feature, which brings a P-256
//!   verifier (the server and the CLI turn it on; the browser SDK does not need it).
//! * Access tokens (`at+jwt`, RFC 9068) bound to the proof key by `cnf.jkt`:
//!   [`sign_access_token`], [`AccessToken`].
//! * Public keys and RFC 7638 thumbprints: [`PublicJwk`] (Ed25519 `OKP` or P-256 `EC`).
//! * `htu` normalisation: [`normalize_htu`].
//! * DBSC, the browser's own device binding: the [`dbsc`] module.
//!
//! The crate does no I/O, reads no clock and has no randomness of its own: callers
//! pass `now` and random bytes. It compiles for `wasm32-unknown-unknown` (the browser
//! SDK) and natively (the server), so both sides run the same code.
//!
//! Parsing is strict: only `EdDSA` (or its RFC 9864 name `Ed25519`) and `ES256`, each
//! with its own key type, exact `typ`, no `crit`, canonical unpadded base64url, no
//! duplicate JSON members, no private members in `jwk`, canonical signatures (Ed25519
//! S < L; ES256 the 64-byte `r || s`, both in `[1, n - 1]`), no small-order keys, P-256
//! points on the curve. Every failure is a [`ProtoError`] with a stable
//! [`code`](ProtoError::code).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
// `no_std` + `alloc`: the browser SDK's WebAssembly carries no standard library (and so
// no formatting or panic machinery); tests and the server link `std` as usual.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

/// What the standard prelude would give every module.
#[allow(unused_imports)]
mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec::Vec;
    pub(crate) use alloc::{format, vec};
}

mod alg;
pub mod b64;
mod check;
pub mod dbsc;
mod dpop;
mod ec;
mod error;
#[cfg(feature = "es256")]
mod es256_verify;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod htu;
mod json;
mod jwk;
mod jws;
mod token;
pub mod wire;

pub use alg::{ProofAlg, ProofAlgs, ProofAlgsError};
pub use check::{
    CheckError, CheckHooks, CheckedRequest, Credential, RequestContext, check_request,
};
pub use dpop::{DpopProof, MAX_JWS_LEN, PROOF_TYP, ProofBuilder, ProofClaims, access_token_hash};
pub use error::ProtoError;
pub use htu::normalize_htu;
pub use jwk::{DecodeEveryTime, KeyDecoder, ProofKey, PublicJwk};
pub use jws::Signer;
pub use token::{
    ACCESS_TOKEN_TYP, AccessToken, AccessTokenClaims, BOUND_COOKIE_TYP, sign_access_token,
    sign_bound_cookie,
};
pub use wire::{
    ErrorBody, SessionEnd, SessionState, SessionSummary, TokenResponse, decode_unverified,
};

/// Re-exported so users of [`Signer`] need no direct dependency.
pub use ed25519_dalek;
